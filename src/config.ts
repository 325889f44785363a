import { parseDuration, parseRetrySchedule, type RetrySchedule } from './domain/retry-schedule.ts';
import { parseCidrList } from './domain/ssrf.ts';
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
  records: 'strict' | 'open';
  adminToken: string | null;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  role: 'all' | 'api' | 'worker';
  notifyDelayMs: number;
  retrySchedule: RetrySchedule;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  concurrency: number;
  perHostConcurrency: number;
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
  httpRequestTimeoutMs: number;
  httpHeadersTimeoutMs: number;
  maxConnectionsPerIp: number;
  secretsKey: string | null;
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
const str = (raw: string): string => raw;

function spec<K extends keyof Config>(s: SettingSpec<K>): SettingSpec<K> {
  return s;
}

export const SETTINGS = [
  spec({ key: 'port', flag: 'port', env: 'PORT', default: '8080', help: 'port to listen on (0 picks a free one)', parse: int(0, 65535, 'a port number') }),
  spec({ key: 'host', flag: 'host', env: 'HOST', default: '127.0.0.1', help: 'address to listen on', parse: str }),
  spec({ key: 'db', flag: 'db', env: 'DATABASE_URL', default: 'sqlite:./data/orcid-webhooks.db', help: 'database: sqlite:PATH, a file path, or postgres://...', parse: str }),
  spec({ key: 'baseUrl', flag: 'base-url', env: 'PUBLIC_BASE_URL', default: null, help: 'public base URL used in Location headers (default: from the request)', parse: (raw) => {
    let u: URL;
    try { u = new URL(raw); } catch { throw new Error(`"${raw}" is not an absolute URL`); }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`"${raw}" must be an http or https URL`);
    return raw.replace(/\/+$/, '');
  } }),
  spec({ key: 'records', flag: 'records', env: 'ORCID_WEBHOOKS_RECORDS', default: 'strict', help: 'strict: only known records get webhooks; open: any valid iD (record created on registration)', parse: oneOf('strict', 'open') }),
  spec({ key: 'adminToken', flag: 'admin-token', env: 'ORCID_WEBHOOKS_ADMIN_TOKEN', default: null, help: 'bearer token of the admin API (default: generated and stored in the data directory)', parse: (raw) => {
    if (raw.length < 16) throw new Error('must be at least 16 characters');
    return raw;
  } }),
  spec({ key: 'logLevel', flag: 'log-level', env: 'LOG_LEVEL', default: 'info', help: 'fatal, error, warn, info, debug, trace or silent', parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent') }),
  spec({ key: 'role', flag: 'role', env: 'ORCID_WEBHOOKS_ROLE', default: 'all', help: 'all (API and delivery), api, or worker', parse: oneOf('all', 'api', 'worker') }),
  spec({ key: 'notifyDelayMs', flag: 'notify-delay', env: 'ORCID_WEBHOOKS_NOTIFY_DELAY', default: '0', help: 'wait this long after a change before calling (lets bursts of edits settle)', parse: duration }),
  spec({ key: 'retrySchedule', flag: 'retry-schedule', env: 'ORCID_WEBHOOKS_RETRY_SCHEDULE', default: 'standard', help: 'standard, orcid, or a list such as 100ms,1s,1m', parse: parseRetrySchedule }),
  spec({ key: 'connectTimeoutMs', flag: 'connect-timeout', env: 'ORCID_WEBHOOKS_CONNECT_TIMEOUT', default: '10s', help: 'callback connect timeout', parse: duration }),
  spec({ key: 'requestTimeoutMs', flag: 'request-timeout', env: 'ORCID_WEBHOOKS_REQUEST_TIMEOUT', default: '15s', help: 'callback whole-request timeout', parse: duration }),
  spec({ key: 'concurrency', flag: 'concurrency', env: 'ORCID_WEBHOOKS_CONCURRENCY', default: '256', help: 'callbacks in flight at once (per process)', parse: int(1, 100_000, 'a whole number') }),
  spec({ key: 'perHostConcurrency', flag: 'per-host-concurrency', env: 'ORCID_WEBHOOKS_PER_HOST_CONCURRENCY', default: '8', help: 'callbacks in flight at once to one host (per process)', parse: int(1, 100_000, 'a whole number') }),
  spec({ key: 'allowedTargets', flag: 'allowed-targets', env: 'ORCID_WEBHOOKS_ALLOWED_TARGETS', default: '', help: 'CIDR ranges opened to callbacks despite the SSRF policy, e.g. 127.0.0.0/8', parse: parseCidrList }),
  spec({ key: 'httpsOnly', flag: 'https-only', env: 'ORCID_WEBHOOKS_HTTPS_ONLY', default: 'false', help: 'refuse plain http callbacks', parse: bool }),
  spec({ key: 'attemptRetentionMs', flag: 'attempt-retention', env: 'ORCID_WEBHOOKS_ATTEMPT_RETENTION', default: '30d', help: 'how long the attempt log is kept', parse: duration }),
  spec({ key: 'pollIntervalMs', flag: 'poll-interval', env: 'ORCID_WEBHOOKS_POLL_INTERVAL', default: '1s', help: 'backstop poll interval of the delivery worker', parse: duration }),
  spec({ key: 'leaseMs', flag: 'lease', env: 'ORCID_WEBHOOKS_LEASE', default: '30s', help: 'lease on a claimed delivery; a dead worker\'s claims are retaken after it (must exceed request-timeout)', parse: duration }),
  spec({ key: 'drainTimeoutMs', flag: 'drain-timeout', env: 'ORCID_WEBHOOKS_DRAIN_TIMEOUT', default: '20s', help: 'on SIGTERM, wait this long for in-flight callbacks', parse: duration }),
  spec({ key: 'poolSize', flag: 'pool-size', env: 'ORCID_WEBHOOKS_POOL_SIZE', default: '10', help: 'PostgreSQL connection pool size', parse: int(1, 1000, 'a whole number') }),
  spec({ key: 'statementTimeoutMs', flag: 'statement-timeout', env: 'ORCID_WEBHOOKS_STATEMENT_TIMEOUT', default: '30s', help: 'PostgreSQL statement timeout', parse: duration }),
  spec({ key: 'maxWebhooksPerClient', flag: 'max-webhooks-per-client', env: 'ORCID_WEBHOOKS_MAX_WEBHOOKS_PER_CLIENT', default: '1000000', help: 'cap on webhooks one client may register', parse: int(1, 1_000_000_000, 'a whole number') }),
  spec({ key: 'rateLimitPerMinute', flag: 'rate-limit', env: 'ORCID_WEBHOOKS_RATE_LIMIT', default: '6000', help: 'ORCID API requests per client per minute (0 = unlimited)', parse: int(0, 100_000_000, 'a whole number') }),
  spec({ key: 'tokenRateLimitPerMinute', flag: 'token-rate-limit', env: 'ORCID_WEBHOOKS_TOKEN_RATE_LIMIT', default: '120', help: '/oauth/token requests per IP per minute (0 = unlimited)', parse: int(0, 100_000_000, 'a whole number') }),
  spec({ key: 'signingRotationGraceMs', flag: 'signing-rotation-grace', env: 'ORCID_WEBHOOKS_SIGNING_ROTATION_GRACE', default: '24h', help: 'after a signing secret is rotated, the old one keeps signing (beside the new) this long', parse: duration }),
  spec({ key: 'httpRequestTimeoutMs', flag: 'http-request-timeout', env: 'ORCID_WEBHOOKS_HTTP_REQUEST_TIMEOUT', default: '30s', help: 'an incoming request (headers and body) must arrive within this, or it is answered 408 and closed', parse: duration }),
  spec({ key: 'httpHeadersTimeoutMs', flag: 'http-headers-timeout', env: 'ORCID_WEBHOOKS_HTTP_HEADERS_TIMEOUT', default: '10s', help: 'an incoming request\'s headers must arrive within this (at most --http-request-timeout)', parse: duration }),
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
  if (config.leaseMs <= config.requestTimeoutMs) {
    throw new ConfigError(`Invalid setting --lease (ORCID_WEBHOOKS_LEASE): ${config.leaseMs} ms must exceed --request-timeout (${config.requestTimeoutMs} ms), or a slow callback could be delivered twice`);
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
