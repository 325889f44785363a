/*
 * The store's hot paths, driven directly (no HTTP), on SQLite and PostgreSQL, for two source trees
 * in one process, interleaved round by round (before, after, before, after...) so that both see the
 * same machine. Per path: ops/s and CPU ms per op (this process: the driver's and SQLite's work),
 * and on PostgreSQL the server's CPU ms per op (its backends serving the store, read from /proc:
 * the database must run on this machine).
 *
 *   npm run bench:store -- [--before DIR] [--after DIR] [--rounds N] [--webhooks N] [--pg URL] [--no-pg]
 *
 * DIR is a `src` directory (default: this tree's for both; e.g. --before /work/main/src).
 * Paths: registerWebhook answering 201 (created) and 204 (exists), applyChanges (a bulk change of
 * `--batch` records per call), claimDue (50 per call) and completeAttempts (those 50, successes).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { Store } from '../src/store/types.ts';

const { values: a } = parseArgs({
  options: {
    before: { type: 'string', default: 'src' }, after: { type: 'string', default: 'src' }, rounds: { type: 'string', default: '3' },
    webhooks: { type: 'string', default: '2000' }, batch: { type: 'string', default: '500' },
    pg: { type: 'string', default: process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test' }, 'no-pg': { type: 'boolean', default: false },
  },
});
const N = Number(a.webhooks);
const BATCH = Number(a.batch);
const CLAIM = 50;
/** The lease token's name before issue 10 (`owner`), for a tree from before it. */
const BOTH: object = { owner: 'bench#1' };
const PATHS = ['register 201', 'register 204', 'applyChanges', 'claimDue', 'completeAttempts'] as const;
type PathName = (typeof PATHS)[number];
type Stores = { sqlite: (path: string) => Store; postgres: (url: string) => Store };

async function load(dir: string): Promise<Stores> {
  const src = pathToFileURL(`${resolve(dir)}/`).href;
  const { SqliteStore } = await import(`${src}store/sqlite/sqlite-store.ts`);
  const { PostgresStore } = await import(`${src}store/postgres/postgres-store.ts`);
  return { sqlite: (p) => new SqliteStore(p), postgres: (u) => new PostgresStore(u) };
}

const orcid = (i: number): string => {
  const base = `0000000${String(100000 + i).padStart(8, '0')}`;
  let total = 0;
  for (const ch of base) total = (total + Number(ch)) * 2;
  const r = (12 - (total % 11)) % 11;
  const d = `${base}${r === 10 ? 'X' : r}`;
  return `${d.slice(0, 4)}-${d.slice(4, 8)}-${d.slice(8, 12)}-${d.slice(12)}`;
};

interface Measured { opsPerSec: number; cpuMsPerOp: number; serverCpuMsPerOp: number | null }
/** CPU ms used so far by the database server's processes serving the store (null: not measured). */
type ServerCpu = () => Promise<number | null>;
const TICK_MS = 10; // USER_HZ = 100 on Linux

/** Runs fn `ops` times through `step`, timing wall clock, this process's CPU and the server's. */
async function measure(ops: number, step: (i: number) => Promise<unknown>, server: ServerCpu): Promise<Measured> {
  const s0 = await server();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < ops; i++) await step(i);
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const s1 = await server();
  return { opsPerSec: (ops * 1000) / ms, cpuMsPerOp: (cpu.user + cpu.system) / 1000 / ops, serverCpuMsPerOp: s0 === null || s1 === null ? null : (s1 - s0) / ops };
}

/** The CPU of the backends whose application_name is `app`, by pid; a backend gone keeps its last reading. */
function backendsCpu(admin: pg.Client, app: string): ServerCpu {
  const seen = new Map<number, number>();
  return async () => {
    const { rows } = await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [app]);
    for (const { pid } of rows) {
      try {
        const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        seen.set(pid, (Number(f[11]) + Number(f[12])) * TICK_MS);
      } catch {
        // exited meanwhile: keep its last reading
      }
    }
    let total = 0;
    for (const v of seen.values()) total += v;
    return total;
  };
}

async function round(open: () => Store, server: ServerCpu): Promise<Record<PathName, Measured>> {
  const s = open();
  await s.migrate();
  const now = Date.now();
  await s.createClient({ id: 'APP-BENCH', name: 'bench', secretHash: 'x', premium: true, createdAt: now - 60_000 });
  const orcids = Array.from({ length: N }, (_, i) => orcid(i));
  await s.addRecords(orcids, now - 60_000);
  const reg = (i: number) => s.registerWebhook({ clientId: 'APP-BENCH', orcid: orcids[i]!, url: `https://h${i % 20}.example/cb/${i}`, host: `h${i % 20}.example`, now: now - 30_000 });
  const out = {} as Record<PathName, Measured>;
  out['register 201'] = await measure(N, reg, server);
  out['register 204'] = await measure(N, reg, server);
  let t = now;
  out.applyChanges = await measure(4 * Math.ceil(N / BATCH), async (k) => {
    const from = (k * BATCH) % N;
    t += 1;
    await s.applyChanges(orcids.slice(from, from + BATCH).map((o) => ({ orcid: o, modifiedAt: t })), { create: false, now: now - 1000, notifyDelayMs: 0 });
  }, server);
  const claims: Awaited<ReturnType<Store['claimDue']>>[] = [];
  out.claimDue = await measure(Math.floor(N / CLAIM), async () => {
    claims.push(await s.claimDue({ ...BOTH, lease: 'bench#1', limit: CLAIM, now, leaseMs: 600_000, excludeHosts: [] }));
  }, server);
  out.completeAttempts = await measure(claims.length, async (k) => {
    await s.completeAttempts(claims[k]!.map((c) => ({
      ...BOTH, webhookId: c.webhook.id, lease: 'bench#1', claimedSeq: c.webhook.changeSeq, notificationId: `n${c.webhook.id}`, startedAt: now, durationMs: 3,
      statusCode: 200, error: null, responseSnippet: null, latencyMs: 5, outcome: { kind: 'success' }, nextDueAt: now,
    })));
  }, server);
  if (claims.flat().length !== N) throw new Error(`claimed ${claims.flat().length} of ${N}`);
  await s.close();
  return out;
}

const pressure = (): string => {
  try {
    return readFileSync('/proc/pressure/cpu', 'utf8').split('\n')[0]!;
  } catch {
    return 'n/a';
  }
};

const trees = { before: await load(a.before), after: await load(a.after) };
const dbs: ('sqlite' | 'postgres')[] = a['no-pg'] ? ['sqlite'] : ['sqlite', 'postgres'];
const results: Record<string, Record<PathName, Measured>[]> = {};
console.log(`# store hot paths: ${N} webhooks, bulk change batches of ${BATCH}, claims of ${CLAIM}; before=${a.before} after=${a.after}`);
console.log(`# cpu pressure at start: ${pressure()}`);
const admin = a['no-pg'] ? null : new pg.Client({ connectionString: a.pg });
await admin?.connect();
for (let r = 1; r <= Number(a.rounds); r++) {
  for (const db of dbs) {
    for (const tree of ['before', 'after'] as const) {
      let cleanup = async (): Promise<void> => undefined;
      let open: () => Store;
      let server: ServerCpu = async () => null;
      if (db === 'sqlite') {
        const dir = mkdtempSync(join(tmpdir(), 'bench-store-'));
        open = () => trees[tree].sqlite(join(dir, 'db.sqlite'));
        cleanup = async () => rmSync(dir, { recursive: true, force: true });
      } else {
        const schema = `bench_store_${process.pid}_${r}_${tree}`;
        await admin!.query(`CREATE SCHEMA ${schema}`);
        const u = new URL(a.pg);
        u.searchParams.set('schema', schema);
        u.searchParams.set('application_name', schema);
        open = () => trees[tree].postgres(u.toString());
        server = backendsCpu(admin!, schema);
        cleanup = async () => void (await admin!.query(`DROP SCHEMA ${schema} CASCADE`));
      }
      try {
        (results[`${db} ${tree}`] ??= []).push(await round(open, server));
      } finally {
        await cleanup();
      }
      process.stderr.write(`round ${r} ${db} ${tree} done\n`);
    }
  }
}
await admin?.end();

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
console.log(`# cpu pressure at end: ${pressure()}`);
console.log('\n| store | path | before ops/s | after ops/s | after/before | before CPU ms/op | after CPU ms/op | after/before | before server CPU ms/op | after server CPU ms/op | after/before |');
console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const db of dbs) {
  for (const p of PATHS) {
    const m = (tree: string, k: 'opsPerSec' | 'cpuMsPerOp') => median(results[`${db} ${tree}`]!.map((x) => x[p][k]));
    const [bo, ao, bc, ac] = [m('before', 'opsPerSec'), m('after', 'opsPerSec'), m('before', 'cpuMsPerOp'), m('after', 'cpuMsPerOp')];
    const sv = (tree: string): number | null => {
      const xs = results[`${db} ${tree}`]!.map((x) => x[p].serverCpuMsPerOp);
      return xs.every((x) => x !== null) ? median(xs as number[]) : null;
    };
    const [bs, as] = [sv('before'), sv('after')];
    const server = bs === null || as === null ? '— | — | —' : `${bs.toFixed(3)} | ${as.toFixed(3)} | ${bs > 0 ? (as / bs).toFixed(3) : 'n/a'}`;
    console.log(`| ${db} | ${p} | ${bo.toFixed(0)} | ${ao.toFixed(0)} | ${(ao / bo).toFixed(3)} | ${bc.toFixed(3)} | ${ac.toFixed(3)} | ${(ac / bc).toFixed(3)} | ${server} |`);
  }
}
