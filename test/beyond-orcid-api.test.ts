/*
 * Beyond ORCID (issue 5), over HTTP: the client read endpoints and replay, the admin endpoints for
 * signing secrets, payload mode, replay and recovery, isolation between clients, and the abuse
 * limits. These harnesses run without a delivery worker (role api) so that webhook states change
 * only when a test changes them.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { RateLimiter } from '../src/api/rate-limit.ts';
import { createLogger } from '../src/logger.ts';
import { createApiClient } from '../src/ops/clients.ts';
import type { AttemptOutcome, WebhookRow } from '../src/store/types.ts';
import { ADMIN_TOKEN, getToken, startHarness, webhookPath, type Harness } from './helpers/harness.ts';

const A = '0000-0002-1825-0097';
const B = '0000-0002-7465-2162';
const C = '0000-0001-5109-3700';

const STATUS_KEYS = [
  'id', 'orcid', 'callback', 'state', 'enabled', 'disabled_reason', 'disabled_at', 'created_at', 'last_sent_at',
  'last_failed_at', 'last_status', 'consecutive_failures', 'next_attempt_at',
];

interface Status {
  id: number; orcid: string; callback: string; state: string; enabled: boolean; disabled_reason: string | null; disabled_at: string | null;
  created_at: string; last_sent_at: string | null; last_failed_at: string | null; last_status: string | null;
  consecutive_failures: number; next_attempt_at: string | null;
  recent_attempts?: { at: string; notification_id: string; status_code: number | null; error: string | null; duration_ms: number }[];
}

const adminHeaders = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

describe('client read endpoints, replay and admin client features', () => {
  let h: Harness;
  let other: { id: string; token: string };

  before(async () => {
    h = await startHarness({ role: 'api' });
    await h.store.addRecords([A, B, C], Date.now() - 60_000);
    const o = await createApiClient(h.store, { name: 'Other premium', premium: true });
    other = { id: o.client.id, token: await getToken(h.svc, o.client.id, o.secret) };
  });
  after(() => h.close());

  const call = (method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, token: string | null = h.token, headers: Record<string, string> = {}) =>
    h.svc.app.inject({ method, url, headers: { accept: 'application/json', ...(token && { authorization: `Bearer ${token}` }), ...headers } });
  const admin = (method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, payload?: unknown) =>
    h.svc.app.inject({ method, url, headers: adminHeaders, ...(payload !== undefined && { payload: JSON.stringify(payload) }) });
  const register = async (orcid: string, url: string, token = h.token) => {
    const res = await call('PUT', webhookPath(orcid, url), token);
    assert.ok(res.statusCode === 201 || res.statusCode === 204, `register: ${res.statusCode} ${res.body}`);
  };
  /**
   * Plays the worker: claims the webhook and completes one attempt with the outcome. One that owes
   * nothing is made to owe (replayed: other webhooks on its record are left alone); one in retry
   * backoff is claimed early.
   */
  const attemptOn = async (w: WebhookRow, outcome: AttemptOutcome, statusCode: number | null, error: string | null = null) => {
    const now = Date.now();
    if (w.dueAt === null) await h.store.replayWebhook(w.id, now);
    const claims = await h.store.claimDue({ lease: 'test', limit: 1000, now: now + 86_400_000, leaseMs: 10_000, excludeHosts: [] });
    const c = claims.find((x) => x.webhook.id === w.id) ?? assert.fail('not claimed');
    await h.store.releaseClaims('test', claims.filter((x) => x.webhook.id !== w.id).map((x) => x.webhook.id));
    await h.store.completeAttempts([{
      webhookId: w.id, lease: 'test', claimedSeq: c.webhook.changeSeq, notificationId: `msg_${w.publicId}_${c.webhook.notifySeq}`,
      startedAt: now + 1, durationMs: 42, statusCode, error, responseSnippet: null, latencyMs: 5, outcome, nextDueAt: now + 1,
    }]);
  };
  const find = async (orcid: string, url: string, clientId = h.clientId) => (await h.store.findWebhook(clientId, orcid, url)) ?? assert.fail('no webhook');

  describe('GET /{orcid}/webhook/{callback}', () => {
    test('the documented shape through every state: enabled, pending, failing, disabled, sent', async () => {
      const url = 'https://example.org/states';
      await register(A, url);
      const get = async () => {
        const res = await call('GET', webhookPath(A, url));
        assert.equal(res.statusCode, 200, res.body);
        assert.match(String(res.headers['content-type']), /application\/json/);
        return res.json() as Status;
      };
      const fresh = await get();
      assert.deepEqual(Object.keys(fresh), [...STATUS_KEYS, 'recent_attempts']);
      assert.equal(fresh.orcid, A);
      assert.equal(fresh.callback, url);
      assert.equal(fresh.state, 'enabled');
      assert.equal(fresh.enabled, true);
      assert.ok(Math.abs(Date.parse(fresh.created_at) - Date.now()) < 5000);
      assert.equal(fresh.next_attempt_at, null);
      assert.deepEqual(fresh.recent_attempts, []);

      const now = Date.now();
      await h.store.applyChanges([{ orcid: A, modifiedAt: now, touch: true }], { create: false, now, notifyDelayMs: 60_000 });
      const pending = await get();
      assert.equal(pending.state, 'pending');
      assert.equal(pending.next_attempt_at, new Date(now + 60_000).toISOString());

      const w = await find(A, url);
      await attemptOn(w, { kind: 'retry', retryAt: Date.now() + 3_600_000 }, 503);
      const failing = await get();
      assert.equal(failing.state, 'failing');
      assert.equal(failing.consecutive_failures, 1);
      assert.equal(failing.last_status, '503');
      assert.ok(failing.last_failed_at);
      assert.ok(Date.parse(failing.next_attempt_at!) > Date.now() + 3_000_000);
      assert.deepEqual(Object.keys(failing.recent_attempts![0]!), ['at', 'notification_id', 'status_code', 'error', 'duration_ms']);
      assert.equal(failing.recent_attempts![0]!.status_code, 503);
      assert.equal(failing.recent_attempts![0]!.duration_ms, 42);
      assert.match(failing.recent_attempts![0]!.notification_id, /^msg_wh_[0-9a-f]{32}_\d+$/);

      await attemptOn(await find(A, url), { kind: 'disable', reason: 'schedule exhausted after 2 failed attempts' }, null, 'timeout: no answer');
      const disabled = await get();
      assert.equal(disabled.state, 'disabled');
      assert.equal(disabled.enabled, false);
      assert.match(disabled.disabled_reason!, /exhausted/);
      assert.ok(disabled.disabled_at);
      assert.equal(disabled.next_attempt_at, null);
      assert.equal(disabled.consecutive_failures, 2);
      assert.deepEqual(disabled.recent_attempts!.map((a) => [a.status_code, a.error]), [[null, 'timeout: no answer'], [503, null]]);

      // A re-PUT re-enables; a success clears the failures.
      await register(A, url);
      await attemptOn(await find(A, url), { kind: 'success' }, 204);
      const sent = await get();
      assert.equal(sent.state, 'enabled');
      assert.equal(sent.consecutive_failures, 0);
      assert.ok(sent.last_sent_at);
      assert.equal(sent.recent_attempts!.length, 3);
    });

    test('at most the 10 most recent attempts, newest first', async () => {
      const url = 'https://example.org/many';
      await register(B, url);
      for (let i = 0; i < 12; i++) await attemptOn(await find(B, url), { kind: 'retry', retryAt: Date.now() }, 500 + i);
      const body = (await call('GET', webhookPath(B, url))).json() as Status;
      assert.deepEqual(body.recent_attempts!.map((a) => a.status_code), [511, 510, 509, 508, 507, 506, 505, 504, 503, 502]);
    });

    test('unknown webhook: 404 / 9028; bad iD: 400 / 9001; bad encoding: 400 / 9012; XML errors when asked', async () => {
      const none = await call('GET', webhookPath(A, 'https://example.org/none'));
      assert.equal(none.statusCode, 404);
      assert.equal(none.json()['error-code'], 9028);
      const badId = await call('GET', webhookPath('0000-0002-1825-0098', 'https://example.org/x'));
      assert.equal(badId.statusCode, 400);
      assert.equal(badId.json()['error-code'], 9001);
      const badEnc = await call('GET', `/${A}/webhook/https%3A%2F%2Fexample.org%2F%E0%A4%A`);
      assert.equal(badEnc.statusCode, 400);
      assert.equal(badEnc.json()['error-code'], 9012);
      const xml = await call('GET', webhookPath(A, 'https://example.org/none'), h.token, { accept: 'application/xml' });
      assert.match(xml.body, /<error-code>9028<\/error-code>/);
    });

    // Updated for issue 9: ORCID's answers (no token 403 forbidden; a public client 401 / 9017).
    test('token problems: 403 forbidden without a token, 401 invalid_token; 401 / 9017 for a public client', async () => {
      const path = webhookPath(A, 'https://example.org/states');
      assert.equal((await call('GET', path, null)).json().error, 'forbidden');
      assert.equal((await call('GET', '/webhooks', 'not-a-token')).statusCode, 401);
      const pub = await createApiClient(h.store, { name: 'Public', premium: false });
      const readPublic = await getToken(h.svc, pub.client.id, pub.secret, '/read-public');
      const res = await call('GET', '/webhooks', readPublic);
      assert.equal(res.statusCode, 401);
      assert.equal(res.json()['error-code'], 9017);
    });
  });

  describe('isolation between clients', () => {
    test('a client cannot see, list, replay or delete another\'s webhook', async () => {
      const url = 'https://example.org/mine';
      await register(C, url);
      const path = webhookPath(C, url);
      for (const method of ['GET', 'POST', 'DELETE'] as const) {
        const res = await call(method, path, other.token);
        assert.equal(res.statusCode, 404, method);
        assert.equal(res.json()['error-code'], 9028, method);
      }
      const list = (await call('GET', '/webhooks?limit=1000', other.token)).json() as { webhooks: Status[] };
      assert.ok(list.webhooks.every((w) => w.callback !== url));
      const mine = (await call('GET', '/webhooks?limit=1000')).json() as { webhooks: Status[] };
      assert.ok(mine.webhooks.some((w) => w.callback === url));
      assert.equal((await call('GET', path)).statusCode, 200, 'still ours, untouched');
      assert.equal((await find(C, url)).dueAt, null, 'the other client\'s replay did not touch it');
      // The admin API is not open to client tokens.
      const w = await find(C, url);
      const adm = await call('POST', `/admin/api/webhooks/${w.publicId}/replay`, other.token);
      assert.equal(adm.statusCode, 401);
      assert.equal((await find(C, url)).dueAt, null);
    });

    test('the same callback registered by two clients is two webhooks, each seeing only its own', async () => {
      const url = 'https://example.org/both';
      await register(C, url);
      await register(C, url, other.token);
      const mine = (await call('GET', webhookPath(C, url))).json() as Status;
      const theirs = (await call('GET', webhookPath(C, url), other.token)).json() as Status;
      assert.notEqual(mine.id, theirs.id);
    });
  });

  describe('GET /webhooks', () => {
    let lister: { id: string; token: string };
    const urls = Array.from({ length: 7 }, (_, i) => `https://list.example/${i}`);

    before(async () => {
      const c = await createApiClient(h.store, { name: 'Lister', premium: true });
      lister = { id: c.client.id, token: await getToken(h.svc, c.client.id, c.secret) };
      for (const [i, u] of urls.entries()) await register(i < 4 ? A : B, u, lister.token);
    });

    const list = async (query: string, token = lister.token) => {
      const res = await call('GET', `/webhooks${query}`, token);
      assert.equal(res.statusCode, 200, res.body);
      return res.json() as { webhooks: Status[]; next_cursor: string | null };
    };

    test('all of the client\'s webhooks, oldest first, in the documented shape', async () => {
      const body = await list('');
      assert.deepEqual(Object.keys(body), ['webhooks', 'next_cursor']);
      assert.deepEqual(body.webhooks.map((w) => w.callback), urls);
      assert.deepEqual(Object.keys(body.webhooks[0]!), STATUS_KEYS, 'no attempts in the list');
      assert.equal(body.next_cursor, null);
    });

    test('cursor pagination: opaque cursors, every webhook once, null at the end', async () => {
      const seen: string[] = [];
      let cursor: string | null = '';
      let pages = 0;
      while (cursor !== null) {
        const body = await list(`?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        seen.push(...body.webhooks.map((w) => w.callback));
        if (body.next_cursor) assert.doesNotMatch(body.next_cursor, /^\d+$/, 'not a bare id');
        cursor = body.next_cursor;
        pages++;
      }
      assert.deepEqual(seen, urls);
      assert.equal(pages, 3);
      const exact = await list('?limit=7');
      assert.equal(exact.next_cursor, null, 'no empty last page when the page is exactly full');
    });

    test('filters by iD and by state', async () => {
      assert.deepEqual((await list(`?orcid=${B}`)).webhooks.map((w) => w.callback), urls.slice(4));
      const w = await find(B, urls[5]!, lister.id);
      await attemptOn(w, { kind: 'disable', reason: '410 Gone' }, 410);
      const w2 = await find(A, urls[1]!, lister.id);
      await attemptOn(w2, { kind: 'retry', retryAt: Date.now() + 3_600_000 }, 500);
      const now = Date.now();
      await h.store.registerWebhook({ clientId: lister.id, orcid: C, url: 'https://list.example/pending', host: 'list.example', now: now - 1000 });
      await h.store.applyChanges([{ orcid: C, modifiedAt: now, touch: true }], { create: false, now, notifyDelayMs: 3_600_000 });
      const states = async (state: string) => (await list(`?state=${state}`)).webhooks.map((x) => x.callback);
      assert.deepEqual(await states('disabled'), [urls[5]]);
      assert.deepEqual(await states('failing'), [urls[1]]);
      // One definition of a state (domain/webhook-state.ts): the states are disjoint, so a failing
      // webhook is listed under failing only, as it is labelled and counted.
      assert.deepEqual(await states('pending'), ['https://list.example/pending'], 'pending: owes a callback, no failure yet');
      for (const state of ['disabled', 'failing', 'pending']) {
        for (const x of (await list(`?state=${state}`)).webhooks) assert.equal(x.state, state, `a webhook listed under ${state} is labelled ${state}`);
      }
      assert.deepEqual((await states('enabled')).length, 7, 'every enabled one');
      assert.deepEqual((await list(`?state=disabled&orcid=${A}`)).webhooks, []);
      assert.deepEqual((await list(`?state=&orcid=`)).webhooks.length, 8, 'empty parameters count as not given');
    });

    test('bad parameters: 400 in ORCID\'s format, naming the parameter', async () => {
      const cases: [string, number, RegExp][] = [
        ['?limit=0', 9052, /limit/], ['?limit=1001', 9052, /limit/], ['?limit=ten', 9052, /limit/],
        ['?state=broken', 9052, /state/], ['?cursor=nonsense', 9052, /cursor/], ['?unknown=1', 9052, /unknown/],
        ['?orcid=0000-0002-1825-0098', 9001, /orcid/], ['?state=enabled&state=disabled', 9052, /state/],
      ];
      for (const [q, code, why] of cases) {
        const res = await call('GET', `/webhooks${q}`, lister.token);
        assert.equal(res.statusCode, 400, q);
        assert.equal(res.json()['error-code'], code, q);
        assert.match(res.json()['developer-message'], why, q);
      }
      assert.equal((await list('?limit=1000')).webhooks.length, 8);
    });
  });

  describe('replay', () => {
    test('a client replays its own webhook: 202, a new webhook-id, due now; a disabled one is re-enabled', async () => {
      const url = 'https://example.org/replay-me';
      await register(A, url);
      await attemptOn(await find(A, url), { kind: 'disable', reason: '410 Gone' }, 410);
      const before = await find(A, url);
      const res = await call('POST', webhookPath(A, url));
      assert.equal(res.statusCode, 202, res.body);
      const body = res.json() as { notification_id: string; reenabled: boolean; webhook: Status };
      assert.deepEqual(Object.keys(body), ['notification_id', 'reenabled', 'webhook']);
      assert.equal(body.reenabled, true);
      assert.equal(body.webhook.state, 'pending');
      assert.notEqual(body.notification_id, `msg_${before.publicId}_${before.notifySeq}`);
      assert.equal(body.notification_id, `msg_${before.publicId}_${before.changeSeq + 1}`);
      const w = await find(A, url);
      assert.ok(w.enabled && w.dueAt !== null && w.dueAt <= Date.now());
    });

    test('admin replay: 202 with the webhook and its new notification id; 404, 400, 401', async () => {
      const url = 'https://example.org/admin-replay';
      await register(B, url);
      const w = await find(B, url);
      const res = await admin('POST', `/admin/api/webhooks/${w.publicId}/replay`);
      assert.equal(res.statusCode, 202, res.body);
      const body = res.json();
      assert.equal(body.reenabled, false);
      assert.equal(body.notificationId, `msg_${w.publicId}_${w.changeSeq + 1}`);
      assert.equal(body.webhook.id, w.publicId);
      assert.equal((await find(B, url)).dueAt !== null, true);
      const unknown = await admin('POST', '/admin/api/webhooks/wh_00000000000000000000000000000000/replay');
      assert.equal(unknown.statusCode, 404);
      assert.equal(unknown.json()['error-code'], 9028);
      assert.equal((await admin('POST', '/admin/api/webhooks/abc/replay')).statusCode, 400);
      assert.equal((await admin('POST', `/admin/api/webhooks/${w.id}/replay`)).statusCode, 400, 'the internal integer id is not accepted');
      const noAuth = await h.svc.app.inject({ method: 'POST', url: `/admin/api/webhooks/${w.publicId}/replay` });
      assert.equal(noAuth.statusCode, 401);
    });

    test('admin recover: the client\'s webhooks disabled or failing since the time, with the count', async () => {
      const c = await createApiClient(h.store, { name: 'Recovering', premium: true });
      const token = await getToken(h.svc, c.client.id, c.secret);
      for (const u of ['https://rec.example/1', 'https://rec.example/2', 'https://rec.example/3']) await register(A, u, token);
      const since = new Date().toISOString();
      await attemptOn(await find(A, 'https://rec.example/1', c.client.id), { kind: 'disable', reason: 'gone' }, 410);
      await attemptOn(await find(A, 'https://rec.example/2', c.client.id), { kind: 'retry', retryAt: Date.now() + 3_600_000 }, 500);
      const res = await admin('POST', `/admin/api/clients/${c.client.id}/recover`, { since });
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(res.json(), { client: c.client.id, since, recovered: 2 });
      for (const u of ['https://rec.example/1', 'https://rec.example/2']) {
        const w = await find(A, u, c.client.id);
        assert.ok(w.enabled && w.failedAttempts === 0 && w.dueAt !== null, u);
      }
      assert.equal((await find(A, 'https://rec.example/3', c.client.id)).dueAt, null, 'the healthy one owes nothing');
      const bad = await admin('POST', `/admin/api/clients/${c.client.id}/recover`, { since: 'yesterday' });
      assert.equal(bad.statusCode, 400);
      assert.match(bad.json()['developer-message'], /since/);
      assert.equal((await admin('POST', `/admin/api/clients/${c.client.id}/recover`, {})).statusCode, 400);
      const unknown = await admin('POST', '/admin/api/clients/APP-NOPE/recover', { since });
      assert.equal(unknown.statusCode, 404);
      assert.equal(unknown.json()['error-code'], 9011);
    });
  });

  describe('admin: signing secrets and payload mode', () => {
    test('a secret is shown once; a second needs rotate (409 / 9056); rotation keeps the old one for the grace period; removal', async () => {
      const c = await createApiClient(h.store, { name: 'Signed', premium: true });
      const path = `/admin/api/clients/${c.client.id}/signing-secret`;
      const first = await admin('POST', path);
      assert.equal(first.statusCode, 201, first.body);
      const { secret, previousSecretExpires } = first.json();
      assert.match(secret, /^whsec_[A-Za-z0-9+/]+=*$/);
      assert.ok(Buffer.from(secret.slice(6), 'base64').length >= 24);
      assert.equal(previousSecretExpires, null);
      assert.equal((await h.store.getClientDeliverySettings(c.client.id))?.signingSecret, secret);

      const again = await admin('POST', path, {});
      assert.equal(again.statusCode, 409);
      assert.equal(again.json()['error-code'], 9056);
      assert.match(again.json()['developer-message'], /rotate/);

      const t0 = Date.now();
      const rotated = await admin('POST', path, { rotate: true });
      assert.equal(rotated.statusCode, 201);
      assert.notEqual(rotated.json().secret, secret);
      const expires = Date.parse(rotated.json().previousSecretExpires);
      assert.ok(Math.abs(expires - (t0 + 24 * 3_600_000)) < 5000, 'the default grace is 24 h');
      const s = await h.store.getClientDeliverySettings(c.client.id);
      assert.deepEqual([s?.signingSecret, s?.previousSigningSecret], [rotated.json().secret, secret]);

      const view = await admin('GET', `/admin/api/clients/${c.client.id}/delivery`);
      assert.deepEqual(view.json(), { client: c.client.id, payload: 'empty', signed: true, previousSecretExpires: rotated.json().previousSecretExpires });
      assert.ok(!view.body.includes('whsec_'), 'never the secrets');

      assert.equal((await admin('DELETE', path)).statusCode, 204);
      assert.equal((await admin('GET', `/admin/api/clients/${c.client.id}/delivery`)).json().signed, false);
      assert.equal((await admin('POST', path, { rotate: 'yes' })).statusCode, 400);
      assert.equal((await admin('POST', '/admin/api/clients/APP-NOPE/signing-secret')).statusCode, 404);
      assert.equal((await admin('DELETE', '/admin/api/clients/APP-NOPE/signing-secret')).statusCode, 404);
      assert.equal((await h.svc.app.inject({ method: 'POST', url: path })).statusCode, 401);
    });

    test('payload mode: json or empty; anything else 400; unknown client 404', async () => {
      const c = await createApiClient(h.store, { name: 'Payload', premium: true });
      const path = `/admin/api/clients/${c.client.id}/payload`;
      const res = await admin('PUT', path, { mode: 'json' });
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(res.json(), { client: c.client.id, payload: 'json', signed: false, previousSecretExpires: null });
      assert.equal((await h.store.getClientDeliverySettings(c.client.id))?.payloadMode, 'json');
      assert.equal((await admin('PUT', path, { mode: 'empty' })).json().payload, 'empty');
      assert.equal((await admin('PUT', path, { mode: 'xml' })).statusCode, 400);
      assert.equal((await admin('PUT', path)).statusCode, 400);
      assert.equal((await admin('PUT', '/admin/api/clients/APP-NOPE/payload', { mode: 'json' })).statusCode, 404);
    });

    test('the OpenAPI document describes the new operations', async () => {
      const doc = (await h.svc.app.inject({ url: '/openapi.json' })).json() as { paths: Record<string, Record<string, { parameters?: { name: string }[] }>> };
      assert.ok(doc.paths['/{orcid}/webhook/{callback}']?.get);
      assert.ok(doc.paths['/{orcid}/webhook/{callback}']?.post);
      assert.deepEqual(doc.paths['/webhooks']?.get?.parameters?.map((p) => p.name), ['orcid', 'state', 'cursor', 'limit', 'access_token']);
      for (const p of ['/admin/api/webhooks/{id}/replay', '/admin/api/clients/{id}/recover', '/admin/api/clients/{id}/signing-secret', '/admin/api/clients/{id}/payload']) {
        assert.ok(doc.paths[p], p);
      }
    });
  });
});

describe('secrets stay out of the logs', () => {
  test('issuing and rotating a signing secret logs neither', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
    const h = await startHarness({ role: 'api', logLevel: 'trace' });
    try {
      const logged = createLogger('trace', sink);
      // A second app on the same store, logging everything to the sink.
      const { buildApp } = await import('../src/api/app.ts');
      const { TargetPolicy } = await import('../src/domain/ssrf.ts');
      const { Metrics } = await import('../src/metrics.ts');
      const app = buildApp({
        store: h.store, policy: new TargetPolicy({ allowedCidrs: [], httpsOnly: false }), logger: logged, records: 'strict', baseUrl: null,
        adminToken: ADMIN_TOKEN, notifyDelayMs: 0, maxWebhooksPerClient: 10, metrics: new Metrics(h.store), worker: { expected: false, running: () => false },
      });
      await app.ready();
      const secrets: string[] = [];
      for (const payload of [undefined, { rotate: true }]) {
        const res = await app.inject({ method: 'POST', url: `/admin/api/clients/${h.clientId}/signing-secret`, headers: adminHeaders, ...(payload && { payload: JSON.stringify(payload) }) });
        assert.equal(res.statusCode, 201);
        secrets.push(res.json().secret);
      }
      await app.close();
      assert.ok(lines.length > 0, 'requests were logged');
      for (const s of secrets) assert.ok(!lines.join('').includes(s.slice(6)), 'a secret was logged');
    } finally {
      await h.close();
    }
  });
});

describe('abuse limits', () => {
  test('per-client API rate limit: 429 / 9051 with Retry-After; other clients unaffected', async () => {
    const h = await startHarness({ role: 'api', rateLimitPerMinute: 3 });
    try {
      await h.store.addRecords([A], Date.now());
      const c = await createApiClient(h.store, { name: 'Other', premium: true });
      const otherToken = await getToken(h.svc, c.client.id, c.secret);
      const get = (token: string) => h.svc.app.inject({ method: 'GET', url: '/webhooks', headers: { authorization: `Bearer ${token}` } });
      assert.equal((await h.svc.app.inject({ method: 'PUT', url: webhookPath(A, 'https://example.org/rl'), headers: { authorization: `Bearer ${h.token}` } })).statusCode, 201);
      assert.equal((await get(h.token)).statusCode, 200);
      assert.equal((await get(h.token)).statusCode, 200);
      const limited = await get(h.token);
      assert.equal(limited.statusCode, 429);
      assert.equal(limited.json()['error-code'], 9051);
      assert.equal(limited.json()['response-code'], 429);
      assert.equal(limited.headers['retry-after'], '20', 'one request every 60/3 s');
      const del = await h.svc.app.inject({ method: 'DELETE', url: webhookPath(A, 'https://example.org/rl'), headers: { authorization: `Bearer ${h.token}` } });
      assert.equal(del.statusCode, 429, 'every ORCID API endpoint counts');
      assert.ok(await h.store.findWebhook(h.clientId, A, 'https://example.org/rl'), 'a limited request does nothing');
      assert.equal((await get(otherToken)).statusCode, 200, 'the limit is per client');
      assert.equal((await h.svc.app.inject({ method: 'GET', url: '/admin/api/clients/x/delivery', headers: adminHeaders })).statusCode, 404, 'the admin API is not limited');
    } finally {
      await h.close();
    }
  });

  test('per-IP limit on /oauth/token: 429 with Retry-After in OAuth form', async () => {
    const h = await startHarness({ role: 'api', tokenRateLimitPerMinute: 2 }); // the harness takes one token
    try {
      const c = await createApiClient(h.store, { name: 'Tokens', premium: true });
      const lastAllowed = Date.now();
      await getToken(h.svc, c.client.id, c.secret);
      const res = await h.svc.app.inject({
        method: 'POST', url: '/oauth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ client_id: c.client.id, client_secret: c.secret, grant_type: 'client_credentials', scope: '/webhook' }).toString(),
      });
      assert.equal(res.statusCode, 429);
      assert.equal(res.json().error, 'slow_down');
      // One request every 30 s: the wait is 30 s less the time since the last allowed request (a loaded machine takes seconds).
      const wait = Number(/retry after (\d+) s/.exec(res.json().error_description)?.[1]);
      assert.ok(wait <= 30 && wait >= 30 - Math.ceil((Date.now() - lastAllowed) / 1000), `retry after ${wait} s`);
      assert.equal(res.headers['retry-after'], String(wait));
      const fromElsewhere = await h.svc.app.inject({
        method: 'POST', url: '/oauth/token', remoteAddress: '192.0.2.7', headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ client_id: c.client.id, client_secret: c.secret, grant_type: 'client_credentials', scope: '/webhook' }).toString(),
      });
      assert.equal(fromElsewhere.statusCode, 200, 'per IP address');
    } finally {
      await h.close();
    }
  });

  test('per-client cap on webhooks: 403 / 9050 beyond it; existing ones still answer 204; per client', async () => {
    const h = await startHarness({ role: 'api', maxWebhooksPerClient: 2 });
    try {
      await h.store.addRecords([A, B], Date.now());
      const put = (url: string, token = h.token) => h.svc.app.inject({ method: 'PUT', url: webhookPath(A, url), headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
      assert.equal((await put('https://cap.example/1')).statusCode, 201);
      assert.equal((await put('https://cap.example/2')).statusCode, 201);
      const over = await put('https://cap.example/3');
      assert.equal(over.statusCode, 403);
      assert.equal(over.json()['error-code'], 9050);
      assert.match(over.json()['developer-message'], /maximum of 2 webhooks/);
      assert.equal((await put('https://cap.example/1')).statusCode, 204);
      const c = await createApiClient(h.store, { name: 'Other', premium: true });
      assert.equal((await put('https://cap.example/3', await getToken(h.svc, c.client.id, c.secret))).statusCode, 201);
    } finally {
      await h.close();
    }
  });
});

describe('RateLimiter', () => {
  test('a bucket of a minute\'s allowance, refilled continuously; the wait until the next request', () => {
    let now = 0;
    const rl = new RateLimiter(60, () => now);
    for (let i = 0; i < 60; i++) assert.equal(rl.take('a'), null);
    assert.equal(rl.take('a'), 1);
    assert.equal(rl.take('b'), null, 'per key');
    now += 999;
    assert.equal(rl.take('a'), 1);
    now += 1;
    assert.equal(rl.take('a'), null, 'one request a second comes back');
    assert.equal(rl.take('a'), 1);
    now += 3_600_000;
    for (let i = 0; i < 60; i++) assert.equal(rl.take('a'), null, 'refilled, but to the minute\'s allowance only');
    assert.equal(rl.take('a'), 1);
  });

  test('Retry-After rounds up to whole seconds; 0 means unlimited', () => {
    let now = 0;
    const rl = new RateLimiter(7, () => now);
    for (let i = 0; i < 7; i++) rl.take('k');
    assert.equal(rl.take('k'), 9, '60/7 = 8.6 s');
    now += 8600;
    assert.equal(rl.take('k'), null);
    const unlimited = new RateLimiter(0);
    for (let i = 0; i < 10_000; i++) assert.equal(unlimited.take('k'), null);
  });
});
