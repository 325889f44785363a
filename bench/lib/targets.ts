/*
 * The configurations under test: the service in this process (SQLite or PostgreSQL, role "all"),
 * or PostgreSQL with one `serve --role api` child and N `serve --role worker` children sharing a
 * schema. Each comes with a premium client, its /webhook token, and the benchmark's records.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Config } from '../../src/config.ts';
import type { Service } from '../../src/service.ts';
import type { Store } from '../../src/store/types.ts';
import { benchOrcid, callbackUrl, sleep } from './common.ts';
import { CLI_MAIN, createApiClient, createLogger, logDestination, createStore, hashToken, newToken, PostgresStore, SqliteStore, startService, testConfig } from './shipped.ts';
import { timeStore, type CallStats } from './store-timing.ts';

export const ADMIN_TOKEN = `bench-admin-${randomBytes(12).toString('hex')}`;
/**
 * The service's log (every process's): a file, as `npm start > file` would write it (the service's
 * own destination, logDestination), so that the log lines cost what they cost users without burying the
 * benchmark's own output.
 */
export const SERVICE_LOG = fileURLToPath(new URL('../results/service.log', import.meta.url));

export interface TargetSpec {
  store: 'sqlite' | 'postgres';
  /** 0: the whole service in this process; n > 0: one API child and n worker children (PostgreSQL only). */
  workers: number;
}

export interface TargetOptions {
  logLevel: Config['logLevel'];
  concurrency: number;
  perHostConcurrency: number;
  pgUrl: string;
  /** Records created up front (webhooks go on records 0..records-1). */
  records: number;
  /** Premium clients created up front (registrations may spread over them). */
  clients: number;
}

export interface Target {
  label: string;
  spec: TargetSpec;
  apiUrl: string;
  adminToken: string;
  /** Premium clients and their /webhook tokens (the first one owns bulk-inserted webhooks). */
  clientIds: string[];
  tokens: string[];
  /** A store of the orchestrator's own, on the same database: setup and bulk changes. */
  store: Store;
  /** In-process service (workers = 0), else null. */
  service: Service | null;
  /** Pids of the service's processes (this one when in-process; else the API and worker children). */
  pids: number[];
  /** In-process only: a snapshot (and reset) of the time spent in the store's methods. */
  storeTiming: (() => Record<string, CallStats>) | null;
  close(): Promise<void>;
}

export function targetLabel(spec: TargetSpec): string {
  if (spec.store === 'sqlite') return 'SQLite, 1 process';
  return spec.workers === 0 ? 'PostgreSQL, 1 process' : `PostgreSQL, API + ${spec.workers} worker${spec.workers > 1 ? 's' : ''}`;
}

/** null when PostgreSQL answers at url, else why not. */
export async function pgUnreachable(url: string): Promise<string | null> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('SELECT 1');
    return null;
  } catch (err) {
    return (err as Error).message || 'connection failed';
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function pgAdmin(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  c.on('error', () => undefined);
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** The URL on the benchmark's own schema; application_name tells its sessions apart in pg_stat_activity. */
function withSchema(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set('schema', schema);
  if (!u.searchParams.has('application_name')) u.searchParams.set('application_name', 'orcid-webhooks-bench');
  return u.toString();
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function waitHttp(url: string, child: ChildProcess, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${url}: the process exited with code ${child.exitCode}`);
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      return;
    } catch {
      if (Date.now() > end) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
      await sleep(100);
    }
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(t);
}

/** Premium clients with /webhook tokens, and the benchmark's records. */
async function seed(store: Store, o: TargetOptions): Promise<{ clientIds: string[]; tokens: string[] }> {
  const clientIds: string[] = [];
  const tokens: string[] = [];
  const now = Date.now();
  for (let i = 0; i < Math.max(1, o.clients); i++) {
    const { client } = await createApiClient(store, { name: `bench ${i + 1}`, premium: true });
    const token = newToken();
    await store.createToken({ tokenHash: hashToken(token), clientId: client.id, scope: '/webhook', createdAt: now, expiresAt: now + 365 * 86_400_000 });
    clientIds.push(client.id);
    tokens.push(token);
  }
  const orcids = Array.from({ length: o.records }, (_, i) => benchOrcid(i));
  for (let i = 0; i < orcids.length; i += 10_000) await store.addRecords(orcids.slice(i, i + 10_000), now - 60_000);
  return { clientIds, tokens };
}

/**
 * Webhooks [from, to) for the first client, straight into the database: setup for the delivery
 * measurements, which do not need to pay for thousands of registrations.
 */
export async function insertWebhooks(t: Target, bases: string[], from: number, to: number): Promise<void> {
  if (to <= from) return;
  const clientId = t.clientIds[0]!;
  const rows = Array.from({ length: to - from }, (_, k) => {
    const url = callbackUrl(bases, from + k);
    return { clientId, orcid: benchOrcid(from + k), url, host: new URL(url).host.toLowerCase() };
  });
  await insertRows(t.store, rows);
}

/** n webhooks of the first client on one record, callbacks /cb/<first + k>: setup of the fan-out run. */
export async function insertWebhooksOn(t: Target, orcid: string, bases: string[], first: number, n: number): Promise<void> {
  const rows = Array.from({ length: n }, (_, k) => {
    const url = callbackUrl(bases, first + k);
    return { clientId: t.clientIds[0]!, orcid, url, host: new URL(url).host.toLowerCase() };
  });
  await insertRows(t.store, rows);
}

/**
 * Direct inserts (setup only, never measured): one transaction (SQLite) or one statement per 20,000
 * rows (PostgreSQL). Then each client's clients.webhook_count (the per-client cap's counter and the
 * overview's total, which registrations and deletions keep) is set from its rows, as migration 007
 * does: a database built here is one the service could have built.
 */
export async function insertRows(store: Store, rows: { clientId: string; orcid: string; url: string; host: string }[]): Promise<void> {
  const now = Date.now();
  const clientIds = [...new Set(rows.map((r) => r.clientId))];
  const recount = 'UPDATE clients SET webhook_count = (SELECT count(*) FROM webhooks WHERE webhooks.client_id = clients.id) WHERE id = ';
  if (store instanceof SqliteStore) {
    const ins = store.db.prepare('INSERT INTO webhooks (client_id, orcid, url, host, created_at) VALUES (?, ?, ?, ?, ?)');
    const count = store.db.prepare(`${recount}?`);
    store.db.transaction(() => {
      for (const r of rows) ins.run(r.clientId, r.orcid, r.url, r.host, now);
      for (const id of clientIds) count.run(id);
    })();
  } else if (store instanceof PostgresStore) {
    for (let i = 0; i < rows.length; i += 20_000) {
      const part = rows.slice(i, i + 20_000);
      await store.pool.query(`INSERT INTO webhooks (client_id, orcid, url, host, created_at)
        SELECT c, o, u, h, $5 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(c, o, u, h)`,
      [part.map((r) => r.clientId), part.map((r) => r.orcid), part.map((r) => r.url), part.map((r) => r.host), now]);
    }
    for (const id of clientIds) await store.pool.query(`${recount}$1`, [id]);
  } else throw new Error('unknown store');
}

/** Points the webhooks of records [from, to) at the given receivers (callback /cb/<i> kept): setup. */
export async function retargetWebhooks(t: Target, bases: string[], from: number, to: number): Promise<void> {
  const rows = Array.from({ length: to - from }, (_, k) => {
    const url = callbackUrl(bases, from + k);
    return { orcid: benchOrcid(from + k), url, host: new URL(url).host.toLowerCase() };
  });
  if (t.store instanceof SqliteStore) {
    const upd = t.store.db.prepare('UPDATE webhooks SET url = ?, host = ? WHERE orcid = ?');
    const db = t.store.db;
    db.transaction(() => {
      for (const r of rows) upd.run(r.url, r.host, r.orcid);
    })();
  } else if (t.store instanceof PostgresStore) {
    await t.store.pool.query(`UPDATE webhooks w SET url = t.u, host = t.h FROM unnest($1::text[], $2::text[], $3::text[]) AS t(o, u, h) WHERE w.orcid = t.o`,
      [rows.map((r) => r.orcid), rows.map((r) => r.url), rows.map((r) => r.host)]);
  } else throw new Error('unknown store');
}

export async function startTarget(spec: TargetSpec, o: TargetOptions): Promise<Target> {
  const label = targetLabel(spec);
  const settings = {
    adminToken: ADMIN_TOKEN, logLevel: o.logLevel, allowedTargets: ['127.0.0.0/8'],
    concurrency: o.concurrency, perHostConcurrency: o.perHostConcurrency,
    // One client registers thousands of webhooks a second here: the per-client rate limit is off.
    rateLimitPerMinute: 0,
  } satisfies Partial<Config>;

  let db: string;
  let cleanup: () => Promise<void>;
  if (spec.store === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'ow-bench-'));
    db = `sqlite:${join(dir, 'bench.db')}`;
    cleanup = async () => rmSync(dir, { recursive: true, force: true });
  } else {
    const schema = `ow_bench_${randomBytes(5).toString('hex')}`;
    await pgAdmin(o.pgUrl, `CREATE SCHEMA ${schema}`);
    db = withSchema(o.pgUrl, schema);
    cleanup = () => pgAdmin(o.pgUrl, `DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  }

  if (spec.workers === 0) {
    const config = testConfig({ ...settings, db, port: 0, host: '127.0.0.1' });
    let service: Service | null = null;
    let seeded: Awaited<ReturnType<typeof seed>>;
    try {
      mkdirSync(fileURLToPath(new URL('../results/', import.meta.url)), { recursive: true });
      service = await startService(config, { logger: createLogger(config.logLevel, logDestination(SERVICE_LOG)) });
      seeded = await seed(service.store, o);
    } catch (err) {
      await service?.close();
      await cleanup();
      throw err;
    }
    const { clientIds, tokens } = seeded;
    return {
      label, spec, apiUrl: service.url, adminToken: ADMIN_TOKEN, clientIds, tokens, store: service.store, service, pids: [process.pid],
      storeTiming: timeStore(service.store),
      async close() {
        await service.close();
        await cleanup();
      },
    };
  }

  if (spec.store !== 'postgres') throw new Error('separate worker processes need PostgreSQL');
  const store = await createStore(db);
  let seeded: Awaited<ReturnType<typeof seed>>;
  try {
    await store.migrate();
    seeded = await seed(store, o);
  } catch (err) {
    await store.close();
    await cleanup();
    throw err;
  }
  const { clientIds, tokens } = seeded;
  const common = [
    '--db', db, '--host', '127.0.0.1', '--admin-token', ADMIN_TOKEN, '--log-level', o.logLevel,
    '--allowed-targets', '127.0.0.0/8', '--concurrency', String(o.concurrency), '--per-host-concurrency', String(o.perHostConcurrency),
    '--rate-limit', '0',
  ];
  const children: ChildProcess[] = [];
  const start = async (role: 'api' | 'worker'): Promise<string> => {
    const port = await freePort();
    mkdirSync(fileURLToPath(new URL('../results/', import.meta.url)), { recursive: true });
    const logFd = openSync(SERVICE_LOG, 'a');
    const child = spawn(process.execPath, [CLI_MAIN, 'serve', '--role', role, '--port', String(port), '--log-format', 'json', ...common], {
      stdio: ['ignore', logFd, 'inherit'],
    });
    closeSync(logFd);
    children.push(child);
    const url = `http://127.0.0.1:${port}`;
    await waitHttp(`${url}/`, child);
    return url;
  };
  try {
    const apiUrl = await start('api');
    await Promise.all(Array.from({ length: spec.workers }, () => start('worker')));
    // The worker starts (LISTEN) just after its HTTP server: give it a moment.
    await sleep(500);
    return {
      label, spec, apiUrl, adminToken: ADMIN_TOKEN, clientIds, tokens, store, service: null, pids: children.map((c) => c.pid ?? 0), storeTiming: null,
      async close() {
        await Promise.all(children.map(stopChild));
        await store.close();
        await cleanup();
      },
    };
  } catch (err) {
    await Promise.all(children.map(stopChild));
    await store.close();
    await cleanup();
    throw err;
  }
}
