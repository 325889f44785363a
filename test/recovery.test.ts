/*
 * Issue 11 at the worker: a crash costs seconds, not a lease (claims of a dead predecessor are
 * retaken at start; a worker whose heartbeat is stale loses its claims to the others), a worker
 * that cannot write its heartbeat fences itself (aborts its callbacks, claims nothing), and one
 * client cannot take every delivery slot. Against SQLite and PostgreSQL, with a scripted sender.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { after, describe, it } from 'node:test';
import { createServer, type Server } from 'node:http';
import { connect as netConnect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { parseRetrySchedule } from '../src/domain/retry-schedule.ts';
import { TargetPolicy } from '../src/domain/ssrf.ts';
import { createSender, type SendRequest, type SendResult } from '../src/delivery/sender.ts';
import { DeliveryWorker, type WorkerOptions } from '../src/delivery/worker.ts';
import { createLogger } from '../src/logger.ts';
import { PostgresStore } from '../src/store/postgres/postgres-store.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import type { Store } from '../src/store/types.ts';
import { backends } from './helpers/harness.ts';
import { createTestSchema, type TestSchema } from './helpers/postgres.ts';
import { eventually, sleep } from './helpers/receiver.ts';

const ok: SendResult = { kind: 'response', status: 200, durationMs: 1, bodySnippet: '', retryAfterMs: null };
const orcid = (i: number): string => `0000-0003-0001-${String(i).padStart(4, '0')}`;

/** A pid that existed a moment ago and no longer does. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  assert.ok(r.pid);
  return r.pid;
}

/** A scripted sender: records each call; `hang(req)` true keeps the call open until aborted. */
function scriptedSender(hang: (req: SendRequest) => boolean = () => false) {
  const calls: { url: string; at: number }[] = [];
  const aborted: string[] = [];
  let open = 0;
  return {
    calls, aborted,
    get open() { return open; },
    async send(req: SendRequest): Promise<SendResult> {
      calls.push({ url: req.url, at: Date.now() });
      if (!hang(req)) return ok;
      open++;
      await new Promise<void>((resolve) => {
        if (req.signal?.aborted) return resolve();
        req.signal?.addEventListener('abort', () => resolve(), { once: true });
      });
      open--;
      aborted.push(req.url);
      return { kind: 'deferred', durationMs: 0, error: 'aborted' };
    },
  };
}

const schemas: TestSchema[] = [];
after(async () => {
  for (const s of schemas.splice(0)) await s.drop();
});

for (const { backend, skip } of await backends()) {
  describe(`recovery and fairness on ${backend}`, { skip }, () => {
    const stores: Store[] = [];
    const workers: DeliveryWorker[] = [];
    after(async () => {
      for (const w of workers.splice(0)) await w.stop(200);
      for (const s of stores.splice(0)) await s.close();
    });

    async function openStore(): Promise<Store> {
      let s: Store;
      if (backend === 'sqlite') s = new SqliteStore(':memory:');
      else {
        const schema = (await createTestSchema()) ?? assert.fail('PostgreSQL went away');
        schemas.push(schema);
        s = new PostgresStore(schema.url, { poolSize: 4 });
      }
      stores.push(s);
      await s.migrate();
      await s.createClient({ id: 'c1', name: 'One', secretHash: 'h', premium: true, createdAt: 1 });
      await s.createClient({ id: 'c2', name: 'Two', secretHash: 'h', premium: true, createdAt: 1 });
      return s;
    }

    async function owe(s: Store, hooks: { clientId: string; host: string }[]): Promise<void> {
      await s.addRecords(hooks.map((_, i) => orcid(i)), 1000);
      for (const [i, h] of hooks.entries()) {
        await s.registerWebhook({ clientId: h.clientId, orcid: orcid(i), url: `https://${h.host}/${i}`, host: h.host, now: 2000 });
      }
      const now = Date.now();
      await s.applyChanges(hooks.map((_, i) => ({ orcid: orcid(i), modifiedAt: now })), { create: false, now, notifyDelayMs: 0 });
    }

    function worker(s: Store, sender: ReturnType<typeof scriptedSender>, over: Partial<WorkerOptions> = {}): DeliveryWorker {
      const w = new DeliveryWorker({
        store: s, sender, schedule: parseRetrySchedule('100ms'), logger: createLogger('silent'),
        concurrency: 16, perHostConcurrency: 4, leaseMs: 30_000, pollIntervalMs: 100, notifyDelayMs: 0, attemptRetentionMs: 86_400_000,
        retakeAllClaimsAtStart: backend === 'sqlite', ...over,
      });
      workers.push(w);
      return w;
    }

    it('a restarted worker retakes the claims of its crashed predecessor at start, not after the 30 s lease', async () => {
      const s = await openStore();
      await owe(s, [{ clientId: 'c1', host: 'a.example' }, { clientId: 'c1', host: 'b.example' }]);
      // The predecessor: same host, a process that is gone, its heartbeat still fresh.
      const dead = `${hostname()}:${deadPid()}:0000`;
      await s.heartbeat(dead);
      assert.equal((await s.claimDue({ lease: `${dead}#1`, worker: dead, limit: 10, now: Date.now(), leaseMs: 30_000, excludeHosts: [] })).length, 2);
      const sender = scriptedSender();
      const started = Date.now();
      const w = worker(s, sender);
      let reclaimed = 0;
      w.on('reclaimed', (n: number) => { reclaimed += n; });
      await w.start();
      await eventually(() => sender.calls.length === 2, 5000, 'both redelivered');
      const firstMs = Math.min(...sender.calls.map((c) => c.at)) - started;
      assert.ok(firstMs < 2000, `first redelivery ${firstMs} ms after the restart`);
      assert.equal(reclaimed, 2, 'counted as reclaimed');
    });

    // SQLite only: a PostgreSQL worker takes only dead predecessors' claims at start (deadPredecessors).
    if (backend === 'sqlite') it('a second delivering process on one SQLite file leaves the claims of the live one alone at its start', async () => {
      const s = await openStore();
      await owe(s, [{ clientId: 'c1', host: 'a.example' }, { clientId: 'c1', host: 'b.example' }]);
      // The first process: of this host, running, its heartbeat fresh, one callback in flight.
      const running = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)'], { stdio: 'ignore' });
      try {
        const live = `${hostname()}:${running.pid}:0000`;
        await s.heartbeat(live);
        assert.equal((await s.claimDue({ lease: `${live}#1`, worker: live, limit: 1, now: Date.now(), leaseMs: 30_000, excludeHosts: [] })).length, 1);
        const sender = scriptedSender();
        // Every other claim found at start is still taken over (a crashed predecessor's).
        const dead = `${hostname()}:${deadPid()}:0000`;
        await s.heartbeat(dead);
        assert.equal((await s.claimDue({ lease: `${dead}#1`, worker: dead, limit: 1, now: Date.now(), leaseMs: 30_000, excludeHosts: [] })).length, 1);
        await worker(s, sender, { workerStaleMs: 3000 }).start();
        await eventually(() => sender.calls.length >= 1, 3000, 'the dead predecessor\'s claim retaken');
        await sleep(500);
        assert.equal(sender.calls.length, 1, 'the live process\'s claim is not called a second time while its callback may be in flight');
      } finally {
        running.kill('SIGKILL');
      }
    });

    it('a worker whose heartbeat goes stale loses its claims to a live worker within seconds', async () => {
      const s = await openStore();
      await owe(s, [{ clientId: 'c1', host: 'a.example' }]);
      // Another host's worker: its process cannot be checked, only its heartbeat.
      const remote = 'elsewhere.example:4242:beef';
      await s.heartbeat(remote);
      assert.equal((await s.claimDue({ lease: `${remote}#1`, worker: remote, limit: 10, now: Date.now(), leaseMs: 30_000, excludeHosts: [] })).length, 1);
      const sender = scriptedSender();
      const started = Date.now();
      await worker(s, sender, { retakeAllClaimsAtStart: false, workerStaleMs: 1500, heartbeatIntervalMs: 200 }).start();
      await sleep(700);
      assert.equal(sender.calls.length, 0, 'not while the remote heartbeat is fresh');
      await eventually(() => sender.calls.length === 1, 5000, 'taken over');
      const ms = sender.calls[0]!.at - started;
      assert.ok(ms >= 1400 && ms < 3500, `taken over ${ms} ms after the last heartbeat (stale after 1.5 s; lease 30 s)`);
    });

    it('a worker that cannot write its heartbeat aborts its callbacks and claims nothing until it can', async () => {
      const s = await openStore();
      await owe(s, [{ clientId: 'c1', host: 'a.example' }, { clientId: 'c1', host: 'b.example' }]);
      const sender = scriptedSender(() => true);
      const w = worker(s, sender, { workerStaleMs: 1000, heartbeatIntervalMs: 100 });
      await w.start();
      await eventually(() => sender.open === 2, 3000, 'two callbacks in flight');
      const beat = s.heartbeat.bind(s);
      let down = true;
      s.heartbeat = async (id) => {
        if (down) throw new Error('connection lost');
        return beat(id);
      };
      const lostAt = Date.now();
      await eventually(() => sender.aborted.length === 2, 3000, 'aborted');
      assert.ok(Date.now() - lostAt < 1000, 'before another worker could take the claims (1 s)');
      await sleep(300);
      assert.equal(sender.calls.length, 2, 'nothing claimed while fenced');
      down = false;
      await eventually(() => sender.calls.length >= 3, 3000, 'claims again once the heartbeat is back');
    });

    it('a worker frozen past its fence (SIGSTOP, a long pause) aborts its unsent callbacks when it resumes, before they reach the receiver', async () => {
      const s = await openStore();
      await owe(s, [{ clientId: 'c1', host: 'a.example' }]);
      // A listening socket: the TCP handshake of a callback completes in the kernel while the process is frozen.
      const srv = createNetServer((sock) => sock.destroy());
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      const port = (srv.address() as AddressInfo).port;
      const sent: number[] = [];
      let calls = 0;
      const sender = {
        async send(req: SendRequest): Promise<SendResult> {
          if (++calls > 1) {
            sent.push(Date.now());
            return ok;
          }
          const sock = netConnect(port, '127.0.0.1');
          // Frozen for 1.5 s with the connection being opened: past the fence (1 s - 2 x 100 ms), so
          // another worker may hold the claim by now.
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);
          return new Promise<SendResult>((resolve) => {
            const onAbort = (): void => {
              sock.destroy();
              resolve({ kind: 'deferred', durationMs: 0, error: 'aborted' });
            };
            if (req.signal?.aborted) return onAbort();
            req.signal?.addEventListener('abort', onAbort, { once: true });
            sock.on('error', () => undefined);
            sock.on('connect', () => {
              req.signal?.removeEventListener('abort', onAbort);
              sent.push(Date.now());
              sock.destroy();
              resolve(ok);
            });
          });
        },
      };
      try {
        const w = worker(s, sender as unknown as ReturnType<typeof scriptedSender>, { workerStaleMs: 1000, heartbeatIntervalMs: 100 });
        await w.start();
        await eventually(() => sent.length >= 1, 5000, 'delivered');
        await sleep(200);
        assert.equal(calls, 2, 'the callback of the frozen claim was given back and sent again under a fresh claim');
        assert.equal(sent.length, 1, 'the callback frozen past the fence never reached the receiver');
      } finally {
        srv.close();
      }
    });

    it('one client with many silent webhooks leaves slots for another client', async () => {
      const s = await openStore();
      // c1: 40 webhooks on 40 hosts, all silent; c2: 4 webhooks, answered at once; c1's are due first.
      const hooks = [
        ...Array.from({ length: 40 }, (_, i) => ({ clientId: 'c1', host: `silent${i}.example` })),
        ...Array.from({ length: 4 }, (_, i) => ({ clientId: 'c2', host: `fine${i}.example` })),
      ];
      await owe(s, hooks);
      const sender = scriptedSender((req) => req.url.includes('silent'));
      await worker(s, sender, { concurrency: 16, perClientConcurrency: 8 }).start();
      await eventually(() => sender.calls.filter((c) => c.url.includes('fine')).length === 4, 3000, 'the other client\'s callbacks');
      assert.equal(sender.open, 8, 'the silent client holds its share only');
    });
  });
}

describe('sender: per-address limit', () => {
  it('defers a callback to an address already at its limit, whatever the host name or port', async () => {
    const servers: Server[] = [];
    const silent = async (): Promise<number> => {
      const srv = createServer(() => { /* never answers */ });
      servers.push(srv);
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      return (srv.address() as AddressInfo).port;
    };
    const [p1, p2] = [await silent(), await silent()];
    const sender = createSender({
      policy: new TargetPolicy({ allowedCidrs: ['127.0.0.0/8'], httpsOnly: false }),
      connectTimeoutMs: 2000, requestTimeoutMs: 2000, userAgent: 't', perAddressConcurrency: 2,
    });
    const abort = new AbortController();
    try {
      const req = (url: string): SendRequest => ({ url, headers: {}, body: '', signal: abort.signal });
      const hanging = [sender.send(req(`http://127.0.0.1:${p1}/a`)), sender.send(req(`http://127.0.0.1:${p2}/b`))];
      await sleep(50);
      assert.deepEqual([...sender.busyAddresses()], ['127.0.0.1']);
      const started = Date.now();
      const third = await sender.send(req(`http://127.0.0.1:${p2}/c`));
      assert.equal(third.kind, 'deferred');
      assert.equal(third.address, '127.0.0.1');
      assert.ok(Date.now() - started < 200, 'at once, without connecting');
      abort.abort();
      const results = await Promise.all(hanging);
      assert.deepEqual(results.map((r) => r.kind), ['deferred', 'deferred'], 'an abort is not an attempt');
      assert.equal(sender.busyAddresses().size, 0);
    } finally {
      await sender.destroy();
      for (const s of servers) { s.closeAllConnections(); s.close(); }
    }
  });
});
