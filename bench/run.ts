/*
 * npm run bench: everything, both stores side by side. Registrations per second, callbacks per
 * second and change-to-callback latency on SQLite (one process) and PostgreSQL (one process, then
 * one API process with 1 and with 3 worker processes sharing a schema). Prints a Markdown table
 * for the README and writes bench/results/latest.json. Sizes: BENCH_* variables (bench/README.md).
 */
import { Peer } from './lib/peer-client.ts';
import { fmt, log, machine, markdownTable, RESULTS_FILE, writeResults } from './lib/report.ts';
import { measureTarget, pressure, settings, type TargetResult } from './lib/suite.ts';
import { pgUnreachable, targetLabel, type TargetSpec } from './lib/targets.ts';
import { runUpstreamBench, upstreamReport } from './upstream.ts';

const S = settings();

async function main(): Promise<void> {
  const started = Date.now();
  const specs: TargetSpec[] = [];
  const skipped: string[] = [];
  if (S.stores.includes('sqlite')) specs.push({ store: 'sqlite', workers: 0 });
  if (S.stores.includes('postgres')) {
    const why = await pgUnreachable(S.pgUrl);
    if (why === null) for (const workers of S.pgWorkers) specs.push({ store: 'postgres', workers });
    else skipped.push(`PostgreSQL not reachable at ${S.pgUrl.replace(/\/\/[^@/]*@/, '//***@')} (${why}): PostgreSQL rows skipped`);
  }
  for (const s of skipped) log(s);

  const peer = await Peer.start(S.hosts, S.addresses);
  const results: TargetResult[] = [];
  const failed: { target: string; error: string }[] = [];
  try {
    for (const spec of specs) {
      try {
        results.push(await measureTarget(spec, peer, S, { registrations: true }));
      } catch (err) {
        // One configuration failing (a database hiccup) still leaves the others' figures.
        log(`${targetLabel(spec)} FAILED: ${(err as Error).stack ?? String(err)}`);
        failed.push({ target: targetLabel(spec), error: (err as Error).message });
      }
    }
  } finally {
    await peer.close();
  }

  const m = machine();
  const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
  console.log(`\n## Benchmark (${when} UTC, ${m.cpus} × ${m.cpuModel}, Node ${m.node.slice(1)}, commit ${m.gitCommit ?? 'unknown'})\n`);
  console.log(markdownTable(
    ['Configuration', 'Registrations/s (1 client)', `Registrations/s (${S.regClients} clients)`, 'Callbacks/s', 'Baseline/s', 'Latency p50', 'p90', 'p99', 'max'],
    results.map((r) => [
      r.target, fmt(r.registrations?.oneClient.perSecond), fmt(r.registrations?.manyClients.perSecond),
      fmt(r.throughput.callbacksPerSecond), fmt(r.baseline.perSecond),
      `${fmt(r.latency.latencyMs.p50, 1)} ms`, `${fmt(r.latency.latencyMs.p90, 1)} ms`, `${fmt(r.latency.latencyMs.p99, 1)} ms`, `${fmt(r.latency.latencyMs.max, 1)} ms`,
    ]),
    ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
  ));
  console.log(`
- Registrations: ${fmt(Math.min(S.registrations, Math.floor(S.webhooks / 2)))} \`PUT /{orcid}/webhook/{callback}\` with a bearer token, ${S.regConcurrency} at once, by one client, then as many spread over ${S.regClients} clients.
- Callbacks/s: ${fmt(S.webhooks)} webhooks on distinct records, all made due by one bulk change; from the change to the last callback received, on ${S.hosts} receiver hosts (limits per process: ${S.concurrency} in flight, ${S.perHost} per host).
- Baseline/s: the same ${fmt(S.webhooks)} POSTs from a plain undici loop with the same limits, measured just before: the ceiling of the HTTP layer on this machine at that moment.
- Latency: ${S.rate} changes/s for ${S.seconds} s, each \`PUT /admin/api/records/{orcid}\` of a record with one webhook; from the request leaving the client to the callback arriving.`);

  console.log('\n<details><summary>Details</summary>\n');
  console.log(markdownTable(
    ['Configuration', 'Service CPU ms/callback', 'Bulk change ms', 'First callback ms', 'Steady callbacks/s', 'Touch p50 / p99 ms', 'Registration p50 / p99 ms', 'Missing', 'Duplicates', 'CPU pressure'],
    results.map((r) => [
      r.target, fmt(r.throughput.serviceCpuMsPerCallback, 3), fmt(r.throughput.bulkChangeMs), fmt(r.throughput.firstCallbackMs), fmt(r.throughput.steadyPerSecond),
      `${fmt(r.latency.touchMs.p50, 1)} / ${fmt(r.latency.touchMs.p99, 1)}`,
      r.registrations ? `${fmt(r.registrations.oneClient.requestMs.p50, 1)} / ${fmt(r.registrations.oneClient.requestMs.p99, 1)}` : 'n/a',
      r.throughput.webhooks - r.throughput.received + r.latency.missing, r.throughput.duplicates + r.latency.unexpected, pressure(r),
    ]),
    ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
  ));
  console.log('\nCPU pressure: share of the time some task waited for a CPU during the throughput / latency runs (Linux PSI); far above 0, other work competed for the cores.');
  console.log('\n</details>');
  for (const s of skipped) console.log(`\n${s}`);
  for (const f of failed) console.log(`\n${f.target}: FAILED (${f.error})`);
  writeResults({ script: 'bench', at: new Date().toISOString(), durationSeconds: Math.round((Date.now() - started) / 1000), machine: m, settings: S, skipped, failed, results });
  console.log(`\nJSON: ${RESULTS_FILE} (${Math.round((Date.now() - started) / 1000)} s)`);
  if (failed.length) process.exitCode = 1;
  if (process.env.BENCH_UPSTREAM !== '0') {
    // Upstream watching (issue 13); alone: npm run bench:upstream.
    const u = await runUpstreamBench();
    console.log('\n## Upstream watching (fake ORCID)\n');
    console.log(upstreamReport(u));
    if (u.steady.missing + u.steady.doubled + u.kill.missing + u.kill.doubled + u.outage.missing + u.outage.doubled + u.requests.recordsForUnwatched || u.requests.maxPerSecond > u.settings.rate) process.exitCode = 1;
  }
}

await main();
