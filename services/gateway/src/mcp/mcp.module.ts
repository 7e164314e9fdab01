import { Module } from '@nestjs/common';

import { ApprovalsModule } from '../approvals/approvals.module.js';
import { CredentialsModule } from '../credentials/credentials.module.js';
import { PolicyModule } from '../policy/policy.module.js';
import { McpController } from './mcp.controller.js';
import { McpGatewayService } from './mcp-gateway.service.js';
import { McpListWatcher } from './mcp-list-watch.js';
import { McpLogLevels } from './mcp-logging.js';
import { McpResourceSubscriptions } from './mcp-resource-subscriptions.js';
import { McpServersController } from './mcp-servers.controller.js';
import { McpSubscribers } from './mcp-subscribers.js';
import { McpToolCatalog } from './mcp-tool-catalog.js';
import { McpUpstream } from './mcp-upstream.js';
import { McpVirtualServersController } from './mcp-virtual-servers.controller.js';

/** Gateway mode: /mcp for agents, and the admin API of the org's remote MCP servers. */
@Module({
  imports: [PolicyModule, CredentialsModule, ApprovalsModule],
  controllers: [McpController, McpServersController, McpVirtualServersController],
  providers: [
    McpGatewayService,
    McpUpstream,
    McpToolCatalog,
    McpListWatcher,
    McpSubscribers,
    McpLogLevels,
    McpResourceSubscriptions,
  ],
})
export class McpModule {}
