/*
 * EXPLAIN ANALYZE of claimDue's statement on PostgreSQL for a small claim (issue 12, cause 6):
 * WEBHOOKS webhooks on HOSTS hosts, INFLIGHT of them due and leased by a live worker (callbacks in
 * flight), DUE due and free; then the claim the worker makes under load (a few slots). Also times
 * claimDue itself on both stores. node --import tsx bench/claim-explain.ts
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { postgres } from '../src/store/dialect.ts';
import { PostgresStore } from '../src/store/postgres/postgres-store.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import { claimScanSize, claimSql } from '../src/store/sql/claims.ts';
import { orcidFromBase } from '../src/domain/orcid-id.ts';
import type { ClaimOptions, Store } from '../src/store/types.ts';

const N = Number(process.env.WEBHOOKS ?? 20_000);
const HOSTS = 32;
const INFLIGHT = Number(process.env.INFLIGHT ?? 200);
const DUE = Number(process.env.DUE ?? 8);
const URL_ = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function seed(store: Store, exec: (sql: string) => Promise<unknown>): Promise<void> {
  await store.createClient({ id: 'c1', name: 'c1', secretHash: 'x', premium: true, createdAt: 0 } as never);
  await exec(`INSERT INTO records (orcid, modified_at, created_at) VALUES ${Array.from({ length: N }, (_, i) => `('${orcidFromBase(100_000_000_000 + i)}', 0, 0)`).join(',')}`);
  await exec(`INSERT INTO webhooks (client_id, orcid, url, host, created_at, public_id) VALUES ${Array.from({ length: N }, (_, i) => `('c1', '${orcidFromBase(100_000_000_000 + i)}', 'http://h${i % HOSTS}/cb/${i}', 'h${i % HOSTS}', 0, 'p${i}')`).join(',')}`);
  await store.heartbeat('w1');
  const now = Date.now();
  await exec(`UPDATE webhooks SET change_seq = 1, notify_seq = 1, pending_since = ${now - 100}, due_at = ${now - 50}, lease_owner = 'w1#0', lease_worker = 'w1', lease_until = ${now + 600_000} WHERE id <= ${INFLIGHT}`);
  await exec(`UPDATE webhooks SET change_seq = 1, notify_seq = 1, pending_since = ${now - 10}, due_at = ${now - 5} WHERE id > ${INFLIGHT} AND id <= ${INFLIGHT + DUE}`);
}

function opts(limit: number): ClaimOptions {
  const hostSlots: Record<string, number> = {};
  for (let h = 0; h < HOSTS; h++) hostSlots[`h${h}`] = 2;
  return { lease: `w1#${randomBytes(3).toString('hex')}`, limit, now: Date.now(), leaseMs: 60_000, excludeHosts: [], hostSlots, perHostLimit: 8, perClientLimit: 256, clientSlots: { c1: 50 }, excludeClients: [], worker: 'w1', workerStaleMs: 30_000 } as ClaimOptions;
}

async function time(store: Store, reset: () => Promise<unknown>, label: string): Promise<void> {
  const runs = 300;
  let total = 0;
  for (let i = 0; i < runs; i++) {
    await reset();
    const t0 = performance.now();
    const got = await store.claimDue(opts(8));
    total += performance.now() - t0;
    if (got.length !== DUE) throw new Error(`claimed ${got.length}`);
  }
  console.log(`${label}: claimDue of ${DUE} rows (of ${N}, ${INFLIGHT} in flight): ${(total / runs).toFixed(3)} ms mean over ${runs}`);
}

const reset = `UPDATE webhooks SET lease_owner = NULL, lease_worker = NULL, lease_until = NULL WHERE id > ${INFLIGHT} AND id <= ${INFLIGHT + DUE}`;

// PostgreSQL
const schema = `ow_claim_${randomBytes(4).toString('hex')}`;
const admin = new pg.Client({ connectionString: URL_ });
await admin.connect();
await admin.query(`CREATE SCHEMA ${schema}`);
try {
  const u = new URL(URL_);
  u.searchParams.set('schema', schema);
  const store = new PostgresStore(u.toString());
  await store.migrate();
  const q = (sql: string) => store.pool.query(sql);
  await seed(store, q);
  await q('ANALYZE');
  const o = opts(8);
  const c = postgres.compile(claimSql(postgres));
  const p: Record<string, unknown> = {
    ...o, exclude: o.excludeHosts, excludeClients: o.excludeClients ?? [], stale: o.workerStaleMs, scan: claimScanSize(o.limit, o.perHostLimit, o.perClientLimit),
    perHost: o.perHostLimit, perClient: o.perClientLimit, hostSlots: JSON.stringify(o.hostSlots), clientSlots: JSON.stringify(o.clientSlots),
  };
  const client = await store.pool.connect();
  await client.query('BEGIN');
  const plan = await client.query({ text: `EXPLAIN (ANALYZE, BUFFERS) ${c.text}`, values: c.names.map((n) => p[n] ?? null) });
  await client.query('ROLLBACK');
  client.release();
  console.log(plan.rows.map((r) => r['QUERY PLAN']).join('\n'));
  await time(store, () => q(reset), 'PostgreSQL');
  // Interleaved: the statement unnamed (planned each call) and prepared, same connection pool, same data.
  const conn = (store as unknown as { conn: { all(sql: string, p: object, name?: string): Promise<unknown[]> } }).conn;
  const sum = { unnamed: 0, prepared: 0 };
  for (let i = 0; i < 400; i++) {
    for (const kind of ['unnamed', 'prepared'] as const) {
      await q(reset);
      const t0 = performance.now();
      await conn.all(claimSql(postgres), { ...p, lease: `x${i}${kind}`, now: Date.now() }, kind === 'prepared' ? 'claim-explain' : undefined);
      sum[kind] += performance.now() - t0;
    }
  }
  console.log(`PostgreSQL claim statement, interleaved: unnamed ${(sum.unnamed / 400).toFixed(3)} ms, prepared ${(sum.prepared / 400).toFixed(3)} ms`);
  await store.close();
} finally {
  await admin.query(`DROP SCHEMA ${schema} CASCADE`);
  await admin.end();
}

// SQLite
const dir = mkdtempSync(join(tmpdir(), 'ow-claim-'));
try {
  const store = new SqliteStore(join(dir, 'x.db'));
  await store.migrate();
  const exec = async (sql: string) => store.db.exec(sql);
  await seed(store, exec);
  await exec('ANALYZE');
  await time(store, () => exec(reset), 'SQLite');
  await store.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
