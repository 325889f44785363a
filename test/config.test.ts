import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, optionKey, resolveConfig, SETTINGS, testConfig } from '../src/config.ts';

/** Asserts that fn throws a ConfigError whose message contains every one of the parts. */
function throwsConfigError(fn: () => unknown, ...parts: string[]): string {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  for (const p of parts) assert.ok(caught.message.includes(p), `message ${JSON.stringify(caught.message)} lacks ${JSON.stringify(p)}`);
  return caught.message;
}

describe('defaults', () => {
  const cfg = resolveConfig({}, {});

  it('listens on 127.0.0.1:8080 with the SQLite file under ./data', () => {
    assert.equal(cfg.port, 8080);
    assert.equal(cfg.host, '127.0.0.1');
    assert.equal(cfg.db, 'sqlite:./data/orcid-webhooks.db');
  });

  it('is strict about records, logs at info, runs every role', () => {
    assert.equal(cfg.records, 'strict');
    assert.equal(cfg.logLevel, 'info');
    assert.equal(cfg.role, 'all');
  });

  it('has no base URL or admin token until one is given', () => {
    assert.equal(cfg.baseUrl, null);
    assert.equal(cfg.adminToken, null);
  });

  it('parses durations, lists and booleans of the defaults', () => {
    assert.equal(cfg.notifyDelayMs, 0);
    assert.equal(cfg.retrySchedule.name, 'standard');
    // ORCID's HttpRequestUtils: 20 s to connect, 20 s for the request (issue 9).
    assert.equal(cfg.connectTimeoutMs, 20_000);
    assert.equal(cfg.requestTimeoutMs, 20_000);
    assert.equal(cfg.leaseMs, 30_000);
    assert.deepEqual(cfg.allowedTargets, []);
    assert.equal(cfg.httpsOnly, false);
    assert.equal(cfg.attemptRetentionMs, 30 * 24 * 3600 * 1000);
  });

  it('testConfig is the defaults plus overrides', () => {
    const t = testConfig({ port: 1234 });
    assert.equal(t.port, 1234);
    assert.equal(t.host, '127.0.0.1');
    assert.equal(t.records, 'strict');
  });

  it('every setting has a distinct flag and env var, and its default parses', () => {
    assert.equal(new Set(SETTINGS.map((s) => s.flag)).size, SETTINGS.length);
    assert.equal(new Set(SETTINGS.map((s) => s.env)).size, SETTINGS.length);
    for (const s of SETTINGS) if (s.default !== null) assert.doesNotThrow(() => (s.parse as (raw: string) => unknown)(s.default as string), s.flag);
  });
});

describe('environment over defaults', () => {
  it('reads each setting from its env var', () => {
    const cfg = resolveConfig({}, {
      PORT: '9001', HOST: '0.0.0.0', DATABASE_URL: 'postgres://u:p@db/x', PUBLIC_BASE_URL: 'https://hooks.example.org/',
      ORCID_WEBHOOKS_RECORDS: 'open', ORCID_WEBHOOKS_RETRY_SCHEDULE: 'orcid', ORCID_WEBHOOKS_NOTIFY_DELAY: '5s',
      ORCID_WEBHOOKS_ALLOWED_TARGETS: '127.0.0.0/8, ::1', ORCID_WEBHOOKS_HTTPS_ONLY: 'yes', LOG_LEVEL: 'silent',
    });
    assert.equal(cfg.port, 9001);
    assert.equal(cfg.host, '0.0.0.0');
    assert.equal(cfg.db, 'postgres://u:p@db/x');
    assert.equal(cfg.baseUrl, 'https://hooks.example.org', 'trailing slash dropped');
    assert.equal(cfg.records, 'open');
    assert.equal(cfg.retrySchedule.name, 'orcid');
    assert.equal(cfg.notifyDelayMs, 5000);
    assert.deepEqual(cfg.allowedTargets, ['127.0.0.0/8', '::1/128']);
    assert.equal(cfg.httpsOnly, true);
    assert.equal(cfg.logLevel, 'silent');
  });

  it('treats an empty env var as unset', () => {
    const cfg = resolveConfig({}, { PORT: '', ORCID_WEBHOOKS_RECORDS: '' });
    assert.equal(cfg.port, 8080);
    assert.equal(cfg.records, 'strict');
  });

  it('ignores unrelated env vars', () => {
    assert.equal(resolveConfig({}, { PORTS: '1', port: '2' }).port, 8080);
  });
});

describe('flags over environment', () => {
  it('a flag wins over the env var, keyed as commander keys it (camelCase)', () => {
    const env = { PORT: '9001', PUBLIC_BASE_URL: 'https://from-env.example', ORCID_WEBHOOKS_REQUEST_TIMEOUT: '5s', ORCID_WEBHOOKS_RECORDS: 'open' };
    const cfg = resolveConfig({ port: '9000', baseUrl: 'https://x', requestTimeout: '2s' }, env);
    assert.equal(cfg.port, 9000);
    assert.equal(cfg.baseUrl, 'https://x');
    assert.equal(cfg.requestTimeoutMs, 2000);
    // Settings without a flag still come from the env.
    assert.equal(cfg.records, 'open');
  });

  it('a boolean flag (commander gives true) overrides the env', () => {
    assert.equal(resolveConfig({ httpsOnly: true }, { ORCID_WEBHOOKS_HTTPS_ONLY: 'false' }).httpsOnly, true);
  });

  it('--no-https-only (commander gives false) turns off what the env turned on', () => {
    assert.equal(resolveConfig({ httpsOnly: false }, { ORCID_WEBHOOKS_HTTPS_ONLY: 'true' }).httpsOnly, false);
    assert.equal(resolveConfig({}, { ORCID_WEBHOOKS_HTTPS_ONLY: 'true' }).httpsOnly, true);
  });

  it('an invalid env value does not matter when a flag overrides it', () => {
    assert.equal(resolveConfig({ port: '7000' }, { PORT: 'abc' }).port, 7000);
  });

  it('kebab-case keys are not what commander gives, so they are not read', () => {
    assert.equal(resolveConfig({ 'base-url': 'https://x' }, {}).baseUrl, null);
    assert.equal(optionKey('base-url'), 'baseUrl');
    assert.equal(optionKey('max-webhooks-per-client'), 'maxWebhooksPerClient');
  });

  it('every setting key is the camelCase of its flag, so flags reach it', () => {
    for (const s of SETTINGS) {
      // Durations are keyed ...Ms, the rest exactly as the flag.
      const key = optionKey(s.flag);
      assert.ok(s.key === key || s.key === `${key}Ms` || s.key === `${key}PerMinute`, `${s.flag} -> ${s.key}`);
    }
  });
});

describe('invalid values stop start-up with a ConfigError naming the setting', () => {
  it('port abc from a flag names --port and PORT', () => {
    const msg = throwsConfigError(() => resolveConfig({ port: 'abc' }, {}), '--port', 'PORT', '"abc" is not a port number');
    assert.match(msg, /from --port/);
  });

  it('port abc from the env says it came from PORT', () => {
    const msg = throwsConfigError(() => resolveConfig({}, { PORT: 'abc' }), '--port', 'PORT');
    assert.match(msg, /from PORT:/);
  });

  it('port out of range', () => {
    throwsConfigError(() => resolveConfig({ port: '65536' }, {}), '--port', 'PORT', 'out of range');
    throwsConfigError(() => resolveConfig({ port: '-1' }, {}), '--port', 'out of range');
    throwsConfigError(() => resolveConfig({ port: '80.5' }, {}), '--port');
  });

  it('records maybe names --records and ORCID_WEBHOOKS_RECORDS and the choices', () => {
    throwsConfigError(() => resolveConfig({ records: 'maybe' }, {}), '--records', 'ORCID_WEBHOOKS_RECORDS', 'strict', 'open');
    throwsConfigError(() => resolveConfig({}, { ORCID_WEBHOOKS_RECORDS: 'maybe' }), '--records', 'ORCID_WEBHOOKS_RECORDS');
  });

  it('retry-schedule garbage names --retry-schedule and ORCID_WEBHOOKS_RETRY_SCHEDULE', () => {
    throwsConfigError(() => resolveConfig({ retrySchedule: 'garbage' }, {}), '--retry-schedule', 'ORCID_WEBHOOKS_RETRY_SCHEDULE', 'garbage');
    throwsConfigError(() => resolveConfig({}, { ORCID_WEBHOOKS_RETRY_SCHEDULE: '1s,soon' }), '--retry-schedule', 'ORCID_WEBHOOKS_RETRY_SCHEDULE');
  });

  it('allowed-targets garbage names --allowed-targets and ORCID_WEBHOOKS_ALLOWED_TARGETS', () => {
    throwsConfigError(() => resolveConfig({ allowedTargets: 'garbage' }, {}), '--allowed-targets', 'ORCID_WEBHOOKS_ALLOWED_TARGETS');
    throwsConfigError(() => resolveConfig({}, { ORCID_WEBHOOKS_ALLOWED_TARGETS: '10.0.0.0/99' }), '--allowed-targets', 'ORCID_WEBHOOKS_ALLOWED_TARGETS');
  });

  it('a timer\'s duration beyond what Node can wait (24.8 days), or a timeout or interval of 0, is refused', () => {
    throwsConfigError(() => resolveConfig({ requestTimeout: '30d', lease: '31d' }, {}), '--request-timeout', 'longer than a timer can wait');
    throwsConfigError(() => resolveConfig({ drainTimeout: '25d' }, {}), '--drain-timeout', 'ORCID_WEBHOOKS_DRAIN_TIMEOUT', 'longer than a timer');
    throwsConfigError(() => resolveConfig({}, { ORCID_WEBHOOKS_POLL_INTERVAL: '100000d' }), '--poll-interval', 'longer than a timer');
    throwsConfigError(() => resolveConfig({ requestTimeout: '0', lease: '1' }, {}), '--request-timeout', 'must be above 0');
    throwsConfigError(() => resolveConfig({ connectTimeout: '0ms' }, {}), '--connect-timeout', 'must be above 0');
    throwsConfigError(() => resolveConfig({ pollInterval: '0' }, {}), '--poll-interval', 'at least 10 ms');
    throwsConfigError(() => resolveConfig({ upstreamInterval: '0s' }, {}), '--upstream-interval', 'must be above 0');
    // The longest timer itself, and durations that are no timer (kept in the database), are fine.
    assert.equal(resolveConfig({ drainTimeout: '24d' }, {}).drainTimeoutMs, 24 * 86_400_000);
    assert.equal(resolveConfig({ attemptRetention: '365d' }, {}).attemptRetentionMs, 365 * 86_400_000);
    assert.equal(resolveConfig({ notifyDelay: '0' }, {}).notifyDelayMs, 0);
  });

  it('lease not above request-timeout names both', () => {
    throwsConfigError(() => resolveConfig({ lease: '10s', requestTimeout: '10s' }, {}), '--lease', 'ORCID_WEBHOOKS_LEASE', '--request-timeout');
    throwsConfigError(() => resolveConfig({ lease: '5s' }, {}), '--lease', '--request-timeout');
    throwsConfigError(() => resolveConfig({}, { ORCID_WEBHOOKS_REQUEST_TIMEOUT: '1m' }), '--lease', '--request-timeout');
    // Just above is fine.
    const ok = resolveConfig({ lease: '10001ms', requestTimeout: '10s' }, {});
    assert.equal(ok.leaseMs, 10_001);
    assert.equal(ok.requestTimeoutMs, 10_000);
  });

  it('other invalid values name their setting', () => {
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ baseUrl: 'not a url' }, '--base-url', 'PUBLIC_BASE_URL'],
      [{ baseUrl: 'ftp://x.example' }, '--base-url', 'PUBLIC_BASE_URL'],
      [{ adminToken: 'short' }, '--admin-token', 'ORCID_WEBHOOKS_ADMIN_TOKEN'],
      [{ logLevel: 'loud' }, '--log-level', 'LOG_LEVEL'],
      [{ role: 'boss' }, '--role', 'ORCID_WEBHOOKS_ROLE'],
      [{ notifyDelay: 'soon' }, '--notify-delay', 'ORCID_WEBHOOKS_NOTIFY_DELAY'],
      [{ httpsOnly: 'perhaps' }, '--https-only', 'ORCID_WEBHOOKS_HTTPS_ONLY'],
      [{ concurrency: '0' }, '--concurrency', 'ORCID_WEBHOOKS_CONCURRENCY'],
      [{ poolSize: 'ten' }, '--pool-size', 'ORCID_WEBHOOKS_POOL_SIZE'],
    ];
    for (const [flags, flag, env] of cases) throwsConfigError(() => resolveConfig(flags, {}), flag, env);
  });
});
