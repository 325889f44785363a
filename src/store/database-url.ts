/**
 * What a database setting (`--db`, DATABASE_URL, or `createStore`'s url) may be. An unknown scheme
 * is refused rather than taken for a file name (`mysql://x/y` once became a SQLite file `mysql:`).
 */
const DATABASE_FORMS = 'sqlite:PATH, sqlite::memory:, a plain file path, or postgres://user@host[:port]/db (or postgresql://)';

export type DatabaseTarget = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

/** A PostgreSQL URL; anything else is SQLite or refused by parseDatabaseUrl. */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//.test(url);
}

/** The SQLite database file; null for PostgreSQL and for SQLite in memory. */
export function sqliteFile(target: DatabaseTarget): string | null {
  return target.kind === 'sqlite' && target.path !== ':memory:' ? target.path : null;
}

export function parseDatabaseUrl(url: string): DatabaseTarget {
  if (url.trim() === '') throw new Error(`the database is empty; use ${DATABASE_FORMS}`);
  if (isPostgresUrl(url)) return { kind: 'postgres', url };
  if (url.startsWith('sqlite://')) return { kind: 'sqlite', path: url.slice('sqlite://'.length) || ':memory:' };
  if (url.startsWith('sqlite:')) return { kind: 'sqlite', path: url.slice('sqlite:'.length) || ':memory:' };
  // A scheme of two or more letters (one letter is a Windows drive, C:\...).
  const scheme = /^([a-z][a-z0-9+.-]+):/i.exec(url)?.[1];
  if (scheme) throw new Error(`"${url}" has an unknown scheme "${scheme}:"; use ${DATABASE_FORMS}`);
  return { kind: 'sqlite', path: url };
}

/** The database for messages: an absolute SQLite path, or the PostgreSQL URL without its password. */
export function describeDatabase(target: DatabaseTarget, resolvePath: (p: string) => string): string {
  if (target.kind === 'sqlite') return target.path === ':memory:' ? 'the in-memory SQLite database' : `the SQLite database ${resolvePath(target.path)}`;
  return `the PostgreSQL database ${target.url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@')}`;
}
