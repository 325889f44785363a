import pg from 'pg';
import type { ClientConfig, CustomTypesConfig, Notification, PoolClient, PoolConfig } from 'pg';
import { newWebhookPublicId } from '../../domain/public-id.ts';
import type { SecretBox } from '../../domain/secret-box.ts';
import { postgres, type Compiled, type Params, type Row } from '../dialect.ts';
import { loadMigrations } from '../migrations.ts';
import { isDatabaseUnavailable } from '../database-errors.ts';
import { SqlStore, type Conn } from '../sql-store.ts';
import { ATTEMPT_COLUMNS, completion, OUTCOME_PARAMS, OWED_NOTIFICATION_SENT, outcomeSetSql, type Columns } from '../sql/claims.ts';
import { isNewer } from '../sql/records.ts';
import { GIVE_BACK_PLACE, REGISTER_BATCH, REGISTER_IN_ONE_STATEMENT, REGISTER_RACED, toWebhook } from '../sql/webhooks.ts';
import { batcher, type Settled } from '../batcher.ts';
import type { ApplyChangesOptions, ApplyChangesResult, AttemptRecord, ChangeOutcome, NewWebhook, RecordChange, RegisterResult, WebhookRow } from '../types.ts';

/** LISTEN/NOTIFY channel; the payload is the notifying session's current_schema(). */
const WAKE_CHANNEL = 'orcid_webhooks_wake';
/** pg_advisory_xact_lock key serialising migrations across processes (any constant unique to this app). */
const MIGRATION_LOCK_KEY = '7305151201437713';


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
/**
 * How long a pooled connection may take to open (or to be handed out when the pool is full): at
 * most this, and no longer than a query may take (statement timeout plus QUERY_TIMEOUT_MARGIN_MS),
 * so that a request in a database stall fails within about the bound its queries have.
 */
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
function pgConnectionString(url: string): string {
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

/**
 * Runs one statement (no transaction around it) again, up to five times in all, when it lost a
 * race: a deadlock, a serialisation failure, or its own deliberate error carrying `raced`.
 */
async function again<T>(run: () => Promise<T>, raced?: string): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (attempt < 5 && (isRetryable(err) || (raced !== undefined && String((err as Error).message).includes(raced)))) continue;
      throw err;
    }
  }
}

/**
 * The webhooks of `pairs` (id, n, modified) each owe one notification more: coalesced with one
 * already owed, else due at `due` and reporting the earliest change (shared by both applyChanges
 * statements).
 */
const owePairs = (due: string): string => `hits AS (
    SELECT id, count(*) AS k, min(modified) AS first_modified FROM pairs GROUP BY id),
  owe AS (
    UPDATE webhooks w SET
      change_seq = w.change_seq + h.k,
      notify_seq = CASE WHEN ${OWED_NOTIFICATION_SENT('w.')} THEN w.change_seq + 1 ELSE w.notify_seq END,
      pending_since = COALESCE(w.pending_since, h.first_modified),
      due_at = COALESCE(w.due_at, ${due})
    FROM hits h WHERE w.id = h.id
    RETURNING h.k),
  total AS (SELECT COALESCE(sum(k), 0) AS notified FROM owe)`;

/**
 * Step 3 of applyChanges: $1/$2 records to insert, $3/$4 records to update (final modified times),
 * $5 now, $6/$7 the effective changes (events) in order, $8 the due time of a newly owed
 * notification, $9 the wake-up channel, $10 whether to count the webhooks of each event (per_event:
 * {event number: webhooks}). pg_notify runs only when a webhook now owes something.
 */
const APPLY_CHANGES = `WITH
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
  pairs AS MATERIALIZED (
    SELECT w.id, e.n, e.modified
    FROM unnest($6::text[], $7::bigint[]) WITH ORDINALITY AS e(orcid, modified, n)
    JOIN webhooks w ON w.orcid = e.orcid AND w.created_at <= e.modified),
  ${owePairs('$8::bigint')}
  SELECT (SELECT count(*) FROM ins) AS inserted, (SELECT count(*) FROM upd) AS updated, total.notified,
    CASE WHEN total.notified > 0 THEN pg_notify($9::text, current_schema()) END AS woke,
    CASE WHEN $10::boolean THEN (SELECT json_object_agg(n, c) FROM (SELECT n, count(*) AS c FROM pairs GROUP BY n) x) END AS per_event
  FROM total`;

/** The marker of APPLY_DISTINCT's deliberate error when a record it was to create appeared meanwhile. */
const RACED = 'records created concurrently';
/**
 * applyChanges in one statement and one round trip (no BEGIN/COMMIT), for a batch whose iDs are all
 * distinct (a group of touches): each change is judged against its record as locked here, as the
 * replay in JS would judge it. $1/$2/$3 the changes (iD, modified, touch), $4 create, $5 now, $6
 * the due time of a newly owed notification, $7 the wake-up channel. A record created by another
 * transaction after this statement's snapshot makes the insert come up short: the statement then
 * fails on purpose (RACED), undoing everything, and runs again.
 */
const APPLY_DISTINCT = `WITH
  e AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::boolean[]) WITH ORDINALITY AS e(orcid, modified, touch, n)),
  cur AS MATERIALIZED (
    SELECT orcid, modified_at, placeholder FROM records WHERE orcid = ANY($1::text[]) ORDER BY orcid FOR NO KEY UPDATE),
  j0 AS MATERIALIZED (
    SELECT e.n, e.orcid, c.modified_at AS cur, c.placeholder, c.orcid IS NOT NULL AS known,
      CASE WHEN c.orcid IS NOT NULL AND e.touch THEN greatest(e.modified, c.modified_at + 1) ELSE e.modified END AS modified
    FROM e LEFT JOIN cur c ON c.orcid = e.orcid),
  j AS MATERIALIZED (
    SELECT n, orcid, cur, modified,
      CASE WHEN NOT known THEN (CASE WHEN $4::boolean THEN 'created' ELSE 'ignored' END)
        WHEN modified > cur OR (placeholder = 1 AND modified = cur) THEN 'changed' ELSE 'ignored' END AS outcome
    FROM j0),
  ins AS (
    INSERT INTO records (orcid, modified_at, created_at)
    SELECT orcid, modified, $5::bigint FROM j WHERE outcome = 'created'
    ON CONFLICT (orcid) DO NOTHING
    RETURNING 1),
  upd AS (
    UPDATE records r SET modified_at = j.modified, placeholder = 0 FROM j
    WHERE j.outcome = 'changed' AND r.orcid = j.orcid
    RETURNING 1),
  pairs AS MATERIALIZED (
    SELECT w.id, j.n, j.modified FROM j JOIN webhooks w ON w.orcid = j.orcid AND w.created_at <= j.modified
    WHERE j.outcome = 'changed'),
  ${owePairs('$6::bigint')}
  SELECT total.notified,
    CASE WHEN (SELECT count(*) FROM ins) <> (SELECT count(*) FROM j WHERE outcome = 'created')
      THEN ('${RACED} ' || (SELECT count(*) FROM ins))::int END AS raced,
    CASE WHEN total.notified > 0 THEN pg_notify($7::text, current_schema()) END AS woke,
    (SELECT json_agg(json_build_array(outcome, CASE WHEN outcome = 'ignored' THEN cur ELSE modified END) ORDER BY n) FROM j) AS outcomes,
    (SELECT json_object_agg(n, c) FROM (SELECT n, count(*) AS c FROM pairs GROUP BY n) x) AS per_event
  FROM total`;

const compiled = new Map<string, Compiled>();
/*
 * The record's modified time is read FOR SHARE: a change committed while this statement waited for
 * the webhook's row (the change held it) moved change_seq on, which the statement sees (it re-reads
 * the row it waited for), but a plain subquery reads the record as of the statement's start, the
 * modified time before that change (KEY SHARE too: a non-key update does not conflict with it, so
 * it locks the old version). A conflicting lock returns the newest committed version. It is taken
 * only when a change came during the callback; a deadlock with a second change being applied at
 * that moment is retried (again()).
 */
const OUTCOME = outcomeSetSql('w.', (name) => `a.${name}`, ' FOR SHARE');

/** A Conn over the pool or one transaction's connection: store/sql/ texts compiled once to $n. */
class PgConn implements Conn {
  constructor(readonly on: pg.Pool | PoolClient) {}

  /** `name`: a prepared statement (parsed and planned once per connection), for the hot ones. */
  private async query(sql: string, p: Params, name?: string): Promise<pg.QueryResult<Row>> {
    let c = compiled.get(sql);
    if (!c) compiled.set(sql, (c = postgres.compile(sql)));
    return this.on.query<Row>({ name, text: c.text, values: c.names.map((n) => p[n] ?? null) });
  }

  async all(sql: string, p: Params = {}, name?: string): Promise<Row[]> {
    return (await this.query(sql, p, name)).rows;
  }

  async run(sql: string, p: Params = {}): Promise<number> {
    return (await this.query(sql, p)).rowCount ?? 0;
  }
}

/** The PostgreSQL store: a pool, transactions that retry lost races, LISTEN/NOTIFY wake-ups. */
export class PostgresStore extends SqlStore {
  protected readonly d = postgres;
  readonly pool: pg.Pool;
  protected readonly conn: PgConn;
  private readonly clientConfig: ClientConfig;
  private readonly onError: (err: Error) => void;
  private readonly listeners = new Set<() => void>();
  /** Settled once the LISTEN connection made its first attempt. */
  private listening: Promise<void> | null = null;
  private listener: pg.Client | null = null;
  private closed = false;
  /**
   * Registrations waiting for the next batch. A second registration of the same webhook, or one of
   * a client whose cap differs from that of its registrations already in the batch, waits for the
   * next one (it must see the first committed; one cap per client in a batch).
   */
  private readonly registrations = batcher((inputs: NewWebhook[]) => this.registerBatch(inputs), {
    admit: () => {
      const seen = new Set<string>();
      const caps = new Map<string, number | undefined>();
      return (i) => {
        const key = `${i.clientId}\u0000${i.orcid}\u0000${i.url}`;
        if (seen.has(key) || (caps.has(i.clientId) && caps.get(i.clientId) !== i.maxPerClient)) return false;
        seen.add(key);
        caps.set(i.clientId, i.maxPerClient);
        return true;
      };
    },
  });

  constructor(url: string, opts: PostgresStoreOptions = {}) {
    super(opts.secrets);
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
      connectionTimeoutMillis: statementTimeoutMs > 0 ? Math.min(CONNECT_TIMEOUT_MS, statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS) : CONNECT_TIMEOUT_MS,
      ...(statementTimeoutMs > 0 && { query_timeout: statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS }),
    };
    this.pool = new pg.Pool(poolConfig);
    // An idle pooled connection that dies (server restart, network) is removed by the pool and
    // reported here; without a listener the 'error' event would crash the process.
    this.pool.on('error', (err) => this.onError(err));
    this.conn = new PgConn(this.pool);
  }

  protected tx<T>(fn: (c: Conn) => Promise<T>): Promise<T> {
    return this.txClient((c) => fn(new PgConn(c)));
  }

  /** Wakes every listener on this schema when the transaction commits (nothing if it rolls back). */
  protected async wake(c: Conn): Promise<void> {
    await (c as PgConn).on.query('SELECT pg_notify($1, current_schema())', [WAKE_CHANNEL]);
  }

  /** Runs fn in a transaction on one pooled connection; deadlocks and lost races run it again. */
  private async txClient<T>(fn: (c: PoolClient) => Promise<T>): Promise<T> {
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
    await this.refuseNewerSchema();
    const applied: string[] = [];
    for (const m of loadMigrations('postgres')) {
      // Each migration in its own transaction, behind one advisory lock: processes starting at
      // once queue here; the name goes in first, so a later one sees it and skips.
      const ran = await this.txClient(async (c) => {
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


  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    await this.listener?.end().catch(noop);
    await this.registrations.drained();
    await this.pool.end();
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
   *     counts one per webhook per change; per change (perChange), the webhooks each change reached.
   *     The same statement sends the wake-up (pg_notify) when it made something owed: one NOTIFY
   *     per batch, and no round trip of its own.
   * A record created concurrently by another transaction after step 1 makes the insert come up
   * short: the transaction then runs again and sees it.
   */
  async applyChanges(changes: RecordChange[], opts: ApplyChangesOptions): Promise<ApplyChangesResult> {
    if (changes.length === 0) return { created: 0, changed: 0, ignored: 0, webhooksNotified: 0, ...(opts.perChange && { changes: [] }) };
    const orcids = [...new Set(changes.map((c) => c.orcid))];
    if (orcids.length === changes.length) return this.applyDistinct(changes, opts);
    return this.txClient(async (c) => {
      const locked = await c.query<Row>('SELECT orcid, modified_at, placeholder FROM records WHERE orcid = ANY($1::text[]) ORDER BY orcid FOR NO KEY UPDATE', [orcids]);
      const current = new Map(locked.rows.map((r) => [String(r.orcid), Number(r.modified_at)]));
      // Placeholders (open records mode) until their first change in this batch.
      const placeholders = new Set(locked.rows.filter((r) => Number(r.placeholder) === 1).map((r) => String(r.orcid)));
      const result: ApplyChangesResult = { created: 0, changed: 0, ignored: 0, webhooksNotified: 0 };
      const each: ChangeOutcome[] = [];
      const inserts = new Map<string, number>();
      const updates = new Map<string, number>();
      const evOrcid: string[] = [];
      const evModified: number[] = [];
      /** The index in `each` of each effective change (event), for its count of webhooks. */
      const evChange: number[] = [];
      for (const ch of changes) {
        const cur = current.get(ch.orcid);
        if (cur === undefined) {
          if (opts.create) {
            current.set(ch.orcid, ch.modifiedAt);
            inserts.set(ch.orcid, ch.modifiedAt);
            result.created++;
            each.push({ outcome: 'created', modifiedAt: ch.modifiedAt, webhooksNotified: 0 });
          } else {
            result.ignored++;
            each.push({ outcome: 'ignored', modifiedAt: null, webhooksNotified: 0 });
          }
          continue;
        }
        const modified = ch.touch ? Math.max(ch.modifiedAt, cur + 1) : ch.modifiedAt;
        if (!isNewer(modified, cur, placeholders.has(ch.orcid))) {
          result.ignored++;
          each.push({ outcome: 'ignored', modifiedAt: cur, webhooksNotified: 0 });
          continue;
        }
        current.set(ch.orcid, modified);
        placeholders.delete(ch.orcid);
        (inserts.has(ch.orcid) ? inserts : updates).set(ch.orcid, modified);
        result.changed++;
        evChange.push(each.length);
        each.push({ outcome: 'changed', modifiedAt: modified, webhooksNotified: 0 });
        evOrcid.push(ch.orcid);
        evModified.push(modified);
      }
      const done = (): ApplyChangesResult => (opts.perChange ? { ...result, changes: each } : result);
      if (inserts.size === 0 && updates.size === 0) return done();
      const [r] = (await c.query<Row>(APPLY_CHANGES, [[...inserts.keys()], [...inserts.values()], [...updates.keys()], [...updates.values()], opts.now,
        evOrcid, evModified, opts.now + opts.notifyDelayMs, WAKE_CHANNEL, opts.perChange === true])).rows;
      if (Number(r?.inserted) !== inserts.size) throw new RetryTransaction('a record was created concurrently');
      result.webhooksNotified = Number(r?.notified ?? 0);
      for (const [n, k] of Object.entries((r?.per_event ?? {}) as Record<string, number>)) each[evChange[Number(n) - 1]!]!.webhooksNotified = Number(k);
      return done();
    });
  }

  /** applyChanges for distinct iDs: APPLY_DISTINCT, one statement, run again if it lost a race to create a record. */
  private async applyDistinct(changes: RecordChange[], opts: ApplyChangesOptions): Promise<ApplyChangesResult> {
    const [r] = (await again(() => this.pool.query<Row>({
      name: 'apply-changes', text: APPLY_DISTINCT,
      values: [changes.map((c) => c.orcid), changes.map((c) => c.modifiedAt), changes.map((c) => c.touch === true),
        opts.create, opts.now, opts.now + opts.notifyDelayMs, WAKE_CHANNEL],
    }), RACED)).rows;
    const perEvent = (r?.per_event ?? {}) as Record<string, number>;
    const result: ApplyChangesResult = { created: 0, changed: 0, ignored: 0, webhooksNotified: Number(r?.notified ?? 0) };
    const each = ((r?.outcomes ?? []) as [ChangeOutcome['outcome'], number | null][]).map(([outcome, modifiedAt], i): ChangeOutcome => {
      result[outcome]++;
      return { outcome, modifiedAt: modifiedAt === null ? null : Number(modifiedAt), webhooksNotified: Number(perEvent[i + 1] ?? 0) };
    });
    return opts.perChange ? { ...result, changes: each } : result;
  }

  // Group commit, as SQLite does (issue 12): the registrations of one turn go to the database together.
  registerWebhook(input: NewWebhook): Promise<RegisterResult> {
    return this.registrations.add(input);
  }

  /**
   * Alone in its turn, a registration runs REGISTER_IN_ONE_STATEMENT as a prepared statement;
   * together, REGISTER_BATCH. A batch that fails for another reason than a lost race is tried input
   * by input, so that a bad input fails alone.
   */
  private async registerBatch(inputs: NewWebhook[]): Promise<Settled<RegisterResult>[]> {
    const one = (input: NewWebhook): Promise<Settled<RegisterResult>> => this.registerOne(input).then((ok) => ({ ok }), (err: unknown) => ({ err }));
    if (inputs.length === 1) return [await one(inputs[0]!)];
    let rows: Row[];
    try {
      rows = await this.registerTogether(inputs);
    } catch (err) {
      // A database that does not answer fails the whole batch at once (one by one, each would wait
      // for its own timeouts behind the others).
      if (isDatabaseUnavailable(err)) return inputs.map(() => ({ err }));
      return Promise.all(inputs.map(one));
    }
    return rows.map((r, i) => settle(inputs[i]!, r));
  }

  /*
   * The batch statement is not prepared: planned for each batch (~1 ms, shared by its inputs), it
   * never runs a generic plan built while the tables were empty (a prepared REGISTER_BATCH then
   * scanned webhooks sequentially).
   */
  private async registerTogether(inputs: NewWebhook[]): Promise<Row[]> {
    const values = {
      clientIds: inputs.map((i) => i.clientId), orcids: inputs.map((i) => i.orcid), urls: inputs.map((i) => i.url), hosts: inputs.map((i) => i.host),
      nows: inputs.map((i) => i.now), publicIds: inputs.map(() => newWebhookPublicId()), caps: inputs.map((i) => i.maxPerClient ?? null),
      createRecords: inputs.map((i) => i.createRecord === true), channel: WAKE_CHANNEL,
    };
    return again(() => this.conn.all(REGISTER_BATCH, values), REGISTER_RACED);
  }

  // One statement, no transaction (REGISTER_IN_ONE_STATEMENT); a lost race gives the place back and asks again.
  private async registerOne(input: NewWebhook): Promise<RegisterResult> {
    for (let round = 0; round < 5; round++) {
      const [r] = await this.conn.all(REGISTER_IN_ONE_STATEMENT, {
        ...input, publicId: newWebhookPublicId(), cap: input.maxPerClient, createRecord: input.createRecord === true,
      }, 'register-webhook');
      if (r?.kind === 'reenabled') {
        if (r.due_at !== null) await this.wake(this.conn);
        return { outcome: 'exists', webhook: toWebhook(r), reenabled: true };
      }
      if (r?.kind === 'existing') return { outcome: 'exists', webhook: toWebhook(r), reenabled: false };
      if (r?.kind === 'created') return { outcome: 'created', webhook: toWebhook(r) };
      if (!r?.took) {
        if (!r?.has_record && !input.createRecord) return { outcome: 'no-record' };
        if (!(await this.getClient(input.clientId))) throw new Error(`No client with id ${input.clientId}`);
        return { outcome: 'limit' };
      }
      await this.conn.run(GIVE_BACK_PLACE, { clientId: input.clientId });
    }
    throw new Error('webhook registration kept racing');
  }

  /*
   * Batched per kind with unnest (SQLite runs them one by one: with one writer a batch saves
   * nothing), all in one prepared statement (COMPLETE_ATTEMPTS): one round trip and no transaction,
   * instead of BEGIN, an UPDATE per kind, the INSERT and COMMIT, each statement planned anew.
   * Each outcome is guarded by lease_owner = the claim's lease token and clears the lease, so of
   * several completions for one webhook only the first with its lease applies: later ones (same id
   * and lease) are dropped before batching, which keeps one source row per webhook in each UPDATE;
   * the three UPDATEs see one snapshot, where a row has one lease, so no row is updated twice.
   * Every attempt is recorded if its webhook still exists (FOR KEY SHARE holds off a concurrent
   * delete between the check and the insert).
   */
  async completeAttempts(attempts: AttemptRecord[]): Promise<void> {
    if (attempts.length === 0) return;
    const rows: Params[] = [];
    const outcomes: Record<AttemptRecord['outcome']['kind'], Params[]> = { success: [], retry: [], disable: [] };
    const seen = new Set<string>();
    for (const a of attempts) {
      const { row, outcome } = completion(a);
      rows.push(row);
      const key = `${a.webhookId}\u0000${a.lease}`;
      if (!seen.has(key)) outcomes[a.outcome.kind].push(outcome);
      seen.add(key);
    }
    const values = KINDS.flatMap((kind) => columnsOf(OUTCOME_PARAMS[kind], outcomes[kind])).concat(columnsOf(ATTEMPT_COLUMNS, rows));
    await again(() => this.pool.query({ name: 'complete-attempts', text: COMPLETE_ATTEMPTS, values }));
  }

  /** The subscribers share one LISTEN connection, opened by the first and kept until close(). */
  async subscribeWakeups(listener: () => void): Promise<() => Promise<void>> {
    if (this.closed) throw new Error('store is closed');
    this.listeners.add(listener);
    await (this.listening ??= new Promise((ready) => void this.listen(ready)));
    return async () => void this.listeners.delete(listener);
  }

  /**
   * The LISTEN connection (a pooled one would be handed to queries); `ready` after the first
   * attempt: a database that cannot be reached now is tried again in the background. A lost
   * connection is replaced with backoff (100 ms doubling to 10 s, with jitter); after a reconnect
   * the subscribers are called once, since notifications sent meanwhile were missed.
   */
  private async listen(ready: () => void): Promise<void> {
    for (let first = true, delayMs = 0; !this.closed; first = false) {
      // A connection attempt that hangs (unreachable host) gives up and is retried.
      const client = (this.listener = new pg.Client({ ...this.clientConfig, connectionTimeoutMillis: CONNECT_TIMEOUT_MS }));
      // Stays attached for the client's whole life: errors after it was given up are reported too.
      const lost = new Promise<void>((resolve) => {
        client.on('error', (err) => {
          if (!this.closed) this.onError(err);
          resolve();
        });
        client.on('end', resolve);
      });
      try {
        await client.connect();
        const schema = (await client.query<{ s: string | null }>('SELECT current_schema() AS s')).rows[0]?.s;
        // The payload names the notifying schema: installations sharing a database stay apart.
        client.on('notification', (n: Notification) => {
          if (!n.payload || n.payload === schema) this.wakeListeners();
        });
        await client.query(`LISTEN ${WAKE_CHANNEL}`);
        delayMs = 0;
        if (!first) this.wakeListeners();
        ready();
        await lost;
      } catch (err) {
        if (!this.closed) this.onError(err as Error);
        ready();
      }
      client.end().catch(noop);
      delayMs = delayMs ? Math.min(delayMs * 2, 10_000) : 100;
      if (!this.closed) await new Promise((resolve) => setTimeout(resolve, Math.round(delayMs * (0.75 + Math.random() * 0.5))).unref());
    }
  }

  private wakeListeners(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (err) {
        this.onError(err as Error);
      }
    }
  }
}

/** One input's answer from its REGISTER_BATCH row. */
function settle(input: NewWebhook, r: Row): Settled<RegisterResult> {
  const webhook = (): WebhookRow => toWebhook(r.webhook as Row);
  switch (r.outcome) {
    case 'created': return { ok: { outcome: 'created', webhook: webhook() } };
    case 'existing': return { ok: { outcome: 'exists', webhook: webhook(), reenabled: false } };
    case 'reenabled': return { ok: { outcome: 'exists', webhook: webhook(), reenabled: true } };
    case 'limit': return { ok: { outcome: 'limit' } };
    case 'no-record': return { ok: { outcome: 'no-record' } };
    default: return { err: new Error(`No client with id ${input.clientId}`) };
  }
}

/** `unnest($k::t[], ...) WITH ORDINALITY AS a(name, ..., n)` over the columns (n: the row's number), its parameters numbered from `first`. */
function unnestFrom(cols: Columns, first: number): string {
  return `unnest(${cols.map(([, type], i) => `$${first + i}::${type}[]`).join(', ')}) WITH ORDINALITY AS a(${cols.map(([name]) => name).join(', ')}, n)`;
}

/** The parameters of unnestFrom: one array per column. */
function columnsOf(cols: Columns, rows: Params[]): unknown[][] {
  return cols.map(([name]) => rows.map((r) => r[name]));
}

const KINDS = ['success', 'retry', 'disable'] as const;

/**
 * completeAttempts' statement: an UPDATE per outcome kind and the attempts' INSERT, parameters in
 * that order. The INSERT must run before the UPDATEs: the final SELECT reads `recorded` (so it runs
 * as the SELECT starts) and nothing reads the UPDATEs (so they run at the statement's end). Were an
 * UPDATE read first, its rows would be "updated by this statement" when the INSERT's FOR KEY SHARE
 * reaches them, skipped as gone, and their attempts silently dropped; the store tests check that
 * each kind of outcome records its attempt.
 */
const COMPLETE_ATTEMPTS = (() => {
  let next = 1;
  const from = (cols: Columns): string => {
    const sql = unnestFrom(cols, next);
    next += cols.length;
    return sql;
  };
  const updates = KINDS.map((kind) => `${kind} AS (
    UPDATE webhooks w SET ${OUTCOME[kind]} FROM ${from(OUTCOME_PARAMS[kind])} WHERE w.id = a.id AND w.lease_owner = a.lease RETURNING 1)`);
  const cols = ATTEMPT_COLUMNS.map(([col]) => col);
  return `WITH ${updates.join(',\n  ')},
  recorded AS (
    INSERT INTO attempts (${cols.join(', ')}) SELECT ${cols.map((col) => `a.${col}`).join(', ')}
    FROM ${from(ATTEMPT_COLUMNS)} WHERE EXISTS (SELECT 1 FROM webhooks w WHERE w.id = a.webhook_id FOR KEY SHARE) ORDER BY a.n RETURNING 1)
  SELECT (SELECT count(*) FROM recorded) AS recorded`;
})();
