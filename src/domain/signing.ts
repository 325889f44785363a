import { createHmac, randomBytes } from 'node:crypto';

/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com): a secret is `whsec_` + base64 of
 * the HMAC key; a signature is `v1,` + base64 of HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`.
 */
const SECRET_PREFIX = 'whsec_';

/** 32 random bytes (the specification asks for 24 to 64). */
const KEY_BYTES = 32;

export function newSigningSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(KEY_BYTES).toString('base64')}`;
}

/** The HMAC key of a `whsec_` secret; throws when it is not one. */
export function signingKey(secret: string): Buffer {
  if (!secret.startsWith(SECRET_PREFIX)) throw new Error('a signing secret starts with whsec_');
  const key = Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
  if (key.length < 24) throw new Error('a signing secret holds at least 24 bytes of key');
  return key;
}

/** `v1,<base64 signature>` of one message under one key. */
export function sign(key: Buffer, msgId: string, timestampSec: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${msgId}.${timestampSec}.${body}`).digest('base64')}`;
}

/** The `webhook-signature` header: one signature per key, space-separated (several during a rotation). */
export function signatureHeader(keys: readonly Buffer[], msgId: string, timestampSec: number, body: string): string {
  return keys.map((k) => sign(k, msgId, timestampSec, body)).join(' ');
}
