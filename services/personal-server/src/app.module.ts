import { Module } from '@nestjs/common';

/** personal-server: users' encrypted Personal Servers (one shard per process). One imported module per bounded context. */
@Module({ imports: [] })
export class AppModule {}
