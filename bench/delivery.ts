/*
 * npm run bench:delivery: callbacks per second and change-to-callback latency on SQLite and (when
 * it answers) PostgreSQL, each service in this process, each next to a baseline measured in the
 * same run. Sizes come from BENCH_* environment variables (bench/README.md).
 */
import { Peer } from './lib/peer-client.ts';
import { fmt, log, machine, markdownTable, RESULTS_FILE, writeResults } from './lib/report.ts';
import { measureTarget, pressure, settings, type TargetResult } from './lib/suite.ts';
import { pgUnreachable, type TargetSpec } from './lib/targets.ts';

const S = settings();

async function main(): Promise<void> {
  const specs: TargetSpec[] = [];
  const skipped: string[] = [];
  if (S.stores.includes('sqlite')) specs.push({ store: 'sqlite', workers: 0 });
  if (S.stores.includes('postgres')) {
    const why = await pgUnreachable(S.pgUrl);
    if (why === null) specs.push({ store: 'postgres', workers: 0 });
    else skipped.push(`PostgreSQL not reachable at ${S.pgUrl.replace(/\/\/[^@/]*@/, '//***@')} (${why}): skipped`);
  }
  for (const s of skipped) log(s);

  const peer = await Peer.start(S.hosts, S.addresses);
  const results: TargetResult[] = [];
  try {
    for (const spec of specs) results.push(await measureTarget(spec, peer, S, { registrations: false }));
  } finally {
    await peer.close();
  }

  console.log(`\n## Delivery\n\n${fmt(S.webhooks)} webhooks, one per record, on ${S.hosts} receiver hosts (service limits: ${S.concurrency} in flight, ${S.perHost} per host), all made due by one bulk change.`);
  console.log(`Latency: ${S.rate} changes/s for ${S.seconds} s, each PUT /admin/api/records/{orcid} of a record with one webhook; from the request leaving the client to the callback arriving.\n`);
  console.log(markdownTable(
    ['Store', 'Callbacks/s', 'Baseline/s', 'Of baseline', 'CPU ms/callback', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'Missing', 'CPU pressure'],
    results.map((r) => [
      r.target, fmt(r.throughput.callbacksPerSecond), fmt(r.baseline.perSecond), `${fmt((100 * r.throughput.callbacksPerSecond) / r.baseline.perSecond)}%`,
      fmt(r.throughput.serviceCpuMsPerCallback, 3),
      fmt(r.latency.latencyMs.p50, 1), fmt(r.latency.latencyMs.p90, 1), fmt(r.latency.latencyMs.p99, 1), fmt(r.latency.latencyMs.max, 1),
      r.throughput.webhooks - r.throughput.received + r.latency.missing, pressure(r),
    ]),
    ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
  ));
  console.log('\nCPU pressure: share of the time some task waited for a CPU during the throughput / latency runs (Linux PSI); far above 0, other work competed for the cores and the figures are pessimistic.');
  for (const s of skipped) console.log(`\n${s}`);
  const sqlite = results.find((r) => r.spec.store === 'sqlite');
  if (sqlite) {
    const okTp = sqlite.throughput.callbacksPerSecond >= 2000;
    const okLat = sqlite.latency.latencyMs.p99 < 100;
    console.log(`\nTargets on SQLite: >= 2,000 callbacks/s ${okTp ? 'met' : 'MISSED'}; p99 < 100 ms at 200 changes/s ${okLat ? 'met' : 'MISSED'}${S.rate !== 200 ? ` (measured at ${S.rate}/s)` : ''}.`);
  }
  writeResults({ script: 'bench:delivery', at: new Date().toISOString(), machine: machine(), settings: S, skipped, results });
  console.log(`\nJSON: ${RESULTS_FILE}`);
}

await main();
