import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { SETTINGS } from '../src/config.ts';
import { isValidOrcid } from '../src/domain/orcid-id.ts';
import { loadMigrations } from '../src/store/migrations.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import { VERSION } from '../src/version.ts';
import { cleanEnv, MAIN, ROOT, runCli as cli, type CliResult as Result } from './helpers/cli.ts';
import { tempDir } from './helpers/tmp.ts';

const BIN = join(ROOT, 'src', 'cli', 'bin.ts');

/** A `--db` value naming a new SQLite file in its own temporary directory. */
function tempDb(): { dir: string; file: string; url: string } {
  const dir = tempDir('ow-cli-');
  const file = join(dir, 'x.db');
  return { dir, file, url: `sqlite:${file}` };
}

/** Opens the SQLite file a test's CLI runs used, for seeding and checking without another subprocess. */
async function withDb<T>(file: string, fn: (store: SqliteStore) => Promise<T>): Promise<T> {
  const store = new SqliteStore(file);
  try {
    await store.migrate();
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Runs the CLI, expects exit code 0 and JSON on stdout. */
async function cliJson<T = unknown>(args: string[], env?: Record<string, string>): Promise<T> {
  const r = await cli([...args, '--json'], env ? { env } : {});
  assert.equal(r.code, 0, `orcid-webhooks ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

function assertOk(r: Result, what: string): void {
  assert.equal(r.code, 0, `${what} exited ${r.code}: ${r.stderr}`);
}

interface ClientJson { id: string; name: string; premium: boolean; created: string; revoked: string | null; secret?: string }
interface RecordJson { orcid: string; modified: string; created: string }
interface WebhookJson { id: number; orcid: string; state: string; nextAttempt: string | null }

const VALID = ['0000-0002-1825-0097', '0000-0002-7465-2162', '0000-0001-5109-3700', '0000-0002-1694-233X'];

describe('orcid-webhooks CLI', { concurrency: 3 }, () => {
  describe('help and usage', { concurrency: 3 }, () => {
    it('--help lists the commands and exits 0', async () => {
      const r = await cli(['--help']);
      assertOk(r, '--help');
      for (const word of ['Usage: orcid-webhooks', 'serve', 'migrate', 'clients', 'records', 'webhooks', '--version', '--help']) {
        assert.ok(r.stdout.includes(word), `--help lacks ${word}:\n${r.stdout}`);
      }
    });

    it('serve --help shows every setting with its env var', async () => {
      const r = await cli(['serve', '--help']);
      assertOk(r, 'serve --help');
      for (const word of ['--port <port>', '--host', '--db', '--records', '--retry-schedule', '--allowed-targets', '--lease', '--https-only', '(env PORT, default 8080)', 'DATABASE_URL']) {
        assert.ok(r.stdout.includes(word), `serve --help lacks ${word}:\n${r.stdout}`);
      }
      for (const s of SETTINGS) assert.ok(r.stdout.includes(`--${s.flag}`), `serve --help lacks --${s.flag}`);
      // Value names that say what the value is: a count, not "<client>" or "<ip>"; the switch can be turned off.
      for (const word of ['--max-webhooks-per-client <n>', '--max-connections-per-ip <n>', '--no-https-only']) assert.ok(r.stdout.includes(word), `serve --help lacks ${word}`);
    });

    it('clients create --help shows its options', async () => {
      const r = await cli(['clients', 'create', '--help']);
      assertOk(r, 'clients create --help');
      for (const word of ['--name <name>', '--premium', '--json', '--db <url>', 'secret']) assert.ok(r.stdout.includes(word), `lacks ${word}:\n${r.stdout}`);
    });

    it('records import --help shows its argument and options', async () => {
      const r = await cli(['records', 'import', '--help']);
      assertOk(r, 'records import --help');
      for (const word of ['<file>', 'orcid,last_modified', '--db <url>', '--json']) assert.ok(r.stdout.includes(word), `lacks ${word}:\n${r.stdout}`);
      assert.match(r.stdout, /JSON\s+lines/, 'mentions the JSON lines form');
    });

    it('the executable prints the version, and passes every other command to the CLI', async () => {
      const r = await cli(['--version'], { entry: BIN });
      assertOk(r, 'bin --version');
      assert.equal(r.stdout.trim(), VERSION);
      const help = await cli(['records', '--help'], { entry: BIN });
      assertOk(help, 'bin records --help');
      assert.match(help.stdout, /Usage: orcid-webhooks records/);
    });

    it('an unknown command exits non-zero with a message', async () => {
      const r = await cli(['frobnicate']);
      assert.notEqual(r.code, 0);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /unknown command 'frobnicate'/);
      assert.match(r.stderr, /--help/);
      assert.equal(r.stdout, '');
    });

    it('an unknown option exits 2 with a message', async () => {
      const r = await cli(['records', 'list', '--frobnicate']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /unknown option '--frobnicate'/);
    });
  });

  it('migrate applies the migrations once, then reports the database up to date', async () => {
    const db = tempDb();
    const first = await cliJson<{ applied: string[] }>(['migrate', '--db', db.url]);
    assert.ok(first.applied.length >= 1, JSON.stringify(first));
    assert.ok(first.applied.includes('001_init'), JSON.stringify(first));
    assert.ok(existsSync(db.file), 'the database file was created where --db says');
    const second = await cliJson<{ applied: string[] }>(['migrate', '--db', db.url]);
    assert.deepEqual(second, { applied: [] });
    const text = await cli(['migrate', '--db', db.url]);
    assertOk(text, 'migrate');
    assert.equal(text.stdout.trim(), 'database is up to date');
  });

  it('a database of an older version is migrated only by migrate: other commands refuse and change nothing', async () => {
    const db = tempDb();
    // What an older version left: every migration but the last applied, as its migrate() does.
    const migrations = loadMigrations('sqlite');
    const older = new Database(db.file);
    older.exec('CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)');
    for (const m of migrations.slice(0, -1)) {
      older.prepare('INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)').run(m.name, Date.now());
      older.exec(m.sql);
    }
    older.close();
    const last = migrations.at(-1)!.name;
    const applied = () => {
      const d = new Database(db.file, { readonly: true });
      try {
        return (d.prepare('SELECT name FROM schema_migrations ORDER BY name').all() as { name: string }[]).map((r) => r.name);
      } finally {
        d.close();
      }
    };
    for (const args of [['webhooks', 'list'], ['clients', 'list'], ['clients', 'create', '--name', 'x']]) {
      const r = await cli([...args, '--db', db.url]);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /older version of orcid-webhooks/);
      assert.ok(r.stderr.includes(last), r.stderr);
      assert.match(r.stderr, /orcid-webhooks migrate/);
      assert.ok(!applied().includes(last), `${args.join(' ')} migrated the database`);
    }
    assert.deepEqual(await cliJson<{ applied: string[] }>(['migrate', '--db', db.url]), { applied: [last] });
    assert.deepEqual(await cliJson(['clients', 'list', '--db', db.url]), []);
  });

  it('clients create, list (no secrets) and revoke', async () => {
    const db = tempDb();
    const created = await cliJson<ClientJson>(['clients', 'create', '--name', 'X', '--premium', '--db', db.url]);
    assert.match(created.id, /^APP-[0-9A-Z]{16}$/);
    assert.equal(created.name, 'X');
    assert.equal(created.premium, true);
    assert.equal(created.revoked, null);
    assert.equal(typeof created.secret, 'string');
    assert.ok((created.secret ?? '').length >= 32, 'a long secret');

    const plain = await cli(['clients', 'create', '--name', 'Basic', '--db', db.url]);
    assertOk(plain, 'clients create');
    assert.match(plain.stdout, /client_id: +APP-/);
    assert.match(plain.stdout, /client_secret: +\S{32,}/);
    assert.match(plain.stdout, /not premium/);

    const listRaw = await cli(['clients', 'list', '--json', '--db', db.url]);
    assertOk(listRaw, 'clients list');
    const list = JSON.parse(listRaw.stdout) as ClientJson[];
    assert.equal(list.length, 2);
    const mine = list.find((c) => c.id === created.id);
    assert.ok(mine, 'the created client is listed');
    assert.equal(mine.premium, true);
    assert.equal(list.find((c) => c.id !== created.id)?.premium, false);
    for (const row of list) for (const key of Object.keys(row)) assert.doesNotMatch(key, /secret|hash/i, `list shows ${key}`);
    assert.ok(!listRaw.stdout.includes(created.secret as string), 'the secret is not printed by list');
    assert.ok(!listRaw.stdout.includes('scrypt'), 'the secret hash is not printed by list');

    const revoke = await cli(['clients', 'revoke', created.id, '--db', db.url]);
    assertOk(revoke, 'clients revoke');
    assert.match(revoke.stdout, new RegExp(`client ${created.id} revoked`));
    const after = await cliJson<ClientJson[]>(['clients', 'list', '--db', db.url]);
    const revoked = after.find((c) => c.id === created.id);
    assert.ok(revoked?.revoked, 'revoked time is set');
    assert.ok(!Number.isNaN(Date.parse(revoked.revoked)));
    assert.equal(after.find((c) => c.id !== created.id)?.revoked, null, 'the other client is untouched');
  });

  it('revoking an unknown client exits 1 with a clear message', async () => {
    const db = tempDb();
    assertOk(await cli(['migrate', '--db', db.url]), 'migrate');
    const r = await cli(['clients', 'revoke', 'APP-DOESNOTEXIST0000', '--db', db.url]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /No client with id APP-DOESNOTEXIST0000/);
    assert.equal(r.stdout, '');
  });

  it('serve on a port in use, or a host that does not resolve: exit 1 naming --host and --port and why', async () => {
    const busy = createServer().listen(0, '127.0.0.1');
    await once(busy, 'listening');
    try {
      const port = String((busy.address() as AddressInfo).port);
      const inUse = await cli(['serve', '--port', port, '--db', tempDb().url, '--admin-token', 'cli-test-admin-token-0123456789']);
      assert.equal(inUse.code, 1, inUse.stderr);
      assert.match(inUse.stderr, new RegExp(`Cannot listen on 127\\.0\\.0\\.1:${port} \\(--host, --port\\): the port is in use`));
      const noHost = await cli(['serve', '--host', 'no such host.invalid', '--port', '0', '--db', tempDb().url, '--admin-token', 'cli-test-admin-token-0123456789']);
      assert.equal(noHost.code, 1, noHost.stderr);
      assert.match(noHost.stderr, /Cannot listen on no such host\.invalid:0 \(--host, --port\): no such host/);
    } finally {
      busy.close();
    }
  });

  it('clients create needs --name', async () => {
    const db = tempDb();
    const r = await cli(['clients', 'create', '--db', db.url]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--name/);
  });

  it('clients create refuses a name with control characters, and creates nothing', async () => {
    const db = tempDb();
    const r = await cli(['clients', 'create', '--name', 'a\tb', '--db', db.url]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /must not contain control characters/);
    assert.deepEqual(await cliJson(['clients', 'list', '--db', db.url]), []);
  });

  it('records add adds valid iDs and counts existing ones', async () => {
    const db = tempDb();
    assert.deepEqual(await cliJson(['records', 'add', VALID[0]!, VALID[3]!, '--db', db.url]), { added: 2, existing: 0 });
    // DATABASE_URL stands in for --db.
    const again = await cli(['records', 'add', VALID[0]!, VALID[1]!], { env: { DATABASE_URL: db.url } });
    assertOk(again, 'records add');
    assert.equal(again.stdout.trim(), '1 record(s) added, 1 already existed');
    const list = await withDb(db.file, (s) => s.listRecords({ limit: 10 }));
    assert.deepEqual(list.map((r) => r.orcid), [VALID[0], VALID[1], VALID[3]].sort());
  });

  it('records add with one bad checksum exits 1, names the iD, and adds nothing', async () => {
    const db = tempDb();
    const bad = '0000-0002-1825-0098';
    const r = await cli(['records', 'add', VALID[0]!, bad, VALID[1]!, '--db', db.url]);
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(bad), r.stderr);
    assert.match(r.stderr, /check character/);
    assert.match(r.stderr, /nothing was changed/);
    assert.ok(!r.stderr.includes(VALID[0]!), 'only the bad iD is named');
    assert.equal(await withDb(db.file, (s) => s.countRecords()), 0, 'not even the valid iDs were added');
  });

  it('records add rejects malformed iDs too', async () => {
    const db = tempDb();
    const r = await cli(['records', 'add', '0000-0002-1694-233x', '--db', db.url]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /0000-0002-1694-233x/);
    assert.match(r.stderr, /not an ORCID iD/);
  });

  it('records mint --count 5 gives 5 valid distinct iDs that are then listed', async () => {
    const db = tempDb();
    const ids = await cliJson<string[]>(['records', 'mint', '--count', '5', '--db', db.url]);
    assert.equal(ids.length, 5);
    assert.equal(new Set(ids).size, 5);
    for (const id of ids) {
      assert.ok(isValidOrcid(id), id);
      assert.ok(id >= '0009-0000-0000-0009' && id <= '0009-0010-0000-0003', id);
    }
    const list = await cliJson<RecordJson[]>(['records', 'list', '--db', db.url]);
    assert.deepEqual(list.map((r) => r.orcid), [...ids].sort());
  });

  it('output larger than a pipe buffer reaches the reader whole before the CLI exits (records mint --count 20000: ~460 KB of JSON)', async () => {
    const db = tempDb();
    const ids = await cliJson<string[]>(['records', 'mint', '--count', '20000', '--db', db.url]);
    assert.equal(ids.length, 20_000);
    assert.equal(new Set(ids).size, 20_000);
  });

  it('a reader that stops early (| head) ends the command quietly: exit 0, no EPIPE stack trace', async () => {
    const db = tempDb();
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'records', 'mint', '--count', '20000', '--json', '--db', db.url], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // The first chunk, then the pipe is closed while ~400 KB are still to come.
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    assert.equal(code, 0, stderr);
    assert.doesNotMatch(stderr, /EPIPE|Error/);
  });

  it('records list paginates with --limit and --after', async () => {
    const db = tempDb();
    await withDb(db.file, (s) => s.addRecords(VALID, Date.now()));
    const sorted = [...VALID].sort();
    const page1 = await cliJson<RecordJson[]>(['records', 'list', '--limit', '2', '--db', db.url]);
    assert.deepEqual(page1.map((r) => r.orcid), sorted.slice(0, 2));
    const page2 = await cliJson<RecordJson[]>(['records', 'list', '--limit', '2', '--after', sorted[1]!, '--db', db.url]);
    assert.deepEqual(page2.map((r) => r.orcid), sorted.slice(2));
  });

  it('records list --limit 0 or huge and mint --count 0 or huge are usage errors (exit 2)', async () => {
    const db = tempDb();
    const r = await cli(['records', 'list', '--limit', '0', '--db', db.url]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--limit must be a whole number from 1 to 1,000,000, got "0"/);
    const huge = await cli(['records', 'list', '--limit', '99999999999999999999', '--db', db.url]);
    assert.equal(huge.code, 2, 'not a database error');
    assert.match(huge.stderr, /--limit must be a whole number from 1 to 1,000,000/);
    const m = await cli(['records', 'mint', '--count', 'zero', '--db', db.url]);
    assert.equal(m.code, 2);
    assert.match(m.stderr, /--count/);
    // More than the range can be drawn from in reasonable time: refused at once, not an endless loop.
    const many = await cli(['records', 'mint', '--count', '99999999999999', '--db', db.url], { timeoutMs: 10_000 });
    assert.equal(many.code, 2);
    assert.match(many.stderr, /--count must be a whole number from 1 to 1,000,000/);
    assert.equal(await withDb(db.file, (s) => s.countRecords()), 0, 'nothing was minted');
    // An iD given as a filter or a cursor is checked, not answered with an empty list.
    for (const args of [['records', 'list', '--after', 'zzz'], ['webhooks', 'list', '--orcid', 'abc']]) {
      const bad = await cli([...args, '--db', db.url]);
      assert.equal(bad.code, 2, args.join(' '));
      assert.match(bad.stderr, /must be an ORCID iD/);
    }
  });

  it('records touch marks existing records modified and creates missing ones', async () => {
    const db = tempDb();
    const t0 = Date.now() + 10 * 60_000; // later than the touch (even on a slow machine): touch still counts as newer
    await withDb(db.file, (s) => s.addRecords([VALID[0]!], t0));
    const touched = await cliJson(['records', 'touch', VALID[0]!, VALID[1]!, '--db', db.url]);
    assert.deepEqual(touched, { created: 1, changed: 1, ignored: 0, webhooksNotified: 0 });
    const [rec, added] = await withDb(db.file, (s) => Promise.all([s.getRecord(VALID[0]!), s.getRecord(VALID[1]!)]));
    assert.ok(rec && added);
    assert.equal(rec.modifiedAt, t0 + 1, 'touched: one millisecond past the record\'s modified time');
    assert.equal(rec.createdAt, t0);
    const bad = await cli(['records', 'touch', '0000-0002-1825-0098', '--db', db.url]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /0000-0002-1825-0098/);
  });

  it('records touch notifies webhooks, due after the notify delay from the env or the flag', async () => {
    const db = tempDb();
    await withDb(db.file, async (store) => {
      await store.createClient({ id: 'APP-TOUCHTEST000001', name: 't', secretHash: 'x', premium: true, createdAt: 1 });
      await store.addRecords([VALID[0]!, VALID[1]!], 1000);
      for (const orcid of [VALID[0]!, VALID[1]!]) {
        await store.registerWebhook({ clientId: 'APP-TOUCHTEST000001', orcid, url: `https://example.org/${orcid}`, host: 'example.org', now: 2000 });
      }
    });
    const HOUR = 3_600_000;

    const t0 = Date.now();
    const fromEnv = await cliJson<{ webhooksNotified: number }>(['records', 'touch', VALID[0]!, '--db', db.url], { ORCID_WEBHOOKS_NOTIFY_DELAY: '1h' });
    const t1 = Date.now();
    assert.equal(fromEnv.webhooksNotified, 1);
    const fromFlag = await cliJson<{ webhooksNotified: number }>(['records', 'touch', VALID[1]!, '--notify-delay', '2h', '--db', db.url], { ORCID_WEBHOOKS_NOTIFY_DELAY: '1h' });
    const t2 = Date.now();
    assert.equal(fromFlag.webhooksNotified, 1);

    const hooks = await cliJson<WebhookJson[]>(['webhooks', 'list', '--state', 'pending', '--db', db.url]);
    assert.equal(hooks.length, 2);
    const due = (orcid: string) => {
      const w = hooks.find((h) => h.orcid === orcid);
      assert.ok(w?.nextAttempt, `webhook of ${orcid} is due`);
      assert.equal(w.state, 'pending');
      return Date.parse(w.nextAttempt);
    };
    const d0 = due(VALID[0]!);
    assert.ok(d0 >= t0 + HOUR && d0 <= t1 + HOUR, `ORCID_WEBHOOKS_NOTIFY_DELAY=1h: due ${d0 - t0} ms after start`);
    const d1 = due(VALID[1]!);
    assert.ok(d1 >= t1 + 2 * HOUR && d1 <= t2 + 2 * HOUR, `--notify-delay 2h wins over the env: due ${d1 - t1} ms after start`);

    const filtered = await cliJson<WebhookJson[]>(['webhooks', 'list', '--orcid', VALID[0]!, '--db', db.url]);
    assert.deepEqual(filtered.map((w) => w.orcid), [VALID[0]]);
  });

  it('a command that reads or changes what is there, on a database that does not exist or is not this service\'s: exit 1, nothing created', async () => {
    const missing = join(tempDb().dir, 'sub', 'x.db');
    for (const args of [['clients', 'list'], ['webhooks', 'list'], ['records', 'list'], ['clients', 'revoke', 'APP-X'], ['upstream', 'status']]) {
      const r = await cli([...args, '--db', `sqlite:${missing}`]);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /No database at .*x\.db: check --db/);
      assert.equal(existsSync(dirname(missing)), false, `${args.join(' ')} created nothing`);
    }
    const foreign = tempDb();
    new Database(foreign.file).exec('CREATE TABLE foo (x)');
    const r = await cli(['webhooks', 'list', '--db', foreign.url]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /is not a database of this service/);
    const tables = new Database(foreign.file).prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[];
    assert.deepEqual(tables.map((t) => t.name), ['foo'], 'nothing added to another application\'s file');
  });

  it('the missing or foreign database message names the environment variable --db really reads (DATABASE_URL), which then works', async () => {
    const missing = join(tempDb().dir, 'x.db');
    const foreign = tempDb();
    new Database(foreign.file).exec('CREATE TABLE foo (x)');
    const dbEnv = SETTINGS.find((s) => s.key === 'db')!.env;
    for (const url of [`sqlite:${missing}`, foreign.url]) {
      const r = await cli(['clients', 'list', '--db', url]);
      assert.equal(r.code, 1, r.stderr);
      const named = /check --db \(([A-Z_]+)\)/.exec(r.stderr)?.[1];
      assert.equal(named, dbEnv, `${r.stderr.trim()}: names ${named}, but --db is read from ${dbEnv}`);
    }
    // Following the advice: the variable the message names selects the database.
    const good = tempDb();
    assert.equal((await cli(['migrate', '--db', good.url])).code, 0);
    const viaEnv = await cli(['clients', 'list', '--json'], { env: { [dbEnv]: good.url } });
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
  });

  it('webhooks list on an empty database is an empty array; --state bogus is rejected', async () => {
    const db = tempDb();
    assertOk(await cli(['migrate', '--db', db.url]), 'migrate');
    assert.deepEqual(await cliJson(['webhooks', 'list', '--db', db.url]), []);
    const text = await cli(['webhooks', 'list', '--db', db.url]);
    assertOk(text, 'webhooks list');
    assert.equal(text.stdout.trim(), 'no webhooks match');
    const bogus = await cli(['webhooks', 'list', '--state', 'bogus', '--db', db.url]);
    assert.equal(bogus.code, 2);
    assert.match(bogus.stderr, /'bogus' is invalid/);
    assert.match(bogus.stderr, /enabled, disabled, failing, pending/);
  });

  it('serve --port abc exits non-zero naming --port (and PORT=abc names PORT)', async () => {
    const db = tempDb();
    const r = await cli(['serve', '--port', 'abc', '--db', db.url]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--port/);
    assert.match(r.stderr, /"abc" is not a port number/);
    const env = await cli(['serve', '--db', db.url], { env: { PORT: 'abc' } });
    assert.notEqual(env.code, 0);
    assert.match(env.stderr, /from PORT/);
    assert.ok(!existsSync(join(db.dir, 'admin-token')), 'nothing started');
  });

  it('serve listens, answers ORCID-style JSON errors, keeps a 0600 admin token, and exits 0 on SIGTERM', async () => {
    const db = tempDb();
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve', '--port', '0', '--db', db.url, '--log-level', 'info'], {
      cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "listening on" log line within 20 s:\n${stdout}\n${stderr}`)), 20_000);
        child.stdout.on('data', (c: Buffer) => {
          stdout += c.toString();
          for (const line of stdout.split('\n')) {
            if (!line.startsWith('{')) continue;
            let entry: { msg?: string; url?: string };
            try { entry = JSON.parse(line) as typeof entry; } catch { continue; }
            if (entry.url && /orcid-webhooks .* listening on/.test(entry.msg ?? '')) {
              clearTimeout(timer);
              resolve(entry.url);
            }
          }
        });
        void exited.then((e) => reject(new Error(`serve exited early (${e.code}):\n${stdout}\n${stderr}`)));
      });
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.notEqual(url, 'http://127.0.0.1:0', 'a real port was picked');

      const res = await fetch(`${url}/no/such/path`, { headers: { accept: 'application/json' } });
      assert.equal(res.status, 404);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      const body = (await res.json()) as Record<string, unknown>;
      assert.equal(body['response-code'], 404);
      assert.equal(typeof body['error-code'], 'number');
      assert.equal(typeof body['developer-message'], 'string');
      assert.equal(typeof body['user-message'], 'string');
      assert.equal(typeof body['more-info'], 'string');

      const tokenFile = join(db.dir, 'admin-token');
      assert.ok(existsSync(tokenFile), 'a generated admin token is stored beside the database');
      assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
      const token = readFileSync(tokenFile, 'utf8').trim();
      assert.ok(token.length >= 32, 'a long token');
      assert.ok(stdout.includes(tokenFile), 'the log says where the token is');
      assert.ok(!stdout.includes(token), 'the token itself is not logged');

      const start = Date.now();
      child.kill('SIGTERM');
      const outcome = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 8000).unref())]);
      assert.ok(outcome, 'serve stopped within 8 s of SIGTERM');
      assert.deepEqual(outcome, { code: 0, signal: null }, stderr);
      assert.ok(Date.now() - start < 8000);
      assert.match(stdout, /"msg":"stopped"/);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
