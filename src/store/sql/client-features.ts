import type { Dialect } from '../dialect.ts';
import type { ClientDeliverySettings } from '../types.ts';

/* Client delivery settings: payload mode and signing secrets (issue 5). */

/** One row per existing client (defaults when it has no client_delivery row); none for an unknown client. */
export const DELIVERY_SETTINGS = `SELECT c.id AS client_id, d.payload_mode, d.signing_secret, d.previous_secret, d.previous_until
  FROM clients c LEFT JOIN client_delivery d ON d.client_id = c.id WHERE c.id = @clientId`;

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
export const SET_SIGNING_SECRET = `INSERT INTO client_delivery (client_id, signing_secret, previous_secret, previous_until, updated_at)
    SELECT id, @secret::text, NULL, NULL, @now::bigint FROM clients WHERE id = @clientId::text
    ON CONFLICT (client_id) DO UPDATE SET
      previous_secret = CASE WHEN @keepUntil::bigint IS NOT NULL AND excluded.signing_secret IS NOT NULL THEN client_delivery.signing_secret END,
      previous_until = CASE WHEN @keepUntil::bigint IS NOT NULL AND excluded.signing_secret IS NOT NULL AND client_delivery.signing_secret IS NOT NULL THEN @keepUntil::bigint END,
      signing_secret = excluded.signing_secret,
      updated_at = excluded.updated_at`;

export const SET_PAYLOAD_MODE = `INSERT INTO client_delivery (client_id, payload_mode, updated_at)
    SELECT id, @mode::text, @now::bigint FROM clients WHERE id = @clientId::text
    ON CONFLICT (client_id) DO UPDATE SET payload_mode = excluded.payload_mode, updated_at = excluded.updated_at`;

/** Every stored signing secret (for re-encryption), locked by the caller's transaction where it can. */
export const storedSecretsSql = (d: Dialect): string => `SELECT client_id, signing_secret, previous_secret FROM client_delivery
  WHERE signing_secret IS NOT NULL OR previous_secret IS NOT NULL ORDER BY client_id${d.lock('UPDATE')}`;

export const UPDATE_STORED_SECRETS = 'UPDATE client_delivery SET signing_secret = @secret, previous_secret = @previous WHERE client_id = @clientId';

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
