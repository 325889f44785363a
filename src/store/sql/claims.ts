import type { Dialect, Params, Row } from '../dialect.ts';
import { toClaimedWebhook } from './webhooks.ts';
import type { AttemptRecord, Claim, ClaimOptions, WorkerRow } from '../types.ts';

/*
 * Claims and their outcomes. Each store completes in its own way (see the stores); the claim, the
 * SET clauses of the outcomes and the owing of a change are written once here. Lease and heartbeat times come from the database's clock, never a worker's, so clock skew
 * between hosts cannot make a live lease look expired to another worker.
 */

/**
 * A row another worker may take: never leased, lease expired, or leased by a worker whose
 * heartbeat is older than `staleMs` (it died). Leases without a worker (written before heartbeats)
 * only expire.
 */
export function claimableSql(d: Dialect, staleMs: string): string {
  return `(webhooks.lease_until IS NULL OR webhooks.lease_until < ${d.now}
      OR (webhooks.lease_worker IS NOT NULL AND webhooks.lease_worker NOT IN (
        SELECT k.id FROM workers k WHERE k.heartbeat_at >= ${d.now} - ${staleMs})))`;
}

/**
 * How many earliest-due rows a per-host-limited claim ranks: the batch plus four hosts' worth. Few
 * enough that a claim for one free slot stays cheap (a single busy host frees one slot per
 * callback), enough that one crowded host does not starve a batch.
 */
export function claimScanSize(limit: number, perHostLimit: number | undefined, perClientLimit?: number): number {
  const perGroup = Math.min(perHostLimit ?? Infinity, perClientLimit ?? Infinity);
  return Number.isFinite(perGroup) ? Math.min(limit * 4, limit + 4 * perGroup) : limit;
}

/**
 * A claim's candidates: the earliest due claimable rows, at most @scan, in (due_at, id) order,
 * leaving out hosts in @exclude and clients in @excludeClients (at their limit). `lock`:
 * PostgreSQL's FOR UPDATE SKIP LOCKED, so that concurrent claimers pass each other's rows.
 */
const candidatesSql = (d: Dialect, lock: string): string => `SELECT id, host, client_id, due_at FROM webhooks
    WHERE enabled = 1 AND due_at IS NOT NULL AND due_at <= @now::bigint
      AND ${claimableSql(d, '@stale::bigint')}
      AND host NOT IN (${d.list('@exclude', 'text')})
      AND client_id NOT IN (${d.list('@excludeClients', 'text')})
    -- id breaks ties (a bulk change makes thousands due at one instant): rows taken over from a
    -- dead worker, claimed in id order before, come first instead of behind the whole backlog.
    ORDER BY due_at, id LIMIT @scan::bigint${lock}`;

/**
 * Leases the rows of @ids (a subquery) with the database's clock. SET sees the old lease_until, so
 * lease_reclaimed records whether a dead worker's lease was taken over. RETURNING: the columns a
 * worker needs (toClaim).
 */
const leaseSql = (d: Dialect, ids: string): string => `UPDATE webhooks SET lease_owner = @lease::text, lease_worker = @worker::text, lease_until = ${d.now} + @leaseMs::bigint,
    lease_reclaimed = CASE WHEN lease_until IS NULL THEN 0 ELSE 1 END
  WHERE id IN (${ids})
  RETURNING id, public_id, client_id, orcid, url, host, pending_since, due_at, change_seq, notify_seq, failed_attempts, failing_since, lease_reclaimed`;

/**
 * Claims a batch in one statement (Store.claimDue, PostgreSQL): the candidates are ranked within
 * their host and within their client, and only the first few of each (its free slots, else the
 * per-host or per-client limit) are leased. The candidates are locked FOR UPDATE SKIP LOCKED
 * (window functions cannot share a SELECT with FOR UPDATE, hence two steps). Candidates not picked
 * stay unleased. SQLite, with one writer, ranks in JS between two statements (see its store).
 */
export const claimSql = (d: Dialect): string => {
  // Built once per dialect: the text is ~1.5 kB, and the drivers find their prepared statement by
  // it; a new string per claim was built and hashed again each time (issue 12).
  let sql = claimSqlByDialect.get(d);
  if (sql === undefined) claimSqlByDialect.set(d, (sql = buildClaimSql(d)));
  return sql;
};
const claimSqlByDialect = new Map<Dialect, string>();
const buildClaimSql = (d: Dialect): string => `WITH cand AS MATERIALIZED (
    ${candidatesSql(d, d.lock('UPDATE SKIP LOCKED'))}),
  picked AS (
    SELECT id FROM (
      SELECT id, host, client_id, due_at,
        row_number() OVER (PARTITION BY host ORDER BY due_at, id) AS rank_in_host,
        row_number() OVER (PARTITION BY client_id ORDER BY due_at, id) AS rank_in_client
      FROM cand) ranked
    WHERE rank_in_host <= COALESCE(${d.entry('@hostSlots', 'host')}, @perHost::bigint)
      AND rank_in_client <= COALESCE(${d.entry('@clientSlots', 'client_id')}, @perClient::bigint)
    ORDER BY due_at, id LIMIT @limit::bigint)
  ${leaseSql(d, 'SELECT id FROM picked')}`;

/** The two statements of a claim by a single writer (SQLite): the candidates, then the lease of the ids picked (@ids). */
export const claimStepsSql = (d: Dialect): { candidates: string; lease: string } =>
  ({ candidates: candidatesSql(d, ''), lease: leaseSql(d, d.list('@ids', 'bigint')) });

/**
 * The candidates a claim takes, in order: the first `limit` whose rank within their host and within
 * their client (counting every candidate before them, taken or not) is within its free slots, else
 * the per-host or per-client limit: what claimSql's window functions pick.
 */
export function pickCandidates(cand: Row[], o: ClaimOptions): number[] {
  if (!(o.limit >= 1)) return [];
  const perHost = o.perHostLimit ?? o.limit;
  const perClient = o.perClientLimit ?? o.limit;
  const inHost = new Map<string, number>();
  const inClient = new Map<string, number>();
  const ids: number[] = [];
  for (const r of cand) {
    const host = String(r.host);
    const client = String(r.client_id);
    const h = (inHost.get(host) ?? 0) + 1;
    const c = (inClient.get(client) ?? 0) + 1;
    inHost.set(host, h);
    inClient.set(client, c);
    if (h <= (own(o.hostSlots, host) ?? perHost) && c <= (own(o.clientSlots, client) ?? perClient)) {
      ids.push(Number(r.id));
      if (ids.length >= o.limit) break;
    }
  }
  return ids;
}

/**
 * The object's own entry (a host named `constructor` is not Object.prototype's); a value that is
 * not a finite number counts as absent, as in claimSql, which gets the slots as JSON (null there).
 */
const own = (m: Record<string, number> | undefined, key: string): number | undefined => {
  const v = m && Object.hasOwn(m, key) ? m[key] : undefined;
  return Number.isFinite(v) ? v : undefined;
};

/** A row of claimSql's RETURNING; the lease is the claim's own token. */
export const toClaim = (r: Row, lease: string): Claim => ({ webhook: toClaimedWebhook(r, lease), reclaimed: Boolean(r.lease_reclaimed) });

/**
 * SET clauses of the outcomes, `w` being the webhook and `a` the parameter named (a column of
 * PostgreSQL's batched UPDATE ... FROM unnest, an `@` parameter of SQLite's one row at a time). Each
 * clears the lease; the caller guards it with lease_owner = the claim's lease token.
 */
export function outcomeSetSql(w: string, a: (name: string) => string, recordLock = ''): Record<Kind, string> {
  const newer = `${w}change_seq > ${a('claimed')}`;
  // A replay (or recovery) while the callback was in flight: it gave the row a new notify seq (a
  // change of the record keeps the one owed), reset its failures and made it due now. A failure of
  // the callback it follows then changes none of that: the replay is sent next, at once, and
  // is not lost to a disabling answer (a 410, the last step of the schedule).
  const replayed = `${w}notify_seq > ${a('claimed')}`;
  const unlessReplayed = (column: string, value: string) => `${column} = CASE WHEN ${replayed} THEN ${w}${column} ELSE ${value} END`;
  // A change that landed while the callback was in flight: the callback may have reached the
  // receiver, so it owes a new notification (see OWED_NOTIFICATION_SENT), on success and failure alike.
  const notifyNewer = `notify_seq = CASE WHEN ${newer} AND NOT (${replayed}) THEN ${w}change_seq ELSE ${w}notify_seq END`;
  const failed = `lease_owner = NULL, lease_until = NULL, last_failed_at = ${a('now')}, last_status = ${a('status')}, ${notifyNewer},
    ${unlessReplayed('failed_attempts', `${w}failed_attempts + 1`)}, ${unlessReplayed('failing_since', `COALESCE(${w}failing_since, ${a('now')})`)}`;
  return {
    // Owe nothing, unless a change landed while the callback was in flight (due after the notify
    // delay, which lets changes settle), or a replay was asked for meanwhile: it follows at once
    // (replay_due), under the webhook-id the replay answered.
    success: `lease_owner = NULL, lease_until = NULL, failed_attempts = 0, failing_since = NULL, last_sent_at = ${a('now')}, last_status = ${a('status')},
      pending_since = CASE WHEN ${newer} THEN (SELECT r.modified_at FROM records r WHERE r.orcid = ${w || 'webhooks.'}orcid${recordLock}) ELSE NULL END,
      due_at = CASE WHEN ${replayed} THEN ${a('replay_due')} WHEN ${newer} THEN ${a('next_due')} ELSE NULL END,
      ${notifyNewer}`,
    retry: `${failed}, ${unlessReplayed('due_at', a('retry_at'))}`,
    // Keeps pending_since: a re-enabled webhook still owes what it owed.
    disable: `${failed}, ${unlessReplayed('enabled', '0')}, ${unlessReplayed('disabled_reason', a('reason'))},
      ${unlessReplayed('disabled_at', a('now'))}, ${unlessReplayed('due_at', 'NULL')}`,
  };
}

type Kind = AttemptRecord['outcome']['kind'];
/** Named and typed values: the columns of PostgreSQL's batches (unnest), the `@` parameters of SQLite's rows. */
export type Columns = Array<[name: string, type: 'bigint' | 'int' | 'text']>;
/** The parameters of each outcome's UPDATE (`completion`'s `outcome`). */
export const OUTCOME_PARAMS: Record<Kind, Columns> = {
  success: [['id', 'bigint'], ['lease', 'text'], ['now', 'bigint'], ['status', 'text'], ['claimed', 'bigint'], ['next_due', 'bigint'], ['replay_due', 'bigint']],
  retry: [['id', 'bigint'], ['lease', 'text'], ['now', 'bigint'], ['status', 'text'], ['claimed', 'bigint'], ['retry_at', 'bigint']],
  disable: [['id', 'bigint'], ['lease', 'text'], ['now', 'bigint'], ['status', 'text'], ['claimed', 'bigint'], ['reason', 'text']],
};

/** The columns of an attempts row (`completion`'s `row`). */
export const ATTEMPT_COLUMNS: Columns = [
  ['webhook_id', 'bigint'], ['notification_id', 'text'], ['at', 'bigint'], ['duration_ms', 'int'], ['status_code', 'int'], ['error', 'text'],
  ['response_snippet', 'text'], ['latency_ms', 'bigint'], ['request_headers', 'text'], ['response_headers', 'text'],
];

/**
 * Text a receiver controls (its answer's body, an error quoting it) as a database can store it:
 * PostgreSQL's text cannot hold NUL, and one such character failed the whole batch of completions
 * (every later attempt unrecorded, callbacks sent again). U+FFFD instead, on both stores alike.
 */
const storable = (s: string | null): string | null => (s !== null && s.includes('\u0000') ? s.replaceAll('\u0000', '\uFFFD') : s);

/** What a completed attempt writes: its attempts row (by column) and its outcome's parameters (OUTCOME_PARAMS). */
export function completion(a: AttemptRecord): { row: Params; outcome: Params } {
  const durationMs = Math.round(a.durationMs);
  const json = (h: unknown) => (h ? JSON.stringify(h) : null);
  const o = a.outcome;
  const error = storable(a.error);
  return {
    row: {
      webhook_id: a.webhookId, notification_id: a.notificationId, at: a.startedAt, duration_ms: durationMs, status_code: a.statusCode, error,
      response_snippet: storable(a.responseSnippet), latency_ms: a.latencyMs === null ? null : Math.round(a.latencyMs),
      request_headers: json(a.requestHeaders), response_headers: json(a.responseHeaders),
    },
    outcome: {
      id: a.webhookId, lease: a.lease, now: a.startedAt + durationMs, status: a.statusCode !== null ? String(a.statusCode) : error, claimed: a.claimedSeq,
      ...(o.kind === 'success' ? { next_due: a.nextDueAt, replay_due: a.replayDueAt ?? a.nextDueAt } : o.kind === 'retry' ? { retry_at: o.retryAt } : { reason: storable(o.reason) }),
    },
  };
}

/**
 * Whether a change starts a new notification (a new notify seq, so a new `webhook-id`) rather than
 * joining the one owed: nothing is owed, or what is owed was already attempted and failed (and is
 * not in flight now). A failed attempt may have reached the receiver (a timeout, a 500 answered
 * after its work), and a receiver that deduplicates by `webhook-id` would drop a newer change sent
 * under the same id. The retry schedule is kept. A callback in flight is settled by its outcome
 * (outcomeSetSql: `newer`). `w`: the table's alias and a dot, or ''.
 */
export const OWED_NOTIFICATION_SENT = (w: string): string => `${w}pending_since IS NULL OR (${w}failed_attempts > 0 AND ${w}lease_owner IS NULL)`;

/** A newer change of the record: the webhook owes a notification (coalesced into one owed and not yet attempted). */
export const OWE_CHANGE = `UPDATE webhooks SET
    change_seq = change_seq + 1,
    notify_seq = CASE WHEN ${OWED_NOTIFICATION_SENT('')} THEN change_seq + 1 ELSE notify_seq END,
    pending_since = COALESCE(pending_since, @modified),
    due_at = COALESCE(due_at, @due)
  WHERE orcid = @orcid AND created_at <= @modified`;

export const releaseClaimsSql = (d: Dialect): string =>
  `UPDATE webhooks SET lease_owner = NULL, lease_until = NULL WHERE id IN (${d.list('@ids', 'bigint')}) AND lease_owner = @lease`;

/**
 * The next wake-up: the earliest min(max(due_at, lease_until)) over the owed rows, from the partial
 * index webhooks_due (due_at) instead of reading every owed row (issue 12, cause 5). Walking the
 * index in due_at order, the first row not leased past its due time (`first`) gives due_at; only
 * the rows before it can end earlier, and each of them is leased past its due time: in flight,
 * so few (at most the workers' concurrency). Their lease ends are the other candidates.
 */
export const NEXT_DUE = `WITH first AS (
    SELECT due_at FROM webhooks WHERE enabled = 1 AND due_at IS NOT NULL AND (lease_until IS NULL OR lease_until <= due_at)
    ORDER BY due_at LIMIT 1
  )
  SELECT min(t) AS t FROM (
    SELECT due_at AS t FROM first
    UNION ALL
    SELECT lease_until FROM webhooks WHERE enabled = 1 AND due_at IS NOT NULL
      AND due_at < COALESCE((SELECT due_at FROM first), 9223372036854775807) AND lease_until > due_at
  ) AS candidates`;

/* Worker heartbeats (issue 11). */

export const heartbeatSql = (d: Dialect): string => `INSERT INTO workers (id, started_at, heartbeat_at) VALUES (@worker::text, ${d.now}, ${d.now})
  ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at`;
export const DELETE_WORKER = 'DELETE FROM workers WHERE id = @worker';
/** Rows of workers silent for an hour: long dead, nothing refers to them any more. */
export const pruneWorkersSql = (d: Dialect): string => `DELETE FROM workers WHERE heartbeat_at < ${d.now} - 3600000`;
export const LIST_WORKERS = 'SELECT * FROM workers ORDER BY started_at, id';
export const toWorker = (r: Row): WorkerRow => ({ id: String(r.id), startedAt: Number(r.started_at), heartbeatAt: Number(r.heartbeat_at) });

/** Expires at once the leases held by these workers (dead ones): the next claim takes them over. */
export const expireLeasesSql = (d: Dialect): string =>
  `UPDATE webhooks SET lease_until = 0 WHERE lease_owner IS NOT NULL AND lease_worker IN (${d.list('@workers', 'text')})`;
/**
 * ... or by every worker but these (this one, and on a single node at start the live processes of
 * this host: nobody else should hold claims), leases from before heartbeats included.
 */
export const expireLeasesButSql = (d: Dialect): string =>
  `UPDATE webhooks SET lease_until = 0 WHERE lease_owner IS NOT NULL AND (lease_worker IS NULL OR lease_worker NOT IN (${d.list('@workers', 'text')}))`;
