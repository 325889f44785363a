/*
 * One configuration measured from start to finish, shared by bench/run.ts and bench/delivery.ts.
 */
import type { Config } from '../../src/config.ts';
import { envInt, envStr, round3, sleep, type RegisterResult } from './common.ts';
import type { Hello } from './references.ts';
import type { Peer } from './peer-client.ts';
import { profiled } from './profile.ts';
import { log } from './report.ts';
import { baseline, cpuMeter, cpuPressure, fanout, fanoutSetup, latency, registrations, throughput, type BaselineResult, type FanoutResult, type LatencyMeasurement, type ThroughputResult } from './scenarios.ts';
import { insertWebhooks, retargetWebhooks, startTarget, type TargetSpec } from './targets.ts';

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
    registrations: envInt('BENCH_REGISTRATIONS', 5_000),
    regConcurrency: envInt('BENCH_REG_CONCURRENCY', 32),
    regClients: envInt('BENCH_REG_CLIENTS', 8),
    rate: envInt('BENCH_LATENCY_RATE', 200),
    /** npm run bench: the open-loop change rates of issue 12 (BENCH_LATENCY_RATE is bench:delivery's). */
    rates: envStr('BENCH_LATENCY_RATES', '100,500,1000').split(',').map((s) => Number(s.trim())),
    /** Receiving hosts of the second callbacks/s run (the first uses all BENCH_HOSTS). */
    fewHosts: envInt('BENCH_FEW_HOSTS', 8),
    /** Webhooks on the one record of the fan-out run. */
    fanout: envInt('BENCH_FANOUT', 10_000),
    /** Webhooks of the scale run (npm run bench:scale: 1,000,000); 0 skips it. */
    scale: envInt('BENCH_SCALE', 100_000),
    /** Lines of the `records import` run (default: BENCH_SCALE). */
    importLines: envInt('BENCH_IMPORT_LINES', envInt('BENCH_SCALE', 100_000)),
    /** The job-queue peers: which to run. */
    peers: envStr('BENCH_PEERS', 'bullmq,pg-boss').split(',').map((s) => s.trim()).filter(Boolean),
    redisUrl: envStr('BENCH_REDIS_URL', 'redis://127.0.0.1:6379'),
    seconds: envInt('BENCH_LATENCY_SECONDS', 10),
    stores: envStr('BENCH_STORES', 'sqlite,postgres').split(',').map((s) => s.trim()),
    pgWorkers: envStr('BENCH_PG_WORKERS', '0,1,3').split(',').map((s) => Number(s.trim())),
    pgUrl: envStr('BENCH_DATABASE_URL', process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'),
    // The default of `npm start`: a benchmark at a quieter level would measure a service nobody runs.
    logLevel: envStr('BENCH_LOG_LEVEL', 'info') as Config['logLevel'],
  };
}
export type Settings = ReturnType<typeof settings>;

export interface TargetResult {
  target: string;
  spec: TargetSpec;
  /** Through the API: one client, then the same number spread over regClients clients. */
  registrations: { oneClient: RegisterResult; manyClients: RegisterResult } | null;
  /** npm run bench only: registrations 201 and 204 each just after the hello world, with CPU per request. */
  versusHello: HelloComparison | null;
  baseline: BaselineResult;
  throughput: ThroughputResult;
  /** npm run bench only: the same with the webhooks on BENCH_FEW_HOSTS receiving hosts. */
  fewHosts: { hosts: number; baseline: BaselineResult; throughput: ThroughputResult } | null;
  latency: LatencyMeasurement;
  /** npm run bench only: one run per BENCH_LATENCY_RATES rate (latency is the last one). */
  latencies: (LatencyMeasurement & { rate: number })[];
  fanout: FanoutResult | null;
}

export interface RegistrationFigure {
  perSecond: number;
  requestMs: RegisterResult['requestMs'];
  /** CPU of the answering processes per request. */
  cpuMsPerRequest: number | null;
  cpuPressurePct: number | null;
}

export interface HelloComparison {
  created: RegistrationFigure;
  helloBeforeCreated: RegistrationFigure;
  existing: RegistrationFigure;
  helloBeforeExisting: RegistrationFigure;
}

/** One registration run (or the hello world's), with the CPU of the processes that answer it. */
async function registrationFigure(pids: number[], run: () => Promise<RegisterResult>): Promise<RegistrationFigure> {
  const cpu = cpuMeter(pids);
  const pressure = cpuPressure();
  const r = await run();
  const used = cpu();
  return { perSecond: r.perSecond, requestMs: r.requestMs, cpuMsPerRequest: used === null ? null : round3(used / (r.ok || 1)), cpuPressurePct: pressure() };
}

export async function measureTarget(spec: TargetSpec, peer: Peer, S: Settings, opts: { registrations: boolean; hello?: Hello }): Promise<TargetResult> {
  const t = await startTarget(spec, {
    logLevel: S.logLevel, concurrency: S.concurrency, perHostConcurrency: S.perHost, pgUrl: S.pgUrl, records: S.webhooks + 1,
    clients: opts.registrations ? S.regClients : 1,
  });
  try {
    let regs: TargetResult['registrations'] = null;
    let versusHello: HelloComparison | null = null;
    let registered = 0;
    if (opts.registrations) {
      const r = Math.min(S.registrations, Math.floor(S.webhooks / 2));
      const hello = opts.hello;
      const helloRun = (from: number): Promise<RegistrationFigure> => registrationFigure(hello ? [hello.pid] : [], () =>
        peer.register({ apiUrl: hello!.url, tokens: [t.tokens[0]!], from, count: r, concurrency: S.regConcurrency, expect: 200 }));
      log(`${t.label}: ${r} registrations by 1 client, then ${r} by ${S.regClients} clients (${S.regConcurrency} at once)${hello ? ', each just after the hello world' : ''}`);
      // The hello world's first run is its JIT warm-up (a short run measured it at a third of its
      // speed): run it once unmeasured, so the reference is the warm figure.
      if (hello) await helloRun(0);
      const helloBeforeCreated = hello ? await helloRun(0) : null;
      let oneClient: RegisterResult | null = null;
      const created = await registrationFigure(t.pids, () => profiled(`registrations-${t.label}`, async () => (oneClient = await registrations(t, peer, { from: 0, n: r, concurrency: S.regConcurrency, clients: 1 }))));
      const manyClients = await registrations(t, peer, { from: r, n: r, concurrency: S.regConcurrency, clients: S.regClients });
      regs = { oneClient: oneClient!, manyClients };
      registered = 2 * r;
      if (hello && helloBeforeCreated) {
        // 204: the same client registers the same webhooks again.
        const helloBeforeExisting = await helloRun(0);
        const existing = await registrationFigure(t.pids, () => registrations(t, peer, { from: 0, n: r, concurrency: S.regConcurrency, clients: 1, expect: 204 }));
        versusHello = { created, helloBeforeCreated, existing, helloBeforeExisting };
        log(`${t.label}: 201 ${created.perSecond}/s (hello ${helloBeforeCreated.perSecond}/s), 204 ${existing.perSecond}/s (hello ${helloBeforeExisting.perSecond}/s)`);
      }
      log(`${t.label}: ${oneClient!.perSecond} registrations/s (1 client), ${manyClients.perSecond}/s (${S.regClients} clients)`);
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
    const latencies: TargetResult['latencies'] = [];
    for (const rate of opts.registrations ? S.rates : [S.rate]) {
      log(`${t.label}: latency, ${rate} changes/s for ${S.seconds} s`);
      const lat = await profiled(`latency-${rate}-${t.label}`, () => latency(t, peer, { rate, seconds: S.seconds, webhooks: S.webhooks }));
      log(`${t.label}: latency at ${rate}/s p50 ${lat.latencyMs.p50} ms, p99 ${lat.latencyMs.p99} ms, max ${lat.latencyMs.max} ms${lat.missing ? `, ${lat.missing} MISSING` : ''}`);
      latencies.push({ ...lat, rate });
      await sleep(1000);
    }
    let fanoutResult: FanoutResult | null = null;
    let few: TargetResult['fewHosts'] = null;
    if (opts.registrations) {
      log(`${t.label}: fan-out, one change on a record with ${S.fanout} webhooks`);
      // The setup (10,000 direct inserts) stays out of the profile.
      await fanoutSetup(t, peer, S.fanout, S.webhooks);
      fanoutResult = await profiled(`fanout-${t.label}`, () => fanout(t, peer, S.fanout, S.webhooks));
      log(`${t.label}: fan-out: last of ${S.fanout} callbacks after ${fanoutResult.lastCallbackMs} ms`);
      await sleep(500);
      const bases = peer.bases.slice(0, S.fewHosts);
      await retargetWebhooks(t, bases, 0, S.webhooks);
      log(`${t.label}: baseline and throughput on ${bases.length} receiving hosts`);
      const fewBase = await baseline(peer, S.webhooks, S.concurrency, S.perHost, 15_000, bases);
      await sleep(500);
      const fewTp = await throughput(t, peer, S.webhooks);
      log(`${t.label}: ${fewTp.callbacksPerSecond} callbacks/s on ${bases.length} hosts (baseline ${fewBase.perSecond}/s)`);
      few = { hosts: bases.length, baseline: fewBase, throughput: fewTp };
    }
    return { target: t.label, spec, registrations: regs, versusHello, baseline: base, throughput: tp, fewHosts: few, latency: latencies.at(-1)!, latencies, fanout: fanoutResult };
  } finally {
    await t.close();
  }
}

/** "throughput% / latency%" CPU pressure of a result, for tables. */
export function pressure(r: TargetResult): string {
  const f = (n: number | null) => (n === null ? 'n/a' : `${n}%`);
  return `${f(r.throughput.cpuPressurePct)} / ${f(r.latency.cpuPressurePct)}`;
}
