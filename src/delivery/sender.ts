import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import type { IncomingHttpHeaders } from 'node:http';
import { isIP, type LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Agent, type Dispatcher } from 'undici';
import type { TargetPolicy } from '../domain/ssrf.ts';
import { CallAbort, type AbortSignalLike } from './call-abort.ts';

export interface SendRequest {
  url: string;
  headers: Record<string, string>;
  /** '' for ORCID's empty POST */
  body: string;
  /** Aborts the call (the worker's heartbeat lapsed: its claims may pass to another worker). */
  signal?: AbortSignalLike;
}

export type SendResult = (
  | { kind: 'response'; status: number; durationMs: number; bodySnippet: string; retryAfterMs: number | null; headers?: IncomingHttpHeaders; address?: string }
  | { kind: 'timeout' | 'network' | 'refused'; durationMs: number; error: string; address?: string }
  /**
   * Not sent: the address already has perAddressConcurrency callbacks in flight, or the call was
   * aborted by its signal. Not an attempt: the claim is given back with its due time unchanged.
   */
  | { kind: 'deferred'; durationMs: number; error: string; address?: string }
) & {
  /** The headers as sent (set by the sender once it built them; the attempt log keeps them, redacted). */
  requestHeaders?: Record<string, string>;
};

export interface SenderOptions {
  policy: TargetPolicy;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  userAgent: string;
  /**
   * Callbacks in flight at once to one resolved IP address, whatever the host names and ports
   * pointing at it (default: unlimited). Checked when the call starts, after DNS resolution.
   */
  perAddressConcurrency?: number;
}

export interface Sender {
  send(req: SendRequest): Promise<SendResult>;
  /** Addresses at their perAddressConcurrency limit now. */
  busyAddresses(): Set<string>;
  /** Waits for requests in flight, then closes the connections. */
  close(): Promise<void>;
  /** Aborts requests in flight at once and closes the connections (after a drain timeout). */
  destroy(): Promise<void>;
}

const SNIPPET_BYTES = 1024;
/** Past this much body we drop the connection instead of draining it for keep-alive reuse. */
const DRAIN_LIMIT_BYTES = 64 * 1024;
/** Per origin; the delivery side limits concurrency per host below this, so requests rarely queue here. */
const CONNECTIONS_PER_ORIGIN = 64;

/** Thrown from the DNS lookup so a refused target is told apart from a network failure. */
class TargetRefusedError extends Error {
  readonly code = 'ETARGETREFUSED';
}

/** Thrown into the request when the worker fences itself (its claims may pass to another worker). */
class FencedError extends Error {}

/**
 * The address a callback's host resolves to, for the per-address limit: a literal IP is itself;
 * a name is resolved (every address checked against the policy) and kept for a second. Callbacks
 * to one host share a look-up in progress: a resolver that does not answer holds one of libuv's
 * few threads per host, not one per callback (each retry of each webhook on it started another).
 */
class ResolveCache {
  private readonly cache = new Map<string, { address: string; until: number }>();
  private readonly resolving = new Map<string, Promise<string>>();
  constructor(private readonly policy: TargetPolicy) {}

  /** The address without asking anyone: a literal one, or a name resolved within the last second; else null. */
  known(hostname: string): string | null {
    if (isIP(hostname) !== 0) return hostname;
    const hit = this.cache.get(hostname);
    return hit && hit.until > performance.now() ? hit.address : null;
  }

  address(hostname: string): Promise<string> {
    const known = this.known(hostname);
    if (known !== null) return Promise.resolve(known);
    let pending = this.resolving.get(hostname);
    if (!pending) {
      pending = this.resolve(hostname).finally(() => this.resolving.delete(hostname));
      this.resolving.set(hostname, pending);
    }
    return pending;
  }

  private async resolve(hostname: string): Promise<string> {
    const addresses = await new Promise<LookupAddress[]>((resolve, reject) => {
      dnsLookup(hostname, { all: true }, (err, found) => (err ? reject(err) : resolve(found)));
    });
    const now = performance.now();
    for (const { address } of addresses) {
      const check = this.policy.checkAddress(address);
      if (!check.allowed) throw new TargetRefusedError(`${hostname} resolves to a refused address: ${check.reason}`);
    }
    const first = addresses[0];
    if (first === undefined) throw Object.assign(new Error(`${hostname} has no addresses`), { code: 'ENOTFOUND' });
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(hostname, { address: first.address, until: now + 1_000 });
    return first.address;
  }
}

/** Thrown into the request by our own deadline. */
class DeadlineError extends Error {
  readonly code = 'ETIMEDOUT';
}

export function createSender(opts: SenderOptions): Sender {
  const { policy, requestTimeoutMs, userAgent } = opts;
  const perAddress = opts.perAddressConcurrency ?? Infinity;
  const inFlight = new Map<string, number>();
  const busy = new Set<string>();
  const resolved = new ResolveCache(policy);

  // Checked here, at connect time, because a name that was public when registered can later
  // resolve (rebind) to an internal address. Every address is checked, since Node may race
  // IPv4/IPv6 and connect to any of them.
  const lookup: LookupFunction = (hostname, options, callback) => {
    dnsLookup(hostname, { ...(options as LookupOptions), all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      for (const { address } of addresses) {
        const check = policy.checkAddress(address);
        if (!check.allowed) return callback(new TargetRefusedError(`${hostname} resolves to a refused address: ${check.reason}`), '', 0);
      }
      // Node asks for all addresses when it races IPv4/IPv6 (autoSelectFamily), otherwise for one.
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (first === undefined) return callback(Object.assign(new Error(`${hostname} has no addresses`), { code: 'ENOTFOUND' }), '', 0);
      callback(null, first.address, first.family);
    });
  };

  // Redirects are never followed: undici's plain request API has no redirect handling.
  const agent = new Agent({
    connections: CONNECTIONS_PER_ORIGIN,
    connect: { lookup, timeout: opts.connectTimeoutMs },
    headersTimeout: requestTimeoutMs,
    bodyTimeout: requestTimeoutMs,
  });

  /**
   * A callback URL parsed and checked against the policy (literal IPs), or why it is refused;
   * the same URLs come back with every change, so each is parsed once (a URL object per callback
   * was ~2 % of a delivery's CPU).
   */
  const targets = new Map<string, Target | string>();
  function target(raw: string): Target | string {
    let t = targets.get(raw);
    if (t === undefined) {
      t = parseTarget(raw, policy);
      if (targets.size >= 10_000) targets.clear();
      targets.set(raw, t);
    }
    return t;
  }

  async function send(req: SendRequest): Promise<SendResult> {
    const started = performance.now();
    const elapsed = (): number => performance.now() - started;

    const url = target(req.url);
    if (typeof url === 'string') return { kind: 'refused', durationMs: elapsed(), error: url };

    // The per-address limit needs the address before connecting: resolve (briefly cached) here.
    // undici's lookup resolves and checks again at connect time, so the cache weakens no SSRF check.
    // The whole call, this resolution included, is bounded by requestTimeoutMs: a resolver that
    // does not answer would otherwise hold the callback (and its slots) past its lease.
    // (A literal address, or a name resolved within the last second, needs neither: no timer then.)
    let address = resolved.known(url.hostname);
    if (address === null) {
      let resolving: NodeJS.Timeout | undefined;
      try {
        address = await Promise.race([
          resolved.address(url.hostname),
          new Promise<never>((_, reject) => {
            resolving = setTimeout(() => reject(new DeadlineError(`no complete response within ${requestTimeoutMs} ms`)), requestTimeoutMs);
          }),
        ]);
      } catch (err) {
        return classifyError(err, err instanceof DeadlineError, elapsed(), opts);
      } finally {
        clearTimeout(resolving);
      }
    }
    const n = inFlight.get(address) ?? 0;
    if (n >= perAddress) return { kind: 'deferred', durationMs: elapsed(), error: `${perAddress} callbacks in flight to ${address}`, address };
    if (req.signal?.aborted) return { kind: 'deferred', durationMs: elapsed(), error: 'aborted before sending', address };
    inFlight.set(address, n + 1);
    if (n + 1 >= perAddress) busy.add(address);
    try {
      // Set on request()'s own fresh object: a spread with a property added costs ~2 µs on Node 20.
      const result: SendResult = await request(req, url, elapsed);
      result.address = address;
      return result;
    } finally {
      const left = (inFlight.get(address) ?? 1) - 1;
      if (left <= 0) inFlight.delete(address);
      else inFlight.set(address, left);
      if (left < perAddress) busy.delete(address);
    }
  }

  async function request(req: SendRequest, url: Target, elapsed: () => number): Promise<SendResult> {
    const headers: Record<string, string> = {};
    for (const name in req.headers) headers[name.toLowerCase()] = req.headers[name] as string;
    // Set explicitly even when 0: some receivers reject a bodyless POST without it (seen with ORCID).
    headers['content-length'] = String(Buffer.byteLength(req.body));
    headers['user-agent'] = userAgent;

    // headersTimeout/bodyTimeout bound each phase; this bounds the whole call, body included.
    // (A CallAbort, not an AbortController: two EventTargets per callback cost ~5 % of the CPU.)
    const controller = new CallAbort();
    const deadline = setTimeout(() => controller.abort(new DeadlineError(`no complete response within ${requestTimeoutMs} ms`)), Math.max(0, requestTimeoutMs - elapsed()));
    const onAbort = (): void => controller.abort(new FencedError('aborted: the worker lost its heartbeat'));
    req.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const res = await agent.request({
        origin: url.origin,
        path: url.path,
        method: 'POST',
        headers,
        body: req.body === '' ? null : req.body,
        signal: controller,
      });
      const bodySnippet = await readSnippet(res.body);
      return {
        kind: 'response', status: res.statusCode, durationMs: elapsed(), bodySnippet, retryAfterMs: parseRetryAfter(res.headers['retry-after']),
        headers: res.headers, requestHeaders: headers,
      };
    } catch (err) {
      if (controller.reason instanceof FencedError) return { kind: 'deferred', durationMs: elapsed(), error: controller.reason.message };
      return { ...classifyError(err, controller.aborted, elapsed(), opts), requestHeaders: headers };
    } finally {
      clearTimeout(deadline);
      req.signal?.removeEventListener('abort', onAbort);
    }
  }

  return { send, busyAddresses: () => new Set(busy), close: () => agent.close(), destroy: () => agent.destroy() };
}

/** What a request needs of its URL; hostname without an IPv6 literal's brackets. */
interface Target {
  origin: string;
  path: string;
  hostname: string;
}

/**
 * The URL's parts, or why it is refused. Literal IP hosts never reach the lookup hook (net.connect
 * skips DNS for them), so they are checked here.
 */
function parseTarget(raw: string, policy: TargetPolicy): Target | string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return `${raw} is not a valid URL`;
  }
  if (url.protocol !== 'https:' && (url.protocol !== 'http:' || policy.httpsOnly)) return `${url.protocol} callbacks are not allowed`;
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (isIP(hostname) !== 0) {
    const check = policy.checkAddress(hostname);
    if (!check.allowed) return check.reason;
  }
  return { origin: url.origin, path: requestTarget(raw) ?? url.pathname + url.search, hostname };
}

/**
 * The path and query of a callback exactly as registered (ORCID stores and calls the URI as given):
 * WHATWG URL parsing resolves `.`, `..` and `%2e%2e` segments (a callback registered as
 * `/hooks/%2e%2e/admin` was called at `/admin`), percent-encodes `'` in the query and drops an
 * empty `?`. Only what cannot go on the request line changes: the fragment is left out, an empty
 * path is `/`, and non-ASCII characters (which java.net.URI accepts) go as UTF-8 escapes, as
 * java.net.URI.toASCIIString writes them. null when the raw text cannot be split where WHATWG
 * splits it (then WHATWG's path): the host connected to is WHATWG's, so the path must follow the
 * same authority. An empty authority (`http:///host/cb`: java.net.URI's path /host/cb, WHATWG's
 * host `host` and path /cb) or a backslash (a separator to WHATWG) would otherwise send the host
 * name as the path; anything the request line cannot carry is left to WHATWG's escaping.
 */
function requestTarget(raw: string): string | null {
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#\\]+([^#]*)/i.exec(raw);
  if (m === null || raw.includes('\\')) return null;
  const rest = m[1] ?? '';
  const target = rest.startsWith('/') ? rest : `/${rest}`;
  let ascii: string;
  try {
    ascii = target.replace(/[\u0080-\u{10ffff}]+/gu, (s) => encodeURIComponent(s));
  } catch {
    return null; // a lone surrogate
  }
  return /^[\x21-\x7e]*$/.test(ascii) ? ascii : null;
}

/** The first SNIPPET_BYTES of the body as text; the rest is drained (to keep the connection) or dropped. */
function readSnippet(body: Dispatcher.ResponseData['body']): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let total = 0;
    const done = (): void => {
      body.off('data', onData).off('end', done).off('close', done).off('error', reject);
      resolve(Buffer.concat(chunks, kept).toString('utf8'));
    };
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (kept < SNIPPET_BYTES) {
        const part = chunk.length > SNIPPET_BYTES - kept ? chunk.subarray(0, SNIPPET_BYTES - kept) : chunk;
        chunks.push(part);
        kept += part.length;
      }
      if (total > DRAIN_LIMIT_BYTES) {
        done();
        body.on('error', noop).destroy();
      }
    };
    body.on('data', onData).on('end', done).on('close', done).on('error', reject);
  });
}

function noop(): void {}

/** Delta-seconds or an HTTP-date, as ms from now; null when absent or unreadable. */
function parseRetryAfter(value: string | string[] | undefined): number | null {
  const raw = (Array.isArray(value) ? value[0] : value)?.trim();
  if (raw === undefined || raw === '') return null;
  if (/^\d+$/.test(raw)) return Number(raw) * 1000;
  const at = Date.parse(raw);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

function classifyError(err: unknown, deadlinePassed: boolean, durationMs: number, opts: SenderOptions): SendResult {
  if (err instanceof TargetRefusedError) return { kind: 'refused', durationMs, error: err.message };
  const code = errorCode(err);
  if (code === 'UND_ERR_CONNECT_TIMEOUT' && !deadlinePassed) {
    return { kind: 'timeout', durationMs, error: `could not connect within ${opts.connectTimeoutMs} ms` };
  }
  if (deadlinePassed || TIMEOUT_CODES.has(code)) {
    return { kind: 'timeout', durationMs, error: `no complete response within ${opts.requestTimeoutMs} ms` };
  }
  // undici reports a connection the peer closed mid-response as UND_ERR_SOCKET ("other side closed").
  return { kind: 'network', durationMs, error: code === 'UND_ERR_SOCKET' ? 'ECONNRESET' : code };
}

function errorCode(err: unknown): string {
  if (typeof err !== 'object' || err === null) return 'UNKNOWN';
  const { code, cause, name } = err as { code?: unknown; cause?: unknown; name?: unknown };
  if (typeof code === 'string') return code;
  if (cause !== undefined) return errorCode(cause);
  return typeof name === 'string' ? name : 'UNKNOWN';
}
