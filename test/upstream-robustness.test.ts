/*
 * The upstream poller as an operator relies on it during trouble: a store that fails for a moment
 * must not stop it, and what it reports (status, metrics) during an upstream outage must say so.
 * Against the fake public API of helpers/fake-orcid.ts and an in-memory SQLite store.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { createLogger } from '../src/logger.ts';
import { Metrics } from '../src/metrics.ts';
import { OrcidApiError } from '../src/domain/errors.ts';
import { upstreamRecordCheck } from '../src/upstream/record-check.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import { OrcidPublicApi, type RequestOutcome } from '../src/upstream/orcid-public-api.ts';
import { UpstreamMetrics } from '../src/upstream/metrics.ts';
import { UPSTREAM_SOURCE, UpstreamPoller } from '../src/upstream/poller.ts';
import { RateLimiter } from '../src/upstream/rate-limiter.ts';
import { FakeOrcid, fakeOrcidId } from './helpers/fake-orcid.ts';
import { eventually } from './helpers/receiver.ts';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

const sink = { apply: async () => ({ created: 0, changed: 0, ignored: 0, webhooksNotified: 0 }) };

async function setup(opts: { intervalMs?: number; sinceMs?: number; retries?: number; seed?: (store: SqliteStore) => Promise<void> } = {}) {
  const fake = await FakeOrcid.start({ records: 10 });
  cleanups.push(() => fake.close());
  const store = new SqliteStore(':memory:');
  await store.migrate();
  await opts.seed?.(store);
  cleanups.push(() => store.close());
  const api = new OrcidPublicApi({
    apiUrl: fake.url, tokenUrl: fake.tokenUrl, clientId: fake.clientId, clientSecret: fake.clientSecret, limiter: new RateLimiter(20), userAgent: 'test',
    retries: opts.retries ?? 4, backoffMs: 50,
  });
  const poller = new UpstreamPoller({ store, api, logger: createLogger('silent'), intervalMs: opts.intervalMs ?? 300, overlapMs: 1000, sinceMs: opts.sinceMs ?? null });
  cleanups.push(() => poller.stop());
  const metrics = new Metrics(store);
  new UpstreamMetrics(metrics, () => poller);
  const gauge = async (name: string) => {
    const text = await metrics.registry.getSingleMetricAsString(name);
    return Number(/^\S+ (\S+)$/m.exec(text.split('\n').filter((l) => !l.startsWith('#')).join('\n'))![1]);
  };
  return { fake, store, api, poller, gauge };
}

describe('upstream poller robustness', () => {
  it('a store error while it becomes the leader (reading the cursor) does not stop the poller: it retries and polls', { timeout: 20_000 }, async () => {
    const { store, poller } = await setup();
    let failures = 1;
    const init = store.initUpstreamCursor.bind(store);
    store.initUpstreamCursor = async (...args) => {
      if (failures-- > 0) throw new Error('Connection terminated unexpectedly');
      return init(...args);
    };
    await poller.start(sink);
    await eventually(() => poller.status().state === 'idle' && poller.status().lastSuccessAt !== null, 10_000, 'the poller polls after the store recovers');
    assert.equal(poller.status().leader, true);
  });

  it('during an outage after a restart or a takeover, the lag metric counts from the last success stored, not 0', { timeout: 20_000 }, async () => {
    const hourAgo = Date.now() - 3_600_000;
    const { fake, poller, gauge } = await setup({
      retries: 0,
      // An earlier process polled until an hour ago, then died.
      seed: async (store) => {
        await store.claimUpstreamLeadership(UPSTREAM_SOURCE, 'earlier', hourAgo, 500);
        await store.initUpstreamCursor(UPSTREAM_SOURCE, hourAgo - 600_000, hourAgo);
        assert.ok(await store.saveUpstreamProgress(UPSTREAM_SOURCE, 'earlier', hourAgo - 600_000, hourAgo));
      },
    });
    fake.setOutage('503');
    await poller.start(sink);
    await eventually(() => poller.status().state === 'backoff', 10_000, 'the poll fails');
    assert.equal(await gauge('orcid_webhooks_upstream_leader'), 1);
    const lag = await gauge('orcid_webhooks_upstream_lag_seconds');
    assert.ok(lag >= 3590, `orcid_webhooks_upstream_lag_seconds ${lag}: the watched records have not been searched for an hour`);
  });

  it('an upstream failing from the first poll on shows a lag growing from --upstream-since, not 0', { timeout: 20_000 }, async () => {
    const { fake, poller, gauge } = await setup({ retries: 0, sinceMs: Date.now() - 3_600_000 });
    fake.setOutage('503');
    await poller.start(sink);
    await eventually(() => poller.status().state === 'backoff', 10_000, 'the poll fails');
    const lag = await gauge('orcid_webhooks_upstream_lag_seconds');
    assert.ok(lag >= 3590, `orcid_webhooks_upstream_lag_seconds ${lag}: nothing since the cursor an hour ago has been searched`);
  });

  it('while a request is retried after a 503 or 429 with Retry-After, the status says backoff with the error at once, not polling without one', { timeout: 30_000 }, async () => {
    const { fake, store, poller } = await setup();
    fake.burst503(1, 3);
    await poller.start(sink);
    await eventually(() => fake.requests.length >= 1, 5000, 'the first request (the token)');
    await eventually(() => poller.status().state === 'backoff', 1500, 'state backoff while waiting out Retry-After: 3');
    assert.match(poller.status().lastError ?? '', /503/);
    assert.ok(poller.status().nextPollAt! > Date.now(), 'the next request is ahead, not in the past');
    assert.match((await store.upstreamState(UPSTREAM_SOURCE))!.lastError ?? '', /503/, 'the CLI and other processes see the error too');
    // The retry succeeds: the poll completes and the error is cleared.
    await eventually(() => poller.status().state === 'idle' && poller.status().lastError === null, 10_000, 'recovered');
    assert.equal((await store.upstreamState(UPSTREAM_SOURCE))!.lastError, null);
  });

  it('a 200 whose body is not the JSON asked for (a proxy\'s HTML page, null, a result that is no list) is a failed request: counted as malformed, named, retried', { timeout: 30_000 }, async () => {
    const bad = ['<html><body>Down for maintenance</body></html>', 'null', '{"result":{},"num-found":1}', ''];
    let searches = 0;
    const server = createServer((req, res) => {
      req.resume();
      if (req.url === '/oauth/token') return res.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token":"t"}');
      if (req.url!.startsWith('/v3.0/search/')) {
        const body = bad[searches++];
        if (body !== undefined) return res.writeHead(200, { 'content-type': 'text/html' }).end(body);
        return res.writeHead(200, { 'content-type': 'application/json' }).end('{"result":null,"num-found":0}');
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const outcomes: RequestOutcome[] = [];
    const api = new OrcidPublicApi({
      apiUrl: `${base}/v3.0`, tokenUrl: `${base}/oauth/token`, clientId: 'APP-1', clientSecret: 's', limiter: new RateLimiter(50), userAgent: 'test',
      backoffMs: 20, onRequest: (o) => outcomes.push(o),
    });
    const errors: string[] = [];
    const store = new SqliteStore(':memory:');
    await store.migrate();
    cleanups.push(() => store.close());
    const poller = new UpstreamPoller({ store, api, logger: createLogger('silent'), intervalMs: 60_000, overlapMs: 1000, sinceMs: null });
    cleanups.push(() => poller.stop());
    poller.on('state', () => { if (poller.status().lastError) errors.push(poller.status().lastError!); });
    await poller.start(sink);
    // Retried like a 5xx within the same poll: no wait of a whole interval (60 s).
    await eventually(() => poller.status().lastSuccessAt !== null, 10_000, 'the poll completes after the malformed answers');
    assert.equal(searches, 5);
    assert.deepEqual(outcomes, ['ok', 'malformed', 'malformed', 'malformed', 'malformed', 'ok'], 'the token, four malformed search answers, then a good one');
    assert.ok(errors.length > 0 && errors.every((e) => /\/v3\.0\/search\/ answered 200 with/.test(e)), `errors name the request: ${JSON.stringify(errors)}`);
  });

  it('--records upstream: when the upstream asks to wait longer than a registration can, the PUT is answered at once with its Retry-After, not after a 10 s hang with "retry in 5 s"', { timeout: 30_000 }, async () => {
    const { fake, api } = await setup();
    const check = upstreamRecordCheck(api);
    assert.equal(await check(fakeOrcidId(1)), true, 'a token and one record check first');
    fake.burst503(10, 120);
    const t0 = Date.now();
    const err = await check(fakeOrcidId(2)).then(() => null, (e: unknown) => e);
    const took = Date.now() - t0;
    assert.ok(err instanceof OrcidApiError, String(err));
    assert.equal(err.code, 9058);
    assert.ok(took < 3000, `answered after ${took} ms`);
    assert.equal(err.headers['retry-after'], '60', 'the upstream asked for 120 s (capped at 60)');
    assert.match(err.message, /answered 503/);
  });

  it('a deprecated record (301 to its primary record, with Location, as ORCID answers) does not exist and has no last-modified time of its own: the redirect is not followed', { timeout: 20_000 }, async () => {
    const deprecated = '0000-0002-1825-0097';
    const primary = '0000-0001-5109-3700';
    const server = createServer((req, res) => {
      req.resume();
      if (req.url === '/oauth/token') return res.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token":"t"}');
      if (req.url === `/v3.0/${deprecated}/record`) {
        return res.writeHead(301, { 'content-type': 'application/json', location: `http://${req.headers.host}/v3.0/${primary}/record`, 'x-orcid-primary': primary })
          .end(JSON.stringify({ 'response-code': 301, 'developer-message': `301 Moved Permanently: This account is deprecated. Please refer to account: https://orcid.org/${primary}.`, 'error-code': 9061 }));
      }
      if (req.url === `/v3.0/${primary}/record`) return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ history: { 'last-modified-date': { value: 1_700_000_000_000 } } }));
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const api = new OrcidPublicApi({ apiUrl: `${base}/v3.0`, tokenUrl: `${base}/oauth/token`, clientId: 'APP-1', clientSecret: 's', limiter: new RateLimiter(50), userAgent: 'test' });
    assert.equal(await api.recordExists(primary), true);
    assert.equal(await api.recordExists(deprecated), false, 'a deprecated iD is no record of its own (--records upstream answers 404 / 9011)');
    assert.equal(await api.lastModified(deprecated), null, "the primary record's changes are not the deprecated iD's");
  });
});
