import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import dns from 'node:dns';
import { syncBuiltinESMExports } from 'node:module';
import { createSender } from '../src/delivery/sender.ts';
import { TargetPolicy } from '../src/domain/ssrf.ts';

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

interface TestServer {
  url: string;
  port: number;
  received: Received[];
  connections: number;
  close(): Promise<void>;
}

/** A receiver on 127.0.0.1 that records every request, then answers with `handler`. */
async function startServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
      handler(req, res);
    });
  });
  const state = { connections: 0 };
  server.on('connection', () => state.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    get connections() {
      return state.connections;
    },
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const loopbackAllowed = new TargetPolicy({ allowedCidrs: ['127.0.0.0/8'] });
const options = { policy: loopbackAllowed, connectTimeoutMs: 1000, requestTimeoutMs: 2000, userAgent: 'orcid-webhooks-test/1.0' };

describe('sender', () => {
  it('POSTs an empty body with Content-Length: 0, the user agent and the given headers', async () => {
    const server = await startServer((_req, res) => res.end('thanks'));
    const sender = createSender(options);
    try {
      const result = await sender.send({ url: `${server.url}/0000-0002-7465-2162/updated?x=1`, headers: { 'X-Custom': 'abc', 'webhook-id': 'msg_1' }, body: '' });
      assert.equal(result.kind, 'response');
      assert.ok(result.kind === 'response');
      assert.equal(result.status, 200);
      assert.equal(result.bodySnippet, 'thanks');
      assert.equal(result.retryAfterMs, null);
      assert.ok(result.durationMs > 0 && result.durationMs < 2000);

      assert.equal(server.received.length, 1);
      const got = server.received[0] as Received;
      assert.equal(got.method, 'POST');
      assert.equal(got.url, '/0000-0002-7465-2162/updated?x=1');
      assert.equal(got.body, '');
      assert.equal(got.headers['content-length'], '0');
      assert.equal(got.headers['user-agent'], 'orcid-webhooks-test/1.0');
      assert.equal(got.headers['x-custom'], 'abc');
      assert.equal(got.headers['webhook-id'], 'msg_1');
      assert.equal(got.headers['transfer-encoding'], undefined);
    } finally {
      await sender.close();
      await server.close();
    }
  });

  it('calls the path and query exactly as registered: no dot segments resolved, nothing re-encoded, nothing dropped', async () => {
    const server = await startServer((_req, res) => res.end());
    const sender = createSender(options);
    try {
      // java.net.URI accepts each of these as it is (ORCID stores and calls them so); WHATWG URL
      // parsing resolved '..' and '%2e%2e' (calling another path), encoded ' in the query and dropped
      // an empty query. The fragment is never sent; non-ASCII goes as UTF-8 escapes.
      const cases: Array<[string, string]> = [
        ["/cb/a/../b?x='y'&z=%41", "/cb/a/../b?x='y'&z=%41"],
        ['/hooks/%2e%2e/admin', '/hooks/%2e%2e/admin'],
        ['/cb/./x', '/cb/./x'],
        ['/cb?', '/cb?'],
        ['/cb;p=1/x%2Fy?a=b#frag', '/cb;p=1/x%2Fy?a=b'],
        ['/caf\u00e9?q=\u00e9', '/caf%C3%A9?q=%C3%A9'],
        ['?only=query', '/?only=query'],
        ['', '/'],
      ];
      for (const [registered] of cases) {
        const result = await sender.send({ url: `${server.url}${registered}`, headers: {}, body: '' });
        assert.equal(result.kind, 'response', registered);
      }
      assert.deepEqual(server.received.map((r) => r.url), cases.map(([, sent]) => sent));
    } finally {
      await sender.close();
      await server.close();
    }
  });

  it('calls the path of the host it connects to when the URL has an empty authority (http:///host/cb), not a path naming the host', async () => {
    // java.net.URI accepts `http:///host:port/cb` (no authority, path /host:port/cb); WHATWG, which
    // picks the host validated and connected to, reads host:port and the path /cb. The request line
    // must come from the same reading as the host, never /host:port/cb sent to host:port.
    const server = await startServer((_req, res) => res.end());
    const sender = createSender(options);
    try {
      const host = `127.0.0.1:${server.port}`;
      const cases: Array<[string, string]> = [
        [`http:///${host}/cb?x=1`, '/cb?x=1'],
        [`http:////${host}/cb`, '/cb'],
      ];
      for (const [registered] of cases) {
        const result = await sender.send({ url: registered, headers: {}, body: '' });
        assert.equal(result.kind, 'response', registered);
      }
      assert.deepEqual(server.received.map((r) => r.url), cases.map(([, sent]) => sent));
    } finally {
      await sender.close();
      await server.close();
    }
  });

  it('sends a body with its byte length and reuses the connection', async () => {
    const server = await startServer((_req, res) => res.end());
    const sender = createSender(options);
    try {
      const body = JSON.stringify({ orcid: '0000-0002-7465-2162', note: 'ü' });
      for (let i = 0; i < 6; i++) {
        const result = await sender.send({ url: `${server.url}/cb`, headers: { 'content-type': 'application/json' }, body });
        assert.equal(result.kind, 'response');
      }
      assert.equal(server.received.length, 6);
      assert.equal(server.received[0]?.body, body);
      assert.equal(server.received[0]?.headers['content-length'], String(Buffer.byteLength(body)));
      // undici may open a second socket while the first is finishing, but keep-alive must reuse them.
      assert.ok(server.connections <= 2, `${server.connections} connections for 6 requests`);
    } finally {
      await sender.close();
      await server.close();
    }
  });

  it('does not follow redirects', async () => {
    const server = await startServer((req, res) => {
      if (req.url === '/moved') {
        res.writeHead(302, { location: '/elsewhere' }).end();
      } else {
        res.end('followed');
      }
    });
    const sender = createSender(options);
    try {
      const result = await sender.send({ url: `${server.url}/moved`, headers: {}, body: '' });
      assert.ok(result.kind === 'response');
      assert.equal(result.status, 302);
      assert.deepEqual(server.received.map((r) => r.url), ['/moved']);
    } finally {
      await sender.close();
      await server.close();
    }
  });

  it('reads Retry-After as delta-seconds or an HTTP-date', async () => {
    let retryAfter = '7';
    const server = await startServer((_req, res) => res.writeHead(503, { 'retry-after': retryAfter }).end('busy'));
    const sender = createSender(options);
    try {
      const seconds = await sender.send({ url: server.url, headers: {}, body: '' });
      assert.ok(seconds.kind === 'response');
      assert.equal(seconds.status, 503);
      assert.equal(seconds.retryAfterMs, 7000);

      retryAfter = new Date(Date.now() + 60_000).toUTCString();
      const date = await sender.send({ url: server.url, headers: {}, body: '' });
      assert.ok(date.kind === 'response');
      assert.ok(date.retryAfterMs !== null && date.retryAfterMs > 58_000 && date.retryAfterMs <= 60_000, String(date.retryAfterMs));

      retryAfter = 'soon';
      const invalid = await sender.send({ url: server.url, headers: {}, body: '' });
      assert.ok(invalid.kind === 'response');
      assert.equal(invalid.retryAfterMs, null);
    } finally {
      await sender.close();
      await server.close();
    }
  });

  it('times out a server that never answers within requestTimeoutMs', async () => {
    const server = await startServer(() => {});
    const sender = createSender({ ...options, requestTimeoutMs: 300 });
    try {
      const started = performance.now();
      const result = await sender.send({ url: server.url, headers: {}, body: '' });
      const elapsed = performance.now() - started;
      assert.equal(result.kind, 'timeout');
      assert.ok(elapsed >= 290 && elapsed < 800, `took ${elapsed} ms`);
      assert.equal(server.received.length, 1);
    } finally {
      await sender.close();
      await server.close();
    }
  });

  it('times out a server that sends headers then trickles the body forever', async () => {
    const timers: NodeJS.Timeout[] = [];
    const server = await startServer((_req, res) => {
      res.writeHead(200);
      timers.push(setInterval(() => res.write('x'), 50));
    });
    const sender = createSender({ ...options, requestTimeoutMs: 300 });
    try {
      const started = performance.now();
      const result = await sender.send({ url: server.url, headers: {}, body: '' });
      const elapsed = performance.now() - started;
      assert.equal(result.kind, 'timeout');
      assert.ok(elapsed < 800, `took ${elapsed} ms`);
    } finally {
      timers.forEach(clearInterval);
      await sender.close();
      await server.close();
    }
  });

  it('reports a server that drops the connection as a network error', async () => {
    const server = await startServer((req) => req.socket.destroy());
    const sender = createSender(options);
    try {
      const result = await sender.send({ url: server.url, headers: {}, body: '' });
      assert.ok(result.kind === 'network', JSON.stringify(result));
      assert.equal(result.error, 'ECONNRESET');
    } finally {
      await sender.close();
      await server.close();
    }
  });

  it('reports a closed port as ECONNREFUSED', async () => {
    const server = await startServer(() => {});
    const { url } = server;
    await server.close();
    const sender = createSender(options);
    try {
      const result = await sender.send({ url, headers: {}, body: '' });
      assert.deepEqual({ kind: result.kind, error: 'error' in result ? result.error : '' }, { kind: 'network', error: 'ECONNREFUSED' });
    } finally {
      await sender.close();
    }
  });

  it('refuses a literal loopback IP when the policy does not allow it, without connecting', async () => {
    const server = await startServer((_req, res) => res.end());
    const sender = createSender({ ...options, policy: new TargetPolicy({}) });
    try {
      const result = await sender.send({ url: `${server.url}/cb`, headers: {}, body: '' });
      assert.deepEqual({ kind: result.kind, error: 'error' in result ? result.error : '' }, { kind: 'refused', error: '127.0.0.1 is a loopback address' });
      const mapped = await sender.send({ url: `http://[::ffff:127.0.0.1]:${server.port}/cb`, headers: {}, body: '' });
      assert.equal(mapped.kind, 'refused');
      assert.equal(server.connections, 0);
      assert.equal(server.received.length, 0);
    } finally {
      await sender.close();
      await server.close();
    }
  });

  it('refuses a hostname that resolves to loopback, at connect time', async () => {
    const server = await startServer((_req, res) => res.end());
    const sender = createSender({ ...options, policy: new TargetPolicy({}) });
    try {
      const result = await sender.send({ url: `http://localhost:${server.port}/cb`, headers: {}, body: '' });
      assert.ok(result.kind === 'refused', JSON.stringify(result));
      assert.match(result.error, /^localhost resolves to a refused address: (127\.0\.0\.1|::1) is a loopback address$/);
      assert.equal(server.connections, 0);
    } finally {
      await sender.close();
      await server.close();
    }
  });

  it('callbacks to one host share a look-up in progress: a resolver that never answers holds one of libuv\'s threads, not one per callback', async () => {
    const realLookup = dns.lookup;
    const hanging = 'shared.hangs.resolver.test';
    let asked = 0;
    dns.lookup = ((host: string, ...rest: unknown[]) => {
      if (host === hanging) {
        asked++;
        return;
      }
      return (realLookup as (...a: unknown[]) => void)(host, ...rest);
    }) as typeof dns.lookup;
    syncBuiltinESMExports();
    const sender = createSender({ ...options, requestTimeoutMs: 200 });
    try {
      const results = await Promise.all(Array.from({ length: 5 }, (_, i) => sender.send({ url: `http://${hanging}/cb/${i}`, headers: {}, body: '' })));
      assert.deepEqual(results.map((r) => r.kind), ['timeout', 'timeout', 'timeout', 'timeout', 'timeout']);
      assert.equal(asked, 1, 'one look-up for the five callbacks');
    } finally {
      dns.lookup = realLookup;
      syncBuiltinESMExports();
      await sender.destroy();
    }
  });

  it('bounds the name resolution by requestTimeoutMs too: a resolver that never answers is a timeout, not a callback stuck past its lease', async () => {
    // The per-address limit resolves the host before the request (and its deadline) starts.
    const realLookup = dns.lookup;
    const hanging = 'hangs.resolver.test';
    dns.lookup = ((host: string, ...rest: unknown[]) => {
      if (host === hanging) return; // never calls back, like a resolver that does not answer
      return (realLookup as (...a: unknown[]) => void)(host, ...rest);
    }) as typeof dns.lookup;
    syncBuiltinESMExports();
    const sender = createSender({ ...options, requestTimeoutMs: 300 });
    try {
      const started = performance.now();
      let guard: NodeJS.Timeout | undefined;
      const result = await Promise.race([
        sender.send({ url: `http://${hanging}/cb`, headers: {}, body: '' }),
        new Promise<null>((r) => { guard = setTimeout(() => r(null), 3000); }),
      ]);
      clearTimeout(guard);
      const elapsed = performance.now() - started;
      assert.ok(result !== null, 'the callback never ended');
      assert.equal(result.kind, 'timeout', JSON.stringify(result));
      assert.ok(elapsed < 1000, `took ${elapsed} ms`);
    } finally {
      dns.lookup = realLookup;
      syncBuiltinESMExports();
      await sender.destroy();
    }
  });

  it('refuses http when the policy is https-only', async () => {
    const sender = createSender({ ...options, policy: new TargetPolicy({ allowedCidrs: ['127.0.0.0/8'], httpsOnly: true }) });
    try {
      const result = await sender.send({ url: 'http://127.0.0.1:1/cb', headers: {}, body: '' });
      assert.equal(result.kind, 'refused');
    } finally {
      await sender.close();
    }
  });

  it('keeps at most 1024 bytes of an endless response body', async () => {
    let stopped = false;
    const server = await startServer((_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      const chunk = 'y'.repeat(16 * 1024);
      const pump = (): void => {
        while (!stopped && !res.destroyed && res.write(chunk));
        if (!stopped && !res.destroyed) res.once('drain', pump);
      };
      res.on('close', () => (stopped = true));
      pump();
    });
    const sender = createSender(options);
    try {
      const result = await sender.send({ url: server.url, headers: {}, body: '' });
      assert.ok(result.kind === 'response', JSON.stringify(result));
      assert.equal(result.status, 500);
      assert.equal(result.bodySnippet, 'y'.repeat(1024));
    } finally {
      stopped = true;
      await sender.close();
      await server.close();
    }
  });

  it('keeps the connection after a moderately large body', async () => {
    const server = await startServer((_req, res) => res.end('z'.repeat(10_000)));
    const sender = createSender(options);
    try {
      for (let i = 0; i < 6; i++) {
        const result = await sender.send({ url: server.url, headers: {}, body: '' });
        assert.ok(result.kind === 'response');
        assert.equal(result.bodySnippet, 'z'.repeat(1024));
      }
      assert.ok(server.connections <= 2, `${server.connections} connections for 6 requests`);
    } finally {
      await sender.close();
      await server.close();
    }
  });
});
