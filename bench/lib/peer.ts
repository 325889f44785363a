/*
 * The outside world of the benchmark, in a child process of its own so that it does not share an
 * event loop with the service under test: the callback receivers (node:http servers on several
 * 127.0.0.x addresses) and the load generators (registrations, record touches). Driven by the
 * orchestrator over IPC (see PeerCommand in common.ts); all its times are wallNow() epoch ms.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import {
  benchOrcid, callbackUrl, indexFromPath, percentiles, round1, round2, sleep, wallNow,
  type ExpectResult, type LatencyResult, type PeerCommand, type PeerReply, type RegisterResult,
} from './common.ts';

const servers: Server[] = [];
let bases: string[] = [];

/* ---- counting callbacks ---- */

let seen = new Uint8Array(0);
let expected = 0;
let received = 0;
let duplicates = 0;
let first = 0;
let last = 0;
let onCount: (() => void) | null = null;

/** Latency run: send time of the touch each webhook index is waiting for. */
const awaiting = new Map<number, number>();
const latencies: number[] = [];
let unexpected = 0;
let onLatency: (() => void) | null = null;

function handle(req: IncomingMessage, res: ServerResponse): void {
  const t = wallNow();
  req.resume();
  res.writeHead(200, { 'content-length': '0' });
  res.end();
  const i = indexFromPath(req.url ?? '');
  if (i < 0) return;
  const sent = awaiting.get(i);
  if (sent !== undefined) {
    awaiting.delete(i);
    latencies.push(t - sent);
    onLatency?.();
  } else if (onLatency) unexpected++;
  if (i >= seen.length) {
    const grown = new Uint8Array(Math.max(i + 1, seen.length * 2, 1024));
    grown.set(seen);
    seen = grown;
  }
  if (seen[i]) {
    duplicates++;
    return;
  }
  seen[i] = 1;
  received++;
  if (received === 1) first = t;
  last = t;
  if (received >= expected) onCount?.();
}

async function listen(hosts: number, addresses: number): Promise<string[]> {
  for (let h = 0; h < hosts; h++) {
    const host = `127.0.0.${1 + (h % addresses)}`;
    const server = createServer(handle);
    server.keepAliveTimeout = 60_000;
    server.maxRequestsPerSocket = 0;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => resolve());
    });
    servers.push(server);
    bases.push(`http://${host}:${(server.address() as AddressInfo).port}`);
  }
  return bases;
}

function arm(count: number): void {
  seen = new Uint8Array(Math.max(seen.length, count));
  expected = count;
  received = 0;
  duplicates = 0;
  first = 0;
  last = 0;
}

/** Resolves when `expected` distinct callbacks arrived, or after idleMs without a new one. */
function wait(idleMs: number): Promise<ExpectResult> {
  return new Promise((resolve) => {
    let lastCount = received;
    const done = (timedOut: boolean) => {
      clearInterval(timer);
      onCount = null;
      resolve({ received, duplicates, first, last, timedOut });
    };
    let idleSince = Date.now();
    const timer = setInterval(() => {
      if (received !== lastCount) {
        lastCount = received;
        idleSince = Date.now();
      } else if (Date.now() - idleSince > idleMs) done(true);
    }, 100);
    onCount = () => done(false);
    if (received >= expected) done(false);
  });
}

/* ---- load generators ---- */

async function register(c: Extract<PeerCommand, { cmd: 'register' }>): Promise<RegisterResult> {
  const pool = new Pool(c.apiUrl, { connections: c.concurrency, pipelining: 1 });
  const statuses: Record<string, number> = {};
  const times: number[] = [];
  let next = c.from;
  const end = c.from + c.count;
  let ok = 0;
  let failed = 0;
  const t0 = wallNow();
  // Connection j registers for client j mod the number of tokens.
  const loop = async (j: number): Promise<void> => {
    const token = c.tokens[j % c.tokens.length]!;
    while (next < end) {
      const i = next++;
      const path = `/${benchOrcid(i)}/webhook/${encodeURIComponent(callbackUrl(bases, i))}`;
      const s = wallNow();
      try {
        const res = await pool.request({ method: 'PUT', path, headers: { authorization: `Bearer ${token}` } });
        await res.body.dump();
        times.push(wallNow() - s);
        if (res.statusCode === c.expect) ok++;
        else {
          failed++;
          statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        }
      } catch (err) {
        failed++;
        const k = (err as { code?: string }).code ?? 'error';
        statuses[k] = (statuses[k] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: c.concurrency }, (_, j) => loop(j)));
  const seconds = (wallNow() - t0) / 1000;
  await pool.close();
  return { ok, failed, statuses, seconds: round2(seconds), perSecond: Math.round(ok / seconds), requestMs: percentiles(times) };
}

/**
 * Open-loop generator: touch k goes out at start + k/rate whatever happened to earlier ones, so
 * a slow service cannot slow the load down (no coordinated omission). Latency counts from the
 * moment the request is handed to the client to the moment the callback arrives here.
 */
async function latency(c: Extract<PeerCommand, { cmd: 'latency' }>): Promise<LatencyResult> {
  const pool = new Pool(c.apiUrl, { connections: c.connections, pipelining: 1 });
  const total = Math.round(c.rate * c.seconds);
  const touchTimes: number[] = [];
  const lags: number[] = [];
  let failedRequests = 0;
  awaiting.clear();
  latencies.length = 0;
  unexpected = 0;
  onLatency = () => {};
  const requests: Promise<void>[] = [];
  const start = wallNow() + 20;
  let k = 0;
  while (k < total) {
    const now = wallNow();
    while (k < total && start + (k * 1000) / c.rate <= now) {
      const scheduled = start + (k * 1000) / c.rate;
      const i = k % c.records;
      const sent = wallNow();
      lags.push(sent - scheduled);
      awaiting.set(i, sent);
      requests.push(pool.request({ method: 'PUT', path: `/admin/api/records/${benchOrcid(i)}`, headers: { authorization: `Bearer ${c.adminToken}` } })
        .then(async (res) => {
          await res.body.dump();
          touchTimes.push(wallNow() - sent);
          if (res.statusCode !== 200) failedRequests++;
        }, () => {
          failedRequests++;
        }));
      k++;
    }
    const next = start + (k * 1000) / c.rate;
    await sleep(Math.max(0, Math.min(next - wallNow(), 50)));
  }
  const sentAll = wallNow();
  await Promise.all(requests);
  const achievedRate = total / ((sentAll - start) / 1000);
  // Wait for the stragglers, up to graceMs after the last touch was answered.
  const answered = wallNow();
  while (awaiting.size > 0 && wallNow() - answered < c.graceMs) await sleep(20);
  const missing = awaiting.size;
  onLatency = null;
  awaiting.clear();
  await pool.close();
  return {
    sent: total, received: latencies.length, missing, unexpected, failedRequests, achievedRate: round1(achievedRate),
    latencyMs: percentiles(latencies), touchMs: percentiles(touchTimes), sendLagMs: percentiles(lags),
  };
}

/* ---- IPC ---- */

async function run(c: PeerCommand): Promise<unknown> {
  switch (c.cmd) {
    case 'listen':
      return servers.length ? bases : listen(c.hosts, c.addresses);
    case 'arm':
      arm(c.count);
      return null;
    case 'wait':
      return wait(c.idleMs);
    case 'register':
      return register(c);
    case 'latency':
      return latency(c);
    case 'close':
      for (const s of servers) s.closeAllConnections();
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
      servers.length = 0;
      bases = [];
      setImmediate(() => process.disconnect?.());
      return null;
  }
}

process.on('message', (c: PeerCommand) => {
  run(c).then(
    (result) => process.send?.({ id: c.id, ok: true, result } satisfies PeerReply),
    (err: unknown) => process.send?.({ id: c.id, ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) } satisfies PeerReply),
  );
});
process.on('disconnect', () => process.exit(0));
