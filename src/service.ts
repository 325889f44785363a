import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './api/app.ts';
import type { Config } from './config.ts';
import { CallbackRequestBuilder } from './delivery/request-builder.ts';
import { createSender } from './delivery/sender.ts';
import { DeliveryWorker } from './delivery/worker.ts';
import { SecretBox, newKey, parseKey } from './domain/secret-box.ts';
import { TargetPolicy } from './domain/ssrf.ts';
import { SECRETS_KEY_FILE, loadSecretBox, type LoadedKeys } from './ops/secrets-key.ts';
import { createLogger } from './logger.ts';
import { Metrics } from './metrics.ts';
import { explainDatabaseError } from './store/database-errors.ts';
import { parseDatabaseUrl, sqliteFile } from './store/database-url.ts';
import { createStore } from './store/index.ts';
import type { Store } from './store/types.ts';
import { USER_AGENT } from './version.ts';
import { createChangeSink } from './changes/source.ts';
import { startUpstream, type Upstream } from './upstream/index.ts';

export interface Service {
  config: Config;
  store: Store;
  app: FastifyInstance;
  worker: DeliveryWorker | null;
  metrics: Metrics;
  /** The upstream poller and its client (null without --upstream). */
  upstream: Upstream | null;
  /** Base URL the server listens on, e.g. http://127.0.0.1:8080 */
  url: string;
  adminToken: string;
  /** Where a generated admin token is stored (null when it came from the settings). */
  adminTokenFile: string | null;
  logger: Logger;
  /** Stops accepting requests, drains deliveries (bounded by drain-timeout) and closes the store. */
  close(): Promise<void>;
}

/** The data directory: beside the SQLite file, or ./data for PostgreSQL. */
export function dataDir(db: string): string {
  const path = sqliteFile(parseDatabaseUrl(db));
  return path === null ? resolve('data') : dirname(resolve(path));
}

/** The admin token from the settings, or one generated on first start and kept (0600) in the data directory. */
function resolveAdminToken(config: Config): { token: string; file: string | null } {
  if (config.adminToken) return { token: config.adminToken, file: null };
  const dir = dataDir(config.db);
  const file = join(dir, 'admin-token');
  if (existsSync(file)) {
    chmodSync(file, 0o600);
    return { token: readFileSync(file, 'utf8').trim(), file };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const token = `owa_${randomBytes(32).toString('base64url')}`;
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { token, file };
}

/**
 * The data directory readable by the service's user only (0700): made so when created, and tightened
 * when it holds nothing but the service's own files (a directory shared with anything else, such as
 * /tmp, is left as it is).
 */
function secureDataDir(config: Config): void {
  const dir = dataDir(config.db);
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return;
  }
  const file = sqliteFile(parseDatabaseUrl(config.db));
  const db = file === null ? null : basename(file);
  const ours = (name: string) => name === 'admin-token' || name.startsWith(SECRETS_KEY_FILE) || (db !== null && name.startsWith(db));
  const st = statSync(dir);
  if ((st.mode & 0o077) !== 0 && st.uid === process.getuid?.() && (st.mode & 0o1000) === 0 && readdirSync(dir).every(ours)) chmodSync(dir, 0o700);
}

/** The key sealing signing secrets: the setting, or the key file in the data directory (an in-memory database gets a throw-away key). */
export function secretsKeys(config: Config): LoadedKeys {
  const target = parseDatabaseUrl(config.db);
  if (!config.secretsKey && target.kind === 'sqlite' && target.path === ':memory:') {
    const key = newKey();
    return { box: new SecretBox([parseKey(key, 'generated')]), file: null, keys: [key] };
  }
  return loadSecretBox(config.secretsKey, dataDir(config.db));
}

export async function openStore(config: Config): Promise<Store> {
  return createStore(config.db, { poolSize: config.poolSize, statementTimeoutMs: config.statementTimeoutMs, secrets: secretsKeys(config).box });
}

/** The store of a long-running server: SQLite checkpoints move off the event loop. */
async function openServiceStore(config: Config): Promise<Store> {
  return createStore(config.db, { poolSize: config.poolSize, statementTimeoutMs: config.statementTimeoutMs, backgroundCheckpoint: true, secrets: secretsKeys(config).box });
}

export interface StartOptions {
  logger?: Logger;
  store?: Store;
  /** Skip listening (tests use app.inject). */
  listen?: boolean;
}

export async function startService(config: Config, opts: StartOptions = {}): Promise<Service> {
  const logger = opts.logger ?? createLogger(config.logLevel, undefined, config.logFormat);
  if (!opts.store) secureDataDir(config);
  const store = opts.store ?? (await openServiceStore(config).catch((e: unknown) => { throw explainDatabaseError(e, config.db); }));
  const applied = await store.migrate().catch(async (e: unknown) => {
    if (!opts.store) await store.close().catch(() => undefined);
    throw explainDatabaseError(e, config.db);
  });
  if (applied.length) logger.info({ applied }, 'applied database migrations');
  // Secrets stored before encryption, or under a key being rotated out, are sealed with the current key.
  const resealed = await store.resealSigningSecrets();
  if (resealed) logger.info({ clients: resealed }, 'signing secrets encrypted with the current secrets key');
  const { token: adminToken, file: adminTokenFile } = resolveAdminToken(config);
  const policy = new TargetPolicy({ allowedCidrs: config.allowedTargets, httpsOnly: config.httpsOnly });

  let worker: DeliveryWorker | null = null;
  let sender: ReturnType<typeof createSender> | null = null;
  // Signing and payloads per client; settings are cached briefly so callbacks cost no query each.
  const requests = new CallbackRequestBuilder({ store });
  if (config.role !== 'api') {
    sender = createSender({
      policy, connectTimeoutMs: config.connectTimeoutMs, requestTimeoutMs: config.requestTimeoutMs, userAgent: USER_AGENT,
      perAddressConcurrency: config.perAddressConcurrency,
    });
    worker = new DeliveryWorker({
      store, sender, schedule: config.retrySchedule, logger: logger.child({ component: 'delivery' }),
      concurrency: config.concurrency, perHostConcurrency: config.perHostConcurrency, leaseMs: config.leaseMs,
      pollIntervalMs: config.pollIntervalMs, notifyDelayMs: config.notifyDelayMs, attemptRetentionMs: config.attemptRetentionMs,
      buildRequest: requests.build,
      perClientConcurrency: config.perClientConcurrency, perAddressConcurrency: config.perAddressConcurrency, workerStaleMs: config.workerStaleMs,
      // One SQLite file is delivered by one process: claims found at start are a crashed predecessor's.
      retakeAllClaimsAtStart: store.dialect === 'sqlite',
    });
  }

  const metrics = new Metrics(store);
  if (worker) metrics.observeWorker(worker);
  // Every source of record changes (admin API, upstream poller) enters through this one sink.
  const sink = createChangeSink({ store, notifyDelayMs: config.notifyDelayMs, onApplied: () => worker?.notify() });
  const upstream = config.upstream ? startUpstream(config, { store, metrics, logger: logger.child({ component: 'upstream' }) }) : null;
  const app = buildApp({
    sink,
    upstream: upstream && { settings: upstream.settings, status: () => upstream.poller.status() },
    ...(upstream && config.records === 'upstream' && { recordExists: upstream.recordExists }),
    metrics,
    worker: { expected: worker !== null, running: () => worker?.isRunning ?? false },
    store, policy, logger, records: config.records, compat: config.compat, baseUrl: config.baseUrl, adminToken,
    notifyDelayMs: config.notifyDelayMs, maxWebhooksPerClient: config.maxWebhooksPerClient,
    onChanges: () => worker?.notify(),
    api: config.role !== 'worker',
    rateLimitPerMinute: config.rateLimitPerMinute, tokenRateLimitPerMinute: config.tokenRateLimitPerMinute,
    signingRotationGraceMs: config.signingRotationGraceMs,
    onClientSettingsChanged: (clientId) => requests.invalidate(clientId),
    httpLimits: { requestTimeoutMs: config.httpRequestTimeoutMs, headersTimeoutMs: config.httpHeadersTimeoutMs, maxConnectionsPerAddress: config.maxConnectionsPerIp },
  });

  let url = '';
  if (opts.listen !== false) {
    await app.listen({ port: config.port, host: config.host }).catch((e: NodeJS.ErrnoException) => {
      const why = e.code === 'EADDRINUSE' ? 'the port is in use' : e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN' ? `no such host "${config.host}"`
        : e.code === 'EADDRNOTAVAIL' ? `${config.host} is not an address of this machine` : e.code === 'EACCES' ? 'permission denied (a port below 1024?)' : e.message;
      throw new Error(`Cannot listen on ${config.host}:${config.port} (--host, --port): ${why}`, { cause: e });
    });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : config.port;
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;
    url = `http://${host}:${port}`;
  } else {
    await app.ready();
  }
  await worker?.start();
  await upstream?.poller.start(sink);

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      await app.close();
      await upstream?.poller.stop();
      let drained = true;
      if (worker) {
        const stopped = await worker.stop(config.drainTimeoutMs);
        drained = stopped.drained;
        if (!drained) logger.warn({ abandoned: stopped.abandoned }, 'drain timeout: in-flight callbacks given back for retry');
      }
      // After a drain timeout, close() would wait for the abandoned callbacks (up to the request timeout).
      await (drained ? sender?.close() : sender?.destroy());
      await store.close();
    })();
    return closing;
  };
  return { config, store, app, worker, metrics, upstream, url, adminToken, adminTokenFile, logger, close };
}
