/*
 * `records import --format orcid-lambda` (ORCID's last_modified.csv.tar, or its CSV) and
 * `upstream status`: streamed, newest first, stopping at the upstream cursor.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { importOrcidLambda, parseLambdaTime } from '../src/ops/import-orcid-lambda.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import { UPSTREAM_SOURCE } from '../src/upstream/poller.ts';
import { runCli as cli } from './helpers/cli.ts';
import { fakeOrcidId } from './helpers/fake-orcid.ts';
import { tempDir } from './helpers/tmp.ts';

const HEADER = 'orcid,?,?,last_modified';
/** `2026-12-01 10:11:12.123456` as the lambda file writes times. */
function lambdaTime(ms: number): string {
  return `${new Date(ms).toISOString().replace('T', ' ').replace('Z', '')}456`;
}

/** A lambda CSV of n lines, newest first: line k is record k, modified at newest - k seconds. */
async function writeCsv(path: string, n: number, newest: number): Promise<void> {
  const out = createWriteStream(path);
  out.write(`${HEADER}\n`);
  for (let k = 0; k < n; k++) {
    if (!out.write(`${fakeOrcidId(k)},x,y,${lambdaTime(newest - k * 1000)}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

/** last_modified.csv.tar as ORCID ships it: a gzipped tar, made by the system's tar. */
function tarGz(dir: string, csv: string): string {
  const out = join(dir, 'last_modified.csv.tar');
  execFileSync('tar', ['-czf', out, '-C', dir, csv]);
  return out;
}

async function storeWithWebhooks(dir: string, indexes: number[]): Promise<SqliteStore> {
  const store = new SqliteStore(join(dir, 'db.sqlite'));
  await store.migrate();
  await store.createClient({ id: 'APP-1', name: 'c', secretHash: 'x', premium: true, createdAt: 0 });
  await store.addRecords(indexes.map(fakeOrcidId), 1000);
  for (const i of indexes) await store.registerWebhook({ clientId: 'APP-1', orcid: fakeOrcidId(i), url: `https://r.example/${i}`, host: 'r.example', now: 1000 });
  return store;
}

describe('records import --format orcid-lambda', () => {
  it('parses the lambda time format', () => {
    assert.equal(parseLambdaTime('2026-12-01 10:11:12.123456'), Date.parse('2026-12-01T10:11:12.123Z'));
    assert.equal(parseLambdaTime('2026-12-01 10:11:12'), Date.parse('2026-12-01T10:11:12Z'));
    assert.equal(parseLambdaTime('yesterday'), null);
  });

  it('reads the gzipped tar, changes known records only, sets the cursor to the newest change; a later import stops at the cursor', async () => {
    const dir = tempDir('ow-lambda-');
    const newest = Date.parse('2026-12-01T12:00:00Z');
    await writeCsv(join(dir, 'last_modified.csv'), 5000, newest);
    const file = tarGz(dir, 'last_modified.csv');
    const store = await storeWithWebhooks(dir, [0, 10, 4999]);
    try {
      const r = await importOrcidLambda(store, file, { notifyDelayMs: 0, create: false });
      assert.equal(r.lines, 5000);
      assert.equal(r.changed, 3);
      assert.equal(r.created, 0);
      assert.equal(r.webhooksNotified, 3);
      assert.equal(r.stoppedAtCursor, false);
      assert.equal((await store.getRecord(fakeOrcidId(10)))!.modifiedAt, newest - 10_000);
      assert.equal((await store.upstreamState(UPSTREAM_SOURCE))!.cursor, newest);

      // A newer file: 100 new lines on top; reading stops where the cursor is.
      const newer = newest + 200_000;
      const lines = [HEADER];
      for (let k = 0; k < 100; k++) lines.push(`${fakeOrcidId(k)},x,y,${lambdaTime(newer - k * 1000)}`);
      for (let k = 0; k < 5000; k++) lines.push(`${fakeOrcidId(k)},x,y,${lambdaTime(newest - k * 1000)}`);
      writeFileSync(join(dir, 'newer.csv'), `${lines.join('\n')}\n`);
      const r2 = await importOrcidLambda(store, join(dir, 'newer.csv'), { notifyDelayMs: 0, create: false });
      assert.equal(r2.stoppedAtCursor, true);
      assert.equal(r2.lines, 101, 'the 100 newer lines, and the one at the cursor');
      assert.equal(r2.changed, 2, 'records 0 and 10 changed again');
    } finally {
      await store.close();
    }
  });

  it('streams 300,000 lines in bounded memory; bad lines are reported by number', { timeout: 120_000 }, async () => {
    const dir = tempDir('ow-lambda-');
    const csv = join(dir, 'big.csv');
    await writeCsv(csv, 300_000, Date.parse('2026-12-01T12:00:00Z'));
    const file = tarGz(dir, 'big.csv');
    const store = await storeWithWebhooks(dir, [123_456]);
    try {
      global.gc?.();
      const before = process.memoryUsage().heapUsed;
      let peak = before;
      const r = await importOrcidLambda(store, file, { notifyDelayMs: 0, create: false, onProgress: () => { peak = Math.max(peak, process.memoryUsage().heapUsed); } });
      assert.equal(r.lines, 300_000);
      assert.equal(r.changed, 1);
      assert.ok(peak - before < 64 * 1024 * 1024, `heap grew by ${Math.round((peak - before) / 1e6)} MB`);
    } finally {
      await store.close();
    }
    const bad = join(dir, 'bad.csv');
    writeFileSync(bad, `${HEADER}\n${fakeOrcidId(1)},x,y,2026-12-01 10:00:00\n0000-0000-0000-0000,x,y,2026-12-01 09:00:00\n${fakeOrcidId(2)},x\n${fakeOrcidId(3)},x,y,soon\n`);
    const s2 = new SqliteStore(join(dir, 'b.sqlite'));
    await s2.migrate();
    try {
      const r = await importOrcidLambda(s2, bad, { notifyDelayMs: 0, create: true });
      assert.equal(r.created, 1);
      assert.deepEqual(r.rejected.map((x) => x.line), [3, 4, 5]);
    } finally {
      await s2.close();
    }
  });

  it('the CLI: import with a progress bar and --json, then upstream status', { timeout: 60_000 }, async () => {
    const dir = tempDir('ow-lambda-');
    await writeCsv(join(dir, 'last_modified.csv'), 2000, Date.parse('2026-12-01T12:00:00Z'));
    const file = tarGz(dir, 'last_modified.csv');
    const db = `sqlite:${join(dir, 'cli.sqlite')}`;
    let r = await cli(['records', 'import', '--format', 'orcid-lambda', '--create-records', '--db', db, '--json', file]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { lines: number; created: number; cursor: number };
    assert.equal(report.lines, 2000);
    assert.equal(report.created, 2000);
    r = await cli(['upstream', 'status', '--db', db, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const status = JSON.parse(r.stdout) as { cursor: string; state: string; leader: string | null };
    assert.equal(status.cursor, '2026-12-01T12:00:00.000Z');
    assert.equal(status.leader, null);
    // The upstream as serve reads it from the environment: the status names it.
    r = await cli(['upstream', 'status', '--db', db, '--json'], { env: { ORCID_WEBHOOKS_UPSTREAM: 'sandbox', ORCID_WEBHOOKS_UPSTREAM_CLIENT_ID: 'APP-0000000000000001', ORCID_WEBHOOKS_UPSTREAM_CLIENT_SECRET: 'x' } });
    assert.equal(r.code, 0, r.stderr);
    const configured = JSON.parse(r.stdout) as { configured: boolean; upstream: string | null; intervalSeconds: number | null };
    assert.equal(configured.configured, true);
    assert.match(configured.upstream ?? '', /sandbox\.orcid\.org/);
    assert.equal(configured.intervalSeconds, 60);
    r = await cli(['upstream', 'status', '--db', db]);
    assert.match(r.stdout, /cursor: +2026-12-01T12:00:00\.000Z/);
    r = await cli(['records', 'import', '--format', 'nope', '--db', db, file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /nope/);
  });
});
