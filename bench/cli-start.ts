/*
 * npm run bench:cli: how long `orcid-webhooks --version` (and `--help`) take to start and exit,
 * beside `node -e 0` (Node's own start, the floor) measured in the same run, interleaved so that
 * all see the same machine. The compiled executable (dist/, built by `npm run build`) is what users
 * run; the old way, TypeScript through tsx, is measured too for comparison.
 * Wall time is spawn to exit; CPU time (user + system, from GNU time when /usr/bin/time exists)
 * changes little when other work competes for the cores, so it is the figure to compare on a
 * loaded machine. Prints a Markdown table (BENCHMARKS.md) and writes bench/results/cli-start.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fmt, machine, markdownTable } from './lib/report.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = 'dist/cli/bin.js';
const RUNS = Number(process.env.BENCH_CLI_RUNS ?? 21);

const commands: { label: string; args: string[] }[] = [
  { label: '`node -e 0` (baseline)', args: ['-e', '0'] },
  { label: '`orcid-webhooks --version`', args: [BIN, '--version'] },
  { label: '`orcid-webhooks --help`', args: [BIN, '--help'] },
  { label: '`orcid-webhooks records --help`', args: [BIN, 'records', '--help'] },
  { label: 'before: `--version` through tsx', args: ['--import', 'tsx', 'src/cli/main.ts', '--version'] },
];

/** Linux pressure-stall "some" total (µs): the share of time some task waited for a CPU. */
function cpuStallMicros(): number | null {
  try {
    return Number(/some .*total=(\d+)/.exec(readFileSync('/proc/pressure/cpu', 'utf8'))?.[1]);
  } catch {
    return null;
  }
}

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

if (!existsSync(new URL(`../${BIN}`, import.meta.url))) {
  console.error(`${BIN} is missing: run "npm run build" first`);
  process.exit(1);
}
const GNU_TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
const times = commands.map(() => [] as number[]);
const cpu = commands.map(() => [] as number[]);
const stall0 = cpuStallMicros();
const t0 = performance.now();
for (let run = 0; run < RUNS; run++) {
  commands.forEach((c, i) => {
    const [cmd, args] = GNU_TIME ? [GNU_TIME, ['-f', 'cpu %U %S', process.execPath, ...c.args]] : [process.execPath, c.args];
    const start = performance.now();
    const r = spawnSync(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    times[i]!.push(performance.now() - start);
    if (r.status !== 0) throw new Error(`${c.label} exited ${r.status}: ${r.stderr.toString()}`);
    const used = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr.toString());
    if (used) cpu[i]!.push((Number(used[1]) + Number(used[2])) * 1000);
  });
}
const wallMs = performance.now() - t0;
const stall1 = cpuStallMicros();
const cpuPressure = stall0 === null || stall1 === null ? null : (stall1 - stall0) / 1000 / wallMs;

const rows = commands.map((c, i) => ({
  command: c.label, p50Ms: quantile(times[i]!, 0.5), p90Ms: quantile(times[i]!, 0.9), minMs: Math.min(...times[i]!),
  cpuP50Ms: cpu[i]!.length ? quantile(cpu[i]!, 0.5) : null,
}));
const base = rows[0]!.p50Ms;
const m = machine();
console.log(`\n## CLI start (${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${m.cpus} × ${m.cpuModel}, Node ${m.node.slice(1)}, ${RUNS} runs each, CPU pressure ${cpuPressure === null ? 'n/a' : `${Math.round(cpuPressure * 100)}%`})\n`);
const s = (ms: number | null) => (ms === null ? 'n/a' : `${fmt(ms / 1000, 3)} s`);
console.log(markdownTable(['Command', 'wall p50', 'p90', 'min', 'p50 − baseline', 'CPU p50'],
  rows.map((r) => [r.command, s(r.p50Ms), s(r.p90Ms), s(r.minMs), s(r.p50Ms - base), s(r.cpuP50Ms)]),
  ['l', 'r', 'r', 'r', 'r', 'r']));
mkdirSync(new URL('results/', import.meta.url), { recursive: true });
writeFileSync(new URL('results/cli-start.json', import.meta.url), `${JSON.stringify({ machine: m, runs: RUNS, cpuPressure, rows }, null, 2)}\n`);
