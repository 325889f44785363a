/*
 * One behaviour suite for every Store implementation (the contract is src/store/types.ts), run
 * against SQLite and PostgreSQL, then PostgreSQL-only checks of what only a shared server has:
 * concurrent migrations, claims and registrations from several stores, cross-process NOTIFY and
 * surviving lost connections. Each PostgreSQL test works in a schema of its own.
 */
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PostgresStore } from '../src/store/postgres/postgres-store.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import type { AttemptOutcome, AttemptRecord, Claim, ClaimedWebhook, Store, WebhookRow } from '../src/store/types.ts';
import { webhookStateOf } from '../src/domain/webhook-state.ts';
import { ClientDeliveryError, issueSigningSecret } from '../src/ops/client-delivery.ts';
import { createTestSchema, postgresSuiteGate, withPgClient, pgTestUrl, type TestSchema } from './helpers/postgres.ts';

const T0 = 1_700_000_000_000;
const A = '0000-0001-0000-0001';
const B = '0000-0001-0000-0002';
const C = '0000-0001-0000-0003';
const MIGRATIONS = ['001_init', '002_client_features', '003_webhook_public_ids', '004_delivery_hardening', '005_upstream', '006_attempt_headers', '007_client_webhook_count', '008_state_indexes_record_count', '009_claim_order_index', '010_backlog_indexes', '011_claim_covering_index', '012_attempt_latency_bigint', '013_cheaper_webhook_updates'];

const orcidN = (i: number): string => `0000-0002-${String(Math.floor(i / 10000)).padStart(4, '0')}-${String(i % 10000).padStart(4, '0')}`;

async function waitFor(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function seedClients(store: Store): Promise<void> {
  await store.createClient({ id: 'c1', name: 'Client One', secretHash: 'hash-1', premium: false, createdAt: T0 });
  await store.createClient({ id: 'c2', name: 'Client Two', secretHash: 'hash-2', premium: true, createdAt: T0 + 1 });
}

async function register(store: Store, clientId: string, orcid: string, url: string, now = T0): Promise<WebhookRow> {
  const r = await store.registerWebhook({ clientId, orcid, url, host: new URL(url).hostname.toLowerCase(), now });
  assert.equal(r.outcome, 'created');
  return r.outcome === 'created' ? r.webhook : assert.fail('not created');
}

/** Seeds c1/c2, records A, B, C (created and modified at T0). */
async function seed(store: Store): Promise<void> {
  await seedClients(store);
  assert.equal(await store.addRecords([A, B, C], T0), 3);
}

async function change(store: Store, orcid: string, modifiedAt: number, now = modifiedAt, notifyDelayMs = 0) {
  return store.applyChanges([{ orcid, modifiedAt }], { create: false, now, notifyDelayMs });
}

async function get(store: Store, id: number): Promise<WebhookRow> {
  return (await store.getWebhook(id)) ?? assert.fail(`webhook ${id} missing`);
}

function attempt(w: ClaimedWebhook, owner: string, outcome: AttemptOutcome, over: Partial<AttemptRecord> = {}): AttemptRecord {
  return {
    webhookId: w.id, lease: owner, claimedSeq: w.changeSeq, notificationId: `msg_${w.id}_${w.notifySeq}`,
    startedAt: T0 + 1000, durationMs: 12.4, statusCode: outcome.kind === 'success' ? 204 : 503, error: null,
    responseSnippet: null, latencyMs: 40, outcome, nextDueAt: T0 + 5000, ...over,
  };
}

const claimOpts = (over: Partial<{ lease: string; limit: number; now: number; leaseMs: number; excludeHosts: string[]; perHostLimit: number; hostSlots: Record<string, number> }> = {}) => ({
  lease: 'w1', limit: 100, now: T0 + 1000, leaseMs: 30_000, excludeHosts: [] as string[], ...over,
});

interface SuiteHooks {
  /** Runs after each test, once the stores it opened are closed. */
  afterEach?: () => Promise<void>;
}

/** The shared behaviour suite. makeStore returns a fresh, empty, not yet migrated store. */
function storeSuite(name: string, makeStore: () => Promise<Store>, hooks: SuiteHooks = {}): void {
  describe(name, () => {
    let store: Store;
    let applied: string[];
    const opened: Store[] = [];
    const open = async (): Promise<Store> => {
      const s = await makeStore();
      opened.push(s);
      return s;
    };

    beforeEach(async () => {
      store = await open();
      applied = await store.migrate();
    });
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
      await hooks.afterEach?.();
    });

    describe('migrations', () => {
      it('a fresh store lists every migration as pending', async () => {
        const fresh = await open();
        assert.deepEqual(await fresh.pendingMigrations(), MIGRATIONS);
      });

      it('applies them once; a second migrate is a no-op', async () => {
        assert.deepEqual(applied, MIGRATIONS);
        assert.deepEqual(await store.pendingMigrations(), []);
        assert.deepEqual(await store.migrate(), []);
        assert.deepEqual(await store.pendingMigrations(), []);
        await store.ping();
      });

      it('a database migrated by a newer version: migrationState names it, migrate() refuses to run on it', async () => {
        assert.deepEqual((await store.migrationState()).unknown, []);
        const sql = "INSERT INTO schema_migrations (name, applied_at) VALUES ('999_from_a_newer_version', 0)";
        if (store.dialect === 'postgres') await (store as unknown as { pool: { query(q: string): Promise<unknown> } }).pool.query(sql);
        else (store as unknown as { db: { exec(q: string): void } }).db.exec(sql);
        assert.deepEqual((await store.migrationState()).unknown, ['999_from_a_newer_version']);
        assert.deepEqual(await store.pendingMigrations(), []);
        await assert.rejects(store.migrate(), /migrated by a newer version of orcid-webhooks \(migrations 999_from_a_newer_version are unknown/);
      });
    });

    describe('clients and tokens', () => {
      it('creates, gets and lists clients', async () => {
        await seedClients(store);
        assert.deepEqual(await store.getClient('c1'), { id: 'c1', name: 'Client One', secretHash: 'hash-1', premium: false, createdAt: T0, revokedAt: null });
        assert.deepEqual(await store.getClient('c2'), { id: 'c2', name: 'Client Two', secretHash: 'hash-2', premium: true, createdAt: T0 + 1, revokedAt: null });
        assert.equal(await store.getClient('nope'), null);
        await store.createClient({ id: 'c0', name: 'Zero', secretHash: 'h', premium: false, createdAt: T0 });
        assert.deepEqual((await store.listClients()).map((c) => c.id), ['c0', 'c1', 'c2']);
      });

      it('rejects a duplicate client id', async () => {
        await seedClients(store);
        await assert.rejects(store.createClient({ id: 'c1', name: 'Again', secretHash: 'h', premium: false, createdAt: T0 }));
      });

      it('finds a token with its client and expiry', async () => {
        await seedClients(store);
        await store.createToken({ tokenHash: 'th1', clientId: 'c2', scope: '/webhook', createdAt: T0 + 5, expiresAt: T0 + 3600_000 });
        const found = await store.findToken('th1');
        assert.deepEqual(found?.token, { tokenHash: 'th1', clientId: 'c2', scope: '/webhook', createdAt: T0 + 5, expiresAt: T0 + 3600_000 });
        assert.deepEqual(found?.client, { id: 'c2', name: 'Client Two', secretHash: 'hash-2', premium: true, createdAt: T0 + 1, revokedAt: null });
        assert.equal(await store.findToken('unknown'), null);
      });

      it('revoking a client stamps it once and deletes its tokens', async () => {
        await seedClients(store);
        await store.createToken({ tokenHash: 'th1', clientId: 'c1', scope: '/webhook', createdAt: T0, expiresAt: T0 + 1000 });
        await store.createToken({ tokenHash: 'th2', clientId: 'c1', scope: '/webhook', createdAt: T0, expiresAt: T0 + 1000 });
        await store.createToken({ tokenHash: 'th3', clientId: 'c2', scope: '/webhook', createdAt: T0, expiresAt: T0 + 1000 });
        assert.equal(await store.revokeClient('c1', T0 + 10), true);
        assert.equal((await store.getClient('c1'))?.revokedAt, T0 + 10);
        assert.equal(await store.findToken('th1'), null);
        assert.equal(await store.findToken('th2'), null);
        assert.notEqual(await store.findToken('th3'), null);
        assert.equal(await store.revokeClient('c1', T0 + 20), true);
        assert.equal((await store.getClient('c1'))?.revokedAt, T0 + 10, 'the first revocation time is kept');
        assert.equal(await store.revokeClient('nope', T0), false);
      });
    });

    describe('records', () => {
      it('adds records once, gets, lists in order with a cursor, counts', async () => {
        assert.equal(await store.addRecords([B, A, B], T0), 2);
        assert.equal(await store.addRecords([A, C], T0 + 5), 1);
        assert.equal(await store.addRecords([], T0), 0);
        assert.deepEqual(await store.getRecord(C), { orcid: C, modifiedAt: T0 + 5, createdAt: T0 + 5 });
        assert.deepEqual(await store.getRecord(A), { orcid: A, modifiedAt: T0, createdAt: T0 });
        assert.equal(await store.getRecord('0000-0000-0000-0000'), null);
        assert.equal(await store.countRecords(), 3);
        assert.deepEqual((await store.listRecords({ limit: 2 })).map((r) => r.orcid), [A, B]);
        assert.deepEqual((await store.listRecords({ limit: 2, afterOrcid: B })).map((r) => r.orcid), [C]);
        assert.deepEqual(await store.listRecords({ limit: 10, afterOrcid: C }), []);
      });

      it('sorts identifiers bytewise (X check digit, hyphens)', async () => {
        const ids = ['0000-0001-0000-000X', '0000-0001-0000-0009', '0000-0001-0000-0010', '0000-00010-000-0000'];
        await store.addRecords(ids, T0);
        assert.deepEqual((await store.listRecords({ limit: 10 })).map((r) => r.orcid), [...ids].sort());
      });
    });

    describe('applyChanges', () => {
      it('creates records only with create=true and counts', async () => {
        await seed(store);
        assert.deepEqual(await store.applyChanges([{ orcid: '0000-0009-0000-0001', modifiedAt: T0 + 50 }], { create: false, now: T0 + 60, notifyDelayMs: 0 }),
          { created: 0, changed: 0, ignored: 1, webhooksNotified: 0 });
        assert.equal(await store.getRecord('0000-0009-0000-0001'), null);
        assert.deepEqual(await store.applyChanges([{ orcid: '0000-0009-0000-0001', modifiedAt: T0 + 50 }], { create: true, now: T0 + 60, notifyDelayMs: 0 }),
          { created: 1, changed: 0, ignored: 0, webhooksNotified: 0 });
        assert.deepEqual(await store.getRecord('0000-0009-0000-0001'), { orcid: '0000-0009-0000-0001', modifiedAt: T0 + 50, createdAt: T0 + 60 });
        assert.deepEqual(await store.applyChanges([], { create: true, now: T0, notifyDelayMs: 0 }), { created: 0, changed: 0, ignored: 0, webhooksNotified: 0 });
      });

      it('applies newer changes and ignores older or equal ones', async () => {
        await seed(store);
        const r = await store.applyChanges([
          { orcid: A, modifiedAt: T0 + 10 }, { orcid: B, modifiedAt: T0 }, { orcid: C, modifiedAt: T0 - 10 },
        ], { create: true, now: T0 + 20, notifyDelayMs: 0 });
        assert.deepEqual(r, { created: 0, changed: 1, ignored: 2, webhooksNotified: 0 });
        assert.equal((await store.getRecord(A))?.modifiedAt, T0 + 10);
        assert.equal((await store.getRecord(B))?.modifiedAt, T0);
        assert.equal((await store.getRecord(C))?.modifiedAt, T0);
        assert.equal((await store.getRecord(A))?.createdAt, T0, 'created_at is not touched');
      });

      it('a touch counts as newer even in the same millisecond', async () => {
        await seed(store);
        const opts = { create: false, now: T0, notifyDelayMs: 0 };
        assert.deepEqual(await store.applyChanges([{ orcid: A, modifiedAt: T0, touch: true }], opts), { created: 0, changed: 1, ignored: 0, webhooksNotified: 0 });
        assert.equal((await store.getRecord(A))?.modifiedAt, T0 + 1);
        assert.deepEqual(await store.applyChanges([{ orcid: A, modifiedAt: T0, touch: true }, { orcid: A, modifiedAt: T0 - 50, touch: true }], opts),
          { created: 0, changed: 2, ignored: 0, webhooksNotified: 0 });
        assert.equal((await store.getRecord(A))?.modifiedAt, T0 + 3);
        await store.applyChanges([{ orcid: A, modifiedAt: T0 + 100, touch: true }], opts);
        assert.equal((await store.getRecord(A))?.modifiedAt, T0 + 100, 'a later given time wins over current + 1');
      });

      it('handles duplicates in one batch as if applied in order', async () => {
        await seed(store);
        const w = await register(store, 'c1', A, 'https://one.example/hook', T0);
        const late = await register(store, 'c2', A, 'https://two.example/hook', T0 + 15);
        const r = await store.applyChanges([
          { orcid: A, modifiedAt: T0 + 10 }, { orcid: A, modifiedAt: T0 + 20 }, { orcid: A, modifiedAt: T0 + 15 }, { orcid: A, modifiedAt: T0 + 20 },
          { orcid: A, modifiedAt: T0, touch: true },
        ], { create: false, now: T0 + 30, notifyDelayMs: 0 });
        // +10 and +20 apply (w: twice, late: once, for +20), +15 and the second +20 are not newer,
        // the touch makes +21 (both webhooks again).
        assert.deepEqual(r, { created: 0, changed: 3, ignored: 2, webhooksNotified: 5 });
        assert.equal((await store.getRecord(A))?.modifiedAt, T0 + 21);
        const w1 = await get(store, w.id);
        assert.equal(w1.changeSeq, 3);
        assert.equal(w1.notifySeq, 1);
        assert.equal(w1.pendingSince, T0 + 10);
        assert.equal(w1.dueAt, T0 + 30);
        const w2 = await get(store, late.id);
        assert.equal(w2.changeSeq, 2);
        assert.equal(w2.notifySeq, 1);
        assert.equal(w2.pendingSince, T0 + 20);
      });

      it('handles duplicates of a record created in the same batch', async () => {
        const X = '0000-0009-0000-0009';
        const r = await store.applyChanges([
          { orcid: X, modifiedAt: T0 + 10 }, { orcid: X, modifiedAt: T0 + 5 }, { orcid: X, modifiedAt: T0 + 20 }, { orcid: X, modifiedAt: T0, touch: true },
        ], { create: true, now: T0 + 30, notifyDelayMs: 0 });
        assert.deepEqual(r, { created: 1, changed: 2, ignored: 1, webhooksNotified: 0 });
        assert.deepEqual(await store.getRecord(X), { orcid: X, modifiedAt: T0 + 21, createdAt: T0 + 30 });
      });

      it('marks only webhooks created no later than the change', async () => {
        await seed(store);
        const early = await register(store, 'c1', A, 'https://one.example/a', T0 + 5);
        const exact = await register(store, 'c1', A, 'https://one.example/b', T0 + 10);
        const late = await register(store, 'c1', A, 'https://one.example/c', T0 + 11);
        const other = await register(store, 'c1', B, 'https://one.example/a', T0);
        assert.equal(early.pendingSince, null);
        assert.equal(early.dueAt, null);
        const r = await change(store, A, T0 + 10, T0 + 100, 250);
        assert.deepEqual(r, { created: 0, changed: 1, ignored: 0, webhooksNotified: 2 });
        for (const id of [early.id, exact.id]) {
          const w = await get(store, id);
          assert.equal(w.pendingSince, T0 + 10);
          assert.equal(w.dueAt, T0 + 350, 'due after the notify delay');
          assert.equal(w.changeSeq, 1);
          assert.equal(w.notifySeq, 1);
        }
        for (const id of [late.id, other.id]) {
          const w = await get(store, id);
          assert.equal(w.pendingSince, null);
          assert.equal(w.dueAt, null);
          assert.equal(w.changeSeq, 0);
        }
      });

      it('coalesces changes into the notification already owed', async () => {
        await seed(store);
        const w = await register(store, 'c1', A, 'https://one.example/a', T0);
        await change(store, A, T0 + 10, T0 + 10, 100);
        const first = await get(store, w.id);
        assert.deepEqual(await change(store, A, T0 + 20, T0 + 20, 100), { created: 0, changed: 1, ignored: 0, webhooksNotified: 1 });
        const second = await get(store, w.id);
        assert.equal(second.changeSeq, 2);
        assert.equal(second.notifySeq, first.notifySeq, 'still the same notification');
        assert.equal(second.pendingSince, T0 + 10, 'the oldest change not notified');
        assert.equal(second.dueAt, T0 + 110, 'due time not pushed back');
        assert.equal((await store.countWebhooks()).pending, 1);
      });

      it('disabled webhooks still record what they owe', async () => {
        await seed(store);
        const w = await register(store, 'c1', A, 'https://one.example/a', T0);
        await change(store, A, T0 + 10);
        const [cl] = await store.claimDue(claimOpts({ now: T0 + 10 }));
        assert.ok(cl);
        await store.completeAttempts([attempt(cl.webhook, 'w1', { kind: 'disable', reason: 'gone' })]);
        assert.deepEqual(await change(store, A, T0 + 20), { created: 0, changed: 1, ignored: 0, webhooksNotified: 1 });
        const d = await get(store, w.id);
        assert.equal(d.enabled, false);
        assert.equal(d.pendingSince, T0 + 10);
        assert.equal(d.changeSeq, 2);
        assert.equal((await store.claimDue(claimOpts({ now: T0 + 100 }))).length, 0, 'never claimed while disabled');
        assert.equal(await store.nextDueAt(), null);
      });

      it('applies a bulk batch of 10,000 changes with exact counts', async () => {
        await seedClients(store);
        const n = 5000;
        const ids = Array.from({ length: n }, (_, i) => orcidN(i));
        assert.equal(await store.addRecords(ids, T0), n);
        for (let i = 0; i < 500; i++) await register(store, 'c1', ids[i * 10] as string, `https://h${i % 7}.example/cb`, T0);
        const changes = [
          ...ids.map((o, i) => ({ orcid: o, modifiedAt: i % 2 ? T0 + 10 : T0 })), // half newer, half equal
          ...ids.map((o) => ({ orcid: o, modifiedAt: T0 + 20 })), // all newer
        ];
        const started = Date.now();
        const r = await store.applyChanges(changes, { create: false, now: T0 + 30, notifyDelayMs: 0 });
        const ms = Date.now() - started;
        assert.deepEqual(r, { created: 0, changed: n / 2 + n, ignored: n / 2, webhooksNotified: 500 });
        assert.ok(ms < 10_000, `took ${ms} ms`);
        assert.equal((await store.countWebhooks()).pending, 500);
        assert.equal((await store.getRecord(ids[7] as string))?.modifiedAt, T0 + 20);
      });
    });

    describe('registerWebhook', () => {
      it('creates, then answers exists', async () => {
        await seed(store);
        const r1 = await store.registerWebhook({ clientId: 'c1', orcid: A, url: 'https://Hook.example/x', host: 'hook.example', now: T0 + 7 });
        assert.equal(r1.outcome, 'created');
        if (r1.outcome !== 'created') return;
        const w = r1.webhook;
        assert.match(w.publicId, /^wh_[0-9a-f]{32}$/, 'a random public id');
        assert.deepEqual(
          { ...w, id: 0, publicId: '' },
          {
            id: 0, publicId: '', clientId: 'c1', orcid: A, url: 'https://Hook.example/x', host: 'hook.example', createdAt: T0 + 7, enabled: true,
            disabledReason: null, disabledAt: null, pendingSince: null, dueAt: null, changeSeq: 0, notifySeq: 0, failedAttempts: 0,
            failingSince: null, lastSentAt: null, lastFailedAt: null, lastStatus: null, lease: null, leaseUntil: null,
          },
        );
        assert.equal(typeof w.id, 'number');
        assert.deepEqual(await store.getWebhookByPublicId(w.publicId), w);
        assert.equal(await store.getWebhookByPublicId('wh_00000000000000000000000000000000'), null);
        const r2 = await store.registerWebhook({ clientId: 'c1', orcid: A, url: 'https://Hook.example/x', host: 'hook.example', now: T0 + 9 });
        assert.deepEqual(r2, { outcome: 'exists', webhook: w, reenabled: false });
        assert.deepEqual(await store.findWebhook('c1', A, 'https://Hook.example/x'), w);
        assert.equal(await store.findWebhook('c2', A, 'https://Hook.example/x'), null);
        assert.deepEqual(await store.getWebhook(w.id), w);
        assert.equal(await store.getWebhook(w.id + 1000), null);
      });

      it('two concurrent registrations: one created, one exists', async () => {
        await seed(store);
        const input = { clientId: 'c1', orcid: A, url: 'https://one.example/x', host: 'one.example', now: T0 };
        const rs = await Promise.all([store.registerWebhook(input), store.registerWebhook(input)]);
        assert.deepEqual(rs.map((r) => r.outcome).sort(), ['created', 'exists']);
      });

      it('re-enables a disabled webhook; a notification it owed is due now', async () => {
        await seed(store);
        const w = await register(store, 'c1', A, 'https://one.example/x', T0);
        await change(store, A, T0 + 10, T0 + 10, 0);
        const [cl] = await store.claimDue(claimOpts({ now: T0 + 10 }));
        assert.ok(cl);
        await store.completeAttempts([attempt(cl.webhook, 'w1', { kind: 'retry', retryAt: T0 + 500 })]);
        const [cl2] = await store.claimDue(claimOpts({ now: T0 + 500 }));
        assert.ok(cl2);
        await store.completeAttempts([attempt(cl2.webhook, 'w1', { kind: 'disable', reason: 'schedule exhausted' }, { startedAt: T0 + 600, durationMs: 0 })]);
        const d = await get(store, w.id);
        assert.equal(d.enabled, false);
        assert.equal(d.failedAttempts, 2);

        const r = await store.registerWebhook({ clientId: 'c1', orcid: A, url: 'https://one.example/x', host: 'one.example', now: T0 + 9000 });
        assert.equal(r.outcome, 'exists');
        if (r.outcome !== 'exists') return;
        assert.equal(r.reenabled, true);
        assert.equal(r.webhook.enabled, true);
        assert.equal(r.webhook.disabledReason, null);
        assert.equal(r.webhook.disabledAt, null);
        assert.equal(r.webhook.failedAttempts, 0);
        assert.equal(r.webhook.pendingSince, T0 + 10);
        assert.equal(r.webhook.dueAt, T0 + 9000);
        assert.equal(r.webhook.notifySeq, d.notifySeq);
        assert.deepEqual((await store.claimDue(claimOpts({ now: T0 + 9000 }))).map((c) => c.webhook.id), [w.id]);
      });

      it('refuses a new webhook beyond the per-client cap', async () => {
        await seed(store);
        const reg = (orcid: string, url: string, clientId = 'c1') => store.registerWebhook({ clientId, orcid, url, host: new URL(url).hostname, now: T0, maxPerClient: 2 });
        assert.equal((await reg(A, 'https://x.example/1')).outcome, 'created');
        assert.equal((await reg(B, 'https://x.example/1')).outcome, 'created');
        assert.deepEqual(await reg(C, 'https://x.example/1'), { outcome: 'limit' });
        assert.equal((await reg(A, 'https://x.example/1')).outcome, 'exists', 'an existing one is still found at the cap');
        assert.equal((await reg(C, 'https://x.example/1', 'c2')).outcome, 'created', 'the cap is per client');
        assert.equal((await store.registerWebhook({ clientId: 'c1', orcid: C, url: 'https://x.example/1', host: 'x.example', now: T0 })).outcome, 'created', 'no cap without maxPerClient');
      });

      it('the cap counts what is there: a deletion frees a place, concurrent registrations take exactly the places left', async () => {
        await seed(store);
        const reg = (orcid: string, url: string) => store.registerWebhook({ clientId: 'c1', orcid, url, host: new URL(url).hostname, now: T0, maxPerClient: 5 });
        assert.equal((await reg(A, 'https://x.example/1')).outcome, 'created');
        assert.equal((await reg(B, 'https://x.example/1')).outcome, 'created');
        // The same webhook ten times at once: one place taken, not ten.
        const same = await Promise.all(Array.from({ length: 10 }, () => reg(C, 'https://x.example/same')));
        assert.deepEqual(same.map((r) => r.outcome).sort(), ['created', ...Array(9).fill('exists')]);
        // Twenty different ones at once with two places left: exactly two.
        const many = await Promise.all(Array.from({ length: 20 }, (_, i) => reg(A, `https://x.example/many/${i}`)));
        assert.equal(many.filter((r) => r.outcome === 'created').length, 2);
        assert.equal(many.filter((r) => r.outcome === 'limit').length, 18);
        assert.deepEqual(await reg(B, 'https://x.example/full'), { outcome: 'limit' });
        assert.equal(await store.deleteWebhook('c1', A, 'https://x.example/1'), true);
        assert.equal(await store.deleteWebhook('c1', A, 'https://x.example/1'), false, 'a second delete frees nothing');
        assert.equal((await reg(B, 'https://x.example/full')).outcome, 'created', 'the deleted one\'s place');
        assert.deepEqual(await reg(B, 'https://x.example/full2'), { outcome: 'limit' });
      });

      it('fails for an unknown client; an unknown record answers no-record and writes nothing', async () => {
        await seed(store);
        await assert.rejects(store.registerWebhook({ clientId: 'nope', orcid: A, url: 'https://x.example/', host: 'x.example', now: T0 }));
        const missing = '0000-0009-9999-9999';
        const before = await store.getClient('c1');
        assert.deepEqual(await store.registerWebhook({ clientId: 'c1', orcid: missing, url: 'https://x.example/', host: 'x.example', now: T0 }), { outcome: 'no-record' });
        assert.deepEqual(await store.registerWebhook({ clientId: 'c1', orcid: missing, url: 'https://x.example/', host: 'x.example', now: T0, maxPerClient: 10 }), { outcome: 'no-record' });
        assert.equal(await store.getRecord(missing), null);
        assert.equal(await store.findWebhook('c1', missing, 'https://x.example/'), null);
        assert.deepEqual(await store.getClient('c1'), before);
        const created = await store.registerWebhook({ clientId: 'c1', orcid: missing, url: 'https://x.example/', host: 'x.example', now: T0, createRecord: true });
        assert.equal(created.outcome, 'created', 'createRecord: the record comes with the webhook');
        assert.notEqual(await store.getRecord(missing), null);
      });

      it('registrations arriving together are committed together, each answered on its own', async () => {
        await seed(store);
        const regs = await Promise.allSettled([
          store.registerWebhook({ clientId: 'c1', orcid: A, url: 'https://x.example/g1', host: 'x.example', now: T0 }),
          store.registerWebhook({ clientId: 'nope', orcid: A, url: 'https://x.example/g2', host: 'x.example', now: T0 }),
          store.registerWebhook({ clientId: 'c1', orcid: A, url: 'https://x.example/g1', host: 'x.example', now: T0 }),
          store.registerWebhook({ clientId: 'c1', orcid: '0000-0009-9999-9999', url: 'https://x.example/g3', host: 'x.example', now: T0 }),
          store.registerWebhook({ clientId: 'c1', orcid: B, url: 'https://x.example/g4', host: 'x.example', now: T0 }),
        ]);
        const outcome = (r: PromiseSettledResult<{ outcome: string }>) => (r.status === 'fulfilled' ? r.value.outcome : 'error');
        // The same webhook twice in one batch: one creates it, the other finds it (in either order on PostgreSQL).
        assert.deepEqual([regs[0], regs[2]].map(outcome).sort(), ['created', 'exists']);
        assert.deepEqual([regs[1], regs[3], regs[4]].map(outcome), ['error', 'no-record', 'created'], 'a failing one leaves the others');
        assert.notEqual(await store.findWebhook('c1', A, 'https://x.example/g1'), null);
        assert.notEqual(await store.findWebhook('c1', B, 'https://x.example/g4'), null);
      });

      it('a batch mixing every outcome answers each registration as if it ran alone, in order', async () => {
        await seed(store);
        const D = orcidN(1);
        const missing = '0000-0009-9999-9998';
        const w = await register(store, 'c1', A, 'https://mix.example/off');
        await register(store, 'c1', B, 'https://mix.example/on');
        await change(store, A, T0 + 10, T0 + 10, 0);
        const [cl] = await store.claimDue(claimOpts({ now: T0 + 10 }));
        await store.completeAttempts([attempt(cl!.webhook, 'w1', { kind: 'disable', reason: 'gone' }, { startedAt: T0 + 20, durationMs: 0 })]);
        assert.equal((await get(store, w.id)).enabled, false);
        // c1 has 2 webhooks and a cap of 4: two places left, taken in arrival order.
        const reg = (clientId: string, orcid: string, url: string, more: { maxPerClient?: number; createRecord?: boolean } = {}) =>
          store.registerWebhook({ clientId, orcid, url, host: new URL(url).hostname, now: T0 + 500, maxPerClient: 4, ...more });
        const rs = await Promise.allSettled([
          reg('c1', A, 'https://mix.example/off'), // disabled: re-enabled
          reg('c1', B, 'https://mix.example/on'), // exists
          reg('c1', C, 'https://mix.example/1'), // created (place 3)
          reg('c2', C, 'https://mix.example/1'), // another client: its own places
          reg('c1', missing, 'https://mix.example/2'), // no-record, takes no place
          reg('c1', C, 'https://mix.example/1'), // the same as the third: exists
          reg('c1', D, 'https://mix.example/3', { createRecord: true }), // created with its record (place 4)
          reg('c1', C, 'https://mix.example/4'), // cap reached
          reg('nope', C, 'https://mix.example/5'), // unknown client: fails alone
          reg('c2', missing, 'https://mix.example/6', { createRecord: true }), // created with its record
          reg('c2', missing, 'https://mix.example/7', { createRecord: true }), // same record, another webhook
          reg('c1', A, 'https://mix.example/5'), // cap reached
        ]);
        const outcomes = rs.map((r) => (r.status === 'rejected' ? 'error' : r.value.outcome === 'exists' && r.value.reenabled ? 'reenabled' : r.value.outcome));
        assert.deepEqual(outcomes, ['reenabled', 'exists', 'created', 'created', 'no-record', 'exists', 'created', 'limit', 'error', 'created', 'created', 'limit']);
        const re = rs[0]!.status === 'fulfilled' ? rs[0].value : assert.fail();
        assert.ok(re.outcome === 'exists' && re.webhook.id === w.id && re.webhook.enabled && re.webhook.dueAt === T0 + 500, 'the owed notification is due now');
        const dup = [rs[2], rs[5]].map((r) => (r!.status === 'fulfilled' && r!.value.outcome !== 'limit' && r!.value.outcome !== 'no-record' ? r!.value.webhook.id : 0));
        assert.equal(dup[0], dup[1], 'the same webhook, once');
        assert.equal((await store.listWebhooks({ clientId: 'c1', limit: 100 })).length, 4);
        assert.equal((await store.listWebhooks({ clientId: 'c2', limit: 100 })).length, 3);
        assert.notEqual(await store.getRecord(D), null);
        assert.notEqual(await store.getRecord(missing), null);
        assert.deepEqual((await reg('c1', D, 'https://mix.example/8')), { outcome: 'limit' }, 'the counter counted every place taken');
      });
    });

    describe('webhooks', () => {
      it('deletes a webhook and its attempts', async () => {
        await seed(store);
        const w = await register(store, 'c1', A, 'https://one.example/x');
        await change(store, A, T0 + 10);
        const [cl] = await store.claimDue(claimOpts());
        assert.ok(cl);
        await store.completeAttempts([attempt(cl.webhook, 'w1', { kind: 'success' })]);
        assert.equal((await store.listAttempts(w.id, 10)).length, 1);
        assert.equal(await store.deleteWebhook('c2', A, 'https://one.example/x'), false);
        assert.equal(await store.deleteWebhook('c1', A, 'https://one.example/x'), true);
        assert.equal(await store.deleteWebhook('c1', A, 'https://one.example/x'), false);
        assert.equal(await store.getWebhook(w.id), null);
        assert.deepEqual(await store.listAttempts(w.id, 10), []);
        assert.equal(await store.pruneAttempts(T0 + 1e9), 0, 'attempts went with the webhook');
      });

      it('lists with filters and a cursor', async () => {
        await seed(store);
        const w1 = await register(store, 'c1', A, 'https://alpha.example/cb');
        const w2 = await register(store, 'c1', B, 'https://beta.example/cb');
        const w3 = await register(store, 'c2', A, 'https://gamma.example/CB');
        const w4 = await register(store, 'c2', C, 'https://delta.example/x');
        // w1 pending; w3 failing (retry); w4 disabled
        await change(store, A, T0 + 10, T0 + 10, 0);
        await change(store, C, T0 + 10, T0 + 10, 0);
        const claims = await store.claimDue(claimOpts({ now: T0 + 10 }));
        const byId = new Map(claims.map((c) => [c.webhook.id, c.webhook]));
        await store.completeAttempts([
          attempt(byId.get(w3.id) as WebhookRow, 'w1', { kind: 'retry', retryAt: T0 + 5000 }),
          attempt(byId.get(w4.id) as WebhookRow, 'w1', { kind: 'disable', reason: 'gone' }),
        ]);
        await store.releaseClaims('w1', [w1.id]);
        const ids = async (f: Omit<Parameters<Store['listWebhooks']>[0], 'limit'> & { limit?: number }) =>
          (await store.listWebhooks({ limit: 100, ...f })).map((w) => w.id);
        assert.deepEqual(await ids({}), [w1.id, w2.id, w3.id, w4.id]);
        assert.deepEqual(await ids({ clientId: 'c2' }), [w3.id, w4.id]);
        assert.deepEqual(await ids({ orcid: A }), [w1.id, w3.id]);
        assert.deepEqual(await ids({ orcid: A, clientId: 'c1' }), [w1.id]);
        assert.deepEqual(await ids({ state: 'enabled' }), [w1.id, w2.id, w3.id]);
        assert.deepEqual(await ids({ state: 'disabled' }), [w4.id]);
        assert.deepEqual(await ids({ state: 'failing' }), [w3.id]);
        assert.deepEqual(await ids({ state: 'pending' }), [w1.id], 'pending: owes a callback with no failure (w3 is failing, not pending)');
        assert.deepEqual(await ids({ search: B }), [w2.id], 'search by iD');
        assert.deepEqual(await ids({ search: 'c2' }), [w3.id, w4.id], 'search by client id');
        assert.deepEqual(await ids({ search: 'GAMMA' }), [w3.id], 'search in the URL, case-insensitive');
        assert.deepEqual(await ids({ search: '/cb' }), [w1.id, w2.id, w3.id]);
        assert.deepEqual(await ids({ search: 'nothing-like-this' }), []);
        assert.deepEqual(await ids({ search: '' }), [w1.id, w2.id, w3.id, w4.id], 'empty search matches all');
        assert.deepEqual(await ids({ limit: 2 }), [w1.id, w2.id]);
        assert.deepEqual(await ids({ limit: 2, afterId: w2.id }), [w3.id, w4.id]);
        assert.deepEqual(await ids({ afterId: w4.id }), []);
        assert.deepEqual(await ids({ state: 'enabled', clientId: 'c2', search: 'gamma', afterId: 0 }), [w3.id]);
      });

      it('counts webhooks by state', async () => {
        assert.deepEqual(await store.countWebhooks(), { total: 0, enabled: 0, disabled: 0, pending: 0, backoff: 0 });
        await seed(store);
        await register(store, 'c1', A, 'https://a.example/1');
        const w2 = await register(store, 'c1', B, 'https://a.example/2');
        const w3 = await register(store, 'c1', C, 'https://a.example/3');
        await register(store, 'c2', C, 'https://a.example/4', T0 + 100);
        await store.applyChanges([{ orcid: B, modifiedAt: T0 + 10 }, { orcid: C, modifiedAt: T0 + 10 }], { create: false, now: T0 + 10, notifyDelayMs: 1000 });
        assert.deepEqual(await store.countWebhooks(), { total: 4, enabled: 4, disabled: 0, pending: 2, backoff: 0 });
        const claims = await store.claimDue(claimOpts({ now: T0 + 2000 }));
        const byId = new Map(claims.map((c) => [c.webhook.id, c.webhook]));
        await store.completeAttempts([
          attempt(byId.get(w2.id) as WebhookRow, 'w1', { kind: 'retry', retryAt: T0 + 9000 }),
          attempt(byId.get(w3.id) as WebhookRow, 'w1', { kind: 'disable', reason: 'gone' }),
        ]);
        assert.deepEqual(await store.countWebhooks(), { total: 4, enabled: 3, disabled: 1, pending: 0, backoff: 1 });
      });

      it('keeps the counts exact (counters and partial indexes, migration 008) through every change of state, deletion and bulk import', async () => {
        // The truth, from every row: the state of each webhook, and the records listed one by one.
        const truth = async () => {
          const all = await store.listWebhooks({ limit: 100_000 });
          const n = (s: string) => all.filter((w) => webhookStateOf(w) === s).length;
          return {
            webhooks: { total: all.length, enabled: all.filter((w) => w.enabled).length, disabled: n('disabled'), pending: n('pending'), backoff: n('failing') },
            records: (await store.listRecords({ limit: 100_000 })).length,
          };
        };
        const check = async (step: string, expected?: { total: number; disabled: number; pending: number; backoff: number; records: number }) => {
          const t = await truth();
          const counts = { webhooks: await store.countWebhooks(), records: await store.countRecords() };
          assert.deepEqual(counts, t, `${step}: counts as read from every row`);
          if (expected) {
            const { total, disabled, pending, backoff } = t.webhooks;
            assert.deepEqual({ total, disabled, pending, backoff, records: t.records }, expected, `${step}: the expected numbers`);
          }
          // Each state's list (the partial indexes) holds exactly what its count says, for all clients and per client.
          for (const state of ['disabled', 'failing', 'pending'] as const) {
            const listed = await store.listWebhooks({ limit: 100_000, state });
            const perClient = (await store.listWebhooks({ limit: 100_000, state, clientId: 'c1' })).length + (await store.listWebhooks({ limit: 100_000, state, clientId: 'c2' })).length;
            assert.equal(listed.length, counts.webhooks[state === 'failing' ? 'backoff' : state], `${step}: ${state} listed`);
            assert.equal(perClient, listed.length, `${step}: ${state} listed per client`);
            assert.ok(listed.every((w) => webhookStateOf(w) === state), `${step}: only ${state} rows listed`);
          }
        };
        await check('empty', { total: 0, disabled: 0, pending: 0, backoff: 0, records: 0 });
        await seed(store);
        await check('records added', { total: 0, disabled: 0, pending: 0, backoff: 0, records: 3 });
        const ws: WebhookRow[] = [];
        for (let i = 0; i < 6; i++) ws.push(await register(store, i % 2 ? 'c2' : 'c1', [A, B, C][i % 3]!, `https://h${i % 2}.example/${i}`));
        await check('registered', { total: 6, disabled: 0, pending: 0, backoff: 0, records: 3 });
        // Open records mode: a registration creates its record (a placeholder), counted once.
        const D = orcidN(4242);
        const open = await store.registerWebhook({ clientId: 'c1', orcid: D, url: 'https://h0.example/d', host: 'h0.example', now: T0, createRecord: true });
        assert.equal(open.outcome, 'created');
        await check('registered on a new record', { total: 7, disabled: 0, pending: 0, backoff: 0, records: 4 });
        await store.applyChanges([A, B, C, D].map((orcid) => ({ orcid, modifiedAt: T0 + 10 })), { create: false, now: T0 + 10, notifyDelayMs: 0 });
        await check('changed: all owe', { total: 7, disabled: 0, pending: 7, backoff: 0, records: 4 });
        const claims = await store.claimDue(claimOpts({ now: T0 + 1000 }));
        assert.equal(claims.length, 7);
        await check('claimed (leases change no state)', { total: 7, disabled: 0, pending: 7, backoff: 0, records: 4 });
        const byId = new Map(claims.map((c) => [c.webhook.id, c.webhook]));
        const w = (i: number) => byId.get(ws[i]!.id)!;
        await store.completeAttempts([
          attempt(w(0), 'w1', { kind: 'success' }), attempt(w(1), 'w1', { kind: 'retry', retryAt: T0 + 9000 }),
          attempt(w(2), 'w1', { kind: 'retry', retryAt: T0 + 9000 }), attempt(w(3), 'w1', { kind: 'disable', reason: 'gone' }),
        ]);
        await store.releaseClaims('w1', claims.map((c) => c.webhook.id));
        await check('success, failing, disabled', { total: 7, disabled: 1, pending: 3, backoff: 2, records: 4 });
        // Re-enabled: failures reset, and it owes what it owed (pending).
        assert.equal((await store.enableWebhook(ws[3]!.id, T0 + 2000))?.reenabled, true);
        await check('re-enabled', { total: 7, disabled: 0, pending: 4, backoff: 2, records: 4 });
        // A disabled webhook registered again is re-enabled, not a new one.
        const again = await store.claimDue(claimOpts({ now: T0 + 2000 }));
        const w3 = again.find((c) => c.webhook.id === ws[3]!.id)!.webhook;
        await store.completeAttempts([attempt(w3, 'w1', { kind: 'disable', reason: 'gone' })]);
        await store.releaseClaims('w1', again.map((c) => c.webhook.id));
        await check('disabled again', { total: 7, disabled: 1, pending: 3, backoff: 2, records: 4 });
        const re = await store.registerWebhook({ clientId: ws[3]!.clientId, orcid: ws[3]!.orcid, url: ws[3]!.url, host: ws[3]!.host, now: T0 + 3000 });
        assert.equal(re.outcome === 'exists' && re.reenabled, true);
        await check('re-enabled by registration', { total: 7, disabled: 0, pending: 4, backoff: 2, records: 4 });
        // Replay and recovery (failures reset, owes one now).
        await store.replayWebhook(ws[1]!.id, T0 + 4000);
        await check('replayed', { total: 7, disabled: 0, pending: 5, backoff: 1, records: 4 });
        assert.equal(await store.recoverWebhooks(ws[2]!.clientId, T0, T0 + 5000) > 0, true);
        await check('recovered', { total: 7, disabled: 0, pending: 6, backoff: 0, records: 4 });
        // Deletion gives the place back; a client revoked keeps its webhooks (there is no client deletion).
        assert.equal(await store.deleteWebhook(ws[5]!.clientId, ws[5]!.orcid, ws[5]!.url), true);
        assert.equal(await store.deleteWebhook(ws[5]!.clientId, ws[5]!.orcid, ws[5]!.url), false);
        await check('deleted', { total: 6, disabled: 0, pending: 5, backoff: 0, records: 4 });
        await store.revokeClient('c2', T0 + 6000);
        await check('client revoked', { total: 6, disabled: 0, pending: 5, backoff: 0, records: 4 });
        // A bulk import that creates records (some known, some twice in the list) and one that adds them.
        const fresh = Array.from({ length: 1200 }, (_, i) => orcidN(10_000 + i));
        const res = await store.applyChanges([...fresh, ...fresh.slice(0, 50), A].map((orcid) => ({ orcid, modifiedAt: T0 + 7000 })), { create: true, now: T0 + 7000, notifyDelayMs: 0 });
        assert.ok(res);
        await check('bulk import creating records', { total: 6, disabled: 0, pending: 6, backoff: 0, records: 1204 });
        assert.equal(await store.addRecords([...fresh.slice(0, 10), orcidN(20_000), orcidN(20_001)], T0 + 8000), 2);
        await check('records added in bulk', { total: 6, disabled: 0, pending: 6, backoff: 0, records: 1206 });
      });
    });

    describe('claimDue and releaseClaims', () => {
      it('claims only due webhooks and stamps the lease', async () => {
        await seed(store);
        const w = await register(store, 'c1', A, 'https://one.example/x');
        await register(store, 'c1', B, 'https://one.example/x');
        assert.deepEqual(await store.claimDue(claimOpts()), [], 'nothing owed');
        await change(store, A, T0 + 10, T0 + 10, 500);
        assert.deepEqual(await store.claimDue(claimOpts({ now: T0 + 509 })), [], 'not due yet');
        const before = Date.now();
        const claims = await store.claimDue(claimOpts({ lease: 'worker-a', now: T0 + 510, leaseMs: 1000 }));
        const afterClaim = Date.now();
        assert.equal(claims.length, 1);
        const [c] = claims;
        assert.equal(c?.reclaimed, false);
        assert.equal(c?.webhook.id, w.id);
        assert.equal(c?.webhook.lease, 'worker-a');
        // The lease runs on the database's clock (the same machine's here), not the caller's `now`.
        const until = (await get(store, w.id)).leaseUntil ?? 0;
        assert.ok(until >= before + 1000 - 5 && until <= afterClaim + 1000 + 5, `lease until ${until - before} ms after the claim`);
        assert.equal(c?.webhook.changeSeq, 1);
        assert.equal(c?.webhook.dueAt, T0 + 510);
        const stored = await get(store, w.id);
        assert.equal(stored.lease, 'worker-a');
        assert.equal(stored.leaseUntil, until);
      });

      it('does not hand out a leased webhook until the lease expires, then reclaims it', async () => {
        await seed(store);
        const w = await register(store, 'c1', A, 'https://one.example/x');
        await change(store, A, T0 + 10);
        assert.equal((await store.claimDue(claimOpts({ lease: 'a', now: T0 + 10, leaseMs: 300 }))).length, 1);
        assert.deepEqual(await store.claimDue(claimOpts({ lease: 'b', now: T0 + 500 })), []);
        // A caller whose clock runs far ahead cannot take a live lease: leases use the database's clock.
        assert.deepEqual(await store.claimDue(claimOpts({ lease: 'b', now: T0 + 86_400_000 })), [], 'a skewed caller clock expires nothing');
        await sleep(350);
        const [again] = await store.claimDue(claimOpts({ lease: 'b', now: T0 + 500, leaseMs: 1000 }));
        assert.equal(again?.reclaimed, true);
        assert.equal(again?.webhook.id, w.id);
        assert.equal(again?.webhook.lease, 'b');
        assert.ok(((await get(store, w.id)).leaseUntil ?? 0) > Date.now() + 500);
        // The old owner's completion is now ignored.
        await store.completeAttempts([attempt(again?.webhook as WebhookRow, 'a', { kind: 'success' })]);
        const s = await get(store, w.id);
        assert.equal(s.lease, 'b');
        assert.equal(s.pendingSince, T0 + 10);
        assert.equal(s.lastSentAt, null);
      });

      it('leaves excluded hosts, honours the limit and takes the earliest due first', async () => {
        await seed(store);
        const ids = Array.from({ length: 6 }, (_, i) => orcidN(i));
        await store.addRecords(ids, T0);
        const hooks: WebhookRow[] = [];
        for (const [i, o] of ids.entries()) hooks.push(await register(store, 'c1', o, `https://${i % 2 ? 'odd' : 'even'}.example/cb`));
        // Due times in reverse order of ids: hook 5 earliest.
        for (const [i, o] of ids.entries()) await change(store, o, T0 + 100 - i * 10, T0 + 100 - i * 10, 0);
        // The order of the returned claims is not part of the contract: compare sets.
        const idsOf = (cs: Claim[]) => cs.map((c) => c.webhook.id).sort((x, y) => x - y);
        const idsAt = (...is: number[]) => is.map((i) => hooks[i]?.id ?? -1).sort((x, y) => x - y);
        const first = await store.claimDue(claimOpts({ now: T0 + 200, limit: 2 }));
        assert.deepEqual(idsOf(first), idsAt(5, 4));
        const evens = await store.claimDue(claimOpts({ now: T0 + 200, excludeHosts: ['odd.example'] }));
        assert.deepEqual(idsOf(evens), idsAt(2, 0));
        assert.deepEqual((await store.claimDue(claimOpts({ now: T0 + 200, excludeHosts: ['odd.example', 'even.example'] }))), []);
        const rest = await store.claimDue(claimOpts({ now: T0 + 200, limit: 1 }));
        assert.deepEqual(idsOf(rest), idsAt(3));
        assert.deepEqual(idsOf(await store.claimDue(claimOpts({ now: T0 + 200 }))), idsAt(1));
        assert.deepEqual(await store.claimDue(claimOpts({ now: T0 + 200 })), []);
      });

      it('takes at most perHostLimit rows of one host, earliest first, leaving room for other hosts', async () => {
        await seed(store);
        const ids = Array.from({ length: 8 }, (_, i) => orcidN(i));
        await store.addRecords(ids, T0);
        const hooks: WebhookRow[] = [];
        // Six on busy.example (due first), two on calm.example (due last).
        for (const [i, o] of ids.entries()) hooks.push(await register(store, 'c1', o, `https://${i < 6 ? 'busy' : 'calm'}.example/${i}`));
        for (const [i, o] of ids.entries()) await change(store, o, T0 + 10 + i, T0 + 10 + i, 0);
        const idsOf = (cs: Claim[]) => cs.map((c) => c.webhook.id).sort((x, y) => x - y);
        const idsAt = (...is: number[]) => is.map((i) => hooks[i]!.id).sort((x, y) => x - y);
        assert.deepEqual(idsOf(await store.claimDue(claimOpts({ now: T0 + 100, limit: 10, perHostLimit: 2 }))), idsAt(0, 1, 6, 7));
        const next = await store.claimDue(claimOpts({ now: T0 + 100, limit: 10, perHostLimit: 2 }));
        assert.deepEqual(idsOf(next), idsAt(2, 3), 'the rest of busy.example waits for the next claim');
        assert.ok((await get(store, hooks[4]!.id)).lease === null, 'rows not picked are not leased');
        const one = await store.claimDue(claimOpts({ now: T0 + 100, limit: 10, perHostLimit: 2, hostSlots: { 'busy.example': 1 } }));
        assert.deepEqual(idsOf(one), idsAt(4), 'a host with one free slot gets one row');
      });

      it('releases claims unattempted, for their owner only', async () => {
        await seed(store);
        const w = await register(store, 'c1', A, 'https://one.example/x');
        await change(store, A, T0 + 10);
        await store.claimDue(claimOpts({ lease: 'a', now: T0 + 10 }));
        await store.releaseClaims('b', [w.id]);
        assert.equal((await get(store, w.id)).lease, 'a');
        await store.releaseClaims('a', [w.id]);
        await store.releaseClaims('a', []);
        const s = await get(store, w.id);
        assert.equal(s.lease, null);
        assert.equal(s.leaseUntil, null);
        assert.equal(s.dueAt, T0 + 10, 'due time unchanged');
        const [c] = await store.claimDue(claimOpts({ lease: 'b', now: T0 + 20 }));
        assert.equal(c?.reclaimed, false, 'a released claim is not a reclaim');
      });
    });

    describe('completeAttempts', () => {
      async function claimed(): Promise<ClaimedWebhook> {
        await seed(store);
        await register(store, 'c1', A, 'https://one.example/x');
        await change(store, A, T0 + 10, T0 + 10, 0);
        const [c] = await store.claimDue(claimOpts({ now: T0 + 10 }));
        return c?.webhook ?? assert.fail('nothing claimed');
      }

      it('success clears what was owed and records the attempt', async () => {
        const w = await claimed();
        await store.completeAttempts([attempt(w, 'w1', { kind: 'success' }, { startedAt: T0 + 20, durationMs: 30.6, statusCode: 204, responseSnippet: 'ok' })]);
        const s = await get(store, w.id);
        assert.equal(s.pendingSince, null);
        assert.equal(s.dueAt, null);
        assert.equal(s.lease, null);
        assert.equal(s.leaseUntil, null);
        assert.equal(s.failedAttempts, 0);
        assert.equal(s.lastSentAt, T0 + 51);
        assert.equal(s.lastStatus, '204');
        assert.equal(s.notifySeq, 1);
        const [a] = await store.listAttempts(w.id, 10);
        assert.deepEqual({ ...a, id: 0 }, { id: 0, webhookId: w.id, notificationId: `msg_${w.id}_1`, at: T0 + 20, durationMs: 31, statusCode: 204, error: null, responseSnippet: 'ok', latencyMs: 40, requestHeaders: null, responseHeaders: null });
        assert.equal(await store.nextDueAt(), null);
      });

      it('records latencies beyond 24.8 days either way (a long-owed notification, a change dated in the future)', async () => {
        const w = await claimed();
        const long = 40 * 86_400_000;
        await store.completeAttempts([
          attempt(w, 'w1', { kind: 'retry', retryAt: T0 + 5000 }, { latencyMs: long }),
          attempt(w, 'w1', { kind: 'success' }, { latencyMs: -long }),
        ]);
        assert.deepEqual((await store.listAttempts(w.id, 10)).map((a) => a.latencyMs).sort((x, y) => (x ?? 0) - (y ?? 0)), [-long, long]);
        assert.equal((await get(store, w.id)).lease, null, 'the outcome applied');
      });

      it('records what a receiver sent with NUL characters (PostgreSQL text cannot hold them): U+FFFD instead', async () => {
        const w = await claimed();
        await store.completeAttempts([attempt(w, 'w1', { kind: 'disable', reason: 'gone\u0000' }, { statusCode: null, error: 'bad\u0000answer', responseSnippet: 'a\u0000b', responseHeaders: { 'x-odd': 'c\u0000d' } })]);
        const [a] = await store.listAttempts(w.id, 10);
        assert.equal(a?.responseSnippet, 'a\uFFFDb');
        assert.equal(a?.error, 'bad\uFFFDanswer');
        assert.deepEqual(a?.responseHeaders, { 'x-odd': 'c\u0000d' }, 'headers are stored as JSON, where NUL is escaped');
        const s = await get(store, w.id);
        assert.equal(s.lastStatus, 'bad\uFFFDanswer');
        assert.equal(s.disabledReason, 'gone\uFFFD');
      });

      it('success with a change during flight owes a new notification', async () => {
        const w = await claimed();
        await change(store, A, T0 + 30, T0 + 30, 0);
        await store.completeAttempts([attempt(w, 'w1', { kind: 'success' }, { nextDueAt: T0 + 7777 })]);
        const s = await get(store, w.id);
        assert.equal(s.changeSeq, 2);
        assert.ok(s.changeSeq > w.changeSeq);
        assert.equal(s.notifySeq, 2, 'a new notification');
        assert.notEqual(s.notifySeq, w.notifySeq);
        assert.equal(s.pendingSince, T0 + 30);
        assert.equal(s.dueAt, T0 + 7777);
        assert.equal(s.lease, null);
        assert.equal(s.failedAttempts, 0);
      });

      it('retry counts the failure and keeps the notification', async () => {
        const w = await claimed();
        await store.completeAttempts([attempt(w, 'w1', { kind: 'retry', retryAt: T0 + 60_000 }, { statusCode: null, error: 'timeout', durationMs: 10_000 })]);
        const s = await get(store, w.id);
        assert.equal(s.failedAttempts, 1);
        assert.equal(s.dueAt, T0 + 60_000);
        assert.equal(s.notifySeq, w.notifySeq);
        assert.equal(s.pendingSince, T0 + 10);
        assert.equal(s.lastFailedAt, T0 + 11_000);
        assert.equal(s.lastStatus, 'timeout');
        assert.equal(s.lastSentAt, null);
        assert.equal(s.lease, null);
        const [a] = await store.listAttempts(w.id, 1);
        assert.equal(a?.statusCode, null);
        assert.equal(a?.error, 'timeout');
        assert.deepEqual(await store.claimDue(claimOpts({ now: T0 + 59_999 })), []);
        const [again] = await store.claimDue(claimOpts({ now: T0 + 60_000 }));
        assert.equal(again?.webhook.notifySeq, w.notifySeq);
        await store.completeAttempts([attempt(again?.webhook as WebhookRow, 'w1', { kind: 'success' })]);
        assert.equal((await get(store, w.id)).failedAttempts, 0, 'a success resets the failure count');
      });

      it('a change after a failed attempt is a new notification (new webhook-id) on the same retry schedule', async () => {
        // The failed attempt may have reached the receiver (it timed out, or answered 500 after its
        // work): a receiver that deduplicates by webhook-id would drop the newer change folded into it.
        const w = await claimed();
        await store.completeAttempts([attempt(w, 'w1', { kind: 'retry', retryAt: T0 + 60_000 }, { statusCode: 500 })]);
        assert.deepEqual(await change(store, A, T0 + 30, T0 + 30, 100), { created: 0, changed: 1, ignored: 0, webhooksNotified: 1 });
        const s = await get(store, w.id);
        assert.ok(s.notifySeq > w.notifySeq, 'a new notification');
        assert.equal(s.failedAttempts, 1, 'still failing');
        assert.equal(s.dueAt, T0 + 60_000, 'the retry schedule is kept');
        assert.equal(s.pendingSince, T0 + 10, 'the oldest change not notified');
        const [again] = await store.claimDue(claimOpts({ now: T0 + 60_000 }));
        assert.equal(again?.webhook.notifySeq, s.notifySeq);
      });

      it('a change while a callback that then fails was in flight: the retry is a new notification', async () => {
        const w = await claimed();
        await change(store, A, T0 + 30, T0 + 30, 0);
        assert.equal((await get(store, w.id)).notifySeq, w.notifySeq, 'in flight: the attempt decides');
        await store.completeAttempts([attempt(w, 'w1', { kind: 'retry', retryAt: T0 + 60_000 }, { statusCode: 503 })]);
        const s = await get(store, w.id);
        assert.ok(s.notifySeq > w.notifySeq, 'a new notification');
        assert.equal(s.failedAttempts, 1);
        assert.equal(s.dueAt, T0 + 60_000);
      });

      it('a change waiting with no attempt made yet stays in the notification owed', async () => {
        await seed(store);
        const w = await register(store, 'c1', A, 'https://one.example/a', T0);
        await change(store, A, T0 + 10, T0 + 10, 100);
        const [cl] = await store.claimDue(claimOpts({ now: T0 + 110 }));
        assert.ok(cl);
        await store.releaseClaims(cl.webhook.lease!, [w.id]);
        await change(store, A, T0 + 20, T0 + 20, 100);
        assert.equal((await get(store, w.id)).notifySeq, cl.webhook.notifySeq, 'given back unsent: the same notification');
      });

      it('disable stops the webhook and keeps what it owed', async () => {
        const w = await claimed();
        await store.completeAttempts([attempt(w, 'w1', { kind: 'disable', reason: '410 Gone' }, { statusCode: 410 })]);
        const s = await get(store, w.id);
        assert.equal(s.enabled, false);
        assert.equal(s.disabledReason, '410 Gone');
        assert.equal(s.disabledAt, T0 + 1012);
        assert.equal(s.pendingSince, T0 + 10);
        assert.equal(s.dueAt, null);
        assert.equal(s.failedAttempts, 1);
        assert.equal(s.lastStatus, '410');
        assert.equal(s.lease, null);
        assert.equal((await store.listAttempts(w.id, 10)).length, 1, 'the attempt is recorded');
      });

      it('ignores a completion from a worker that does not hold the lease, but records the attempt', async () => {
        const w = await claimed();
        await store.completeAttempts([attempt(w, 'someone-else', { kind: 'success' })]);
        const s = await get(store, w.id);
        assert.equal(s.lease, 'w1');
        assert.equal(s.pendingSince, T0 + 10);
        assert.equal(s.lastSentAt, null);
        assert.equal((await store.listAttempts(w.id, 10)).length, 1);
      });

      it('applies the first completion of a webhook in a batch; later ones only add attempts', async () => {
        const w = await claimed();
        await store.completeAttempts([
          attempt(w, 'other', { kind: 'disable', reason: 'not mine' }),
          attempt(w, 'w1', { kind: 'retry', retryAt: T0 + 5000 }),
          attempt(w, 'w1', { kind: 'success' }),
        ]);
        const s = await get(store, w.id);
        assert.equal(s.enabled, true);
        assert.equal(s.failedAttempts, 1);
        assert.equal(s.dueAt, T0 + 5000);
        assert.equal((await store.listAttempts(w.id, 10)).length, 3);
      });

      it('skips attempts of deleted webhooks', async () => {
        const w = await claimed();
        await store.deleteWebhook('c1', A, 'https://one.example/x');
        await store.completeAttempts([attempt(w, 'w1', { kind: 'success' })]);
        await store.completeAttempts([]);
        assert.deepEqual(await store.listAttempts(w.id, 10), []);
      });

      it('lists attempts newest first and prunes old ones', async () => {
        const w = await claimed();
        let cur = w;
        for (let i = 0; i < 3; i++) {
          await store.completeAttempts([attempt(cur, 'w1', { kind: 'retry', retryAt: T0 + 100 * (i + 1) }, { startedAt: T0 + 100 * i, notificationId: `n${i}` })]);
          const [c] = await store.claimDue(claimOpts({ now: T0 + 100 * (i + 1) }));
          cur = c?.webhook ?? assert.fail('not claimed');
        }
        assert.deepEqual((await store.listAttempts(w.id, 10)).map((a) => a.notificationId), ['n2', 'n1', 'n0']);
        assert.deepEqual((await store.listAttempts(w.id, 2)).map((a) => a.at), [T0 + 200, T0 + 100]);
        assert.equal(await store.pruneAttempts(T0 + 150), 2);
        assert.deepEqual((await store.listAttempts(w.id, 10)).map((a) => a.notificationId), ['n2']);
        assert.equal(await store.pruneAttempts(T0), 0);
      });
    });

    describe('nextDueAt', () => {
      it('is the earliest due time of an enabled webhook, after any live lease', async () => {
        await seed(store);
        assert.equal(await store.nextDueAt(), null);
        await register(store, 'c1', A, 'https://one.example/x');
        await register(store, 'c1', B, 'https://one.example/x');
        assert.equal(await store.nextDueAt(), null);
        // Leases run on the database's clock, so this test uses real times.
        const t = Date.now();
        await change(store, A, t, t, 1000);
        await change(store, B, t + 1, t + 1, 60_000);
        assert.equal(await store.nextDueAt(), t + 1000);
        await store.claimDue(claimOpts({ now: t + 1000, limit: 1, leaseMs: 5000 }));
        const leased = (await store.nextDueAt()) ?? 0;
        assert.ok(leased >= t + 5000 && leased <= Date.now() + 5000, 'the leased one counts from the end of its lease');
        await store.claimDue(claimOpts({ now: t + 60_001, limit: 1, leaseMs: 100 }));
        assert.equal(await store.nextDueAt(), leased, 'the first lease ends before the second is due again');
      });

      it('from the index walk equals min(max(due_at, lease_until)) over every owed row, whatever the leases', async () => {
        // Rows in every lease situation: none, expired (0), ended before its due time, live past it;
        // disabled and owing nothing. The store's answer against the formula read from every row.
        await seedClients(store);
        const orcids = Array.from({ length: 40 }, (_, i) => orcidN(30_000 + i));
        await store.addRecords(orcids, T0);
        const ws: WebhookRow[] = [];
        for (const [i, orcid] of orcids.entries()) ws.push(await register(store, 'c1', orcid, `https://h${i % 4}.example/${i}`));
        const exec = async (sql: string, params: unknown[]): Promise<Record<string, unknown>[]> => {
          if (store instanceof SqliteStore) {
            const st = store.db.prepare(sql.replace(/\$\d+/g, '?'));
            return st.reader ? (st.all(...params) as Record<string, unknown>[]) : (st.run(...params), []);
          }
          if (store instanceof PostgresStore) return (await store.pool.query(sql, params)).rows as Record<string, unknown>[];
          return assert.fail('unknown store');
        };
        const brute = async () => {
          const [r] = await exec('SELECT min(CASE WHEN lease_until > due_at THEN lease_until ELSE due_at END) AS t FROM webhooks WHERE enabled = 1 AND due_at IS NOT NULL', []);
          return r?.t === null || r?.t === undefined ? null : Number(r.t);
        };
        const set = (id: number, enabled: number, dueAt: number | null, leaseUntil: number | null) =>
          exec('UPDATE webhooks SET enabled = $1, due_at = $2, lease_until = $3, lease_owner = $4 WHERE id = $5', [enabled, dueAt, leaseUntil, leaseUntil === null ? null : 'w', id]);
        let seed = 12345;
        const rand = (n: number) => {
          seed = (seed * 1103515245 + 12345) % 2147483648;
          return seed % n;
        };
        for (let round = 0; round < 25; round++) {
          for (const w of ws) {
            const due = rand(5) === 0 ? null : T0 + rand(1000);
            const lease = [null, null, 0, due === null ? null : due - 1 - rand(50), T0 + rand(2000)][rand(5)]!;
            await set(w.id, rand(8) === 0 ? 0 : 1, due, lease);
          }
          assert.equal(await store.nextDueAt(), await brute(), `round ${round}`);
        }
        // Every owed row leased past its due time: the earliest lease end.
        for (const [i, w] of ws.entries()) await set(w.id, 1, T0 + i, T0 + 5000 - i);
        assert.equal(await store.nextDueAt(), T0 + 5000 - (ws.length - 1));
        for (const w of ws) await set(w.id, 1, null, null);
        assert.equal(await store.nextDueAt(), null);
      });
    });

    describe('dashboard queries', () => {
      /** Records an attempt without touching the webhook's state (the owner holds no lease). */
      const record = (w: WebhookRow, at: number, statusCode: number | null, latencyMs: number | null) =>
        store.completeAttempts([attempt(w, 'nobody', { kind: 'retry', retryAt: at }, { startedAt: at, statusCode, latencyMs, error: statusCode === null ? 'timeout' : null })]);

      it('attemptStats counts per bucket in SQL, with interpolated latency percentiles of the successes', async () => {
        await seed(store);
        const w = await register(store, 'c1', A, 'https://one.example/x');
        assert.deepEqual(await store.attemptStats(T0, 60_000), []);
        await record(w, T0 - 1, 200, 999); // before the window
        await record(w, T0, 200, 10);
        await record(w, T0 + 100, 200, 30);
        await record(w, T0 + 200, 500, 5); // failures do not count in the latency
        await record(w, T0 + 59_999, 204, 20);
        await record(w, T0 + 60_000, null, 50);
        await record(w, T0 + 180_000, 200, 7);
        await record(w, T0 + 180_001, 302, null);
        assert.deepEqual(await store.attemptStats(T0, 60_000), [
          { start: T0, callbacks: 4, successes: 3, failures: 1, latencyP50: 20, latencyP95: 29 },
          { start: T0 + 60_000, callbacks: 1, successes: 0, failures: 1, latencyP50: null, latencyP95: null },
          { start: T0 + 180_000, callbacks: 2, successes: 1, failures: 1, latencyP50: 7, latencyP95: 7 },
        ]);
        assert.deepEqual(await store.attemptStats(T0, 3_600_000), [
          { start: T0, callbacks: 7, successes: 4, failures: 3, latencyP50: 15, latencyP95: 28.5 },
        ]);
      });

      it('attemptStats percentiles are percentile_cont: 1..21 gives 11 and 20, [100, 300] gives 200 and 290', async () => {
        await seed(store);
        const w = await register(store, 'c1', A, 'https://one.example/x');
        for (let i = 21; i >= 1; i--) await record(w, T0 + i, 200, i);
        await record(w, T0 + 30, 200, null); // a success without a latency counts, without a latency
        await record(w, T0 + 1000, 200, 300);
        await record(w, T0 + 1001, 204, 100);
        assert.deepEqual(await store.attemptStats(T0, 1000), [
          { start: T0, callbacks: 22, successes: 22, failures: 0, latencyP50: 11, latencyP95: 20 },
          { start: T0 + 1000, callbacks: 2, successes: 2, failures: 0, latencyP50: 200, latencyP95: 290 },
        ]);
      });

      it('enableWebhook re-enables a disabled webhook (owed notification due now), leaves an enabled one, null when unknown', async () => {
        await seed(store);
        const w = await register(store, 'c1', A, 'https://one.example/x', T0);
        await change(store, A, T0 + 10, T0 + 10, 0);
        const [cl] = await store.claimDue(claimOpts({ now: T0 + 10 }));
        assert.ok(cl);
        await store.completeAttempts([attempt(cl.webhook, 'w1', { kind: 'disable', reason: '410 Gone' }, { statusCode: 410 })]);
        const d = await get(store, w.id);
        assert.equal(d.enabled, false);
        let woken = 0;
        const unsubscribe = await store.subscribeWakeups(() => woken++);
        const r = await store.enableWebhook(w.id, T0 + 9000);
        assert.equal(r?.reenabled, true);
        assert.equal(r?.webhook.enabled, true);
        assert.equal(r?.webhook.disabledReason, null);
        assert.equal(r?.webhook.disabledAt, null);
        assert.equal(r?.webhook.failedAttempts, 0);
        assert.equal(r?.webhook.pendingSince, T0 + 10);
        assert.equal(r?.webhook.dueAt, T0 + 9000);
        assert.equal(r?.webhook.notifySeq, d.notifySeq);
        await waitFor('a wake-up', () => woken > 0);
        await unsubscribe();
        assert.deepEqual((await store.claimDue(claimOpts({ now: T0 + 9000 }))).map((c) => c.webhook.id), [w.id]);

        const again = await store.enableWebhook(w.id, T0 + 9999);
        assert.equal(again?.reenabled, false);
        assert.deepEqual(again?.webhook, await get(store, w.id));
        assert.equal(await store.enableWebhook(w.id + 1000, T0), null);
      });
    });

    describe('client delivery settings, replay and recovery', () => {
      const S1 = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
      const S2 = 'whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
      const S3 = 'whsec_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=';

      it('defaults (empty body, unsigned) until set; null for an unknown client', async () => {
        await seedClients(store);
        assert.deepEqual(await store.getClientDeliverySettings('c1'),
          { clientId: 'c1', payloadMode: 'empty', signingSecret: null, previousSigningSecret: null, previousSecretUntil: null });
        assert.equal(await store.getClientDeliverySettings('nope'), null);
        assert.equal(await store.setPayloadMode('c1', 'json', T0), true);
        assert.equal((await store.getClientDeliverySettings('c1'))?.payloadMode, 'json');
        assert.equal((await store.getClientDeliverySettings('c2'))?.payloadMode, 'empty', 'per client');
        assert.equal(await store.setPayloadMode('c1', 'empty', T0 + 1), true);
        assert.equal((await store.getClientDeliverySettings('c1'))?.payloadMode, 'empty');
        assert.equal(await store.setPayloadMode('nope', 'json', T0), false);
        assert.equal(await store.getClientDeliverySettings('nope'), null, 'no row for an unknown client');
      });

      it('sets, rotates (the replaced secret kept until a time) and removes signing secrets', async () => {
        await seedClients(store);
        const settings = async () => {
          const s = await store.getClientDeliverySettings('c1');
          return [s?.signingSecret, s?.previousSigningSecret, s?.previousSecretUntil];
        };
        assert.equal(await store.setSigningSecret('c1', S1, { previousUntil: T0 + 100, now: T0 }), true);
        assert.deepEqual(await settings(), [S1, null, null], 'nothing to keep on the first secret');
        await store.setPayloadMode('c1', 'json', T0);
        await store.setSigningSecret('c1', S2, { previousUntil: T0 + 500, now: T0 + 1 });
        assert.deepEqual(await settings(), [S2, S1, T0 + 500]);
        assert.equal((await store.getClientDeliverySettings('c1'))?.payloadMode, 'json', 'the payload mode is kept');
        await store.setSigningSecret('c1', S3, { previousUntil: T0 + 900, now: T0 + 2 });
        assert.deepEqual(await settings(), [S3, S2, T0 + 900], 'a second rotation keeps only the secret it replaced');
        await store.setSigningSecret('c1', S1, { previousUntil: null, now: T0 + 3 });
        assert.deepEqual(await settings(), [S1, null, null], 'replaced at once: the previous one is dropped');
        await store.setSigningSecret('c1', null, { previousUntil: T0 + 999, now: T0 + 4 });
        assert.deepEqual(await settings(), [null, null, null], 'removed altogether');
        assert.equal((await store.getClientDeliverySettings('c2'))?.signingSecret, null);
        assert.equal(await store.setSigningSecret('nope', S1, { previousUntil: null, now: T0 }), false);
      });

      it('signing secrets issued at once: exactly one is issued, the others are refused; a rotation starts from the current one', async () => {
        await seedClients(store);
        const results = await Promise.allSettled(Array.from({ length: 12 }, () => issueSigningSecret(store, 'c1', { rotate: false, graceMs: 0, now: T0 })));
        const issued = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
        assert.equal(issued.length, 1, 'one secret issued');
        for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as ClientDeliveryError).kind, 'has-secret');
        assert.equal((await store.getClientDeliverySettings('c1'))?.signingSecret, issued[0]!.secret, 'the one issued is the one stored');
        const rotated = await issueSigningSecret(store, 'c1', { rotate: true, graceMs: 1000, now: T0 + 1 });
        const s = await store.getClientDeliverySettings('c1');
        assert.deepEqual([s?.signingSecret, s?.previousSigningSecret, s?.previousSecretUntil], [rotated.secret, issued[0]!.secret, T0 + 1001]);
        await assert.rejects(issueSigningSecret(store, 'nope', { rotate: false, graceMs: 0, now: T0 }), (e: ClientDeliveryError) => e.kind === 'no-client');
      });

      it('secrets never appear in client rows', async () => {
        await seedClients(store);
        await store.setSigningSecret('c2', S1, { previousUntil: null, now: T0 });
        await store.createToken({ tokenHash: 'th', clientId: 'c2', scope: '/webhook', createdAt: T0, expiresAt: T0 + 1000 });
        for (const row of [await store.getClient('c2'), (await store.findToken('th'))?.client, ...(await store.listClients())]) {
          assert.ok(!JSON.stringify(row).includes(S1));
        }
        assert.deepEqual(await store.getClient('c2'), { id: 'c2', name: 'Client Two', secretHash: 'hash-2', premium: true, createdAt: T0 + 1, revokedAt: null });
      });

      it('replay owes a new notification now (new notify seq) reporting the record\'s modified time; null when unknown', async () => {
        await seed(store);
        const w = await register(store, 'c1', A, 'https://one.example/x', T0);
        await change(store, A, T0 + 10);
        const [cl] = await store.claimDue(claimOpts({ now: T0 + 10 }));
        assert.ok(cl);
        await store.completeAttempts([attempt(cl.webhook, 'w1', { kind: 'success' })]);
        const sent = await get(store, w.id);
        assert.equal(sent.dueAt, null);
        let woken = 0;
        const unsubscribe = await store.subscribeWakeups(() => woken++);
        const r = await store.replayWebhook(w.id, T0 + 5000);
        assert.equal(r?.reenabled, false);
        assert.equal(r?.webhook.changeSeq, sent.changeSeq + 1);
        assert.equal(r?.webhook.notifySeq, sent.changeSeq + 1, 'a new notification: a new webhook-id');
        assert.notEqual(r?.webhook.notifySeq, sent.notifySeq);
        assert.equal(r?.webhook.pendingSince, T0 + 10, 'the record\'s modified time');
        assert.equal(r?.webhook.dueAt, T0 + 5000);
        assert.deepEqual(r?.webhook, await get(store, w.id));
        await waitFor('a wake-up', () => woken > 0);
        await unsubscribe();
        const [again] = await store.claimDue(claimOpts({ now: T0 + 5000 }));
        assert.equal(again?.webhook.id, w.id);
        assert.equal(await store.replayWebhook(w.id + 1000, T0), null);
      });

      it('replay re-enables a disabled webhook, keeps what it owed, resets failures', async () => {
        await seed(store);
        const w = await register(store, 'c1', A, 'https://one.example/x', T0);
        await change(store, A, T0 + 10);
        const [cl] = await store.claimDue(claimOpts({ now: T0 + 10 }));
        assert.ok(cl);
        await store.completeAttempts([attempt(cl.webhook, 'w1', { kind: 'disable', reason: '410 Gone' }, { statusCode: 410 })]);
        const d = await get(store, w.id);
        const r = await store.replayWebhook(w.id, T0 + 9000);
        assert.equal(r?.reenabled, true);
        assert.equal(r?.webhook.enabled, true);
        assert.equal(r?.webhook.disabledReason, null);
        assert.equal(r?.webhook.disabledAt, null);
        assert.equal(r?.webhook.failedAttempts, 0);
        assert.equal(r?.webhook.pendingSince, T0 + 10);
        assert.equal(r?.webhook.dueAt, T0 + 9000);
        assert.equal(r?.webhook.notifySeq, d.changeSeq + 1);
      });

      it('a replay during a callback in flight is sent after it', async () => {
        await seed(store);
        const w = await register(store, 'c1', A, 'https://one.example/x', T0);
        await change(store, A, T0 + 10);
        const [cl] = await store.claimDue(claimOpts({ now: T0 + 10 }));
        assert.ok(cl);
        await store.replayWebhook(w.id, T0 + 20);
        assert.deepEqual(await store.claimDue(claimOpts({ now: T0 + 30 })), [], 'not claimed twice while leased');
        await store.completeAttempts([attempt(cl.webhook, 'w1', { kind: 'success' })]);
        const s = await get(store, w.id);
        assert.equal(s.dueAt, T0 + 5000, 'one more, after the one in flight');
        assert.equal(s.notifySeq, s.changeSeq);
        assert.notEqual(s.notifySeq, cl.webhook.notifySeq);
      });

      it('a replay during a callback in flight that fails is not pushed back by the retry schedule, nor lost to a disabling answer', async () => {
        await seed(store);
        const w = await register(store, 'c1', A, 'https://one.example/x', T0);
        await change(store, A, T0 + 10);
        // The in-flight callback fails (retry): the replay made during it stays due at its time, failures reset.
        const [cl] = await store.claimDue(claimOpts({ now: T0 + 10 }));
        assert.ok(cl);
        const replayed = (await store.replayWebhook(w.id, T0 + 20))!.webhook;
        await store.completeAttempts([attempt(cl.webhook, 'w1', { kind: 'retry', retryAt: T0 + 3_600_000 })]);
        const r = await get(store, w.id);
        assert.equal(r.dueAt, T0 + 20, 'the replay is due when it was asked for, not at the retry');
        assert.equal(r.failedAttempts, 0);
        assert.equal(r.failingSince, null);
        assert.equal(r.notifySeq, replayed.notifySeq, 'the replay\'s notification (its webhook-id)');
        assert.equal(r.lastStatus, '503', 'the failure is still recorded as the last answer');
        assert.equal((await store.listAttempts(w.id, 10)).length, 1);
        // The replay's callback is answered 410 while a second replay is made: it stays enabled and owed.
        const [cl2] = await store.claimDue(claimOpts({ now: T0 + 30, lease: 'w2' }));
        assert.equal(cl2?.webhook.id, w.id);
        await store.replayWebhook(w.id, T0 + 40);
        await store.completeAttempts([attempt(cl2!.webhook, 'w2', { kind: 'disable', reason: '410 Gone' }, { statusCode: 410 })]);
        const d = await get(store, w.id);
        assert.equal(d.enabled, true);
        assert.equal(d.disabledReason, null);
        assert.equal(d.dueAt, T0 + 40);
        // Without a replay, a change in flight keeps the schedule: the failure counts, the retry waits.
        const [cl3] = await store.claimDue(claimOpts({ now: T0 + 50, lease: 'w3' }));
        assert.equal(cl3?.webhook.id, w.id);
        await change(store, A, T0 + 60);
        await store.completeAttempts([attempt(cl3!.webhook, 'w3', { kind: 'retry', retryAt: T0 + 3_600_000 })]);
        const f = await get(store, w.id);
        assert.equal(f.failedAttempts, 1);
        assert.equal(f.dueAt, T0 + 3_600_000);
        const [cl4] = await store.claimDue(claimOpts({ now: T0 + 3_600_000, lease: 'w4' }));
        await store.completeAttempts([attempt(cl4!.webhook, 'w4', { kind: 'disable', reason: '410 Gone' }, { statusCode: 410 })]);
        assert.equal((await get(store, w.id)).enabled, false);
      });

      it('recover replays the client\'s webhooks disabled or failing since a time, and only those', async () => {
        await seed(store);
        const w1 = await register(store, 'c1', A, 'https://one.example/1');
        const w2 = await register(store, 'c1', B, 'https://one.example/1');
        const w3 = await register(store, 'c1', C, 'https://one.example/1');
        const w4 = await register(store, 'c1', A, 'https://one.example/4');
        const w5 = await register(store, 'c2', A, 'https://two.example/1');
        await change(store, A, T0 + 10);
        await change(store, B, T0 + 10);
        const claims = await store.claimDue(claimOpts({ now: T0 + 10 }));
        const claimed = (id: number) => claims.find((c) => c.webhook.id === id)?.webhook ?? assert.fail(`webhook ${id} not claimed`);
        await store.completeAttempts([
          attempt(claimed(w1.id), 'w1', { kind: 'disable', reason: 'gone' }), // disabled at T0 + 1012
          attempt(claimed(w2.id), 'w1', { kind: 'retry', retryAt: T0 + 60_000 }), // failing since T0 + 1012
          attempt(claimed(w4.id), 'w1', { kind: 'disable', reason: 'old' }, { startedAt: T0 + 100 }), // disabled at T0 + 112
          attempt(claimed(w5.id), 'w1', { kind: 'disable', reason: 'gone' }), // another client's
        ]);
        let woken = 0;
        const unsubscribe = await store.subscribeWakeups(() => woken++);
        assert.equal(await store.recoverWebhooks('c1', T0 + 500, T0 + 2000), 2);
        await waitFor('a wake-up', () => woken > 0);
        await unsubscribe();
        for (const id of [w1.id, w2.id]) {
          const w = await get(store, id);
          assert.equal(w.enabled, true);
          assert.equal(w.failedAttempts, 0);
          assert.equal(w.dueAt, T0 + 2000);
          assert.equal(w.pendingSince, T0 + 10);
          assert.equal(w.notifySeq, w.changeSeq);
        }
        assert.equal((await get(store, w3.id)).dueAt, null, 'a healthy webhook owes nothing new');
        assert.equal((await get(store, w4.id)).enabled, false, 'disabled before the time');
        assert.equal((await get(store, w5.id)).enabled, false, 'another client\'s');
        assert.deepEqual((await store.claimDue(claimOpts({ now: T0 + 2000 }))).map((c) => c.webhook.id).sort(), [w1.id, w2.id].sort());
        assert.equal(await store.recoverWebhooks('c1', T0 + 500, T0 + 3000), 0, 'nothing left to recover');
        assert.equal(await store.recoverWebhooks('nope', T0, T0), 0);
      });
    });

    describe('subscribeWakeups', () => {
      it('fires when a change owes a notification, not otherwise; unsubscribe stops it', async () => {
        await seed(store);
        await register(store, 'c1', A, 'https://one.example/x');
        let calls = 0;
        const unsubscribe = await store.subscribeWakeups(() => calls++);
        await change(store, B, T0 + 10); // no webhook on B
        await change(store, A, T0 + 10);
        await waitFor('a wake-up', () => calls > 0);
        assert.equal(calls, 1, 'the change that owed nothing did not wake');
        await unsubscribe();
        await change(store, A, T0 + 20);
        await sleep(50);
        assert.equal(calls, 1);
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------

storeSuite('SqliteStore', async () => new SqliteStore(':memory:'));

if (await postgresSuiteGate('PostgresStore')) {
  const schemas: TestSchema[] = [];
  const newSchema = async (): Promise<TestSchema> => {
    const s = (await createTestSchema()) ?? assert.fail('PostgreSQL went away');
    schemas.push(s);
    return s;
  };
  const dropSchemas = async (): Promise<void> => {
    for (const s of schemas.splice(0)) await s.drop();
  };

  storeSuite('PostgresStore', async () => new PostgresStore((await newSchema()).url, { poolSize: 4 }), { afterEach: dropSchemas });

  describe('PostgresStore with several stores on one database', () => {
    const stores: PostgresStore[] = [];
    let schema: TestSchema;
    const open = (url = schema.url, opts: ConstructorParameters<typeof PostgresStore>[1] = {}): PostgresStore => {
      const s = new PostgresStore(url, { poolSize: 4, ...opts });
      stores.push(s);
      return s;
    };

    beforeEach(async () => {
      schema = await newSchema();
    });
    afterEach(async () => {
      for (const s of stores.splice(0)) await s.close();
      await dropSchemas();
    });
    after(async () => {
      await dropSchemas();
    });

    it('three stores migrating a fresh schema at once apply each migration once', async () => {
      const [a, b, c] = [open(), open(), open()];
      const results = await Promise.all([a.migrate(), b.migrate(), c.migrate()]);
      assert.deepEqual(results.flat().sort(), MIGRATIONS);
      for (const s of [a, b, c]) assert.deepEqual(await s.pendingMigrations(), []);
      const rows = await withPgClient(schema.url, (cl) => cl.query('SELECT name FROM schema_migrations'));
      assert.equal(rows.rowCount, MIGRATIONS.length);
    });

    it('honours a schema= URL parameter', async () => {
      const u = new URL(pgTestUrl());
      u.searchParams.set('schema', schema.schema);
      const s = open(u.toString());
      assert.deepEqual(await s.migrate(), MIGRATIONS);
      const t = await withPgClient(pgTestUrl(), (cl) => cl.query("SELECT to_regclass($1) AS t", [`${schema.schema}.webhooks`]));
      assert.notEqual(t.rows[0]?.t, null);
    });

    it('wakes a listener of another store (cross-process NOTIFY), not one on another schema', async () => {
      const a = open();
      const b = open();
      await a.migrate();
      const otherSchema = await newSchema();
      const other = open(otherSchema.url);
      await other.migrate();
      for (const s of [a, other]) {
        await seed(s);
        await register(s, 'c1', A, 'https://one.example/x');
      }
      let woken = 0;
      let otherWoken = 0;
      await b.subscribeWakeups(() => woken++);
      await other.subscribeWakeups(() => otherWoken++);
      await change(a, A, T0 + 10);
      await waitFor('the NOTIFY from the other store', () => woken > 0);
      assert.equal(woken, 1);
      await change(other, A, T0 + 10);
      await waitFor('the NOTIFY in the other schema', () => otherWoken > 0);
      assert.equal(woken, 1, 'a change in another schema does not wake this one');

      // Re-enabling a webhook that owes a notification wakes too.
      const [cl] = await a.claimDue(claimOpts({ now: T0 + 10 }));
      assert.ok(cl);
      await a.completeAttempts([attempt(cl.webhook, 'w1', { kind: 'disable', reason: 'gone' })]);
      await a.registerWebhook({ clientId: 'c1', orcid: A, url: 'https://one.example/x', host: 'one.example', now: T0 + 50 });
      await waitFor('the NOTIFY of a re-enable', () => woken > 1);
    });

    it('two stores claiming at once never get the same webhook', async () => {
      const a = open();
      const b = open();
      await a.migrate();
      await seedClients(a);
      const ids = Array.from({ length: 1000 }, (_, i) => orcidN(i));
      await a.addRecords(ids, T0);
      for (const o of ids) await register(a, 'c1', o, `https://h${o.slice(-1)}.example/cb`);
      const r = await a.applyChanges(ids.map((o, i) => ({ orcid: o, modifiedAt: T0 + 1 + i })), { create: false, now: T0 + 500, notifyDelayMs: 0 });
      assert.equal(r.webhooksNotified, 1000);
      const loop = async (s: Store, owner: string): Promise<number[]> => {
        const got: number[] = [];
        for (;;) {
          const claims = await s.claimDue({ lease: owner, limit: 20, now: T0 + 5000, leaseMs: 60_000, excludeHosts: [] });
          if (claims.length === 0) return got;
          for (const c of claims) {
            assert.equal(c.webhook.lease, owner);
            got.push(c.webhook.id);
          }
        }
      };
      // Many small claims (50 of 20 rows): under a loaded machine, one store's four claims of 50 could
      // take all 200 rows before the other's first claim returned.
      await Promise.all([a.ping(), b.ping(), a.ping(), b.ping()]); // warm both pools: start together
      const results = await Promise.all([loop(a, 'a1'), loop(b, 'b1'), loop(a, 'a2'), loop(b, 'b2')]);
      const [a1 = [], b1 = [], a2 = [], b2 = []] = results;
      assert.ok(a1.length + a2.length > 0 && b1.length + b2.length > 0, 'both stores got some');
      const all = results.flat();
      assert.equal(all.length, 1000, 'every due webhook claimed');
      assert.equal(new Set(all).size, 1000, 'no webhook claimed twice');
    });

    it('two stores registering the same webhook at once: one created, one exists', async () => {
      const a = open();
      const b = open();
      await a.migrate();
      await seed(a);
      for (let i = 0; i < 10; i++) {
        const input = { clientId: 'c1', orcid: A, url: `https://race.example/${i}`, host: 'race.example', now: T0, maxPerClient: i % 2 ? 100 : undefined };
        const rs = await Promise.all([a.registerWebhook(input), b.registerWebhook(input)]);
        assert.deepEqual(rs.map((r) => r.outcome).sort(), ['created', 'exists']);
      }
    });

    it('two stores registering the same webhooks at once: one row each, the counters exact', async () => {
      const a = open();
      const b = open();
      await a.migrate();
      await seed(a);
      const ids = Array.from({ length: 60 }, (_, i) => orcidN(100 + i));
      await a.addRecords(ids.slice(0, 40), T0);
      await b.ping(); // connected: its batch races a's
      const inputs = ids.flatMap((orcid, i) => ['c1', 'c2'].map((clientId) =>
        ({ clientId, orcid, url: `https://race.example/${i % 3}`, host: 'race.example', now: T0, createRecord: i >= 40 })));
      const rs = await Promise.all([a, b].flatMap((s) => inputs.map((input) => s.registerWebhook(input))));
      assert.equal(rs.filter((r) => r.outcome === 'created').length, inputs.length, 'each webhook created once');
      assert.equal(rs.filter((r) => r.outcome === 'exists').length, inputs.length, 'and found by the other store');
      const counts = await withPgClient(schema.url, (cl) => cl.query<{ id: string; webhook_count: number; real: number }>(
        'SELECT c.id, c.webhook_count, (SELECT count(*) FROM webhooks w WHERE w.client_id = c.id)::int AS real FROM clients c ORDER BY c.id'));
      assert.deepEqual(counts.rows.map((r) => [r.id, Number(r.webhook_count), r.real]), [['c1', 60, 60], ['c2', 60, 60]]);
      assert.equal(await a.countRecords(), 63);
    });

    it('the per-client cap holds under concurrent registrations', async () => {
      const a = open();
      const b = open();
      await a.migrate();
      await seed(a);
      const rs = await Promise.all(Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? a : b).registerWebhook({ clientId: 'c1', orcid: A, url: `https://cap.example/${i}`, host: 'cap.example', now: T0, maxPerClient: 3 })));
      assert.equal(rs.filter((r) => r.outcome === 'created').length, 3);
      assert.equal(rs.filter((r) => r.outcome === 'limit').length, 7);
    });

    it('concurrent changes creating the same record count it once', async () => {
      const a = open();
      const b = open();
      await a.migrate();
      for (let i = 0; i < 10; i++) {
        const X = orcidN(9000 + i);
        const rs = await Promise.all([
          a.applyChanges([{ orcid: X, modifiedAt: T0 + 10 }], { create: true, now: T0, notifyDelayMs: 0 }),
          b.applyChanges([{ orcid: X, modifiedAt: T0 + 20 }], { create: true, now: T0, notifyDelayMs: 0 }),
        ]);
        assert.equal(rs[0].created + rs[1].created, 1);
        assert.equal(rs[0].created + rs[0].changed + rs[0].ignored, 1);
        assert.equal(rs[1].created + rs[1].changed + rs[1].ignored, 1);
        assert.equal((await a.getRecord(X))?.modifiedAt, T0 + 20);
      }
    });

    it('concurrent changes creating the same record count it once, also in batches with an iD twice (one transaction of rounds)', async () => {
      const a = open();
      const b = open();
      await a.migrate();
      for (let i = 0; i < 10; i++) {
        const X = orcidN(9100 + i);
        const rs = await Promise.all([
          a.applyChanges([{ orcid: X, modifiedAt: T0 + 10 }, { orcid: X, modifiedAt: T0 + 15 }], { create: true, now: T0, notifyDelayMs: 0, perChange: true }),
          b.applyChanges([{ orcid: X, modifiedAt: T0 + 20 }, { orcid: X, modifiedAt: T0 + 30 }], { create: true, now: T0, notifyDelayMs: 0, perChange: true }),
        ]);
        assert.equal(rs[0].created + rs[1].created, 1);
        for (const r of rs) assert.equal(r.created + r.changed + r.ignored, 2);
        assert.equal((await a.getRecord(X))?.modifiedAt, T0 + 30);
        // Each batch's second change was judged against what its first left.
        for (const r of rs) assert.ok(r.changes![1]!.outcome !== 'created');
      }
    });

    it('survives killed connections: the pool recovers and the listener reconnects and wakes', async () => {
      const app = `ow_test_kill_${schema.schema.slice(-12)}`;
      const u = new URL(schema.url);
      u.searchParams.set('application_name', app);
      const errors: Error[] = [];
      const a = open(u.toString(), { onError: (e) => errors.push(e) });
      const b = open();
      await a.migrate();
      await seed(a);
      await register(a, 'c1', A, 'https://one.example/x');
      let woken = 0;
      await a.subscribeWakeups(() => woken++);
      await a.ping();
      const killed = await withPgClient(pgTestUrl(), (cl) =>
        cl.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()', [app]));
      assert.ok((killed.rowCount ?? 0) >= 2, 'the pool connection and the listener were killed');
      await waitFor('the wake-up after reconnecting', () => woken > 0);
      assert.ok(errors.length > 0, 'the lost connections were reported to onError');
      await waitFor('the pool to answer again', async () => a.ping().then(() => true, () => false));
      const before = woken;
      await change(b, A, T0 + 10);
      await waitFor('a NOTIFY on the new connection', () => woken > before);
    });

    it('uses statement_timeout for pooled connections', async () => {
      const s = open(schema.url, { statementTimeoutMs: 1234 });
      const [r] = (await s.pool.query('SHOW statement_timeout')).rows as Array<{ statement_timeout: string }>;
      assert.equal(r?.statement_timeout, '1234ms');
      await assert.rejects(s.pool.query('SELECT pg_sleep(2)'), /statement timeout/);
    });

    it('a success completed while a change of its record commits reports the newest modified time in what it owes next', async () => {
      const s = open();
      await s.migrate();
      await seed(s);
      await register(s, 'c1', A, 'https://one.example/x');
      await change(s, A, T0 + 10);
      const [c] = await s.claimDue(claimOpts({ now: T0 + 10 }));
      assert.ok(c);
      // A change of A (as applyChanges makes it: the record locked and moved on, the webhook owing one
      // more) holds its locks while the completion starts, and commits after.
      await withPgClient(schema.url, async (cl) => {
        await cl.query('BEGIN');
        await cl.query('SELECT 1 FROM records WHERE orcid = $1 FOR NO KEY UPDATE', [A]);
        await cl.query('UPDATE records SET modified_at = $2, placeholder = 0 WHERE orcid = $1', [A, T0 + 50]);
        await cl.query('UPDATE webhooks SET change_seq = change_seq + 1, pending_since = COALESCE(pending_since, $2), due_at = COALESCE(due_at, $2) WHERE orcid = $1', [A, T0 + 50]);
        const completing = s.completeAttempts([attempt(c.webhook, 'w1', { kind: 'success' })]);
        await sleep(300);
        await cl.query('COMMIT');
        await completing;
      });
      const w = await get(s, c.webhook.id);
      assert.equal(w.changeSeq, c.webhook.changeSeq + 1);
      assert.equal(w.notifySeq, w.changeSeq, 'one more notification');
      assert.equal(w.pendingSince, T0 + 50, 'reporting the change that came during the callback, not the one it answered');
    });

    it('returns numbers, not strings, for BIGINT columns', async () => {
      const s = open();
      await s.migrate();
      await seed(s);
      const w = await register(s, 'c1', A, 'https://one.example/x');
      assert.equal(typeof w.id, 'number');
      assert.equal(typeof w.createdAt, 'number');
      assert.equal(typeof (await s.countRecords()), 'number');
    });
  });
}
