/*
 * npm run bench:latency: only the open-loop change-to-callback latency runs of `npm run bench`
 * (BENCH_LATENCY_RATES, BENCH_LATENCY_SECONDS each), per store and worker configuration
 * (BENCH_STORES, BENCH_PG_WORKERS), with the store time per method (in-process service) and the
 * CPU pressure. For iterating on issue 12's latency figures without the whole suite.
 */
import { Peer } from './lib/peer-client.ts';
import { profiled } from './lib/profile.ts';
import { fmt, log, markdownTable } from './lib/report.ts';
import { latency, type LatencyMeasurement } from './lib/scenarios.ts';
import { settings } from './lib/suite.ts';
import { insertWebhooks, pgUnreachable, startTarget, type TargetSpec } from './lib/targets.ts';
import { sleep } from './lib/common.ts';

const S = settings();

async function main(): Promise<void> {
  const specs: TargetSpec[] = [];
  if (S.stores.includes('sqlite')) specs.push({ store: 'sqlite', workers: 0 });
  if (S.stores.includes('postgres')) {
    const why = await pgUnreachable(S.pgUrl);
    if (why === null) for (const workers of S.pgWorkers) specs.push({ store: 'postgres', workers });
    else log(`PostgreSQL not reachable (${why}): skipped`);
  }
  const records = Math.max(...S.rates) * S.seconds;
  const peer = await Peer.start(S.hosts, S.addresses);
  const rows: string[][] = [];
  const details: Record<string, (LatencyMeasurement & { rate: number })[]> = {};
  try {
    for (const spec of specs) {
      const t = await startTarget(spec, { logLevel: S.logLevel, concurrency: S.concurrency, perHostConcurrency: S.perHost, pgUrl: S.pgUrl, records: records + 1, clients: 1 });
      try {
        await insertWebhooks(t, peer.bases, 0, records);
        await sleep(500);
        for (const rate of S.rates) {
          log(`${t.label}: latency, ${rate} changes/s for ${S.seconds} s`);
          const lat = await profiled(`latency-${rate}-${t.label}`, () => latency(t, peer, { rate, seconds: S.seconds, webhooks: records }));
          (details[t.label] ??= []).push({ ...lat, rate });
          rows.push([t.label, String(rate), fmt(lat.latencyMs.p50, 1), fmt(lat.latencyMs.p90, 1), fmt(lat.latencyMs.p99, 1), fmt(lat.latencyMs.max, 1),
            `${fmt(lat.touchMs.p50, 1)} / ${fmt(lat.touchMs.p99, 1)}`, fmt(lat.serviceCpuMsPerChange, 3), String(lat.missing), `${lat.cpuPressurePct ?? 'n/a'}%`]);
          log(`${t.label}: ${rate}/s p50 ${lat.latencyMs.p50} ms, p99 ${lat.latencyMs.p99} ms, max ${lat.latencyMs.max} ms, missing ${lat.missing}`);
          if (lat.storeCalls) log(JSON.stringify(lat.storeCalls));
          await sleep(1000);
        }
      } finally {
        await t.close();
      }
    }
  } finally {
    await peer.close();
  }
  console.log(markdownTable(['Configuration', 'Changes/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'Touch p50 / p99 ms', 'CPU ms/change', 'Missing', 'CPU pressure'], rows,
    ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r']));
}

await main();
