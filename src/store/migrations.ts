import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Migration {
  name: string;
  sql: string;
}

/** Numbered `NNN_name.sql` files of a dialect (store/<dialect>/migrations/), in order. Shipped migrations are never edited. */
export function loadMigrations(dialect: 'sqlite' | 'postgres'): Migration[] {
  const dir = join(dirname(fileURLToPath(import.meta.url)), dialect, 'migrations');
  return readdirSync(dir)
    .filter((f) => /^\d{3}_[\w-]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ name: f.replace(/\.sql$/, ''), sql: readFileSync(join(dir, f), 'utf8') }));
}
