import { stateCountsSql, toWebhookCounts } from '../domain/webhook-state.ts';
import type { SecretBox } from '../domain/secret-box.ts';
import type { Dialect, Params, Row } from './dialect.ts';
import { attemptStatsSql, BACKLOG, failuresBySql, LIST_ATTEMPTS, PRUNE_ATTEMPTS, toAttempt, toAttemptBuckets, toBacklog, toFailureCounts } from './sql/attempts.ts';
import {
  DELETE_WORKER, expireLeasesButSql, expireLeasesSql, heartbeatSql, LIST_WORKERS, NEXT_DUE, pruneWorkersSql, releaseClaimsSql,
} from './sql/claims.ts';
import { DELETE_TOKENS, FIND_TOKEN, GET_CLIENT, INSERT_CLIENT, INSERT_TOKEN, LIST_CLIENTS, REVOKE_CLIENT, toClient, toToken } from './sql/clients.ts';
import { DELIVERY_SETTINGS, resealRow, SET_PAYLOAD_MODE, SET_SIGNING_SECRET, storedSecretsSql, toDeliverySettings, UPDATE_STORED_SECRETS } from './sql/client-features.ts';
import { addRecordsSql, COUNT_RECORDS, GET_RECORD, LIST_RECORDS, toRecord } from './sql/records.ts';
import { CLAIM_LEADERSHIP, INIT_CURSOR, RELEASE_LEADERSHIP, SAVE_ERROR, SAVE_PROGRESS, toUpstreamState, UPSTREAM_STATE } from './sql/upstream.ts';
import {
  DELETE_WEBHOOK, FIND_WEBHOOK, GIVE_BACK_PLACE, GET_WEBHOOK, GET_WEBHOOK_BY_PUBLIC_ID, listWebhooksSql, lockWebhookSql, RECOVER_WEBHOOKS, REENABLE_BY_ID, REPLAY_WEBHOOK,
  toWebhook, watchedOrcidsSql,
} from './sql/webhooks.ts';
import type {
  ApplyChangesOptions, ApplyChangesResult, AttemptBucket, AttemptRecord, AttemptRow, Claim, ClaimOptions, ClientDeliverySettings, ClientRow, DeliveryBacklog,
  FailureCount, NewClient, PayloadMode, RecordChange, RecordRow, RegisterInput, RegisterResult, ReplayResult, Store, TokenRow, UpstreamState, WebhookCounts, WebhookFilter,
  WebhookRow, WorkerRow,
} from './types.ts';

/** Runs SQL of store/sql/ (named `@` parameters) on one connection or in one transaction. */
export interface Conn {
  all(sql: string, params?: Params): Promise<Row[]>;
  /** Rows changed. */
  run(sql: string, params?: Params): Promise<number>;
}

/**
 * Every store operation written once over a Conn; a database's store is a driver (connection,
 * transactions, wake-ups, dialect) plus the few operations whose algorithm differs: migrating,
 * applying changes, registering, claiming and completing.
 */
export abstract class SqlStore implements Store {
  protected abstract readonly d: Dialect;
  /** Statements outside a transaction. */
  protected abstract readonly conn: Conn;
  /** Seals signing secrets at rest; null: stored as given (tests, tools). */
  protected readonly secrets: SecretBox | null;

  constructor(secrets: SecretBox | undefined) {
    this.secrets = secrets ?? null;
  }

  get dialect(): 'sqlite' | 'postgres' {
    return this.d.name;
  }

  /** Runs fn in one transaction. */
  protected abstract tx<T>(fn: (c: Conn) => Promise<T>): Promise<T>;
  /** Wakes the delivery workers once the transaction of c commits. */
  protected abstract wake(c: Conn): Promise<void>;

  abstract migrate(): Promise<string[]>;
  abstract pendingMigrations(): Promise<string[]>;
  abstract close(): Promise<void>;
  abstract applyChanges(changes: RecordChange[], opts: ApplyChangesOptions): Promise<ApplyChangesResult>;
  abstract registerWebhook(input: RegisterInput): Promise<RegisterResult>;
  abstract claimDue(opts: ClaimOptions): Promise<Claim[]>;
  abstract completeAttempts(attempts: AttemptRecord[]): Promise<void>;
  abstract subscribeWakeups(listener: () => void): Promise<() => Promise<void>>;

  protected async one(sql: string, params?: Params, c: Conn = this.conn): Promise<Row | undefined> {
    return (await c.all(sql, params))[0];
  }

  async ping(): Promise<void> {
    await this.conn.all('SELECT 1');
  }

  async createClient(c: NewClient): Promise<ClientRow> {
    await this.conn.run(INSERT_CLIENT, { ...c, premium: c.premium ? 1 : 0 });
    return { ...c, revokedAt: null };
  }

  async getClient(id: string): Promise<ClientRow | null> {
    const r = await this.one(GET_CLIENT, { id });
    return r ? toClient(r) : null;
  }

  async listClients(): Promise<ClientRow[]> {
    return (await this.conn.all(LIST_CLIENTS)).map(toClient);
  }

  async revokeClient(id: string, now: number): Promise<boolean> {
    return this.tx(async (c) => {
      const n = await c.run(REVOKE_CLIENT, { id, now });
      await c.run(DELETE_TOKENS, { id });
      return n > 0;
    });
  }

  async createToken(t: TokenRow): Promise<void> {
    await this.conn.run(INSERT_TOKEN, { ...t });
  }

  async findToken(tokenHash: string): Promise<{ token: TokenRow; client: ClientRow } | null> {
    const r = await this.one(FIND_TOKEN, { tokenHash });
    return r ? { token: toToken(r), client: toClient(r) } : null;
  }

  async getRecord(orcid: string): Promise<RecordRow | null> {
    const r = await this.one(GET_RECORD, { orcid });
    return r ? toRecord(r) : null;
  }

  async addRecords(orcids: string[], now: number): Promise<number> {
    return orcids.length ? this.conn.run(addRecordsSql(this.d), { orcids, now }) : 0;
  }

  async listRecords(opts: { limit: number; afterOrcid?: string }): Promise<RecordRow[]> {
    return (await this.conn.all(LIST_RECORDS, { after: opts.afterOrcid ?? '', limit: opts.limit })).map(toRecord);
  }

  async countRecords(): Promise<number> {
    return Number((await this.one(COUNT_RECORDS))?.n ?? 0);
  }

  async enableWebhook(id: number, now: number): Promise<{ webhook: WebhookRow; reenabled: boolean } | null> {
    return this.tx(async (c) => {
      const re = await this.one(REENABLE_BY_ID, { id, now }, c);
      if (re) {
        if (re.due_at !== null) await this.wake(c);
        return { webhook: toWebhook(re), reenabled: true };
      }
      const existing = await this.one(GET_WEBHOOK, { id }, c);
      return existing ? { webhook: toWebhook(existing), reenabled: false } : null;
    });
  }

  async deleteWebhook(clientId: string, orcid: string, url: string): Promise<boolean> {
    return this.tx(async (c) => {
      const gone = await this.one(DELETE_WEBHOOK, { clientId, orcid, url }, c);
      if (gone) await c.run(GIVE_BACK_PLACE, { clientId });
      return gone !== undefined;
    });
  }

  async findWebhook(clientId: string, orcid: string, url: string): Promise<WebhookRow | null> {
    const r = await this.one(FIND_WEBHOOK, { clientId, orcid, url });
    return r ? toWebhook(r) : null;
  }

  async getWebhook(id: number): Promise<WebhookRow | null> {
    const r = await this.one(GET_WEBHOOK, { id });
    return r ? toWebhook(r) : null;
  }

  async getWebhookByPublicId(publicId: string): Promise<WebhookRow | null> {
    const r = await this.one(GET_WEBHOOK_BY_PUBLIC_ID, { publicId });
    return r ? toWebhook(r) : null;
  }

  async listWebhooks(f: WebhookFilter): Promise<WebhookRow[]> {
    const { sql, params } = listWebhooksSql(this.d, f);
    return (await this.conn.all(sql, params)).map(toWebhook);
  }

  async countWebhooks(): Promise<WebhookCounts> {
    return toWebhookCounts(await this.one(stateCountsSql(this.d.name)));
  }

  async getClientDeliverySettings(clientId: string): Promise<ClientDeliverySettings | null> {
    const r = await this.one(DELIVERY_SETTINGS, { clientId });
    return r ? toDeliverySettings(r, (v) => this.secrets?.open(v) ?? v) : null;
  }

  async setSigningSecret(clientId: string, secret: string | null, opts: { previousUntil: number | null; now: number }): Promise<boolean> {
    const stored = secret === null || !this.secrets ? secret : this.secrets.seal(secret);
    return (await this.conn.run(SET_SIGNING_SECRET, { clientId, secret: stored, keepUntil: opts.previousUntil, now: opts.now })) > 0;
  }

  async resealSigningSecrets(): Promise<number> {
    const box = this.secrets;
    if (!box) return 0;
    return this.tx(async (c) => {
      let n = 0;
      for (const r of await c.all(storedSecretsSql(this.d))) {
        const next = resealRow(r, box);
        if (next) n += await c.run(UPDATE_STORED_SECRETS, { clientId: r.client_id, ...next });
      }
      return n;
    });
  }

  async setPayloadMode(clientId: string, mode: PayloadMode, now: number): Promise<boolean> {
    return (await this.conn.run(SET_PAYLOAD_MODE, { clientId, mode, now })) > 0;
  }

  async replayWebhook(id: number, now: number): Promise<ReplayResult | null> {
    return this.tx(async (c) => {
      const existing = await this.one(lockWebhookSql(this.d), { id }, c);
      if (!existing) return null;
      const row = (await this.one(REPLAY_WEBHOOK, { id, now }, c))!;
      await this.wake(c);
      return { webhook: toWebhook(row), reenabled: !Number(existing.enabled) };
    });
  }

  async recoverWebhooks(clientId: string, since: number, now: number): Promise<number> {
    return this.tx(async (c) => {
      const n = await c.run(RECOVER_WEBHOOKS, { clientId, since, now });
      if (n > 0) await this.wake(c);
      return n;
    });
  }

  async heartbeat(worker: string): Promise<void> {
    await this.conn.run(heartbeatSql(this.d), { worker });
  }

  async retireWorker(worker: string): Promise<void> {
    await this.conn.run(DELETE_WORKER, { worker });
    await this.conn.run(pruneWorkersSql(this.d));
  }

  async listWorkers(): Promise<WorkerRow[]> {
    return (await this.conn.all(LIST_WORKERS)).map((r) => ({ id: String(r.id), startedAt: Number(r.started_at), heartbeatAt: Number(r.heartbeat_at) }));
  }

  async expireLeases(workers: string[] | { allBut: string }): Promise<number> {
    if (!Array.isArray(workers)) return this.conn.run(expireLeasesButSql(this.d), { worker: workers.allBut });
    return workers.length ? this.conn.run(expireLeasesSql(this.d), { workers }) : 0;
  }

  async releaseClaims(lease: string, ids: number[]): Promise<void> {
    if (ids.length) await this.conn.run(releaseClaimsSql(this.d), { ids, lease });
  }

  async nextDueAt(): Promise<number | null> {
    const t = (await this.one(NEXT_DUE))?.t;
    return t === null || t === undefined ? null : Number(t);
  }

  async listAttempts(webhookId: number, limit: number): Promise<AttemptRow[]> {
    return (await this.conn.all(LIST_ATTEMPTS, { webhookId, limit })).map(toAttempt);
  }

  async attemptStats(since: number, bucketMs: number): Promise<AttemptBucket[]> {
    return toAttemptBuckets(await this.conn.all(attemptStatsSql(this.d), { since, bucketMs }), since, bucketMs);
  }

  async deliveryBacklog(now: number): Promise<DeliveryBacklog> {
    return toBacklog(await this.one(BACKLOG, { now }));
  }

  async failureBreakdown(since: number, limit: number): Promise<{ byHost: FailureCount[]; byClient: FailureCount[] }> {
    const [byHost, byClient] = await Promise.all([
      this.conn.all(failuresBySql('host'), { since, limit }), this.conn.all(failuresBySql('client_id'), { since, limit }),
    ]);
    return { byHost: toFailureCounts(byHost), byClient: toFailureCounts(byClient) };
  }

  async pruneAttempts(before: number): Promise<number> {
    return this.conn.run(PRUNE_ATTEMPTS, { before });
  }

  async upstreamState(source: string): Promise<UpstreamState | null> {
    const r = await this.one(UPSTREAM_STATE, { source });
    return r ? toUpstreamState(r) : null;
  }

  async claimUpstreamLeadership(source: string, owner: string, now: number, leaseMs: number): Promise<boolean> {
    return (await this.conn.all(CLAIM_LEADERSHIP, { source, owner, until: now + leaseMs, now })).length > 0;
  }

  async releaseUpstreamLeadership(source: string, owner: string): Promise<void> {
    await this.conn.run(RELEASE_LEADERSHIP, { source, owner });
  }

  async initUpstreamCursor(source: string, cursor: number, now: number): Promise<number> {
    return Number((await this.one(INIT_CURSOR, { source, cursor, now }))!.cursor_at);
  }

  async saveUpstreamProgress(source: string, owner: string, cursor: number, now: number): Promise<boolean> {
    return (await this.conn.run(SAVE_PROGRESS, { source, owner, cursor, now })) > 0;
  }

  async saveUpstreamError(source: string, owner: string, error: string, now: number): Promise<void> {
    await this.conn.run(SAVE_ERROR, { source, owner, error, now });
  }

  async watchedOrcids(orcids: string[]): Promise<string[]> {
    return orcids.length ? (await this.conn.all(watchedOrcidsSql(this.d), { orcids })).map((r) => String(r.orcid)) : [];
  }
}
