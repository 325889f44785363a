import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { buildApp } from '../src/api/app.ts';
import { testConfig } from '../src/config.ts';
import { parseRetrySchedule } from '../src/domain/retry-schedule.ts';
import { TargetPolicy } from '../src/domain/ssrf.ts';
import { createLogger } from '../src/logger.ts';
import { Metrics } from '../src/metrics.ts';
import { createApiClient } from '../src/ops/clients.ts';
import { startService } from '../src/service.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import { ADMIN_TOKEN, getToken, startHarness, webhookPath, type Harness } from './helpers/harness.ts';
import { eventually, startReceiver, type Receiver } from './helpers/receiver.ts';

const ORCID = '0000-0002-1825-0097';

describe('health, readiness, metrics, logs', () => {
  let h: Harness;
  let rx: Receiver;
  before(async () => {
    h = await startHarness({ allowedTargets: ['127.0.0.0/8'], retrySchedule: parseRetrySchedule('100ms') });
    rx = await startReceiver();
  });
  after(async () => {
    await rx.close();
    await h.close();
  });

  test('/health answers while the process lives', async () => {
    const res = await h.svc.app.inject({ url: '/health' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().status, 'ok');
  });

  test('/ready names the failing check with 503', async () => {
    const ok = await h.svc.app.inject({ url: '/ready' });
    assert.equal(ok.statusCode, 200);
    assert.deepEqual(ok.json().failing, []);

    const store = new SqliteStore(':memory:');
    const cfg = testConfig({ db: 'sqlite::memory:', adminToken: ADMIN_TOKEN, logLevel: 'silent', role: 'api' });
    const svc = await startService(cfg, { store, listen: false, logger: createLogger('silent') });
    try {
      store.db.prepare("INSERT INTO schema_migrations (name, applied_at) VALUES ('999_future', 0)").run();
      store.db.prepare("DELETE FROM schema_migrations WHERE name = '001_init'").run();
      const pending = await svc.app.inject({ url: '/ready', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      assert.equal(pending.statusCode, 503);
      assert.deepEqual(pending.json().failing, ['migrations']);
      assert.equal(pending.json().checks.worker, undefined, 'an api-only node has no worker check');
      store.db.close();
      const down = await svc.app.inject({ url: '/ready', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      assert.equal(down.statusCode, 503);
      assert.ok(down.json().failing.includes('store'));
      assert.match(down.json().checks.store, /unreachable/);
      // Without the admin token: the status and the names of the failing checks, not the database's error text.
      const anonymous = await svc.app.inject({ url: '/ready' });
      assert.equal(anonymous.statusCode, 503);
      assert.deepEqual(anonymous.json(), { status: 'not ready', failing: down.json().failing });
    } finally {
      await svc.app.close();
    }
  });

  test('/ready fails when the worker of a delivering node has stopped', async () => {
    await h.svc.worker!.stop(100);
    try {
      const res = await h.svc.app.inject({ url: '/ready' });
      assert.equal(res.statusCode, 503);
      assert.deepEqual(res.json().failing, ['worker']);
    } finally {
      await h.svc.worker!.start();
    }
  });

  test('/metrics counts registrations, callbacks by outcome and webhooks by state, with bounded labels', async () => {
    await h.store.addRecords([ORCID], Date.now() - 60_000);
    rx.behave((_r, res, n) => { res.writeHead(n === 1 ? 500 : 200).end(); });
    const put = await h.svc.app.inject({ method: 'PUT', url: webhookPath(ORCID, rx.url('/m')), headers: { authorization: `Bearer ${h.token}` } });
    assert.equal(put.statusCode, 201);
    await h.svc.app.inject({ method: 'PUT', url: `/admin/api/records/${ORCID}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    await rx.waitFor(2, 3000);
    const text = await eventually(async () => {
      const t = (await h.svc.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).body;
      return /orcid_webhooks_callbacks_total\{outcome="success"\} 1/.test(t) ? t : null;
    }, 3000, 'success counted');
    assert.match(text, /orcid_webhooks_registrations_total\{outcome="created"\} 1/);
    assert.match(text, /orcid_webhooks_callbacks_total\{outcome="http_error"\} 1/);
    assert.match(text, /orcid_webhooks_attempt_duration_seconds_count 2/);
    assert.match(text, /orcid_webhooks_change_to_callback_seconds_count 1/);
    assert.match(text, /orcid_webhooks_webhooks\{state="enabled"\} 1/);
    assert.match(text, /orcid_webhooks_record_changes_total\{result="changed"\} 1/);
    assert.doesNotMatch(text, /0000-0002-1825-0097|127\.0\.0\.1/, 'no iD or URL labels');
    for (const authorization of [undefined, 'Bearer wrong-token-0123456789', `Bearer ${h.token}`]) {
      const res = await h.svc.app.inject({ url: '/metrics', headers: authorization ? { authorization } : {} });
      assert.equal(res.statusCode, 401, 'metrics need the admin token');
      assert.equal(res.json().error, 'invalid_token');
      assert.doesNotMatch(res.body, /orcid_webhooks_/);
    }
    assert.equal((await h.svc.app.inject({ url: '/health' })).statusCode, 200, '/health stays open');
  });

  test('/openapi.json covers the ORCID API, admin and operations; /docs renders it offline', async () => {
    const doc = (await h.svc.app.inject({ url: '/openapi.json' })).json();
    assert.equal(doc.openapi, '3.1.0');
    for (const p of ['/oauth/token', '/{orcid}/webhook/{callback}', '/admin/api/records/{orcid}', '/admin/api/changes', '/health', '/ready', '/metrics']) {
      assert.ok(doc.paths[p], `documents ${p}`);
    }
    assert.ok(doc.paths['/{orcid}/webhook/{callback}'].put.responses['201']);
    assert.equal(doc.paths['/admin/api/changes'].post.requestBody.content['application/json'].schema.type, 'object');
    const page = await h.svc.app.inject({ url: '/docs' });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /text\/html/);
    assert.doesNotMatch(page.body, /<script src=|<link [^>]*href="http/, 'no external assets');
  });
  test('/openapi.json is generated from the routes: each operation once, with its operationId, shared error schemas, Location, XML errors', async () => {
    // A second app on the same store, to see every route as it is registered.
    const app = buildApp({
      store: h.store, policy: new TargetPolicy({}), logger: createLogger('silent'), records: 'strict', baseUrl: null,
      adminToken: ADMIN_TOKEN, notifyDelayMs: 0, maxWebhooksPerClient: 10, metrics: new Metrics(h.store), worker: { expected: false, running: () => false },
    });
    const routes: { method: string; url: string; hidden: boolean }[] = [];
    app.addHook('onRoute', function collect(r) {
      for (const method of [r.method].flat()) routes.push({ method, url: r.url ?? '', hidden: (r.schema as { hide?: boolean } | undefined)?.hide === true });
    });
    try {
      await app.ready();
      type Op = { operationId?: string; responses: Record<string, { headers?: Record<string, unknown>; content?: Record<string, { schema: { $ref?: string } }> }> };
      const doc = (await app.inject({ url: '/openapi.json' })).json() as { paths: Record<string, Record<string, Op>>; components: { schemas: Record<string, { properties: Record<string, unknown> }> } };
      const ops = Object.entries(doc.paths).flatMap(([path, byMethod]) => Object.entries(byMethod).map(([method, op]) => ({ key: `${method.toUpperCase()} ${path}`, op })));

      // Every route but HEAD (Fastify's, from GET) and the internal ones, once; nothing else.
      const asPath = (url: string) => url.replace(/:(\w+)/g, '{$1}').replace(/\*$/, '{callback}');
      const expected = routes.filter((r) => !r.hidden && r.method !== 'HEAD').map((r) => `${r.method} ${asPath(r.url)}`);
      assert.equal(new Set(expected).size, expected.length, 'each operation is registered once');
      assert.deepEqual(ops.map((o) => o.key).sort(), [...expected].sort());
      const internal = routes.filter((r) => r.hidden && r.method !== 'HEAD').map((r) => `${r.method} ${r.url}`);
      for (const r of ['GET /openapi.json', 'GET /docs', 'GET /admin', 'GET /admin/assets/*', 'PATCH /:orcid/webhook/*']) assert.ok(internal.includes(r), `${r} is internal`);
      assert.ok(ops.length >= 27, `${ops.length} operations`);

      const ids = ops.map((o) => o.op.operationId);
      assert.ok(ids.every((id) => typeof id === 'string' && id !== ''), 'every operation has an operationId');
      assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');

      // The error schemas are written once, under components, and referenced by every error answer.
      assert.ok(doc.components.schemas.OrcidError?.properties['developer-message']);
      assert.ok(doc.components.schemas.OAuthError?.properties.error_description);
      assert.doesNotMatch(JSON.stringify(doc.paths), /developer-message|error_description/, 'no error schema inlined');
      for (const { key, op } of ops) {
        for (const [code, r] of Object.entries(op.responses)) {
          if (Number(code) < 400 || code === '503') continue;
          for (const [type, c] of Object.entries(r.content ?? {})) {
            assert.match(c.schema.$ref ?? '', /^#\/components\/schemas\/(OrcidError|OAuthError)$/, `${key} ${code} ${type}`);
          }
        }
      }

      const put = doc.paths['/{orcid}/webhook/{callback}']!.put!;
      assert.ok(put.responses['201']!.headers?.location, 'the 201 declares its Location');
      // ORCID's errors in the negotiated media type: XML (ORCID's own and plain) beside JSON.
      assert.deepEqual(Object.keys(put.responses['404']!.content!).sort(), ['application/json', 'application/vnd.orcid+xml', 'application/xml']);
    } finally {
      await app.close();
    }
  });
});

describe('structured logs', () => {
  test('JSON lines with request ids, one line per delivery outcome, never a secret or token', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _enc, cb) { lines.push(...String(chunk).split('\n').filter(Boolean)); cb(); } });
    const rx = await startReceiver();
    const cfg = testConfig({ db: 'sqlite::memory:', adminToken: ADMIN_TOKEN, logLevel: 'info', allowedTargets: ['127.0.0.0/8'] });
    const svc = await startService(cfg, { store: new SqliteStore(':memory:'), listen: false, logger: createLogger('info', sink) });
    try {
      const { client, secret } = await createApiClient(svc.store, { name: 'Logs', premium: true });
      const token = await getToken(svc, client.id, secret);
      await svc.store.addRecords([ORCID], Date.now() - 60_000);
      const callback = `${rx.url('/secret-path')}?token=hunter2`;
      await svc.app.inject({ method: 'PUT', url: webhookPath(ORCID, callback), headers: { authorization: `Bearer ${token}`, 'x-request-id': 'req-abc-123' } });
      await svc.app.inject({ method: 'PUT', url: `/admin/api/records/${ORCID}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      await rx.waitFor(1);
      await eventually(() => lines.some((l) => JSON.parse(l).msg === 'delivery'), 2000, 'delivery log line');
      const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(parsed.some((l) => l.reqId === 'req-abc-123'), 'request id from the header is logged');
      const deliveries = parsed.filter((l) => l.msg === 'delivery');
      assert.equal(deliveries.length, 1);
      assert.equal(deliveries[0]!.result, 'success');
      assert.equal(deliveries[0]!.status, 200);
      const all = lines.join('\n');
      for (const s of [token, secret, ADMIN_TOKEN, 'hunter2', 'secret-path']) assert.ok(!all.includes(s), `"${s}" must never be logged`);
    } finally {
      await svc.close();
      await rx.close();
    }
  });
});

describe('database outages', () => {
  test('are told apart from bugs: 503 / 9057 with Retry-After, not 500', async () => {
    const { isDatabaseUnavailable } = await import('../src/store/database-errors.ts');
    assert.equal(isDatabaseUnavailable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })), true);
    assert.equal(isDatabaseUnavailable(new Error('Connection terminated unexpectedly')), true);
    assert.equal(isDatabaseUnavailable(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })), true);
    assert.equal(isDatabaseUnavailable(new TypeError('x is undefined')), false);

    const store = new SqliteStore(':memory:');
    const cfg = testConfig({ db: 'sqlite::memory:', adminToken: ADMIN_TOKEN, logLevel: 'silent', role: 'api' });
    const svc = await startService(cfg, { store, listen: false, logger: createLogger('silent') });
    try {
      store.applyChanges = async () => { throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }); };
      const res = await svc.app.inject({ method: 'PUT', url: '/admin/api/records/0000-0002-1825-0097', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      // The database refused the touch: nothing was written, the client may retry safely.
      assert.equal(res.statusCode, 503);
      assert.equal(res.json()['error-code'], 9057);
      assert.equal(res.headers['retry-after'], '5');
    } finally {
      await svc.close();
    }
  });
});
