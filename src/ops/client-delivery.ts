import { newSigningSecret } from '../domain/signing.ts';
import type { PayloadMode, Store } from '../store/types.ts';

/**
 * Signing secrets, payload mode, replay and recovery: the rules the admin API and the CLI share.
 * Errors are plain values with a kind, which each caller renders in its own form.
 */
export class ClientDeliveryError extends Error {
  constructor(readonly kind: 'no-client' | 'has-secret', message: string) {
    super(message);
  }
}

const noClient = (id: string) => new ClientDeliveryError('no-client', `No client with id ${id}`);

export interface IssuedSecret {
  clientId: string;
  /** Shown this once: it cannot be read back. */
  secret: string;
  /** Until when the replaced secret still signs (a rotation); null when none was replaced. */
  previousExpiresAt: number | null;
}

/**
 * Gives the client a new signing secret. Without `rotate` a client that already has one is
 * refused (replacing it at once would break its receivers' verification); with `rotate` the old
 * one keeps signing, beside the new, for graceMs.
 */
export async function issueSigningSecret(store: Store, clientId: string, opts: { rotate: boolean; graceMs: number; now: number }): Promise<IssuedSecret> {
  const secret = newSigningSecret();
  // Decided and written in one transaction holding the client's row: of two issued at once, the
  // second sees the first (has-secret, or rotates from it).
  const issued = await store.changeSigningSecret(clientId, opts.now, (current) => {
    if (current.signingSecret && !opts.rotate) {
      throw new ClientDeliveryError('has-secret', `Client ${clientId} already has a signing secret: rotate it (both signatures are sent for the grace period), or remove it first`);
    }
    const previousUntil = current.signingSecret && opts.graceMs > 0 ? opts.now + opts.graceMs : null;
    return { secret, previousUntil, result: { clientId, secret, previousExpiresAt: previousUntil } };
  });
  if (!issued) throw noClient(clientId);
  return issued;
}

/** Stops signing the client's callbacks (current and previous secrets are forgotten). */
export async function removeSigningSecret(store: Store, clientId: string, now: number): Promise<void> {
  if (!(await store.setSigningSecret(clientId, null, { previousUntil: null, now }))) throw noClient(clientId);
}

export async function setPayloadMode(store: Store, clientId: string, mode: PayloadMode, now: number): Promise<void> {
  if (!(await store.setPayloadMode(clientId, mode, now))) throw noClient(clientId);
}

/** Replays the client's webhooks disabled or failing since `since`; the count. */
export async function recoverClientWebhooks(store: Store, clientId: string, since: number, now: number): Promise<number> {
  if (!(await store.getClient(clientId))) throw noClient(clientId);
  return store.recoverWebhooks(clientId, since, now);
}

/** What may be said about a client's settings: never the secrets themselves. */
export async function deliverySettingsView(store: Store, clientId: string, now: number) {
  const s = await store.getClientDeliverySettings(clientId);
  if (!s) throw noClient(clientId);
  const rotating = s.previousSigningSecret !== null && (s.previousSecretUntil ?? 0) > now;
  return {
    client: clientId,
    payload: s.payloadMode,
    signed: s.signingSecret !== null,
    previousSecretExpires: rotating ? new Date(s.previousSecretUntil!).toISOString() : null,
  };
}
