import { stateFilterIndex, stateFilterSql } from '../../domain/webhook-state.ts';
import { num, type Dialect, type Row } from '../dialect.ts';
import type { WebhookFilter, WebhookRow } from '../types.ts';

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
/** ON CONFLICT: a concurrent registration (PostgreSQL) inserted it first; the caller looks again. */
export const INSERT_WEBHOOK = `INSERT INTO webhooks (client_id, orcid, url, host, created_at, public_id) VALUES (@clientId, @orcid, @url, @host, @now, @publicId)
  ON CONFLICT (client_id, orcid, url) DO NOTHING RETURNING *`;

/** Re-enables a disabled webhook: failures reset, and a notification it still owed becomes due now. */
const REENABLE = `UPDATE webhooks SET enabled = 1, disabled_reason = NULL, disabled_at = NULL, failed_attempts = 0, failing_since = NULL,
    due_at = CASE WHEN pending_since IS NOT NULL THEN @now::bigint ELSE NULL END`;
export const REENABLE_BY_KEY = `${REENABLE} WHERE client_id = @clientId AND orcid = @orcid AND url = @url AND enabled = 0 RETURNING *`;
export const REENABLE_BY_ID = `${REENABLE} WHERE id = @id AND enabled = 0 RETURNING *`;

/**
 * PostgreSQL registers in one statement and one round trip, without a transaction (SQLite has no
 * writable CTEs, and its single writer needs no such care). Found: re-enabled when disabled. New:
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

/** The iDs among a list that have at least one enabled webhook. */
export const watchedOrcidsSql = (d: Dialect): string => `SELECT DISTINCT orcid FROM webhooks WHERE enabled = 1 AND orcid IN (${d.list('@orcids', 'text')})`;

/** A filtered page of webhooks (parameters: the filter's fields); the statement text depends only on which filters are given. */
export function listWebhooksSql(d: Dialect, f: WebhookFilter): string {
  const where: string[] = ['id > @afterId'];
  if (f.clientId !== undefined) where.push('client_id = @clientId');
  if (f.orcid !== undefined) where.push('orcid = @orcid');
  if (f.state !== undefined) where.push(stateFilterSql(f.state));
  if (f.search) where.push(`(orcid = @search OR client_id = @search OR ${d.contains('lower(url)', 'lower(@search)')})`);
  // A rare state's page walks its partial index (migration 008); by iD, the iD's index is smaller.
  const index = f.state !== undefined && f.orcid === undefined ? stateFilterIndex(f.state, f.clientId !== undefined) : null;
  const indexedBy = index && d.name === 'sqlite' ? ` INDEXED BY ${index}` : '';
  return `SELECT * FROM webhooks${indexedBy} WHERE ${where.join(' AND ')} ORDER BY id LIMIT @limit`;
}

export function toWebhook(r: Row): WebhookRow {
  return {
    id: Number(r.id), publicId: String(r.public_id), clientId: String(r.client_id), orcid: String(r.orcid), url: String(r.url), host: String(r.host),
    createdAt: Number(r.created_at), enabled: Boolean(r.enabled),
    disabledReason: (r.disabled_reason as string | null) ?? null, disabledAt: num(r.disabled_at),
    pendingSince: num(r.pending_since), dueAt: num(r.due_at), changeSeq: Number(r.change_seq), notifySeq: Number(r.notify_seq),
    failedAttempts: Number(r.failed_attempts), failingSince: num(r.failing_since), lastSentAt: num(r.last_sent_at), lastFailedAt: num(r.last_failed_at),
    lastStatus: (r.last_status as string | null) ?? null, lease: (r.lease_owner as string | null) ?? null,
    leaseUntil: num(r.lease_until),
  };
}
