/*
 * records import --all-or-nothing: a change list with a malformed line applies nothing, as the bulk
 * API refuses a whole request; without it the good lines are applied (and the exit code is 1).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { importChanges } from '../src/ops/import.ts';
import { backends, snapshot, startHarness, type Harness } from './helpers/harness.ts';
import { runCli } from './helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'ow-aon-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const GOOD_A = '0000-0002-1825-0097';
const GOOD_B = '0000-0002-7465-2162';
const file = (name: string, lines: string[]) => {
  const path = join(dir, name);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
};
const withBadLine = () => file(`bad-${Math.random()}.csv`, ['orcid,last_modified', `${GOOD_A},2030-01-01T00:00:00Z`, '0000-0002-1825-0098,2030-01-01T00:00:00Z', `${GOOD_B},2030-01-02T00:00:00Z`]);
const allGood = () => file(`good-${Math.random()}.csv`, ['orcid,last_modified', `${GOOD_A},2030-01-01T00:00:00Z`, `${GOOD_B},2030-01-02T00:00:00Z`]);

for (const { backend, skip } of await backends()) describe(`importChanges allOrNothing on ${backend}`, { skip }, () => {
  let h: Harness;
  before(async () => { h = await startHarness({}, { backend }); });
  after(async () => { await h?.close(); });

  test('a malformed line: nothing is applied, every bad line is reported', async () => {
    const unchanged = await snapshot(h.store);
    const report = await importChanges(h.store, withBadLine(), { notifyDelayMs: 0, allOrNothing: true });
    assert.deepEqual({ created: report.created, changed: report.changed, webhooksNotified: report.webhooksNotified }, { created: 0, changed: 0, webhooksNotified: 0 });
    assert.equal(report.lines, 3);
    assert.deepEqual(report.rejected.map((r) => r.line), [3]);
    assert.match(report.rejected[0]!.reason, /check character/);
    assert.deepEqual(await snapshot(h.store), unchanged);
  });

  test('without it the good lines are applied; with it a clean file is applied whole', async () => {
    const partial = await importChanges(h.store, withBadLine(), { notifyDelayMs: 0 });
    assert.equal(partial.created, 2);
    assert.equal(partial.rejectedCount, 1);
    const whole = await importChanges(h.store, file('newer.csv', ['orcid,last_modified', `${GOOD_A},2031-01-01T00:00:00Z`, `${GOOD_B},2031-01-02T00:00:00Z`]), { notifyDelayMs: 0, allOrNothing: true });
    assert.equal(whole.changed, 2);
    assert.equal(whole.rejectedCount, 0);
  });
});

describe('orcid-webhooks records import --all-or-nothing', () => {
  const cli = (args: string[]) => runCli(args, { timeoutMs: 120_000 });

  test('exits 1, says nothing was applied and names the line; the database is unchanged; a clean file then imports', async () => {
    const db = `sqlite:${join(dir, 'cli.db')}`;
    const r = await cli(['records', 'import', '--all-or-nothing', '--db', db, withBadLine()]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /3 line\(s\): nothing was applied \(--all-or-nothing\)/);
    assert.match(r.stdout, /line 3: /);
    assert.equal(JSON.parse((await cli(['records', 'list', '--json', '--db', db])).stdout).length, 0);
    const ok = await cli(['records', 'import', '--all-or-nothing', '--json', '--db', db, allGood()]);
    assert.equal(ok.code, 0);
    assert.equal(JSON.parse(ok.stdout).created, 2);
  });
});
