import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createApiClient } from '../src/ops/clients.ts';
import { createStore } from '../src/store/index.ts';
import type { Store } from '../src/store/types.ts';
import { ADMIN_TOKEN, SEED_ORCID, backends, getToken, startHarness, webhookPath, type Harness } from './helpers/harness.ts';
import { createTestSchema } from './helpers/postgres.ts';

const PUBLIC = /^wh_[0-9a-f]{32}$/;
const MIGRATIONS = fileURLToPath(new URL('../src/store/', import.meta.url));

async function exec(store: Store, sql: string): Promise<void> {
  if (store.dialect === 'postgres') await (store as unknown as { pool: { query(s: string): Promise<unknown> } }).pool.query(sql);
  else (store as unknown as { db: { exec(s: string): void } }).db.exec(sql);
}
async function rows(store: Store, sql: string): Promise<Record<string, unknown>[]> {
  if (store.dialect === 'postgres') return (await (store as unknown as { pool: { query(s: string): Promise<{ rows: Record<string, unknown>[] }> } }).pool.query(sql)).rows;
  return (store as unknown as { db: { prepare(s: string): { all(): Record<string, unknown>[] } } }).db.prepare(sql).all();
}

for (const { backend, skip } of await backends()) describe(`random public webhook ids on ${backend}`, { skip }, () => {
  let h: Harness;
  let other: string;
  before(async () => {
    h = await startHarness({}, { backend });
    await h.store.addRecords([SEED_ORCID], Date.now());
    const c = await createApiClient(h.store, { name: 'Other', premium: true });
    other = await getToken(h.svc, c.client.id, c.secret);
  });
  after(() => h.close());

  test('the client API, the admin API and webhook-ids show random ids; integers are never shown nor accepted', async () => {
    for (const n of [1, 2, 3]) {
      const res = await h.svc.app.inject({ method: 'PUT', url: webhookPath(SEED_ORCID, `https://example.org/p${n}`), headers: { authorization: `Bearer ${h.token}` } });
      assert.equal(res.statusCode, 201);
    }
    const page1 = (await h.svc.app.inject({ url: '/webhooks?limit=2', headers: { authorization: `Bearer ${h.token}` } })).json();
    const ids = page1.webhooks.map((w: { id: string }) => w.id);
    for (const id of ids) assert.match(id, PUBLIC);
    assert.notEqual(ids[0], ids[1]);
    assert.match(page1.next_cursor, PUBLIC, 'the cursor is a public id too, not an encoded integer');
    const page2 = (await h.svc.app.inject({ url: `/webhooks?limit=2&cursor=${page1.next_cursor}`, headers: { authorization: `Bearer ${h.token}` } })).json();
    assert.equal(page2.webhooks.length, 1);
    // Another client cannot page from this client's webhook.
    const foreign = await h.svc.app.inject({ url: `/webhooks?cursor=${page1.next_cursor}`, headers: { authorization: `Bearer ${other}`, accept: 'application/json' } });
    assert.equal(foreign.statusCode, 400);
    assert.equal(foreign.json()['error-code'], 9052);
    const one = (await h.svc.app.inject({ url: webhookPath(SEED_ORCID, 'https://example.org/p1'), headers: { authorization: `Bearer ${h.token}` } })).json();
    assert.match(one.id, PUBLIC);

    const admin = (await h.svc.app.inject({ url: '/admin/api/webhooks', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json();
    for (const w of admin.webhooks) assert.match(w.id, PUBLIC);
    const internal = (await h.store.getWebhookByPublicId(one.id))!;
    const byInteger = await h.svc.app.inject({ url: `/admin/api/webhooks/${internal.id}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, accept: 'application/json' } });
    assert.equal(byInteger.statusCode, 400);
    const replay = await h.svc.app.inject({ method: 'POST', url: webhookPath(SEED_ORCID, 'https://example.org/p1'), headers: { authorization: `Bearer ${h.token}` } });
    assert.equal(replay.json().notification_id, `msg_${one.id}_${internal.changeSeq + 1}`);
  });
});

for (const { backend, skip } of await backends()) describe(`migration 003 on ${backend}`, { skip }, () => {
  test('webhooks registered before it each get their own random public id', async () => {
    const schema = backend === 'postgres' ? await createTestSchema() : null;
    const dir = mkdtempSync(join(tmpdir(), 'ow-m3-'));
    const store = await createStore(schema ? schema.url : `sqlite:${join(dir, 'db.sqlite')}`);
    try {
      // The database as 002 left it.
      const dialect = store.dialect;
      // (The table migrate() creates; an older SQLite store created it when opened.)
      await exec(store, `CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at ${dialect === 'postgres' ? 'BIGINT' : 'INTEGER'} NOT NULL)`);
      for (const m of ['001_init', '002_client_features']) {
        await exec(store, readFileSync(join(MIGRATIONS, dialect, 'migrations', `${m}.sql`), 'utf8'));
        await exec(store, `INSERT INTO schema_migrations (name, applied_at) VALUES ('${m}', 0)`);
      }
      await exec(store, "INSERT INTO clients (id, name, secret_hash, premium, created_at) VALUES ('APP-1', 'c', 'x', 1, 0)");
      await exec(store, `INSERT INTO records (orcid, modified_at, created_at) VALUES ('${SEED_ORCID}', 0, 0)`);
      for (let i = 0; i < 20; i++) await exec(store, `INSERT INTO webhooks (client_id, orcid, url, host, created_at) VALUES ('APP-1', '${SEED_ORCID}', 'https://e.org/${i}', 'e.org', 0)`);
      const applied = await store.migrate();
      assert.equal(applied[0], '003_webhook_public_ids', applied.join(', '));
      const ids = (await rows(store, 'SELECT public_id FROM webhooks')).map((r) => String(r.public_id));
      assert.equal(ids.length, 20);
      for (const id of ids) assert.match(id, PUBLIC);
      assert.equal(new Set(ids).size, 20, 'all different');
      // A row inserted without one (a tool, a benchmark) still gets one.
      await exec(store, `INSERT INTO webhooks (client_id, orcid, url, host, created_at) VALUES ('APP-1', '${SEED_ORCID}', 'https://e.org/x', 'e.org', 0)`);
      const [late] = await rows(store, "SELECT public_id FROM webhooks WHERE url = 'https://e.org/x'");
      assert.match(String(late!.public_id), PUBLIC);
    } finally {
      await store.close();
      await schema?.drop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
