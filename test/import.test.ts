import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { orcidFromBase } from '../src/domain/orcid-id.ts';
import { importChanges, type ImportProgress, type ImportReport } from '../src/ops/import.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import { runCli as cli } from './helpers/cli.ts';
import { tempDir } from './helpers/tmp.ts';

/** A migrated SQLite store in its own temporary directory. */
async function tempStore(): Promise<{ dir: string; file: string; url: string; store: SqliteStore }> {
  const dir = tempDir('ow-import-');
  const file = join(dir, 'x.db');
  const store = new SqliteStore(file);
  await store.migrate();
  return { dir, file, url: `sqlite:${file}`, store };
}

function writeTemp(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const ms = (iso: string) => Date.parse(iso);

// Known valid iDs, and ones the tests create.
const R1 = '0000-0002-1825-0097';
const R2 = '0000-0002-7465-2162';
const N1 = '0000-0001-5109-3700';
const N2 = '0000-0002-1694-233X';
const N3 = orcidFromBase(900_000_000_001);
const N4 = orcidFromBase(900_000_000_002);
const EXISTING_AT = ms('2024-01-01T00:00:00Z');

/**
 * R1 and R2 exist (modified 2024-01-01). Line numbers are those of the file (header = line 1).
 * Expected: created N1, N3, N4; changed R1; ignored R2 twice; rejected lines 6, 7, 8.
 */
const MIXED_CSV = [
  'orcid,last_modified', //                          1
  `${R1},2025-01-01T00:00:00Z`, //                   2 newer: modified
  `${R2},2023-01-01T00:00:00Z`, //                   3 older: ignored
  `${R2},2024-01-01T00:00:00Z`, //                   4 same time: ignored
  `${N1},2024-05-05T00:00:00Z`, //                   5 missing: created
  '0000-0002-1825-0098,2024-05-05T00:00:00Z', //     6 bad check character
  `${N2},yesterday`, //                              7 bad time
  `${N2},2024-05-05T00:00:00Z,extra`, //             8 three fields
  `"${N3}","2024-02-02T00:00:00Z"`, //               9 quoted: created
  '', //                                            10 blank: skipped
  ` ${N4} , 2024-03-03T00:00:00.000+02:00 `, //     11 spaces: created
  '',
].join('\n');

function checkMixedReport(report: Pick<ImportReport, 'created' | 'changed' | 'ignored' | 'lines' | 'rejected' | 'rejectedCount' | 'webhooksNotified'>): void {
  assert.equal(report.lines, 9, 'data lines (blank ones not counted)');
  assert.equal(report.created, 3);
  assert.equal(report.changed, 1);
  assert.equal(report.ignored, 2);
  assert.equal(report.webhooksNotified, 0);
  assert.equal(report.rejectedCount, 3);
  assert.deepEqual(report.rejected.map((r) => r.line), [6, 7, 8]);
  const [bad, time, fields] = report.rejected;
  assert.match(bad!.reason, /"0000-0002-1825-0098" has a wrong check character/);
  assert.match(time!.reason, /last_modified "yesterday" is not an ISO 8601 time/);
  assert.match(fields!.reason, /expected 2 comma-separated fields \(orcid,last_modified\), got 3/);
}

async function checkMixedStore(store: SqliteStore, startedAt: number): Promise<void> {
  assert.equal((await store.getRecord(R1))?.modifiedAt, ms('2025-01-01T00:00:00Z'), 'R1 modified to the newer time');
  assert.equal((await store.getRecord(R1))?.createdAt, EXISTING_AT, 'R1 keeps its creation time');
  assert.equal((await store.getRecord(R2))?.modifiedAt, EXISTING_AT, 'R2 untouched by older times');
  const n1 = await store.getRecord(N1);
  assert.equal(n1?.modifiedAt, ms('2024-05-05T00:00:00Z'));
  assert.ok(n1 && n1.createdAt >= startedAt, 'created now');
  assert.equal((await store.getRecord(N3))?.modifiedAt, ms('2024-02-02T00:00:00Z'));
  assert.equal((await store.getRecord(N4))?.modifiedAt, ms('2024-03-02T22:00:00Z'));
  assert.equal(await store.getRecord(N2), null, 'rejected lines add nothing');
  assert.equal(await store.getRecord('0000-0002-1825-0098'), null);
  assert.equal(await store.countRecords(), 5);
}

describe('importChanges (direct)', () => {
  it('creates missing records, marks newer ones modified, ignores older ones, rejects malformed lines by number', async () => {
    const { dir, store } = await tempStore();
    try {
      await store.addRecords([R1, R2], EXISTING_AT);
      const file = writeTemp(dir, 'changes.csv', MIXED_CSV);
      const startedAt = Date.now();
      const batches: number[] = [];
      const report = await importChanges(store, file, { notifyDelayMs: 0, onBatch: (r) => batches.push(r.created + r.changed + r.ignored) });
      checkMixedReport(report);
      assert.deepEqual(batches, [6], 'one batch holding every good line');
      await checkMixedStore(store, startedAt);
    } finally {
      await store.close();
    }
  });

  it('reads JSON lines', async () => {
    const { dir, store } = await tempStore();
    try {
      await store.addRecords([R1], EXISTING_AT);
      const file = writeTemp(dir, 'changes.jsonl', [
        JSON.stringify({ orcid: R1, last_modified: '2025-06-01T12:00:00Z', extra: 'ignored' }),
        JSON.stringify({ orcid: N1, last_modified: '2024-01-02T00:00:00.123Z' }),
        '{not json',
        JSON.stringify({ last_modified: '2024-01-02T00:00:00Z' }),
        JSON.stringify({ orcid: N2, last_modified: 1700000000000 }),
        JSON.stringify({ orcid: '0000-0002-1694-2330', last_modified: '2024-01-02T00:00:00Z' }),
        JSON.stringify({ orcid: R1, last_modified: '2020-01-01T00:00:00Z' }),
      ].join('\n'));
      const report = await importChanges(store, file, { notifyDelayMs: 0 });
      assert.equal(report.lines, 7);
      assert.equal(report.created, 1);
      assert.equal(report.changed, 1);
      assert.equal(report.ignored, 1);
      assert.equal(report.rejectedCount, 4);
      assert.deepEqual(report.rejected.map((r) => r.line), [3, 4, 5, 6]);
      assert.match(report.rejected[0]!.reason, /not valid JSON/);
      assert.match(report.rejected[1]!.reason, /missing orcid/);
      assert.match(report.rejected[2]!.reason, /is not an ISO 8601 time/);
      assert.match(report.rejected[3]!.reason, /wrong check character/);
      assert.equal((await store.getRecord(R1))?.modifiedAt, ms('2025-06-01T12:00:00Z'));
      assert.equal((await store.getRecord(N1))?.modifiedAt, ms('2024-01-02T00:00:00.123Z'));
      assert.equal(await store.getRecord(N2), null);
    } finally {
      await store.close();
    }
  });

  it('accepts a byte-order mark, CRLF line ends and a header with spaces or capitals', async () => {
    const { dir, store } = await tempStore();
    try {
      const file = writeTemp(dir, 'bom.csv', `\uFEFFORCID, Last_Modified\r\n${R1},2024-01-01T00:00:00Z\r\n${R2},2024-01-01T00:00:00Z\r\n`);
      const report = await importChanges(store, file, { notifyDelayMs: 0 });
      assert.equal(report.rejectedCount, 0, JSON.stringify(report.rejected));
      assert.equal(report.created, 2);
    } finally {
      await store.close();
    }
  });

  it('refuses a CSV without the header, naming the line, and imports nothing', async () => {
    const { dir, store } = await tempStore();
    try {
      const noHeader = writeTemp(dir, 'noheader.csv', `${R1},2024-01-01T00:00:00Z\n${R2},2024-01-01T00:00:00Z\n`);
      await assert.rejects(importChanges(store, noHeader, { notifyDelayMs: 0 }), /^Error: line 1: expected the CSV header "orcid,last_modified" \(or JSON lines\), got "0000-0002-1825-0097,2024/);
      const wrongHeader = writeTemp(dir, 'wrong.csv', `\n\norcid,modified\n${R1},2024-01-01T00:00:00Z\n`);
      await assert.rejects(importChanges(store, wrongHeader, { notifyDelayMs: 0 }), /^Error: line 3: expected the CSV header "orcid,last_modified"/);
      assert.equal(await store.countRecords(), 0);
    } finally {
      await store.close();
    }
  });

  it('rejects a missing file', async () => {
    const { dir, store } = await tempStore();
    try {
      await assert.rejects(importChanges(store, join(dir, 'nope.csv'), { notifyDelayMs: 0 }), /ENOENT/);
    } finally {
      await store.close();
    }
  });

  it('an empty file or a header alone imports nothing', async () => {
    const { dir, store } = await tempStore();
    try {
      const empty = await importChanges(store, writeTemp(dir, 'empty.csv', ''), { notifyDelayMs: 0 });
      assert.deepEqual(empty, { created: 0, changed: 0, ignored: 0, webhooksNotified: 0, lines: 0, rejected: [], rejectedCount: 0 });
      const header = await importChanges(store, writeTemp(dir, 'header.csv', 'orcid,last_modified\n'), { notifyDelayMs: 0 });
      assert.equal(header.lines, 0);
    } finally {
      await store.close();
    }
  });

  it('notifies the webhooks of changed records that existed before the change', async () => {
    const { dir, store } = await tempStore();
    try {
      await store.createClient({ id: 'APP-IMPORTTEST00001', name: 'c', secretHash: 'x', premium: true, createdAt: 0 });
      await store.addRecords([R1, R2], ms('2023-01-01T00:00:00Z'));
      const reg = async (orcid: string, url: string, createdAt: string) => {
        const r = await store.registerWebhook({ clientId: 'APP-IMPORTTEST00001', orcid, url, host: 'example.org', now: ms(createdAt) });
        assert.equal(r.outcome, 'created');
        return r.outcome === 'created' ? r.webhook.id : -1;
      };
      const early = await reg(R1, 'https://example.org/early', '2024-01-01T00:00:00Z');
      const late = await reg(R1, 'https://example.org/late', '2025-06-01T00:00:00Z'); // after the change: not owed
      const other = await reg(R2, 'https://example.org/other', '2024-01-01T00:00:00Z'); // its record changes only to an older time
      const file = writeTemp(dir, 'changes.csv', `orcid,last_modified\n${R1},2025-01-01T00:00:00Z\n${R2},2022-01-01T00:00:00Z\n${N1},2025-01-01T00:00:00Z\n`);
      const before = Date.now();
      const report = await importChanges(store, file, { notifyDelayMs: 60_000 });
      const afterImport = Date.now();
      assert.equal(report.changed, 1);
      assert.equal(report.ignored, 1);
      assert.equal(report.created, 1);
      assert.equal(report.webhooksNotified, 1);
      const w = await store.getWebhook(early);
      assert.ok(w?.dueAt !== null && w?.dueAt !== undefined, 'the early webhook owes a notification');
      assert.ok(w.dueAt >= before + 60_000 && w.dueAt <= afterImport + 60_000, `due after the notify delay: ${w.dueAt - before}`);
      assert.equal(w.pendingSince, ms('2025-01-01T00:00:00Z'));
      assert.equal((await store.getWebhook(late))?.dueAt, null, 'a webhook created after the change owes nothing');
      assert.equal((await store.getWebhook(other))?.dueAt, null, 'an older time notifies nobody');
    } finally {
      await store.close();
    }
  });

  it('streams a 200,000-line CSV in batches with bounded memory', async (t) => {
    const { dir, store } = await tempStore();
    try {
      const N = 200_000;
      const existing = Array.from({ length: 2000 }, (_, i) => orcidFromBase(900_000_000_000 + i));
      await store.addRecords(existing, ms('2024-06-01T00:00:00Z'));
      const file = join(dir, 'big.csv');
      const fd = openSync(file, 'w');
      writeSync(fd, 'orcid,last_modified\n');
      let chunk = '';
      for (let i = 0; i < N; i++) {
        // 0..999 newer than the existing records, 1000..1999 older, the rest new.
        const t = i < 1000 ? '2025-01-01T00:00:00Z' : i < 2000 ? '2023-01-01T00:00:00Z' : '2024-01-01T00:00:00Z';
        chunk += `${orcidFromBase(900_000_000_000 + i)},${t}\n`;
        if (chunk.length > 1 << 20) {
          writeSync(fd, chunk);
          chunk = '';
        }
      }
      writeSync(fd, chunk);
      chunk = '';
      closeSync(fd);

      const progress: ImportProgress[] = [];
      let batches = 0;
      const rssBefore = process.memoryUsage().rss;
      let rssPeak = rssBefore;
      const sample = () => { rssPeak = Math.max(rssPeak, process.memoryUsage().rss); };
      const report = await importChanges(store, file, {
        notifyDelayMs: 0,
        onProgress: (p) => { progress.push(p); sample(); },
        onBatch: () => { batches++; sample(); },
      });
      sample();

      assert.equal(report.lines, N);
      assert.equal(report.created, N - 2000);
      assert.equal(report.changed, 1000);
      assert.equal(report.ignored, 1000);
      assert.equal(report.rejectedCount, 0);
      assert.equal(await store.countRecords(), N);
      assert.equal((await store.getRecord(orcidFromBase(900_000_000_000 + N - 1)))?.modifiedAt, ms('2024-01-01T00:00:00Z'));
      assert.equal(batches, N / 1000, 'applied in batches of 1,000');

      // Streamed: progress came batch by batch, the first long before the whole file was read.
      const fileBytes = progress.at(-1)!.bytes;
      assert.ok(fileBytes > 5_000_000, `read ${fileBytes} bytes`);
      assert.ok(progress[0]!.bytes < fileBytes / 4, `first progress at ${progress[0]!.bytes} of ${fileBytes} bytes`);
      assert.deepEqual(progress.map((p) => p.lines), [...progress.map((p) => p.lines)].sort((a, b) => a - b));
      assert.equal(progress.at(-1)!.lines, N);

      const growthMb = (rssPeak - rssBefore) / 1024 / 1024;
      t.diagnostic(`rss growth ${growthMb.toFixed(1)} MB over ${fileBytes} bytes`);
      assert.ok(growthMb < 150, `rss grew by ${growthMb.toFixed(1)} MB`);
    } finally {
      await store.close();
    }
  });
});

describe('orcid-webhooks records import (subprocess)', { concurrency: 3 }, () => {
  it('imports good lines, lists the rejected ones with their numbers, exits 1', async () => {
    const { dir, file: dbFile, url, store } = await tempStore();
    await store.addRecords([R1, R2], EXISTING_AT);
    await store.close();
    const csv = writeTemp(dir, 'changes.csv', MIXED_CSV);
    const startedAt = Date.now();
    const r = await cli(['records', 'import', csv, '--db', url, '--json']);
    assert.equal(r.code, 1, r.stderr);
    checkMixedReport(JSON.parse(r.stdout) as ImportReport);
    const check = new SqliteStore(dbFile);
    try {
      await checkMixedStore(check, startedAt);
    } finally {
      await check.close();
    }
  });

  it('prints a readable summary and exits 0 when every line is good', async () => {
    const { dir, url, store } = await tempStore();
    await store.close();
    const csv = writeTemp(dir, 'good.csv', `orcid,last_modified\n${R1},2024-01-01T00:00:00Z\n${R2},2024-01-01T00:00:00Z\n${R1},2023-01-01T00:00:00Z\n`);
    const r = await cli(['records', 'import', csv, '--db', url]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '3 line(s): 2 record(s) created, 0 modified, 1 ignored as not newer; 0 webhook notification(s) owed');
  });

  it('prints rejected lines in the text form too', async () => {
    const { dir, url, store } = await tempStore();
    await store.close();
    const csv = writeTemp(dir, 'bad.csv', `orcid,last_modified\n${R1},2024-01-01T00:00:00Z\n${R2},not-a-time\n`);
    const r = await cli(['records', 'import', csv, '--db', url]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /1 malformed line\(s\) rejected:\n {2}line 3: last_modified "not-a-time" is not an ISO 8601 time/);
  });

  it('imports JSON lines and notifies webhooks', async () => {
    const { dir, file: dbFile, url, store } = await tempStore();
    await store.createClient({ id: 'APP-IMPORTTEST00002', name: 'c', secretHash: 'x', premium: true, createdAt: 0 });
    await store.addRecords([R1], ms('2023-01-01T00:00:00Z'));
    const reg = await store.registerWebhook({ clientId: 'APP-IMPORTTEST00002', orcid: R1, url: 'https://example.org/cb', host: 'example.org', now: ms('2024-01-01T00:00:00Z') });
    await store.close();
    assert.equal(reg.outcome, 'created');
    const jsonl = writeTemp(dir, 'changes.jsonl', `${JSON.stringify({ orcid: R1, last_modified: '2025-01-01T00:00:00Z' })}\n${JSON.stringify({ orcid: N1, last_modified: '2025-01-01T00:00:00Z' })}\n`);
    const r = await cli(['records', 'import', jsonl, '--db', url, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as ImportReport;
    assert.deepEqual(report, { created: 1, changed: 1, ignored: 0, webhooksNotified: 1, lines: 2, rejected: [], rejectedCount: 0 });
    const check = new SqliteStore(dbFile);
    try {
      const w = reg.outcome === 'created' ? await check.getWebhook(reg.webhook.id) : null;
      assert.ok(w && w.dueAt !== null, 'the webhook owes a notification');
      assert.equal(w.pendingSince, ms('2025-01-01T00:00:00Z'));
    } finally {
      await check.close();
    }
  });

  it('a file without the header is a clear error (exit 1)', async () => {
    const { dir, url, store } = await tempStore();
    await store.close();
    const csv = writeTemp(dir, 'noheader.csv', `${R1},2024-01-01T00:00:00Z\n`);
    const r = await cli(['records', 'import', csv, '--db', url]);
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`Import of ${csv} failed: line 1: expected the CSV header "orcid,last_modified"`), r.stderr);
  });

  it('a missing file is a clear error (exit 1)', async () => {
    const { dir, url, store } = await tempStore();
    await store.close();
    const missing = join(dir, 'missing.csv');
    const r = await cli(['records', 'import', missing, '--db', url]);
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`Cannot read ${missing}: no such file`), r.stderr);
    assert.equal(r.stdout, '');
  });
});
