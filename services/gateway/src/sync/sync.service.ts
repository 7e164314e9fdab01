import type { Readable } from 'node:stream';

import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  CsvError,
  type NormalizedRecord,
  parseNetflixViewingActivity,
  verifyGithubSignature,
} from '@context-gateway/connectors';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { MAX_IMPORT_BATCH, rpc, SyncReason, SyncRunState } from '@context-gateway/proto';
import { SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { FastifyReply } from 'fastify';

import type { ApplicationCaller } from '../auth/auth.types.js';
import type { Env } from '../env.js';
import { insufficientScope } from '../oauth/access-tokens.js';

const STATE_NAMES: Record<number, 'idle' | 'queued' | 'running' | 'failed' | 'needs_reauth'> = {
  [SyncRunState.IDLE]: 'idle',
  [SyncRunState.QUEUED]: 'queued',
  [SyncRunState.RUNNING]: 'running',
  [SyncRunState.FAILED]: 'failed',
  [SyncRunState.NEEDS_REAUTH]: 'needs_reauth',
};
/** Integrations whose data arrives as an uploaded export instead of through an API. */
const IMPORTED = new Set(['netflix']);

/** Whether the integration's data arrives as uploaded exports (Netflix) rather than from an API. */
export function takesImports(integration: string): boolean {
  return IMPORTED.has(integration);
}
const REJECTED_SHOWN = 100;
const encoder = new TextEncoder();

/**
 * The sync routes. Every app-facing one first reads the connection through the broker's
 * grant-scoped `get_connection` (the same check as `GET /v1/connections/{id}`): a
 * connection the app holds no grant on is 404 `connection_not_found`, whoever owns it.
 */
@Injectable()
export class SyncService {
  constructor(
    private readonly rpcClient: RpcClient,
    @Inject(SERVICE_ENV) private readonly env: Env,
  ) {}

  private async connection(caller: ApplicationCaller, connectionId: string, reply?: FastifyReply) {
    const { connection } = await this.rpcClient.request(rpc.broker.getConnection, {
      orgId: caller.orgId,
      applicationId: caller.applicationId,
      connectionId,
    });
    if (!connection) throw new AppError('connection_not_found');
    // A token acting for a person reaches that person's connections only (anyone else's is
    // not found, as without a grant), and only those of an integration it has a scope of.
    if (caller.onBehalfOf !== undefined && connection.userId !== caller.onBehalfOf)
      throw new AppError('connection_not_found');
    if (caller.tokenScopes && !caller.tokenScopes.some((s) => s.startsWith(`${connection.integration}:`))) {
      const needed = connection.scopes.length > 0 ? connection.scopes : [`${connection.integration}:…`];
      if (reply) throw insufficientScope(reply, this.env, needed);
      throw new AppError('scope_not_granted', `The access token carries no ${connection.integration} scope`);
    }
    return connection;
  }

  async state(caller: ApplicationCaller, connectionId: string, reply?: FastifyReply) {
    await this.connection(caller, connectionId, reply);
    const s = await this.rpcClient.request(rpc.sync.getState, { connectionId });
    return {
      state: STATE_NAMES[s.state] ?? 'queued',
      lastSuccessAt: s.lastSuccessAt ? timestampDate(s.lastSuccessAt).toISOString() : null,
      lastError: s.lastError || null,
      recordsSynced: Number(s.recordsSynced),
      nextRunAt: s.nextRunAt ? timestampDate(s.nextRunAt).toISOString() : null,
      lastRunSkipped: s.lastRunSkipped.map(({ kind, resource, reason }) => ({ kind, resource, reason })),
      lastRunSkippedTotal: s.lastRunSkippedTotal,
    };
  }

  async requestSync(caller: ApplicationCaller, connectionId: string, reply?: FastifyReply) {
    const connection = await this.connection(caller, connectionId, reply);
    if (IMPORTED.has(connection.integration))
      throw new AppError(
        'validation_failed',
        `${connection.integration} has no API to sync from: upload its export to POST /v1/connections/{id}/imports`,
      );
    const { jobId } = await this.rpcClient.request(rpc.sync.requestSync, { connectionId, reason: SyncReason.MANUAL });
    return { jobId, state: 'queued' as const };
  }

  /**
   * A Netflix ViewingActivity.csv, parsed while it streams in: good rows go to the worker in
   * batches, bad rows are reported with their line numbers. Re-uploading the same file
   * changes nothing (record ids come from the rows' content).
   */
  async importCsv(
    caller: ApplicationCaller,
    connectionId: string,
    body: unknown,
    contentLength: number | undefined,
    reply?: FastifyReply,
  ) {
    const connection = await this.connection(caller, connectionId, reply);
    return this.importInto(
      { id: connectionId, userId: connection.userId, integration: connection.integration },
      body,
      contentLength,
    );
  }

  /**
   * Imports an export file into a connection already resolved for its caller (an application
   * holding a grant, or the person themselves in the portal): streamed, size-limited, each row
   * validated; bad rows are listed by line number and skipped.
   */
  async importInto(
    connection: { id: string; userId: string; integration: string },
    body: unknown,
    contentLength: number | undefined,
  ) {
    const connectionId = connection.id;
    if (!IMPORTED.has(connection.integration))
      throw new AppError(
        'validation_failed',
        `${connection.integration} is synced from its API; only exports (netflix) are imported`,
      );
    const max = this.env.IMPORT_MAX_BYTES;
    if (contentLength !== undefined && contentLength > max)
      throw new AppError('payload_too_large', `An import may be at most ${max} bytes`);
    if (!isReadable(body)) throw new AppError('unsupported_media_type', 'Send the file as text/csv');

    const result = {
      imported: 0,
      written: 0,
      unchanged: 0,
      rejected: [] as { line: number; message: string }[],
      rejectedTotal: 0,
    };
    let batch: NormalizedRecord[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      const records = batch;
      batch = [];
      const res = await this.rpcClient.request(rpc.sync.importRecords, {
        connectionId,
        userId: connection.userId,
        integration: connection.integration,
        records: records.map((r) => ({
          type: r.type,
          externalId: r.externalId,
          dataJson: encoder.encode(JSON.stringify(r.data)),
          ...(r.occurredAt ? { sourceUpdatedAt: timestampFromDate(new Date(r.occurredAt)) } : {}),
        })),
      });
      result.written += res.written;
      result.unchanged += res.unchanged;
    };
    try {
      for await (const item of parseNetflixViewingActivity(limited(body, max))) {
        if ('problem' in item) {
          result.rejectedTotal++;
          if (result.rejected.length < REJECTED_SHOWN) result.rejected.push({ line: item.line, message: item.problem });
          continue;
        }
        result.imported++;
        batch.push(item.record);
        if (batch.length >= MAX_IMPORT_BATCH) await flush();
      }
      await flush();
    } catch (error) {
      if (error instanceof CsvError)
        throw new AppError('validation_failed', `The file could not be read past line ${error.line}: ${error.reason}`, [
          { path: `line ${error.line}`, message: error.reason },
        ]);
      throw error;
    }
    return result;
  }

  /**
   * A GitHub webhook delivery: verified against the integration's webhook secret over the
   * raw bytes, then every connection of the GitHub accounts it concerns gets an incremental
   * sync (the delivery id de-duplicates GitHub's redeliveries).
   */
  async githubWebhook(
    rawBody: Buffer | undefined,
    headers: Record<string, string | string[] | undefined>,
    payload: unknown,
  ) {
    const secret = this.env.GITHUB_WEBHOOK_SECRET;
    if (!secret) throw new AppError('not_found', 'GitHub webhooks are not configured on this gateway');
    const signature = header(headers, 'x-hub-signature-256');
    if (!rawBody || !verifyGithubSignature(secret, rawBody, signature)) throw new AppError('webhook_signature_invalid');
    const deliveryId = header(headers, 'x-github-delivery');
    const event = header(headers, 'x-github-event') ?? '';
    if (!deliveryId)
      throw new AppError('validation_failed', 'X-GitHub-Delivery is missing', [
        { path: 'X-GitHub-Delivery', message: 'required' },
      ]);
    if (event === 'ping') return { jobsQueued: 0 };
    const { jobsQueued } = await this.rpcClient.request(rpc.sync.notifyWebhook, {
      integration: 'github',
      deliveryId,
      event,
      accountIds: githubAccountIds(payload),
    });
    return { jobsQueued };
  }
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The GitHub accounts a webhook payload concerns: who acted, whose repository, who is assigned. */
function githubAccountIds(payload: unknown): string[] {
  const ids = new Set<string>();
  const add = (v: unknown) => {
    const id = (v as { id?: unknown } | null | undefined)?.id;
    if (typeof id === 'number' || (typeof id === 'string' && id !== '')) ids.add(String(id));
  };
  const p = (payload ?? {}) as Record<string, Record<string, unknown> | undefined>;
  add(p.sender);
  add(p.repository?.owner);
  add(p.installation?.account);
  for (const key of ['issue', 'pull_request'] as const) {
    add(p[key]?.user);
    add(p[key]?.assignee);
    for (const a of (p[key]?.assignees as unknown[] | undefined) ?? []) add(a);
  }
  return [...ids].slice(0, 100);
}

function isReadable(body: unknown): body is Readable {
  return typeof body === 'object' && body !== null && Symbol.asyncIterator in body;
}

/** The upload's bytes, refusing to read past `max` (the limit holds without a Content-Length). */
async function* limited(stream: Readable, max: number): AsyncGenerator<Uint8Array> {
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > max) {
      stream.destroy();
      throw new AppError('payload_too_large', `An import may be at most ${max} bytes`);
    }
    yield chunk;
  }
}
