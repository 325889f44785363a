/*
 * Group commit of record changes (issue 12, cause 6): the changes that arrive together go to the
 * store in one applyChanges; each caller is answered after the commit with its own outcome, and a
 * change that fails does not fail the others.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createChangeSink } from '../src/changes/source.ts';
import { orcidFromBase } from '../src/domain/orcid-id.ts';
import type { ApplyChangesOptions, ApplyChangesResult, RecordChange, Store } from '../src/store/types.ts';
import { ADMIN_TOKEN, backends, startHarness, webhookPath, type Harness } from './helpers/harness.ts';

const iD = (i: number): string => orcidFromBase(300_000_000_000 + i);

type Apply = Store['applyChanges'];

/** Wraps the store's applyChanges (the sink calls it through the store object); returns the calls seen and a restore. */
function spyApply(store: Store, around?: (real: Apply, changes: RecordChange[], opts: ApplyChangesOptions) => Promise<ApplyChangesResult>) {
  const real = store.applyChanges.bind(store);
  const calls: RecordChange[][] = [];
  store.applyChanges = async (changes, opts) => {
    calls.push(changes);
    return around ? around(real, changes, opts) : real(changes, opts);
  };
  return { calls, restore: () => void (store.applyChanges = real) };
}

for (const { backend, skip } of await backends()) describe(`group commit of record changes on ${backend}`, { skip }, () => {
  let h: Harness;
  before(async () => { h = await startHarness({ notifyDelayMs: 60_000 }, { backend }); });
  after(async () => { await h?.close(); });

  const touch = (orcid: string, modified?: string) => h.svc.app.inject({
    method: 'PUT', url: `/admin/api/records/${orcid}`,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(modified && { 'content-type': 'application/json' }) },
    ...(modified && { payload: JSON.stringify({ modified }) }),
  });
  const bulk = (changes: { orcid: string; modified: string }[]) => h.svc.app.inject({
    method: 'POST', url: '/admin/api/changes', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, payload: JSON.stringify({ changes }),
  });
  const register = async (orcid: string, n: number) => {
    for (let k = 0; k < n; k++) {
      const res = await h.svc.app.inject({ method: 'PUT', url: webhookPath(orcid, `https://example.org/${orcid}/${k}`), headers: { authorization: `Bearer ${h.token}` } });
      assert.equal(res.statusCode, 201, res.body);
    }
  };

  test('concurrent PUTs are applied together and each is answered with its own result', async () => {
    // Records 0..5 exist, record i with i webhooks; 6..11 are new.
    for (let i = 0; i < 6; i++) {
      assert.equal((await touch(iD(i), '2020-01-01T00:00:00Z')).statusCode, 201);
      await register(iD(i), i);
    }
    const spy = spyApply(h.store);
    try {
      const ids = Array.from({ length: 12 }, (_, i) => iD(i));
      const [older, ...answers] = await Promise.all([
        touch(iD(0), '2019-01-01T00:00:00Z'), // older than the record's time: ignored
        ...ids.map((id) => touch(id)),
      ]);
      assert.ok(spy.calls.some((c) => c.length > 1), `changes arriving together share a store call (calls: ${spy.calls.map((c) => c.length).join(', ')})`);
      assert.ok(spy.calls.length < 13, 'fewer store calls than requests');
      assert.equal(older!.statusCode, 200);
      assert.deepEqual({ ...(older!.json() as object), modified: undefined }, { orcid: iD(0), modified: undefined, created: false, changed: false, ignored: true, webhooksNotified: 0 });
      for (const [i, res] of answers.entries()) {
        const body = res.json() as { orcid: string; modified: string; created: boolean; changed: boolean; ignored: boolean; webhooksNotified: number };
        assert.equal(body.orcid, ids[i]);
        assert.equal(res.statusCode, i < 6 ? 200 : 201, res.body);
        assert.deepEqual([body.created, body.changed, body.ignored], i < 6 ? [false, true, false] : [true, false, false]);
        assert.equal(body.webhooksNotified, i < 6 ? i : 0, `record ${i}: its own webhooks only`);
        // The answer is what the database holds (nothing else wrote these records).
        assert.equal(body.modified, new Date((await h.store.getRecord(ids[i]!))!.modifiedAt).toISOString());
      }
      // The ignored one answered the time the record held when it was judged (2020, or the touch's if that came first).
      assert.ok(Date.parse((older!.json() as { modified: string }).modified) >= Date.parse('2020-01-01T00:00:00Z'));
    } finally {
      spy.restore();
    }
  });

  test('two touches of one record in one group: both count, each answered with the time it left', async () => {
    await touch(iD(20), '2020-01-01T00:00:00Z');
    const [a, b] = await Promise.all([touch(iD(20)), touch(iD(20))]);
    const ma = Date.parse((a!.json() as { modified: string }).modified);
    const mb = Date.parse((b!.json() as { modified: string }).modified);
    assert.equal(a!.json().changed, true);
    assert.equal(b!.json().changed, true);
    assert.ok(mb > ma, 'the second touch is newer than the first, even in the same millisecond');
    assert.equal((await h.store.getRecord(iD(20)))!.modifiedAt, mb);
  });

  test('nothing is answered before the commit', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let committed = false;
    const spy = spyApply(h.store, async (real, changes, opts) => {
      await gate;
      const r = await real(changes, opts);
      committed = true;
      return r;
    });
    try {
      const answered: boolean[] = [];
      const pending = [iD(30), iD(31), iD(32)].map((id, i) => touch(id).then((res) => {
        answered[i] = committed;
        return res;
      }));
      const bulkAnswer = bulk([{ orcid: iD(33), modified: '2021-01-01T00:00:00Z' }]).then((res) => {
        answered[3] = committed;
        return res;
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(answered, [], 'no answer while the store call has not returned');
      assert.equal(await h.store.getRecord(iD(30)), null, 'nothing written yet');
      release();
      const res = await Promise.all([...pending, bulkAnswer]);
      assert.deepEqual(res.map((r) => r.statusCode), [201, 201, 201, 202]);
      assert.deepEqual(answered, [true, true, true, true], 'every answer came after the commit');
      assert.deepEqual(res[3]!.json(), { created: 1, changed: 0, ignored: 0, webhooksNotified: 0 });
    } finally {
      spy.restore();
    }
  });

  test('a change the store fails on fails alone: the others of its group are applied and answered', async () => {
    const POISON = iD(40);
    const spy = spyApply(h.store, async (real, changes, opts) => {
      if (changes.some((c) => c.orcid === POISON)) throw new Error('simulated store failure on one record');
      return real(changes, opts);
    });
    try {
      const [bad, ok1, ok2, okBulk] = await Promise.all([
        touch(POISON), touch(iD(41)), touch(iD(42)),
        bulk([{ orcid: iD(43), modified: '2021-01-01T00:00:00Z' }, { orcid: iD(44), modified: '2021-01-01T00:00:00Z' }]),
      ]);
      assert.ok(bad!.statusCode >= 500, `the failing one fails: ${bad!.statusCode}`);
      assert.deepEqual([ok1!.statusCode, ok2!.statusCode, okBulk!.statusCode], [201, 201, 202]);
      assert.deepEqual(okBulk!.json(), { created: 2, changed: 0, ignored: 0, webhooksNotified: 0 });
      for (const id of [iD(41), iD(42), iD(43), iD(44)]) assert.ok(await h.store.getRecord(id), `${id} written`);
      assert.equal(await h.store.getRecord(POISON), null);
    } finally {
      spy.restore();
    }
  });

  test('a database that does not answer fails the whole group at once with 503 / 9057, without trying each call again on its own', async () => {
    const spy = spyApply(h.store, async () => {
      await new Promise((r) => setTimeout(r, 50));
      throw Object.assign(new Error('Query read timeout'), {});
    });
    try {
      const answers = await Promise.all([touch(iD(50)), touch(iD(51)), touch(iD(52)), bulk([{ orcid: iD(53), modified: '2021-01-01T00:00:00Z' }])]);
      for (const a of answers) {
        assert.equal(a.statusCode, 503, a.body);
        assert.equal(a.json()['error-code'], 9057);
        assert.equal(a.headers['retry-after'], '5');
      }
      // One call for the group (two at most: a first lone call may have left before the others came),
      // not one more per change as for a bad change.
      assert.ok(spy.calls.length <= 2, `${spy.calls.length} store calls`);
    } finally {
      spy.restore();
    }
  });

  test('the sink: one store call for calls of one turn, split back per call; create and no-create calls are not merged', async () => {
    await touch(iD(50), '2020-01-01T00:00:00Z');
    await register(iD(50), 2);
    const spy = spyApply(h.store);
    const woke: string[] = [];
    const sink = createChangeSink({ store: h.store, notifyDelayMs: 60_000, maxInFlight: 1, onApplied: (source) => woke.push(source) });
    try {
      const t = Date.now() + 3_600_000; // after the webhooks' creation: they are notified
      const [a, b, c, d] = await Promise.all([
        sink.apply('a', [{ orcid: iD(50), modifiedAt: t }, { orcid: iD(51), modifiedAt: t }], { create: true }),
        sink.apply('b', [{ orcid: iD(50), modifiedAt: t }], { create: true, perChange: true }),
        sink.apply('c', [{ orcid: iD(50), modifiedAt: t + 1 }, { orcid: iD(52), modifiedAt: t }], { create: false }),
        sink.apply('d', [{ orcid: iD(50), modifiedAt: t + 2 }], { create: true }),
      ]);
      assert.deepEqual(spy.calls.map((x) => x.length), [3, 2, 1], 'a and b together, then c (no create), then d');
      assert.deepEqual(a, { created: 1, changed: 1, ignored: 0, webhooksNotified: 2 });
      assert.deepEqual(b, { created: 0, changed: 0, ignored: 1, webhooksNotified: 0, changes: [{ outcome: 'ignored', modifiedAt: t, webhooksNotified: 0 }] });
      assert.deepEqual(c, { created: 0, changed: 1, ignored: 1, webhooksNotified: 2 });
      assert.deepEqual(d, { created: 0, changed: 1, ignored: 0, webhooksNotified: 2 });
      assert.deepEqual(woke.sort(), ['a', 'b', 'c', 'd']);
      assert.equal(await h.store.getRecord(iD(52)), null, 'not created (create: false)');
      assert.equal((await h.store.getRecord(iD(50)))!.modifiedAt, t + 2);
    } finally {
      spy.restore();
    }
  });
});
