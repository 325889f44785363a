/*
 * The service as `npm start` runs it: the compiled dist/ (npm run build, done here first), not src/
 * through tsx. tsx compiles with esbuild's keepNames, which wraps every function the service creates
 * in a __name() call: per request and per callback closures paid a cost users never pay (~3 % of a
 * callback's CPU in the profiles). Types still come from src/. BENCH_BUILD=0 skips the build (dist/
 * must then be current).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type * as ConfigModule from '../../src/config.ts';
import type * as SecretsModule from '../../src/domain/secrets.ts';
import type * as LoggerModule from '../../src/logger.ts';
import type * as ClientsModule from '../../src/ops/clients.ts';
import type * as ServiceModule from '../../src/service.ts';
import type * as StoreModule from '../../src/store/index.ts';
import type * as PostgresModule from '../../src/store/postgres/postgres-store.ts';
import type * as SqliteModule from '../../src/store/sqlite/sqlite-store.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The CLI users run (`node dist/cli/main.js`, what the package's binary loads). */
export const CLI_MAIN = `${ROOT}dist/cli/main.js`;

if (process.env.BENCH_BUILD !== '0') {
  const built = spawnSync(process.execPath, [`${ROOT}scripts/build.js`], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  if (built.status !== 0) throw new Error('npm run build failed: the benchmark measures dist/');
}

const load = async <T>(path: string): Promise<T> => (await import(new URL(`../../dist/${path}`, import.meta.url).href)) as T;

export const { testConfig } = await load<typeof ConfigModule>('config.js');
export const { hashToken, newToken } = await load<typeof SecretsModule>('domain/secrets.js');
export const { createLogger, logDestination } = await load<typeof LoggerModule>('logger.js');
export const { createApiClient } = await load<typeof ClientsModule>('ops/clients.js');
export const { startService } = await load<typeof ServiceModule>('service.js');
export const { createStore } = await load<typeof StoreModule>('store/index.js');
export const { PostgresStore } = await load<typeof PostgresModule>('store/postgres/postgres-store.js');
export const { SqliteStore } = await load<typeof SqliteModule>('store/sqlite/sqlite-store.js');
