import pg from 'pg';
import type { ClientConfig, CustomTypesConfig, Notification, PoolClient, PoolConfig } from 'pg';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadMigrations } from '../migrations.ts';
import { attemptStatsSql, toAttemptBuckets } from '../sql/attempt-stats.ts';
import { backlogSql, failuresBySql, headersJson, postgresParam, toBacklog, toFailureCounts } from '../sql/operator-stats.ts';
import {
  deliverySettingsSql, recoverWhereSql, replaySetSql, resealRow, setPayloadModeSql, setSigningSecretSql, STORED_SECRETS_SQL, toDeliverySettings, updateStoredSecretsSql,
} from '../sql/client-features.ts';
import { claimScanSize, DEFAULT_WORKER_STALE_MS } from '../types.ts';
import { claimableSql, dbNowSql, expireLeasesSql, heartbeatSql, pruneWorkersSql } from '../sql/leases.ts';
import { isNewer } from '../sql/records.ts';
import type { ClaimOptions, ClientDeliverySettings, DeliveryBacklog, FailureCount, PayloadMode, ReplayResult, UpstreamState } from '../types.ts';
import {
  claimLeadershipSql, initCursorSql, releaseLeadershipSql, saveErrorSql, saveProgressSql, toUpstreamState, upstreamStateSql, watchedOrcidsSql,
} from '../sql/upstream.ts';
import { STATE_SQL, toAttempt, toClient, toWebhook, toWorker } from '../rows.ts';
import { newWebhookPublicId } from '../../domain/public-id.ts';
import type { SecretBox } from '../../domain/secret-box.ts';
import type {
  ApplyChangesOptions, ApplyChangesResult, AttemptBucket, AttemptRecord, AttemptRow, Claim, ClientRow, NewClient, RecordChange,
  RecordRow, RegisterResult, Store, TokenRow, WebhookCounts, WebhookFilter, WebhookRow, WorkerRow,
} from '../types.ts';

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations');

/** LISTEN/NOTIFY channel; the payload is the notifying session's current_schema(). */
export const WAKE_CHANNEL = 'orcid_webhooks_wake';
/** pg_advisory_xact_lock key serialising migrations across processes (any constant unique to this app). */
const MIGRATION_LOCK_KEY = '7305151201437713';

type Row = Record<string, unknown>;

export interface PostgresStoreOptions {
  /** Seals signing secrets at rest; unset: stored as given (tests, tools). */
  secrets?: SecretBox;
  /** Maximum connections of the pool (default 10). */
  poolSize?: number;
  /**
   * statement_timeout of every pooled connection in ms (default 30000; 0 disables). Also bounds, 2 s
   * later, how long a query waits for a database that does not answer at all.
   */
  statementTimeoutMs?: number;
  /**
   * Errors that happen outside any call: an idle pooled connection or the LISTEN connection
   * lost. They never throw (a lost database must not crash the process); by default they are
   * dropped, since the next query reports the outage to its caller and the listener reconnects.
   */
  onError?: (err: Error) => void;
}

const noop = (): void => undefined;
const INT8_OID = 20;
/** How long a pooled connection may take to open (or to be handed out when the pool is full). */
const CONNECT_TIMEOUT_MS = 10_000;
/** The client-side query timeout is the statement timeout plus this (the server's error should come first). */
const QUERY_TIMEOUT_MARGIN_MS = 2_000;

/** A query exempt from the client-side query timeout: migrations may run long (they run without statement_timeout). */
function untimed(text: string): pg.QueryConfig {
  return { text, query_timeout: 2_147_483_647 } as pg.QueryConfig;
}

/** BIGINT (epoch ms, ids, counts) as numbers rather than strings; they fit in a double. */
const types: CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as CustomTypesConfig['getTypeParser'],
};

/**
 * The connection string pg understands. A `schema` (or `search_path`) URL parameter, which pg
 * itself ignores, becomes `-c search_path=...` in the startup options, so that one database can
 * hold several independent installations (or test runs).
 */
export function pgConnectionString(url: string): string {
  if (!/[?&](schema|search_path)=/.test(url)) return url;
  const u = new URL(url);
  const schema = u.searchParams.get('schema') ?? u.searchParams.get('search_path');
  u.searchParams.delete('schema');
  u.searchParams.delete('search_path');
  if (schema) {
    const escaped = schema.replace(/\\/g, '\\\\').replace(/ /g, '\\ ');
    u.searchParams.set('options', [u.searchParams.get('options'), `-c search_path=${escaped}`].filter(Boolean).join(' '));
  }
  return u.toString();
}

/** Thrown inside a transaction to run it again from the start (a race lost to another writer). */
class RetryTransaction extends Error {}

/** Deadlock and serialisation failures: the transaction did nothing and can simply run again. */
function isRetryable(err: unknown): boolean {
  if (err instanceof RetryTransaction) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return code === '40P01' || code === '40001';
}

export class PostgresStore implements Store {
  readonly dialect = 'postgres' as const;
  readonly pool: pg.Pool;
  private readonly clientConfig: ClientConfig;
  private readonly onError: (err: Error) => void;
  private readonly subscriptions = new Set<WakeupSubscription>();
  private closed = false;

  private readonly secrets: SecretBox | null;

  constructor(url: string, opts: PostgresStoreOptions = {}) {
    this.secrets = opts.secrets ?? null;
    this.onError = opts.onError ?? noop;
    this.clientConfig = { connectionString: pgConnectionString(url), keepAlive: true, types };
    const statementTimeoutMs = opts.statementTimeoutMs ?? 30_000;
    const poolConfig: PoolConfig = {
      ...this.clientConfig,
      max: opts.poolSize ?? 10,
      statement_timeout: statementTimeoutMs,
      // A database that stops answering (network partition, frozen host) neither refuses nor
      // enforces statement_timeout: without client-side limits a connection attempt or a query
      // would wait for TCP to give up (minutes), and every API request and /ready with it.
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      ...(statementTimeoutMs > 0 && { query_timeout: statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS }),
    };
    this.pool = new pg.Pool(poolConfig);
    // An idle pooled connection that dies (server restart, network) is removed by the pool and
    // reported here; without a listener the 'error' event would crash the process.
    this.pool.on('error', (err) => this.onError(err));
  }

  private async query(sql: string, params: unknown[] = []): Promise<Row[]> {
    return (await this.pool.query<Row>(sql, params)).rows;
  }

  /** Runs fn in a transaction on one pooled connection; deadlocks and lost races run it again. */
  private async tx<T>(fn: (c: PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const c = await this.pool.connect();
      // While checked out, the pool does not listen for the connection's errors: a drop between
      // two queries would otherwise be an unhandled 'error' event.
      c.on('error', noop);
      let broken: Error | undefined;
      try {
        await c.query('BEGIN');
        const result = await fn(c);
        await c.query('COMMIT');
        return result;
      } catch (err) {
        await c.query('ROLLBACK').catch((e: Error) => {
          broken = e;
        });
        if (attempt < 5 && isRetryable(err) && !broken) continue;
        throw err;
      } finally {
        // A broken connection keeps the no-op handler: it is being destroyed and may still emit.
        if (!broken) c.off('error', noop);
        c.release(broken);
      }
    }
  }

  async migrate(): Promise<string[]> {
    const applied: string[] = [];
    for (const m of loadMigrations(MIGRATIONS_DIR)) {
      // Each migration in its own transaction, behind one advisory lock: processes starting at
      // once queue here; the name goes in first, so a later one sees it and skips.
      const ran = await this.tx(async (c) => {
        await c.query('SET LOCAL statement_timeout = 0');
        await c.query(untimed(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`));
        await c.query('CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)');
        const ins = await c.query('INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING name', [m.name, Date.now()]);
        if (!ins.rowCount) return false;
        await c.query(untimed(m.sql));
        return true;
      });
      if (ran) applied.push(m.name);
    }
    return applied;
  }

  async pendingMigrations(): Promise<string[]> {
    const [t] = await this.query("SELECT to_regclass('schema_migrations') IS NOT NULL AS present");
    const done = new Set<string>();
    if (t?.present) for (const r of await this.query('SELECT name FROM schema_migrations')) done.add(String(r.name));
    return loadMigrations(MIGRATIONS_DIR).map((m) => m.name).filter((n) => !done.has(n));
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.stop()));
    this.subscriptions.clear();
    await this.pool.end();
  }

  async createClient(c: NewClient): Promise<ClientRow> {
    await this.query('INSERT INTO clients (id, name, secret_hash, premium, created_at) VALUES ($1, $2, $3, $4, $5)',
      [c.id, c.name, c.secretHash, c.premium ? 1 : 0, c.createdAt]);
    return { ...c, revokedAt: null };
  }

  async getClient(id: string): Promise<ClientRow | null> {
    const [r] = await this.query('SELECT * FROM clients WHERE id = $1', [id]);
    return r ? toClient(r) : null;
  }

  async listClients(): Promise<ClientRow[]> {
    return (await this.query('SELECT * FROM clients ORDER BY created_at, id')).map(toClient);
  }

  async revokeClient(id: string, now: number): Promise<boolean> {
    return this.tx(async (c) => {
      const res = await c.query('UPDATE clients SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2', [now, id]);
      await c.query('DELETE FROM tokens WHERE client_id = $1', [id]);
      return (res.rowCount ?? 0) > 0;
    });
  }

  async createToken(t: TokenRow): Promise<void> {
    await this.query('INSERT INTO tokens (token_hash, client_id, scope, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)',
      [t.tokenHash, t.clientId, t.scope, t.createdAt, t.expiresAt]);
  }

  async findToken(tokenHash: string): Promise<{ token: TokenRow; client: ClientRow } | null> {
    const [r] = await this.query(`SELECT t.token_hash, t.client_id, t.scope, t.created_at AS t_created, t.expires_at, c.*
      FROM tokens t JOIN clients c ON c.id = t.client_id WHERE t.token_hash = $1`, [tokenHash]);
    if (!r) return null;
    return {
      token: { tokenHash: String(r.token_hash), clientId: String(r.client_id), scope: String(r.scope), createdAt: Number(r.t_created), expiresAt: Number(r.expires_at) },
      client: toClient(r),
    };
  }

  async getRecord(orcid: string): Promise<RecordRow | null> {
    const [r] = await this.query('SELECT * FROM records WHERE orcid = $1', [orcid]);
    return r ? toRecord(r) : null;
  }

  async addRecords(orcids: string[], now: number): Promise<number> {
    if (orcids.length === 0) return 0;
    // ON CONFLICT DO NOTHING also skips duplicates within the array: each orcid counts once.
    const res = await this.pool.query(`INSERT INTO records (orcid, modified_at, created_at)
      SELECT o, $2, $2 FROM unnest($1::text[]) WITH ORDINALITY AS u(o, n) ORDER BY n
      ON CONFLICT (orcid) DO NOTHING`, [orcids, now]);
    return res.rowCount ?? 0;
  }

  async listRecords(opts: { limit: number; afterOrcid?: string }): Promise<RecordRow[]> {
    return (await this.query('SELECT * FROM records WHERE orcid > $1 ORDER BY orcid LIMIT $2', [opts.afterOrcid ?? '', opts.limit])).map(toRecord);
  }

  async countRecords(): Promise<number> {
    const [r] = await this.query('SELECT count(*) AS n FROM records');
    return Number(r?.n ?? 0);
  }

  /*
   * Set-based version of the SQLite loop, with identical results (counts, change_seq and all):
   *  1. lock the batch's existing records (orcid order, so concurrent batches cannot deadlock);
   *  2. replay the batch in JS against those modified times, exactly as SQLite applies it change by
   *     change: this settles created/changed/ignored, touches (max(given, current + 1)), and
   *     duplicates of one orcid within the batch, each judged against the value the previous one
   *     left. It yields the records to insert, the records to update (final value) and the list of
   *     effective changes (orcid, modified), strictly increasing per orcid;
   *  3. one statement inserts, updates, and applies OWE_SQL once per webhook for all its effective
   *     changes: OWE_SQL applied k times (k = the webhook's changes with created_at <= modified)
   *     adds k to change_seq, sets notify_seq from the first one when nothing was owed, and keeps
   *     the first (smallest) modified as pending_since. webhooksNotified is the sum of k, as SQLite
   *     counts one per webhook per change.
   * A record created concurrently by another transaction after step 1 makes the insert come up
   * short: the transaction then runs again and sees it.
   */
  async applyChanges(changes: RecordChange[], opts: ApplyChangesOptions): Promise<ApplyChangesResult> {
    if (changes.length === 0) return { created: 0, changed: 0, ignored: 0, webhooksNotified: 0 };
    const orcids = [...new Set(changes.map((c) => c.orcid))];
    return this.tx(async (c) => {
      const locked = await c.query<Row>('SELECT orcid, modified_at, placeholder FROM records WHERE orcid = ANY($1::text[]) ORDER BY orcid FOR NO KEY UPDATE', [orcids]);
      const current = new Map(locked.rows.map((r) => [String(r.orcid), Number(r.modified_at)]));
      // Placeholders (open records mode) until their first change in this batch.
      const placeholders = new Set(locked.rows.filter((r) => Number(r.placeholder) === 1).map((r) => String(r.orcid)));
      const result: ApplyChangesResult = { created: 0, changed: 0, ignored: 0, webhooksNotified: 0 };
      const inserts = new Map<string, number>();
      const updates = new Map<string, number>();
      const evOrcid: string[] = [];
      const evModified: number[] = [];
      for (const ch of changes) {
        const cur = current.get(ch.orcid);
        if (cur === undefined) {
          if (opts.create) {
            current.set(ch.orcid, ch.modifiedAt);
            inserts.set(ch.orcid, ch.modifiedAt);
            result.created++;
          } else result.ignored++;
          continue;
        }
        const modified = ch.touch ? Math.max(ch.modifiedAt, cur + 1) : ch.modifiedAt;
        if (!isNewer(modified, cur, placeholders.has(ch.orcid))) {
          result.ignored++;
          continue;
        }
        current.set(ch.orcid, modified);
        placeholders.delete(ch.orcid);
        (inserts.has(ch.orcid) ? inserts : updates).set(ch.orcid, modified);
        result.changed++;
        evOrcid.push(ch.orcid);
        evModified.push(modified);
      }
      if (inserts.size === 0 && updates.size === 0) return result;
      const [r] = (await c.query<Row>(`WITH
        ins AS (
          INSERT INTO records (orcid, modified_at, created_at)
          SELECT orcid, modified, $5::bigint FROM unnest($1::text[], $2::bigint[]) AS n(orcid, modified)
          ON CONFLICT (orcid) DO NOTHING
          RETURNING 1),
        upd AS (
          UPDATE records r SET modified_at = u.modified, placeholder = 0
          FROM unnest($3::text[], $4::bigint[]) AS u(orcid, modified)
          WHERE r.orcid = u.orcid
          RETURNING 1),
        hits AS (
          SELECT w.id, count(*) AS k, min(e.modified) AS first_modified
          FROM unnest($6::text[], $7::bigint[]) AS e(orcid, modified)
          JOIN webhooks w ON w.orcid = e.orcid AND w.created_at <= e.modified
          GROUP BY w.id),
        owe AS (
          UPDATE webhooks w SET
            change_seq = w.change_seq + h.k,
            notify_seq = CASE WHEN w.pending_since IS NULL THEN w.change_seq + 1 ELSE w.notify_seq END,
            pending_since = COALESCE(w.pending_since, h.first_modified),
            due_at = COALESCE(w.due_at, $8::bigint)
          FROM hits h WHERE w.id = h.id
          RETURNING h.k)
        SELECT (SELECT count(*) FROM ins) AS inserted, (SELECT count(*) FROM upd) AS updated,
          (SELECT COALESCE(sum(k), 0) FROM owe) AS notified`,
      [[...inserts.keys()], [...inserts.values()], [...updates.keys()], [...updates.values()], opts.now,
        evOrcid, evModified, opts.now + opts.notifyDelayMs])).rows;
      if (Number(r?.inserted) !== inserts.size) throw new RetryTransaction('a record was created concurrently');
      result.webhooksNotified = Number(r?.notified ?? 0);
      if (result.webhooksNotified > 0) await notify(c);
      return result;
    });
  }

  async registerWebhook(input: { clientId: string; orcid: string; url: string; host: string; now: number; maxPerClient?: number; createRecord?: boolean }): Promise<RegisterResult> {
    for (let round = 0; round < 5; round++) {
      const [r] = await this.pool.query<Row>({
        name: 'register-webhook', text: REGISTER_SQL,
        values: [input.clientId, input.orcid, input.url, input.host, input.now, newWebhookPublicId(), input.maxPerClient ?? null, input.createRecord === true],
      }).then((res) => res.rows);
      if (r?.kind === 'reenabled') {
        if (r.due_at !== null) await notify(this.pool);
        return { outcome: 'exists', webhook: toWebhook(r), reenabled: true };
      }
      if (r?.kind === 'existing') return { outcome: 'exists', webhook: toWebhook(r), reenabled: false };
      if (r?.kind === 'created') return { outcome: 'created', webhook: toWebhook(r) };
      if (!r?.took) {
        if (!(await this.query('SELECT 1 FROM clients WHERE id = $1', [input.clientId])).length) throw new Error(`No client with id ${input.clientId}`);
        return { outcome: 'limit' };
      }
      // The place is given back: the record does not exist, or a concurrent registration of the same
      // webhook inserted it first (then go round and answer 'exists').
      await this.pool.query('UPDATE clients SET webhook_count = webhook_count - 1 WHERE id = $1', [input.clientId]);
      if (!r.has_record) throw new Error(`No record ${input.orcid}`);
    }
    throw new Error('webhook registration kept racing');
  }

  async enableWebhook(id: number, now: number): Promise<{ webhook: WebhookRow; reenabled: boolean } | null> {
    return this.tx(async (c) => {
      const re = (await c.query<Row>(`UPDATE webhooks SET enabled = 1, disabled_reason = NULL, disabled_at = NULL, failed_attempts = 0, failing_since = NULL,
          due_at = CASE WHEN pending_since IS NOT NULL THEN $2::bigint ELSE NULL END
        WHERE id = $1 AND enabled = 0 RETURNING *`, [id, now])).rows[0];
      if (re) {
        if (re.due_at !== null) await notify(c);
        return { webhook: toWebhook(re), reenabled: true };
      }
      const existing = (await c.query<Row>('SELECT * FROM webhooks WHERE id = $1', [id])).rows[0];
      return existing ? { webhook: toWebhook(existing), reenabled: false } : null;
    });
  }

  async deleteWebhook(clientId: string, orcid: string, url: string): Promise<boolean> {
    const res = await this.pool.query(`WITH gone AS (DELETE FROM webhooks WHERE client_id = $1 AND orcid = $2 AND url = $3 RETURNING client_id)
      UPDATE clients SET webhook_count = webhook_count - 1 WHERE id IN (SELECT client_id FROM gone)`, [clientId, orcid, url]);
    return (res.rowCount ?? 0) > 0;
  }

  async findWebhook(clientId: string, orcid: string, url: string): Promise<WebhookRow | null> {
    const [r] = await this.query('SELECT * FROM webhooks WHERE client_id = $1 AND orcid = $2 AND url = $3', [clientId, orcid, url]);
    return r ? toWebhook(r) : null;
  }

  async getWebhook(id: number): Promise<WebhookRow | null> {
    const [r] = await this.query('SELECT * FROM webhooks WHERE id = $1', [id]);
    return r ? toWebhook(r) : null;
  }

  async getWebhookByPublicId(publicId: string): Promise<WebhookRow | null> {
    const [r] = await this.query('SELECT * FROM webhooks WHERE public_id = $1', [publicId]);
    return r ? toWebhook(r) : null;
  }

  async listWebhooks(f: WebhookFilter): Promise<WebhookRow[]> {
    const params: unknown[] = [];
    const p = (v: unknown): string => {
      params.push(v);
      return `$${params.length}`;
    };
    const where: string[] = [`id > ${p(f.afterId ?? 0)}`];
    if (f.clientId !== undefined) where.push(`client_id = ${p(f.clientId)}`);
    if (f.orcid !== undefined) where.push(`orcid = ${p(f.orcid)}`);
    if (f.state !== undefined) where.push(STATE_SQL[f.state]);
    if (f.search) {
      const s = p(f.search);
      where.push(`(orcid = ${s} OR client_id = ${s} OR strpos(lower(url), lower(${s})) > 0)`);
    }
    const sql = `SELECT * FROM webhooks WHERE ${where.join(' AND ')} ORDER BY id LIMIT ${p(f.limit)}`;
    return (await this.query(sql, params)).map(toWebhook);
  }

  async countWebhooks(): Promise<WebhookCounts> {
    const [r] = await this.query(`SELECT count(*) AS total,
        count(*) FILTER (WHERE enabled = 1) AS enabled,
        count(*) FILTER (WHERE enabled = 0) AS disabled,
        count(*) FILTER (WHERE enabled = 1 AND due_at IS NOT NULL AND failed_attempts = 0) AS pending,
        count(*) FILTER (WHERE enabled = 1 AND due_at IS NOT NULL AND failed_attempts > 0) AS backoff
      FROM webhooks`);
    return { total: Number(r?.total ?? 0), enabled: Number(r?.enabled ?? 0), disabled: Number(r?.disabled ?? 0), pending: Number(r?.pending ?? 0), backoff: Number(r?.backoff ?? 0) };
  }

  async getClientDeliverySettings(clientId: string): Promise<ClientDeliverySettings | null> {
    const [r] = await this.query(deliverySettingsSql('$1'), [clientId]);
    return r ? toDeliverySettings(r, (v) => this.secrets?.open(v) ?? v) : null;
  }

  async setSigningSecret(clientId: string, secret: string | null, opts: { previousUntil: number | null; now: number }): Promise<boolean> {
    const sql = setSigningSecretSql({ clientId: '$1::text', secret: '$2::text', keepUntil: '$3::bigint', now: '$4::bigint' });
    const stored = secret === null || !this.secrets ? secret : this.secrets.seal(secret);
    return ((await this.pool.query(sql, [clientId, stored, opts.previousUntil, opts.now])).rowCount ?? 0) > 0;
  }

  async resealSigningSecrets(): Promise<number> {
    const box = this.secrets;
    if (!box) return 0;
    return this.tx(async (c) => {
      let n = 0;
      const update = updateStoredSecretsSql({ clientId: '$1::text', secret: '$2::text', previous: '$3::text' });
      for (const r of (await c.query<Row>(`${STORED_SECRETS_SQL} FOR UPDATE`)).rows) {
        const next = resealRow(r, box);
        if (next) n += (await c.query(update, [r.client_id, next.secret, next.previous])).rowCount ?? 0;
      }
      return n;
    });
  }

  async setPayloadMode(clientId: string, mode: PayloadMode, now: number): Promise<boolean> {
    const sql = setPayloadModeSql({ clientId: '$1::text', mode: '$2::text', now: '$3::bigint' });
    return ((await this.pool.query(sql, [clientId, mode, now])).rowCount ?? 0) > 0;
  }

  async replayWebhook(id: number, now: number): Promise<ReplayResult | null> {
    return this.tx(async (c): Promise<ReplayResult | null> => {
      const existing = (await c.query<Row>('SELECT enabled FROM webhooks WHERE id = $1 FOR NO KEY UPDATE', [id])).rows[0];
      if (!existing) return null;
      const row = (await c.query<Row>(`UPDATE webhooks SET ${replaySetSql('$2::bigint')} WHERE id = $1 RETURNING *`, [id, now])).rows[0]!;
      await notify(c);
      return { webhook: toWebhook(row), reenabled: !Number(existing.enabled) };
    });
  }

  async recoverWebhooks(clientId: string, since: number, now: number): Promise<number> {
    return this.tx(async (c) => {
      const res = await c.query(`UPDATE webhooks SET ${replaySetSql('$3::bigint')} WHERE ${recoverWhereSql({ clientId: '$1::text', since: '$2::bigint' })}`, [clientId, since, now]);
      const n = res.rowCount ?? 0;
      if (n > 0) await notify(c);
      return n;
    });
  }

  async claimDue(o: ClaimOptions): Promise<Claim[]> {
    if (o.limit <= 0) return [];
    // One statement: SKIP LOCKED lets concurrent claimers pass each other's rows; the CTE keeps
    // the previous lease_until, so "reclaimed" says whether a dead worker's lease was taken over.
    // With per-host and per-client limits the candidates are ranked within their host and their
    // client (window functions cannot share a SELECT with FOR UPDATE, hence two steps); candidates
    // not picked stay unleased. The lease is stamped with the database's clock.
    const rows = await this.query(`WITH cand AS MATERIALIZED (
        SELECT id, host, client_id, due_at, lease_until AS prev FROM webhooks
        WHERE enabled = 1 AND due_at IS NOT NULL AND due_at <= $1
          AND ${claimableSql('postgres', '$10::bigint')}
          AND host <> ALL($2::text[])
          AND client_id <> ALL($11::text[])
        -- id breaks ties (a bulk change makes thousands due at one instant): rows taken over from a
        -- dead worker, claimed in id order before, come first instead of behind the whole backlog.
        ORDER BY due_at, id LIMIT $6
        FOR UPDATE SKIP LOCKED),
      c AS (
        SELECT id, prev FROM (
          SELECT id, prev, host, client_id, due_at,
            row_number() OVER (PARTITION BY host ORDER BY due_at, id) AS rank_in_host,
            row_number() OVER (PARTITION BY client_id ORDER BY due_at, id) AS rank_in_client
          FROM cand) ranked
        WHERE rank_in_host <= COALESCE((SELECT s.free FROM unnest($8::text[], $9::int[]) AS s(host, free) WHERE s.host = ranked.host), $7)
          AND rank_in_client <= COALESCE((SELECT s.free FROM unnest($13::text[], $14::int[]) AS s(client, free) WHERE s.client = ranked.client_id), $12)
        ORDER BY due_at, id LIMIT $3)
      UPDATE webhooks w SET lease_owner = $4, lease_worker = $15, lease_until = ${dbNowSql('postgres')} + $5::bigint
      FROM c WHERE w.id = c.id
      RETURNING w.*, (c.prev IS NOT NULL) AS reclaimed`, [o.now, o.excludeHosts, o.limit, o.owner, o.leaseMs,
      claimScanSize(o.limit, o.perHostLimit, o.perClientLimit), o.perHostLimit ?? o.limit,
      Object.keys(o.hostSlots ?? {}), Object.values(o.hostSlots ?? {}), o.workerStaleMs ?? DEFAULT_WORKER_STALE_MS,
      o.excludeClients ?? [], o.perClientLimit ?? o.limit, Object.keys(o.clientSlots ?? {}), Object.values(o.clientSlots ?? {}),
      o.worker ?? null]);
    return rows
      .map((r) => ({ webhook: toWebhook(r), reclaimed: Boolean(r.reclaimed) }))
      .sort((a, b) => (a.webhook.dueAt ?? 0) - (b.webhook.dueAt ?? 0) || a.webhook.id - b.webhook.id);
  }

  async heartbeat(worker: string): Promise<void> {
    await this.query(heartbeatSql('postgres', '$1::text'), [worker]);
  }

  async retireWorker(worker: string): Promise<void> {
    await this.query('DELETE FROM workers WHERE id = $1', [worker]);
    await this.query(pruneWorkersSql('postgres'));
  }

  async listWorkers(): Promise<WorkerRow[]> {
    return (await this.query('SELECT * FROM workers ORDER BY started_at, id')).map(toWorker);
  }

  async expireLeases(workers: string[] | { allBut: string }): Promise<number> {
    const res = Array.isArray(workers)
      ? await this.pool.query(expireLeasesSql('= ANY($1::text[])'), [workers])
      : await this.pool.query(expireLeasesSql('IS DISTINCT FROM $1::text'), [workers.allBut]);
    return res.rowCount ?? 0;
  }

  async releaseClaims(owner: string, ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.query('UPDATE webhooks SET lease_owner = NULL, lease_until = NULL WHERE id = ANY($1::bigint[]) AND lease_owner = $2', [ids, owner]);
  }

  /*
   * Same effect as SQLite's per-attempt SUCCESS_SQL / RETRY_SQL / DISABLE_SQL, batched per kind.
   * Each outcome is guarded by lease_owner = owner and clears the lease, so of several completions
   * for one webhook only the first from its owner applies: later ones (same id and owner) are
   * dropped before batching, which keeps one source row per webhook and owner in each UPDATE.
   * Every attempt is recorded if its webhook still exists (FOR KEY SHARE holds off a concurrent
   * delete between the check and the insert).
   */
  async completeAttempts(attempts: AttemptRecord[]): Promise<void> {
    if (attempts.length === 0) return;
    const success = columns(6);
    const retry = columns(5);
    const disable = columns(5);
    const seen = new Set<string>();
    const ins = columns(10);
    for (const a of attempts) {
      const duration = Math.round(a.durationMs);
      const headers = headersJson(a);
      ins.push(a.webhookId, a.notificationId, a.startedAt, duration, a.statusCode, a.error, a.responseSnippet, a.latencyMs === null ? null : Math.round(a.latencyMs),
        headers.requestHeaders, headers.responseHeaders);
      const key = `${a.webhookId}\u0000${a.owner}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const status = a.statusCode !== null ? String(a.statusCode) : a.error;
      const now = a.startedAt + duration;
      if (a.outcome.kind === 'success') success.push(a.webhookId, a.owner, now, status, a.claimedSeq, a.nextDueAt);
      else if (a.outcome.kind === 'retry') retry.push(a.webhookId, a.owner, now, status, a.outcome.retryAt);
      else disable.push(a.webhookId, a.owner, now, status, a.outcome.reason);
    }
    await this.tx(async (c) => {
      if (success.size) {
        await c.query(`UPDATE webhooks w SET
            lease_owner = NULL, lease_until = NULL, failed_attempts = 0, failing_since = NULL, last_sent_at = a.now, last_status = a.status,
            pending_since = CASE WHEN w.change_seq > a.claimed THEN (SELECT r.modified_at FROM records r WHERE r.orcid = w.orcid) ELSE NULL END,
            due_at = CASE WHEN w.change_seq > a.claimed THEN a.next_due ELSE NULL END,
            notify_seq = CASE WHEN w.change_seq > a.claimed THEN w.change_seq ELSE w.notify_seq END
          FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[]) AS a(id, owner, now, status, claimed, next_due)
          WHERE w.id = a.id AND w.lease_owner = a.owner`, success.cols);
      }
      if (retry.size) {
        await c.query(`UPDATE webhooks w SET
            lease_owner = NULL, lease_until = NULL, failed_attempts = w.failed_attempts + 1, last_failed_at = a.now,
            failing_since = COALESCE(w.failing_since, a.now), last_status = a.status, due_at = a.retry_at
          FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bigint[]) AS a(id, owner, now, status, retry_at)
          WHERE w.id = a.id AND w.lease_owner = a.owner`, retry.cols);
      }
      if (disable.size) {
        // Keeps pending_since: a re-enabled webhook still owes what it owed.
        await c.query(`UPDATE webhooks w SET
            lease_owner = NULL, lease_until = NULL, failed_attempts = w.failed_attempts + 1, last_failed_at = a.now,
            failing_since = COALESCE(w.failing_since, a.now), last_status = a.status, enabled = 0, disabled_reason = a.reason, disabled_at = a.now, due_at = NULL
          FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[]) AS a(id, owner, now, status, reason)
          WHERE w.id = a.id AND w.lease_owner = a.owner`, disable.cols);
      }
      await c.query(`INSERT INTO attempts (webhook_id, notification_id, at, duration_ms, status_code, error, response_snippet, latency_ms, request_headers, response_headers)
        SELECT a.webhook_id, a.notification_id, a.at, a.duration_ms, a.status_code, a.error, a.snippet, a.latency_ms, a.request_headers, a.response_headers
        FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::int[], $5::int[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[])
          WITH ORDINALITY AS a(webhook_id, notification_id, at, duration_ms, status_code, error, snippet, latency_ms, request_headers, response_headers, n)
        WHERE EXISTS (SELECT 1 FROM webhooks w WHERE w.id = a.webhook_id FOR KEY SHARE)
        ORDER BY a.n`, ins.cols);
    });
  }

  async nextDueAt(): Promise<number | null> {
    const [r] = await this.query('SELECT min(GREATEST(due_at, COALESCE(lease_until, 0))) AS t FROM webhooks WHERE enabled = 1 AND due_at IS NOT NULL');
    return r?.t === null || r?.t === undefined ? null : Number(r.t);
  }

  async subscribeWakeups(listener: () => void): Promise<() => Promise<void>> {
    if (this.closed) throw new Error('store is closed');
    // A connection attempt that hangs (unreachable host) gives up and is retried with backoff.
    const sub = new WakeupSubscription({ ...this.clientConfig, connectionTimeoutMillis: 10_000 }, listener, this.onError);
    this.subscriptions.add(sub);
    await sub.start();
    return async () => {
      this.subscriptions.delete(sub);
      await sub.stop();
    };
  }

  async listAttempts(webhookId: number, limit: number): Promise<AttemptRow[]> {
    return (await this.query('SELECT * FROM attempts WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2', [webhookId, limit])).map(toAttempt);
  }

  async attemptStats(since: number, bucketMs: number): Promise<AttemptBucket[]> {
    return toAttemptBuckets(await this.query(attemptStatsSql('postgres'), [since, bucketMs]), since, bucketMs);
  }

  async deliveryBacklog(now: number): Promise<DeliveryBacklog> {
    return toBacklog((await this.query(backlogSql(postgresParam), [now]))[0]);
  }

  async failureBreakdown(since: number, limit: number): Promise<{ byHost: FailureCount[]; byClient: FailureCount[] }> {
    const [byHost, byClient] = await Promise.all([
      this.query(failuresBySql('host', postgresParam), [since, limit]),
      this.query(failuresBySql('client_id', postgresParam), [since, limit]),
    ]);
    return { byHost: toFailureCounts(byHost), byClient: toFailureCounts(byClient) };
  }

  async pruneAttempts(before: number): Promise<number> {
    return (await this.pool.query('DELETE FROM attempts WHERE at < $1', [before])).rowCount ?? 0;
  }

  async upstreamState(source: string): Promise<UpstreamState | null> {
    const [r] = await this.query(upstreamStateSql('$1'), [source]);
    return r ? toUpstreamState(r) : null;
  }

  async claimUpstreamLeadership(source: string, owner: string, now: number, leaseMs: number): Promise<boolean> {
    const rows = await this.query(claimLeadershipSql({ source: '$1', owner: '$2', until: '$3::bigint', now: '$4::bigint' }), [source, owner, now + leaseMs, now]);
    return rows.length > 0;
  }

  async releaseUpstreamLeadership(source: string, owner: string): Promise<void> {
    await this.query(releaseLeadershipSql({ source: '$1', owner: '$2' }), [source, owner]);
  }

  async initUpstreamCursor(source: string, cursor: number, now: number): Promise<number> {
    const [r] = await this.query(initCursorSql({ source: '$1', cursor: '$2::bigint', now: '$3::bigint' }), [source, cursor, now]);
    return Number(r!.cursor_at);
  }

  async saveUpstreamProgress(source: string, owner: string, cursor: number, now: number): Promise<boolean> {
    const res = await this.pool.query(saveProgressSql({ source: '$1', owner: '$2', cursor: '$3::bigint', now: '$4::bigint' }), [source, owner, cursor, now]);
    return (res.rowCount ?? 0) > 0;
  }

  async saveUpstreamError(source: string, owner: string, error: string, now: number): Promise<void> {
    await this.query(saveErrorSql({ source: '$1', owner: '$2', error: '$3', now: '$4::bigint' }), [source, owner, error, now]);
  }

  async watchedOrcids(orcids: string[]): Promise<string[]> {
    if (!orcids.length) return [];
    return (await this.query(watchedOrcidsSql('SELECT unnest($1::text[])'), [orcids])).map((r) => String(r.orcid));
  }
}

function toRecord(r: Row): RecordRow {
  return { orcid: String(r.orcid), modifiedAt: Number(r.modified_at), createdAt: Number(r.created_at) };
}

/**
 * A registration in one statement and one round trip ($1 client, $2 iD, $3 url, $4 host, $5 now,
 * $6 public id, $7 cap or null, $8 create the record). Found: re-enabled when disabled (no lock on
 * the client). New: the client's place is taken by the UPDATE that checks the cap (its row lock
 * lasts this statement only), the record is locked FOR SHARE so that a change being applied to it
 * (FOR NO KEY UPDATE) either sees this webhook or committed before it, then the row is inserted.
 * No row: the cap was reached (took = false) or a concurrent registration of the same webhook won
 * (took = true: the caller gives the place back and asks again).
 */
const REGISTER_SQL = `WITH existing AS (
    SELECT * FROM webhooks WHERE client_id = $1 AND orcid = $2 AND url = $3
  ), reenabled AS (
    UPDATE webhooks w SET enabled = 1, disabled_reason = NULL, disabled_at = NULL, failed_attempts = 0, failing_since = NULL,
      due_at = CASE WHEN w.pending_since IS NOT NULL THEN $5::bigint ELSE NULL END
    FROM existing e WHERE w.id = e.id AND e.enabled = 0 RETURNING w.*
  ), place AS (
    UPDATE clients SET webhook_count = webhook_count + 1
    WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM existing) AND ($7::int IS NULL OR webhook_count < $7::int) RETURNING id
  ), placeholder AS (
    INSERT INTO records (orcid, modified_at, created_at, placeholder) SELECT $2, $5::bigint, $5::bigint, 1 FROM place WHERE $8::boolean
    ON CONFLICT (orcid) DO NOTHING RETURNING orcid
  ), record AS (
    SELECT orcid FROM records WHERE orcid = $2 FOR SHARE
  ), created AS (
    INSERT INTO webhooks (client_id, orcid, url, host, created_at, public_id)
    SELECT $1, $2, $3, $4, $5::bigint, $6 FROM place
    WHERE EXISTS (SELECT 1 FROM record) OR EXISTS (SELECT 1 FROM placeholder)
    ON CONFLICT (client_id, orcid, url) DO NOTHING RETURNING *
  ), found AS (
    SELECT 'reenabled' AS kind, * FROM reenabled
    UNION ALL SELECT 'existing', * FROM existing WHERE enabled = 1
    UNION ALL SELECT 'created', * FROM created
  )
  SELECT EXISTS (SELECT 1 FROM place) AS took, EXISTS (SELECT 1 FROM record) OR EXISTS (SELECT 1 FROM placeholder) AS has_record, found.* FROM (VALUES (1)) AS one LEFT JOIN found ON true`;

/** Wakes every listener on this schema: when the transaction commits (nothing if it rolls back), or at once on the pool. */
async function notify(c: PoolClient | pg.Pool): Promise<void> {
  await c.query('SELECT pg_notify($1, current_schema())', [WAKE_CHANNEL]);
}

/** Parallel arrays, one per column, for `unnest($1::t[], $2::t[], ...)`. */
function columns(n: number): { cols: unknown[][]; size: number; push(...values: unknown[]): void } {
  const cols: unknown[][] = Array.from({ length: n }, () => []);
  return {
    cols,
    get size() {
      return cols[0]?.length ?? 0;
    },
    push(...values: unknown[]) {
      values.forEach((v, i) => cols[i]?.push(v));
    },
  };
}

/**
 * One LISTEN connection of its own (a pooled connection would be handed to queries). A lost
 * connection is replaced with backoff (100 ms doubling to 10 s, with jitter); after a reconnect
 * the listener is called once, since notifications sent meanwhile were missed.
 */
class WakeupSubscription {
  private client: pg.Client | null = null;
  private schema: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private delayMs = 0;
  private stopped = false;

  constructor(
    private readonly config: ClientConfig,
    private readonly listener: () => void,
    private readonly onError: (err: Error) => void,
  ) {}

  /** Connects; if the database cannot be reached now, keeps trying in the background. */
  async start(): Promise<void> {
    await this.connect(false);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const c = this.client;
    this.client = null;
    if (c) await c.end().catch(noop);
  }

  private async connect(reconnect: boolean): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client(this.config);
    this.client = client;
    const lost = (err?: Error): void => {
      if (err && !this.stopped) this.onError(err);
      if (this.client !== client) return; // already replaced, or stopped
      this.client = null;
      client.end().catch(noop);
      this.scheduleReconnect();
    };
    // Stays attached for the client's whole life: errors after it was given up are ignored.
    client.on('error', (err) => lost(err));
    client.on('end', () => lost());
    client.on('notification', (n: Notification) => {
      if (this.client !== client || n.channel !== WAKE_CHANNEL) return;
      // The payload names the notifying schema: installations sharing a database stay apart.
      if (n.payload && this.schema !== null && n.payload !== this.schema) return;
      this.call();
    });
    try {
      await client.connect();
      const { rows } = await client.query<{ s: string | null }>('SELECT current_schema() AS s');
      this.schema = rows[0]?.s ?? null;
      await client.query(`LISTEN ${WAKE_CHANNEL}`);
    } catch (err) {
      lost(err as Error);
      return;
    }
    if (this.client !== client) return;
    this.delayMs = 0;
    if (reconnect) this.call();
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.timer) return;
    this.delayMs = this.delayMs ? Math.min(this.delayMs * 2, 10_000) : 100;
    const delay = Math.round(this.delayMs * (0.75 + Math.random() * 0.5));
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.connect(true);
    }, delay);
    this.timer.unref();
  }

  private call(): void {
    try {
      this.listener();
    } catch (err) {
      this.onError(err as Error);
    }
  }
}
