import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { testConfig } from '../src/config.ts';
import { SecretBox, newKey, parseKey } from '../src/domain/secret-box.ts';
import { createLogger } from '../src/logger.ts';
import { createApiClient } from '../src/ops/clients.ts';
import { loadSecretBox } from '../src/ops/secrets-key.ts';
import { startService } from '../src/service.ts';
import { createStore } from '../src/store/index.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import type { Store } from '../src/store/types.ts';
import { ADMIN_TOKEN, backends } from './helpers/harness.ts';
import { createTestSchema } from './helpers/postgres.ts';
import { runCli } from './helpers/cli.ts';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const key = () => parseKey(newKey(), 'test');
const mode = (path: string) => statSync(path).mode & 0o777;

async function rawSecrets(store: Store, clientId: string): Promise<{ signing_secret: string | null; previous_secret: string | null }> {
  const sql = 'SELECT signing_secret, previous_secret FROM client_delivery WHERE client_id = ';
  if (store.dialect === 'postgres') return (await (store as unknown as { pool: { query(s: string, p: unknown[]): Promise<{ rows: never[] }> } }).pool.query(`${sql}$1`, [clientId])).rows[0]!;
  return (store as unknown as SqliteStore).db.prepare(`${sql}?`).get(clientId) as never;
}

describe('SecretBox', () => {
  test('AES-256-GCM round trip; a plain secret from before encryption reads as it is; tampering and unknown keys fail', () => {
    const [k1, k2] = [key(), key()];
    const box = new SecretBox([k1]);
    const sealed = box.seal(SECRET);
    assert.match(sealed, /^enc:v1:[0-9a-f]{8}:/);
    assert.ok(!sealed.includes(SECRET.slice(6)));
    assert.notEqual(box.seal(SECRET), sealed, 'a fresh IV each time');
    assert.equal(box.open(sealed), SECRET);
    assert.equal(box.open(SECRET), SECRET);
    assert.throws(() => new SecretBox([k2]).open(sealed), /not among the configured secrets keys/);
    const parts = sealed.split(':');
    parts[5] = Buffer.from('x'.repeat(16)).toString('base64url');
    assert.throws(() => box.open(parts.join(':')));
    assert.equal(new SecretBox([k2, k1]).open(sealed), SECRET, 'an older key still opens during a rotation');
    assert.throws(() => parseKey('too-short', 'x'), /32 random bytes/);
  });
});

for (const { backend, skip } of await backends()) describe(`signing secrets at rest on ${backend}`, { skip }, () => {
  test('stored encrypted, read back in clear; plain secrets of before are sealed by resealSigningSecrets; key rotation re-seals', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ow-secrets-'));
    const schema = backend === 'postgres' ? await createTestSchema() : null;
    const url = schema ? schema.url : `sqlite:${join(dir, 'db.sqlite')}`;
    const [k1, k2] = [key(), key()];
    const open = async (keys: Buffer[] | null) => {
      const s = await createStore(url, keys ? { secrets: new SecretBox(keys) } : {});
      await s.migrate();
      return s;
    };
    try {
      // Before encryption: a store without a key writes the secret as it is.
      let s = await open(null);
      const { client } = await createApiClient(s, { name: 'c', premium: true });
      const { client: other } = await createApiClient(s, { name: 'd', premium: true });
      await s.setSigningSecret(client.id, SECRET, { previousUntil: null, now: 1 });
      assert.equal((await rawSecrets(s, client.id)).signing_secret, SECRET);
      await s.close();

      s = await open([k1]);
      assert.equal((await s.getClientDeliverySettings(client.id))?.signingSecret, SECRET, 'a plain secret keeps working');
      assert.equal(await s.resealSigningSecrets(), 1);
      assert.equal(await s.resealSigningSecrets(), 0, 'nothing left to do');
      const sealed = (await rawSecrets(s, client.id)).signing_secret!;
      assert.match(sealed, /^enc:v1:/);
      assert.ok(!sealed.includes(SECRET.slice(6)));
      assert.equal((await s.getClientDeliverySettings(client.id))?.signingSecret, SECRET);
      // New and rotated secrets are sealed as written, the previous one too.
      await s.setSigningSecret(other.id, `${SECRET}x`, { previousUntil: null, now: 2 });
      await s.setSigningSecret(other.id, `${SECRET}y`, { previousUntil: 10_000, now: 3 });
      const raw = await rawSecrets(s, other.id);
      assert.match(raw.signing_secret!, /^enc:v1:/);
      assert.match(raw.previous_secret!, /^enc:v1:/);
      assert.deepEqual(await s.getClientDeliverySettings(other.id).then((d) => [d?.signingSecret, d?.previousSigningSecret]), [`${SECRET}y`, `${SECRET}x`]);
      await s.close();

      // Rotation: the new key first, the old one still opening; reseal; then the new key alone.
      s = await open([k2, k1]);
      assert.equal(await s.resealSigningSecrets(), 2);
      await s.close();
      s = await open([k2]);
      assert.equal((await s.getClientDeliverySettings(client.id))?.signingSecret, SECRET);
      assert.equal((await s.getClientDeliverySettings(other.id))?.previousSigningSecret, `${SECRET}x`);
      await s.close();
      s = await open([k1]);
      await assert.rejects(s.getClientDeliverySettings(client.id), /not among the configured secrets keys/, 'the old key alone no longer opens them');
      await s.close();
    } finally {
      await schema?.drop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('files at rest (SQLite service)', () => {
  test('data directory 0700; database, -wal, -shm, admin token and secrets key 0600; a plain secret is sealed at start', async () => {
    const root = mkdtempSync(join(tmpdir(), 'ow-perm-'));
    try {
      // A fresh data directory.
      const dir = join(root, 'data');
      const svc = await startService(testConfig({ db: `sqlite:${join(dir, 'db.sqlite')}`, logLevel: 'silent' }), { listen: false, logger: createLogger('silent') });
      const { client } = await createApiClient(svc.store, { name: 'c', premium: true });
      await svc.store.setSigningSecret(client.id, SECRET, { previousUntil: null, now: 1 });
      assert.equal(mode(dir), 0o700);
      for (const f of ['db.sqlite', 'db.sqlite-wal', 'db.sqlite-shm', 'admin-token', 'secrets-key']) assert.equal(mode(join(dir, f)), 0o600, f);
      await svc.close();

      // An older installation: 0755 directory, 0644 files, a secret stored in clear.
      const old = join(root, 'old');
      mkdirSync(old, { mode: 0o755 });
      chmodSync(old, 0o755);
      const legacy = new SqliteStore(join(old, 'db.sqlite'));
      await legacy.migrate();
      const c2 = await createApiClient(legacy, { name: 'c', premium: true });
      await legacy.setSigningSecret(c2.client.id, SECRET, { previousUntil: null, now: 1 });
      await legacy.close();
      chmodSync(join(old, 'db.sqlite'), 0o644);
      const again = await startService(testConfig({ db: `sqlite:${join(old, 'db.sqlite')}`, adminToken: ADMIN_TOKEN, logLevel: 'silent' }), { listen: false, logger: createLogger('silent') });
      assert.equal(mode(old), 0o700);
      assert.equal(mode(join(old, 'db.sqlite')), 0o600);
      assert.match((await rawSecrets(again.store, c2.client.id)).signing_secret!, /^enc:v1:/);
      assert.equal((await again.store.getClientDeliverySettings(c2.client.id))?.signingSecret, SECRET);
      await again.close();

      // A shared directory (other files in it) keeps its mode.
      const shared = join(root, 'shared');
      mkdirSync(shared, { mode: 0o755 });
      chmodSync(shared, 0o755);
      writeFileSync(join(shared, 'someone-else.txt'), 'x');
      const third = await startService(testConfig({ db: `sqlite:${join(shared, 'db.sqlite')}`, adminToken: ADMIN_TOKEN, logLevel: 'silent' }), { listen: false, logger: createLogger('silent') });
      assert.equal(mode(shared), 0o755);
      assert.equal(mode(join(shared, 'db.sqlite')), 0o600);
      await third.close();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('CLI secrets rotate-key: a new key in the key file, every secret re-encrypted with it, the old key dropped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ow-rotate-'));
    try {
      const db = join(dir, 'db.sqlite');
      const box = loadSecretBox(null, dir);
      const s = new SqliteStore(db, { secrets: box.box });
      await s.migrate();
      const { client } = await createApiClient(s, { name: 'c', premium: true });
      await s.setSigningSecret(client.id, SECRET, { previousUntil: null, now: 1 });
      await s.close();
      const before = readFileSync(join(dir, 'secrets-key'), 'utf8');

      const rotate = await runCli(['secrets', 'rotate-key', '--db', `sqlite:${db}`, '--json']);
      assert.equal(rotate.code, 0, rotate.stderr);
      const result = JSON.parse(rotate.stdout) as { resealed: number; newKeyId: string; dropped: string[] };
      assert.equal(result.resealed, 1);
      assert.deepEqual(result.dropped, [box.box.currentKeyId]);
      assert.notEqual(readFileSync(join(dir, 'secrets-key'), 'utf8'), before);
      assert.equal(mode(join(dir, 'secrets-key')), 0o600);

      const after = loadSecretBox(null, dir);
      assert.equal(after.keys.length, 1);
      assert.equal(after.box.currentKeyId, result.newKeyId);
      const r = new SqliteStore(db, { secrets: after.box });
      try {
        assert.equal((await r.getClientDeliverySettings(client.id))?.signingSecret, SECRET);
        assert.match((await rawSecrets(r, client.id)).signing_secret!, new RegExp(`^enc:v1:${result.newKeyId}:`));
      } finally {
        await r.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
