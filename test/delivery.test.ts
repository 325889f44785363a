import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { parseRetrySchedule } from '../src/domain/retry-schedule.ts';
import { VERSION } from '../src/version.ts';
import { ADMIN_TOKEN, FAST_DELIVERY as fast, backends, startHarness, webhookPath, type Harness } from './helpers/harness.ts';
import { eventually, sleep, startReceiver, type Receiver } from './helpers/receiver.ts';

const ORCIDS = ['0000-0002-1825-0097', '0000-0002-7465-2162', '0000-0001-5109-3700', '0000-0002-1694-233X'];

for (const { backend, skip } of await backends()) {
  describe(`delivery on ${backend}`, { skip }, () => {
    let h: Harness;
    let rx: Receiver;

    before(async () => {
      h = await startHarness({ ...fast, requestTimeoutMs: 3000, leaseMs: 5000 }, { backend });
      await h.store.addRecords(ORCIDS, Date.now() - 60_000);
    });
    after(() => h.close());
    afterEach(async () => {
      await rx?.close();
    });

    const register = async (orcid: string, url: string) => {
      const res = await h.svc.app.inject({ method: 'PUT', url: webhookPath(orcid, url), headers: { authorization: `Bearer ${h.token}` } });
      assert.ok(res.statusCode === 201 || res.statusCode === 204, `register: ${res.statusCode} ${res.body}`);
    };
    const touch = async (orcid: string, modified?: string) => {
      const res = await h.svc.app.inject({
        method: 'PUT', url: `/admin/api/records/${orcid}`,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        payload: modified ? JSON.stringify({ modified }) : '',
      });
      assert.ok(res.statusCode < 300, `touch: ${res.statusCode} ${res.body}`);
      return res.json() as { webhooksNotified: number };
    };
    const webhook = (orcid: string, url: string) => h.store.findWebhook(h.clientId, orcid, url);

    test('a change calls the webhook at once: POST, empty body, Content-Length 0, ids and User-Agent', async () => {
      rx = await startReceiver();
      const url = rx.url('/a');
      await register(ORCIDS[0]!, url);
      const t0 = Date.now();
      assert.equal((await touch(ORCIDS[0]!)).webhooksNotified, 1);
      const [r] = await rx.waitFor(1);
      assert.ok(r!.at - t0 < 1000, `callback within a second, took ${r!.at - t0} ms`);
      assert.equal(r!.method, 'POST');
      assert.equal(r!.body, '');
      assert.equal(r!.headers['content-length'], '0');
      assert.equal(r!.headers['user-agent'], `orcid-webhooks/${VERSION}`);
      assert.match(String(r!.headers['webhook-id']), /^msg_wh_[0-9a-f]{32}_\d+$/);
      assert.ok(Math.abs(Number(r!.headers['webhook-timestamp']) - Date.now() / 1000) < 5);
      const w = await eventually(async () => { const w = await webhook(ORCIDS[0]!, url); return w?.lastSentAt ? w : null; }, 2000, 'lastSentAt');
      assert.equal(w.pendingSince, null);
      assert.equal(w.dueAt, null);
      const attempts = await h.store.listAttempts(w.id, 10);
      assert.equal(attempts.length, 1);
      assert.equal(attempts[0]!.statusCode, 200);
      assert.equal(attempts[0]!.responseSnippet, 'ok');
      await sleep(300);
      assert.equal(rx.received.length, 1, 'exactly one callback');
      await h.store.deleteWebhook(h.clientId, ORCIDS[0]!, url);
    });

    test('changes older than the webhook do not notify it; a new webhook does not fire until a change', async () => {
      rx = await startReceiver();
      const url = rx.url('/old');
      await register(ORCIDS[1]!, url);
      await sleep(250);
      assert.equal(rx.received.length, 0);
      const res = await h.svc.app.inject({
        method: 'POST', url: '/admin/api/changes', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        payload: JSON.stringify({ changes: [{ orcid: ORCIDS[1], modified: new Date(Date.now() - 30_000).toISOString() }] }),
      });
      assert.equal(res.statusCode, 202);
      assert.deepEqual(res.json(), { created: 0, changed: 1, ignored: 0, webhooksNotified: 0 });
      await sleep(300);
      assert.equal(rx.received.length, 0);
      await h.store.deleteWebhook(h.clientId, ORCIDS[1]!, url);
    });

    test('coalescing: many changes during retry backoff give one callback, under a new webhook-id', async () => {
      // A backoff long enough for the five changes to land in it, even on a loaded machine.
      h.svc.worker!['o'].schedule = parseRetrySchedule('1s');
      rx = await startReceiver();
      rx.behave((_r, res, n) => { res.writeHead(n === 1 ? 500 : 200).end(); });
      const url = rx.url('/coalesce');
      await register(ORCIDS[2]!, url);
      await touch(ORCIDS[2]!);
      await rx.waitFor(1);
      for (let i = 0; i < 5; i++) await touch(ORCIDS[2]!);
      const got = await rx.waitFor(2, 5000);
      h.svc.worker!['o'].schedule = fast.retrySchedule;
      await sleep(400);
      assert.equal(rx.received.length, 2, 'one failed try and one retry, nothing more');
      // The failed try may have reached the receiver (a 500 after its work, a timeout): a receiver
      // deduplicating by webhook-id must not drop the changes that came after it.
      assert.notEqual(got[0]!.headers['webhook-id'], got[1]!.headers['webhook-id'], 'changes after a failed try are a new notification');
      const w = (await webhook(ORCIDS[2]!, url))!;
      assert.equal(w.failedAttempts, 0);
      assert.equal(w.dueAt, null);
      const attempts = await h.store.listAttempts(w.id, 10);
      assert.deepEqual(attempts.map((a) => a.statusCode), [200, 500]);
      await h.store.deleteWebhook(h.clientId, ORCIDS[2]!, url);
    });

    test('a change while a callback is in flight gives exactly one more afterwards', async () => {
      rx = await startReceiver();
      rx.behave(async (_r, res, n) => {
        if (n === 1) await sleep(1000);
        res.writeHead(204).end();
      });
      const url = rx.url('/flight');
      await register(ORCIDS[3]!, url);
      await touch(ORCIDS[3]!);
      await rx.waitFor(1);
      await touch(ORCIDS[3]!);
      await touch(ORCIDS[3]!);
      const got = await rx.waitFor(2, 5000);
      await sleep(400);
      assert.equal(rx.received.length, 2);
      assert.notEqual(got[0]!.headers['webhook-id'], got[1]!.headers['webhook-id'], 'a new notification has a new id');
      assert.ok(got[1]!.at >= got[0]!.at + 950, 'the second call comes after the first finished');
      await h.store.deleteWebhook(h.clientId, ORCIDS[3]!, url);
    });
  });

  describe(`delivery outcomes on ${backend}`, { skip }, () => {
    let h: Harness;
    let rx: Receiver;
    let n = 0;
    before(async () => {
      h = await startHarness(fast, { backend });
    });
    after(() => h.close());
    afterEach(async () => {
      await rx?.close();
    });

    /** A fresh record with one webhook to `path` on the receiver; returns a touch function. */
    async function setup(path: string) {
      const { orcidFromBase } = await import('../src/domain/orcid-id.ts');
      const orcid = orcidFromBase(900_000_000_000 + ++n);
      await h.store.addRecords([orcid], Date.now() - 60_000);
      const url = rx.url(path);
      const res = await h.svc.app.inject({ method: 'PUT', url: webhookPath(orcid, url), headers: { authorization: `Bearer ${h.token}` } });
      assert.equal(res.statusCode, 201);
      const touch = () => h.svc.app.inject({ method: 'PUT', url: `/admin/api/records/${orcid}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      const row = async () => (await h.store.findWebhook(h.clientId, orcid, url))!;
      return { orcid, url, touch, row };
    }

    test('3xx is a failure and the redirect is not followed', async () => {
      rx = await startReceiver();
      rx.behave((r, res) => {
        if (r.path === '/moved') res.writeHead(302, { location: rx.url('/target') }).end();
        else res.writeHead(200).end();
      });
      const s = await setup('/moved');
      await s.touch();
      await rx.waitFor(1);
      const w = await eventually(async () => { const w = await s.row(); return w.failedAttempts === 1 ? w : null; }, 2000, 'failure recorded');
      assert.equal(w.lastStatus, '302');
      assert.ok(rx.received.every((r) => r.path === '/moved'), 'the Location was never requested');
    });

    test('410 Gone disables the webhook at once, with a reason', async () => {
      rx = await startReceiver();
      rx.behave((_r, res) => { res.writeHead(410).end(); });
      const s = await setup('/gone');
      await s.touch();
      const w = await eventually(async () => { const w = await s.row(); return !w.enabled ? w : null; }, 2000, 'disabled');
      assert.match(w.disabledReason!, /410/);
      assert.ok(w.disabledAt);
      await sleep(400);
      assert.equal(rx.received.length, 1, 'never called again');
    });

    test('429 with Retry-After is honoured instead of the schedule', async () => {
      h.svc.worker!['o'].schedule = parseRetrySchedule('100ms,5s');
      try {
        rx = await startReceiver();
        rx.behave((_r, res, k) => { res.writeHead(k === 1 ? 429 : 200, k === 1 ? { 'retry-after': '1' } : {}).end(); });
        const s = await setup('/busy');
        await s.touch();
        const got = await rx.waitFor(2, 4000);
        const gap = got[1]!.at - got[0]!.at;
        assert.ok(gap >= 900, `waited as asked (${gap} ms), not the schedule's 100 ms`);
        assert.ok(gap < 3000, `but not much longer (${gap} ms)`);
      } finally {
        h.svc.worker!['o'].schedule = fast.retrySchedule;
      }
    });

    test('500 then success: retried on the schedule, count reset', async () => {
      rx = await startReceiver();
      rx.behave((_r, res, k) => { res.writeHead(k === 1 ? 500 : 200).end(k === 1 ? 'boom' : 'fine'); });
      const s = await setup('/flaky');
      await s.touch();
      const got = await rx.waitFor(2, 3000);
      assert.ok(got[1]!.at - got[0]!.at >= 120, 'waited about the scheduled 150 ms');
      const w = await eventually(async () => { const w = await s.row(); return w.lastSentAt ? w : null; }, 2000, 'success');
      assert.equal(w.failedAttempts, 0);
      const attempts = await h.store.listAttempts(w.id, 10);
      assert.deepEqual(attempts.map((a) => [a.statusCode, a.responseSnippet]), [[200, 'fine'], [500, 'boom']]);
    });

    test('a hanging receiver times out, and the attempt is logged as a timeout', async () => {
      rx = await startReceiver();
      rx.behave(() => { /* never answers */ });
      const s = await setup('/hang');
      const t0 = Date.now();
      await s.touch();
      const w = await eventually(async () => { const w = await s.row(); return w.failedAttempts >= 1 ? w : null; }, 3000, 'timeout recorded');
      assert.ok(Date.now() - t0 < 2000);
      const [a] = await h.store.listAttempts(w.id, 1);
      assert.equal(a!.statusCode, null);
      assert.match(a!.error!, /^timeout/);
      await h.store.deleteWebhook(h.clientId, s.orcid, s.url);
    });

    test('a connection reset is a network failure', async () => {
      rx = await startReceiver();
      rx.behave((_r, res) => { res.socket?.destroy(); });
      const s = await setup('/reset');
      await s.touch();
      const w = await eventually(async () => { const w = await s.row(); return w.failedAttempts >= 1 ? w : null; }, 3000, 'failure recorded');
      const [a] = await h.store.listAttempts(w.id, 1);
      assert.match(a!.error!, /^network/);
      await h.store.deleteWebhook(h.clientId, s.orcid, s.url);
    });

    test('schedule exhausted: disabled with a reason; a re-PUT answers 204, re-enables and delivers what was owed', async () => {
      rx = await startReceiver();
      let healthy = false;
      rx.behave((_r, res) => { res.writeHead(healthy ? 200 : 503).end(); });
      const s = await setup('/dies');
      await s.touch();
      const w = await eventually(async () => { const w = await s.row(); return !w.enabled ? w : null; }, 4000, 'disabled after the schedule');
      assert.equal(rx.received.length, 4, 'the first try and three retries (150ms,150ms,150ms)');
      assert.match(w.disabledReason!, /exhausted after 4 failed attempts/);
      assert.notEqual(w.pendingSince, null, 'it still owes the notification');
      healthy = true;
      const again = await h.svc.app.inject({ method: 'PUT', url: webhookPath(s.orcid, s.url), headers: { authorization: `Bearer ${h.token}` } });
      assert.equal(again.statusCode, 204);
      await rx.waitFor(5, 2000);
      const back = await eventually(async () => { const w = await s.row(); return w.lastSentAt ? w : null; }, 2000, 'delivered after re-enable');
      assert.equal(back.enabled, true);
      assert.equal(back.failedAttempts, 0);
      assert.equal(back.disabledReason, null);
    });

    test('SSRF at connect time: a stored target the policy refuses is never contacted', async () => {
      rx = await startReceiver();
      const strict = await startHarness({ ...fast, allowedTargets: [] }, { backend });
      try {
        const orcid = '0000-0002-1825-0097';
        await strict.store.addRecords([orcid], Date.now() - 60_000);
        // Stored directly: registration would refuse it (as the API tests show).
        await strict.store.registerWebhook({ clientId: strict.clientId, orcid, url: rx.url('/internal'), host: new URL(rx.url()).host, now: Date.now() - 1000 });
        await strict.svc.app.inject({ method: 'PUT', url: `/admin/api/records/${orcid}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
        const w = await eventually(async () => { const w = (await strict.store.findWebhook(strict.clientId, orcid, rx.url('/internal')))!; return w.failedAttempts ? w : null; }, 3000, 'refused attempt');
        const [a] = await strict.store.listAttempts(w.id, 1);
        assert.match(a!.error!, /^refused: .*loopback/);
        assert.equal(rx.received.length, 0);
      } finally {
        await strict.close();
      }
    });

    test('a hanging endpoint does not delay a healthy one', async () => {
      rx = await startReceiver();
      const healthyRx = await startReceiver();
      try {
        rx.behave(() => { /* hangs */ });
        const { orcidFromBase } = await import('../src/domain/orcid-id.ts');
        const orcids = Array.from({ length: 20 }, (_, i) => orcidFromBase(900_000_100_000 + i));
        await h.store.addRecords(orcids, Date.now() - 60_000);
        for (const o of orcids) {
          await h.svc.app.inject({ method: 'PUT', url: webhookPath(o, rx.url(`/hang/${o}`)), headers: { authorization: `Bearer ${h.token}` } });
        }
        const healthyOrcid = orcidFromBase(900_000_200_000);
        await h.store.addRecords([healthyOrcid], Date.now() - 60_000);
        await h.svc.app.inject({ method: 'PUT', url: webhookPath(healthyOrcid, healthyRx.url('/ok')), headers: { authorization: `Bearer ${h.token}` } });
        await h.svc.app.inject({
          method: 'POST', url: '/admin/api/changes', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
          payload: JSON.stringify({ changes: orcids.map((o) => ({ orcid: o, modified: new Date().toISOString() })) }),
        });
        await rx.waitFor(8, 2000);
        await sleep(50);
        assert.equal(rx.received.length, 8, 'the hanging host holds only its own 8 slots');
        const t0 = Date.now();
        await h.svc.app.inject({ method: 'PUT', url: `/admin/api/records/${healthyOrcid}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
        await healthyRx.waitFor(1, 2000);
        assert.ok(Date.now() - t0 < 300, `healthy callback took ${Date.now() - t0} ms`);
        for (const o of orcids) await h.store.deleteWebhook(h.clientId, o, rx.url(`/hang/${o}`));
      } finally {
        await healthyRx.close();
      }
    });
  });
}

describe('notify delay', () => {
  test('a burst of edits within --notify-delay gives one callback, after the delay', async () => {
    const h = await startHarness({ ...fast, notifyDelayMs: 300 });
    const rx = await startReceiver();
    try {
      const orcid = ORCIDS[0]!;
      await h.store.addRecords([orcid], Date.now() - 60_000);
      const res = await h.svc.app.inject({ method: 'PUT', url: webhookPath(orcid, rx.url('/burst')), headers: { authorization: `Bearer ${h.token}` } });
      assert.equal(res.statusCode, 201);
      const t0 = Date.now();
      for (let i = 0; i < 5; i++) {
        await h.svc.app.inject({ method: 'PUT', url: `/admin/api/records/${orcid}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
        await sleep(30);
      }
      const [r] = await rx.waitFor(1, 3000);
      assert.ok(r!.at - t0 >= 280, `waited for the burst to settle (${r!.at - t0} ms)`);
      await sleep(500);
      assert.equal(rx.received.length, 1);
    } finally {
      await rx.close();
      await h.close();
    }
  });

  test('a replay made while a callback is in flight follows it at once, not after --notify-delay (which only lets changes settle)', async () => {
    const h = await startHarness({ ...fast, notifyDelayMs: 3000, requestTimeoutMs: 3000, leaseMs: 6000 });
    const rx = await startReceiver();
    try {
      rx.behave(async (_r, res, n) => {
        if (n === 1) await sleep(600);
        res.writeHead(204).end();
      });
      const orcid = ORCIDS[1]!;
      await h.store.addRecords([orcid], Date.now() - 60_000);
      const url = rx.url('/replay-in-flight');
      assert.equal((await h.svc.app.inject({ method: 'PUT', url: webhookPath(orcid, url), headers: { authorization: `Bearer ${h.token}` } })).statusCode, 201);
      const w = (await h.store.findWebhook(h.clientId, orcid, url))!;
      const replay = async () => {
        const res = await h.svc.app.inject({ method: 'POST', url: `/admin/api/webhooks/${w.publicId}/replay`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
        assert.equal(res.statusCode, 202);
        return (res.json() as { notificationId: string }).notificationId;
      };
      await replay();
      await rx.waitFor(1, 3000);
      // The first callback is being answered (600 ms): replay again meanwhile.
      const second = await replay();
      const got = await rx.waitFor(2, 6000);
      const firstDone = got[0]!.at + 600;
      assert.ok(got[1]!.at - firstDone < 1000, `the replay followed ${got[1]!.at - firstDone} ms after the callback in flight`);
      assert.equal(got[1]!.headers['webhook-id'], second, 'with the webhook-id the replay answered');
    } finally {
      await rx.close();
      await h.close();
    }
  });
});
