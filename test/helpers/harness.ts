import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testConfig, type Config } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { createApiClient } from '../../src/ops/clients.ts';
import { startService, type Service } from '../../src/service.ts';
import type { Store } from '../../src/store/types.ts';

export const SEED_ORCID = '0000-0002-7465-2162';
export const SEED_CALLBACK = 'https://nowhere2.com/0000-0002-7465-2162/updated';
export const SEED_ENCODED = 'https%3A%2F%2Fnowhere2.com%2F0000-0002-7465-2162%2Fupdated';
export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface Harness {
  svc: Service;
  store: Store;
  dir: string;
  /** A premium client's /webhook token. */
  token: string;
  clientId: string;
  close(): Promise<void>;
}

/** A service on a temporary SQLite database, with a premium client and its token. */
export async function startHarness(overrides: Partial<Config> = {}, opts: { listen?: boolean; store?: Store } = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'ow-test-'));
  const config = testConfig({ db: `sqlite:${join(dir, 'db.sqlite')}`, port: 0, adminToken: ADMIN_TOKEN, logLevel: 'silent', ...overrides });
  const svc = await startService(config, { logger: createLogger(config.logLevel), listen: opts.listen ?? false, ...(opts.store && { store: opts.store }) });
  const { client, secret } = await createApiClient(svc.store, { name: 'Test premium', premium: true });
  const token = await getToken(svc, client.id, secret);
  return {
    svc, store: svc.store, dir, token, clientId: client.id,
    async close() {
      await svc.close();
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

/** Every row of every table (SQLite store): a rejected request must change nothing. */
export function snapshot(store: Store): Record<string, unknown[]> {
  const db = (store as unknown as { db: { prepare(sql: string): { all(): unknown[] } } }).db;
  const out: Record<string, unknown[]> = {};
  for (const t of ['clients', 'tokens', 'records', 'webhooks', 'attempts']) out[t] = db.prepare(`SELECT * FROM ${t} ORDER BY 1`).all();
  return out;
}
