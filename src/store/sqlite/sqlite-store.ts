import Database from 'better-sqlite3';
import { EventEmitter } from 'node:events';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadMigrations } from '../migrations.ts';
import { STATE_SQL, num, toAttempt, toClient, toWebhook, toWorker } from '../rows.ts';
import { BackgroundCheckpointer } from './checkpointer.ts';
import { attemptStatsSql, toAttemptBuckets } from '../sql/attempt-stats.ts';
import { backlogSql, failuresBySql, headersJson, sqliteParam, toBacklog, toFailureCounts } from '../sql/operator-stats.ts';
import { createPlaceholderSql, isNewer } from '../sql/records.ts';
import { claimableSql, dbNowSql, expireLeasesSql, heartbeatSql, pruneWorkersSql } from '../sql/leases.ts';
import {
  deliverySettingsSql, recoverWhereSql, replaySetSql, resealRow, setPayloadModeSql, setSigningSecretSql, STORED_SECRETS_SQL, toDeliverySettings, updateStoredSecretsSql,
} from '../sql/client-features.ts';
import type { ClientDeliverySettings, DeliveryBacklog, FailureCount, PayloadMode, ReplayResult, UpstreamState } from '../types.ts';
import {
  claimLeadershipSql, initCursorSql, releaseLeadershipSql, saveErrorSql, saveProgressSql, toUpstreamState, upstreamStateSql, watchedOrcidsSql,
} from '../sql/upstream.ts';
import { claimScanSize, DEFAULT_WORKER_STALE_MS } from '../types.ts';
import { newWebhookPublicId } from '../../domain/public-id.ts';
import type { SecretBox } from '../../domain/secret-box.ts';
import type {
  ApplyChangesOptions, ClaimOptions, ApplyChangesResult, AttemptBucket, AttemptRecord, AttemptRow, Claim, ClientRow, NewClient, RecordChange,
  RecordRow, RegisterResult, Store, TokenRow, WebhookCounts, WebhookFilter, WebhookRow, WorkerRow,
} from '../types.ts';

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations');

type Row = Record<string, unknown>;

/** `sqlite:./data/x.db`, `sqlite:///abs/x.db`, `sqlite::memory:` or a plain path. */
export function sqlitePath(url: string): string {
  if (url.startsWith('sqlite://')) return url.slice('sqlite://'.length) || ':memory:';
  if (url.startsWith('sqlite:')) return url.slice('sqlite:'.length) || ':memory:';
  return url;
}


/** The database and its -wal and -shm files readable by the service's user only (they hold tokens' hashes and secrets). */
export function restrictDatabaseFiles(path: string): void {
  for (const f of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
}

export class SqliteStore implements Store {
  readonly dialect = 'sqlite' as const;
  readonly db: Database.Database;
  private readonly stmts;
  private readonly wakeups = new EventEmitter();
  /** Set when checkpoints run in the background (long-running services). */
  readonly checkpointer: BackgroundCheckpointer | null = null;

  /** backgroundCheckpoint: run WAL checkpoints on a thread, off the event loop (see checkpointer.ts). */
  /** Seals signing secrets at rest; null: stored as given (tests, tools). */
  private readonly secrets: SecretBox | null;

  constructor(path: string, opts: { backgroundCheckpoint?: boolean; secrets?: SecretBox } = {}) {
    this.secrets = opts.secrets ?? null;
    if (path !== ':memory:') {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      // Created 0600 before SQLite opens it: SQLite gives the -wal and -shm files the database's mode.
      closeSync(openSync(path, 'a', 0o600));
      restrictDatabaseFiles(path);
    }
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // NORMAL is durable across process crashes in WAL mode (only an OS crash can lose the last commits).
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    if (opts.backgroundCheckpoint && path !== ':memory:') {
      this.db.pragma('wal_autocheckpoint = 0');
      this.checkpointer = new BackgroundCheckpointer(path);
    }
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)');
    this.stmts = this.prepareLazy();
  }

  private prepareLazy() {
    const cache = new Map<string, Database.Statement>();
    return (sql: string): Database.Statement => {
      let s = cache.get(sql);
      if (!s) {
        s = this.db.prepare(sql);
        cache.set(sql, s);
      }
      return s;
    };
  }

  private q(sql: string): Database.Statement {
    return this.stmts(sql);
  }

  async migrate(): Promise<string[]> {
    const applied: string[] = [];
    for (const m of loadMigrations(MIGRATIONS_DIR)) {
      // IMMEDIATE takes the write lock first, so two processes migrating at once serialise; the
      // row goes in first, so the loser sees it and skips.
      const run = this.db.transaction(() => {
        const done = this.db.prepare('SELECT 1 FROM schema_migrations WHERE name = ?').get(m.name);
        if (done) return false;
        this.db.prepare('INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)').run(m.name, Date.now());
        this.db.exec(m.sql);
        return true;
      });
      if (run.immediate()) applied.push(m.name);
    }
    return applied;
  }

  async pendingMigrations(): Promise<string[]> {
    const done = new Set((this.db.prepare('SELECT name FROM schema_migrations').all() as Row[]).map((r) => String(r.name)));
    return loadMigrations(MIGRATIONS_DIR).map((m) => m.name).filter((n) => !done.has(n));
  }

  async ping(): Promise<void> {
    this.q('SELECT 1').get();
  }

  async close(): Promise<void> {
    await this.checkpointer?.stop();
    if (this.db.open) this.db.close();
  }

  async createClient(c: NewClient): Promise<ClientRow> {
    this.q('INSERT INTO clients (id, name, secret_hash, premium, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(c.id, c.name, c.secretHash, c.premium ? 1 : 0, c.createdAt);
    return { ...c, revokedAt: null };
  }

  async getClient(id: string): Promise<ClientRow | null> {
    const r = this.q('SELECT * FROM clients WHERE id = ?').get(id) as Row | undefined;
    return r ? toClient(r) : null;
  }

  async listClients(): Promise<ClientRow[]> {
    return (this.q('SELECT * FROM clients ORDER BY created_at, id').all() as Row[]).map(toClient);
  }

  async revokeClient(id: string, now: number): Promise<boolean> {
    return this.db.transaction(() => {
      const res = this.q('UPDATE clients SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?').run(now, id);
      this.q('DELETE FROM tokens WHERE client_id = ?').run(id);
      return res.changes > 0;
    })();
  }

  async createToken(t: TokenRow): Promise<void> {
    this.q('INSERT INTO tokens (token_hash, client_id, scope, created_at, expires_at) VALUES (?, ?, ?, ?, ?)')
      .run(t.tokenHash, t.clientId, t.scope, t.createdAt, t.expiresAt);
  }

  async findToken(tokenHash: string): Promise<{ token: TokenRow; client: ClientRow } | null> {
    const r = this.q(`SELECT t.token_hash, t.client_id, t.scope, t.created_at AS t_created, t.expires_at, c.*
      FROM tokens t JOIN clients c ON c.id = t.client_id WHERE t.token_hash = ?`).get(tokenHash) as Row | undefined;
    if (!r) return null;
    return {
      token: { tokenHash: String(r.token_hash), clientId: String(r.client_id), scope: String(r.scope), createdAt: Number(r.t_created), expiresAt: Number(r.expires_at) },
      client: toClient(r),
    };
  }

  async getRecord(orcid: string): Promise<RecordRow | null> {
    const r = this.q('SELECT * FROM records WHERE orcid = ?').get(orcid) as Row | undefined;
    return r ? { orcid: String(r.orcid), modifiedAt: Number(r.modified_at), createdAt: Number(r.created_at) } : null;
  }

  async addRecords(orcids: string[], now: number): Promise<number> {
    const ins = this.q('INSERT INTO records (orcid, modified_at, created_at) VALUES (?, ?, ?) ON CONFLICT (orcid) DO NOTHING');
    return this.db.transaction(() => {
      let n = 0;
      for (const o of orcids) n += ins.run(o, now, now).changes;
      return n;
    })();
  }

  async listRecords(opts: { limit: number; afterOrcid?: string }): Promise<RecordRow[]> {
    const rows = this.q('SELECT * FROM records WHERE orcid > ? ORDER BY orcid LIMIT ?').all(opts.afterOrcid ?? '', opts.limit) as Row[];
    return rows.map((r) => ({ orcid: String(r.orcid), modifiedAt: Number(r.modified_at), createdAt: Number(r.created_at) }));
  }

  async countRecords(): Promise<number> {
    return Number((this.q('SELECT count(*) AS n FROM records').get() as Row).n);
  }

  async applyChanges(changes: RecordChange[], opts: ApplyChangesOptions): Promise<ApplyChangesResult> {
    const get = this.q('SELECT modified_at, placeholder FROM records WHERE orcid = ?');
    const ins = this.q('INSERT INTO records (orcid, modified_at, created_at) VALUES (?, ?, ?)');
    const upd = this.q('UPDATE records SET modified_at = ?, placeholder = 0 WHERE orcid = ?');
    const owe = this.q(OWE_SQL);
    const res = this.db.transaction(() => {
      const result: ApplyChangesResult = { created: 0, changed: 0, ignored: 0, webhooksNotified: 0 };
      for (const c of changes) {
        const cur = get.get(c.orcid) as Row | undefined;
        if (!cur) {
          if (opts.create) {
            ins.run(c.orcid, c.modifiedAt, opts.now);
            result.created++;
          } else result.ignored++;
          continue;
        }
        const modified = c.touch ? Math.max(c.modifiedAt, Number(cur.modified_at) + 1) : c.modifiedAt;
        if (!isNewer(modified, Number(cur.modified_at), Boolean(cur.placeholder))) {
          result.ignored++;
          continue;
        }
        upd.run(modified, c.orcid);
        result.changed++;
        result.webhooksNotified += owe.run({ orcid: c.orcid, modified, due: opts.now + opts.notifyDelayMs }).changes;
      }
      return result;
    })();
    if (res.webhooksNotified > 0) this.wakeups.emit('wake');
    return res;
  }

  async registerWebhook(input: { clientId: string; orcid: string; url: string; host: string; now: number; maxPerClient?: number; createRecord?: boolean }): Promise<RegisterResult> {
    return this.db.transaction((): RegisterResult => {
      const existing = this.q('SELECT * FROM webhooks WHERE client_id = ? AND orcid = ? AND url = ?').get(input.clientId, input.orcid, input.url) as Row | undefined;
      if (existing) {
        if (existing.enabled) return { outcome: 'exists', webhook: toWebhook(existing), reenabled: false };
        const row = this.q(`${REENABLE_SQL} RETURNING *`).get({ id: existing.id, now: input.now }) as Row;
        this.wakeups.emit('wake');
        return { outcome: 'exists', webhook: toWebhook(row), reenabled: true };
      }
      // The place is taken by the statement that checks the cap (clients.webhook_count).
      const taken = this.q('UPDATE clients SET webhook_count = webhook_count + 1 WHERE id = ? AND webhook_count < ?')
        .run(input.clientId, input.maxPerClient ?? Number.MAX_SAFE_INTEGER).changes;
      if (!taken) {
        if (!this.q('SELECT 1 FROM clients WHERE id = ?').get(input.clientId)) throw new Error(`No client with id ${input.clientId}`);
        return { outcome: 'limit' };
      }
      if (input.createRecord) {
        this.q(createPlaceholderSql({ orcid: '@orcid', now: '@now' })).run({ orcid: input.orcid, now: input.now });
      }
      const row = this.q(`INSERT INTO webhooks (client_id, orcid, url, host, created_at, public_id) VALUES (?, ?, ?, ?, ?, ?) RETURNING *`)
        .get(input.clientId, input.orcid, input.url, input.host, input.now, newWebhookPublicId()) as Row;
      return { outcome: 'created', webhook: toWebhook(row) };
    }).immediate();
  }

  async enableWebhook(id: number, now: number): Promise<{ webhook: WebhookRow; reenabled: boolean } | null> {
    const res = this.db.transaction(() => {
      const existing = this.q('SELECT enabled FROM webhooks WHERE id = ?').get(id) as Row | undefined;
      if (!existing) return null;
      const reenabled = !existing.enabled;
      if (reenabled) this.q(REENABLE_SQL).run({ id, now });
      return { webhook: toWebhook(this.q('SELECT * FROM webhooks WHERE id = ?').get(id) as Row), reenabled };
    }).immediate();
    if (res?.reenabled && res.webhook.dueAt !== null) this.wakeups.emit('wake');
    return res;
  }

  async deleteWebhook(clientId: string, orcid: string, url: string): Promise<boolean> {
    return this.db.transaction(() => {
      const deleted = this.q('DELETE FROM webhooks WHERE client_id = ? AND orcid = ? AND url = ?').run(clientId, orcid, url).changes > 0;
      if (deleted) this.q('UPDATE clients SET webhook_count = webhook_count - 1 WHERE id = ?').run(clientId);
      return deleted;
    }).immediate();
  }

  async findWebhook(clientId: string, orcid: string, url: string): Promise<WebhookRow | null> {
    const r = this.q('SELECT * FROM webhooks WHERE client_id = ? AND orcid = ? AND url = ?').get(clientId, orcid, url) as Row | undefined;
    return r ? toWebhook(r) : null;
  }

  async getWebhook(id: number): Promise<WebhookRow | null> {
    const r = this.q('SELECT * FROM webhooks WHERE id = ?').get(id) as Row | undefined;
    return r ? toWebhook(r) : null;
  }

  async getWebhookByPublicId(publicId: string): Promise<WebhookRow | null> {
    const r = this.q('SELECT * FROM webhooks WHERE public_id = ?').get(publicId) as Row | undefined;
    return r ? toWebhook(r) : null;
  }

  async listWebhooks(f: WebhookFilter): Promise<WebhookRow[]> {
    const where: string[] = ['id > @afterId'];
    if (f.clientId !== undefined) where.push('client_id = @clientId');
    if (f.orcid !== undefined) where.push('orcid = @orcid');
    if (f.state !== undefined) where.push(STATE_SQL[f.state]);
    if (f.search) where.push("(orcid = @search OR client_id = @search OR instr(lower(url), lower(@search)) > 0)");
    const sql = `SELECT * FROM webhooks WHERE ${where.join(' AND ')} ORDER BY id LIMIT @limit`;
    const rows = this.q(sql).all({
      afterId: f.afterId ?? 0, limit: f.limit,
      ...(f.clientId !== undefined && { clientId: f.clientId }), ...(f.orcid !== undefined && { orcid: f.orcid }),
      ...(f.search && { search: f.search }),
    }) as Row[];
    return rows.map(toWebhook);
  }

  async countWebhooks(): Promise<WebhookCounts> {
    const r = this.q(COUNTS_SQL).get() as Row;
    return { total: Number(r.total), enabled: Number(r.enabled ?? 0), disabled: Number(r.disabled ?? 0), pending: Number(r.pending ?? 0), backoff: Number(r.backoff ?? 0) };
  }

  async getClientDeliverySettings(clientId: string): Promise<ClientDeliverySettings | null> {
    const r = this.q(deliverySettingsSql('?')).get(clientId) as Row | undefined;
    return r ? toDeliverySettings(r, (v) => this.secrets?.open(v) ?? v) : null;
  }

  async setSigningSecret(clientId: string, secret: string | null, opts: { previousUntil: number | null; now: number }): Promise<boolean> {
    const sql = setSigningSecretSql({ clientId: '@clientId', secret: '@secret', keepUntil: '@keepUntil', now: '@now' });
    const stored = secret === null || !this.secrets ? secret : this.secrets.seal(secret);
    return this.q(sql).run({ clientId, secret: stored, keepUntil: opts.previousUntil, now: opts.now }).changes > 0;
  }

  async resealSigningSecrets(): Promise<number> {
    const box = this.secrets;
    if (!box) return 0;
    return this.db.transaction(() => {
      let n = 0;
      const update = this.q(updateStoredSecretsSql({ clientId: '@clientId', secret: '@secret', previous: '@previous' }));
      for (const r of this.q(STORED_SECRETS_SQL).all() as Row[]) {
        const next = resealRow(r, box);
        if (next) n += update.run({ clientId: r.client_id, ...next }).changes;
      }
      return n;
    }).immediate();
  }

  async setPayloadMode(clientId: string, mode: PayloadMode, now: number): Promise<boolean> {
    return this.q(setPayloadModeSql({ clientId: '@clientId', mode: '@mode', now: '@now' })).run({ clientId, mode, now }).changes > 0;
  }

  async replayWebhook(id: number, now: number): Promise<ReplayResult | null> {
    const res = this.db.transaction((): ReplayResult | null => {
      const existing = this.q('SELECT enabled FROM webhooks WHERE id = ?').get(id) as Row | undefined;
      if (!existing) return null;
      const row = this.q(`UPDATE webhooks SET ${replaySetSql('@now')} WHERE id = @id RETURNING *`).get({ id, now }) as Row;
      return { webhook: toWebhook(row), reenabled: !existing.enabled };
    }).immediate();
    if (res) this.wakeups.emit('wake');
    return res;
  }

  async recoverWebhooks(clientId: string, since: number, now: number): Promise<number> {
    const n = this.q(`UPDATE webhooks SET ${replaySetSql('@now')} WHERE ${recoverWhereSql({ clientId: '@clientId', since: '@since' })}`)
      .run({ clientId, since, now }).changes;
    if (n > 0) this.wakeups.emit('wake');
    return n;
  }

  async claimDue(o: ClaimOptions): Promise<Claim[]> {
    // One statement picks and leases the batch; SET sees the old lease_until, so lease_reclaimed
    // records whether a dead worker's lease was taken over. With per-host and per-client limits,
    // the earliest due rows are ranked within their host and their client, and only the first
    // few of each are taken.
    const rows = this.q(`UPDATE webhooks SET lease_owner = @owner, lease_worker = @worker, lease_until = ${dbNowSql('sqlite')} + @leaseMs,
        lease_reclaimed = (lease_until IS NOT NULL)
      WHERE id IN (
        SELECT id FROM (
          SELECT id, host, client_id, due_at,
            row_number() OVER (PARTITION BY host ORDER BY due_at, id) AS rank_in_host,
            row_number() OVER (PARTITION BY client_id ORDER BY due_at, id) AS rank_in_client
          FROM (
            SELECT id, host, client_id, due_at FROM webhooks
            WHERE enabled = 1 AND due_at IS NOT NULL AND due_at <= @now
              AND ${claimableSql('sqlite', '@stale')}
              AND host NOT IN (SELECT value FROM json_each(@exclude))
              AND client_id NOT IN (SELECT value FROM json_each(@excludeClients))
            ORDER BY due_at, id LIMIT @scan))
        WHERE rank_in_host <= COALESCE((SELECT value FROM json_each(@hostSlots) WHERE key = host), @perHost)
          AND rank_in_client <= COALESCE((SELECT value FROM json_each(@clientSlots) WHERE key = client_id), @perClient)
        ORDER BY due_at, id LIMIT @limit)
      RETURNING *`).all({
      owner: o.owner, worker: o.worker ?? null, leaseMs: o.leaseMs, now: o.now, limit: o.limit, exclude: JSON.stringify(o.excludeHosts),
      perHost: o.perHostLimit ?? o.limit, scan: claimScanSize(o.limit, o.perHostLimit, o.perClientLimit),
      hostSlots: JSON.stringify(o.hostSlots ?? {}), stale: o.workerStaleMs ?? DEFAULT_WORKER_STALE_MS,
      perClient: o.perClientLimit ?? o.limit, clientSlots: JSON.stringify(o.clientSlots ?? {}),
      excludeClients: JSON.stringify(o.excludeClients ?? []),
    }) as Row[];
    return rows
      .map((r) => ({ webhook: toWebhook(r), reclaimed: Boolean(r.lease_reclaimed) }))
      .sort((a, b) => (a.webhook.dueAt ?? 0) - (b.webhook.dueAt ?? 0) || a.webhook.id - b.webhook.id);
  }

  async heartbeat(worker: string): Promise<void> {
    this.q(heartbeatSql('sqlite', '?')).run(worker);
  }

  async retireWorker(worker: string): Promise<void> {
    this.q('DELETE FROM workers WHERE id = ?').run(worker);
    this.q(pruneWorkersSql('sqlite')).run();
  }

  async listWorkers(): Promise<WorkerRow[]> {
    return (this.q('SELECT * FROM workers ORDER BY started_at, id').all() as Row[]).map(toWorker);
  }

  async expireLeases(workers: string[] | { allBut: string }): Promise<number> {
    if (Array.isArray(workers)) {
      if (workers.length === 0) return 0;
      return this.q(expireLeasesSql('IN (SELECT value FROM json_each(?))')).run(JSON.stringify(workers)).changes;
    }
    // Leases from before heartbeats (no worker) are somebody else's too, on a single node.
    return this.q(`${expireLeasesSql('IS NOT ?')}`).run(workers.allBut).changes;
  }

  async releaseClaims(owner: string, ids: number[]): Promise<void> {
    const rel = this.q('UPDATE webhooks SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?');
    this.db.transaction(() => {
      for (const id of ids) rel.run(id, owner);
    })();
  }

  async completeAttempts(attempts: AttemptRecord[]): Promise<void> {
    const ins = this.q(`INSERT INTO attempts (webhook_id, notification_id, at, duration_ms, status_code, error, response_snippet, latency_ms, request_headers, response_headers)
      SELECT @webhookId, @notificationId, @at, @durationMs, @statusCode, @error, @snippet, @latencyMs, @requestHeaders, @responseHeaders
      WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = @webhookId)`);
    const success = this.q(SUCCESS_SQL);
    const retry = this.q(RETRY_SQL);
    const disable = this.q(DISABLE_SQL);
    this.db.transaction(() => {
      for (const a of attempts) {
        const status = a.statusCode !== null ? String(a.statusCode) : a.error;
        ins.run({ webhookId: a.webhookId, notificationId: a.notificationId, at: a.startedAt, durationMs: Math.round(a.durationMs), statusCode: a.statusCode, error: a.error, snippet: a.responseSnippet, latencyMs: a.latencyMs === null ? null : Math.round(a.latencyMs), ...headersJson(a) });
        const base = { id: a.webhookId, owner: a.owner, now: a.startedAt + Math.round(a.durationMs), status };
        if (a.outcome.kind === 'success') success.run({ ...base, claimed: a.claimedSeq, nextDue: a.nextDueAt });
        else if (a.outcome.kind === 'retry') retry.run({ ...base, retryAt: a.outcome.retryAt });
        else disable.run({ ...base, reason: a.outcome.reason });
      }
    })();
  }

  async nextDueAt(): Promise<number | null> {
    const r = this.q('SELECT min(max(due_at, COALESCE(lease_until, 0))) AS t FROM webhooks WHERE enabled = 1 AND due_at IS NOT NULL').get() as Row;
    return num(r.t);
  }

  async subscribeWakeups(listener: () => void): Promise<() => Promise<void>> {
    this.wakeups.on('wake', listener);
    return async () => {
      this.wakeups.off('wake', listener);
    };
  }

  async listAttempts(webhookId: number, limit: number): Promise<AttemptRow[]> {
    return (this.q('SELECT * FROM attempts WHERE webhook_id = ? ORDER BY id DESC LIMIT ?').all(webhookId, limit) as Row[]).map(toAttempt);
  }

  async attemptStats(since: number, bucketMs: number): Promise<AttemptBucket[]> {
    return toAttemptBuckets(this.q(attemptStatsSql('sqlite')).all({ since, bucketMs }) as Row[], since, bucketMs);
  }

  async deliveryBacklog(now: number): Promise<DeliveryBacklog> {
    return toBacklog(this.q(backlogSql(sqliteParam)).get({ now }) as Row);
  }

  async failureBreakdown(since: number, limit: number): Promise<{ byHost: FailureCount[]; byClient: FailureCount[] }> {
    return {
      byHost: toFailureCounts(this.q(failuresBySql('host', sqliteParam)).all({ since, limit }) as Row[]),
      byClient: toFailureCounts(this.q(failuresBySql('client_id', sqliteParam)).all({ since, limit }) as Row[]),
    };
  }

  async pruneAttempts(before: number): Promise<number> {
    return this.q('DELETE FROM attempts WHERE at < ?').run(before).changes;
  }

  async upstreamState(source: string): Promise<UpstreamState | null> {
    const r = this.q(upstreamStateSql('?')).get(source) as Row | undefined;
    return r ? toUpstreamState(r) : null;
  }

  async claimUpstreamLeadership(source: string, owner: string, now: number, leaseMs: number): Promise<boolean> {
    return this.q(claimLeadershipSql({ source: '@source', owner: '@owner', until: '@until', now: '@now' })).get({ source, owner, until: now + leaseMs, now }) !== undefined;
  }

  async releaseUpstreamLeadership(source: string, owner: string): Promise<void> {
    this.q(releaseLeadershipSql({ source: '@source', owner: '@owner' })).run({ source, owner });
  }

  async initUpstreamCursor(source: string, cursor: number, now: number): Promise<number> {
    return Number((this.q(initCursorSql({ source: '@source', cursor: '@cursor', now: '@now' })).get({ source, cursor, now }) as Row).cursor_at);
  }

  async saveUpstreamProgress(source: string, owner: string, cursor: number, now: number): Promise<boolean> {
    return this.q(saveProgressSql({ source: '@source', owner: '@owner', cursor: '@cursor', now: '@now' })).run({ source, owner, cursor, now }).changes > 0;
  }

  async saveUpstreamError(source: string, owner: string, error: string, now: number): Promise<void> {
    this.q(saveErrorSql({ source: '@source', owner: '@owner', error: '@error', now: '@now' })).run({ source, owner, error, now });
  }

  async watchedOrcids(orcids: string[]): Promise<string[]> {
    if (!orcids.length) return [];
    return (this.q(watchedOrcidsSql('SELECT value FROM json_each(?)')).all(JSON.stringify(orcids)) as Row[]).map((r) => String(r.orcid));
  }
}

/*
 * Statements shared in meaning with the Postgres store. Parameters are named (@x); the Postgres
 * store has its own $n versions.
 */

/** A newer change: the webhook owes a notification (coalesced into one already owed). */
const OWE_SQL = `UPDATE webhooks SET
    change_seq = change_seq + 1,
    notify_seq = CASE WHEN pending_since IS NULL THEN change_seq + 1 ELSE notify_seq END,
    pending_since = COALESCE(pending_since, @modified),
    due_at = COALESCE(due_at, @due)
  WHERE orcid = @orcid AND created_at <= @modified`;

const REENABLE_SQL = `UPDATE webhooks SET enabled = 1, disabled_reason = NULL, disabled_at = NULL, failed_attempts = 0, failing_since = NULL,
    due_at = CASE WHEN pending_since IS NOT NULL THEN @now ELSE NULL END
  WHERE id = @id`;

/** Success: owe nothing, unless a change landed while the callback was in flight. */
const SUCCESS_SQL = `UPDATE webhooks SET
    lease_owner = NULL, lease_until = NULL, failed_attempts = 0, failing_since = NULL, last_sent_at = @now, last_status = @status,
    pending_since = CASE WHEN change_seq > @claimed THEN (SELECT modified_at FROM records r WHERE r.orcid = webhooks.orcid) ELSE NULL END,
    due_at = CASE WHEN change_seq > @claimed THEN @nextDue ELSE NULL END,
    notify_seq = CASE WHEN change_seq > @claimed THEN change_seq ELSE notify_seq END
  WHERE id = @id AND lease_owner = @owner`;

const RETRY_SQL = `UPDATE webhooks SET
    lease_owner = NULL, lease_until = NULL, failed_attempts = failed_attempts + 1, last_failed_at = @now,
    failing_since = COALESCE(failing_since, @now), last_status = @status, due_at = @retryAt
  WHERE id = @id AND lease_owner = @owner`;

/** Keeps pending_since: a re-enabled webhook still owes what it owed. */
const DISABLE_SQL = `UPDATE webhooks SET
    lease_owner = NULL, lease_until = NULL, failed_attempts = failed_attempts + 1, last_failed_at = @now,
    failing_since = COALESCE(failing_since, @now), last_status = @status, enabled = 0, disabled_reason = @reason, disabled_at = @now, due_at = NULL
  WHERE id = @id AND lease_owner = @owner`;

const COUNTS_SQL = `SELECT count(*) AS total,
    sum(enabled) AS enabled,
    sum(1 - enabled) AS disabled,
    sum(CASE WHEN enabled = 1 AND due_at IS NOT NULL AND failed_attempts = 0 THEN 1 ELSE 0 END) AS pending,
    sum(CASE WHEN enabled = 1 AND due_at IS NOT NULL AND failed_attempts > 0 THEN 1 ELSE 0 END) AS backoff
  FROM webhooks`;
