/*
 * Issue 12's size runs. The scale run: a database of BENCH_SCALE webhooks (90 % held by one
 * client), built by direct inserts (setup), then measured as users use the service: registrations
 * by the big client and by a new one, a change's latency, the overview, /metrics and the client's
 * `GET /webhooks?state=failing`, the event loop's longest block meanwhile and the RSS; each beside
 * the same on the small database it started as (1,000 webhooks), in the same process. And
 * `records import` of BENCH_IMPORT_LINES lines through the CLI users run, into a fresh database.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Pool } from 'undici';
import { benchOrcid, callbackUrl, percentiles, round1, sleep, wallNow, type Percentiles } from './common.ts';
import type { Peer } from './peer-client.ts';
import { log } from './report.ts';
import { cpuPressure } from './scenarios.ts';
import { PostgresStore } from './shipped.ts';
import { insertRows, startTarget, targetLabel, type Target, type TargetSpec } from './targets.ts';
import type { Settings } from './suite.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Resident set size (MB) of a process, and its peak, from /proc. */
export function rssMb(pid: number): { rss: number | null; peak: number | null } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN);
    return { rss: Math.round(kb('VmRSS') / 1024), peak: Math.round(kb('VmHWM') / 1024) };
  } catch {
    return { rss: null, peak: null };
  }
}

/**
 * The service's event loop, seen from outside: GET /health every 5 ms (one at a time); the slowest
 * answer bounds the longest block of its event loop meanwhile (plus one small request's time).
 */
function loopSampler(apiUrl: string): () => Promise<{ maxMs: number; p50Ms: number }> {
  const pool = new Pool(apiUrl, { connections: 1 });
  const times: number[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      const s = wallNow();
      const res = await pool.request({ method: 'GET', path: '/health' });
      await res.body.dump();
      times.push(wallNow() - s);
      await sleep(5);
    }
  })();
  return async () => {
    running = false;
    await done;
    await pool.close();
    const p = percentiles(times);
    return { maxMs: p.max, p50Ms: p.p50 };
  };
}

export interface ReadFigure {
  requestMs: Percentiles;
  /** Slowest /health answer while these requests ran (event-loop block). */
  loopMaxMs: number;
}

const READS = 40;

async function reads(t: Target, path: string, token: string, times: number): Promise<ReadFigure> {
  const pool = new Pool(t.apiUrl, { connections: 1 });
  const stop = loopSampler(t.apiUrl);
  const ms: number[] = [];
  try {
    for (let i = 0; i < times; i++) {
      const s = wallNow();
      const res = await pool.request({ method: 'GET', path, headers: { authorization: `Bearer ${token}` } });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`GET ${path} answered ${res.statusCode}`);
      ms.push(wallNow() - s);
      await sleep(20);
    }
  } finally {
    await pool.close();
  }
  const loop = await stop();
  return { requestMs: percentiles(ms), loopMaxMs: loop.maxMs };
}

export interface ScalePhase {
  webhooks: number;
  /** 201s/s by the client holding 90 % (on the small database: its 1,000) and by a client with none. */
  bigClientPerSecond: number;
  newClientPerSecond: number;
  bigClientLoopMaxMs: number;
  overview: ReadFigure;
  metrics: ReadFigure;
  failing: ReadFigure;
  /** Change-to-callback at a low rate (PUT /admin/api/records). */
  changeLatencyMs: Percentiles;
  rssMb: number | null;
  cpuPressurePct: number | null;
}

export interface ScaleResult {
  target: string;
  webhooks: number;
  buildSeconds: number;
  small: ScalePhase;
  big: ScalePhase;
}

/**
 * Registrations by each client in each phase: 500 took ~0.1 s, and the small database's reference
 * moved 2,377-5,133/s between two quiet runs.
 */
const REGISTRATIONS = 2_000;

async function phase(t: Target, peer: Peer, S: Settings, regFrom: number, webhooks: number): Promise<ScalePhase> {
  const n = REGISTRATIONS;
  const pressure = cpuPressure();
  const stop = loopSampler(t.apiUrl);
  const big = await peer.register({ apiUrl: t.apiUrl, tokens: [t.tokens[0]!], from: regFrom, count: n, concurrency: S.regConcurrency, expect: 201 });
  const bigLoop = await stop();
  const fresh = await peer.register({ apiUrl: t.apiUrl, tokens: [t.tokens[1]!], from: regFrom + n, count: n, concurrency: S.regConcurrency, expect: 201 });
  if (big.failed || fresh.failed) throw new Error(`scale registrations failed: ${JSON.stringify(big.statuses)} ${JSON.stringify(fresh.statuses)}`);
  // 40 reads each: a p50 of 10 reads of a few ms moved by ±20 % between identical runs.
  const overview = await reads(t, '/admin/api/overview', t.adminToken, READS);
  const metrics = await reads(t, '/metrics', t.adminToken, READS);
  const failing = await reads(t, '/webhooks?state=failing', t.tokens[0]!, READS);
  // Records 0..199 carry one webhook each of the big client, calling back /cb/<i>.
  const lat = await peer.latency({ apiUrl: t.apiUrl, adminToken: t.adminToken, rate: 50, seconds: 4, records: 200, connections: 4, graceMs: 10_000 });
  return {
    webhooks, bigClientPerSecond: big.perSecond, newClientPerSecond: fresh.perSecond, bigClientLoopMaxMs: bigLoop.maxMs,
    overview, metrics, failing, changeLatencyMs: lat.latencyMs,
    rssMb: t.pids.map((p) => rssMb(p).rss).reduce<number | null>((a, b) => (a === null || b === null ? null : a + b), 0), cpuPressurePct: pressure(),
  };
}

/** The scale run on one configuration (the service in this process: SQLite, or PostgreSQL with role all). */
export async function scaleRun(spec: TargetSpec, peer: Peer, S: Settings): Promise<ScaleResult> {
  const N = S.scale;
  const small = 1000;
  const t = await startTarget(spec, {
    logLevel: S.logLevel, concurrency: S.concurrency, perHostConcurrency: S.perHost, pgUrl: S.pgUrl, records: N + small + 4 * REGISTRATIONS, clients: 3,
  });
  const label = `${targetLabel(spec)}, ${N.toLocaleString('en-US')} webhooks`;
  try {
    const rows = (from: number, to: number, clientId: string) => Array.from({ length: to - from }, (_, k) => {
      const url = callbackUrl(peer.bases, from + k);
      return { clientId, orcid: benchOrcid(from + k), url, host: new URL(url).host.toLowerCase() };
    });
    await insertRows(t.store, rows(0, small, t.clientIds[0]!));
    log(`${label}: small database (${small} webhooks)`);
    const smallPhase = await phase(t, peer, S, N + small, small);
    log(`${label}: building (90 % for one client, by direct inserts)`);
    const b0 = performance.now();
    const bigShare = Math.round(N * 0.9);
    for (let i = small; i < N; i += 100_000) {
      const to = Math.min(N, i + 100_000);
      const split = Math.max(i, Math.min(to, bigShare));
      if (split > i) await insertRows(t.store, rows(i, split, t.clientIds[0]!));
      if (to > split) await insertRows(t.store, rows(split, to, t.clientIds[2]!));
    }
    // As autovacuum would soon after such a load: the planner's statistics of the new table.
    if (t.store instanceof PostgresStore) await t.store.pool.query('ANALYZE');
    const buildSeconds = round1((performance.now() - b0) / 1000);
    await sleep(1000);
    log(`${label}: built in ${buildSeconds} s; measuring`);
    const bigPhase = await phase(t, peer, S, N + small + 2 * REGISTRATIONS, N + 2 * REGISTRATIONS);
    log(`${label}: big client ${bigPhase.bigClientPerSecond}/s (small db ${smallPhase.bigClientPerSecond}/s), overview p50 ${bigPhase.overview.requestMs.p50} ms (small ${smallPhase.overview.requestMs.p50} ms), loop max ${bigPhase.overview.loopMaxMs} ms`);
    return { target: label, webhooks: N, buildSeconds, small: smallPhase, big: bigPhase };
  } finally {
    await t.close();
  }
}

export interface ImportResult {
  target: string;
  lines: number;
  wallSeconds: number;
  linesPerSecond: number;
  maxRssMb: number | null;
  cpuPressurePct: number | null;
  command: string;
}

/** `orcid-webhooks records import` of `lines` CSV lines into a fresh database, as a user runs it. */
export async function importRun(store: 'sqlite' | 'postgres', S: Settings): Promise<ImportResult> {
  const dir = mkdtempSync(join(tmpdir(), 'ow-bench-import-'));
  const file = join(dir, 'changes.csv');
  const when = new Date(Date.now() - 60_000).toISOString();
  const out: string[] = ['orcid,last_modified'];
  for (let i = 0; i < S.importLines; i++) out.push(`${benchOrcid(i)},${when}`);
  writeFileSync(file, `${out.join('\n')}\n`);
  let db = `sqlite:${join(dir, 'import.db')}`;
  const schema = `ow_bench_import_${randomBytes(4).toString('hex')}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: S.pgUrl });
    await c.connect();
    await c.query(sql).finally(() => c.end());
  };
  if (store === 'postgres') {
    await admin(`CREATE SCHEMA ${schema}`);
    const u = new URL(S.pgUrl);
    u.searchParams.set('schema', schema);
    db = u.toString();
  }
  // What users run: the compiled CLI (npm run build), else the TypeScript through tsx.
  const compiled = existsSync(join(ROOT, 'dist/cli/bin.js'));
  const cli = compiled ? ['dist/cli/bin.js'] : ['--import', 'tsx', 'src/cli/main.ts'];
  try {
    // The schema first (migrate), so that the import's time is the import's.
    const m = spawnSync(process.execPath, [...cli, 'migrate', '--db', db], { cwd: ROOT, encoding: 'utf8' });
    if (m.status !== 0) throw new Error(`migrate failed: ${m.stderr}`);
    const pressure = cpuPressure();
    const t0 = performance.now();
    const r = spawnSync('/usr/bin/time', ['-f', 'maxrss %M', process.execPath, ...cli, 'records', 'import', '--db', db, '--json', file], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
    const wall = (performance.now() - t0) / 1000;
    if (r.status !== 0) throw new Error(`records import failed (${r.status}): ${r.stderr.slice(-2000)}`);
    const rss = /maxrss (\d+)/.exec(r.stderr)?.[1];
    return {
      target: store === 'sqlite' ? 'SQLite' : 'PostgreSQL', lines: S.importLines, wallSeconds: round1(wall), linesPerSecond: Math.round(S.importLines / wall),
      maxRssMb: rss ? Math.round(Number(rss) / 1024) : null, cpuPressurePct: pressure(), command: `node ${cli.join(' ')} records import`,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    if (store === 'postgres') await admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
  }
}
