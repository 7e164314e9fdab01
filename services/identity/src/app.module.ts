import { Module } from '@nestjs/common';

/** identity: organizations, users, applications, API keys, passkeys, SSO. One imported module per bounded context. */
@Module({ imports: [] })
export class AppModule {}
