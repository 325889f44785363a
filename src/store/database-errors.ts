import { dirname, resolve } from 'node:path';
import { describeDatabase, parseDatabaseUrl, type DatabaseTarget } from './database-url.ts';

/** A database that cannot be opened or used at start-up, explained: which one, which setting, what to check. */
export class DatabaseError extends Error {}

const SETTING = 'set by --db or DATABASE_URL';

function pgHostPort(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}:${u.port || '5432'}`;
  } catch {
    return 'the host and port of the URL';
  }
}

function hint(err: { code?: unknown; message?: string }, target: DatabaseTarget): string {
  const code = typeof err.code === 'string' ? err.code : '';
  if (target.kind === 'sqlite') {
    const dir = dirname(resolve(target.path));
    if (code.startsWith('SQLITE_READONLY')) return `The file or its directory is read-only for this user: check the permissions of ${resolve(target.path)} and of ${dir} (SQLite also writes -wal and -shm files beside the database).`;
    if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') return 'The file is not an SQLite database (or is damaged): check the path.';
    if (code === 'SQLITE_CANTOPEN' || ['EACCES', 'EPERM', 'ENOTDIR', 'EEXIST', 'EROFS', 'EISDIR', 'ENOENT'].includes(code)) {
      return `Check that ${dir} is a directory this user can create and write files in (SQLite also writes -wal and -shm files beside the database), and that the path names a file, not a directory.`;
    }
    return 'Check the path, the permissions of the file and of its directory, and the free disk space.';
  }
  const at = pgHostPort(target.url);
  if (code === 'ECONNREFUSED') return `Nothing accepts connections at ${at}: check that PostgreSQL is running there and listens on TCP (listen_addresses, port), or correct the URL.`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `The host name of ${at} does not resolve: check the URL.`;
  if (code === 'ETIMEDOUT' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || /timeout/i.test(err.message ?? '')) return `No answer from ${at}: check the host, the port and any firewall between.`;
  if (code === '28P01' || code === '28000') return 'The server refused the login: check the user and password in the URL, and pg_hba.conf.';
  if (code === '3D000') return 'Create the database (createdb NAME) or correct its name in the URL.';
  if (code === '3F000') return 'Create the schema named by the URL\'s schema parameter, or correct it.';
  if (code === '42501') return 'The user lacks a privilege the migrations need (CREATE on the database or schema): grant it, or connect as the owner.';
  return 'Check the URL and that the server accepts this user.';
}

/** Wraps an error met while opening or migrating the database named by url. */
export function explainDatabaseError(err: unknown, url: string): Error {
  if (err instanceof DatabaseError) return err;
  let target: DatabaseTarget;
  try {
    target = parseDatabaseUrl(url);
  } catch (e) {
    return new DatabaseError(`Invalid database (${SETTING}): ${(e as Error).message}`);
  }
  const e = (err ?? {}) as { code?: unknown; message?: string };
  const what = e.message ?? String(err);
  return new DatabaseError(`Cannot use ${describeDatabase(target, (p) => resolve(p))} (${SETTING}): ${what}. ${hint(e, target)}`, { cause: err });
}

/**
 * An error the same data meets again, not an outage: PostgreSQL's data exceptions and integrity
 * violations (SQLSTATE classes 22 and 23), SQLite's constraint, type and size errors. Retrying the
 * same write cannot help.
 */
export function isDataError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(2[23][0-9A-Z]{3}|SQLITE_(CONSTRAINT|MISMATCH|TOOBIG|RANGE)\w*)$/.test(code);
}

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND',
  // PostgreSQL: connection exceptions (08xxx), shutdown (57P01-03), too many connections.
  '08000', '08001', '08003', '08004', '08006', '57P01', '57P02', '57P03', '53300',
  'SQLITE_BUSY', 'SQLITE_LOCKED',
]);

/** A database that is down, unreachable or busy: the request may succeed if retried. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e.code === 'string' && UNAVAILABLE_CODES.has(e.code)) return true;
  return typeof e.message === 'string'
    && /Connection terminated|timeout exceeded when trying to connect|Query read timeout|connection error|database is locked/i.test(e.message);
}
