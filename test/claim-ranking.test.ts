/*
 * SQLite ranks a claim's candidates in JS (pickCandidates) instead of with claimSql's window
 * functions, which PostgreSQL runs (issue 12). The two must pick the same rows: random backlogs,
 * limits, free slots and exclusions, claimed by SQLiteStore and by the window-function statement
 * on an identical database.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Row } from '../src/store/dialect.ts';
import type { Params } from '../src/store/dialect.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import type { ClaimOptions } from '../src/store/types.ts';

const T0 = 1_700_000_000_000;
const HOSTS = ['a.example', 'b.example', 'c.example', 'd.example', 'constructor', 'e.example:8443'];
const CLIENTS = ['c1', 'c2', 'c3', 'toString'];

/** The claim as PostgreSQL makes it: claimSql, window functions, on the same SQLite database. */
class WindowClaims extends SqliteStore {
  protected override claimRows(o: ClaimOptions, p: Params): Promise<Row[]> {
    return (SqlStore.prototype as unknown as { claimRows(o: ClaimOptions, p: Params): Promise<Row[]> }).claimRows.call(this, o, p);
  }
}

/** A small deterministic generator (mulberry32), so that a failure can be replayed from its seed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function backlog(store: SqliteStore, rnd: () => number): Promise<void> {
  await store.migrate();
  for (const id of CLIENTS) await store.createClient({ id, name: id, secretHash: 'h', premium: true, createdAt: T0 });
  const records = Array.from({ length: 60 }, (_, i) => `0000-0003-0000-${String(i).padStart(4, '0')}`);
  await store.addRecords(records, T0);
  for (const [i, orcid] of records.entries()) {
    const host = HOSTS[Math.floor(rnd() * HOSTS.length)]!;
    const clientId = CLIENTS[Math.floor(rnd() * CLIENTS.length)]!;
    await store.registerWebhook({ clientId, orcid, url: `https://${host}/${i}`, host, now: T0 });
  }
  // Due at a few instants (ties broken by id), some not yet due; a few already leased.
  store.db.prepare('UPDATE webhooks SET due_at = ?, pending_since = ? WHERE id = ?').run(T0, T0, 1);
  for (let id = 1; id <= 60; id++) store.db.prepare('UPDATE webhooks SET due_at = ?, pending_since = ? WHERE id = ?').run(T0 + Math.floor(rnd() * 12) * 10, T0, id);
  for (let id = 1; id <= 60; id++) if (rnd() < 0.1) store.db.prepare('UPDATE webhooks SET lease_owner = ?, lease_until = ? WHERE id = ?').run('held', T0 + 1e9, id);
}

function options(rnd: () => number, n: number): ClaimOptions {
  const pick = <T>(xs: T[], p: number): T[] => xs.filter(() => rnd() < p);
  const slots = (keys: string[], max: number) => Object.fromEntries(pick(keys, 0.4).map((k) => [k, Math.floor(rnd() * max)]));
  const perHostLimit = rnd() < 0.2 ? undefined : 1 + Math.floor(rnd() * 5);
  const perClientLimit = rnd() < 0.3 ? undefined : 1 + Math.floor(rnd() * 8);
  return {
    lease: `lease-${n}`, limit: 1 + Math.floor(rnd() * 25), now: T0 + Math.floor(rnd() * 120), leaseMs: 30_000,
    excludeHosts: pick(HOSTS, 0.15), excludeClients: pick(CLIENTS, 0.1),
    ...(perHostLimit !== undefined && { perHostLimit, hostSlots: slots(HOSTS, perHostLimit) }),
    ...(perClientLimit !== undefined && { perClientLimit, clientSlots: slots(CLIENTS, perClientLimit) }),
  };
}

describe('SQLite claim ranking', () => {
  it('picks exactly the rows claimSql\'s window functions pick (40 random backlogs, 3 claims each)', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const js = new SqliteStore(':memory:');
      const sql = new WindowClaims(':memory:');
      try {
        await backlog(js, random(seed));
        await backlog(sql, random(seed));
        const rnd = random(1000 + seed);
        for (let n = 0; n < 3; n++) {
          const o = options(rnd, n);
          const ids = async (s: SqliteStore) => (await s.claimDue(o)).map((c) => c.webhook.id);
          const [a, b] = [await ids(js), await ids(sql)];
          assert.deepEqual(a, b, `seed ${seed}, claim ${n}: ${JSON.stringify(o)}`);
          if (n === 0 && seed === 1) assert.ok(a.length > 0, 'the first claim takes something');
        }
      } finally {
        await js.close();
        await sql.close();
      }
    }
  });
});
