/*
 * The measurements. Every time is wallNow() (epoch ms, high resolution), comparable between this
 * process and the peer child.
 */
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import { USER_AGENT } from '../../src/version.ts';
import { benchOrcid, round1, round2, round3, wallNow, type LatencyResult, type RegisterResult } from './common.ts';
import type { Peer } from './peer-client.ts';
import type { CallStats } from './store-timing.ts';
import { insertWebhooksOn, type Target } from './targets.ts';

/** CPU time (user + system, ms) a process has used so far, from /proc; null where unavailable. */
export function cpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime; field 3 is the first after the ")"): indexes 11 and
    // 12, in clock ticks of 1/100 s (USER_HZ, 100 on Linux).
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return null;
  }
}

/** CPU used by a set of processes between start() and stop(), in ms (null when unknown). */
export function cpuMeter(pids: number[]): () => number | null {
  const each = cpuMeterEach(pids);
  return () => {
    const used = each();
    return used.some((u) => u === null) ? null : used.reduce<number>((a, b) => a + (b ?? 0), 0);
  };
}

/** CPU ms of each process between start() and stop(). */
export function cpuMeterEach(pids: number[]): () => (number | null)[] {
  const before = pids.map(cpuMs);
  return () => pids.map((pid, i) => {
    const a = before[i];
    const b = cpuMs(pid);
    return a === null || a === undefined || b === null ? null : b - a;
  });
}

/**
 * Share of the time (0-100) some runnable task waited for a CPU between start and stop, from the
 * kernel's pressure stall information (Linux 4.20+); null where unavailable. Near 0 on an idle
 * machine; a high figure means the run competed for the CPUs (other work on the machine, or the
 * benchmark's own processes outnumbering the cores).
 */
export function cpuPressure(): () => number | null {
  const read = (): number | null => {
    try {
      const m = /^some .*total=(\d+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
      return m ? Number(m[1]) : null;
    } catch {
      return null;
    }
  };
  const before = read();
  const t0 = performance.now();
  return () => {
    const after = read();
    if (before === null || after === null) return null;
    return Math.round((after - before) / 1000 / (performance.now() - t0) * 100);
  };
}

export interface ThroughputResult {
  webhooks: number;
  received: number;
  duplicates: number;
  timedOut: boolean;
  /** Webhooks / seconds from the bulk change being issued to the last callback received. */
  callbacksPerSecond: number;
  /** Between the first and the last callback (the delivery rate once under way). */
  steadyPerSecond: number;
  bulkChangeMs: number;
  firstCallbackMs: number;
  totalSeconds: number;
  /** CPU ms used by the service's processes per callback (null when unknown). */
  serviceCpuMsPerCallback: number | null;
  peerCpuMsPerCallback: number | null;
  /** See cpuPressure(). */
  cpuPressurePct: number | null;
  /** In-process service only: time spent in the store's delivery-path methods. */
  storeCalls?: Record<string, CallStats>;
}

/** All N webhooks made due by one bulk change (store.applyChanges of N records); time until all N callbacks arrived. */
export async function throughput(t: Target, peer: Peer, n: number, idleMs = 15_000): Promise<ThroughputResult> {
  await peer.arm(n);
  const now = Date.now();
  const changes = Array.from({ length: n }, (_, i) => ({ orcid: benchOrcid(i), modifiedAt: now, touch: true }));
  t.storeTiming?.();
  const serviceCpu = cpuMeter(t.pids);
  const pressure = cpuPressure();
  const peerCpu = cpuMeter(peer.pid ? [peer.pid] : []);
  const t0 = wallNow();
  const applied = await t.store.applyChanges(changes, { create: false, now: Date.now(), notifyDelayMs: 0 });
  const t1 = wallNow();
  t.service?.worker?.notify();
  if (applied.webhooksNotified !== n) throw new Error(`bulk change notified ${applied.webhooksNotified} webhooks, expected ${n}`);
  const r = await peer.wait(idleMs);
  const sCpu = serviceCpu();
  const pCpu = peerCpu();
  const total = (r.last - t0) / 1000;
  return {
    webhooks: n, received: r.received, duplicates: r.duplicates, timedOut: r.timedOut,
    callbacksPerSecond: Math.round(r.received / total),
    steadyPerSecond: Math.round((r.received - 1) / ((r.last - r.first) / 1000)),
    bulkChangeMs: round1(t1 - t0), firstCallbackMs: round1(r.first - t0), totalSeconds: round2(total),
    serviceCpuMsPerCallback: sCpu === null ? null : round3(sCpu / r.received),
    peerCpuMsPerCallback: pCpu === null ? null : round3(pCpu / r.received),
    cpuPressurePct: pressure(),
    ...(t.storeTiming && { storeCalls: t.storeTiming() }),
  };
}

export interface BaselineResult {
  requests: number;
  concurrency: number;
  perHost: number;
  perSecond: number;
  seconds: number;
  senderCpuMsPerRequest: number | null;
  cpuPressurePct: number | null;
}

/**
 * The ceiling of the HTTP layer alone: this process POSTs to the same receivers with a plain
 * undici loop, as many at once as the service may (global and per-host limits), the same empty
 * POST with the same headers. No database, no bookkeeping.
 */
export async function baseline(peer: Peer, n: number, concurrency: number, perHost: number, idleMs = 15_000, bases = peer.bases): Promise<BaselineResult> {
  const hosts = bases.length;
  const loops = Math.min(concurrency, hosts * perHost);
  const agent = new Agent({ connections: perHost });
  await peer.arm(n);
  const cpu = cpuMeter([process.pid]);
  const pressure = cpuPressure();
  const t0 = wallNow();
  let next = 0;
  let failed = 0;
  const loop = async (j: number): Promise<void> => {
    const origin = bases[j % hosts]!;
    while (next < n) {
      const i = next++;
      try {
        const res = await agent.request({
          origin, path: `/cb/${i}`, method: 'POST', body: null,
          headers: { 'content-length': '0', 'user-agent': USER_AGENT, 'webhook-id': `msg_${i}_1`, 'webhook-timestamp': String(Math.floor(Date.now() / 1000)) },
        });
        await res.body.dump();
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: loops }, (_, j) => loop(j)));
  const r = await peer.wait(idleMs);
  const used = cpu();
  await agent.close();
  if (failed) throw new Error(`baseline: ${failed} requests failed`);
  const seconds = (r.last - t0) / 1000;
  return {
    requests: r.received, concurrency: loops, perHost, perSecond: Math.round(r.received / seconds), seconds: round2(seconds),
    senderCpuMsPerRequest: used === null ? null : round3(used / r.received),
    cpuPressurePct: pressure(),
  };
}

/** PUT /{orcid}/webhook/{callback} for webhooks [from, from + n), by the first `clients` clients. */
export async function registrations(t: Target, peer: Peer, o: { from: number; n: number; concurrency: number; clients: number; expect?: number }): Promise<RegisterResult> {
  const r = await peer.register({ apiUrl: t.apiUrl, tokens: t.tokens.slice(0, Math.max(1, o.clients)), from: o.from, count: o.n, concurrency: o.concurrency, expect: o.expect ?? 201 });
  if (r.failed) throw new Error(`registrations: ${r.failed} failed: ${JSON.stringify(r.statuses)}`);
  return r;
}

export type LatencyMeasurement = LatencyResult & {
  /** CPU ms the service's processes used per change (touch and callback together). */
  serviceCpuMsPerChange: number | null;
  cpuPressurePct: number | null;
  /** CPU use of each service process over the run, in % of one core (API first, then the workers). */
  processCpuPct: (number | null)[];
  /** In-process service only: event-loop delay during the run (blocking work or CPU starvation). */
  eventLoopDelayMs?: { p50: number; p99: number; max: number };
  storeCalls?: Record<string, CallStats>;
};

export async function latency(t: Target, peer: Peer, o: { rate: number; seconds: number; webhooks: number }): Promise<LatencyMeasurement> {
  t.storeTiming?.();
  const cpu = cpuMeterEach(t.pids);
  const t0 = performance.now();
  const pressure = cpuPressure();
  const loop = t.service ? monitorEventLoopDelay({ resolution: 5 }) : null;
  loop?.enable();
  const r = await peer.latency({
    apiUrl: t.apiUrl, adminToken: t.adminToken, rate: o.rate, seconds: o.seconds,
    records: Math.min(o.webhooks, Math.round(o.rate * o.seconds)), connections: 16, graceMs: 10_000,
  });
  const each = cpu();
  const elapsed = performance.now() - t0;
  const used = each.some((u) => u === null) ? null : each.reduce<number>((a, b) => a + (b ?? 0), 0);
  loop?.disable();
  return {
    ...r, serviceCpuMsPerChange: used === null ? null : round3(used / r.sent), cpuPressurePct: pressure(),
    processCpuPct: each.map((u) => (u === null ? null : Math.round((100 * u) / elapsed))),
    ...(loop && { eventLoopDelayMs: { p50: round1(loop.percentile(50) / 1e6), p99: round1(loop.percentile(99) / 1e6), max: round1(loop.max / 1e6) } }),
    ...(t.storeTiming && { storeCalls: t.storeTiming() }),
  };
}

export interface FanoutResult {
  webhooks: number;
  received: number;
  duplicates: number;
  /** From the admin PUT of the record leaving to the last callback arriving. */
  lastCallbackMs: number;
  firstCallbackMs: number;
  serviceCpuMsPerCallback: number | null;
  cpuPressurePct: number | null;
}

/** Setup of the fan-out run (not measured): n webhooks on record `index`, inserted directly. */
export async function fanoutSetup(t: Target, peer: Peer, n: number, index: number): Promise<void> {
  await insertWebhooksOn(t, benchOrcid(index), peer.bases, index + 1, n);
}

/**
 * One change on the record of fanoutSetup, made as users make it: PUT /admin/api/records/{orcid}.
 * Time to the last of the n callbacks.
 */
export async function fanout(t: Target, peer: Peer, n: number, index: number): Promise<FanoutResult> {
  const orcid = benchOrcid(index);
  await peer.arm(n);
  const serviceCpu = cpuMeter(t.pids);
  const pressure = cpuPressure();
  const t0 = wallNow();
  const res = await request(`${t.apiUrl}/admin/api/records/${orcid}`, { method: 'PUT', headers: { authorization: `Bearer ${t.adminToken}` } });
  await res.body.dump();
  if (res.statusCode !== 200) throw new Error(`fan-out: PUT /admin/api/records answered ${res.statusCode}`);
  const r = await peer.wait(15_000);
  const used = serviceCpu();
  return {
    webhooks: n, received: r.received, duplicates: r.duplicates, lastCallbackMs: round1(r.last - t0), firstCallbackMs: round1(r.first - t0),
    serviceCpuMsPerCallback: used === null ? null : round3(used / (r.received || 1)), cpuPressurePct: pressure(),
  };
}
