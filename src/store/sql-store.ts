import { stateCountsSql, toWebhookCounts } from '../domain/webhook-state.ts';
import type { SecretBox } from '../domain/secret-box.ts';
import { num, type Dialect, type Params, type Row } from './dialect.ts';
import { loadMigrations } from './migrations.ts';
import * as attempts from './sql/attempts.ts';
import * as claims from './sql/claims.ts';
import * as clients from './sql/clients.ts';
import * as features from './sql/client-features.ts';
import * as records from './sql/records.ts';
import * as upstream from './sql/upstream.ts';
import * as webhooks from './sql/webhooks.ts';
import { toWebhook } from './sql/webhooks.ts';
import {
  DEFAULT_WORKER_STALE_MS, type ApplyChangesOptions, type ApplyChangesResult, type AttemptRecord, type Claim, type ClaimOptions, type ClientDeliverySettings, type FailureCount, type NewClient,
  type NewWebhook, type PayloadMode, type RecordChange, type RegisterResult, type ReplayResult, type TokenRow, type WebhookFilter,
} from './types.ts';

/** Runs SQL of store/sql/ (named `@` parameters) on one connection or in one transaction. */
export interface Conn {
  /** `name`: a hot statement the database may prepare once per connection (PostgreSQL: parsed and planned once); others ignore it. */
  all(sql: string, params?: Params, name?: string): Promise<Row[]>;
  /** Rows changed. */
  run(sql: string, params?: Params): Promise<number>;
}

/**
 * Every store operation written once over a Conn, and documented here once (the Store type is its
 * public part). A database's store is a driver (connection, transactions, wake-ups, dialect) plus
 * the few operations whose algorithm differs: migrating, applying changes, registering, completing.
 * Every operation is async so that SQLite (synchronous underneath) and PostgreSQL look the same.
 */
export abstract class SqlStore {
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

  /** Applies pending migrations; returns the names of those applied now. */
  abstract migrate(): Promise<string[]>;
  /** Names of migrations the code knows that the database has not applied. */
  async pendingMigrations(): Promise<string[]> {
    return (await this.migrationState()).pending;
  }
  /**
   * From one read of schema_migrations: the migrations the code knows that the database has not
   * applied (pending), and those it applied that this code does not know (unknown: a newer version
   * migrated it, and this one must not run on a schema it does not know; migrate() refuses, /ready
   * says so).
   */
  async migrationState(): Promise<{ pending: string[]; unknown: string[] }> {
    const applied = (await this.conn.all(this.d.tableExists('schema_migrations'))).length
      ? (await this.conn.all('SELECT name FROM schema_migrations')).map((r) => String(r.name)) : [];
    const known = loadMigrations(this.d.name).map((m) => m.name);
    const done = new Set(applied);
    const knownSet = new Set(known);
    return { pending: known.filter((n) => !done.has(n)), unknown: applied.filter((n) => !knownSet.has(n)) };
  }
  /** Throws when the database was migrated by a newer version (see migrationState). */
  protected async refuseNewerSchema(): Promise<void> {
    const { unknown } = await this.migrationState();
    if (unknown.length) {
      throw new Error(`The database was migrated by a newer version of orcid-webhooks (migrations ${unknown.join(', ')} are unknown to this one): run that version, or this one on a database of its own`);
    }
  }
  abstract close(): Promise<void>;
  /**
   * Applies record changes in one transaction and marks the webhooks that now owe a notification:
   * only webhooks created no later than the change, coalesced with any notification already owed.
   */
  abstract applyChanges(changes: RecordChange[], opts: ApplyChangesOptions): Promise<ApplyChangesResult>;
  /**
   * Registers a webhook for a client. An existing one answers 'exists'; if it was disabled it is
   * re-enabled, its failure count reset, and any notification it still owed becomes due now.
   * maxPerClient (when set) refuses a new webhook beyond the cap. A missing record answers
   * 'no-record', or with createRecord (open records mode) is created with the webhook, only when the
   * webhook is created.
   */
  abstract registerWebhook(input: NewWebhook): Promise<RegisterResult>;
  /** Records attempts and applies their outcomes in one transaction. */
  abstract completeAttempts(attempts: AttemptRecord[]): Promise<void>;
  /**
   * Calls listener when notifications may have become due (record changes, re-enabled webhooks):
   * in-process for SQLite, LISTEN/NOTIFY across processes for PostgreSQL. Returns an unsubscribe.
   */
  abstract subscribeWakeups(listener: () => void): Promise<() => Promise<void>>;

  /* A statement, its parameters and the mapping of its rows: most operations are nothing more. */

  /** The first row, mapped; null when there is none. */
  protected async one<T>(sql: string, p: Params, map: (r: Row) => T, c: Conn = this.conn): Promise<T | null> {
    const r = (await c.all(sql, p))[0];
    return r ? map(r) : null;
  }

  protected async all<T>(sql: string, p: Params, map: (r: Row) => T): Promise<T[]> {
    return (await this.conn.all(sql, p)).map(map);
  }

  /** Whether the statement changed a row. */
  protected async changed(sql: string, p: Params): Promise<boolean> {
    return (await this.conn.run(sql, p)) > 0;
  }

  ping = async (): Promise<void> => void (await this.conn.all('SELECT 1'));

  createClient = async (c: NewClient) => (await this.conn.run(clients.INSERT_CLIENT, { ...c, premium: +c.premium }), { ...c, revokedAt: null });
  getClient = (id: string) => this.one(clients.GET_CLIENT, { id }, clients.toClient);
  listClients = () => this.all(clients.LIST_CLIENTS, {}, clients.toClient);
  /** Marks the client revoked and deletes its tokens; false when no such client. */
  revokeClient(id: string, now: number): Promise<boolean> {
    return this.tx(async (c) => {
      const n = await c.run(clients.REVOKE_CLIENT, { id, now });
      await c.run(clients.DELETE_TOKENS, { id });
      return n > 0;
    });
  }

  createToken = async (t: TokenRow): Promise<void> => void (await this.conn.run(clients.INSERT_TOKEN, { ...t }));
  /** The token and its client, if the hash is known. */
  findToken = (tokenHash: string) => this.one(clients.FIND_TOKEN, { tokenHash }, (r) => ({ token: clients.toToken(r), client: clients.toClient(r) }));

  getRecord = (orcid: string) => this.one(records.GET_RECORD, { orcid }, records.toRecord);
  /** Creates records that do not exist (modified = now); returns how many were new. */
  addRecords = async (orcids: string[], now: number) => (orcids.length ? this.conn.run(records.addRecordsSql(this.d), { orcids, now }) : 0);
  listRecords = (o: { limit: number; afterOrcid?: string }) => this.all(records.LIST_RECORDS, { after: o.afterOrcid ?? '', limit: o.limit }, records.toRecord);
  countRecords = async () => Number((await this.conn.all(records.COUNT_RECORDS))[0]?.n ?? 0);

  /**
   * Re-enables a disabled webhook as registerWebhook does (failures reset; a notification it still
   * owed becomes due now); an enabled one is left as it is. null when there is no such webhook.
   */
  enableWebhook(id: number, now: number): Promise<ReplayResult | null> {
    return this.tx(async (c) => {
      const re = await this.one(webhooks.REENABLE_BY_ID, { id, now }, toWebhook, c);
      if (re?.dueAt != null) await this.wake(c);
      return re ? { webhook: re, reenabled: true } : this.one(webhooks.GET_WEBHOOK, { id }, (r) => ({ webhook: toWebhook(r), reenabled: false }), c);
    });
  }

  deleteWebhook(clientId: string, orcid: string, url: string): Promise<boolean> {
    return this.tx(async (c) => {
      const gone = (await c.run(webhooks.DELETE_WEBHOOK, { clientId, orcid, url })) > 0;
      if (gone) await c.run(webhooks.GIVE_BACK_PLACE, { clientId });
      return gone;
    });
  }

  findWebhook = (clientId: string, orcid: string, url: string) => this.one(webhooks.FIND_WEBHOOK, { clientId, orcid, url }, toWebhook);
  getWebhook = (id: number) => this.one(webhooks.GET_WEBHOOK, { id }, toWebhook);
  getWebhookByPublicId = (publicId: string) => this.one(webhooks.GET_WEBHOOK_BY_PUBLIC_ID, { publicId }, toWebhook);
  listWebhooks = (f: WebhookFilter) => this.all(webhooks.listWebhooksSql(this.d, f), { ...f, afterId: f.afterId ?? 0 }, toWebhook);
  countWebhooks = async () => toWebhookCounts((await this.conn.all(stateCountsSql(this.d.name)))[0]);

  /** The client's delivery settings (defaults when never set); null when there is no such client. */
  getClientDeliverySettings = (clientId: string) =>
    this.one(features.DELIVERY_SETTINGS, { clientId }, (r) => features.toDeliverySettings(r, (v) => this.secrets?.open(v) ?? v));
  /**
   * Sets the client's signing secret; null removes signing altogether. With previousUntil, the
   * secret being replaced (if any) keeps signing until then (rotation); without, it is dropped.
   * false when there is no such client.
   */
  setSigningSecret = (clientId: string, secret: string | null, o: { previousUntil: number | null; now: number }) =>
    this.changed(features.SET_SIGNING_SECRET, this.signingSecretParams(clientId, secret, o));
  /**
   * Sets the signing secret `decide` chooses from the client's current settings, in one transaction
   * holding the client's row: two changes at once cannot both start from the same secret (each told
   * it issued one, all but the last silently lost). decide may throw: nothing changes. null when
   * there is no such client.
   */
  changeSigningSecret<T>(clientId: string, now: number, decide: (current: ClientDeliverySettings) => { secret: string | null; previousUntil: number | null; result: T }): Promise<T | null> {
    return this.tx(async (c) => {
      if ((await c.all(clients.lockClientSql(this.d), { id: clientId })).length === 0) return null;
      const current = await this.one(features.DELIVERY_SETTINGS, { clientId }, (r) => features.toDeliverySettings(r, (v) => this.secrets?.open(v) ?? v), c);
      const { secret, previousUntil, result } = decide(current!);
      await c.run(features.SET_SIGNING_SECRET, this.signingSecretParams(clientId, secret, { previousUntil, now }));
      return result;
    });
  }
  private signingSecretParams(clientId: string, secret: string | null, o: { previousUntil: number | null; now: number }): Params {
    return { clientId, secret: secret && this.secrets ? this.secrets.seal(secret) : secret, keepUntil: o.previousUntil, now: o.now };
  }
  /**
   * Re-encrypts every stored signing secret not sealed with the current secrets key (plain ones
   * from before encryption, or sealed with an older key), in one transaction; returns how many
   * clients' rows changed. 0 when the store has no secrets key.
   */
  async resealSigningSecrets(): Promise<number> {
    const box = this.secrets;
    if (!box) return 0;
    return this.tx(async (c) => {
      let n = 0;
      for (const r of await c.all(features.storedSecretsSql(this.d))) {
        const next = features.resealRow(r, box);
        if (next) n += await c.run(features.UPDATE_STORED_SECRETS, { clientId: r.client_id, ...next });
      }
      return n;
    });
  }
  /** false when there is no such client. */
  setPayloadMode = (clientId: string, mode: PayloadMode, now: number) => this.changed(features.SET_PAYLOAD_MODE, { clientId, mode, now });

  /**
   * Owes the webhook one new notification (a new notify seq, so a new `webhook-id`), due now, even
   * if nothing changed: its record's modified time is reported again. A disabled webhook is
   * re-enabled (an explicit replay means "try again"); failures are reset. A callback in flight
   * finishes first and this one follows. null when there is no such webhook.
   */
  replayWebhook(id: number, now: number): Promise<ReplayResult | null> {
    return this.tx(async (c) => {
      const enabled = await this.one(webhooks.lockWebhookSql(this.d), { id }, (r) => Boolean(r.enabled), c);
      if (enabled === null) return null;
      const webhook = (await this.one(webhooks.REPLAY_WEBHOOK, { id, now }, toWebhook, c))!;
      await this.wake(c);
      return { webhook, reenabled: !enabled };
    });
  }

  /**
   * Replays (as replayWebhook) every webhook of the client disabled at or after `since`, or still
   * failing with a failure at or after it; returns how many.
   */
  recoverWebhooks(clientId: string, since: number, now: number): Promise<number> {
    return this.tx(async (c) => {
      const n = await c.run(webhooks.RECOVER_WEBHOOKS, { clientId, since, now });
      if (n > 0) await this.wake(c);
      return n;
    });
  }

  /**
   * Claims up to `limit` enabled webhooks that are due, in one statement that stamps the lease.
   * Rows leased by a live owner are skipped; expired leases, and leases of a worker whose heartbeat
   * is stale, are taken over (reclaimed = true). The lease runs leaseMs from the database's clock;
   * `now` (the caller's clock) decides only what is due. Webhooks on hosts in excludeHosts, or of
   * clients in excludeClients, are left for later (at their limit).
   */
  async claimDue(o: ClaimOptions): Promise<Claim[]> {
    if (o.limit <= 0) return [];
    const rows = await this.claimRows(o, {
      ...o, exclude: o.excludeHosts, excludeClients: o.excludeClients ?? [], worker: o.worker ?? null, stale: o.workerStaleMs ?? DEFAULT_WORKER_STALE_MS,
      scan: claims.claimScanSize(o.limit, o.perHostLimit, o.perClientLimit), perHost: o.perHostLimit ?? o.limit, perClient: o.perClientLimit ?? o.limit,
    });
    return rows
      .map((r) => claims.toClaim(r, o.lease))
      .sort((a, b) => (a.webhook.dueAt ?? 0) - (b.webhook.dueAt ?? 0) || a.webhook.id - b.webhook.id);
  }

  /**
   * The rows a claim leased: claimSql, one statement, which reads the free slots as JSON objects
   * (SQLite, with one writer, ranks in JS from `o` instead).
   */
  protected claimRows(o: ClaimOptions, p: Params): Promise<Row[]> {
    p.hostSlots = JSON.stringify(o.hostSlots ?? {});
    p.clientSlots = JSON.stringify(o.clientSlots ?? {});
    // Prepared: PostgreSQL planned it on every call, longer than it ran for a small claim (0.6 ms
    // of planning for 0.4 ms of execution, 8 rows of 20,000; issue 12, cause 6).
    return this.conn.all(claims.claimSql(this.d), p, 'claim-due');
  }

  /** Creates the worker's row or stamps its heartbeat, with the database's clock. */
  heartbeat = async (worker: string): Promise<void> => void (await this.conn.run(claims.heartbeatSql(this.d), { worker }));
  /** Removes the worker's row (clean stop); also drops rows silent for an hour. */
  async retireWorker(worker: string): Promise<void> {
    await this.conn.run(claims.DELETE_WORKER, { worker });
    await this.conn.run(claims.pruneWorkersSql(this.d));
  }
  listWorkers = () => this.all(claims.LIST_WORKERS, {}, claims.toWorker);
  /**
   * Expires at once every lease of these workers (dead ones), or with 'all-but', of every worker but
   * this one (a single-node store at start: nobody else holds claims); returns how many.
   */
  async expireLeases(workers: string[] | { allBut: string | string[] }): Promise<number> {
    if (!Array.isArray(workers)) return this.conn.run(claims.expireLeasesButSql(this.d), { workers: ([] as string[]).concat(workers.allBut) });
    return workers.length ? this.conn.run(claims.expireLeasesSql(this.d), { workers }) : 0;
  }
  /** Gives claims back unattempted (due time unchanged). */
  releaseClaims = async (lease: string, ids: number[]): Promise<void> => void (ids.length && (await this.conn.run(claims.releaseClaimsSql(this.d), { ids, lease })));
  /** Earliest due time of an enabled webhook, or null; drives the worker's next wake-up. */
  nextDueAt = async () => num((await this.conn.all(claims.NEXT_DUE))[0]?.t);

  listAttempts = (webhookId: number, limit: number) => this.all(attempts.LIST_ATTEMPTS, { webhookId, limit }, attempts.toAttempt);
  /** Attempts at or after `since` aggregated per bucket of bucketMs, in SQL; only buckets with attempts. */
  attemptStats = async (since: number, bucketMs: number) =>
    attempts.toAttemptBuckets(await this.conn.all(attempts.attemptStatsSql(this.d), { since, bucketMs }), since, bucketMs);
  /** The oldest owed notification and the callbacks in flight (all processes). */
  deliveryBacklog = async (now: number) => attempts.toBacklog((await this.conn.all(attempts.BACKLOG, { now }))[0]);
  /** Attempts since `since` with at least one failure, by receiving host and by client; the `limit` worst of each. */
  async failureBreakdown(since: number, limit: number): Promise<{ byHost: FailureCount[]; byClient: FailureCount[] }> {
    const by = (column: 'host' | 'client_id') => this.all(attempts.failuresBySql(column), { since, limit }, attempts.toFailureCount);
    const [byHost, byClient] = await Promise.all([by('host'), by('client_id')]);
    return { byHost, byClient };
  }
  /** Deletes attempts older than `before`; returns how many. */
  pruneAttempts = (before: number) => this.conn.run(attempts.PRUNE_ATTEMPTS, { before });

  /** The upstream source's cursor and leadership; null when it never ran. */
  upstreamState = (source: string) => this.one(upstream.UPSTREAM_STATE, { source }, upstream.toUpstreamState);
  /**
   * Takes or renews the leadership of an upstream source until now + leaseMs: true when the caller
   * now leads (nobody led, it led already, or the leader's lease ran out).
   */
  claimUpstreamLeadership = async (source: string, owner: string, now: number, leaseMs: number) =>
    (await this.conn.all(upstream.CLAIM_LEADERSHIP, { source, owner, until: now + leaseMs, now })).length > 0;
  releaseUpstreamLeadership = async (source: string, owner: string): Promise<void> =>
    void (await this.conn.run(upstream.RELEASE_LEADERSHIP, { source, owner }));
  /** Sets the cursor if the source has none yet; returns the cursor in force. */
  initUpstreamCursor = async (source: string, cursor: number, now: number) =>
    Number((await this.conn.all(upstream.INIT_CURSOR, { source, cursor, now }))[0]!.cursor_at);
  /** The leader's progress (cursor never moves back; clears the last error); false when owner no longer leads. */
  saveUpstreamProgress = (source: string, owner: string, cursor: number, now: number) =>
    this.changed(upstream.SAVE_PROGRESS, { source, owner, cursor, now });
  saveUpstreamError = async (source: string, owner: string, error: string, now: number): Promise<void> =>
    void (await this.conn.run(upstream.SAVE_ERROR, { source, owner, error, now }));
  /** Those of the iDs that have at least one enabled webhook. */
  watchedOrcids = async (orcids: string[]) => (orcids.length ? this.all(webhooks.watchedOrcidsSql(this.d), { orcids }, (r) => String(r.orcid)) : []);
}
