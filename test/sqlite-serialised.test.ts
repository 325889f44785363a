/*
 * The SQLite store runs one transaction at a time on its one connection: an operation that finds a
 * transaction open waits for it, and must re-check right before its own synchronous statement, in
 * the same tick. Waiting through an awaited helper left a gap in which another waiter, woken by the
 * same commit, began first: concurrent admin operations then failed ("cannot start a transaction
 * within a transaction", "cannot commit - no transaction is active"), and a claim could run inside
 * another operation's transaction (its lease undone if that one rolled back).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';

async function store(): Promise<SqliteStore> {
  const s = new SqliteStore(':memory:');
  await s.migrate();
  await s.createClient({ id: 'c1', name: 'c', secretHash: 'h', premium: true, createdAt: 0 });
  await s.addRecords(['0000-0002-1825-0097'], 0);
  await s.registerWebhook({ clientId: 'c1', orcid: '0000-0002-1825-0097', url: 'https://a.example/cb', host: 'a.example', now: 1 });
  return s;
}

/** Counts the claims that begin while another transaction is open. */
function watchClaims(s: SqliteStore): { nested: number } {
  const seen = { nested: 0 };
  const inner = s as unknown as { claimTx: { immediate: (...args: unknown[]) => unknown } };
  const claimTx = inner.claimTx;
  inner.claimTx = { immediate: (...args) => (s.db.inTransaction && seen.nested++, claimTx.immediate(...args)) };
  return seen;
}

const claim = { lease: 'L', limit: 5, now: 10, leaseMs: 1000, excludeHosts: [] };

test('concurrent transactions and a claim each run alone, in turn', async () => {
  const s = await store();
  const seen = watchClaims(s);
  try {
    const results = await Promise.allSettled([
      s.recoverWebhooks('c1', 0, 5), s.recoverWebhooks('c1', 0, 5), s.recoverWebhooks('c1', 0, 5),
      s.claimDue(claim), s.revokeClient('nobody', 5), s.enableWebhook(1, 5), s.deleteWebhook('c1', '0000-0002-1825-0097', 'https://b.example/cb'),
    ]);
    assert.deepEqual(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')), ['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok']);
    assert.equal(seen.nested, 0);
    assert.equal(s.db.inTransaction, false);
  } finally {
    await s.close();
  }
});

test('a claim waiting on the same commit as a transaction does not run inside it', async () => {
  const s = await store();
  const seen = watchClaims(s);
  try {
    const first = s.replayWebhook(1, 5);
    await Promise.resolve();
    await Promise.resolve();
    const second = s.replayWebhook(1, 6);
    const claimed = s.claimDue(claim);
    await Promise.all([first, second, claimed]);
    assert.equal(seen.nested, 0, 'the claim began inside another transaction');
  } finally {
    await s.close();
  }
});
