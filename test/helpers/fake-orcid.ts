/*
 * A fake of ORCID's public API (../shared/ORCID.md, "ORCID's public API") on 127.0.0.1, for tests
 * and benchmarks: nothing contacts a real ORCID host.
 *
 * - POST /oauth/token (client_credentials, scope /read-public) answers a bearer token;
 * - GET /v3.0/search/?q=...&start=&rows= understands `profile-last-modified-date:[A TO B]` (`*`,
 *   `NOW`, ISO times; `{}` for exclusive bounds) and `orcid:ID`, joined by AND; rows 0-1000
 *   (default 1000, else 400); at most 10,000 results of one query can be paged; `num-found` is the
 *   true count; `result` is null when nothing matches;
 * - GET /v3.0/{orcid}/record answers `history.last-modified-date.value`; 404 / 9016 when unknown.
 *
 * The search sees a change only after the index lag; the record endpoint at once. Latency, 503
 * bursts, outages and ORCID's own limit (24/s, burst 40, then 503) are configurable; every request
 * is counted with its arrival time, so tests can check the rate a client kept to.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { orcidFromBase } from '../../src/domain/orcid-id.ts';

export interface FakeOrcidOptions {
  /** Records that exist from the start, iDs from base 0000-0001-5000-0007 up (default 0). */
  records?: number;
  /** Their last-modified time (default: a year ago): outside any recent search window. */
  initialModified?: number;
  clientId?: string;
  clientSecret?: string;
  /** How long a change takes to reach the search index (default 0). */
  indexLagMs?: number;
  /** Added to every answer (default 0). */
  latencyMs?: number;
  /** Enforce ORCID's limit: 24 requests/s, burst 40, then 503 (default true). */
  orcidLimit?: boolean;
}

export type RequestKind = 'token' | 'search' | 'record' | 'other';

export interface FakeRequest {
  kind: RequestKind;
  /** performance.now() at arrival. */
  at: number;
  status: number;
  orcid?: string;
  q?: string;
  start?: number;
}

const FIRST_BASE = 100015000000; // 0000-0001-5000-000x: ORCID's original range starts here
const MAX_RESULTS = 10_000;

/** The iD of fake record i (0-based). */
export function fakeOrcidId(i: number): string {
  return orcidFromBase(FIRST_BASE + i);
}

function indexOfOrcid(orcid: string): number {
  if (!/^\d{4}-\d{4}-\d{4}-\d{3}[\dX]$/.test(orcid)) return -1;
  const i = Number(orcid.replace(/-/g, '').slice(0, 15)) - FIRST_BASE;
  return Number.isInteger(i) && i >= 0 && fakeOrcidId(i) === orcid ? i : -1;
}

interface Term { kind: 'range'; from: number; to: number; fromIncl: boolean; toIncl: boolean }
interface OrcidTerm { kind: 'orcid'; orcid: string }

function parseDate(s: string, now: number, isUpper: boolean): number {
  if (s === '*') return isUpper ? Infinity : -Infinity;
  if (s === 'NOW') return now;
  const t = Date.parse(s);
  if (Number.isNaN(t)) throw new Error(`bad date ${s}`);
  return t;
}

function parseQuery(q: string, now: number): (Term | OrcidTerm)[] {
  return q.trim().split(/\s+AND\s+/).map((part) => {
    const range = /^profile-last-modified-date:([[{])\s*(\S+)\s+TO\s+(\S+)\s*([\]}])$/.exec(part);
    if (range) {
      return { kind: 'range', from: parseDate(range[2]!, now, false), to: parseDate(range[3]!, now, true), fromIncl: range[1] === '[', toIncl: range[4] === ']' };
    }
    const id = /^orcid:"?([\dX-]+)"?$/.exec(part);
    if (id) return { kind: 'orcid', orcid: id[1]! };
    throw new Error(`unsupported query term ${part}`);
  });
}

export class FakeOrcid {
  readonly requests: FakeRequest[] = [];
  url = '';
  tokenUrl = '';
  readonly clientId: string;
  readonly clientSecret: string;
  indexLagMs: number;
  latencyMs: number;
  private readonly orcidLimit: boolean;
  /** Actual last-modified (ms) per record; NaN: no such record. */
  private modified: Float64Array;
  /** What the search index holds. */
  private indexed: Float64Array;
  private count: number;
  private pendingIndex: { visibleAt: number; i: number; modified: number }[] = [];
  private tokens = new Set<string>();
  private fail503 = 0;
  private retryAfter: string | null = null;
  private outage: 'off' | '503' | 'reset' = 'off';
  private bucket = 40;
  private bucketAt = performance.now();
  private server = createServer((req, res) => void this.handle(req, res));

  private constructor(opts: FakeOrcidOptions) {
    this.clientId = opts.clientId ?? 'APP-FAKEORCID0000001';
    this.clientSecret = opts.clientSecret ?? 'fake-secret';
    this.indexLagMs = opts.indexLagMs ?? 0;
    this.latencyMs = opts.latencyMs ?? 0;
    this.orcidLimit = opts.orcidLimit ?? true;
    this.count = opts.records ?? 0;
    const capacity = Math.max(1024, this.count * 2);
    this.modified = new Float64Array(capacity).fill(NaN);
    this.indexed = new Float64Array(capacity).fill(NaN);
    const initial = opts.initialModified ?? Date.now() - 365 * 86_400_000;
    this.modified.fill(initial, 0, this.count);
    this.indexed.fill(initial, 0, this.count);
  }

  static async start(opts: FakeOrcidOptions = {}): Promise<FakeOrcid> {
    const f = new FakeOrcid(opts);
    f.server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => f.server.listen(0, '127.0.0.1', r));
    const port = (f.server.address() as AddressInfo).port;
    f.url = `http://127.0.0.1:${port}/v3.0`;
    f.tokenUrl = `http://127.0.0.1:${port}/oauth/token`;
    return f;
  }

  get size(): number {
    return this.count;
  }

  /** Adds a record (modified at `at`, searchable after the lag); returns its iD. */
  addRecord(at = Date.now()): string {
    if (this.count === this.modified.length) {
      const grow = (a: Float64Array) => { const b = new Float64Array(a.length * 2).fill(NaN); b.set(a); return b; };
      this.modified = grow(this.modified);
      this.indexed = grow(this.indexed);
    }
    const i = this.count++;
    this.change(i, at);
    return fakeOrcidId(i);
  }

  /** Record i (or an iD) is modified at `at` (default now); the search sees it after the index lag. */
  change(record: number | string, at = Date.now()): string {
    const i = typeof record === 'number' ? record : indexOfOrcid(record);
    if (i < 0 || i >= this.count) throw new Error(`fake ORCID: no record ${record}`);
    this.modified[i] = Math.max(at, Number.isNaN(this.modified[i]!) ? -Infinity : this.modified[i]!);
    this.pendingIndex.push({ visibleAt: Date.now() + this.indexLagMs, i, modified: this.modified[i]! });
    return fakeOrcidId(i);
  }

  lastModified(orcid: string): number | null {
    const i = indexOfOrcid(orcid);
    return i >= 0 && i < this.count ? this.modified[i]! : null;
  }

  /** The next n API requests answer 503 (with Retry-After when given). */
  burst503(n: number, retryAfterSeconds?: number): void {
    this.fail503 = n;
    this.retryAfter = retryAfterSeconds === undefined ? null : String(retryAfterSeconds);
  }

  /** An outage: every request answers 503, or has its connection reset; 'off' ends it. */
  setOutage(mode: 'off' | '503' | 'reset'): void {
    this.outage = mode;
  }

  /** Forgets every token issued: the next requests are refused with 401 until a new one is fetched. */
  revokeTokens(): void {
    this.tokens.clear();
  }

  countRequests(kind: RequestKind, pred: (r: FakeRequest) => boolean = () => true): number {
    return this.requests.filter((r) => r.kind === kind && pred(r)).length;
  }

  /** The most requests that arrived within any window of windowMs. */
  maxInWindow(windowMs = 1000, since = 0): number {
    const times = this.requests.filter((r) => r.at >= since).map((r) => r.at).sort((a, b) => a - b);
    let best = 0;
    let j = 0;
    for (let i = 0; i < times.length; i++) {
      while (times[i]! - times[j]! >= windowMs) j++;
      best = Math.max(best, i - j + 1);
    }
    return best;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private refreshIndex(): void {
    if (!this.pendingIndex.length) return;
    const now = Date.now();
    const keep: typeof this.pendingIndex = [];
    for (const p of this.pendingIndex) {
      if (p.visibleAt <= now) this.indexed[p.i] = Math.max(p.modified, Number.isNaN(this.indexed[p.i]!) ? -Infinity : this.indexed[p.i]!);
      else keep.push(p);
    }
    this.pendingIndex = keep;
  }

  private overOrcidLimit(at: number): boolean {
    if (!this.orcidLimit) return false;
    this.bucket = Math.min(40, this.bucket + ((at - this.bucketAt) / 1000) * 24);
    this.bucketAt = at;
    if (this.bucket < 1) return true;
    this.bucket -= 1;
    return false;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = performance.now();
    const url = new URL(req.url ?? '/', 'http://fake');
    const kind: RequestKind = url.pathname === '/oauth/token' ? 'token' : url.pathname === '/v3.0/search/' || url.pathname === '/v3.0/search'
      ? 'search' : /^\/v3\.0\/[\dX-]+\/record$/.test(url.pathname) ? 'record' : 'other';
    const entry: FakeRequest = { kind, at, status: 0 };
    this.requests.push(entry);
    let body = '';
    for await (const chunk of req) body += chunk;
    if (this.latencyMs) await new Promise((r) => setTimeout(r, this.latencyMs));
    const send = (status: number, json: unknown, headers: Record<string, string> = {}) => {
      entry.status = status;
      res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8', ...headers }).end(JSON.stringify(json));
    };
    if (this.outage === 'reset') {
      entry.status = -1;
      req.socket.destroy();
      return;
    }
    if (this.outage === '503' || this.fail503 > 0 || this.overOrcidLimit(at)) {
      if (this.fail503 > 0) this.fail503--;
      return send(503, { message: 'Service Unavailable' }, this.retryAfter ? { 'retry-after': this.retryAfter } : {});
    }
    if (kind === 'token') return this.token(req, body, send);
    const auth = req.headers.authorization ?? '';
    const token = /^Bearer (.+)$/i.exec(auth)?.[1];
    if (!token || !this.tokens.has(token)) return send(401, { error: 'invalid_token', error_description: 'Invalid access token' });
    if (kind === 'search') return this.search(url, entry, send);
    if (kind === 'record') {
      const orcid = url.pathname.split('/')[2]!;
      entry.orcid = orcid;
      const i = indexOfOrcid(orcid);
      if (i < 0 || i >= this.count) {
        return send(404, { 'response-code': 404, 'developer-message': `404 Not Found: The resource was not found. Full validation error: ORCID iD ${orcid} not found`, 'user-message': 'The resource was not found.', 'error-code': 9016, 'more-info': 'https://members.orcid.org/api/resources/troubleshooting' });
      }
      return send(200, {
        'orcid-identifier': { uri: `https://orcid.org/${orcid}`, path: orcid, host: 'orcid.org' },
        history: { 'last-modified-date': { value: this.modified[i] } },
      });
    }
    return send(404, { 'response-code': 404, 'error-code': 9053, 'developer-message': `No endpoint ${url.pathname}` });
  }

  private token(req: IncomingMessage, body: string, send: (s: number, j: unknown) => void): void {
    const form = new URLSearchParams(body);
    if (req.method !== 'POST' || form.get('grant_type') !== 'client_credentials') return send(400, { error: 'unsupported_grant_type' });
    if (form.get('client_id') !== this.clientId || form.get('client_secret') !== this.clientSecret) return send(401, { error: 'invalid_client', error_description: 'Client not found' });
    if (form.get('scope') !== '/read-public') return send(401, { error: 'invalid_scope' });
    const token = randomUUID();
    this.tokens.add(token);
    send(200, { access_token: token, token_type: 'bearer', refresh_token: randomUUID(), expires_in: 631138518, scope: '/read-public', name: null, orcid: null });
  }

  private search(url: URL, entry: FakeRequest, send: (s: number, j: unknown) => void): void {
    const q = url.searchParams.get('q') ?? '';
    const start = Number(url.searchParams.get('start') ?? '0');
    const rows = Number(url.searchParams.get('rows') ?? '1000');
    entry.q = q;
    entry.start = start;
    if (!Number.isInteger(start) || start < 0 || !Number.isInteger(rows) || rows < 0 || rows > 1000) {
      return send(400, { 'response-code': 400, 'developer-message': 'rows must be 0-1000 and start a whole number', 'error-code': 9052 });
    }
    if (start >= MAX_RESULTS) return send(400, { 'response-code': 400, 'developer-message': `start ${start}: at most ${MAX_RESULTS} results of one query can be read`, 'error-code': 9052 });
    let terms: (Term | OrcidTerm)[];
    try {
      terms = parseQuery(q, Date.now());
    } catch (e) {
      return send(400, { 'response-code': 400, 'developer-message': (e as Error).message, 'error-code': 9052 });
    }
    this.refreshIndex();
    const hits: number[] = [];
    const ids = terms.filter((t): t is OrcidTerm => t.kind === 'orcid').map((t) => indexOfOrcid(t.orcid));
    const ranges = terms.filter((t): t is Term => t.kind === 'range');
    const match = (i: number) => {
      const v = this.indexed[i]!;
      if (Number.isNaN(v)) return false;
      return ranges.every((r) => (r.fromIncl ? v >= r.from : v > r.from) && (r.toIncl ? v <= r.to : v < r.to));
    };
    if (ids.length) {
      // Several orcid: terms joined by AND match only when they name the same record.
      const first = ids[0]!;
      if (first >= 0 && first < this.count && ids.every((i) => i === first) && match(first)) hits.push(first);
    } else {
      for (let i = 0; i < this.count; i++) if (match(i)) hits.push(i);
    }
    const end = Math.min(start + rows, MAX_RESULTS, hits.length);
    const page = hits.slice(start, Math.max(start, end));
    send(200, {
      result: page.length ? page.map((i) => { const id = fakeOrcidId(i); return { 'orcid-identifier': { uri: `https://orcid.org/${id}`, path: id, host: 'orcid.org' } }; }) : null,
      'num-found': hits.length,
    });
  }
}
