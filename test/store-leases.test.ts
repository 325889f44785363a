/*
 * Issue 11 on both stores: worker heartbeats and lease takeover on the database's clock, claims of
 * a crashed predecessor retaken at start, the per-client share of a claim, the failure run's start
 * (failing_since), and open-records placeholders that do not hide a change in the same millisecond.
 */
import assert from 'node:assert/strict';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PostgresStore } from '../src/store/postgres/postgres-store.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import type { ClaimOptions, Store, WebhookRow } from '../src/store/types.ts';
import { createTestSchema, postgresSuiteGate, type TestSchema } from './helpers/postgres.ts';

const T0 = 1_700_000_000_000;
const orcid = (i: number): string => `0000-0003-0000-${String(i).padStart(4, '0')}`;

async function seed(store: Store, records: number): Promise<void> {
  await store.createClient({ id: 'c1', name: 'One', secretHash: 'h', premium: true, createdAt: T0 });
  await store.createClient({ id: 'c2', name: 'Two', secretHash: 'h', premium: true, createdAt: T0 });
  await store.addRecords(Array.from({ length: records }, (_, i) => orcid(i)), T0);
}

async function hook(store: Store, clientId: string, i: number, host: string): Promise<WebhookRow> {
  const r = await store.registerWebhook({ clientId, orcid: orcid(i), url: `https://${host}/${clientId}/${i}`, host, now: T0 });
  return r.outcome === 'created' ? r.webhook : assert.fail('not created');
}

const claim = (over: Partial<ClaimOptions>): ClaimOptions => ({ lease: 'x', limit: 100, now: T0 + 100, leaseMs: 30_000, excludeHosts: [], ...over });

function suite(name: string, make: () => Promise<Store>, cleanup: () => Promise<void> = async () => {}): void {
  describe(name, () => {
    let store: Store;
    beforeEach(async () => {
      store = await make();
      await store.migrate();
    });
    afterEach(async () => {
      await store.close();
      await cleanup();
    });

    it('a worker whose heartbeat is stale loses its claims; a live one keeps them', async () => {
      await seed(store, 2);
      const a = await hook(store, 'c1', 0, 'a.example');
      const b = await hook(store, 'c1', 1, 'b.example');
      await store.applyChanges([{ orcid: orcid(0), modifiedAt: T0 + 10 }, { orcid: orcid(1), modifiedAt: T0 + 10 }], { create: false, now: T0 + 10, notifyDelayMs: 0 });
      await store.heartbeat('live');
      await store.heartbeat('dying');
      assert.equal((await store.claimDue(claim({ lease: 'live#1', worker: 'live', excludeHosts: ['b.example'] }))).length, 1);
      assert.equal((await store.claimDue(claim({ lease: 'dying#1', worker: 'dying' }))).length, 1);
      assert.deepEqual(await store.claimDue(claim({ lease: 'other#1', worker: 'other', workerStaleMs: 300 })), [], 'both heartbeats are fresh');
      await sleep(400);
      await store.heartbeat('live');
      const taken = await store.claimDue(claim({ lease: 'other#2', worker: 'other', workerStaleMs: 300 }));
      assert.deepEqual(taken.map((c) => [c.webhook.id, c.reclaimed]), [[b.id, true]], 'only the dead worker\'s claim, long before its 30 s lease ends');
      assert.equal((await store.getWebhook(a.id))?.lease, 'live#1');
      assert.deepEqual((await store.listWorkers()).map((w) => w.id).sort(), ['dying', 'live']);
      await store.retireWorker('dying');
      assert.deepEqual((await store.listWorkers()).map((w) => w.id), ['live']);
    });

    it('heartbeats and leases use the database clock', async () => {
      const before = Date.now();
      await store.heartbeat('w');
      const [w] = await store.listWorkers();
      assert.ok(w && w.heartbeatAt >= before - 50 && w.heartbeatAt <= Date.now() + 50, `heartbeat at ${w?.heartbeatAt}, now ${before}`);
    });

    it('expireLeases: a dead predecessor\'s claims (or every other worker\'s) are claimable at once', async () => {
      await seed(store, 3);
      for (let i = 0; i < 3; i++) await hook(store, 'c1', i, `h${i}.example`);
      await store.applyChanges([0, 1, 2].map((i) => ({ orcid: orcid(i), modifiedAt: T0 + 10 })), { create: false, now: T0 + 10, notifyDelayMs: 0 });
      await store.heartbeat('old');
      await store.heartbeat('peer');
      assert.equal((await store.claimDue(claim({ lease: 'old#1', worker: 'old', limit: 1 }))).length, 1);
      assert.equal((await store.claimDue(claim({ lease: 'peer#1', worker: 'peer', limit: 1 }))).length, 1);
      assert.equal((await store.claimDue(claim({ lease: 'legacy', limit: 1 }))).length, 1, 'a lease without a worker');
      assert.equal(await store.expireLeases(['old']), 1);
      await store.heartbeat('new');
      const [c] = await store.claimDue(claim({ lease: 'new#1', worker: 'new' }));
      assert.equal(c?.reclaimed, true);
      assert.equal(c?.webhook.lease, 'new#1');
      assert.equal(await store.expireLeases({ allBut: 'new' }), 2, 'the peer\'s and the legacy lease; not our own');
      assert.equal((await store.claimDue(claim({ lease: 'new#2', worker: 'new' }))).length, 2);
      assert.equal(await store.expireLeases([]), 0);
    });

    it('a claim takes at most perClientLimit rows of one client, counting those it has in flight', async () => {
      await seed(store, 30);
      for (let i = 0; i < 20; i++) await hook(store, 'c1', i, `h${i % 10}.example`);
      for (let i = 20; i < 30; i++) await hook(store, 'c2', i, `other${i}.example`);
      // c1's changes are all due first.
      await store.applyChanges(Array.from({ length: 20 }, (_, i) => ({ orcid: orcid(i), modifiedAt: T0 + 10 })), { create: false, now: T0 + 10, notifyDelayMs: 0 });
      await store.applyChanges(Array.from({ length: 10 }, (_, i) => ({ orcid: orcid(20 + i), modifiedAt: T0 + 20 })), { create: false, now: T0 + 20, notifyDelayMs: 0 });
      const first = await store.claimDue(claim({ lease: 'w#1', perHostLimit: 8, perClientLimit: 4, clientSlots: { c1: 1 } }));
      const byClient = (cs: typeof first, id: string) => cs.filter((c) => c.webhook.clientId === id).length;
      assert.equal(byClient(first, 'c1'), 1, 'c1 has 3 in flight already');
      assert.equal(byClient(first, 'c2'), 4);
      const second = await store.claimDue(claim({ lease: 'w#2', perHostLimit: 8, perClientLimit: 100, excludeClients: ['c1'] }));
      assert.equal(byClient(second, 'c1'), 0, 'an excluded client gets nothing');
      assert.equal(byClient(second, 'c2'), 6);
    });

    it('failing_since marks the start of a run of failures; a success or a re-enable clears it', async () => {
      await seed(store, 1);
      const w = await hook(store, 'c1', 0, 'a.example');
      await store.applyChanges([{ orcid: orcid(0), modifiedAt: T0 + 10 }], { create: false, now: T0 + 10, notifyDelayMs: 0 });
      const fail = async (startedAt: number, kind: 'retry' | 'disable' | 'success') => {
        const [c] = await store.claimDue(claim({ lease: `o${startedAt}`, now: startedAt }));
        assert.ok(c, `claimed at ${startedAt}`);
        const outcome = kind === 'retry' ? { kind, retryAt: startedAt + 100 } as const : kind === 'disable' ? { kind, reason: 'r' } as const : { kind } as const;
        await store.completeAttempts([{
          webhookId: w.id, lease: `o${startedAt}`, claimedSeq: c.webhook.changeSeq, notificationId: 'n', startedAt, durationMs: 0,
          statusCode: kind === 'success' ? 200 : 503, error: null, responseSnippet: null, latencyMs: null, outcome, nextDueAt: startedAt,
        }]);
        return (await store.getWebhook(w.id))!;
      };
      assert.equal((await fail(T0 + 100, 'retry')).failingSince, T0 + 100);
      assert.equal((await fail(T0 + 200, 'retry')).failingSince, T0 + 100, 'kept across failures');
      assert.equal((await fail(T0 + 300, 'success')).failingSince, null);
      await store.applyChanges([{ orcid: orcid(0), modifiedAt: T0 + 400 }], { create: false, now: T0 + 400, notifyDelayMs: 0 });
      assert.equal((await fail(T0 + 500, 'disable')).failingSince, T0 + 500);
      const re = await store.enableWebhook(w.id, T0 + 600);
      assert.equal(re?.webhook.failingSince, null);
    });

    it('open records mode: a change in the same millisecond as the registration that created the record is not lost', async () => {
      await seed(store, 0);
      const iD = '0000-0002-1825-0097';
      const r = await store.registerWebhook({ clientId: 'c1', orcid: iD, url: 'https://a.example/x', host: 'a.example', now: T0, createRecord: true });
      assert.equal(r.outcome, 'created');
      const res = await store.applyChanges([{ orcid: iD, modifiedAt: T0 }], { create: true, now: T0, notifyDelayMs: 0 });
      assert.deepEqual(res, { created: 0, changed: 1, ignored: 0, webhooksNotified: 1 });
      const w = r.outcome === 'created' ? await store.getWebhook(r.webhook.id) : null;
      assert.equal(w?.pendingSince, T0);
      assert.equal(w?.dueAt, T0);
      // Once changed, the record is a real one: the same time again is not newer.
      assert.deepEqual(await store.applyChanges([{ orcid: iD, modifiedAt: T0 }], { create: true, now: T0, notifyDelayMs: 0 }),
        { created: 0, changed: 0, ignored: 1, webhooksNotified: 0 });
      // A record the registry created keeps the strict rule: equal is not newer.
      await store.addRecords(['0000-0001-5109-3700'], T0);
      assert.equal((await store.applyChanges([{ orcid: '0000-0001-5109-3700', modifiedAt: T0 }], { create: false, now: T0, notifyDelayMs: 0 })).ignored, 1);
    });
  });
}

suite('SqliteStore: leases, heartbeats, fair claims', async () => new SqliteStore(':memory:'));

if (await postgresSuiteGate('PostgresStore: leases, heartbeats, fair claims')) {
  const schemas: TestSchema[] = [];
  after(async () => {
    for (const s of schemas.splice(0)) await s.drop();
  });
  suite('PostgresStore: leases, heartbeats, fair claims', async () => {
    const s = (await createTestSchema()) ?? assert.fail('PostgreSQL went away');
    schemas.push(s);
    return new PostgresStore(s.url, { poolSize: 4 });
  });
}
