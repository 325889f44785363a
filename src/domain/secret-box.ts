import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/**
 * Signing secrets at rest: AES-256-GCM with a key kept outside the database (issue 11). A sealed
 * value reads `enc:v1:<key id>:<iv>:<ciphertext>:<tag>` (base64url); the key id (8 hex digits of
 * the key's SHA-256) says which key sealed it, so several keys can be held during a rotation: the
 * first seals, all open. A value without the `enc:` prefix is a secret stored before encryption
 * (`whsec_...`) and is read as it is until it is sealed.
 */
const PREFIX = 'enc:v1:';

export class SecretBoxError extends Error {}

export function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

/** Parses one key: 32 bytes in base64 or base64url (44 or 43 characters). */
export function parseKey(text: string, where: string): Buffer {
  const t = text.trim();
  const key = /^[A-Za-z0-9+/_-]{43}=?$/.test(t) ? Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64') : Buffer.alloc(0);
  if (key.length !== 32) throw new SecretBoxError(`${where}: a secrets key is 32 random bytes in base64 (e.g. from \`openssl rand -base64 32\`)`);
  return key;
}

export function newKey(): string {
  return randomBytes(32).toString('base64');
}

export class SecretBox {
  private readonly keys: Map<string, Buffer>;
  readonly currentKeyId: string;
  private readonly current: Buffer;

  /** keys[0] seals; every key opens. */
  constructor(keys: Buffer[]) {
    if (!keys.length) throw new SecretBoxError('a SecretBox needs at least one key');
    this.current = keys[0]!;
    this.currentKeyId = keyId(this.current);
    this.keys = new Map(keys.map((k) => [keyId(k), k]));
  }

  seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.current, iv);
    const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return `${PREFIX}${this.currentKeyId}:${iv.toString('base64url')}:${ct.toString('base64url')}:${cipher.getAuthTag().toString('base64url')}`;
  }

  open(stored: string): string {
    if (!stored.startsWith(PREFIX)) return stored;
    const [kid, iv, ct, tag] = stored.slice(PREFIX.length).split(':');
    const key = this.keys.get(kid ?? '');
    if (!key || !iv || ct === undefined || !tag) {
      throw new SecretBoxError(`a signing secret is sealed with key ${kid}, which is not among the configured secrets keys (${[...this.keys.keys()].join(', ')})`);
    }
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
  }

  /** Sealed with the current key (nothing to redo at a rotation or after an upgrade). */
  isCurrent(stored: string): boolean {
    return stored.startsWith(`${PREFIX}${this.currentKeyId}:`);
  }
}
