import { randomFillSync } from 'node:crypto';

/**
 * Webhooks' public ids: random, so that no client can count registrations from them (issue 11).
 * The stores keep an integer key internally; every id a client, the dashboard or the CLI sees or
 * sends is this one.
 */
export const PUBLIC_ID_PATTERN = /^wh_[0-9a-f]{32}$/;

/** CSPRNG bytes drawn 256 ids at a time (as crypto.randomUUID does): one call per id cost ~1 % of a registration. */
const pool = Buffer.alloc(16 * 256);
let taken = pool.length;

export function newWebhookPublicId(): string {
  if (taken === pool.length) {
    randomFillSync(pool);
    taken = 0;
  }
  taken += 16;
  return `wh_${pool.toString('hex', taken - 16, taken)}`;
}

export function isWebhookPublicId(s: string): boolean {
  return PUBLIC_ID_PATTERN.test(s);
}
