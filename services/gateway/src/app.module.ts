import { Module } from '@nestjs/common';

import { AccountsModule } from './accounts/accounts.module.js';
import { AdminModule } from './admin/admin.module.js';
import { ApplicationsModule } from './applications/applications.module.js';
import { AuditModule } from './audit/audit.module.js';
import { AuditorApiModule } from './auditor-api/auditor-api.module.js';
import { AuthModule } from './auth/auth.module.js';
import { ConnectModule } from './connect/connect.module.js';
import { CredentialsModule } from './credentials/credentials.module.js';
import { DirectRoutesModule } from './http/direct-routes.module.js';
import { McpModule } from './mcp/mcp.module.js';
import { OAuthModule } from './oauth/oauth.module.js';
import { OpenApiModule } from './openapi/openapi.module.js';
import { PlatformHealthModule } from './platform-health/platform-health.module.js';
import { PolicyModule } from './policy/policy.module.js';
import { PortalModule } from './portal/portal.module.js';
import { RecordsModule } from './records/records.module.js';
import { SsoModule } from './sso/sso.module.js';
import { SyncModule } from './sync/sync.module.js';
import { WebhooksModule } from './webhooks/webhooks.module.js';

/** gateway: the edge, the only public HTTP surface for apps and agents. One imported module per bounded context. */
@Module({
  imports: [
    AuthModule,
    AdminModule,
    WebhooksModule,
    AccountsModule,
    ApplicationsModule,
    AuditModule,
    AuditorApiModule,
    OAuthModule,
    OpenApiModule,
    PlatformHealthModule,
    PolicyModule,
    PortalModule,
    ConnectModule,
    CredentialsModule,
    McpModule,
    RecordsModule,
    SyncModule,
    SsoModule,
    DirectRoutesModule,
  ],
})
export class AppModule {}
