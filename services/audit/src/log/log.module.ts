import { Module } from '@nestjs/common';

import { AuditMetrics } from './audit.metrics.js';
import { LogHandler } from './log.handler.js';
import { LogQueryService } from './log-query.service.js';
import { LogWriterService } from './log-writer.service.js';
import { SigningKeyHolder } from './signing-key.holder.js';
import { WitnessMetrics } from './witness.metrics.js';
import { WitnessSubmitter } from './witness-submitter.js';

/** The Merkle log: the single writer (consumer → append → checkpoints) and its read side. */
@Module({
  controllers: [LogHandler],
  providers: [LogWriterService, LogQueryService, SigningKeyHolder, AuditMetrics, WitnessSubmitter, WitnessMetrics],
  exports: [LogWriterService],
})
export class LogModule {}
