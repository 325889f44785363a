import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import { eventually } from './helpers/receiver.ts';

test('a service store checkpoints the WAL on a background thread, not inside commits', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ow-ckpt-'));
  const path = join(dir, 'db.sqlite');
  const store = new SqliteStore(path, { backgroundCheckpoint: true });
  try {
    await store.migrate();
    assert.equal(store.db.pragma('wal_autocheckpoint', { simple: true }), 0, 'commits never checkpoint');
    const orcids = Array.from({ length: 5000 }, (_, i) => `0000-0000-0000-${String(i).padStart(4, '0')}`);
    await store.addRecords(orcids, Date.now());
    await eventually(() => store.checkpointer!.stats.lastCheckpointed > 0, 5000, 'a background checkpoint');
    assert.equal(store.checkpointer!.stats.lastError, null);
    // Everything written is in the main file now: a later writer reuses the WAL from its start.
    assert.ok(statSync(path).size > 100_000);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('short-lived stores (the CLI) keep SQLite\'s automatic checkpoints and start no thread', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ow-ckpt-'));
  const store = new SqliteStore(join(dir, 'db.sqlite'));
  try {
    assert.equal(store.checkpointer, null);
    assert.equal(store.db.pragma('wal_autocheckpoint', { simple: true }), 1000);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
