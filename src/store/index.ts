import type { SecretBox } from '../domain/secret-box.ts';
import type { Store } from './types.ts';
import { parseDatabaseUrl } from './database-url.ts';

export { isPostgresUrl } from './database-url.ts';
import { SqliteStore } from './sqlite/sqlite-store.ts';

export type { Store } from './types.ts';

export interface StoreOptions {
  /** PostgreSQL pool size. */
  poolSize?: number;
  /** PostgreSQL statement timeout in ms. */
  statementTimeoutMs?: number;
  /** SQLite: WAL checkpoints on a background thread (for long-running services). */
  backgroundCheckpoint?: boolean;
  /** Seals signing secrets at rest (AES-256-GCM, key outside the database). */
  secrets?: SecretBox;
}

/** Opens the store a database URL names: `postgres://...`, `sqlite:path`, or a plain file path. */
export async function createStore(url: string, opts: StoreOptions = {}): Promise<Store> {
  const target = parseDatabaseUrl(url); // an unknown scheme throws, naming the accepted forms
  if (target.kind === 'postgres') {
    const { PostgresStore } = await import('./postgres/postgres-store.ts');
    return new PostgresStore(target.url, opts);
  }
  return new SqliteStore(target.path, { backgroundCheckpoint: opts.backgroundCheckpoint ?? false, ...(opts.secrets && { secrets: opts.secrets }) });
}
