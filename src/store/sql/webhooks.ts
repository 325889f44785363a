import { stateFilterIndex, stateFilterSql } from '../../domain/webhook-state.ts';
import { num, type Dialect, type Row } from '../dialect.ts';
import type { ClaimedWebhook, WebhookFilter, WebhookRow } from '../types.ts';

/* Webhooks: registration, look-ups, lists, re-enabling, replay and recovery. */

export const FIND_WEBHOOK = 'SELECT * FROM webhooks WHERE client_id = @clientId AND orcid = @orcid AND url = @url';
export const GET_WEBHOOK = 'SELECT * FROM webhooks WHERE id = @id';
export const GET_WEBHOOK_BY_PUBLIC_ID = 'SELECT * FROM webhooks WHERE public_id = @publicId';
export const DELETE_WEBHOOK = 'DELETE FROM webhooks WHERE client_id = @clientId AND orcid = @orcid AND url = @url';
/**
 * The per-client cap without a count(*) per registration (43 ms at 1M webhooks): the statement that
 * takes a place on the client row (clients.webhook_count) is the one that checks the cap.
 */
export const TAKE_PLACE = 'UPDATE clients SET webhook_count = webhook_count + 1 WHERE id = @clientId AND webhook_count < @cap::bigint';
export const GIVE_BACK_PLACE = 'UPDATE clients SET webhook_count = webhook_count - 1 WHERE id = @clientId';
/**
 * SQLite's insert of a new webhook (its single writer has looked for it first). RETURNING id, not
 * *: the rest of the row is the input and the columns' defaults (newWebhookRow), and better-sqlite3
 * took ~30 µs to build RETURNING *'s 23-column row object, ~8 % of a registration.
 */
export const INSERT_WEBHOOK = `INSERT INTO webhooks (client_id, orcid, url, host, created_at, public_id) VALUES (@clientId, @orcid, @url, @host, @now, @publicId)
  RETURNING id`;

/**
 * The row INSERT_WEBHOOK wrote: the input, and the defaults of the columns it leaves out
 * (test/store.test.ts, "creates, then answers exists", compares it with the row read back).
 */
export function newWebhookRow(id: number, w: { clientId: string; orcid: string; url: string; host: string; now: number; publicId: string }): WebhookRow {
  return {
    id, publicId: w.publicId, clientId: w.clientId, orcid: w.orcid, url: w.url, host: w.host,
    pendingSince: null, dueAt: null, changeSeq: 0, notifySeq: 0, failedAttempts: 0, failingSince: null, lease: null,
    createdAt: w.now, enabled: true, disabledReason: null, disabledAt: null, lastSentAt: null, lastFailedAt: null, lastStatus: null, leaseUntil: null,
  };
}

/** Re-enables a disabled webhook: failures reset, and a notification it still owed becomes due now. */
const reenable = (now: string): string => `UPDATE webhooks SET enabled = 1, disabled_reason = NULL, disabled_at = NULL, failed_attempts = 0, failing_since = NULL,
    due_at = CASE WHEN pending_since IS NOT NULL THEN ${now} ELSE NULL END`;
const REENABLE = reenable('@now::bigint');
export const REENABLE_BY_KEY = `${REENABLE} WHERE client_id = @clientId AND orcid = @orcid AND url = @url AND enabled = 0 RETURNING *`;
export const REENABLE_BY_ID = `${REENABLE} WHERE id = @id AND enabled = 0 RETURNING *`;

/**
 * A PostgreSQL registration alone in its turn (REGISTER_BATCH for several), prepared: in one
 * statement and one round trip, without a transaction (SQLite has no writable CTEs, and its single
 * writer needs no such care). Found: re-enabled when disabled. New:
 * the record is locked FOR SHARE so that a change being applied to it (FOR NO KEY UPDATE) either
 * sees this webhook or committed before it; the client's place is taken by the UPDATE that checks
 * the cap (its row lock lasts this statement only); then the row is inserted. No row found: the
 * record is missing (has_record = false, took = false unless it is being created), the cap was
 * reached (took = false), or a concurrent registration of the same webhook or record won (took =
 * true: the caller gives the place back and asks again).
 */
export const REGISTER_IN_ONE_STATEMENT = `WITH existing AS (
    ${FIND_WEBHOOK}
  ), reenabled AS (
    ${REENABLE} WHERE id IN (SELECT id FROM existing WHERE enabled = 0) RETURNING *
  ), record AS (
    SELECT orcid FROM records WHERE orcid = @orcid AND NOT EXISTS (SELECT 1 FROM existing) FOR SHARE
  ), place AS (
    UPDATE clients SET webhook_count = webhook_count + 1
    WHERE id = @clientId AND NOT EXISTS (SELECT 1 FROM existing) AND (EXISTS (SELECT 1 FROM record) OR @createRecord::boolean)
      AND (@cap::bigint IS NULL OR webhook_count < @cap::bigint) RETURNING id
  ), placeholder AS (
    INSERT INTO records (orcid, modified_at, created_at, placeholder) SELECT @orcid, @now::bigint, @now::bigint, 1 FROM place
    WHERE NOT EXISTS (SELECT 1 FROM record) ON CONFLICT (orcid) DO NOTHING RETURNING orcid
  ), created AS (
    INSERT INTO webhooks (client_id, orcid, url, host, created_at, public_id)
    SELECT @clientId, @orcid, @url, @host, @now::bigint, @publicId FROM place
    WHERE EXISTS (SELECT 1 FROM record) OR EXISTS (SELECT 1 FROM placeholder)
    ON CONFLICT (client_id, orcid, url) DO NOTHING RETURNING *
  ), found AS (
    SELECT 'reenabled' AS kind, * FROM reenabled
    UNION ALL SELECT 'existing', * FROM existing WHERE enabled = 1
    UNION ALL SELECT 'created', * FROM created
  )
  SELECT EXISTS (SELECT 1 FROM place) AS took, EXISTS (SELECT 1 FROM record) AS has_record, found.*
  FROM (VALUES (1)) AS one LEFT JOIN found ON true`;

/** The marker of REGISTER_BATCH's deliberate error when it lost a race (see there). */
export const REGISTER_RACED = 'webhooks registered concurrently';
/**
 * PostgreSQL's group commit of registrations (issue 12): the registrations of one event-loop turn
 * in one statement, without a transaction, each answered as REGISTER_IN_ONE_STATEMENT would answer
 * it alone, in order. The inputs are arrays (@clientIds, @orcids, @urls, @hosts, @nows, @publicIds,
 * @caps, @createRecords) with no (client, iD, URL) twice and one cap per client (the caller holds
 * the others back to the next batch). Each client's row is updated once for all its new webhooks,
 * so they cost one row lock and one commit instead of one each (the lock is held until the commit:
 * one client's registrations were serialised by the WAL flush, ~700/s).
 *  - existing: found ones; disabled ones are re-enabled (reenabled);
 *  - record: the records of the others, locked FOR SHARE in iD order (as applyChanges locks them):
 *    a change being applied either sees these webhooks or committed before them;
 *  - wanting: those that may take a place (record there, or createRecord), ranked per client;
 *  - client, granted, place: each client's row locked (id order), then given min(wanted, cap -
 *    count) places; the first `granted` of its inputs take them (taking), the others hit the cap;
 *  - placeholder, created: the placeholder records (createRecord) and the webhooks inserted.
 * A race lost to another writer (a webhook or record inserted meanwhile) makes `created` come up
 * short: the statement then fails on purpose (REGISTER_RACED), undoing everything, places
 * included, and runs again, seeing the winner's rows. The wake-up (pg_notify) goes with it when a
 * re-enabled webhook owes a notification. One row per input, in order: outcome 'reenabled',
 * 'existing', 'created', 'limit', 'no-client' or 'no-record', and the webhook (JSON).
 */
export const REGISTER_BATCH = `WITH
  input AS (
    SELECT * FROM unnest(@clientIds::text[], @orcids::text[], @urls::text[], @hosts::text[], @nows::bigint[], @publicIds::text[], @caps::bigint[],
      @createRecords::boolean[]) WITH ORDINALITY AS i(client_id, orcid, url, host, at, public_id, cap, create_record, n)),
  existing AS MATERIALIZED (
    SELECT i.n, i.at, w.id AS webhook_id, w.enabled = 1 AS was_enabled, row_to_json(w) AS webhook
    FROM input i JOIN webhooks w ON w.client_id = i.client_id AND w.orcid = i.orcid AND w.url = i.url),
  reenabled AS (
    ${reenable('e.at')} FROM existing e WHERE webhooks.id = e.webhook_id AND NOT e.was_enabled
    RETURNING e.n, webhooks.due_at, row_to_json(webhooks) AS webhook),
  fresh AS (SELECT * FROM input WHERE n NOT IN (SELECT n FROM existing)),
  record AS (SELECT orcid FROM records WHERE orcid IN (SELECT orcid FROM fresh) ORDER BY orcid FOR SHARE),
  wanting AS (
    SELECT *, row_number() OVER (PARTITION BY client_id ORDER BY n) AS rank FROM fresh
    WHERE create_record OR orcid IN (SELECT orcid FROM record)),
  client AS MATERIALIZED (
    SELECT id, webhook_count FROM clients WHERE id IN (SELECT client_id FROM wanting) ORDER BY id FOR NO KEY UPDATE),
  granted AS MATERIALIZED (
    SELECT c.id, LEAST(w.wanted, GREATEST(0, COALESCE(w.cap - c.webhook_count, w.wanted))) AS places
    FROM client c JOIN (SELECT client_id, count(*) AS wanted, min(cap) AS cap FROM wanting GROUP BY client_id) w ON w.client_id = c.id),
  place AS (
    UPDATE clients SET webhook_count = webhook_count + g.places FROM granted g WHERE clients.id = g.id AND g.places > 0 RETURNING 1),
  taking AS (SELECT w.* FROM wanting w JOIN granted g ON g.id = w.client_id WHERE w.rank <= g.places),
  placeholder AS (
    INSERT INTO records (orcid, modified_at, created_at, placeholder)
    SELECT DISTINCT ON (orcid) orcid, at, at, 1 FROM taking WHERE orcid NOT IN (SELECT orcid FROM record) ORDER BY orcid, n
    ON CONFLICT (orcid) DO NOTHING RETURNING orcid),
  created AS (
    INSERT INTO webhooks (client_id, orcid, url, host, created_at, public_id)
    SELECT client_id, orcid, url, host, at, public_id FROM taking
    WHERE orcid IN (SELECT orcid FROM record UNION ALL SELECT orcid FROM placeholder) ORDER BY client_id, orcid, url
    ON CONFLICT (client_id, orcid, url) DO NOTHING RETURNING *),
  checked AS (
    SELECT CASE WHEN (SELECT count(*) FROM created) < (SELECT count(*) FROM taking)
      THEN ('${REGISTER_RACED} ' || (SELECT count(*) FROM created))::int END AS raced,
    CASE WHEN EXISTS (SELECT 1 FROM reenabled WHERE due_at IS NOT NULL) THEN pg_notify(@channel::text, current_schema()) END AS woke)
  SELECT i.n, COALESCE(r.webhook, e.webhook, row_to_json(c)) AS webhook,
    CASE WHEN r.n IS NOT NULL THEN 'reenabled' WHEN e.n IS NOT NULL THEN 'existing' WHEN c.id IS NOT NULL THEN 'created'
      WHEN i.n NOT IN (SELECT n FROM wanting) THEN 'no-record' WHEN i.client_id IN (SELECT id FROM client) THEN 'limit' ELSE 'no-client' END AS outcome
  FROM input i
    LEFT JOIN reenabled r ON r.n = i.n
    LEFT JOIN existing e ON e.n = i.n AND e.was_enabled
    LEFT JOIN created c ON c.client_id = i.client_id AND c.orcid = i.orcid AND c.url = i.url
    CROSS JOIN checked
  ORDER BY i.n`;

/**
 * A replay: enabled, failures reset, and one new notification due now. A new notify seq gives it a
 * new `webhook-id`, so a receiver that deduplicates does not drop it. When nothing was owed, it
 * reports the record's current modified time (so its latency counts from that change). A callback
 * in flight sees change_seq moved on when it completes and this one follows it.
 */
const REPLAY = `UPDATE webhooks SET enabled = 1, disabled_reason = NULL, disabled_at = NULL, failed_attempts = 0, failing_since = NULL,
    change_seq = change_seq + 1, notify_seq = change_seq + 1,
    pending_since = COALESCE(pending_since, (SELECT r.modified_at FROM records r WHERE r.orcid = webhooks.orcid)),
    due_at = @now::bigint`;
export const REPLAY_WEBHOOK = `${REPLAY} WHERE id = @id RETURNING *`;
/** recoverWebhooks: the client's webhooks disabled since `since`, or still failing with a failure since. */
export const RECOVER_WEBHOOKS = `${REPLAY} WHERE client_id = @clientId
  AND ((enabled = 0 AND disabled_at >= @since::bigint) OR (enabled = 1 AND failed_attempts > 0 AND last_failed_at >= @since::bigint))`;
export const lockWebhookSql = (d: Dialect): string => `SELECT enabled FROM webhooks WHERE id = @id${d.lock('NO KEY UPDATE')}`;

/**
 * The iDs among a list that have at least one enabled webhook: each iD's webhooks read from
 * webhooks_orcid up to the first enabled one (a record with 10,000 webhooks costs one row, not all).
 */
export const watchedOrcidsSql = (d: Dialect): string => `SELECT DISTINCT i.value AS orcid FROM (${d.list('@orcids', 'text')}) i
  WHERE EXISTS (SELECT 1 FROM webhooks w WHERE w.orcid = i.value AND w.enabled = 1)`;

/** A filtered page of webhooks (parameters: the filter's fields); the statement text depends only on which filters are given. */
export function listWebhooksSql(d: Dialect, f: WebhookFilter): string {
  const where: string[] = ['id > @afterId'];
  if (f.clientId !== undefined) where.push('client_id = @clientId');
  if (f.orcid !== undefined) where.push('orcid = @orcid');
  if (f.host !== undefined) where.push('host = @host');
  if (f.state !== undefined) where.push(stateFilterSql(f.state));
  if (f.search) where.push(`(orcid = @search OR client_id = @search OR ${d.contains(d.lowerAscii('url'), d.lowerAscii('@search::text'))})`);
  // A rare state's page walks its partial index (migration 008); by iD, the iD's index is smaller.
  const index = f.state !== undefined && f.orcid === undefined ? stateFilterIndex(f.state, f.clientId !== undefined) : null;
  const indexedBy = index && d.name === 'sqlite' ? ` INDEXED BY ${index}` : '';
  return `SELECT * FROM webhooks${indexedBy} WHERE ${where.join(' AND ')} ORDER BY id LIMIT @limit`;
}

/** The columns a claim returns (claims.ts), mapped; `lease` is the lease token held. */
export function toClaimedWebhook(r: Row, lease: string | null): ClaimedWebhook {
  return {
    id: Number(r.id), publicId: String(r.public_id), clientId: String(r.client_id), orcid: String(r.orcid), url: String(r.url), host: String(r.host),
    pendingSince: num(r.pending_since), dueAt: num(r.due_at), changeSeq: Number(r.change_seq), notifySeq: Number(r.notify_seq),
    failedAttempts: Number(r.failed_attempts), failingSince: num(r.failing_since), lease,
  };
}

/*
 * Object.assign, not a spread: on Node 20 `{ ...claimed, more }` took ~15 µs a row (V8's slow clone
 * path), 5 % of a registration's CPU; this takes ~1 µs.
 */
export function toWebhook(r: Row): WebhookRow {
  return Object.assign(toClaimedWebhook(r, (r.lease_owner as string | null) ?? null), {
    createdAt: Number(r.created_at), enabled: Boolean(r.enabled),
    disabledReason: (r.disabled_reason as string | null) ?? null, disabledAt: num(r.disabled_at),
    lastSentAt: num(r.last_sent_at), lastFailedAt: num(r.last_failed_at), lastStatus: (r.last_status as string | null) ?? null,
    leaseUntil: num(r.lease_until),
  });
}
