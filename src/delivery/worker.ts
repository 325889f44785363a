import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { RetrySchedule } from '../domain/retry-schedule.ts';
import type { AttemptOutcome, AttemptRecord, Claim, Store, WebhookRow } from '../store/types.ts';
import { classify, decideOutcome, type ResultClass } from './outcome.ts';
import type { SendRequest, SendResult, Sender } from './sender.ts';

/** Builds the HTTP request of one notification (signing and payloads hook in here). */
export type RequestBuilder = (webhook: WebhookRow, notificationId: string, timestampSec: number) => SendRequest | Promise<SendRequest>;

export interface WorkerOptions {
  store: Store;
  /** The worker only sends; whoever created the sender closes it. */
  sender: Pick<Sender, 'send'>;
  schedule: RetrySchedule;
  logger: Logger;
  concurrency: number;
  perHostConcurrency: number;
  leaseMs: number;
  pollIntervalMs: number;
  notifyDelayMs: number;
  attemptRetentionMs: number;
  buildRequest?: RequestBuilder;
  now?: () => number;
  owner?: string;
  /** Largest batch one claim statement takes. */
  batchSize?: number;
}

export interface AttemptEvent {
  webhook: WebhookRow;
  notificationId: string;
  result: SendResult;
  resultClass: ResultClass;
  outcome: AttemptOutcome;
  /** Milliseconds from the change the notification is about (pendingSince) to the answer. */
  latencyMs: number | null;
}

/** `msg_<webhook public id>_<seq>`: the same across every retry of one notification. */
export function notificationId(w: WebhookRow): string {
  return `msg_${w.publicId}_${w.notifySeq}`;
}

export const defaultRequest: RequestBuilder = (w, id, ts) => ({
  url: w.url,
  headers: { 'webhook-id': id, 'webhook-timestamp': String(ts) },
  body: '',
});

/**
 * Claims due webhooks in batches, calls them within global and per-host limits, and records each
 * outcome in the store. All delivery state lives in the store; this class holds only leases.
 * Events: 'attempt' (AttemptEvent), 'reclaimed' (count), 'dbError' (Error).
 */
export class DeliveryWorker extends EventEmitter {
  readonly owner: string;
  private readonly o: Required<Omit<WorkerOptions, 'owner'>>;
  private running = false;
  private inFlight = 0;
  private readonly perHost = new Map<string, number>();
  /** Callbacks in flight with the lease token of their claim. */
  private readonly inFlightClaims = new Set<{ id: number; lease: string }>();
  private claimCount = 0;
  private pumping = false;
  private pumpAgain = false;
  private timer: NodeJS.Timeout | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => Promise<void>) | null = null;
  private completions: AttemptRecord[] = [];
  private flushing: Promise<void> | null = null;
  private idleWaiters: (() => void)[] = [];
  private dbBackoffMs = 0;

  constructor(opts: WorkerOptions) {
    super();
    this.owner = opts.owner ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    this.o = { buildRequest: defaultRequest, now: Date.now, batchSize: 500, ...opts } as Required<Omit<WorkerOptions, 'owner'>>;
  }

  get isRunning(): boolean {
    return this.running;
  }

  get inFlightCount(): number {
    return this.inFlight;
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = await this.o.store.subscribeWakeups(() => this.notify());
    this.pruneTimer = setInterval(() => void this.prune(), 3_600_000);
    this.pruneTimer.unref();
    void this.prune();
    this.notify();
  }

  /** Something may be due: look now (coalesced; cheap to call often). */
  notify(): void {
    if (!this.running) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pumping = true;
    setImmediate(() => void this.pump());
  }

  private async pump(): Promise<void> {
    let nextDelay = this.o.pollIntervalMs;
    try {
      do {
        this.pumpAgain = false;
        await this.claimAndDispatch();
      } while (this.pumpAgain && this.running);
      nextDelay = await this.nextDelay();
      this.dbBackoffMs = 0;
    } catch (err) {
      // A lost database connection: back off and retry; nothing is lost, the state is in the store.
      this.dbBackoffMs = Math.min(Math.max(this.dbBackoffMs * 2, 100), 10_000);
      nextDelay = this.dbBackoffMs;
      this.o.logger.error({ err, retryInMs: nextDelay }, 'delivery worker: database error while claiming; retrying');
      this.emit('dbError', err);
    } finally {
      this.pumping = false;
    }
    if (!this.running) return;
    if (this.pumpAgain) return this.notify();
    this.timer = setTimeout(() => this.notify(), nextDelay);
  }

  /** Free slots of the hosts with callbacks in flight. */
  private hostSlots(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [host, n] of this.perHost) out[host] = Math.max(0, this.o.perHostConcurrency - n);
    return out;
  }

  private saturatedHosts(): string[] {
    const out: string[] = [];
    for (const [host, n] of this.perHost) if (n >= this.o.perHostConcurrency) out.push(host);
    return out;
  }

  private async claimAndDispatch(): Promise<void> {
    for (;;) {
      const free = this.o.concurrency - this.inFlight;
      if (!this.running || free <= 0) return;
      const limit = Math.min(free, this.o.batchSize);
      // Each claim stamps its own lease token: a completion delayed past its lease (a long database
      // outage) then matches no newer claim of the same row, even one this worker made.
      const lease = `${this.owner}#${++this.claimCount}`;
      const claims = await this.o.store.claimDue({
        owner: lease, limit, now: this.o.now(), leaseMs: this.o.leaseMs, excludeHosts: this.saturatedHosts(),
        perHostLimit: this.o.perHostConcurrency, hostSlots: this.hostSlots(),
      });
      const giveBack: number[] = [];
      let reclaimed = 0;
      for (const c of claims) {
        if (c.reclaimed) reclaimed++;
        if ((this.perHost.get(c.webhook.host) ?? 0) >= this.o.perHostConcurrency) giveBack.push(c.webhook.id);
        else this.dispatch(c, lease);
      }
      if (reclaimed) this.emit('reclaimed', reclaimed);
      if (giveBack.length) await this.o.store.releaseClaims(lease, giveBack);
      if (claims.length < limit || giveBack.length === claims.length) return;
    }
  }

  /** When to look again: the next due time, bounded by the poll interval (the backstop). */
  private async nextDelay(): Promise<number> {
    // Every slot busy: nothing can be claimed before a callback finishes, and that wakes us. Spares
    // nextDueAt, which reads every owed row, on each pump of a busy worker.
    if (this.inFlight >= this.o.concurrency) return this.o.pollIntervalMs;
    const next = await this.o.store.nextDueAt();
    if (next === null) return this.o.pollIntervalMs;
    const delay = next - this.o.now();
    if (delay > 0) return Math.min(delay, this.o.pollIntervalMs);
    // Due now but not claimable by us (hosts or slots full): a finishing callback wakes us.
    if (this.inFlight >= this.o.concurrency || this.saturatedHosts().length > 0) return this.o.pollIntervalMs;
    return 1;
  }

  private dispatch(c: Claim, lease: string): void {
    const w = c.webhook;
    const claim = { id: w.id, lease };
    this.inFlight++;
    this.inFlightClaims.add(claim);
    this.perHost.set(w.host, (this.perHost.get(w.host) ?? 0) + 1);
    const id = notificationId(w);
    const startedAt = this.o.now();
    const run = async (): Promise<SendResult> => {
      try {
        const req = await this.o.buildRequest(w, id, Math.floor(startedAt / 1000));
        return await this.o.sender.send(req);
      } catch (err) {
        return { kind: 'network', durationMs: this.o.now() - startedAt, error: (err as Error).message };
      }
    };
    void run().then((result) => this.finish(w, claim, id, startedAt, result));
  }

  private finish(w: WebhookRow, claim: { id: number; lease: string }, id: string, startedAt: number, result: SendResult): void {
    const now = this.o.now();
    const outcome = decideOutcome(result, w.failedAttempts, this.o.schedule, now);
    const resultClass = classify(result);
    const latencyMs = w.pendingSince !== null ? now - w.pendingSince : null;
    this.completions.push({
      webhookId: w.id, owner: claim.lease, claimedSeq: w.changeSeq, notificationId: id, startedAt,
      durationMs: result.durationMs,
      statusCode: result.kind === 'response' ? result.status : null,
      error: result.kind === 'response' ? null : `${result.kind}: ${result.error}`.slice(0, 200),
      responseSnippet: result.kind === 'response' ? result.bodySnippet : null,
      latencyMs, outcome, nextDueAt: now + this.o.notifyDelayMs,
    });
    this.o.logger.info({
      webhookId: w.id, notificationId: id, host: w.host, result: resultClass,
      status: result.kind === 'response' ? result.status : undefined,
      error: result.kind === 'response' ? undefined : result.error,
      durationMs: Math.round(result.durationMs), outcome: outcome.kind,
      ...(outcome.kind === 'retry' && { retryAt: new Date(outcome.retryAt).toISOString() }),
      ...(outcome.kind === 'disable' && { reason: outcome.reason }),
    }, 'delivery');
    this.emit('attempt', { webhook: w, notificationId: id, result, resultClass, outcome, latencyMs } satisfies AttemptEvent);
    void this.flush().finally(() => {
      this.inFlight--;
      this.inFlightClaims.delete(claim);
      const n = (this.perHost.get(w.host) ?? 1) - 1;
      if (n <= 0) this.perHost.delete(w.host);
      else this.perHost.set(w.host, n);
      if (this.inFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
      this.notify();
    });
  }

  /** Writes finished attempts in batches: one transaction for all that finished meanwhile. */
  private flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => (this.completions.length ? this.flush() : undefined));
    this.flushing = (async () => {
      // Let every callback that finishes in this turn of the event loop join one transaction: a
      // synchronous store (SQLite) would otherwise commit each attempt on its own.
      await new Promise((r) => setImmediate(r));
      let backoff = 50;
      while (this.completions.length) {
        const batch = this.completions.splice(0);
        try {
          await this.o.store.completeAttempts(batch);
        } catch (err) {
          // Keep the outcomes and try again: until written, their leases keep them from others.
          this.completions.unshift(...batch);
          // Stopped and the store is gone: the leases expire and another worker retries.
          if (!this.running) return;
          this.o.logger.error({ err, retryInMs: backoff }, 'delivery worker: could not record attempts; retrying');
          this.emit('dbError', err);
          await new Promise((r) => setTimeout(r, backoff));
          backoff = Math.min(backoff * 2, 5_000);
        }
      }
    })().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async prune(): Promise<void> {
    try {
      const n = await this.o.store.pruneAttempts(this.o.now() - this.o.attemptRetentionMs);
      if (n) this.o.logger.info({ pruned: n }, 'pruned old delivery attempts');
    } catch (err) {
      this.o.logger.warn({ err }, 'could not prune delivery attempts');
    }
  }

  /**
   * Stops claiming and waits for in-flight callbacks (bounded by drainTimeoutMs). Callbacks still
   * running then are given back, so a restarted worker retries them (at-least-once).
   */
  async stop(drainTimeoutMs: number): Promise<{ drained: boolean; abandoned: number }> {
    if (!this.running) return { drained: true, abandoned: 0 };
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    await this.unsubscribe?.();
    while (this.pumping) await new Promise((r) => setTimeout(r, 5));
    let drained = true;
    if (this.inFlight > 0) {
      let timeout: NodeJS.Timeout | undefined;
      drained = await Promise.race([
        new Promise<boolean>((r) => this.idleWaiters.push(() => r(true))),
        new Promise<boolean>((r) => { timeout = setTimeout(() => r(false), drainTimeoutMs); }),
      ]);
      clearTimeout(timeout);
    }
    const abandoned = [...this.inFlightClaims];
    const byLease = new Map<string, number[]>();
    for (const c of abandoned) byLease.set(c.lease, [...(byLease.get(c.lease) ?? []), c.id]);
    for (const [lease, ids] of byLease) {
      await this.o.store.releaseClaims(lease, ids).catch((err: unknown) => this.o.logger.error({ err }, 'could not release claims'));
    }
    await this.flushing;
    return { drained, abandoned: abandoned.length };
  }
}
