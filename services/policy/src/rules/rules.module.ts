import { Module } from '@nestjs/common';

import { ControlProgress } from './control-progress.js';
import { McpServersHandler } from './mcp-servers.handler.js';
import { McpServersService } from './mcp-servers.js';
import { McpVirtualServersHandler } from './mcp-virtual-servers.handler.js';
import { McpVirtualServersService } from './mcp-virtual-servers.js';
import { McpVirtualServersRepository } from './mcp-virtual-servers.repository.js';
import { PolicyEventsRelay } from './policy-events.relay.js';
import { PolicyEventsRepository } from './policy-events.repository.js';
import { RulesHandler } from './rules.handler.js';
import { RulesRepository } from './rules.repository.js';
import { RulesService } from './rules.service.js';

/** The three layers' rules, revisions, snapshots and explanations. */
@Module({
  controllers: [RulesHandler, McpServersHandler, McpVirtualServersHandler],
  providers: [
    RulesService,
    McpServersService,
    McpVirtualServersService,
    McpVirtualServersRepository,
    RulesRepository,
    ControlProgress,
    PolicyEventsRepository,
    PolicyEventsRelay,
  ],
  exports: [RulesService, RulesRepository, ControlProgress],
})
export class RulesModule {}
