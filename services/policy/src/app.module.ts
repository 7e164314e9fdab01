import { Module } from '@nestjs/common';

/** policy: the three policy layers and their decisions. One imported module per bounded context. */
@Module({ imports: [] })
export class AppModule {}
