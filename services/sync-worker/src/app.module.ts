import { Module } from '@nestjs/common';

/** sync-worker: sync jobs from sources into Personal Servers. One imported module per bounded context. */
@Module({ imports: [] })
export class AppModule {}
