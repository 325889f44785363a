import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { buildApp } from '../src/api/app.ts';
import { TargetPolicy } from '../src/domain/ssrf.ts';
import { createLogger, redactUrl, redactUserinfo } from '../src/logger.ts';
import { ADMIN_TOKEN, SEED_ORCID, startHarness, type Harness } from './helpers/harness.ts';

const SECRET = 's3cr3tK3y';
const cb = `https://example.org/hook?key=${SECRET}&x=1`;
const NEAR_MISSES = [
  `/${SEED_ORCID}/webhook/${encodeURIComponent(cb)}`,
  `/${SEED_ORCID}/Webhook/${encodeURIComponent(cb)}`,
  `/${SEED_ORCID}/WEBHOOK/${encodeURIComponent(cb)}`,
  `/${SEED_ORCID}/webhook%2F${encodeURIComponent(cb)}`,
  `/${SEED_ORCID}/webhooks/${encodeURIComponent(cb)}`,
  `/${SEED_ORCID}/webhook/https://example.org/${SECRET}/x?token=${SECRET}`,
  `/${SEED_ORCID}/webhooks/https://example.org/hook?key=${SECRET}`,
  `/${SEED_ORCID}/${SECRET}`,
  `/0000-0002-7465-216X/webhook/${SECRET}`,
  `/not-an-id/${SECRET}/more`,
  `/webhooks?cursor=${SECRET}`,
];

/** A second app on the harness's store, logging at info to `lines`. */
function loggingApp(h: Harness, records: 'open' | 'strict' = 'strict') {
  const lines: string[] = [];
  const app = buildApp({
    store: h.store, policy: new TargetPolicy({}),
    logger: createLogger('info', new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done(); } })), records, baseUrl: null,
    adminToken: ADMIN_TOKEN, notifyDelayMs: 0, maxWebhooksPerClient: 100, metrics: h.svc.metrics, worker: { expected: false, running: () => false },
  });
  return { app, lines };
}

describe('redaction by rule', () => {
  test('any path segment after the iD and every query value are redacted', () => {
    for (const url of NEAR_MISSES) {
      const r = redactUrl(url);
      assert.ok(!r.includes(SECRET), `${url} → ${r}`);
      assert.ok(!r.includes('example.org'), `${url} → ${r}`);
    }
    assert.equal(redactUrl(`/${SEED_ORCID}/Webhook/${encodeURIComponent(cb)}`), `/${SEED_ORCID}/Webhook/[redacted]`);
    assert.equal(redactUrl(`/${SEED_ORCID}/webhook%2F${encodeURIComponent(cb)}`), `/${SEED_ORCID}/[redacted]`);
    assert.equal(redactUrl('/admin/webhooks?state=failing'), '/admin/webhooks?state=[redacted]');
    assert.equal(redactUrl('/health'), '/health');
  });

  test('userinfo is redacted up to the last @, a password containing @ included', () => {
    for (const url of [`postgres://app:p@ss@word${SECRET}@db.internal:5432/x`, `postgresql://app:${SECRET}@db/x`, `postgres://${SECRET}@db/x`]) {
      const r = redactUserinfo(`connect to ${url} failed`);
      assert.ok(!r.includes(SECRET) && !r.includes('ss@word'), r);
      assert.match(r, /postgres(ql)?:\/\/\[redacted\]@db/);
    }
  });

  test('secret fields are redacted at the top of a log object and one level down', () => {
    const lines: string[] = [];
    const log = createLogger('info', new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done(); } }));
    log.info({ token: SECRET, client: { id: 'APP-1', secret: SECRET, signingSecret: SECRET }, headers: { authorization: `Bearer ${SECRET}` }, adminToken: SECRET, kept: 'visible' }, 'x');
    const entry = JSON.parse(lines[0]!);
    assert.ok(!lines[0]!.includes(SECRET), lines[0]);
    assert.equal(entry.token, '[redacted]');
    assert.deepEqual(entry.client, { id: 'APP-1', secret: '[redacted]', signingSecret: '[redacted]' });
    assert.equal(entry.headers.authorization, '[redacted]');
    assert.equal(entry.kept, 'visible');
  });

  test('one log line per request, with its method, redacted path, status and time', async () => {
    const h = await startHarness();
    try {
      const { app, lines } = loggingApp(h, 'open');
      const put = await app.inject({ method: 'PUT', url: `/${SEED_ORCID}/webhook/${encodeURIComponent(cb)}`, headers: { authorization: `Bearer ${h.token}` } });
      assert.equal(put.statusCode, 201, put.body);
      await app.inject({ method: 'GET', url: '/health' });
      await app.inject({ method: 'GET', url: '/no-such-route' });
      await app.close();
      const requests = lines.map((l) => JSON.parse(l)).filter((l) => l.reqId);
      assert.equal(requests.length, 3, lines.join(''));
      assert.deepEqual(requests.map((l) => [l.req.method, l.req.url, l.res.statusCode, l.msg]), [
        ['PUT', `/${SEED_ORCID}/webhook/[redacted]`, 201, 'request completed'],
        ['GET', '/health', 200, 'request completed'],
        ['GET', '/no-such-route', 404, 'request completed'],
      ]);
      assert.ok(requests.every((l) => typeof l.responseTime === 'number'));
    } finally {
      await h.close();
    }
  });

  test('logs and error messages of near-miss paths carry no part of the callback', async () => {
    const h = await startHarness();
    try {
      const { app, lines } = loggingApp(h);
      for (const url of NEAR_MISSES) {
        for (const method of ['PUT', 'DELETE', 'GET', 'POST'] as const) {
          const res = await app.inject({ method, url, headers: { authorization: `Bearer ${h.token}`, accept: 'application/json' } });
          assert.ok(res.statusCode >= 200 && res.statusCode < 500, `${method} ${url}: ${res.statusCode}`);
          if (res.statusCode === 404 && res.json()['error-code'] === 9053) assert.ok(!res.body.includes(SECRET), `${method} ${url}: ${res.body}`);
        }
      }
      app.log.error({ err: new Error(`connect ECONNREFUSED postgres://u:p@ss${SECRET}@db/x`) }, `pool error on postgres://u:${SECRET}@db/x`);
      await app.close();
      const log = lines.join('');
      assert.ok(log.length > 0);
      assert.ok(!log.includes(SECRET), log.split('\n').filter((l) => l.includes(SECRET)).join('\n'));
      assert.ok(!log.includes('example.org'));
    } finally {
      await h.close();
    }
  });

  // Found by sending the usual integrator slip (a base URL ending in `/` joined with a path
  // starting with one) and an absolute-form request line: both were logged with the callback in clear.
  const SLIPS = [
    `//${SEED_ORCID}/webhook/${encodeURIComponent(cb)}`,
    `///${SEED_ORCID}/webhook/${encodeURIComponent(cb)}`,
    `http://api.example.net/${SEED_ORCID}/webhook/${encodeURIComponent(cb)}`,
    `HTTP://api.example.net//${SEED_ORCID}/webhook/${encodeURIComponent(cb)}`,
    `/webhooks/${SEED_ORCID}/webhook/${encodeURIComponent(cb)}`,
    `/admin/api/records/${SEED_ORCID}/webhook/${encodeURIComponent(cb)}`,
    `/oauth/${encodeURIComponent(cb)}`,
  ];

  test('a doubled slash, an absolute-form target or a callback under one of our own paths is redacted too', async () => {
    for (const url of SLIPS) {
      const r = redactUrl(url);
      assert.ok(!r.includes(SECRET) && !r.includes('example.org'), `${url} → ${r}`);
    }
    assert.equal(redactUrl(`http://api.example.net/${SEED_ORCID}/webhook/x?key=${SECRET}`), `http://api.example.net/${SEED_ORCID}/webhook/[redacted]?key=[redacted]`);
    assert.equal(redactUrl('http://api.example.net'), 'http://api.example.net');
    assert.equal(redactUrl('*'), '*');
    assert.equal(redactUrl('/'), '/');
    assert.equal(redactUrl(`/admin/api/records/${SEED_ORCID}`), `/admin/api/records/${SEED_ORCID}`);
    assert.equal(redactUrl('/admin/assets/vendor/uplot/uPlot.min.css'), '/admin/assets/vendor/uplot/uPlot.min.css');

    const h = await startHarness();
    try {
      const { app, lines } = loggingApp(h);
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address() as AddressInfo;
      for (const url of SLIPS) {
        const head = await rawRequest(port, `PUT ${url} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${h.token}\r\nAccept: application/json\r\nConnection: close\r\n\r\n`);
        assert.match(head, /^HTTP\/1\.1 4\d\d /, `${url}: ${head}`);
        assert.ok(!head.includes(SECRET), `${url}: ${head}`);
      }
      await app.close();
      const log = lines.join('');
      assert.ok(log.length > 0);
      assert.ok(!log.includes(SECRET), log.split('\n').filter((l) => l.includes(SECRET)).join('\n'));
    } finally {
      await h.close();
    }
  });
});

/** Sends one raw request (any request target, as written; it asks for Connection: close) and returns the whole answer. */
function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    let out = '';
    socket.on('data', (d) => { out += String(d); }).on('close', () => resolve(out)).on('error', reject);
  });
}
