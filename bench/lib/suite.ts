/*
 * One configuration measured from start to finish, shared by bench/run.ts and bench/delivery.ts.
 */
import type { Config } from '../../src/config.ts';
import { envInt, envStr, sleep, type RegisterResult } from './common.ts';
import type { Peer } from './peer-client.ts';
import { profiled } from './profile.ts';
import { log } from './report.ts';
import { baseline, latency, registrations, throughput, type BaselineResult, type LatencyMeasurement, type ThroughputResult } from './scenarios.ts';
import { insertWebhooks, startTarget, type TargetSpec } from './targets.ts';

export function settings() {
  return {
    /** Webhooks (one per record) made due at once by the throughput measurement. */
    webhooks: envInt('BENCH_WEBHOOKS', 20_000),
    /** Receiver servers (distinct host:port, so distinct per-host limits), on BENCH_ADDRESSES loopback addresses. */
    hosts: envInt('BENCH_HOSTS', 32),
    addresses: envInt('BENCH_ADDRESSES', 8),
    /** The service's --concurrency and --per-host-concurrency (defaults 256 and 8). */
    concurrency: envInt('BENCH_CONCURRENCY', 256),
    perHost: envInt('BENCH_PER_HOST', 8),
    /** Registrations measured through the API (per client mix; the rest are inserted directly). */
    registrations: envInt('BENCH_REGISTRATIONS', 2_000),
    regConcurrency: envInt('BENCH_REG_CONCURRENCY', 32),
    regClients: envInt('BENCH_REG_CLIENTS', 8),
    rate: envInt('BENCH_LATENCY_RATE', 200),
    seconds: envInt('BENCH_LATENCY_SECONDS', 15),
    stores: envStr('BENCH_STORES', 'sqlite,postgres').split(',').map((s) => s.trim()),
    pgWorkers: envStr('BENCH_PG_WORKERS', '0,1,3').split(',').map((s) => Number(s.trim())),
    pgUrl: envStr('BENCH_DATABASE_URL', process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'),
    logLevel: envStr('BENCH_LOG_LEVEL', 'warn') as Config['logLevel'],
  };
}
export type Settings = ReturnType<typeof settings>;

export interface TargetResult {
  target: string;
  spec: TargetSpec;
  /** Through the API: one client, then the same number spread over regClients clients. */
  registrations: { oneClient: RegisterResult; manyClients: RegisterResult } | null;
  baseline: BaselineResult;
  throughput: ThroughputResult;
  latency: LatencyMeasurement;
}

export async function measureTarget(spec: TargetSpec, peer: Peer, S: Settings, opts: { registrations: boolean }): Promise<TargetResult> {
  const t = await startTarget(spec, {
    logLevel: S.logLevel, concurrency: S.concurrency, perHostConcurrency: S.perHost, pgUrl: S.pgUrl, records: S.webhooks,
    clients: opts.registrations ? S.regClients : 1,
  });
  try {
    let regs: TargetResult['registrations'] = null;
    let registered = 0;
    if (opts.registrations) {
      const r = Math.min(S.registrations, Math.floor(S.webhooks / 2));
      log(`${t.label}: ${r} registrations by 1 client, then ${r} by ${S.regClients} clients (${S.regConcurrency} at once)`);
      const oneClient = await registrations(t, peer, { from: 0, n: r, concurrency: S.regConcurrency, clients: 1 });
      const manyClients = await registrations(t, peer, { from: r, n: r, concurrency: S.regConcurrency, clients: S.regClients });
      regs = { oneClient, manyClients };
      registered = 2 * r;
      log(`${t.label}: ${oneClient.perSecond} registrations/s (1 client), ${manyClients.perSecond}/s (${S.regClients} clients)`);
    }
    await insertWebhooks(t, peer.bases, registered, S.webhooks);
    await sleep(500);

    log(`${t.label}: baseline, ${S.webhooks} plain POSTs`);
    const base = await baseline(peer, S.webhooks, S.concurrency, S.perHost);
    await sleep(500);
    log(`${t.label}: throughput, ${S.webhooks} webhooks made due by one bulk change`);
    const tp = await profiled(`throughput-${t.label}`, () => throughput(t, peer, S.webhooks));
    log(`${t.label}: ${tp.callbacksPerSecond} callbacks/s (baseline ${base.perSecond}/s)${tp.received < S.webhooks ? `, ${S.webhooks - tp.received} MISSING` : ''}`);
    await sleep(1000);
    log(`${t.label}: latency, ${S.rate} changes/s for ${S.seconds} s`);
    const lat = await profiled(`latency-${t.label}`, () => latency(t, peer, { rate: S.rate, seconds: S.seconds, webhooks: S.webhooks }));
    log(`${t.label}: latency p50 ${lat.latencyMs.p50} ms, p99 ${lat.latencyMs.p99} ms, max ${lat.latencyMs.max} ms${lat.missing ? `, ${lat.missing} MISSING` : ''}`);
    return { target: t.label, spec, registrations: regs, baseline: base, throughput: tp, latency: lat };
  } finally {
    await t.close();
  }
}

/** "throughput% / latency%" CPU pressure of a result, for tables. */
export function pressure(r: TargetResult): string {
  const f = (n: number | null) => (n === null ? 'n/a' : `${n}%`);
  return `${f(r.throughput.cpuPressurePct)} / ${f(r.latency.cpuPressurePct)}`;
}
