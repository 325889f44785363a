import type { ClientDeliverySettings, PayloadMode } from '../types.ts';

/*
 * Client delivery settings, replay and recovery (issue 5): one SQL text for both dialects, each
 * store passing its own placeholders (`@name` for SQLite, `$n::type` for PostgreSQL).
 */

/** One row per existing client (defaults when it has no client_delivery row); none for an unknown client. */
export function deliverySettingsSql(clientId: string): string {
  return `SELECT c.id AS client_id, d.payload_mode, d.signing_secret, d.previous_secret, d.previous_until
    FROM clients c LEFT JOIN client_delivery d ON d.client_id = c.id WHERE c.id = ${clientId}`;
}

/** `open` turns a stored secret into the secret (decryption; see domain/secret-box.ts). */
export function toDeliverySettings(r: Record<string, unknown>, open: (stored: string) => string = (s) => s): ClientDeliverySettings {
  const secret = (v: unknown) => (v === null || v === undefined ? null : open(String(v)));
  return {
    clientId: String(r.client_id),
    payloadMode: r.payload_mode === 'json' ? 'json' : 'empty',
    signingSecret: secret(r.signing_secret),
    previousSigningSecret: secret(r.previous_secret),
    previousSecretUntil: r.previous_until === null || r.previous_until === undefined ? null : Number(r.previous_until),
  };
}

/**
 * Sets the signing secret of an existing client (no row for an unknown one). With `keepUntil` not
 * null, the secret being replaced becomes the previous one until then; otherwise the previous one
 * is dropped. SET sees the old row, so `client_delivery.signing_secret` is the one replaced.
 */
export function setSigningSecretSql(p: { clientId: string; secret: string; keepUntil: string; now: string }): string {
  return `INSERT INTO client_delivery (client_id, signing_secret, previous_secret, previous_until, updated_at)
    SELECT id, ${p.secret}, NULL, NULL, ${p.now} FROM clients WHERE id = ${p.clientId}
    ON CONFLICT (client_id) DO UPDATE SET
      previous_secret = CASE WHEN ${p.keepUntil} IS NOT NULL AND excluded.signing_secret IS NOT NULL THEN client_delivery.signing_secret END,
      previous_until = CASE WHEN ${p.keepUntil} IS NOT NULL AND excluded.signing_secret IS NOT NULL AND client_delivery.signing_secret IS NOT NULL THEN ${p.keepUntil} END,
      signing_secret = excluded.signing_secret,
      updated_at = excluded.updated_at`;
}

export function setPayloadModeSql(p: { clientId: string; mode: string; now: string }): string {
  return `INSERT INTO client_delivery (client_id, payload_mode, updated_at)
    SELECT id, ${p.mode}, ${p.now} FROM clients WHERE id = ${p.clientId}
    ON CONFLICT (client_id) DO UPDATE SET payload_mode = excluded.payload_mode, updated_at = excluded.updated_at`;
}

export const PAYLOAD_MODES: readonly PayloadMode[] = ['empty', 'json'];

/**
 * SET clause of a replay: enabled, failures reset, and one new notification due now. A new notify
 * seq gives it a new `webhook-id`, so a receiver that deduplicates does not drop it. When nothing
 * was owed, it reports the record's current modified time (so its latency counts from that change).
 * A callback in flight sees change_seq moved on when it completes and this one follows it.
 */
export function replaySetSql(now: string): string {
  return `enabled = 1, disabled_reason = NULL, disabled_at = NULL, failed_attempts = 0, failing_since = NULL,
    change_seq = change_seq + 1, notify_seq = change_seq + 1,
    pending_since = COALESCE(pending_since, (SELECT r.modified_at FROM records r WHERE r.orcid = webhooks.orcid)),
    due_at = ${now}`;
}

/** The webhooks recoverWebhooks replays: disabled since `since`, or still failing with a failure since. */
export function recoverWhereSql(p: { clientId: string; since: string }): string {
  return `client_id = ${p.clientId}
    AND ((enabled = 0 AND disabled_at >= ${p.since}) OR (enabled = 1 AND failed_attempts > 0 AND last_failed_at >= ${p.since}))`;
}

/** Every stored signing secret (for re-encryption), locked by the caller's transaction where it can. */
export const STORED_SECRETS_SQL = `SELECT client_id, signing_secret, previous_secret FROM client_delivery
  WHERE signing_secret IS NOT NULL OR previous_secret IS NOT NULL ORDER BY client_id`;

export function updateStoredSecretsSql(p: { clientId: string; secret: string; previous: string }): string {
  return `UPDATE client_delivery SET signing_secret = ${p.secret}, previous_secret = ${p.previous} WHERE client_id = ${p.clientId}`;
}

/**
 * The new values of a stored row when it is re-sealed with the box's current key (plain secrets
 * from before encryption, or sealed with an older key); null when it is current already.
 */
export function resealRow(r: Record<string, unknown>, box: { open(s: string): string; seal(s: string): string; isCurrent(s: string): boolean }): { secret: string | null; previous: string | null } | null {
  const one = (v: unknown) => (v === null || v === undefined ? null : String(v));
  const [secret, previous] = [one(r.signing_secret), one(r.previous_secret)];
  if ([secret, previous].every((v) => v === null || box.isCurrent(v))) return null;
  const redo = (v: string | null) => (v === null || box.isCurrent(v) ? v : box.seal(box.open(v)));
  return { secret: redo(secret), previous: redo(previous) };
}
