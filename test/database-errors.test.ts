/*
 * A wrong database setting stops start-up with one message that names the database, the setting
 * (--db / DATABASE_URL) and what to check; an unknown scheme is refused before anything is created.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { resolveConfig } from '../src/config.ts';
import { createStore } from '../src/store/index.ts';
import { explainDatabaseError } from '../src/store/database-errors.ts';
import { parseDatabaseUrl } from '../src/store/database-url.ts';
import { pgTestUrl, postgresSuiteGate } from './helpers/postgres.ts';
import { runCli, type CliResult } from './helpers/cli.ts';

// Resolved here: the CLI runs in an empty temporary directory, where `--import tsx` would not be found.
const TSX = import.meta.resolve('tsx');
const dir = mkdtempSync(join(tmpdir(), 'ow-dberr-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, { env, cwd: dir, loader: TSX, timeoutMs: 120_000 });
}

describe('an unknown database scheme', () => {
  test('stops the CLI and serve with the setting and the accepted forms, creating nothing', async () => {
    for (const args of [['clients', 'list', '--db', 'mysql://x/y'], ['serve', '--port', '0', '--db', 'mysql://x/y']]) {
      const r = await cli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /--db \(DATABASE_URL\)/);
      assert.match(r.stderr, /unknown scheme "mysql:"/);
      assert.match(r.stderr, /sqlite:PATH.*file path.*postgres:\/\//);
    }
    const env = await cli(['clients', 'list'], { DATABASE_URL: 'mysql://x/y' });
    assert.equal(env.code, 2);
    assert.match(env.stderr, /from DATABASE_URL: "mysql:\/\/x\/y" has an unknown scheme/);
    assert.deepEqual(readdirSync(dir), [], 'no file named mysql: (or anything else) was created');
  });

  test('the accepted forms still work, and createStore refuses the unknown one too', async () => {
    assert.deepEqual(parseDatabaseUrl('sqlite:./data/x.db'), { kind: 'sqlite', path: './data/x.db' });
    assert.deepEqual(parseDatabaseUrl('sqlite::memory:'), { kind: 'sqlite', path: ':memory:' });
    assert.deepEqual(parseDatabaseUrl('data/x.db'), { kind: 'sqlite', path: 'data/x.db' });
    assert.deepEqual(parseDatabaseUrl('C:\\data\\x.db'), { kind: 'sqlite', path: 'C:\\data\\x.db' });
    assert.equal(parseDatabaseUrl('postgresql://u@h/db').kind, 'postgres');
    assert.equal(resolveConfig({ db: 'postgres://u@h/db' }, {}).db, 'postgres://u@h/db');
    for (const bad of ['mysql://x/y', 'file:x.db', 'redis://h', '']) assert.throws(() => parseDatabaseUrl(bad), /unknown scheme|empty/);
    await assert.rejects(createStore('mysql://x/y'), /unknown scheme "mysql:"/);
  });
});

describe('SQLite errors name the file, the setting and what to check', () => {
  test('a path under a regular file (cannot create the directory)', async () => {
    writeFileSync(join(dir, 'plain-file'), 'x');
    // A command that creates the database (a list would say there is none).
    const r = await cli(['clients', 'create', '--name', 'x', '--db', `sqlite:${join(dir, 'plain-file', 'x.db')}`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`Cannot use the SQLite database ${join(dir, 'plain-file', 'x.db')} \\(set by --db or DATABASE_URL\\)`));
    assert.match(r.stderr, /Check that .*plain-file is a directory this user can create and write files in/);
  });

  test('a directory instead of a file: "unable to open database file", at serve too', async () => {
    const sub = mkdtempSync(join(dir, 'a-directory-'));
    const r = await cli(['serve', '--port', '0', '--db', `sqlite:${sub}`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`Cannot use the SQLite database ${sub} \\(set by --db or DATABASE_URL\\): (unable to open database file|EISDIR: illegal operation on a directory, open '[^']+')\\. Check that`));
    assert.match(r.stderr, /names a file, not a directory/);
  });

  test('a read-only database', () => {
    const file = join(dir, 'ro.db');
    new Database(file).close();
    const ro = new Database(file, { readonly: true });
    let err: unknown;
    try {
      ro.exec('CREATE TABLE t (x)');
    } catch (e) {
      err = e;
    } finally {
      ro.close();
    }
    assert.match(String((err as Error).message), /readonly/);
    const explained = explainDatabaseError(err, `sqlite:${file}`);
    assert.match(explained.message, new RegExp(`Cannot use the SQLite database ${file} \\(set by --db or DATABASE_URL\\): attempt to write a readonly database\\.`));
    assert.match(explained.message, /read-only for this user: check the permissions of .*ro\.db and of /);
  });

  test('not a database', async () => {
    const file = join(dir, 'text.db');
    writeFileSync(file, 'this is not an SQLite file, only some text that is long enough to have a header\n'.repeat(20));
    const r = await cli(['clients', 'list', '--db', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Cannot use the SQLite database .*text\.db .*not a database/);
    assert.match(r.stderr, /not an SQLite database/);
  });
});

describe('PostgreSQL errors name the server, the setting and what to check', () => {
  test('connection refused (the password is not shown)', async () => {
    const r = await cli(['clients', 'list', '--db', 'postgres://someone:hunter2@127.0.0.1:1/test']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Cannot use the PostgreSQL database postgres:\/\/someone:\*\*\*@127\.0\.0\.1:1\/test \(set by --db or DATABASE_URL\): connect ECONNREFUSED 127\.0\.0\.1:1\./);
    assert.match(r.stderr, /check that PostgreSQL is running there/);
    assert.ok(!r.stderr.includes('hunter2'));
  });
});

if (await postgresSuiteGate('PostgreSQL database errors')) describe('PostgreSQL database errors', () => {
  test('a database that does not exist', async () => {
    const u = new URL(pgTestUrl());
    u.pathname = '/ow_no_such_database';
    u.search = '';
    const r = await cli(['migrate', '--db', u.toString()]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /database "ow_no_such_database" does not exist\. Create the database/);
    assert.ok(!existsSync(join(dir, 'ow_no_such_database')));
  });
});
