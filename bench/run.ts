/*
 * npm run bench: everything, both stores side by side. Registrations per second, callbacks per
 * second and change-to-callback latency on SQLite (one process) and PostgreSQL (one process, then
 * one API process with 1 and with 3 worker processes sharing a schema). Prints a Markdown table
 * for the README and writes bench/results/latest.json. Sizes: BENCH_* variables (bench/README.md).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { issue12Rows, issue12Table, type CliStart } from './lib/issue12-table.ts';
import { Peer } from './lib/peer-client.ts';
import { bullmqRun, pgBossRun, startHello, type PeerQueueResult } from './lib/references.ts';
import { importRun, scaleRun, type ImportResult, type ScaleResult } from './lib/scale.ts';
import { baseline, type BaselineResult } from './lib/scenarios.ts';
import { fmt, log, machine, markdownTable, RESULTS_FILE, writeResults } from './lib/report.ts';
import { measureTarget, pressure, settings, type TargetResult } from './lib/suite.ts';
import { pgUnreachable, targetLabel, type TargetSpec } from './lib/targets.ts';
import { runUpstreamBench, upstreamReport } from './upstream.ts';

const S = settings();
/** Which parts run (BENCH_PARTS, comma-separated; default all): targets, peers, scale, import, cli. */
const PARTS = new Set((process.env.BENCH_PARTS ?? 'targets,peers,scale,import,cli').split(',').map((p) => p.trim()));
const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** /proc/pressure/cpu at the start, for the whole run's share and the avg10 at the end. */
const pressureAtStart = readPressure();
const startedAt = performance.now();
function readPressure(): { total: number; avg10: number } | null {
  try {
    const m = /^some avg10=([\d.]+) .*total=(\d+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    return m ? { avg10: Number(m[1]), total: Number(m[2]) } : null;
  } catch {
    return null;
  }
}
function runPressure(): string {
  const now = readPressure();
  if (!now || !pressureAtStart) return 'n/a';
  const share = Math.round((now.total - pressureAtStart.total) / 1000 / (performance.now() - startedAt) * 100);
  return `${share} % (some total delta; avg10 at the end ${now.avg10} %)`;
}

/** bench/cli-start.ts (the compiled CLI: built first when dist/ is missing), fewer runs. */
function cliStart(): CliStart | null {
  if (process.env.BENCH_CLI === '0' || !PARTS.has('cli')) return null;
  if (!existsSync(`${ROOT}/dist/cli/bin.js`)) {
    log('building dist/ for the CLI start time (npm run build)');
    const b = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
    if (b.status !== 0) return null;
  }
  log('CLI start time');
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/cli-start.ts'], { cwd: ROOT, env: { ...process.env, BENCH_CLI_RUNS: process.env.BENCH_CLI_RUNS ?? '11' }, stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) return null;
  const doc = JSON.parse(readFileSync(`${ROOT}/bench/results/cli-start.json`, 'utf8')) as { cpuPressure: number | null; rows: { command: string; p50Ms: number }[] };
  const row = (k: string) => doc.rows.find((x) => x.command.includes(k))?.p50Ms ?? NaN;
  return { versionP50Ms: row('--version`'), nodeP50Ms: row('node -e 0'), cpuPressurePct: doc.cpuPressure === null ? null : Math.round(doc.cpuPressure * 100) };
}

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
  const hello = await startHello();
  const results: TargetResult[] = [];
  const failed: { target: string; error: string }[] = [];
  const peers: PeerQueueResult[] = [];
  const peerBaselines: BaselineResult[] = [];
  const scale: ScaleResult[] = [];
  const imports: ImportResult[] = [];
  // One part failing (a database hiccup, Redis absent) still leaves the others' figures.
  const attempt = async (name: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      log(`${name} FAILED: ${(err as Error).stack ?? String(err)}`);
      failed.push({ target: name, error: (err as Error).message });
    }
  };
  try {
    if (PARTS.has('targets')) for (const spec of specs) await attempt(targetLabel(spec), async () => { results.push(await measureTarget(spec, peer, S, { registrations: true, hello })); });
    // The peers, each just after a raw loop of its own: BullMQ on Redis, pg-boss on PostgreSQL.
    for (const name of PARTS.has('peers') ? S.peers : []) {
      if (name === 'pg-boss' && !specs.some((s) => s.store === 'postgres')) continue;
      await attempt(`peer ${name}`, async () => {
        log(`peer ${name}: baseline, then ${S.webhooks} callbacks`);
        peerBaselines.push(await baseline(peer, S.webhooks, S.concurrency, S.perHost));
        const o = { concurrency: S.concurrency, perHost: S.perHost, bases: peer.bases };
        const r = name === 'bullmq' ? await bullmqRun(peer, S.webhooks, { ...o, redisUrl: S.redisUrl }) : await pgBossRun(peer, S.webhooks, { ...o, pgUrl: S.pgUrl });
        log(`peer ${name}: ${r.perSecond} callbacks/s (${r.received} of ${S.webhooks})`);
        peers.push(r);
      });
    }
    if (S.scale > 0 && PARTS.has('scale')) {
      for (const spec of specs.filter((s) => s.workers === 0)) await attempt(`scale ${targetLabel(spec)}`, async () => { scale.push(await scaleRun(spec, peer, S)); });
    }
  } finally {
    await hello.close();
    await peer.close();
  }
  if (S.importLines > 0 && PARTS.has('import')) {
    for (const store of [...new Set(specs.map((s) => s.store))]) {
      await attempt(`records import ${store}`, async () => {
        log(`records import of ${S.importLines} lines, ${store}`);
        const r = await importRun(store, S);
        log(`records import ${store}: ${r.wallSeconds} s, ${r.linesPerSecond} lines/s, max RSS ${r.maxRssMb} MB`);
        imports.push(r);
      });
    }
  }
  const cli = cliStart();

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
- Latency: ${fmt(S.rates.at(-1))} changes/s (the last of the rates run: ${S.rates.join(', ')}) for ${S.seconds} s, each \`PUT /admin/api/records/{orcid}\` of a record with one webhook; from the request leaving the client to the callback arriving.`);

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

  console.log(`\n## Issue 12: every figure beside its reference (CPU pressure over the run ${runPressure()}, log level ${S.logLevel})\n`);
  console.log(issue12Table(issue12Rows({ hosts: S.hosts, results, peers, peerBaselines, scale, imports, cli })));
  for (const s of skipped) console.log(`\n${s}`);
  for (const f of failed) console.log(`\n${f.target}: FAILED (${f.error})`);
  writeResults({ script: 'bench', at: new Date().toISOString(), durationSeconds: Math.round((Date.now() - started) / 1000), machine: m, settings: S, skipped, failed, results, peers, peerBaselines, scale, imports, cli, cpuPressure: runPressure() });
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
