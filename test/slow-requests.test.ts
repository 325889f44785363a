import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ADMIN_TOKEN, SEED_ORCID, startHarness, type Harness } from './helpers/harness.ts';

/** Opens a connection and collects what the server sends until it closes it. */
function open(url: string): Promise<{ socket: Socket; received: () => string; closed: Promise<number> }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let data = '';
    const started = Date.now();
    const closed = new Promise<number>((res) => socket.on('close', () => res(Date.now() - started)));
    socket.on('data', (d) => { data += String(d); });
    socket.on('error', () => undefined);
    socket.once('connect', () => resolve({ socket, received: () => data, closed }));
    socket.once('error', reject);
  });
}

/** The response-code and error-code of the ORCID error body in a raw HTTP response. */
function orcidError(raw: string): { 'response-code': unknown; 'error-code': unknown } {
  const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
  assert.match(String(body['developer-message']), /Full validation error: /);
  assert.equal(typeof body['user-message'], 'string');
  return { 'response-code': body['response-code'], 'error-code': body['error-code'] };
}

/** Resolves with the close time, or null if still open after ms. */
const closedWithin = (closed: Promise<number>, ms: number) =>
  Promise.race([closed, new Promise<null>((r) => setTimeout(() => r(null), ms).unref())]);

describe('slow requests and connections per address', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ httpRequestTimeoutMs: 1500, httpHeadersTimeoutMs: 800, maxConnectionsPerIp: 6 }, { listen: true });
    await h.store.addRecords([SEED_ORCID], Date.now());
  });
  after(() => h.close());

  test('a connection dripping a body is answered 408 and closed when the request timeout runs out', async () => {
    const c = await open(h.svc.url);
    // A route that takes a body (ORCID's PUT refuses one before reading it): the bulk change list.
    c.socket.write(`POST /admin/api/changes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"changes":[`);
    const drip = setInterval(() => { if (!c.socket.destroyed) c.socket.write(' '); }, 100);
    try {
      const ms = await closedWithin(c.closed, 8000);
      assert.notEqual(ms, null, 'the dripping connection was still open after 8 s');
      assert.ok(ms! < 4000, `closed after ${ms} ms`);
      assert.match(c.received(), /^HTTP\/1\.1 408/);
      assert.deepEqual(orcidError(c.received()), { 'response-code': 408, 'error-code': 9052 });
    } finally {
      clearInterval(drip);
      c.socket.destroy();
    }
  });

  test('a connection dripping its headers is closed when the headers timeout runs out', async () => {
    const c = await open(h.svc.url);
    c.socket.write('GET /health HTTP/1.1\r\n');
    const drip = setInterval(() => { if (!c.socket.destroyed) c.socket.write('X-A: b\r\n'); }, 100);
    try {
      const ms = await closedWithin(c.closed, 8000);
      assert.notEqual(ms, null, 'the dripping connection was still open after 8 s');
      assert.ok(ms! < 3000, `closed after ${ms} ms`);
    } finally {
      clearInterval(drip);
      c.socket.destroy();
    }
  });

  test('requests the HTTP parser refuses are answered in ORCID\'s error format, and the connection closed', async () => {
    const cases: Array<[request: string, status: number]> = [
      ['FOO / HTTP/1.1\r\nHost: x\r\n\r\n', 400],
      [`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
      ['GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n', 400],
      ['GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n', 400],
    ];
    for (const [request, status] of cases) {
      const c = await open(h.svc.url);
      c.socket.write(request);
      assert.notEqual(await closedWithin(c.closed, 3000), null, `${JSON.stringify(request.slice(0, 40))}: still open`);
      assert.match(c.received(), new RegExp(`^HTTP/1\\.1 ${status} `));
      assert.match(c.received(), /\r\ncontent-type: application\/json;charset=UTF-8\r\n/i);
      assert.deepEqual(orcidError(c.received()), { 'response-code': status, 'error-code': 9052 });
    }
    // The server goes on serving.
    assert.equal((await fetch(`${h.svc.url}/health`)).status, 200);
  });

  test('connections beyond the cap from one address are refused with 503; others are served', async () => {
    const held = await Promise.all(Array.from({ length: 6 }, () => open(h.svc.url)));
    try {
      const extra = await open(h.svc.url);
      extra.socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.notEqual(await closedWithin(extra.closed, 3000), null);
      assert.match(extra.received(), /^HTTP\/1\.1 503/);
      assert.match(extra.received(), /too_many_connections/);
      // One held connection still works, and a freed slot is reusable.
      held[0]!.socket.write('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      await closedWithin(held[0]!.closed, 3000);
      assert.match(held[0]!.received(), /^HTTP\/1\.1 200/);
      await new Promise((r) => setTimeout(r, 50));
      const res = await fetch(`${h.svc.url}/health`);
      assert.equal(res.status, 200);
    } finally {
      for (const c of held) c.socket.destroy();
    }
  });
});
