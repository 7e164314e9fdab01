import { Module } from '@nestjs/common';

/** connection-broker: integrations, connect sessions, the credential vault. One imported module per bounded context. */
@Module({ imports: [] })
export class AppModule {}
