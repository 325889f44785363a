import { deliveryUrl } from '../domain/callback-url.ts';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { RetrySchedule } from '../domain/retry-schedule.ts';
import { isDataError } from '../store/database-errors.ts';
import { DEFAULT_WORKER_STALE_MS, type AttemptOutcome, type AttemptRecord, type Claim, type ClaimedWebhook, type Store } from '../store/types.ts';
import { deadPredecessors, liveSiblings } from './predecessors.ts';
import { recordHeaders } from '../domain/attempt-headers.ts';
import { notificationId } from '../domain/notification-id.ts';
import { CallAbort } from './call-abort.ts';
import { classify, decideOutcome, type ResultClass } from './outcome.ts';
import type { SendRequest, SendResult, Sender } from './sender.ts';

/** Shortest time between two nextDueAt queries of one worker (see nextDelay). */
export const NEXT_DUE_QUERY_INTERVAL_MS = 50;
/**
 * Shortest time between the starts of two pumps (claims) of one worker under a stream of reasons
 * to look, by default. Each wake-up, and each callback finishing, started a claim of its own: at
 * 1,000 changes/s a worker claimed 0.8 times per change, 1.2 rows a claim, and with several
 * workers sharing PostgreSQL every NOTIFY made each of them claim (see notify).
 */
export const MIN_PUMP_INTERVAL_MS = 5;
/** An empty claim is trusted for this many times its own duration, if longer than NEXT_DUE_QUERY_INTERVAL_MS (see claimIsPointless). */
const EMPTY_CLAIM_TRUST_FACTOR = 20;

/** Builds the HTTP request of one notification (signing and payloads hook in here). */
export type RequestBuilder = (webhook: ClaimedWebhook, notificationId: string, timestampSec: number) => SendRequest | Promise<SendRequest>;

export interface WorkerOptions {
  store: Store;
  /** The worker only sends; whoever created the sender closes it. */
  sender: Pick<Sender, 'send'> & Partial<Pick<Sender, 'busyAddresses'>>;
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
  /** Shortest time between two pumps (default MIN_PUMP_INTERVAL_MS; 0: none). */
  minPumpIntervalMs?: number;
  /**
   * Callbacks in flight at once to one resolved address (the sender's limit, default unlimited):
   * claims beyond it for hosts whose address is known are given back in one batch, not sent.
   */
  perAddressConcurrency?: number;
  /** Callbacks in flight at once for one client (fair share; default: the global concurrency). */
  perClientConcurrency?: number;
  /** Heartbeat period; the heartbeat row is stamped with the database's clock. */
  heartbeatIntervalMs?: number;
  /** A worker whose heartbeat is older than this loses its claims to the others. */
  workerStaleMs?: number;
  /**
   * At start, take over every claim held by another worker id (a single-node store: nobody else
   * holds claims, so those of a crashed predecessor are retried at once instead of after their
   * lease). Otherwise only claims of predecessors on this host whose process is gone are taken.
   */
  retakeAllClaimsAtStart?: boolean;
}

export interface AttemptEvent {
  webhook: ClaimedWebhook;
  notificationId: string;
  result: SendResult;
  resultClass: ResultClass;
  outcome: AttemptOutcome;
  /** Milliseconds from the change the notification is about (pendingSince) to the answer. */
  latencyMs: number | null;
}

const defaultRequest: RequestBuilder = (w, id, ts) => ({
  url: deliveryUrl(w.url),
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
  private readonly perClient = new Map<string, number>();
  /** Resolved address of each host, as the sender last reported it (for the per-address limit). */
  private readonly hostAddress = new Map<string, string>();
  /** Callbacks in flight per address, for those dispatched with their host's address known. */
  private readonly perAddress = new Map<string, number>();
  /** Aborts of the callbacks in flight, used when the heartbeat lapses. */
  private readonly aborts = new Set<CallAbort>();
  private heartbeatTimer: NodeJS.Timeout | null = null;
  /** performance.now() when the last heartbeat that the database confirmed was sent; null before the first. */
  private lastBeatSentAt: number | null = null;
  private beating = false;
  /** Callbacks in flight with the lease token of their claim. */
  private readonly inFlightClaims = new Set<{ id: number; lease: string }>();
  /** Claims given back at stop while their callback was still running: its end records nothing. */
  private readonly handedBack = new Set<{ id: number; lease: string }>();
  private claimCount = 0;
  private pumping = false;
  private pumpAgain = false;
  private timer: NodeJS.Timeout | null = null;
  /** A pump waiting for the end of the minimum interval since the last one (see notify). */
  private soon: NodeJS.Timeout | null = null;
  /** performance.now() when the last pump started. */
  private lastPumpAt = -Infinity;
  /** performance.now() of the last notify(), and the mean time between notifies (moving average). */
  private lastNotifyAt = -Infinity;
  private notifyGapMs = Infinity;
  private pruneTimer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => Promise<void>) | null = null;
  private completions: AttemptRecord[] = [];
  private flushing: Promise<void> | null = null;
  private idleWaiters: (() => void)[] = [];
  private dbBackoffMs = 0;
  /** Whether the last claim of the last pump took nothing. */
  private lastClaimEmpty = true;
  /** performance.now() of the last nextDueAt query; -Infinity before the first. */
  private lastDueQueryAt = -Infinity;
  /**
   * The last claim that took nothing: the hosts and clients it left out, and until when that is
   * trusted. Nothing outside them was claimable then; a claim leaving out as much or more finds
   * nothing either until something changes (see claimIsPointless).
   */
  private emptyClaim: { hosts: Set<string>; clients: Set<string>; until: number } | null = null;

  /**
   * Free slots a claim waits for while callbacks are in flight, globally, per host and per client.
   * Every finished callback pumps; under a steady stream, claiming the one slot it freed ran a
   * claim statement (its fixed cost: the scan past the rows in flight, the ranking) for one or two
   * rows at a time. Waiting for an eighth of the global slots, a quarter of a host's (two of 8: a
   * slow receiver still gets 6 to 8 callbacks at once, not 4 to 8), or an eighth of a client's (a
   * client with a backlog on many hosts, such as one change fanned out to 10,000 webhooks, was
   * claimed for one slot at a time at its limit), makes claims larger and fewer; an idle worker
   * (or host, or client) claims at once, so a single change is not delayed.
   */
  private readonly lowWater: number;
  private readonly hostLowWater: number;
  private readonly clientLowWater: number;

  constructor(opts: WorkerOptions) {
    super();
    this.owner = opts.owner ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    this.o = {
      buildRequest: defaultRequest, now: Date.now, batchSize: 500, minPumpIntervalMs: MIN_PUMP_INTERVAL_MS, perClientConcurrency: opts.concurrency, perAddressConcurrency: Infinity,
      heartbeatIntervalMs: 1_000, workerStaleMs: DEFAULT_WORKER_STALE_MS, retakeAllClaimsAtStart: false, ...opts,
    } as Required<Omit<WorkerOptions, 'owner'>>;
    this.lowWater = Math.max(1, Math.min(this.o.batchSize, Math.floor(this.o.concurrency / 8)));
    this.hostLowWater = Math.max(1, Math.floor(this.o.perHostConcurrency / 4));
    this.clientLowWater = Math.max(1, Math.floor(this.o.perClientConcurrency / 8));
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
    await this.beat();
    await this.retakeClaims();
    this.heartbeatTimer = setInterval(() => void this.beat(), this.o.heartbeatIntervalMs);
    this.heartbeatTimer.unref();
    this.unsubscribe = await this.o.store.subscribeWakeups(() => {
      // Something may have become due outside the groups the last empty claim left out.
      this.emptyClaim = null;
      this.notify();
    });
    this.pruneTimer = setInterval(() => void this.prune(), 3_600_000);
    this.pruneTimer.unref();
    void this.prune();
    this.notify();
  }

  /**
   * Stamps the heartbeat. Other workers take our claims once it is workerStaleMs old (database
   * clock), so when the database has not confirmed one for nearly that long, this worker fences
   * itself: it claims nothing and aborts its callbacks in flight, so that no webhook is ever called
   * by two workers at once.
   */
  private async beat(): Promise<void> {
    // First, before this heartbeat is written: a worker frozen past the fence (SIGSTOP, a paused
    // VM) resumes with its timers overdue, and this runs before the I/O that came meanwhile (a
    // connection opened, an answer read). Checked only after the write, the heartbeat confirmed it
    // again, and callbacks whose claims another worker may hold by now went out.
    this.fenceIfLapsed();
    if (this.beating) return;
    this.beating = true;
    const sentAt = performance.now();
    try {
      await this.o.store.heartbeat(this.owner);
      const wasFenced = this.fenced();
      this.lastBeatSentAt = sentAt;
      if (wasFenced) this.notify();
    } catch (err) {
      this.o.logger.error({ err }, 'delivery worker: could not write its heartbeat');
      this.emit('dbError', err);
    } finally {
      this.beating = false;
    }
    this.fenceIfLapsed();
  }

  /** True when the last confirmed heartbeat is too old to be sure our claims are still ours. */
  private fenced(): boolean {
    if (this.lastBeatSentAt === null) return true;
    // Two heartbeat periods of margin for the time the abort and the database take.
    return performance.now() - this.lastBeatSentAt > this.o.workerStaleMs - 2 * this.o.heartbeatIntervalMs;
  }

  private fenceIfLapsed(): void {
    if (!this.fenced() || this.aborts.size === 0) return;
    this.o.logger.warn({ inFlight: this.aborts.size }, 'delivery worker: heartbeat lapsed; aborting callbacks in flight (another worker may take them over)');
    for (const a of this.aborts) a.abort();
  }

  /** Claims of a crashed predecessor are retried now rather than when their lease runs out. */
  private async retakeClaims(): Promise<void> {
    try {
      const n = this.o.retakeAllClaimsAtStart
        ? await this.o.store.expireLeases({ allBut: [this.owner, ...liveSiblings(await this.o.store.listWorkers(), this.owner, this.o.workerStaleMs)] })
        : await this.o.store.expireLeases(deadPredecessors(await this.o.store.listWorkers(), this.owner));
      if (n) this.o.logger.info({ claims: n }, 'delivery worker: retaking the claims of a stopped worker');
    } catch (err) {
      this.o.logger.error({ err }, 'delivery worker: could not retake stale claims; they are retried when their lease ends');
      this.emit('dbError', err);
    }
  }

  /**
   * Something may be due: look now (coalesced; cheap to call often). Under a stream of reasons to
   * look (wake-ups, callbacks finishing) coming on average more than twice per minPumpIntervalMs,
   * a look within that interval of the last one waits for its end: those that arrive meanwhile
   * share one claim (of more rows) instead of each running its own, for a few milliseconds of
   * latency. Fewer reasons (a change every few milliseconds or less often), and an idle worker,
   * look at once: waiting would only add latency (p50 at 100 changes/s rose from 2.9 to 5.1 ms
   * when every look waited).
   */
  notify(): void {
    if (!this.running) return;
    const now = performance.now();
    // Half the weight on the newest gap, each capped at four intervals: a few notifies after idling
    // tell a stream, and an idle spell ends one at once.
    const cap = 4 * this.o.minPumpIntervalMs;
    this.notifyGapMs = 0.5 * Math.min(this.notifyGapMs, cap) + 0.5 * Math.min(now - this.lastNotifyAt, cap);
    this.lastNotifyAt = now;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    if (this.soon) return;
    const streaming = this.notifyGapMs < this.o.minPumpIntervalMs / 2;
    const wait = streaming ? this.lastPumpAt + this.o.minPumpIntervalMs - now : 0;
    if (wait > 0) {
      this.soon = setTimeout(() => {
        this.soon = null;
        this.notify();
      }, Math.ceil(wait));
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pumping = true;
    this.lastPumpAt = now;
    setImmediate(() => void this.pump());
  }

  private async pump(): Promise<void> {
    let nextDelay = this.o.pollIntervalMs;
    try {
      this.pumpAgain = false;
      await this.claimAndDispatch();
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
    // No prototype: a host named `constructor` or `toString` is looked up as itself.
    const out = Object.create(null) as Record<string, number>;
    for (const [host, n] of this.perHost) out[host] = Math.max(0, this.o.perHostConcurrency - n);
    return out;
  }

  /**
   * Hosts to leave out and free slots per host for the next claim. The free slots of an address
   * with callbacks in flight are shared out among the hosts that resolve to it, so that a claim
   * takes no more rows for an address than it can send (one address behind 40 ports would
   * otherwise fill each claim with rows to give back).
   */
  private claimLimits(): { excludeHosts: string[]; hostSlots: Record<string, number> } {
    const hostSlots = this.hostSlots();
    const exclude = new Set(this.saturatedHosts());
    if (this.perAddress.size > 0 && Number.isFinite(this.o.perAddressConcurrency)) {
      const left = new Map<string, number>();
      for (const [address, n] of this.perAddress) left.set(address, Math.max(0, this.o.perAddressConcurrency - n));
      for (const [host, address] of this.hostAddress) {
        const free = left.get(address);
        if (free === undefined || exclude.has(host)) continue;
        const slots = Math.min(free, hostSlots[host] ?? this.o.perHostConcurrency);
        if (slots <= 0) exclude.add(host);
        else hostSlots[host] = slots;
        left.set(address, free - slots);
      }
    }
    return { excludeHosts: [...exclude], hostSlots };
  }

  /**
   * Hosts not worth a claim now: past their low-water mark (see hostLowWater), and hosts whose
   * address is at the sender's per-address limit.
   */
  private saturatedHosts(): string[] {
    const out: string[] = [];
    for (const [host, n] of this.perHost) if (n > this.o.perHostConcurrency - this.hostLowWater) out.push(host);
    const busy = this.o.sender.busyAddresses?.();
    const full = (address: string): boolean => Boolean(busy?.has(address)) || (this.perAddress.get(address) ?? 0) >= this.o.perAddressConcurrency;
    if (busy?.size || this.perAddress.size) for (const [host, address] of this.hostAddress) if (full(address)) out.push(host);
    return out;
  }

  private clientSlots(): Record<string, number> {
    const out = Object.create(null) as Record<string, number>;
    for (const [client, n] of this.perClient) out[client] = Math.max(0, this.o.perClientConcurrency - n);
    return out;
  }

  /** Clients not worth a claim now: past their low-water mark (see clientLowWater). */
  private saturatedClients(): string[] {
    const out: string[] = [];
    for (const [client, n] of this.perClient) if (n > this.o.perClientConcurrency - this.clientLowWater) out.push(client);
    return out;
  }

  private async claimAndDispatch(): Promise<void> {
    for (;;) {
      const free = this.o.concurrency - this.inFlight;
      if (!this.running || free <= 0 || this.fenced()) return;
      // Below the low-water mark, callbacks in flight will finish and pump again (see lowWater).
      if (this.inFlight > 0 && free < this.lowWater) return;
      const limit = Math.min(free, this.o.batchSize);
      // Each claim stamps its own lease token: a completion delayed past its lease (a long database
      // outage) then matches no newer claim of the same row, even one this worker made.
      const limits = this.claimLimits();
      const excludeClients = this.saturatedClients();
      const saturatedBefore = this.saturatedHosts().length + excludeClients.length;
      if (this.claimIsPointless(limits.excludeHosts, excludeClients)) {
        this.lastClaimEmpty = true;
        return;
      }
      const lease = `${this.owner}#${++this.claimCount}`;
      const claimStarted = performance.now();
      const claims = await this.o.store.claimDue({
        lease, limit, now: this.o.now(), leaseMs: this.o.leaseMs, ...limits,
        perHostLimit: this.o.perHostConcurrency,
        perClientLimit: this.o.perClientConcurrency, clientSlots: this.clientSlots(), excludeClients,
        worker: this.owner, workerStaleMs: this.o.workerStaleMs,
      });
      // (A claim that took rows leaves what the last empty one learnt true: taking rows frees none.)
      if (claims.length === 0) {
        const took = performance.now() - claimStarted;
        const trust = Math.min(this.o.pollIntervalMs, Math.max(NEXT_DUE_QUERY_INTERVAL_MS, EMPTY_CLAIM_TRUST_FACTOR * took));
        this.emptyClaim = { hosts: new Set(limits.excludeHosts), clients: new Set(excludeClients), until: claimStarted + trust };
      }
      const giveBack: number[] = [];
      let reclaimed = 0;
      for (const c of claims) {
        if (c.reclaimed) reclaimed++;
        const address = this.hostAddress.get(c.webhook.host);
        if ((this.perHost.get(c.webhook.host) ?? 0) >= this.o.perHostConcurrency
          || (this.perClient.get(c.webhook.clientId) ?? 0) >= this.o.perClientConcurrency
          || (address !== undefined && (this.perAddress.get(address) ?? 0) >= this.o.perAddressConcurrency)) giveBack.push(c.webhook.id);
        else this.dispatch(c, lease);
      }
      if (reclaimed) this.emit('reclaimed', reclaimed);
      if (giveBack.length) {
        await this.o.store.releaseClaims(lease, giveBack);
        this.emptyClaim = null;
      }
      // Claim again at once when this batch filled it, or put a host, address or client at its
      // limit: the next claim leaves those out and reaches rows the ranked scan window did not
      // (one client's backlog must not keep another's due row waiting for the poll interval).
      const saturated = this.saturatedHosts().length + this.saturatedClients().length;
      this.lastClaimEmpty = claims.length === 0;
      if (claims.length === 0) return;
      if (claims.length < limit && giveBack.length === 0 && saturated <= saturatedBefore) return;
    }
  }

  /**
   * Whether a claim leaving out these hosts and clients would find nothing: a claim leaving out no
   * more than them found nothing a moment ago, and no wakeup (a change) nor claim given back came
   * since. Every finished callback pumps, and with a backlog of saturated hosts or clients (one
   * client's 20,000 rows, or 8 receiving hosts) each pump claimed one row for the slot just freed,
   * saturating its group again, then claimed once more without that group: a walk over the whole
   * backlog to take nothing, about half the CPU of a delivery run (issue 12). The empty answer is
   * trusted for NEXT_DUE_QUERY_INTERVAL_MS, or EMPTY_CLAIM_TRUST_FACTOR times what the claim took
   * when that is longer (a long backlog: walks then cost at most a few % of the time), at most the
   * poll interval. Changes wake the worker and end the trust at once; only rows that become due by
   * time alone (retries) can wait that long more.
   */
  private claimIsPointless(excludeHosts: string[], excludeClients: string[]): boolean {
    const e = this.emptyClaim;
    if (e === null) return false;
    if (performance.now() >= e.until) {
      this.emptyClaim = null;
      return false;
    }
    if (e.hosts.size > excludeHosts.length || e.clients.size > excludeClients.length) return false;
    const hosts = new Set(excludeHosts);
    for (const h of e.hosts) if (!hosts.has(h)) return false;
    const clients = new Set(excludeClients);
    for (const c of e.clients) if (!clients.has(c)) return false;
    return true;
  }

  /**
   * When to look again: the next due time, bounded by the poll interval (the backstop).
   * nextDueAt is asked only after a claim that took nothing, and at most every
   * NEXT_DUE_QUERY_INTERVAL_MS (it once read every owed row; it now walks webhooks_due): under load a
   * busy worker pumps after every finished callback, and asking each time cost a quarter of a
   * delivery run's CPU with 8 receiving hosts (issue 12). In between, it looks again when the
   * interval ends; a finishing callback or a wakeup looks sooner.
   */
  private async nextDelay(): Promise<number> {
    // Every slot busy: nothing can be claimed before a callback finishes, and that wakes us.
    if (this.inFlight >= this.o.concurrency) return this.o.pollIntervalMs;
    if (!this.lastClaimEmpty) return Math.min(this.o.pollIntervalMs, NEXT_DUE_QUERY_INTERVAL_MS);
    const sinceQuery = performance.now() - this.lastDueQueryAt;
    if (sinceQuery < NEXT_DUE_QUERY_INTERVAL_MS) return Math.min(this.o.pollIntervalMs, Math.max(1, Math.ceil(NEXT_DUE_QUERY_INTERVAL_MS - sinceQuery)));
    this.lastDueQueryAt = performance.now();
    const next = await this.o.store.nextDueAt();
    if (next === null) return this.o.pollIntervalMs;
    const delay = next - this.o.now();
    if (delay > 0) return Math.min(delay, this.o.pollIntervalMs);
    // Due now but not claimable by us (hosts or slots full): a finishing callback wakes us.
    if (this.inFlight >= this.o.concurrency || this.saturatedHosts().length > 0 || this.saturatedClients().length > 0) return this.o.pollIntervalMs;
    return 1;
  }

  private dispatch(c: Claim, lease: string): void {
    const w = c.webhook;
    const address = this.hostAddress.get(w.host);
    const claim = { id: w.id, lease, address };
    if (address !== undefined) this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
    this.inFlight++;
    this.inFlightClaims.add(claim);
    this.perHost.set(w.host, (this.perHost.get(w.host) ?? 0) + 1);
    this.perClient.set(w.clientId, (this.perClient.get(w.clientId) ?? 0) + 1);
    const abort = new CallAbort();
    this.aborts.add(abort);
    const id = notificationId(w);
    const startedAt = this.o.now();
    const run = async (): Promise<SendResult> => {
      try {
        const req = await this.o.buildRequest(w, id, Math.floor(startedAt / 1000));
        return await this.o.sender.send({ ...req, signal: abort });
      } catch (err) {
        return { kind: 'network', durationMs: this.o.now() - startedAt, error: (err as Error).message };
      }
    };
    void run().then((result) => {
      this.aborts.delete(abort);
      if (result.address !== undefined) {
        if (this.hostAddress.size > 10_000) this.hostAddress.clear();
        this.hostAddress.set(w.host, result.address);
      }
      // Given back at stop (the drain timed out): the row is owed again with its due time, and the
      // end of this callback (cut short as the sender closes) is no attempt: no log line, no
      // attempt row, no failure in the statistics.
      if (this.handedBack.delete(claim)) this.settle(w, claim);
      else if (result.kind === 'deferred') this.giveBack(w, claim);
      else this.finish(w, claim, id, startedAt, result);
    });
  }

  /** Not sent (its address was busy, or the worker fenced itself): back to the store, due time unchanged. */
  private giveBack(w: ClaimedWebhook, claim: { id: number; lease: string }): void {
    void this.o.store.releaseClaims(claim.lease, [w.id])
      .then(() => { this.emptyClaim = null; })
      .catch((err: unknown) => this.o.logger.warn({ err }, 'could not give a claim back; it is retried when its lease ends'))
      .finally(() => this.settle(w, claim));
  }

  /** Frees the slots of a finished (or given back) callback and looks for more work. */
  private settle(w: ClaimedWebhook, claim: { id: number; lease: string; address?: string | undefined }): void {
    if (claim.address !== undefined) {
      const a = (this.perAddress.get(claim.address) ?? 1) - 1;
      if (a <= 0) this.perAddress.delete(claim.address);
      else this.perAddress.set(claim.address, a);
    }
    this.inFlight--;
    this.inFlightClaims.delete(claim);
    const n = (this.perHost.get(w.host) ?? 1) - 1;
    if (n <= 0) this.perHost.delete(w.host);
    else this.perHost.set(w.host, n);
    const m = (this.perClient.get(w.clientId) ?? 1) - 1;
    if (m <= 0) this.perClient.delete(w.clientId);
    else this.perClient.set(w.clientId, m);
    if (this.inFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    this.notify();
  }

  private finish(w: ClaimedWebhook, claim: { id: number; lease: string }, id: string, startedAt: number, result: SendResult): void {
    const now = this.o.now();
    const outcome = decideOutcome(result, w.failedAttempts, this.o.schedule, now, w.failingSince ?? null);
    const resultClass = classify(result);
    const latencyMs = w.pendingSince !== null ? now - w.pendingSince : null;
    this.completions.push({
      webhookId: w.id, lease: claim.lease, claimedSeq: w.changeSeq, notificationId: id, startedAt,
      durationMs: result.durationMs,
      statusCode: result.kind === 'response' ? result.status : null,
      error: result.kind === 'response' ? null : `${result.kind}: ${result.error}`.slice(0, 200),
      responseSnippet: result.kind === 'response' ? result.bodySnippet : null,
      latencyMs, outcome, nextDueAt: now + this.o.notifyDelayMs, replayDueAt: now,
      requestHeaders: recordHeaders(result.requestHeaders), responseHeaders: result.kind === 'response' ? recordHeaders(result.headers) : null,
    });
    // One object literal of one shape (pino leaves out the undefined fields), no spreads.
    this.o.logger.info({
      webhookId: w.id, notificationId: id, host: w.host, result: resultClass,
      status: result.kind === 'response' ? result.status : undefined,
      error: result.kind === 'response' ? undefined : result.error,
      durationMs: Math.round(result.durationMs), outcome: outcome.kind,
      retryAt: outcome.kind === 'retry' ? new Date(outcome.retryAt).toISOString() : undefined,
      reason: outcome.kind === 'disable' ? outcome.reason : undefined,
    }, 'delivery');
    this.emit('attempt', { webhook: w, notificationId: id, result, resultClass, outcome, latencyMs } satisfies AttemptEvent);
    void this.flush().finally(() => this.settle(w, claim));
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
          // Data the database refuses fails again however often it is retried, and with it every
          // attempt batched with it: write them one by one, and give up only the refused ones.
          if (isDataError(err)) {
            await this.completeOneByOne(batch);
            continue;
          }
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

  /**
   * Writes a batch that met a data error attempt by attempt. One the database refuses alone is
   * logged and dropped: its lease runs out and the webhook is claimed again (the callback is sent
   * again: at least once), instead of holding back every later attempt. Another error puts the
   * rest back for the usual retry.
   */
  private async completeOneByOne(batch: AttemptRecord[]): Promise<void> {
    for (const [i, a] of batch.entries()) {
      try {
        await this.o.store.completeAttempts([a]);
      } catch (err) {
        if (!isDataError(err)) {
          this.completions.unshift(...batch.slice(i));
          return;
        }
        this.o.logger.error({ err, webhookId: a.webhookId, notificationId: a.notificationId }, 'delivery worker: the database refused this attempt; its webhook is called again once its lease expires');
        this.emit('dbError', err);
      }
    }
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
    if (this.soon) clearTimeout(this.soon);
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
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
    for (const c of abandoned) this.handedBack.add(c);
    const byLease = new Map<string, number[]>();
    for (const c of abandoned) byLease.set(c.lease, [...(byLease.get(c.lease) ?? []), c.id]);
    for (const [lease, ids] of byLease) {
      await this.o.store.releaseClaims(lease, ids).catch((err: unknown) => this.o.logger.error({ err }, 'could not release claims'));
    }
    await this.flushing;
    await this.o.store.retireWorker(this.owner).catch((err: unknown) => this.o.logger.warn({ err }, 'could not remove the worker\'s heartbeat row'));
    return { drained, abandoned: abandoned.length };
  }
}
