import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { ChangeSink, ChangeSource } from '../changes/source.ts';
import type { RecordChange, Store } from '../store/types.ts';
import { type OrcidPublicApi, UpstreamError, solrTime } from './orcid-public-api.ts';
import { sleep } from './rate-limiter.ts';

/*
 * Watches an upstream ORCID registry (issue 13). Each poll searches
 * `profile-last-modified-date:[cursor TO *]`, pages through the hits, keeps the iDs that have an
 * enabled webhook here, reads each one's last-modified time and applies it as a change with that
 * time. The store ignores a change not newer than the record's, so the overlap between windows
 * (which covers the search's indexing delay) never doubles a callback.
 *
 * The cursor (start of the next window) lives in the store; with several processes on one database
 * only the holder of a lease row polls, renewing it while alive; another takes over within about
 * 0.75 interval after it dies.
 */

export const UPSTREAM_SOURCE = 'upstream';
/** The public API returns at most this many results of one query. */
export const MAX_RESULTS = 10_000;
const PAGE_ROWS = 1000;
/**
 * Pages overlap by 100 rows: a hit that leaves the range while we page (its record changed again)
 * shifts the later ones back; without the overlap the one at a page boundary would be skipped.
 * Measured in the bench before this: 1 of 298 watched changes missed while catching up 30,000.
 */
const PAGE_STEP = 900;
/** Records read at once (each waits for the rate limiter anyway). */
const RECORD_CONCURRENCY = 4;

export type PollerState = 'starting' | 'following' | 'polling' | 'idle' | 'backoff' | 'stopped';

export interface PollerStatus {
  state: PollerState;
  leader: boolean;
  /** Start of the next search window. */
  cursor: number | null;
  /** End of the last window fully searched (the poll's start time). */
  coveredUntil: number | null;
  lastSuccessAt: number | null;
  lastError: string | null;
  lastErrorAt: number | null;
  nextPollAt: number | null;
  /** Records changed by this process's polls. */
  recordsChanged: number;
}

export interface PollerOptions {
  store: Store;
  api: OrcidPublicApi;
  intervalMs: number;
  overlapMs: number;
  /** First start only: where the first window starts (default now). */
  sinceMs: number | null;
  logger: Logger;
  now?: () => number;
  owner?: string;
}

/** The leader's lease: 0.6 interval (0.5 s to 60 s), renewed every quarter of it. */
function leaseFor(intervalMs: number): number {
  return Math.min(60_000, Math.max(500, Math.round(intervalMs * 0.6)));
}

export class UpstreamPoller extends EventEmitter implements ChangeSource {
  readonly name = UPSTREAM_SOURCE;
  readonly owner: string;
  private readonly now: () => number;
  private readonly leaseMs: number;
  private sink: ChangeSink | null = null;
  private stopping = new AbortController();
  private pollAbort: AbortController | null = null;
  private loop: Promise<void> | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private readonly s: PollerStatus = {
    state: 'starting', leader: false, cursor: null, coveredUntil: null, lastSuccessAt: null, lastError: null, lastErrorAt: null, nextPollAt: null, recordsChanged: 0,
  };
  private failures = 0;
  private recovering = false;

  constructor(private readonly o: PollerOptions) {
    super();
    this.now = o.now ?? Date.now;
    this.owner = o.owner ?? `${process.pid}-${randomUUID().slice(0, 8)}`;
    this.leaseMs = leaseFor(o.intervalMs);
  }

  status(): PollerStatus {
    return { ...this.s };
  }

  async start(sink: ChangeSink): Promise<void> {
    this.sink = sink;
    this.loop = this.run().catch((e: unknown) => this.o.logger.error({ err: e }, 'upstream poller stopped unexpectedly'));
  }

  async stop(): Promise<void> {
    this.stopping.abort(new Error('stopping'));
    this.pollAbort?.abort(new Error('stopping'));
    await this.loop;
    this.stopHeartbeat();
    if (this.s.leader) await this.o.store.releaseUpstreamLeadership(UPSTREAM_SOURCE, this.owner).catch(() => undefined);
    this.setState('stopped');
  }

  /**
   * Logs state changes only, never per request, nor the polling/idle rhythm of every interval:
   * starting to follow or lead, backing off, recovering, stopping.
   */
  private setState(state: PollerState, extra: Record<string, unknown> = {}): void {
    if (this.s.state === state) return;
    const routine = (a: PollerState, b: PollerState) => (a === 'polling' && b === 'idle') || (a === 'idle' && b === 'polling') || (a === 'starting' && b === 'polling');
    const quiet = routine(this.s.state, state);
    const recovered = this.s.state === 'polling' && state === 'idle' && this.failures === 0 && this.s.lastErrorAt === null && this.recovering;
    this.s.state = state;
    this.emit('state', state);
    if (state === 'backoff') this.recovering = true;
    if (recovered) {
      this.recovering = false;
      this.o.logger.info({ upstreamState: state }, 'upstream poller: the upstream answers again, caught up');
      return;
    }
    if (quiet) return;
    const log = state === 'backoff' ? this.o.logger.warn.bind(this.o.logger) : this.o.logger.info.bind(this.o.logger);
    log({ upstreamState: state, ...extra }, `upstream poller: ${state}`);
  }

  private async run(): Promise<void> {
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      let leading = false;
      try {
        leading = await this.o.store.claimUpstreamLeadership(UPSTREAM_SOURCE, this.owner, this.now(), this.leaseMs);
      } catch (e) {
        this.o.logger.debug({ err: e }, 'upstream poller: store unreachable for the leadership');
      }
      if (!leading) {
        if (this.s.leader) this.lostLeadership();
        this.setState('following');
        await sleep(this.leaseMs / 4, signal).catch(() => undefined);
        continue;
      }
      if (!this.s.leader) {
        try {
          await this.becomeLeader();
        } catch (e) {
          // The store failed between the claim and reading the cursor (a restart, a busy SQLite):
          // not the leader yet. The lease runs out or is claimed again on the next turn.
          this.o.logger.warn({ err: e }, 'upstream poller: store unreachable while taking the leadership; retrying');
          await sleep(this.leaseMs / 4, signal).catch(() => undefined);
          continue;
        }
      }
      const wait = (this.s.nextPollAt ?? 0) - this.now();
      if (wait > 0) {
        await sleep(Math.min(wait, this.leaseMs / 4), signal).catch(() => undefined);
        continue;
      }
      await this.pollOnce();
    }
  }

  /** Reads the stored cursor, then leads; throws (still not the leader) when the store fails. */
  private async becomeLeader(): Promise<void> {
    const cursor = await this.o.store.initUpstreamCursor(UPSTREAM_SOURCE, this.o.sinceMs ?? this.now(), this.now());
    const st = await this.o.store.upstreamState(UPSTREAM_SOURCE);
    this.s.leader = true;
    this.s.cursor = cursor;
    this.s.lastSuccessAt = st?.lastSuccessAt ?? this.s.lastSuccessAt;
    this.s.nextPollAt = this.now();
    this.o.logger.info({ owner: this.owner, cursor: solrTime(cursor) }, 'upstream poller: leading, polling from the stored cursor');
    this.heartbeat = setInterval(() => void this.renew(), this.leaseMs / 4);
    this.heartbeat.unref();
  }

  private async renew(): Promise<void> {
    try {
      const ok = await this.o.store.claimUpstreamLeadership(UPSTREAM_SOURCE, this.owner, this.now(), this.leaseMs);
      if (!ok && this.s.leader) this.lostLeadership();
    } catch {
      // The next claim in the loop decides; a poll in progress finishes or fails on its own.
    }
  }

  private lostLeadership(): void {
    this.s.leader = false;
    this.stopHeartbeat();
    this.pollAbort?.abort(new Error('lost the leadership'));
    this.o.logger.warn({ owner: this.owner }, 'upstream poller: another process leads now');
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  /** One poll: every window part from the cursor to now, oldest first. */
  async pollOnce(): Promise<void> {
    const pollStart = this.now();
    this.pollAbort = new AbortController();
    const signal = AbortSignal.any([this.pollAbort.signal, this.stopping.signal]);
    this.setState('polling');
    const seen = new Set<string>();
    try {
      const from = this.s.cursor ?? pollStart;
      await this.searchRange(from, null, pollStart, seen, signal);
      await this.progress(Math.max(from, pollStart - this.o.overlapMs), pollStart);
      this.failures = 0;
      this.s.nextPollAt = pollStart + this.o.intervalMs;
      this.setState('idle');
    } catch (e) {
      if (this.stopping.signal.aborted || !this.s.leader) return;
      this.failures++;
      const msg = (e as Error).message;
      const wait = Math.max(this.o.intervalMs, e instanceof UpstreamError ? e.retryAfterMs : 0);
      this.s.lastError = msg;
      this.s.lastErrorAt = this.now();
      this.s.nextPollAt = this.now() + Math.min(wait, 10 * 60_000);
      await this.o.store.saveUpstreamError(UPSTREAM_SOURCE, this.owner, msg.slice(0, 1000), this.now()).catch(() => undefined);
      this.setState('backoff', { error: msg, failures: this.failures, nextPoll: solrTime(this.s.nextPollAt) });
    } finally {
      this.pollAbort = null;
    }
  }

  /**
   * Searches [from, to] (to null: `*`, no upper bound). More than 10,000 hits: split in time, oldest
   * half first; the last part stays open-ended, so a record modified again while we page moves to a
   * part still ahead, never out of reach.
   */
  /**
   * A request failed and waits to be retried (Retry-After, or backoff): the status says so at once,
   * with the error, rather than "polling" without one until the retries run out (4 waits of up to
   * 10 minutes each when the upstream asks for that).
   */
  private readonly retrying = (failure: UpstreamError): void => {
    if (this.stopping.signal.aborted || !this.s.leader) return;
    const at = this.now();
    this.s.lastError = failure.message;
    this.s.lastErrorAt = at;
    this.s.nextPollAt = at + failure.retryAfterMs;
    void this.o.store.saveUpstreamError(UPSTREAM_SOURCE, this.owner, failure.message.slice(0, 1000), at).catch(() => undefined);
    this.setState('backoff', { error: failure.message, retryIn: `${Math.round(failure.retryAfterMs / 100) / 10} s` });
  };

  /** A request was answered after retries: polling again (the error stays until the poll completes). */
  private answered(): void {
    if (this.s.state === 'backoff') this.setState('polling');
  }

  private async searchRange(from: number, to: number | null, pollStart: number, seen: Set<string>, signal: AbortSignal): Promise<void> {
    const q = `profile-last-modified-date:[${solrTime(from)} TO ${to === null ? '*' : solrTime(to)}]`;
    const first = await this.o.api.search(q, 0, PAGE_ROWS, signal, this.retrying);
    this.answered();
    const upper = to ?? pollStart;
    if (first.numFound > MAX_RESULTS && upper - from > 1) {
      const mid = from + Math.floor((upper - from) / 2);
      await this.searchRange(from, mid, pollStart, seen, signal);
      // Everything up to mid is done: a restart resumes from there (less the overlap's margin).
      await this.progress(Math.min(mid + 1, pollStart - this.o.overlapMs), null);
      await this.searchRange(mid + 1, to, pollStart, seen, signal);
      return;
    }
    if (first.numFound > MAX_RESULTS) this.o.logger.warn({ from: solrTime(from), numFound: first.numFound }, 'upstream: more than 10,000 changes within one millisecond; only 10,000 can be read');
    await this.handleHits(first.orcids, seen, signal);
    const last = Math.min(first.numFound, MAX_RESULTS);
    for (let start = PAGE_STEP; start < last; start += PAGE_STEP) {
      const page = await this.o.api.search(q, start, Math.min(PAGE_ROWS, MAX_RESULTS - start), signal, this.retrying);
      this.answered();
      await this.handleHits(page.orcids, seen, signal);
    }
  }

  /** The watched ones among a page of hits: read their last-modified times and apply them. */
  private async handleHits(orcids: string[], seen: Set<string>, signal: AbortSignal): Promise<void> {
    const fresh = orcids.filter((o) => !seen.has(o));
    for (const o of fresh) seen.add(o);
    if (!fresh.length) return;
    const watched = await this.o.store.watchedOrcids(fresh);
    if (!watched.length) return;
    const changes: RecordChange[] = [];
    let next = 0;
    const worker = async () => {
      while (next < watched.length) {
        const orcid = watched[next++]!;
        const modified = await this.o.api.lastModified(orcid, signal, this.retrying);
        this.answered();
        if (modified !== null) changes.push({ orcid, modifiedAt: modified });
      }
    };
    await Promise.all(Array.from({ length: Math.min(RECORD_CONCURRENCY, watched.length) }, worker));
    if (!changes.length) return;
    const r = await this.sink!.apply(UPSTREAM_SOURCE, changes, { create: false });
    this.s.recordsChanged += r.changed;
    this.emit('changes', r);
  }

  /** Saves the cursor (never backwards); pollStart: a whole poll finished, its window is covered. */
  private async progress(cursor: number, pollStart: number | null): Promise<void> {
    const at = this.now();
    const ok = await this.o.store.saveUpstreamProgress(UPSTREAM_SOURCE, this.owner, cursor, at);
    if (!ok) throw new Error('lost the leadership while polling');
    this.s.cursor = Math.max(this.s.cursor ?? cursor, cursor);
    if (pollStart !== null) {
      this.s.coveredUntil = pollStart;
      this.s.lastSuccessAt = at;
      this.s.lastError = null;
      this.s.lastErrorAt = null;
    }
  }
}
