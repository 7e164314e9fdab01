import { createHash, randomBytes, randomUUID } from 'node:crypto';

import { AppError } from '@context-gateway/errors';
import type { AuthenticateAuditorRequest, CreateAuditorRequest, RevokeAuditorRequest } from '@context-gateway/proto';
import { PG_POOL } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type pg from 'pg';

import { LogRepository } from '../log/log.repository.js';
import { AuditorsRepository } from './auditors.repository.js';

/** Prefix that makes an auditor token recognisable (and scrubbable) wherever it leaks. */
const AUDITOR_TOKEN_PREFIX = 'cg_aud_';

const hashToken = (token: string): Buffer => createHash('sha256').update(token).digest();

/**
 * Read-only auditor credentials, one org each. A token is 256 random bits shown once;
 * only its SHA-256 is stored (a high-entropy secret needs no slow hash), looked up by that.
 */
@Injectable()
export class AuditorsService {
  constructor(@Inject(PG_POOL) private readonly pool: pg.Pool) {}

  async create(req: CreateAuditorRequest): Promise<{ auditorId: string; token: string }> {
    const token = `${AUDITOR_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const auditorId = randomUUID();
    await LogRepository.asWriterRole(this.pool, (db) =>
      AuditorsRepository.insert(db, {
        id: auditorId,
        orgId: req.orgId,
        name: req.name,
        tokenHash: hashToken(token),
        createdBy: req.createdBy || 'operator',
      }),
    );
    return { auditorId, token };
  }

  async revoke(req: RevokeAuditorRequest): Promise<Record<string, never>> {
    const revoked = await LogRepository.asWriterRole(this.pool, (db) =>
      AuditorsRepository.revoke(db, req.orgId, req.auditorId),
    );
    if (!revoked) throw new AppError('not_found', 'No such auditor');
    return {};
  }

  async authenticate(req: AuthenticateAuditorRequest): Promise<{ auditorId: string; orgId: string }> {
    if (!req.token.startsWith(AUDITOR_TOKEN_PREFIX)) throw new AppError('unauthenticated', 'Not an auditor token');
    const row = await LogRepository.asWriterRole(this.pool, (db) =>
      AuditorsRepository.byTokenHash(db, hashToken(req.token)),
    );
    if (!row || row.revokedAt) throw new AppError('unauthenticated', 'Unknown or revoked auditor token');
    return { auditorId: row.id, orgId: row.orgId };
  }
}
