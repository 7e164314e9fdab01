import { Module } from '@nestjs/common';

/** audit: the tamper-evident audit log. One imported module per bounded context. */
@Module({ imports: [] })
export class AppModule {}
