import { randomBytes } from 'node:crypto';

/**
 * Webhooks' public ids: random, so that no client can count registrations from them (issue 11).
 * The stores keep an integer key internally; every id a client, the dashboard or the CLI sees or
 * sends is this one.
 */
export const PUBLIC_ID_PATTERN = /^wh_[0-9a-f]{32}$/;

export function newWebhookPublicId(): string {
  return `wh_${randomBytes(16).toString('hex')}`;
}

export function isWebhookPublicId(s: string): boolean {
  return PUBLIC_ID_PATTERN.test(s);
}
