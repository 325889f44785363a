import { parseDuration, parseRetrySchedule, type RetrySchedule } from './domain/retry-schedule.ts';
import { parseCidrList } from './domain/ssrf.ts';
import { parseDatabaseUrl } from './store/database-url.ts';
import { parseIsoTime } from './domain/time.ts';
import { parseKeyList } from './ops/secrets-key.ts';

/**
 * Every setting has a CLI flag and an environment variable: flags win over env, env over defaults.
 * An invalid value stops start-up with a message naming the setting.
 */
export interface Config {
  port: number;
  host: string;
  db: string;
  baseUrl: string | null;
  records: 'strict' | 'open' | 'upstream';
  adminToken: string | null;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** auto: pretty when stdout is a terminal, JSON otherwise. */
  logFormat: 'auto' | 'pretty' | 'json';
  role: 'all' | 'api' | 'worker';
  notifyDelayMs: number;
  retrySchedule: RetrySchedule;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  concurrency: number;
  perHostConcurrency: number;
  perAddressConcurrency: number;
  perClientConcurrency: number;
  workerStaleMs: number;
  allowedTargets: string[];
  httpsOnly: boolean;
  attemptRetentionMs: number;
  pollIntervalMs: number;
  leaseMs: number;
  drainTimeoutMs: number;
  poolSize: number;
  statementTimeoutMs: number;
  maxWebhooksPerClient: number;
  rateLimitPerMinute: number;
  tokenRateLimitPerMinute: number;
  signingRotationGraceMs: number;
  compat: 'none' | 'orcid';
  httpRequestTimeoutMs: number;
  httpHeadersTimeoutMs: number;
  maxConnectionsPerIp: number;
  secretsKey: string | null;
  /** Watch a real ORCID registry (src/upstream/): null (off), or its public API. */
  upstream: UpstreamTarget | null;
  upstreamClientId: string | null;
  upstreamClientSecret: string | null;
  upstreamTokenUrl: string | null;
  upstreamIntervalMs: number;
  /** Requests per second to the upstream, never exceeded. */
  upstreamRate: number;
  /** Where the first search window starts (epoch ms); null: now. */
  upstreamSinceMs: number | null;
  /** How far each search window reaches back before the cursor: covers ORCID's indexing delay. */
  upstreamOverlapMs: number;
}

/** `orcid`, `sandbox`, or the base URL of a v3.0 public API (`https://pub.orcid.org/v3.0`). */
export interface UpstreamTarget {
  name: string;
  apiUrl: string;
  /** The token endpoint ORCID uses for that API; null for a custom base (then --upstream-token-url). */
  tokenUrl: string | null;
}

export class ConfigError extends Error {}

interface SettingSpec<K extends keyof Config> {
  key: K;
  flag: string;
  env: string;
  default: string | null;
  help: string;
  parse: (raw: string) => Config[K];
}

const int = (min: number, max: number, what: string) => (raw: string): number => {
  if (!/^-?\d+$/.test(raw.trim())) throw new Error(`"${raw}" is not ${what}`);
  const n = Number(raw);
  if (n < min || n > max) throw new Error(`${n} is out of range (${min} to ${max})`);
  return n;
};
const oneOf = <T extends string>(...values: T[]) => (raw: string): T => {
  if (!(values as string[]).includes(raw)) throw new Error(`"${raw}" must be one of ${values.join(', ')}`);
  return raw as T;
};
const bool = (raw: string): boolean => {
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new Error(`"${raw}" is not a boolean (true or false)`);
};
const duration = (raw: string): number => parseDuration(raw);
/** The longest delay a Node timer takes (2^31 - 1 ms, 24.8 days): a longer one fires after 1 ms. */
const MAX_TIMER_MS = 2_147_483_647;
/** A duration that a timer waits (or a timeout bounds): at least `min` ms, at most MAX_TIMER_MS. */
const timer = (min: number) => (raw: string): number => {
  const ms = parseDuration(raw);
  if (ms < min) throw new Error(min === 1 ? `"${raw}" must be above 0` : `"${raw}" must be at least ${min} ms`);
  if (ms > MAX_TIMER_MS) throw new Error(`"${raw}" is longer than a timer can wait (at most 24d, ${MAX_TIMER_MS} ms)`);
  return ms;
};
const httpUrl = (raw: string): string => {
  let u: URL;
  try { u = new URL(raw); } catch { throw new Error(`"${raw}" is not an absolute URL`); }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`"${raw}" must be an http or https URL`);
  return raw.replace(/\/+$/, '');
};
const upstreamTarget = (raw: string): UpstreamTarget => {
  if (raw === 'orcid') return { name: 'orcid', apiUrl: 'https://pub.orcid.org/v3.0', tokenUrl: 'https://orcid.org/oauth/token' };
  if (raw === 'sandbox') return { name: 'sandbox', apiUrl: 'https://pub.sandbox.orcid.org/v3.0', tokenUrl: 'https://sandbox.orcid.org/oauth/token' };
  if (!/^https?:\/\//.test(raw)) throw new Error(`"${raw}" must be orcid, sandbox, or the base URL of a v3.0 public API`);
  return { name: 'custom', apiUrl: httpUrl(raw), tokenUrl: null };
};
const rate = (raw: string): number => {
  const n = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw.trim()) || !(n > 0) || n > 1000) throw new Error(`"${raw}" is not a number of requests per second above 0 (at most 1000)`);
  return n;
};
const str = (raw: string): string => raw;

function spec<K extends keyof Config>(s: SettingSpec<K>): SettingSpec<K> {
  return s;
}

export const SETTINGS = [
  spec({ key: 'port', flag: 'port', env: 'PORT', default: '8080', help: 'port to listen on (0 picks a free one)', parse: int(0, 65535, 'a port number') }),
  spec({ key: 'host', flag: 'host', env: 'HOST', default: '127.0.0.1', help: 'address to listen on', parse: str }),
  spec({ key: 'db', flag: 'db', env: 'DATABASE_URL', default: 'sqlite:./data/orcid-webhooks.db', help: 'database: sqlite:PATH, a file path, or postgres://...', parse: (raw) => {
    parseDatabaseUrl(raw);
    return raw;
  } }),
  spec({ key: 'baseUrl', flag: 'base-url', env: 'PUBLIC_BASE_URL', default: null, help: 'public base URL used in Location headers (default: from the request)', parse: (raw) => {
    let u: URL;
    try { u = new URL(raw); } catch { throw new Error(`"${raw}" is not an absolute URL`); }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`"${raw}" must be an http or https URL`);
    return raw.replace(/\/+$/, '');
  } }),
  spec({ key: 'records', flag: 'records', env: 'ORCID_WEBHOOKS_RECORDS', default: 'strict', help: 'strict: only known records get webhooks; open: any valid iD (record created on registration); upstream: unknown iDs are looked up in --upstream', parse: oneOf('strict', 'open', 'upstream') }),
  spec({ key: 'adminToken', flag: 'admin-token', env: 'ORCID_WEBHOOKS_ADMIN_TOKEN', default: null, help: 'bearer token of the admin API (default: generated and stored in the data directory)', parse: (raw) => {
    if (raw.length < 16) throw new Error('must be at least 16 characters');
    return raw;
  } }),
  spec({ key: 'logLevel', flag: 'log-level', env: 'LOG_LEVEL', default: 'info', help: 'fatal, error, warn, info, debug, trace or silent', parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent') }),
  spec({ key: 'logFormat', flag: 'log-format', env: 'LOG_FORMAT', default: 'auto', help: 'pretty (human-readable lines), json (one JSON object a line), or auto: pretty when stdout is a terminal', parse: oneOf('auto', 'pretty', 'json') }),
  spec({ key: 'role', flag: 'role', env: 'ORCID_WEBHOOKS_ROLE', default: 'all', help: 'all (API and delivery), api, or worker', parse: oneOf('all', 'api', 'worker') }),
  spec({ key: 'notifyDelayMs', flag: 'notify-delay', env: 'ORCID_WEBHOOKS_NOTIFY_DELAY', default: '0', help: 'wait this long after a change before calling (lets bursts of edits settle)', parse: timer(0) }),
  spec({ key: 'retrySchedule', flag: 'retry-schedule', env: 'ORCID_WEBHOOKS_RETRY_SCHEDULE', default: 'standard', help: 'standard, orcid, or a list such as 100ms,1s,1m', parse: parseRetrySchedule }),
  spec({ key: 'connectTimeoutMs', flag: 'connect-timeout', env: 'ORCID_WEBHOOKS_CONNECT_TIMEOUT', default: '20s', help: 'callback connect timeout (ORCID: 20 s)', parse: timer(1) }),
  spec({ key: 'requestTimeoutMs', flag: 'request-timeout', env: 'ORCID_WEBHOOKS_REQUEST_TIMEOUT', default: '20s', help: 'callback whole-request timeout (ORCID: 20 s)', parse: timer(1) }),
  spec({ key: 'concurrency', flag: 'concurrency', env: 'ORCID_WEBHOOKS_CONCURRENCY', default: '256', help: 'callbacks in flight at once (per process)', parse: int(1, 100_000, 'a whole number') }),
  spec({ key: 'perHostConcurrency', flag: 'per-host-concurrency', env: 'ORCID_WEBHOOKS_PER_HOST_CONCURRENCY', default: '8', help: 'callbacks in flight at once to one host (per process)', parse: int(1, 100_000, 'a whole number') }),
  spec({ key: 'perAddressConcurrency', flag: 'per-address-concurrency', env: 'ORCID_WEBHOOKS_PER_ADDRESS_CONCURRENCY', default: '32', help: 'callbacks in flight at once to one resolved IP address, all its host names and ports together (per process)', parse: int(1, 100_000, 'a whole number') }),
  spec({ key: 'perClientConcurrency', flag: 'per-client-concurrency', env: 'ORCID_WEBHOOKS_PER_CLIENT_CONCURRENCY', default: '128', help: 'callbacks in flight at once for one API client (per process): one client cannot take every slot', parse: int(1, 100_000, 'a whole number') }),
  spec({ key: 'workerStaleMs', flag: 'worker-stale', env: 'ORCID_WEBHOOKS_WORKER_STALE', default: '5s', help: 'a worker whose heartbeat (database clock) is older than this loses its claims to the others', parse: timer(0) }),
  spec({ key: 'allowedTargets', flag: 'allowed-targets', env: 'ORCID_WEBHOOKS_ALLOWED_TARGETS', default: '', help: 'CIDR ranges opened to callbacks despite the SSRF policy, e.g. 127.0.0.0/8', parse: parseCidrList }),
  spec({ key: 'httpsOnly', flag: 'https-only', env: 'ORCID_WEBHOOKS_HTTPS_ONLY', default: 'false', help: 'refuse plain http callbacks', parse: bool }),
  spec({ key: 'attemptRetentionMs', flag: 'attempt-retention', env: 'ORCID_WEBHOOKS_ATTEMPT_RETENTION', default: '30d', help: 'how long the attempt log is kept', parse: duration }),
  spec({ key: 'pollIntervalMs', flag: 'poll-interval', env: 'ORCID_WEBHOOKS_POLL_INTERVAL', default: '1s', help: 'backstop poll interval of the delivery worker', parse: timer(10) }),
  spec({ key: 'leaseMs', flag: 'lease', env: 'ORCID_WEBHOOKS_LEASE', default: '30s', help: 'lease on a claimed delivery; a dead worker\'s claims are retaken after it (must exceed request-timeout)', parse: duration }),
  spec({ key: 'drainTimeoutMs', flag: 'drain-timeout', env: 'ORCID_WEBHOOKS_DRAIN_TIMEOUT', default: '20s', help: 'on SIGTERM, wait this long for in-flight callbacks', parse: timer(0) }),
  spec({ key: 'poolSize', flag: 'pool-size', env: 'ORCID_WEBHOOKS_POOL_SIZE', default: '10', help: 'PostgreSQL connection pool size', parse: int(1, 1000, 'a whole number') }),
  spec({ key: 'statementTimeoutMs', flag: 'statement-timeout', env: 'ORCID_WEBHOOKS_STATEMENT_TIMEOUT', default: '30s', help: 'PostgreSQL statement timeout', parse: timer(0) }),
  spec({ key: 'maxWebhooksPerClient', flag: 'max-webhooks-per-client', env: 'ORCID_WEBHOOKS_MAX_WEBHOOKS_PER_CLIENT', default: '1000000', help: 'cap on webhooks one client may register', parse: int(1, 1_000_000_000, 'a whole number') }),
  spec({ key: 'rateLimitPerMinute', flag: 'rate-limit', env: 'ORCID_WEBHOOKS_RATE_LIMIT', default: '6000', help: 'ORCID API requests per client per minute (0 = unlimited)', parse: int(0, 100_000_000, 'a whole number') }),
  spec({ key: 'tokenRateLimitPerMinute', flag: 'token-rate-limit', env: 'ORCID_WEBHOOKS_TOKEN_RATE_LIMIT', default: '120', help: '/oauth/token requests per IP per minute (0 = unlimited)', parse: int(0, 100_000_000, 'a whole number') }),
  spec({ key: 'compat', flag: 'compat', env: 'ORCID_WEBHOOKS_COMPAT', default: 'none', help: 'orcid: accept what ORCID accepts where that is safe (iDs with a wrong check digit are simply unknown records; scheme-less callbacks are called as http://); the address policy stays on', parse: oneOf('none', 'orcid') }),
  spec({ key: 'signingRotationGraceMs', flag: 'signing-rotation-grace', env: 'ORCID_WEBHOOKS_SIGNING_ROTATION_GRACE', default: '24h', help: 'after a signing secret is rotated, the old one keeps signing (beside the new) this long', parse: duration }),
  spec({ key: 'upstream', flag: 'upstream', env: 'ORCID_WEBHOOKS_UPSTREAM', default: null, help: 'watch a real registry: orcid, sandbox, or the base URL of a v3.0 public API; its changes become callbacks', parse: upstreamTarget }),
  spec({ key: 'upstreamClientId', flag: 'upstream-client-id', env: 'ORCID_WEBHOOKS_UPSTREAM_CLIENT_ID', default: null, help: 'public API client id (APP-...) for --upstream', parse: str }),
  spec({ key: 'upstreamClientSecret', flag: 'upstream-client-secret', env: 'ORCID_WEBHOOKS_UPSTREAM_CLIENT_SECRET', default: null, help: 'public API client secret for --upstream', parse: str }),
  spec({ key: 'upstreamTokenUrl', flag: 'upstream-token-url', env: 'ORCID_WEBHOOKS_UPSTREAM_TOKEN_URL', default: null, help: 'token endpoint of a custom --upstream (default: its origin + /oauth/token)', parse: httpUrl }),
  spec({ key: 'upstreamIntervalMs', flag: 'upstream-interval', env: 'ORCID_WEBHOOKS_UPSTREAM_INTERVAL', default: '60s', help: 'how often the upstream is searched for changes', parse: timer(1) }),
  spec({ key: 'upstreamRate', flag: 'upstream-rate', env: 'ORCID_WEBHOOKS_UPSTREAM_RATE', default: '8', help: 'requests per second to the upstream, never exceeded (ORCID allows 24)', parse: rate }),
  spec({ key: 'upstreamSinceMs', flag: 'upstream-since', env: 'ORCID_WEBHOOKS_UPSTREAM_SINCE', default: null, help: 'first start only: search changes since this ISO 8601 time (default now)', parse: (raw) => {
    const t = parseIsoTime(raw);
    if (t === null) throw new Error(`"${raw}" is not an ISO 8601 time such as 2026-12-01T00:00:00Z`);
    return t;
  } }),
  spec({ key: 'upstreamOverlapMs', flag: 'upstream-overlap', env: 'ORCID_WEBHOOKS_UPSTREAM_OVERLAP', default: '10m', help: 'each search reaches this far back before the cursor: must exceed the upstream indexing delay', parse: duration }),
  spec({ key: 'httpRequestTimeoutMs', flag: 'http-request-timeout', env: 'ORCID_WEBHOOKS_HTTP_REQUEST_TIMEOUT', default: '30s', help: 'an incoming request (headers and body) must arrive within this, or it is answered 408 and closed', parse: timer(0) }),
  spec({ key: 'httpHeadersTimeoutMs', flag: 'http-headers-timeout', env: 'ORCID_WEBHOOKS_HTTP_HEADERS_TIMEOUT', default: '10s', help: 'an incoming request\'s headers must arrive within this (at most --http-request-timeout)', parse: timer(0) }),
  spec({ key: 'secretsKey', flag: 'secrets-key', env: 'ORCID_WEBHOOKS_SECRETS_KEY', default: null, help: 'key(s) encrypting signing secrets at rest: 32 bytes in base64, several separated by commas during a rotation, the first encrypting (default: generated into the data directory\'s secrets-key file)', parse: (raw) => {
    parseKeyList(raw, 'the value');
    return raw;
  } }),
  spec({ key: 'maxConnectionsPerIp', flag: 'max-connections-per-ip', env: 'ORCID_WEBHOOKS_MAX_CONNECTIONS_PER_IP', default: '256', help: 'open connections from one client address (0 = unlimited; behind a reverse proxy, all come from the proxy)', parse: int(0, 1_000_000, 'a whole number') }),
] as const;

/** camelCase option name commander derives from a flag. */
export function optionKey(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Resolves the configuration from parsed CLI options (keyed as commander keys them) and the
 * environment. Throws ConfigError naming the setting.
 */
export function resolveConfig(flags: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = process.env, only?: readonly (keyof Config)[]): Config {
  const out: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    // Settings a command does not use keep their defaults: a bad PORT must not break `clients list`.
    const used = !only || only.includes(s.key);
    const fromFlag = used ? flags[optionKey(s.flag)] : undefined;
    const fromEnv = used ? env[s.env] : undefined;
    const raw = fromFlag !== undefined ? String(fromFlag) : fromEnv !== undefined && fromEnv !== '' ? fromEnv : s.default;
    if (raw === null || raw === undefined) {
      out[s.key] = null;
      continue;
    }
    try {
      out[s.key] = s.parse(raw);
    } catch (e) {
      const source = fromFlag !== undefined ? `--${s.flag}` : fromEnv !== undefined && fromEnv !== '' ? s.env : `default of --${s.flag}`;
      throw new ConfigError(`Invalid setting --${s.flag} (${s.env}) from ${source}: ${(e as Error).message}`);
    }
  }
  const config = out as unknown as Config;
  if (config.workerStaleMs < 3_000) {
    throw new ConfigError(`Invalid setting --worker-stale (ORCID_WEBHOOKS_WORKER_STALE): ${config.workerStaleMs} ms is too short; at least 3s (heartbeats are written every second)`);
  }
  if (config.leaseMs <= config.requestTimeoutMs) {
    throw new ConfigError(`Invalid setting --lease (ORCID_WEBHOOKS_LEASE): ${config.leaseMs} ms must exceed --request-timeout (${config.requestTimeoutMs} ms), or a slow callback could be delivered twice`);
  }
  if (config.upstream) {
    if (!config.upstreamClientId || !config.upstreamClientSecret) {
      throw new ConfigError('Invalid setting --upstream (ORCID_WEBHOOKS_UPSTREAM): also set --upstream-client-id and --upstream-client-secret (ORCID_WEBHOOKS_UPSTREAM_CLIENT_ID, ORCID_WEBHOOKS_UPSTREAM_CLIENT_SECRET), a public API client from https://orcid.org/developer-tools');
    }
    config.upstreamTokenUrl ??= config.upstream.tokenUrl ?? `${new URL(config.upstream.apiUrl).origin}/oauth/token`;
  } else if (config.records === 'upstream' && (!only || only.includes('records'))) {
    throw new ConfigError('Invalid setting --records (ORCID_WEBHOOKS_RECORDS): "upstream" needs --upstream (ORCID_WEBHOOKS_UPSTREAM) to ask');
  }
  if (config.httpHeadersTimeoutMs > config.httpRequestTimeoutMs || config.httpRequestTimeoutMs === 0) {
    throw new ConfigError(`Invalid setting --http-headers-timeout (ORCID_WEBHOOKS_HTTP_HEADERS_TIMEOUT): ${config.httpHeadersTimeoutMs} ms must not exceed --http-request-timeout (${config.httpRequestTimeoutMs} ms), which must be above 0`);
  }
  return config;
}

/** A full configuration for tests and embedding: defaults plus overrides. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return { ...resolveConfig({}, {}), ...overrides };
}
