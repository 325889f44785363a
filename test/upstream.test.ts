/*
 * Watching an upstream ORCID registry (issue 13), against the fake public API of
 * helpers/fake-orcid.ts on 127.0.0.1, on both stores: changes of watched records become exactly one
 * callback each; unwatched records cost no request beyond the search pages; windows over 10,000
 * results are split; tokens are refreshed; 503 bursts and outages are backed off and caught up
 * without exceeding the rate; one poller leads; `--records upstream` asks the upstream.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { testConfig, type Config } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import type { Store } from '../src/store/types.ts';
import { OrcidPublicApi } from '../src/upstream/orcid-public-api.ts';
import { UPSTREAM_SOURCE, UpstreamPoller } from '../src/upstream/poller.ts';
import { RateLimiter } from '../src/upstream/rate-limiter.ts';
import { MAX_LOOKUPS_IN_FLIGHT, upstreamRecordCheck } from '../src/upstream/record-check.ts';
import { OrcidApiError } from '../src/domain/errors.ts';
import { performance } from 'node:perf_hooks';
import { FakeOrcid, fakeOrcidId } from './helpers/fake-orcid.ts';
import { backends, startHarness, webhookPath, type Harness } from './helpers/harness.ts';
import { eventually, sleep, startReceiver, type Receiver } from './helpers/receiver.ts';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

function upstreamConfig(fake: FakeOrcid, overrides: Partial<Config> = {}): Partial<Config> {
  return {
    upstream: { name: 'custom', apiUrl: fake.url, tokenUrl: null }, upstreamTokenUrl: fake.tokenUrl,
    upstreamClientId: fake.clientId, upstreamClientSecret: fake.clientSecret,
    upstreamIntervalMs: 300, upstreamOverlapMs: 2000, upstreamRate: 20, upstreamSinceMs: null,
    allowedTargets: ['127.0.0.0/8'], pollIntervalMs: 100,
    ...overrides,
  };
}

/** Webhooks (one each, to the receiver) on fake records 0..n-1 registered straight in the store. */
async function watch(h: Harness, rx: Receiver, indexes: number[], now = Date.now()): Promise<string[]> {
  const ids = indexes.map(fakeOrcidId);
  await h.store.addRecords(ids, now - 60_000);
  for (const id of ids) {
    const url = rx.url(`/hook/${id}`);
    const r = await h.store.registerWebhook({ clientId: h.clientId, orcid: id, url, host: new URL(url).host, now: now - 30_000 });
    assert.equal(r.outcome, 'created');
  }
  return ids;
}

function callbacksFor(rx: Receiver): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of rx.received) {
    const id = r.path.split('/').pop()!;
    m.set(id, (m.get(id) ?? 0) + 1);
  }
  return m;
}

for (const { backend, skip } of await backends()) {
  describe(`upstream poller (${backend})`, { skip }, () => {
    it('a change of a watched record gives one callback within lag + interval; overlapping windows never double it; unwatched records cost no record request', { timeout: 60_000 }, async () => {
      const fake = await FakeOrcid.start({ records: 3000, indexLagMs: 400 });
      cleanups.push(() => fake.close());
      const rx = await startReceiver();
      cleanups.push(() => rx.close());
      const h = await startHarness(upstreamConfig(fake), { backend });
      cleanups.push(() => h.close());
      const watched = await watch(h, rx, [5, 500, 1500, 2999]);
      await eventually(() => h.svc.upstream!.poller.status().state === 'idle', 10_000, 'first poll');

      const changedAt = new Map<string, number>();
      for (const i of [5, 500, 1500, 2999]) changedAt.set(fake.change(i), Date.now());
      for (let i = 1000; i < 1100; i++) fake.change(i); // unwatched
      await rx.waitFor(4, 20_000);
      for (const r of rx.received) {
        const id = r.path.split('/').pop()!;
        // Searchable after the lag (400 ms), found within one interval (300 ms) plus a poll's work
        // (generous: the machine may be busy; the bench measures the delay).
        assert.ok(r.at - changedAt.get(id)! < 400 + 300 + 5000, `callback for ${id} after ${r.at - changedAt.get(id)!} ms`);
      }
      // Several more polls over the same window (overlap 2 s): still one callback each.
      await sleep(3000);
      assert.deepEqual([...callbacksFor(rx).entries()].sort(), watched.map((id) => [id, 1]).sort());
      const unwatchedReads = fake.countRequests('record', (r) => !watched.includes(r.orcid!));
      assert.equal(unwatchedReads, 0, 'no record request for an unwatched record');
      assert.ok(fake.countRequests('search') >= 5);

      // A second change of one record: exactly one more callback.
      fake.change(500);
      await rx.waitFor(5, 20_000);
      await sleep(2500);
      assert.equal(callbacksFor(rx).get(fakeOrcidId(500)), 2);
      assert.equal(rx.received.length, 5);

      const metrics = (await h.svc.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${h.svc.adminToken}` } })).body;
      assert.match(metrics, /orcid_webhooks_upstream_records_changed_total 5/);
      assert.match(metrics, /orcid_webhooks_upstream_requests_total\{outcome="ok"\} \d+/);
      assert.match(metrics, /orcid_webhooks_upstream_lag_seconds \d/);
      const status = await h.svc.app.inject({ method: 'GET', url: '/admin/api/upstream', headers: { authorization: `Bearer ${h.svc.adminToken}` } });
      assert.equal(status.statusCode, 200);
      const body = status.json() as { state: string; leader: string; cursor: string; lagSeconds: number; lastError: string | null; nextPoll: string };
      assert.equal(body.state, 'idle');
      assert.equal(body.leader, h.svc.upstream!.poller.owner);
      assert.ok(Date.parse(body.cursor) > Date.now() - 10_000);
      assert.ok(body.lagSeconds < 5);
      assert.equal(body.lastError, null);
      assert.ok(body.nextPoll);
    });

    it('a window of more than 10,000 results is split in time until each part can be read; the cursor advances', { timeout: 90_000 }, async () => {
      const fake = await FakeOrcid.start({ records: 100, orcidLimit: false });
      cleanups.push(() => fake.close());
      const rx = await startReceiver();
      cleanups.push(() => rx.close());
      const since = Date.now() - 60_000;
      // 25,000 records created over the last minute, i.e. inside the first window.
      for (let i = 0; i < 25_000; i++) fake.addRecord(since + 1 + Math.floor((i * 59_000) / 25_000));
      // No poller in the service: the one below starts only once the webhooks exist.
      const h = await startHarness({ allowedTargets: ['127.0.0.0/8'], pollIntervalMs: 100 }, { backend });
      cleanups.push(() => h.close());
      // Watched: records early, in the middle and late in the window (they exist here already, with older times).
      const idx = [100, 9_000, 12_345, 20_000, 25_099];
      const ids = await watch(h, rx, idx, since);
      const api = new OrcidPublicApi({ apiUrl: fake.url, tokenUrl: fake.tokenUrl, clientId: fake.clientId, clientSecret: fake.clientSecret, limiter: new RateLimiter(100), userAgent: 'test' });
      const poller = new UpstreamPoller({
        store: h.store, api, intervalMs: 5000, overlapMs: 2000, sinceMs: since, logger: createLogger('silent'),
      });
      const { createChangeSink } = await import('../src/changes/source.ts');
      await poller.start(createChangeSink({ store: h.store, notifyDelayMs: 0, onApplied: () => h.svc.worker?.notify() }));
      cleanups.push(() => poller.stop());
      await eventually(() => poller.status().state === 'idle', 60_000, 'the split poll');
      await rx.waitFor(ids.length, 30_000);
      assert.deepEqual([...callbacksFor(rx).keys()].sort(), [...ids].sort());
      const searches = fake.requests.filter((r) => r.kind === 'search');
      assert.ok(searches.every((r) => r.start! < 10_000 && r.status === 200), 'never paged past 10,000');
      assert.ok(new Set(searches.map((r) => r.q)).size >= 3, 'the window was split');
      const st = await h.store.upstreamState(UPSTREAM_SOURCE);
      assert.ok(st!.cursor! > since);
    });

    it('refused tokens are fetched again; 503 bursts with Retry-After and a connection outage are backed off, then caught up, never above the rate', { timeout: 90_000 }, async () => {
      const fake = await FakeOrcid.start({ records: 1000 });
      cleanups.push(() => fake.close());
      const rx = await startReceiver();
      cleanups.push(() => rx.close());
      const rate = 5;
      const h = await startHarness(upstreamConfig(fake, { upstreamRate: rate, upstreamIntervalMs: 400 }), { backend });
      cleanups.push(() => h.close());
      await watch(h, rx, [1, 2, 3, 4, 5, 6]);
      await eventually(() => h.svc.upstream!.poller.status().state === 'idle', 10_000, 'first poll');

      fake.revokeTokens();
      fake.change(1);
      await rx.waitFor(1, 20_000);
      assert.equal(fake.countRequests('token'), 2, 'a new token after the refusal');

      fake.burst503(3, 1);
      fake.change(2);
      await rx.waitFor(2, 30_000);

      // An outage: connections reset. Changes during it are caught up afterwards.
      fake.setOutage('reset');
      await sleep(200);
      fake.change(3);
      fake.change(4);
      await eventually(() => h.svc.upstream!.poller.status().state === 'backoff', 60_000, 'backoff');
      const ready = await h.svc.app.inject({ method: 'GET', url: '/ready' });
      assert.equal(ready.statusCode, 200, 'a failing upstream never fails /ready');
      const status = (await h.svc.app.inject({ method: 'GET', url: '/admin/api/upstream', headers: { authorization: `Bearer ${h.svc.adminToken}` } })).json() as { lastError: string };
      assert.ok(status.lastError);
      await sleep(1500);
      fake.setOutage('off');
      await rx.waitFor(4, 60_000);
      await sleep(1000);
      assert.equal(rx.received.length, 4);
      assert.ok(fake.maxInWindow(1000) <= rate, `at most ${rate} requests in any second, saw ${fake.maxInWindow(1000)}`);
    });

    it('one poller leads; another takes over within an interval when the leader stops renewing', { timeout: 60_000 }, async () => {
      const fake = await FakeOrcid.start({ records: 100 });
      cleanups.push(() => fake.close());
      const h = await startHarness({}, { backend });
      cleanups.push(() => h.close());
      const intervalMs = 1000;
      const make = () => new UpstreamPoller({
        store: h.store, logger: createLogger('silent'), intervalMs, overlapMs: 1000, sinceMs: null,
        api: new OrcidPublicApi({ apiUrl: fake.url, tokenUrl: fake.tokenUrl, clientId: fake.clientId, clientSecret: fake.clientSecret, limiter: new RateLimiter(20), userAgent: 'test' }),
      });
      const sink = { apply: async () => ({ created: 0, changed: 0, ignored: 0, webhooksNotified: 0 }) };
      const a = make();
      const b = make();
      await a.start(sink);
      await eventually(() => a.status().leader, 5000, 'a leads');
      await b.start(sink);
      await sleep(1500);
      assert.equal(b.status().leader, false);
      assert.equal(b.status().state, 'following');
      // a dies without a word: its loop and heartbeat stop, its lease is left to run out.
      a['stopping'].abort(new Error('killed'));
      a['stopHeartbeat']();
      const diedAt = Date.now();
      await eventually(() => b.status().leader, 5000, 'b takes over');
      assert.ok(Date.now() - diedAt <= intervalMs + 500, `takeover after ${Date.now() - diedAt} ms`);
      await b.stop();
      await a['loop'];
    });

    it('--records upstream: a PUT for an unseen iD asks the upstream: 404 / 9011 when it has none (remembered), 201 when it has; an unreachable upstream is 503 / 9058 for unseen iDs only', { timeout: 30_000 }, async () => {
      const fake = await FakeOrcid.start({ records: 10 });
      cleanups.push(() => fake.close());
      const h = await startHarness(upstreamConfig(fake, { records: 'upstream', upstreamIntervalMs: 60_000 }), { backend });
      cleanups.push(() => h.close());
      const put = (orcid: string) => h.svc.app.inject({ method: 'PUT', url: webhookPath(orcid, 'https://example.org/cb'), headers: { authorization: `Bearer ${h.token}`, accept: 'application/json' } });
      const unknown = fakeOrcidId(50);
      let res = await put(unknown);
      assert.equal(res.statusCode, 404);
      assert.equal((res.json() as { 'error-code': number })['error-code'], 9011);
      const asked = fake.countRequests('record');
      res = await put(unknown);
      assert.equal(res.statusCode, 404);
      assert.equal(fake.countRequests('record'), asked, 'the missing answer is remembered');
      assert.equal(await h.store.getRecord(unknown), null);

      res = await put(fakeOrcidId(3));
      assert.equal(res.statusCode, 201);
      assert.ok(await h.store.getRecord(fakeOrcidId(3)));

      fake.setOutage('503');
      res = await put(fakeOrcidId(4));
      assert.equal(res.statusCode, 503);
      assert.equal((res.json() as { 'error-code': number })['error-code'], 9058);
      assert.ok(res.headers['retry-after']);
      assert.equal(await h.store.getRecord(fakeOrcidId(4)), null);
      res = await h.svc.app.inject({ method: 'PUT', url: webhookPath(fakeOrcidId(3), 'https://example.org/other'), headers: { authorization: `Bearer ${h.token}`, accept: 'application/json' } });
      assert.equal(res.statusCode, 201, 'known records need no upstream');
      assert.equal((await h.svc.app.inject({ method: 'GET', url: '/ready' })).statusCode, 200);
    });
  });
}

describe('upstream state in the store', () => {
  for (const backendP of ['sqlite', 'postgres'] as const) {
    it(`leadership, cursor and watched iDs (${backendP})`, async (t) => {
      const list = await backends();
      if (list.find((b) => b.backend === backendP)!.skip) return t.skip('PostgreSQL not reachable');
      const h = await startHarness({ role: 'api' }, { backend: backendP });
      try {
        const s: Store = h.store;
        assert.equal(await s.upstreamState(UPSTREAM_SOURCE), null);
        assert.equal(await s.claimUpstreamLeadership('u', 'a', 1000, 500), true);
        assert.equal(await s.claimUpstreamLeadership('u', 'b', 1400, 500), false, 'a still leads');
        assert.equal(await s.claimUpstreamLeadership('u', 'a', 1400, 500), true, 'a renews');
        assert.equal(await s.claimUpstreamLeadership('u', 'b', 1900, 500), false, 'renewed until 1900');
        assert.equal(await s.claimUpstreamLeadership('u', 'b', 1901, 500), true, 'the lease ran out');
        assert.equal(await s.initUpstreamCursor('u', 5000, 2000), 5000);
        assert.equal(await s.initUpstreamCursor('u', 9000, 2000), 5000, 'only the first cursor is kept');
        assert.equal(await s.saveUpstreamProgress('u', 'a', 7000, 2100), false, 'a no longer leads');
        assert.equal(await s.saveUpstreamProgress('u', 'b', 7000, 2100), true);
        assert.equal(await s.saveUpstreamProgress('u', 'b', 6000, 2200), true);
        await s.saveUpstreamError('u', 'b', 'boom', 2300);
        let st = await s.upstreamState('u');
        assert.equal(st!.cursor, 7000, 'the cursor never moves back');
        assert.equal(st!.lastError, 'boom');
        assert.equal(st!.leader, 'b');
        await s.saveUpstreamProgress('u', 'b', 8000, 2400);
        await s.releaseUpstreamLeadership('u', 'b');
        st = await s.upstreamState('u');
        assert.equal(st!.lastError, null);
        assert.equal(st!.leader, null);
        assert.equal(await s.claimUpstreamLeadership('u', 'c', 2500, 500), true);

        const ids = [fakeOrcidId(1), fakeOrcidId(2), fakeOrcidId(3)];
        await s.addRecords(ids, 1);
        await s.registerWebhook({ clientId: h.clientId, orcid: ids[0]!, url: 'https://a.example/x', host: 'a.example', now: 2 });
        const w = await s.registerWebhook({ clientId: h.clientId, orcid: ids[1]!, url: 'https://a.example/y', host: 'a.example', now: 2 });
        assert.deepEqual(await s.watchedOrcids([...ids, '0000-0002-1825-0097']), [ids[0], ids[1]].sort());
        // A disabled webhook does not make its record watched.
        if (w.outcome !== 'created') throw new Error('not created');
        const claim = await s.claimDue({ lease: 'x', limit: 10, now: 10, leaseMs: 1000, excludeHosts: [] });
        assert.equal(claim.length, 0);
        await s.applyChanges([{ orcid: ids[1]!, modifiedAt: 5 }], { create: false, now: 5, notifyDelayMs: 0 });
        const [c] = await s.claimDue({ lease: 'x', limit: 10, now: 10, leaseMs: 1000, excludeHosts: [] });
        await s.completeAttempts([{ webhookId: c!.webhook.id, lease: 'x', claimedSeq: c!.webhook.changeSeq, notificationId: 'n', startedAt: 11, durationMs: 1, statusCode: 410, error: null, responseSnippet: null, latencyMs: null, outcome: { kind: 'disable', reason: 'gone' }, nextDueAt: 11 }]);
        assert.deepEqual(await s.watchedOrcids(ids), [ids[0]]);
        assert.deepEqual(await s.watchedOrcids([]), []);
      } finally {
        await h.close();
      }
    });
  }
});

describe('upstream settings', () => {
  it('orcid and sandbox name the real endpoints; a custom base derives its token URL; credentials are required; --records upstream needs --upstream', async () => {
    const { resolveConfig, ConfigError } = await import('../src/config.ts');
    const creds = { upstreamClientId: 'APP-1', upstreamClientSecret: 's' };
    let c = resolveConfig({ upstream: 'orcid', ...creds }, {});
    assert.equal(c.upstream!.apiUrl, 'https://pub.orcid.org/v3.0');
    assert.equal(c.upstreamTokenUrl, 'https://orcid.org/oauth/token');
    assert.equal(c.upstreamIntervalMs, 60_000);
    assert.equal(c.upstreamRate, 8);
    c = resolveConfig({}, { ORCID_WEBHOOKS_UPSTREAM: 'sandbox', ORCID_WEBHOOKS_UPSTREAM_CLIENT_ID: 'APP-2', ORCID_WEBHOOKS_UPSTREAM_CLIENT_SECRET: 'x', ORCID_WEBHOOKS_UPSTREAM_RATE: '2.5', ORCID_WEBHOOKS_UPSTREAM_SINCE: '2026-12-01T00:00:00Z' });
    assert.equal(c.upstream!.apiUrl, 'https://pub.sandbox.orcid.org/v3.0');
    assert.equal(c.upstreamTokenUrl, 'https://sandbox.orcid.org/oauth/token');
    assert.equal(c.upstreamRate, 2.5);
    assert.equal(c.upstreamSinceMs, Date.parse('2026-12-01T00:00:00Z'));
    c = resolveConfig({ upstream: 'http://127.0.0.1:9999/v3.0/', ...creds }, {});
    assert.equal(c.upstream!.apiUrl, 'http://127.0.0.1:9999/v3.0');
    assert.equal(c.upstreamTokenUrl, 'http://127.0.0.1:9999/oauth/token');
    assert.throws(() => resolveConfig({ upstream: 'orcid' }, {}), (e: Error) => e instanceof ConfigError && /--upstream-client-id/.test(e.message));
    assert.throws(() => resolveConfig({ upstream: 'ftp://x', ...creds }, {}), (e: Error) => e instanceof ConfigError && /--upstream/.test(e.message));
    assert.throws(() => resolveConfig({ upstream: 'orcid', upstreamRate: '0', ...creds }, {}), (e: Error) => /--upstream-rate/.test(e.message));
    assert.throws(() => resolveConfig({ upstream: 'orcid', upstreamSince: 'yesterday', ...creds }, {}), (e: Error) => /--upstream-since/.test(e.message));
    assert.throws(() => resolveConfig({ records: 'upstream' }, {}), (e: Error) => /needs --upstream/.test(e.message));
    assert.equal(testConfig().upstream, null);
  });

  it('the rate limiter never lets more than the rate through in any second', async () => {
    const { performance } = await import('node:perf_hooks');
    const limiter = new RateLimiter(10, 0);
    const times: number[] = [];
    await Promise.all(Array.from({ length: 35 }, async () => {
      const done = await limiter.take();
      times.push(performance.now());
      done();
    }));
    times.sort((a, b) => a - b);
    for (let i = 10; i < times.length; i++) assert.ok(times[i]! - times[i - 10]! >= 1000, `request ${i} came ${times[i]! - times[i - 10]!} ms after request ${i - 10}`);
    assert.ok(times.at(-1)! - times[0]! < 3500, 'and no slower than needed');
  });
});


// Found by flooding `--records upstream` with PUTs for new iDs: every look-up queued on the rate
// limiter the poller uses, ahead of the poller's own requests, so one client held back every
// client's change notifications for as long as it kept sending.
describe('--records upstream look-ups', () => {
  it('a flood of PUTs for new iDs cannot queue ahead of the poller: a few look-ups at a time, the rest 503 / 9058 at once; one request per iD', { timeout: 30_000 }, async () => {
    const limiter = new RateLimiter(8);
    let asked = 0;
    const api = {
      async recordExists(_orcid: string, signal?: AbortSignal): Promise<boolean> {
        asked++;
        const completed = await limiter.take(signal);
        await sleep(5);
        completed();
        return true;
      },
    } as unknown as OrcidPublicApi;
    const check = upstreamRecordCheck(api);
    const flood = Array.from({ length: 60 }, (_, i) => check(fakeOrcidId(1000 + i)).then(() => 'asked', (e: unknown) => e));
    const same = Array.from({ length: 5 }, () => check(fakeOrcidId(1000)));
    // The poller's next request, sent while the flood is queued.
    const started = performance.now();
    const completed = await limiter.take();
    completed();
    const waited = performance.now() - started;
    const outcomes = await Promise.all(flood);
    assert.deepEqual(await Promise.all(same), [true, true, true, true, true]);
    assert.ok(waited < 1500, `the poller waited ${Math.round(waited)} ms behind the look-ups`);
    assert.equal(asked, MAX_LOOKUPS_IN_FLIGHT, 'one upstream request per iD, a few at a time');
    const refused = outcomes.filter((o) => o instanceof OrcidApiError);
    assert.equal(refused.length, 60 - MAX_LOOKUPS_IN_FLIGHT);
    assert.equal(refused[0]!.code, 9058);
    assert.equal(refused[0]!.status, 503);
    assert.equal(refused[0]!.headers['retry-after'], '1');
  });
});
