/*
 * The admin API behind the dashboard (src/api/admin-dashboard.ts), over app.inject: every endpoint,
 * the admin-token check, and bad input answered 4xx in ORCID's format with nothing changed. The
 * service runs with role "api" (no delivery worker), so webhook state changes only when a test says.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { InjectOptions } from 'fastify';
import type { AttemptRecord, WebhookRow } from '../src/store/types.ts';
import { ADMIN_TOKEN, backends, getToken, snapshot, startHarness, webhookPath, type Harness } from './helpers/harness.ts';

const ORCIDS = ['0000-0002-1825-0097', '0000-0002-7465-2162', '0000-0001-5109-3700', '0000-0002-1694-233X'];
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

interface Webhook {
  id: number;
  orcid: string;
  url: string;
  state: string;
  client: { id: string; name: string | null };
  lastAttempt: string | null;
  lastSuccess: string | null;
  lastStatus: string | null;
  due: string | null;
  enabled: boolean;
  disabledReason: string | null;
}

for (const { backend, skip } of await backends()) describe(`admin dashboard API on ${backend}`, { skip }, () => {
  let h: Harness;
  /** Webhooks by name, created in this order (ids ascending). */
  const w: Record<'a' | 'b' | 'c' | 'd' | 'e', WebhookRow> = {} as never;
  let otherClient: string;

  const call = (method: InjectOptions['method'], url: string, opts: { body?: unknown; token?: string | null; raw?: string } = {}) =>
    h.svc.app.inject({
      method, url,
      headers: {
        ...(opts.token !== null && { authorization: `Bearer ${opts.token ?? ADMIN_TOKEN}` }),
        ...((opts.body !== undefined || opts.raw !== undefined) && { 'content-type': 'application/json' }),
      },
      ...(opts.raw !== undefined ? { payload: opts.raw } : opts.body !== undefined ? { payload: JSON.stringify(opts.body) } : {}),
    });

  /** A 4xx in ORCID's format whose detail matches, and no table changed. */
  async function refused(method: InjectOptions['method'], url: string, status: number, code: number, detail: RegExp, opts: { body?: unknown; raw?: string } = {}): Promise<void> {
    const before = await snapshot(h.store);
    const res = await call(method, url, opts);
    assert.equal(res.statusCode, status, `${method} ${url}: ${res.body}`);
    const body = res.json() as Record<string, unknown>;
    assert.equal(body['error-code'], code, res.body);
    assert.equal(body['response-code'], status);
    assert.match(String(body['developer-message']), detail);
    assert.deepEqual(await snapshot(h.store), before, `${method} ${url} changed nothing`);
  }

  const register = async (clientId: string, orcid: string, url: string): Promise<WebhookRow> => {
    const r = await h.store.registerWebhook({ clientId, orcid, url, host: new URL(url).hostname, now: Date.now() });
    assert.equal(r.outcome, 'created');
    return r.outcome === 'created' ? r.webhook : assert.fail();
  };

  /** Claims a webhook that owes a notification and completes it as the worker would. */
  async function deliver(webhook: WebhookRow, outcome: AttemptRecord['outcome'], over: Partial<AttemptRecord> = {}): Promise<void> {
    const now = Date.now();
    const claims = await h.store.claimDue({ lease: 'test', limit: 100, now: now + 10 * MINUTE, leaseMs: MINUTE, excludeHosts: [] });
    const claim = claims.find((c) => c.webhook.id === webhook.id) ?? assert.fail(`webhook ${webhook.id} not due`);
    await h.store.releaseClaims('test', claims.filter((c) => c !== claim).map((c) => c.webhook.id));
    await h.store.completeAttempts([{
      webhookId: webhook.id, lease: 'test', claimedSeq: claim.webhook.changeSeq, notificationId: `msg_${webhook.publicId}_${claim.webhook.notifySeq}`,
      startedAt: now, durationMs: 12, statusCode: outcome.kind === 'success' ? 200 : 500, error: null, responseSnippet: 'ok', latencyMs: 40,
      outcome, nextDueAt: now, ...over,
    }]);
  }

  before(async () => {
    h = await startHarness({ role: 'api' }, { backend });
    await h.store.addRecords(ORCIDS, Date.now() - 10 * MINUTE);
    otherClient = (await h.store.createClient({ id: 'APP-OTHER0000000001', name: 'Other Org', secretHash: 'x', premium: true, createdAt: Date.now() })).id;
    w.a = await register(h.clientId, ORCIDS[0]!, 'https://hooks.example.org/a');
    w.b = await register(h.clientId, ORCIDS[1]!, 'https://hooks.example.org/b');
    w.c = await register(otherClient, ORCIDS[0]!, 'https://other.example.net/cb?x=1');
    w.d = await register(h.clientId, ORCIDS[2]!, 'https://gone.example.com/hook');
    w.e = await register(otherClient, ORCIDS[3]!, 'https://other.example.net/e');
    await h.store.applyChanges(ORCIDS.map((orcid) => ({ orcid, modifiedAt: Date.now(), touch: true })), { create: false, now: Date.now(), notifyDelayMs: 0 });
    await deliver(w.a, { kind: 'success' });
    await deliver(w.d, { kind: 'disable', reason: 'HTTP 410 Gone' }, { statusCode: 410 });
    await deliver(w.e, { kind: 'retry', retryAt: Date.now() + 10 * MINUTE });
    // b and c still owe their notification (pending).
  });
  after(() => h.close());

  describe('admin token', () => {
    const endpoints: [InjectOptions['method'], string][] = [
      ['GET', '/admin/api/overview'], ['GET', '/admin/api/webhooks'], ['GET', '/admin/api/webhooks/1'],
      ['POST', '/admin/api/webhooks/1/enable'], ['DELETE', '/admin/api/webhooks/1'],
      ['GET', '/admin/api/records'], ['GET', '/admin/api/clients'], ['POST', '/admin/api/clients'], ['POST', '/admin/api/clients/x/revoke'],
    ];
    for (const [method, url] of endpoints) {
      test(`${method} ${url} needs the admin token`, async () => {
        const before = await snapshot(h.store);
        for (const token of [null, 'wrong-token', h.token]) {
          const res = await call(method, url, { token, ...(method === 'POST' && url.endsWith('/clients') && { body: { name: 'Sneaky' } }) });
          assert.equal(res.statusCode, 401, `${token}: ${res.body}`);
          assert.equal(res.json().error, 'invalid_token');
          assert.match(String(res.headers['www-authenticate']), /^Bearer error="invalid_token"/);
        }
        assert.deepEqual(await snapshot(h.store), before);
      });
    }
  });

  describe('GET /admin/api/overview', () => {
    test('counts webhooks by state, records and clients', async () => {
      const res = await call('GET', '/admin/api/overview');
      assert.equal(res.statusCode, 200);
      const o = res.json();
      assert.deepEqual(o.webhooks, { total: 5, enabled: 4, disabled: 1, pending: 2, backoff: 1 });
      assert.equal(o.records, 4);
      assert.deepEqual(o.clients, { total: 2, active: 2 });
      assert.ok(Math.abs(Date.parse(o.now) - Date.now()) < 5000);
    });

    test("each overview card's count is the length of the list it links to, every row labelled as the card says", async () => {
      // The cards as the dashboard draws them: title, the count it shows (o.webhooks.<key>) and its link.
      const page = readFileSync(new URL('../src/dashboard/pages/overview.js', import.meta.url), 'utf8');
      const cards = [...page.matchAll(/stat\('([^']+)', fmtNumber\(w\.(\w+)\)[^\n]*?href: '#\/webhooks(?:\?state=(\w+))?'/g)]
        .map(([, title, key, state]) => ({ title: title!, key: key!, state }));
      assert.deepEqual(cards.map((c) => c.title), ['Webhooks', 'Pending', 'In backoff', 'Disabled']);
      const o = (await call('GET', '/admin/api/overview')).json();
      const labels = new Set<string>();
      for (const card of cards) {
        const res = await call('GET', `/admin/api/webhooks?limit=500${card.state ? `&state=${card.state}` : ''}`);
        const rows = (res.json() as { webhooks: Webhook[] }).webhooks;
        assert.equal(rows.length, o.webhooks[card.key], `${card.title}: its count is the length of its list`);
        assert.ok(rows.length > 0, `${card.title}: the fixture has a webhook for it`);
        for (const r of rows) {
          labels.add(r.state);
          if (card.state) assert.equal(r.state, card.state, `${card.title}: ${r.id} is labelled ${r.state}`);
        }
      }
      assert.deepEqual([...labels].sort(), ['disabled', 'failing', 'ok', 'pending'], 'the fixture has webhooks in every state');
    });

    test('the oldest owed notification, and callbacks in flight (live leases)', async () => {
      const owing = await Promise.all([w.b, w.c, w.e].map(async (x) => (await h.store.getWebhook(x.id))!.pendingSince!));
      const o = (await call('GET', '/admin/api/overview')).json();
      assert.equal(o.delivery.oldestOwedSince, new Date(Math.min(...owing)).toISOString());
      // The card links to the webhook that owes it (pending or failing), not to a list it may not be in.
      const shown = (await call('GET', `/admin/api/webhooks/${o.delivery.oldestOwedWebhook}`)).json().webhook;
      assert.equal(shown.pendingSince, o.delivery.oldestOwedSince);
      assert.ok([w.b, w.c, w.e].some((x) => x.publicId === shown.id), 'one of the webhooks that owe');
      assert.ok(o.delivery.oldestOwedAgeMs >= Date.parse(o.now) - Math.min(...owing) - 1 && o.delivery.oldestOwedAgeMs < 11 * MINUTE);
      assert.equal(o.delivery.inFlight, 0);
      const claims = await h.store.claimDue({ lease: 'inflight', limit: 2, now: Date.now() + 10 * MINUTE, leaseMs: MINUTE, excludeHosts: [] });
      assert.equal(claims.length, 2);
      try {
        assert.equal((await call('GET', '/admin/api/overview')).json().delivery.inFlight, 2);
      } finally {
        await h.store.releaseClaims('inflight', claims.map((c) => c.webhook.id));
      }
      assert.equal((await call('GET', '/admin/api/overview')).json().delivery.inFlight, 0);
    });

    test('failures of the last hour by receiving host and by client, most failures first', async () => {
      const o = (await call('GET', '/admin/api/overview')).json();
      // a: 200 (hooks.example.org, test client); d: 410 (gone.example.com, test client); e: 500 (other.example.net, other client).
      assert.deepEqual(o.failures.byHost, [
        { host: 'gone.example.com', attempts: 1, failures: 1 },
        { host: 'other.example.net', attempts: 1, failures: 1 },
      ]);
      const byClient = [
        { client: { id: h.clientId, name: 'Test premium' }, attempts: 2, failures: 1 },
        { client: { id: otherClient, name: 'Other Org' }, attempts: 1, failures: 1 },
      ].sort((x, y) => (x.client.id < y.client.id ? -1 : 1));
      assert.deepEqual(o.failures.byClient, byClient);
    });

    test('callbacks, success rate and latency over the last hour, and a per-minute series', async () => {
      const extra = await register(h.clientId, ORCIDS[3]!, 'https://stats.example.org/x');
      const now = Date.now();
      // Attempts recorded by an owner without the lease: history only, the webhook is untouched.
      const at = (startedAt: number, statusCode: number | null, latencyMs: number | null): AttemptRecord => ({
        webhookId: extra.id, lease: 'nobody', claimedSeq: 0, notificationId: 'n', startedAt, durationMs: 5, statusCode,
        error: statusCode === null ? 'timeout: no answer' : null, responseSnippet: null, latencyMs, outcome: { kind: 'success' }, nextDueAt: 0,
      });
      await h.store.completeAttempts([
        at(now - 5 * MINUTE, 200, 100), at(now - 5 * MINUTE + 1, 204, 300), at(now - 5 * MINUTE + 2, 503, 900),
        at(now - 5 * MINUTE + 3, null, null), at(now - 2 * HOUR, 200, 5),
      ]);
      try {
        const o = (await call('GET', '/admin/api/overview')).json();
        // Earlier tests' deliveries: a (200), d (410), e (500), each with latency 40, all just now.
        assert.deepEqual(o.lastHour, { callbacks: 7, successes: 3, failures: 4, perMinute: 0.12, successRate: 3 / 7, latencyP50Ms: 100, latencyP95Ms: 280 });
        assert.equal(o.lastMinute.callbacks, 3);
        assert.equal(o.series.length, 60);
        const starts = o.series.map((p: { at: string }) => Date.parse(p.at));
        assert.ok(starts.every((t: number, i: number) => t % MINUTE === 0 && (i === 0 || t - starts[i - 1] === MINUTE)), 'whole minutes, oldest first');
        assert.ok(starts[59] <= Date.now() && Date.now() < starts[59] + MINUTE, 'the last point is the current minute');
        const of = (t: number) => o.series.find((p: { at: string }) => Date.parse(p.at) <= t && t < Date.parse(p.at) + MINUTE);
        assert.deepEqual({ ...of(now - 5 * MINUTE), at: 0 }, { at: 0, callbacks: 4, successes: 2, failures: 2, latencyP50Ms: 200, latencyP95Ms: 290 });
        const total = o.series.reduce((n: number, p: { callbacks: number }) => n + p.callbacks, 0);
        assert.equal(total, 7);
        assert.ok(o.series.some((p: { callbacks: number; latencyP50Ms: number | null }) => p.callbacks === 0 && p.latencyP50Ms === null));
      } finally {
        await h.store.deleteWebhook(h.clientId, ORCIDS[3]!, 'https://stats.example.org/x');
      }
    });
  });

  describe('GET /admin/api/webhooks', () => {
    const list = async (query = '') => {
      const res = await call('GET', `/admin/api/webhooks${query}`);
      assert.equal(res.statusCode, 200, res.body);
      return res.json() as { webhooks: Webhook[]; nextCursor: string | null };
    };
    const ids = (r: { webhooks: Webhook[] }) => r.webhooks.map((x) => x.id);

    test('lists every webhook by id, with its client and state, never lease internals', async () => {
      const r = await list();
      assert.deepEqual(ids(r), [w.a.publicId, w.b.publicId, w.c.publicId, w.d.publicId, w.e.publicId]);
      assert.equal(r.nextCursor, null);
      const [a, b, c, d, e] = r.webhooks;
      assert.deepEqual(a!.client, { id: h.clientId, name: 'Test premium' });
      assert.deepEqual(c!.client, { id: otherClient, name: 'Other Org' });
      assert.deepEqual(r.webhooks.map((x) => x.state), ['ok', 'pending', 'pending', 'disabled', 'failing']);
      assert.equal(a!.lastStatus, '200');
      assert.ok(a!.lastSuccess && a!.lastAttempt === a!.lastSuccess, 'a success is the last attempt and the last success');
      assert.ok(b!.due && b!.lastAttempt === null && b!.lastSuccess === null);
      assert.equal(d!.disabledReason, 'HTTP 410 Gone');
      assert.equal(e!.lastStatus, '500');
      // A webhook whose only attempt failed: a last attempt, no success.
      assert.ok(e!.lastAttempt && e!.lastSuccess === null);
      assert.ok(d!.lastAttempt && d!.lastSuccess === null);
      assert.deepEqual(Object.keys(a!).sort(), ['client', 'created', 'disabled', 'disabledReason', 'due', 'enabled', 'failedAttempts', 'host', 'id', 'lastAttempt', 'lastFailed', 'lastStatus', 'lastSuccess', 'orcid', 'pendingSince', 'state', 'url']);
    });

    test('pages with a cursor', async () => {
      const p1 = await list('?limit=2');
      assert.deepEqual(ids(p1), [w.a.publicId, w.b.publicId]);
      assert.equal(p1.nextCursor, w.b.publicId);
      const p2 = await list(`?limit=2&cursor=${p1.nextCursor}`);
      assert.deepEqual(ids(p2), [w.c.publicId, w.d.publicId]);
      const p3 = await list(`?limit=2&cursor=${p2.nextCursor}`);
      assert.deepEqual(ids(p3), [w.e.publicId]);
      assert.equal(p3.nextCursor, null);
      const exact = await list('?limit=5');
      assert.equal(exact.nextCursor, null, 'no next page when the last one is exactly full');
    });

    test('searches by iD, client id or part of the callback URL; filters by state, client and iD', async () => {
      assert.deepEqual(ids(await list(`?search=${ORCIDS[0]}`)), [w.a.publicId, w.c.publicId]);
      assert.deepEqual(ids(await list('?search=other.example')), [w.c.publicId, w.e.publicId]);
      assert.deepEqual(ids(await list('?search=HOOKS.EXAMPLE.ORG%2Fb')), [w.b.publicId]);
      assert.deepEqual(ids(await list(`?search=${otherClient}`)), [w.c.publicId, w.e.publicId]);
      assert.deepEqual(ids(await list('?search=nothing-like-this')), []);
      assert.deepEqual(ids(await list('?state=disabled')), [w.d.publicId]);
      assert.deepEqual(ids(await list('?state=failing')), [w.e.publicId]);
      assert.deepEqual(ids(await list('?state=pending')), [w.b.publicId, w.c.publicId], 'e is failing, not pending');
      assert.deepEqual(ids(await list('?state=enabled')), [w.a.publicId, w.b.publicId, w.c.publicId, w.e.publicId]);
      assert.deepEqual(ids(await list(`?client=${otherClient}`)), [w.c.publicId, w.e.publicId]);
      assert.deepEqual(ids(await list(`?orcid=${ORCIDS[0]}&client=${otherClient}`)), [w.c.publicId]);
      assert.deepEqual(ids(await list('?search=&state=&client=')), [w.a.publicId, w.b.publicId, w.c.publicId, w.d.publicId, w.e.publicId], 'empty parameters mean none');
    });

    test('bad parameters: 400 naming the parameter', async () => {
      await refused('GET', '/admin/api/webhooks?limit=0', 400, 9052, /limit/);
      await refused('GET', '/admin/api/webhooks?limit=501', 400, 9052, /limit/);
      await refused('GET', '/admin/api/webhooks?limit=ten', 400, 9052, /limit: must be a whole number/);
      await refused('GET', '/admin/api/webhooks?state=broken', 400, 9052, /state/);
      await refused('GET', '/admin/api/webhooks?cursor=-3', 400, 9052, /cursor/);
      await refused('GET', '/admin/api/webhooks?orcid=0000-0002-1825-0098', 400, 9001, /check character/);
      await refused('GET', '/admin/api/webhooks?sort=id', 400, 9052, /sort|Unrecognized/);
      await refused('GET', '/admin/api/webhooks?state=enabled&state=disabled', 400, 9052, /state/);
    });
  });

  describe("the overview's failures by host: each host's link lists exactly that host's webhooks", () => {
    let hh: Harness;
    // An IDN host is stored in its ASCII form; a host is also part of its subdomains' and of other URLs.
    const URLS = ['https://bücher.example/cb', 'https://example.org/x', 'https://api.example.org/x', 'https://other.example.net/?from=example.org'];
    before(async () => {
      hh = await startHarness({ role: 'api' }, { backend });
      await hh.store.addRecords([ORCIDS[0]!], Date.now() - 10 * MINUTE);
      for (const url of URLS) {
        const r = await hh.store.registerWebhook({ clientId: hh.clientId, orcid: ORCIDS[0]!, url, host: new URL(url).hostname, now: Date.now() });
        assert.equal(r.outcome, 'created');
      }
      await hh.store.applyChanges([{ orcid: ORCIDS[0]!, modifiedAt: Date.now(), touch: true }], { create: false, now: Date.now(), notifyDelayMs: 0 });
      const now = Date.now();
      const claims = await hh.store.claimDue({ lease: 'test', limit: 100, now: now + MINUTE, leaseMs: MINUTE, excludeHosts: [] });
      assert.equal(claims.length, URLS.length);
      await hh.store.completeAttempts(claims.map((c) => ({
        webhookId: c.webhook.id, lease: 'test', claimedSeq: c.webhook.changeSeq, notificationId: `msg_${c.webhook.publicId}_1`,
        startedAt: now, durationMs: 5, statusCode: 500, error: null, responseSnippet: null, latencyMs: null,
        outcome: { kind: 'retry', retryAt: now + HOUR }, nextDueAt: now + HOUR,
      })));
    });
    after(() => hh.close());

    test('the link the overview draws for a host, opened by the webhooks page, lists that host\'s webhooks and no other', async () => {
      const overviewJs = readFileSync(new URL('../src/dashboard/pages/overview.js', import.meta.url), 'utf8');
      const webhooksJs = readFileSync(new URL('../src/dashboard/pages/webhooks.js', import.meta.url), 'utf8');
      // The host table's link: #/webhooks?<param>=<host>.
      const param = /href: `#\/webhooks\$\{q\(\{ (\w+): r\.host \}\)\}`/.exec(overviewJs)?.[1] ?? assert.fail('no link on a failing host');
      // The webhooks page reads that parameter of its URL and passes it on to the list it asks for.
      assert.match(webhooksJs, new RegExp(`${param}: params\\.${param} \\?\\? ''`), `the webhooks page reads ${param} from its URL`);
      const o = (await hh.svc.app.inject({ url: '/admin/api/overview', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json();
      const hosts = (o.failures.byHost as { host: string; failures: number }[]).map((f) => f.host).sort();
      assert.deepEqual(hosts, URLS.map((u) => new URL(u).hostname).sort());
      const all = (await hh.svc.app.inject({ url: '/admin/api/webhooks', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json().webhooks as (Webhook & { host: string })[];
      for (const host of hosts) {
        const res = await hh.svc.app.inject({ url: `/admin/api/webhooks?${new URLSearchParams({ [param]: host })}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
        assert.equal(res.statusCode, 200, res.body);
        const listed = (res.json().webhooks as Webhook[]).map((x) => x.url);
        assert.deepEqual(listed, all.filter((x) => x.host === host).map((x) => x.url), `${param}=${host}`);
      }
    });
  });

  describe('GET /admin/api/webhooks/{id}', () => {
    test('answers the webhook and its attempts, newest first', async () => {
      const res = await call('GET', `/admin/api/webhooks/${w.d.publicId}`);
      assert.equal(res.statusCode, 200);
      const r = res.json();
      assert.equal(r.webhook.id, w.d.publicId);
      assert.equal(r.webhook.state, 'disabled');
      assert.equal(r.webhook.client.name, 'Test premium');
      assert.equal(r.attempts.length, 1);
      assert.deepEqual({ ...r.attempts[0], id: 0, at: '' }, {
        id: 0, at: '', notificationId: `msg_${w.d.publicId}_1`, durationMs: 12, statusCode: 410, error: null, responseSnippet: 'ok', latencyMs: 40, ok: false,
        requestHeaders: null, responseHeaders: null,
      });
      const a = (await call('GET', `/admin/api/webhooks/${w.a.publicId}?attempts=1`)).json();
      assert.equal(a.attempts.length, 1);
      assert.equal(a.attempts[0].ok, true);
      assert.equal((await call('GET', `/admin/api/webhooks/${w.b.publicId}`)).json().attempts.length, 0);
    });

    test('unknown id: 404 (9028); malformed id or parameters: 400', async () => {
      await refused('GET', '/admin/api/webhooks/wh_00000000000000000000000000000000', 404, 9028, /No webhook with id wh_00000000000000000000000000000000/);
      await refused('GET', `/admin/api/webhooks/${w.a.id}`, 400, 9052, /id: must be a webhook id/);
      await refused('GET', '/admin/api/webhooks/abc', 400, 9052, /id: must be a webhook id/);
      await refused('GET', '/admin/api/webhooks/0', 400, 9052, /id/);
      await refused('GET', `/admin/api/webhooks/${w.a.publicId}?attempts=0`, 400, 9052, /attempts/);
    });
  });

  describe('attempt headers', () => {
    test('answered as stored: request and response headers, or null when none were kept', async () => {
      const x = await register(h.clientId, ORCIDS[1]!, 'https://headers.example.org/x');
      await h.store.applyChanges([{ orcid: ORCIDS[1]!, modifiedAt: Date.now(), touch: true }], { create: false, now: Date.now(), notifyDelayMs: 0 });
      try {
        const requestHeaders = { 'webhook-id': `msg_${x.publicId}_1`, 'webhook-signature': '[redacted]', 'user-agent': 'orcid-webhooks/test' };
        await deliver(x, { kind: 'retry', retryAt: Date.now() + MINUTE }, { statusCode: 503, requestHeaders, responseHeaders: { 'retry-after': '60', 'set-cookie': '[redacted]' } });
        await deliver(x, { kind: 'retry', retryAt: Date.now() + MINUTE }, { statusCode: null, error: 'timeout: no answer', requestHeaders, responseHeaders: null });
        const r = (await call('GET', `/admin/api/webhooks/${x.publicId}`)).json();
        assert.deepEqual(r.attempts.map((a: { requestHeaders: unknown; responseHeaders: unknown }) => [a.requestHeaders, a.responseHeaders]), [
          [requestHeaders, null],
          [requestHeaders, { 'retry-after': '60', 'set-cookie': '[redacted]' }],
        ]);
        assert.equal(r.webhook.lastSuccess, null);
        assert.equal(r.webhook.lastAttempt, r.webhook.lastFailed);
      } finally {
        await h.store.deleteWebhook(h.clientId, ORCIDS[1]!, 'https://headers.example.org/x');
      }
    });
  });

  describe('GET /admin/api/records', () => {
    const sorted = [...ORCIDS].sort();
    const page = async (query = '') => {
      const res = await call('GET', `/admin/api/records${query}`);
      assert.equal(res.statusCode, 200, res.body);
      return res.json() as { records: { orcid: string; modified: string; created: string }[]; nextCursor: string | null };
    };

    test('lists records by iD with their times, a page at a time', async () => {
      const all = await page();
      assert.deepEqual(all.records.map((r) => r.orcid), sorted);
      assert.equal(all.nextCursor, null);
      const row = (await h.store.getRecord(sorted[0]!))!;
      assert.deepEqual(all.records[0], { orcid: row.orcid, modified: new Date(row.modifiedAt).toISOString(), created: new Date(row.createdAt).toISOString() });
      const p1 = await page('?limit=3');
      assert.deepEqual(p1.records.map((r) => r.orcid), sorted.slice(0, 3));
      assert.equal(p1.nextCursor, sorted[2]);
      const p2 = await page(`?limit=3&cursor=${p1.nextCursor}`);
      assert.deepEqual(p2.records.map((r) => r.orcid), sorted.slice(3));
      assert.equal(p2.nextCursor, null);
    });

    test('finds one record by its exact iD; an unknown one is an empty list', async () => {
      assert.deepEqual((await page(`?orcid=${ORCIDS[2]}`)).records.map((r) => r.orcid), [ORCIDS[2]]);
      assert.deepEqual((await page('?orcid=0000-0003-1415-9269')).records, []);
    });

    test('bad parameters: 400 naming the parameter', async () => {
      await refused('GET', '/admin/api/records?orcid=0000-0002-1825-0098', 400, 9001, /orcid/);
      await refused('GET', '/admin/api/records?cursor=abc', 400, 9052, /cursor/);
      await refused('GET', '/admin/api/records?limit=0', 400, 9052, /limit/);
      await refused('GET', '/admin/api/records?limit=501', 400, 9052, /limit/);
      await refused('GET', '/admin/api/records?after=x', 400, 9052, /after|Unrecognized/);
    });
  });

  describe('POST /admin/api/webhooks/{id}/enable', () => {
    test('re-enables a disabled webhook; the notification it owed is due now', async () => {
      const t0 = Date.now();
      const res = await call('POST', `/admin/api/webhooks/${w.d.publicId}/enable`);
      assert.equal(res.statusCode, 200, res.body);
      const r = res.json();
      assert.equal(r.reenabled, true);
      assert.equal(r.webhook.enabled, true);
      assert.equal(r.webhook.state, 'pending');
      assert.equal(r.webhook.disabledReason, null);
      assert.equal(r.webhook.failedAttempts, 0);
      assert.ok(Date.parse(r.webhook.due) >= t0 - 1 && Date.parse(r.webhook.due) <= Date.now());
      const row = (await h.store.getWebhook(w.d.id))!;
      assert.equal(row.enabled, true);
      assert.equal(row.pendingSince, w.d.pendingSince ?? row.pendingSince);
    });

    test('an enabled webhook is left as it is', async () => {
      const before = await snapshot(h.store);
      const res = await call('POST', `/admin/api/webhooks/${w.a.publicId}/enable`);
      assert.equal(res.statusCode, 200);
      assert.equal(res.json().reenabled, false);
      assert.deepEqual(await snapshot(h.store), before);
    });

    test('unknown or malformed id: 404 / 400, nothing changed', async () => {
      await refused('POST', '/admin/api/webhooks/wh_00000000000000000000000000000000/enable', 404, 9028, /wh_00000000000000000000000000000000/);
      await refused('POST', '/admin/api/webhooks/1x/enable', 400, 9052, /id/);
    });
  });

  describe('DELETE /admin/api/webhooks/{id}', () => {
    test('deletes the webhook and its history', async () => {
      const victim = await register(otherClient, ORCIDS[1]!, 'https://delete.example.org/me');
      await h.store.applyChanges([{ orcid: ORCIDS[1]!, modifiedAt: Date.now(), touch: true }], { create: false, now: Date.now(), notifyDelayMs: 0 });
      await deliver(victim, { kind: 'success' });
      const res = await call('DELETE', `/admin/api/webhooks/${victim.publicId}`);
      assert.equal(res.statusCode, 204);
      assert.equal(res.body, '');
      assert.equal(await h.store.getWebhook(victim.id), null);
      assert.deepEqual(await h.store.listAttempts(victim.id, 10), []);
      await refused('DELETE', `/admin/api/webhooks/${victim.publicId}`, 404, 9028, /No webhook/);
    });

    test('malformed id: 400, nothing changed', async () => {
      await refused('DELETE', '/admin/api/webhooks/-1', 400, 9052, /id/);
      await refused('DELETE', '/admin/api/webhooks/99999999999999999999', 400, 9052, /id/);
    });
  });

  describe('clients', () => {
    test('GET lists clients without their secrets', async () => {
      const res = await call('GET', '/admin/api/clients');
      assert.equal(res.statusCode, 200);
      const { clients } = res.json();
      assert.deepEqual(clients.map((c: { id: string }) => c.id).sort(), [h.clientId, otherClient].sort());
      for (const c of clients) assert.deepEqual(Object.keys(c).sort(), ['created', 'id', 'name', 'premium', 'revoked']);
      assert.ok(!res.body.includes('secret'), 'no secret or secret hash');
    });

    test('POST creates a client and answers its secret once; the secret gets a token', async () => {
      const res = await call('POST', '/admin/api/clients', { body: { name: '  Example University  ', premium: true } });
      assert.equal(res.statusCode, 201, res.body);
      const { client, secret } = res.json();
      assert.equal(client.name, 'Example University');
      assert.equal(client.premium, true);
      assert.equal(client.revoked, null);
      assert.ok(typeof secret === 'string' && secret.length >= 20);
      const row = (await h.store.getClient(client.id))!;
      assert.notEqual(row.secretHash, secret);
      assert.ok(await getToken(h.svc, client.id, secret));
      const listed = (await call('GET', '/admin/api/clients')).json().clients;
      assert.ok(listed.some((c: { id: string }) => c.id === client.id));
      assert.ok(!JSON.stringify(listed).includes(secret));

      const plain = (await call('POST', '/admin/api/clients', { body: { name: 'Public reader' } })).json();
      assert.equal(plain.client.premium, false, 'premium defaults to false');
      // 150 emoji: 150 characters as the schema counts them (300 UTF-16 units): created, not a 500.
      const emoji = await call('POST', '/admin/api/clients', { body: { name: '😀'.repeat(150) } });
      assert.equal(emoji.statusCode, 201, emoji.body);
      assert.equal(emoji.json().client.name, '😀'.repeat(150));
    });

    test('POST with bad input: 400 naming the field, no client created', async () => {
      await refused('POST', '/admin/api/clients', 400, 9052, /body/);
      await refused('POST', '/admin/api/clients', 400, 9052, /name/, { body: {} });
      await refused('POST', '/admin/api/clients', 400, 9052, /name: must not be empty/, { body: { name: '   ' } });
      await refused('POST', '/admin/api/clients', 400, 9052, /name: must be at most 200/, { body: { name: 'x'.repeat(201) } });
      for (const name of ['a\u0000b', 'two\nlines', 'tab\there', 'bell\u0007']) {
        await refused('POST', '/admin/api/clients', 400, 9052, /name: must not contain control characters/, { body: { name } });
      }
      await refused('POST', '/admin/api/clients', 400, 9052, /premium/, { body: { name: 'X', premium: 'yes' } });
      await refused('POST', '/admin/api/clients', 400, 9052, /secret|Unrecognized/, { body: { name: 'X', secret: 'mine' } });
      await refused('POST', '/admin/api/clients', 400, 9052, /not valid JSON/, { raw: '{"name": ' });
      await refused('POST', '/admin/api/clients', 400, 9052, /body/, { body: ['X'] });
    });

    test('POST /clients/{id}/revoke revokes once, deletes its tokens, 404 for an unknown client', async () => {
      const { client, secret } = (await call('POST', '/admin/api/clients', { body: { name: 'Short-lived', premium: true } })).json();
      const token = await getToken(h.svc, client.id, secret);
      await h.store.addRecords([ORCIDS[0]!], Date.now());
      const ok = await h.svc.app.inject({ method: 'PUT', url: webhookPath(ORCIDS[0]!, 'https://short.example.org/x'), headers: { authorization: `Bearer ${token}` } });
      assert.equal(ok.statusCode, 201, ok.body);

      const res = await call('POST', `/admin/api/clients/${client.id}/revoke`);
      assert.equal(res.statusCode, 200, res.body);
      const revoked = res.json().client.revoked;
      assert.ok(revoked);
      const denied = await h.svc.app.inject({ method: 'PUT', url: webhookPath(ORCIDS[0]!, 'https://short.example.org/y'), headers: { authorization: `Bearer ${token}` } });
      assert.equal(denied.statusCode, 401, 'its tokens no longer work');
      const again = await call('POST', `/admin/api/clients/${client.id}/revoke`);
      assert.equal(again.json().client.revoked, revoked, 'revoking again keeps the first time');
      await refused('POST', '/admin/api/clients/APP-NOSUCHCLIENT000/revoke', 404, 9011, /No client with id APP-NOSUCHCLIENT000/);
    });
  });

  test('every operation is in the OpenAPI document', async () => {
    const doc = (await h.svc.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const ops = [
      ['/admin/api/overview', 'get'], ['/admin/api/webhooks', 'get'], ['/admin/api/webhooks/{id}', 'get'],
      ['/admin/api/webhooks/{id}/enable', 'post'], ['/admin/api/webhooks/{id}', 'delete'],
      ['/admin/api/clients', 'get'], ['/admin/api/clients', 'post'], ['/admin/api/clients/{id}/revoke', 'post'],
    ];
    for (const [path, method] of ops) {
      const op = doc.paths[path!]?.[method!];
      assert.ok(op, `${method} ${path}`);
      assert.deepEqual(op.security, [{ adminToken: [] }]);
      assert.ok(op.responses['401'], `${method} ${path} documents 401`);
    }
    const params = doc.paths['/admin/api/webhooks'].get.parameters.map((p: { name: string }) => p.name);
    assert.deepEqual(params, ['search', 'state', 'client', 'orcid', 'cursor', 'limit', 'host']);
    assert.ok(doc.paths['/admin/api/clients'].post.requestBody.content['application/json'].schema.properties.name);
  });
});
