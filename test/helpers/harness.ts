import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testConfig, type Config } from '../../src/config.ts';
import { parseRetrySchedule } from '../../src/domain/retry-schedule.ts';
import { createLogger } from '../../src/logger.ts';
import { createApiClient } from '../../src/ops/clients.ts';
import { startService, type Service } from '../../src/service.ts';
import type { Store } from '../../src/store/types.ts';
import { createTestSchema, requirePostgres } from './postgres.ts';

export const SEED_ORCID = '0000-0002-7465-2162';
export const SEED_CALLBACK = 'https://nowhere2.com/0000-0002-7465-2162/updated';
export const SEED_ENCODED = 'https%3A%2F%2Fnowhere2.com%2F0000-0002-7465-2162%2Fupdated';
export const ADMIN_TOKEN = 'test-admin-token-0123456789';

/** Delivery settings for tests that watch retries: loopback callbacks, three 150 ms retries, short timeouts and lease. */
export const FAST_DELIVERY = {
  allowedTargets: ['127.0.0.0/8'],
  retrySchedule: parseRetrySchedule('150ms,150ms,150ms'),
  pollIntervalMs: 200,
  requestTimeoutMs: 400,
  connectTimeoutMs: 400,
  leaseMs: 2000,
} satisfies Partial<Config>;

export interface Harness {
  svc: Service;
  store: Store;
  dir: string;
  /** A premium client's /webhook token. */
  token: string;
  clientId: string;
  close(): Promise<void>;
}

export type Backend = 'sqlite' | 'postgres';

/**
 * The stores the behaviour suites run against: SQLite always; PostgreSQL when reachable (required
 * under CI=true, otherwise skipped with a one-line notice).
 */
export async function backends(): Promise<{ backend: Backend; skip: string | false }[]> {
  return [
    { backend: 'sqlite', skip: false },
    { backend: 'postgres', skip: (await requirePostgres()) ? false : 'PostgreSQL not reachable' },
  ];
}

/** A service on a temporary database (SQLite file, or a fresh PostgreSQL schema), with a premium client and its token. */
export async function startHarness(overrides: Partial<Config> = {}, opts: { listen?: boolean; store?: Store; backend?: Backend } = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'ow-test-'));
  const schema = opts.backend === 'postgres' ? await createTestSchema() : null;
  if (opts.backend === 'postgres' && !schema) throw new Error('PostgreSQL is not reachable');
  const db = schema ? schema.url : `sqlite:${join(dir, 'db.sqlite')}`;
  const config = testConfig({ db, port: 0, adminToken: ADMIN_TOKEN, logLevel: 'silent', ...overrides });
  const svc = await startService(config, { logger: createLogger(config.logLevel), listen: opts.listen ?? false, ...(opts.store && { store: opts.store }) });
  const { client, secret } = await createApiClient(svc.store, { name: 'Test premium', premium: true });
  const token = await getToken(svc, client.id, secret);
  return {
    svc, store: svc.store, dir, token, clientId: client.id,
    async close() {
      await svc.close();
      await schema?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function getToken(svc: Service, clientId: string, secret: string, scope = '/webhook'): Promise<string> {
  const res = await svc.app.inject({
    method: 'POST', url: '/oauth/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    payload: new URLSearchParams({ client_id: clientId, client_secret: secret, grant_type: 'client_credentials', scope }).toString(),
  });
  if (res.statusCode !== 200) throw new Error(`token request failed: ${res.statusCode} ${res.body}`);
  return (res.json() as { access_token: string }).access_token;
}

export function webhookPath(orcid: string, callback: string): string {
  return `/${orcid}/webhook/${encodeURIComponent(callback)}`;
}

const TABLES = ['clients', 'tokens', 'records', 'webhooks', 'attempts', 'client_delivery'];

/** Every row of every table: a rejected request must change nothing. */
export async function snapshot(store: Store): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const t of TABLES) {
    const sql = `SELECT * FROM ${t} ORDER BY 1`;
    out[t] = store.dialect === 'postgres'
      ? (await (store as unknown as { pool: { query(sql: string): Promise<{ rows: unknown[] }> } }).pool.query(sql)).rows
      : (store as unknown as { db: { prepare(sql: string): { all(): unknown[] } } }).db.prepare(sql).all();
  }
  return out;
}
