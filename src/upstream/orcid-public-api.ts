import { RateLimiter, sleep } from './rate-limiter.ts';

/*
 * A client of ORCID's public API (v3.0): a /read-public token, the search and a record's
 * last-modified time. Every request waits for the rate limiter; refused tokens are fetched again;
 * 429, 503, other 5xx and network errors are retried with backoff, honouring Retry-After.
 */

export type RequestOutcome = 'ok' | 'not_found' | 'unauthorized' | 'rate_limited' | 'unavailable' | 'server_error' | 'network_error' | 'client_error' | 'malformed';

export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly outcome: RequestOutcome,
    /** How long the upstream asked us to wait (Retry-After), or the backoff we would use next. */
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}

export interface OrcidPublicApiOptions {
  apiUrl: string;
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  limiter: RateLimiter;
  userAgent: string;
  timeoutMs?: number;
  /** Retries of a failed request before giving up (default 4). */
  retries?: number;
  /** First backoff (default 1 s), doubled each retry up to maxBackoffMs (default 60 s). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Every request's outcome (metrics). */
  onRequest?: (outcome: RequestOutcome) => void;
}

/** Told each time a request failed and is about to be retried after failure.retryAfterMs; throwing gives up (the error is the caller's). */
export type OnRetry = (failure: UpstreamError) => void;

export interface SearchPage {
  orcids: string[];
  numFound: number;
}

/** Retry-After as milliseconds (seconds or an HTTP date); null when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | null {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000;
  const t = Date.parse(value);
  return Number.isNaN(t) ? null : Math.max(0, t - now);
}

interface Answer {
  status: number;
  text: string;
  /** The parsed body of a 200 that was checked (get's `valid`), else null. */
  body: object | null;
}

/** The JSON object `text` holds when `valid` accepts it, else null. */
function validJson(text: string, valid: (body: object) => boolean): object | null {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return null;
  }
  return typeof body === 'object' && body !== null && !Array.isArray(body) && valid(body) ? body : null;
}

/** An ISO time at millisecond precision, as the search's range syntax takes it. */
export function solrTime(ms: number): string {
  return new Date(ms).toISOString();
}

export class OrcidPublicApi {
  private token: string | null = null;
  private tokenPending: Promise<string> | null = null;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly timeoutMs: number;

  constructor(private readonly o: OrcidPublicApiOptions) {
    this.retries = o.retries ?? 4;
    this.backoffMs = o.backoffMs ?? 1000;
    this.maxBackoffMs = o.maxBackoffMs ?? 60_000;
    this.timeoutMs = o.timeoutMs ?? 30_000;
  }

  /** One search page: `q` in Solr syntax, `rows` at most 1000. */
  async search(q: string, start: number, rows: number, signal?: AbortSignal, onRetry?: OnRetry): Promise<SearchPage> {
    const url = `${this.o.apiUrl}/search/?q=${encodeURIComponent(q)}&start=${start}&rows=${rows}`;
    const res = await this.get(url, signal, onRetry, (b) => {
      const r = (b as { result?: unknown }).result;
      return r === undefined || r === null || Array.isArray(r);
    });
    if (res.status !== 200) throw new UpstreamError(`search answered ${res.status}: ${res.text.slice(0, 200)}`, 'client_error', 0);
    const body = res.body as { result?: ({ 'orcid-identifier'?: { path?: string } } | null)[] | null; 'num-found'?: number };
    return {
      orcids: (body.result ?? []).map((r) => r?.['orcid-identifier']?.path).filter((p): p is string => typeof p === 'string'),
      numFound: Number(body['num-found'] ?? 0),
    };
  }

  /** The record's history.last-modified-date (ms); null when ORCID has no such record (404, 410, deprecated). */
  async lastModified(orcid: string, signal?: AbortSignal, onRetry?: OnRetry): Promise<number | null> {
    const res = await this.get(`${this.o.apiUrl}/${orcid}/record`, signal, onRetry, () => true);
    if (res.status === 404 || res.status === 410 || res.status === 301) return null;
    if (res.status === 409) return null; // locked or deactivated: nothing to notify
    if (res.status !== 200) throw new UpstreamError(`record ${orcid} answered ${res.status}`, 'client_error', 0);
    const body = res.body as { history?: { 'last-modified-date'?: { value?: number } | null } | null };
    const v = body.history?.['last-modified-date']?.value;
    return typeof v === 'number' ? v : null;
  }

  /** Whether ORCID knows the record (locked and deactivated records exist; deprecated ones do not). */
  async recordExists(orcid: string, signal?: AbortSignal, onRetry?: OnRetry): Promise<boolean> {
    const res = await this.get(`${this.o.apiUrl}/${orcid}/record`, signal, onRetry);
    if (res.status === 200 || res.status === 409) return true;
    if (res.status === 404 || res.status === 410 || res.status === 301) return false;
    throw new UpstreamError(`record ${orcid} answered ${res.status}`, 'client_error', 0);
  }

  /** `valid`: a 200 must carry a JSON object it accepts; any other is a malformed answer, retried as a 5xx is. */
  private async get(url: string, signal?: AbortSignal, onRetry?: OnRetry, valid?: (body: object) => boolean): Promise<Answer> {
    let refreshed = false;
    for (let attempt = 0; ; attempt++) {
      const token = await this.bearer(signal, onRetry);
      const res = await this.send(url, { headers: { accept: 'application/vnd.orcid+json', authorization: `Bearer ${token}` } }, attempt, signal, onRetry, valid);
      if (res.status === 401 && !refreshed) {
        // A revoked or expired token: fetch a new one once, then try again.
        refreshed = true;
        if (this.token === token) this.token = null;
        attempt--;
        continue;
      }
      if (res.status === 401) throw new UpstreamError('the upstream refuses our token even after fetching a new one', 'unauthorized', 0);
      return res;
    }
  }

  private bearer(signal?: AbortSignal, onRetry?: OnRetry): Promise<string> {
    if (this.token) return Promise.resolve(this.token);
    this.tokenPending ??= this.fetchToken(signal, onRetry).finally(() => { this.tokenPending = null; });
    return this.tokenPending;
  }

  private async fetchToken(signal?: AbortSignal, onRetry?: OnRetry): Promise<string> {
    const body = new URLSearchParams({ client_id: this.o.clientId, client_secret: this.o.clientSecret, grant_type: 'client_credentials', scope: '/read-public' }).toString();
    const res = await this.send(this.o.tokenUrl, { method: 'POST', headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' }, body }, 0, signal, onRetry, () => true);
    if (res.status !== 200) {
      throw new UpstreamError(`the token endpoint answered ${res.status}: ${res.text.slice(0, 200)} (check --upstream-client-id and --upstream-client-secret)`, 'unauthorized', 0);
    }
    const token = (res.body as { access_token?: unknown }).access_token;
    if (typeof token !== 'string' || !token) throw new UpstreamError('the token endpoint answered no access_token', 'unauthorized', 0);
    this.token = token;
    return token;
  }

  /** One request with retries of transient failures; answers any other status to the caller. */
  private async send(url: string, init: { method?: string; headers: Record<string, string>; body?: string }, firstAttempt: number, signal?: AbortSignal, onRetry?: OnRetry, valid?: (body: object) => boolean): Promise<Answer> {
    for (let attempt = firstAttempt; ; attempt++) {
      const completed = await this.o.limiter.take(signal);
      let failure: UpstreamError;
      try {
        const timeout = AbortSignal.timeout(this.timeoutMs);
        const res = await fetch(url, {
          ...init, headers: { ...init.headers, 'user-agent': this.o.userAgent },
          // A deprecated record answers 301 with the primary record's Location: it is an answer
          // (no such record), not a way to the primary's data, nor a request past the rate limiter.
          redirect: 'manual',
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        });
        const text = await res.text().finally(completed);
        const backoff = this.backoff(attempt);
        const body = valid && res.status === 200 ? validJson(text, valid) : null;
        if (res.status === 429 || res.status >= 500) {
          const outcome: RequestOutcome = res.status === 429 ? 'rate_limited' : res.status === 503 ? 'unavailable' : 'server_error';
          this.o.onRequest?.(outcome);
          const wait = Math.min(this.maxBackoffMs * 10, Math.max(backoff, retryAfterMs(res.headers.get('retry-after')) ?? 0));
          failure = new UpstreamError(`${url.replace(/\?.*/, '')} answered ${res.status}`, outcome, wait);
        } else if (valid && res.status === 200 && body === null) {
          // A proxy's maintenance page, an empty or truncated body: the upstream is not answering.
          this.o.onRequest?.('malformed');
          const what = text.trim() ? `not the JSON expected: ${JSON.stringify(text.slice(0, 80))}` : 'an empty body';
          failure = new UpstreamError(`${url.replace(/\?.*/, '')} answered 200 with ${what}`, 'malformed', backoff);
        } else {
          this.o.onRequest?.(res.status < 300 ? 'ok' : res.status === 404 ? 'not_found' : res.status === 401 ? 'unauthorized' : 'client_error');
          return { status: res.status, text, body };
        }
      } catch (e) {
        completed();
        if (signal?.aborted) throw e;
        this.o.onRequest?.('network_error');
        failure = new UpstreamError(`${url.replace(/\?.*/, '')}: ${(e as Error).message}${(e as { cause?: Error }).cause ? ` (${(e as { cause: Error }).cause.message})` : ''}`, 'network_error', this.backoff(attempt));
      }
      if (attempt >= this.retries) throw failure;
      onRetry?.(failure);
      await sleep(failure.retryAfterMs, signal);
    }
  }

  /** Exponential backoff with ±20% jitter. */
  private backoff(attempt: number): number {
    const base = Math.min(this.maxBackoffMs, this.backoffMs * 2 ** attempt);
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }
}
