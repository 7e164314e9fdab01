import { Module } from '@nestjs/common';

import { ConnectionsModule } from '../connections/connections.module.js';
import { GrantsModule } from '../grants/grants.module.js';
import { ApiKeyConnectMethod } from './api-key.connect-method.js';
import { ConnectHandler } from './connect.handler.js';
import { ConnectService } from './connect.service.js';
import { ConnectCommitService } from './connect-commit.service.js';
import { CONNECT_METHODS, type ConnectMethods } from './connect-method.js';
import { ConnectSessionsRepository } from './connect-sessions.repository.js';
import { FileExportConnectMethod } from './file-export.connect-method.js';
import { OAuth2ConnectMethod } from './oauth2.connect-method.js';

/** The connect flow: connect sessions, consent decisions, the source's authorization callback. */
@Module({
  imports: [ConnectionsModule, GrantsModule],
  controllers: [ConnectHandler],
  providers: [
    ConnectSessionsRepository,
    ConnectService,
    ConnectCommitService,
    OAuth2ConnectMethod,
    ApiKeyConnectMethod,
    FileExportConnectMethod,
    {
      provide: CONNECT_METHODS,
      inject: [OAuth2ConnectMethod, ApiKeyConnectMethod, FileExportConnectMethod],
      useFactory: (
        oauth2: OAuth2ConnectMethod,
        apiKey: ApiKeyConnectMethod,
        fileExport: FileExportConnectMethod,
      ): ConnectMethods => ({ oauth2, api_key: apiKey, file_export: fileExport }),
    },
  ],
})
export class ConnectModule {}
