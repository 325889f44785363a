/*
 * PostgreSQL for tests: where it is, whether it answers, and a throw-away schema per test.
 *
 * TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names the database. When it
 * cannot be reached, PostgreSQL tests are skipped with one line of explanation, except under
 * CI=true, where a missing database is a failure rather than a silent skip.
 */
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import pg from 'pg';
import { redactUserinfo } from '../../src/logger.ts';

export function pgTestUrl(): string {
  return process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
}

/** The URL with `-c search_path=<schema>` added to its startup options (works with any pg client). */
export function withSearchPath(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set('options', [u.searchParams.get('options'), `-c search_path=${schema}`].filter(Boolean).join(' '));
  return u.toString();
}

/** Runs fn on a short-lived connection to url. */
export async function withPgClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

let probe: Promise<string | null> | undefined;

/** null when PostgreSQL answers, else why not (probed once per process). */
export function pgUnreachableReason(): Promise<string | null> {
  probe ??= withPgClient(pgTestUrl(), async (c) => {
    await c.query('SELECT 1');
    return null;
  }).catch((err: unknown) => (err instanceof Error ? err.message : String(err)) || 'connection failed');
  return probe;
}

let skipAnnounced = false;

/**
 * Whether PostgreSQL tests should run. When the database is unreachable: throws under CI=true,
 * otherwise prints one line (once per process) and answers false.
 */
export async function requirePostgres(): Promise<boolean> {
  const reason = await pgUnreachableReason();
  if (reason === null) return true;
  const url = redactUserinfo(pgTestUrl());
  if (process.env.CI === 'true') throw new Error(`PostgreSQL not reachable at ${url} (${reason}); CI=true requires it`);
  if (!skipAnnounced) {
    skipAnnounced = true;
    // Under `node --test` the runner turns a child's output lines into `# ...` TAP comments itself.
    const prefix = process.env.NODE_TEST_CONTEXT ? '' : '# ';
    console.log(`${prefix}PostgreSQL not reachable at ${url}: skipping PostgreSQL store tests`);
  }
  return false;
}

/**
 * Gate for a PostgreSQL suite: answers true when its tests should be defined. Otherwise it defines
 * the suite `name` itself: a failing test under CI=true (PostgreSQL is required there), or a skipped
 * suite elsewhere (with requirePostgres' one-line notice).
 */
export async function postgresSuiteGate(name: string): Promise<boolean> {
  let error: Error | null = null;
  let ready = false;
  try {
    ready = await requirePostgres();
  } catch (err) {
    error = err as Error;
  }
  if (error) {
    const failure = error;
    describe(name, () => {
      it('needs PostgreSQL (CI=true)', () => {
        throw failure;
      });
    });
  } else if (!ready) {
    describe(name, { skip: 'PostgreSQL not reachable' }, () => undefined);
  }
  return ready;
}

export interface TestSchema {
  schema: string;
  /** The test database URL with search_path set to the schema. */
  url: string;
  /** Drops the schema and everything in it (close the connections using it first). */
  drop(): Promise<void>;
}

/** A fresh, empty schema with a random name; null when PostgreSQL tests are skipped (see requirePostgres). */
export async function createTestSchema(): Promise<TestSchema | null> {
  if (!(await requirePostgres())) return null;
  const base = pgTestUrl();
  const schema = `ow_test_${randomBytes(6).toString('hex')}`;
  await withPgClient(base, (c) => c.query(`CREATE SCHEMA ${schema}`));
  return {
    schema,
    url: withSearchPath(base, schema),
    drop: async () => {
      await withPgClient(base, (c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
    },
  };
}
