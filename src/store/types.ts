import type { RecordedHeaders } from '../domain/attempt-headers.ts';
import type { WebhookStateName } from '../domain/webhook-state.ts';

/**
 * The narrow seam between the service and its database. Every method is async so that SQLite
 * (synchronous underneath) and PostgreSQL share one interface; all times are epoch milliseconds.
 * The same behaviour suite (test/store.test.ts) runs against every implementation.
 */

export interface ClientRow {
  id: string;
  name: string;
  secretHash: string;
  premium: boolean;
  createdAt: number;
  revokedAt: number | null;
}

export interface TokenRow {
  tokenHash: string;
  clientId: string;
  scope: string;
  createdAt: number;
  expiresAt: number;
}

export interface RecordRow {
  orcid: string;
  modifiedAt: number;
  createdAt: number;
}

export interface WebhookRow {
  /** Internal key; never shown outside the store and the worker (see publicId). */
  id: number;
  /** `wh_` + 32 random hex digits: the id clients, the dashboard and the CLI see and send. */
  publicId: string;
  clientId: string;
  orcid: string;
  url: string;
  /** Lower-cased host of the callback, the key of per-host concurrency. */
  host: string;
  createdAt: number;
  enabled: boolean;
  disabledReason: string | null;
  disabledAt: number | null;
  /** Modified time of the oldest change not yet notified; null when nothing is owed. */
  pendingSince: number | null;
  /** When the next attempt may run; null when nothing is owed. */
  dueAt: number | null;
  /** Counts every change applied to this webhook; a completion compares it with its claim. */
  changeSeq: number;
  /** changeSeq at which the pending notification began: names it (`webhook-id`) across retries. */
  notifySeq: number;
  failedAttempts: number;
  /** When the current run of failures began; null when the last attempt succeeded (or none failed). */
  failingSince?: number | null;
  lastSentAt: number | null;
  lastFailedAt: number | null;
  lastStatus: string | null;
  /** The lease token of the claim holding it (column lease_owner, named before tokens were per claim); null when not leased. */
  lease: string | null;
  leaseUntil: number | null;
}

export interface NewClient {
  id: string;
  name: string;
  secretHash: string;
  premium: boolean;
  createdAt: number;
}

export interface RecordChange {
  orcid: string;
  modifiedAt: number;
  /**
   * "Modified now": the store uses max(modifiedAt, current + 1 ms), so a touch always counts as
   * newer, even in the same millisecond as the record's creation or a previous touch.
   */
  touch?: boolean;
}

export interface ApplyChangesOptions {
  /** Create records that do not exist yet (admin API, imports); false ignores them. */
  create: boolean;
  now: number;
  /** Delay before a newly owed notification is due (burst settling). */
  notifyDelayMs: number;
  /** A batch of one change: report its record's modified time after the apply (ApplyChangesResult.modifiedAt). */
  reportModified?: boolean;
}

export interface ApplyChangesResult {
  created: number;
  changed: number;
  /** Changes not newer than the record's current modified time. */
  ignored: number;
  /** Webhooks that now owe a notification (or owe one more). */
  webhooksNotified: number;
  /**
   * With reportModified, a batch of one change: its record's modified time after this apply (the
   * change's, or the current one when ignored), so the caller needs no read after the write.
   */
  modifiedAt?: number;
}

export interface RegisterInput {
  clientId: string;
  orcid: string;
  url: string;
  host: string;
  now: number;
  /** The client's cap on webhooks: beyond it, outcome 'limit'. */
  maxPerClient?: number;
  /** Create the record (a placeholder) when it does not exist; otherwise outcome 'no-record'. */
  createRecord?: boolean;
}

export type RegisterResult =
  | { outcome: 'created'; webhook: WebhookRow }
  | { outcome: 'exists'; webhook: WebhookRow; reenabled: boolean }
  | { outcome: 'limit' }
  | { outcome: 'no-record' };

/** A list filter: see src/domain/webhook-state.ts. */
export type WebhookState = WebhookStateName;

export interface WebhookFilter {
  clientId?: string;
  orcid?: string;
  state?: WebhookState;
  /** Free text matched against iD, URL and client id. */
  search?: string;
  /** Return webhooks with id greater than this (cursor pagination). */
  afterId?: number;
  limit: number;
}

/** One webhook handed to a worker, with the lease it now holds. */
export interface Claim {
  webhook: WebhookRow;
  /** True when a previous lease on this row had expired (its worker died). */
  reclaimed: boolean;
}

export type AttemptOutcome =
  | { kind: 'success' }
  /** Schedule another try at retryAt. */
  | { kind: 'retry'; retryAt: number }
  /** Stop: disable the webhook with this reason (410 Gone, schedule exhausted). */
  | { kind: 'disable'; reason: string };

export interface AttemptRecord {
  webhookId: number;
  /** The lease token of its claim: a completion from a lost lease is ignored. */
  lease: string;
  /** changeSeq seen at claim time. */
  claimedSeq: number;
  notificationId: string;
  startedAt: number;
  durationMs: number;
  statusCode: number | null;
  /** Error class when there was no HTTP answer: timeout, network, refused, redirect... */
  error: string | null;
  responseSnippet: string | null;
  /** From the change the notification is about to the answer; null when unknown. */
  latencyMs: number | null;
  outcome: AttemptOutcome;
  /** For a success that finds newer changes: when the next notification is due. */
  nextDueAt: number;
  /** Headers sent and received, already bounded and redacted (recordHeaders); absent: not kept. */
  requestHeaders?: RecordedHeaders | null;
  responseHeaders?: RecordedHeaders | null;
}

export interface AttemptRow {
  id: number;
  webhookId: number;
  notificationId: string;
  at: number;
  durationMs: number;
  statusCode: number | null;
  error: string | null;
  responseSnippet: string | null;
  latencyMs: number | null;
  requestHeaders: RecordedHeaders | null;
  /** null when there was no answer (timeout, network error, refused). */
  responseHeaders: RecordedHeaders | null;
}

/** Store.deliveryBacklog */
export interface DeliveryBacklog {
  /** pending_since of the oldest notification an enabled webhook owes; null when none is owed. */
  oldestOwedSince: number | null;
  /** Webhooks under a live lease: callbacks being sent by any worker process. */
  inFlight: number;
}

/** Store.failureBreakdown: one host or client. */
export interface FailureCount {
  key: string;
  attempts: number;
  failures: number;
}

/** Delivery attempts of one time bucket (Store.attemptStats). */
export interface AttemptBucket {
  /** Start of the bucket: since + k * bucketMs. */
  start: number;
  callbacks: number;
  /** Answered 2xx. */
  successes: number;
  failures: number;
  /** Change-to-callback latency (ms) of the successful attempts, interpolated (percentile_cont); null when none. */
  latencyP50: number | null;
  latencyP95: number | null;
}

export interface WebhookCounts {
  total: number;
  enabled: number;
  disabled: number;
  /** Owes a notification and is due now or waiting out a notify delay with no failure yet. */
  pending: number;
  /** Owes a notification after one or more failures (in backoff). */
  backoff: number;
}

/** What a callback's body is: ORCID's empty POST (the default) or a small JSON event. */
export type PayloadMode = 'empty' | 'json';

/** How one client's callbacks are built (signing and payload); defaults when never set. */
export interface ClientDeliverySettings {
  clientId: string;
  payloadMode: PayloadMode;
  /** `whsec_...`, in clear because it is needed to sign; null: callbacks are unsigned. Never log it. */
  signingSecret: string | null;
  /** The secret replaced by the last rotation, still signing until previousSecretUntil. */
  previousSigningSecret: string | null;
  previousSecretUntil: number | null;
}

export interface ReplayResult {
  webhook: WebhookRow;
  /** The webhook was disabled and replaying it enabled it again. */
  reenabled: boolean;
}

export interface ClaimOptions {
  /** The lease token stamped on the claimed rows (lease_owner), one per claim; completions must bring it back. */
  lease: string;
  limit: number;
  now: number;
  leaseMs: number;
  excludeHosts: string[];
  /**
   * At most this many rows per host in one claim (a worker cannot call more at once): without it a
   * host with a large backlog fills every batch, and all but its free slots are given back.
   */
  perHostLimit?: number;
  /** Hosts with callbacks in flight and how many more each may take now (below perHostLimit). */
  hostSlots?: Record<string, number>;
  /** At most this many rows per client in one claim: one client cannot take every slot. */
  perClientLimit?: number;
  /** Clients with callbacks in flight and how many more each may take now (below perClientLimit). */
  clientSlots?: Record<string, number>;
  /** Clients at their limit: their webhooks are left for later. */
  excludeClients?: string[];
  /** The worker (heartbeat row) the claim belongs to; its leases fall to others once its heartbeat is stale. */
  worker?: string;
  /** A worker whose heartbeat is older than this (database clock) has died (default 5000). */
  workerStaleMs?: number;
}

/** After this long without a heartbeat (database clock), a worker's claims fall to the others. */
export const DEFAULT_WORKER_STALE_MS = 5_000;

/** A delivering process, as its heartbeat row shows it. */
export interface WorkerRow {
  id: string;
  startedAt: number;
  heartbeatAt: number;
}

/** A polled upstream's cursor and leadership (Store.upstreamState). */
export interface UpstreamState {
  source: string;
  /** Start of the next search window (epoch ms); null before the first poll or import. */
  cursor: number | null;
  lastSuccessAt: number | null;
  lastError: string | null;
  lastErrorAt: number | null;
  /** The process that polls, while leaderUntil is in the future. */
  leader: string | null;
  leaderUntil: number | null;
  updatedAt: number;
}

export interface Store {
  readonly dialect: 'sqlite' | 'postgres';
  /** Applies pending migrations; returns the names of those applied now. */
  migrate(): Promise<string[]>;
  /** Names of migrations the code knows that the database has not applied. */
  pendingMigrations(): Promise<string[]>;
  ping(): Promise<void>;
  close(): Promise<void>;

  createClient(client: NewClient): Promise<ClientRow>;
  getClient(id: string): Promise<ClientRow | null>;
  listClients(): Promise<ClientRow[]>;
  /** Marks the client revoked and deletes its tokens; false when no such client. */
  revokeClient(id: string, now: number): Promise<boolean>;

  createToken(token: TokenRow): Promise<void>;
  /** The token and its client, if the hash is known. */
  findToken(tokenHash: string): Promise<{ token: TokenRow; client: ClientRow } | null>;

  getRecord(orcid: string): Promise<RecordRow | null>;
  /** Creates records that do not exist (modified = now); returns how many were new. */
  addRecords(orcids: string[], now: number): Promise<number>;
  listRecords(opts: { limit: number; afterOrcid?: string }): Promise<RecordRow[]>;
  countRecords(): Promise<number>;
  /**
   * Applies record changes in one transaction and marks the webhooks that now owe a notification:
   * only webhooks created no later than the change, coalesced with any notification already owed.
   */
  applyChanges(changes: RecordChange[], opts: ApplyChangesOptions): Promise<ApplyChangesResult>;

  /**
   * Registers a webhook for a client. An existing one answers 'exists'; if it was disabled it is
   * re-enabled, its failure count reset, and any notification it still owed becomes due now.
   * maxPerClient (when set) refuses a new webhook beyond the cap. A missing record answers
   * 'no-record', or with createRecord (open records mode) is created with the webhook, only when the
   * webhook is created.
   */
  registerWebhook(input: RegisterInput): Promise<RegisterResult>;
  /**
   * Re-enables a disabled webhook as registerWebhook does (failures reset; a notification it still
   * owed becomes due now); an enabled one is left as it is. null when there is no such webhook.
   */
  enableWebhook(id: number, now: number): Promise<{ webhook: WebhookRow; reenabled: boolean } | null>;
  deleteWebhook(clientId: string, orcid: string, url: string): Promise<boolean>;
  findWebhook(clientId: string, orcid: string, url: string): Promise<WebhookRow | null>;
  getWebhook(id: number): Promise<WebhookRow | null>;
  getWebhookByPublicId(publicId: string): Promise<WebhookRow | null>;
  listWebhooks(filter: WebhookFilter): Promise<WebhookRow[]>;
  countWebhooks(): Promise<WebhookCounts>;

  /** The client's delivery settings (defaults when never set); null when there is no such client. */
  getClientDeliverySettings(clientId: string): Promise<ClientDeliverySettings | null>;
  /**
   * Sets the client's signing secret; null removes signing altogether. With previousUntil, the
   * secret being replaced (if any) keeps signing until then (rotation); without, it is dropped.
   * false when there is no such client.
   */
  setSigningSecret(clientId: string, secret: string | null, opts: { previousUntil: number | null; now: number }): Promise<boolean>;
  /**
   * Re-encrypts every stored signing secret not sealed with the current secrets key (plain ones
   * from before encryption, or sealed with an older key), in one transaction; returns how many
   * clients' rows changed. 0 when the store has no secrets key.
   */
  resealSigningSecrets(): Promise<number>;
  /** false when there is no such client. */
  setPayloadMode(clientId: string, mode: PayloadMode, now: number): Promise<boolean>;
  /**
   * Owes the webhook one new notification (a new notify seq, so a new `webhook-id`), due now, even
   * if nothing changed: its record's modified time is reported again. A disabled webhook is
   * re-enabled (an explicit replay means "try again"); failures are reset. A callback in flight
   * finishes first and this one follows. null when there is no such webhook.
   */
  replayWebhook(id: number, now: number): Promise<ReplayResult | null>;
  /**
   * Replays (as replayWebhook) every webhook of the client disabled at or after `since`, or still
   * failing with a failure at or after it; returns how many.
   */
  recoverWebhooks(clientId: string, since: number, now: number): Promise<number>;

  /**
   * Claims up to `limit` enabled webhooks that are due, in one statement that stamps the lease.
   * Rows leased by a live owner are skipped; expired leases, and leases of a worker whose heartbeat
   * is stale, are taken over (reclaimed = true). The lease runs leaseMs from the database's clock;
   * `now` (the caller's clock) decides only what is due. Webhooks on hosts in excludeHosts, or of
   * clients in excludeClients, are left for later (at their limit).
   */
  claimDue(opts: ClaimOptions): Promise<Claim[]>;
  /** Creates the worker's row or stamps its heartbeat, with the database's clock. */
  heartbeat(worker: string): Promise<void>;
  /** Removes the worker's row (clean stop); also drops rows silent for an hour. */
  retireWorker(worker: string): Promise<void>;
  listWorkers(): Promise<WorkerRow[]>;
  /**
   * Expires at once every lease of these workers (dead ones), or with 'all-but', of every worker but
   * this one (a single-node store at start: nobody else holds claims); returns how many.
   */
  expireLeases(workers: string[] | { allBut: string }): Promise<number>;
  /** Gives claims back unattempted (due time unchanged). */
  releaseClaims(lease: string, webhookIds: number[]): Promise<void>;
  /** Records attempts and applies their outcomes in one transaction. */
  completeAttempts(attempts: AttemptRecord[]): Promise<void>;
  /** Earliest due time of an enabled webhook, or null; drives the worker's next wake-up. */
  nextDueAt(): Promise<number | null>;
  /**
   * Calls listener when notifications may have become due (record changes, re-enabled webhooks):
   * in-process for SQLite, LISTEN/NOTIFY across processes for PostgreSQL. Returns an unsubscribe.
   */
  subscribeWakeups(listener: () => void): Promise<() => Promise<void>>;
  listAttempts(webhookId: number, limit: number): Promise<AttemptRow[]>;
  /** Attempts at or after `since` aggregated per bucket of bucketMs, in SQL; only buckets with attempts. */
  attemptStats(since: number, bucketMs: number): Promise<AttemptBucket[]>;
  /** The oldest owed notification and the callbacks in flight (all processes). */
  deliveryBacklog(now: number): Promise<DeliveryBacklog>;
  /** Attempts since `since` with at least one failure, by receiving host and by client; the `limit` worst of each. */
  failureBreakdown(since: number, limit: number): Promise<{ byHost: FailureCount[]; byClient: FailureCount[] }>;
  /** Deletes attempts older than `before`; returns how many. */
  pruneAttempts(before: number): Promise<number>;

  /** The upstream source's cursor and leadership; null when it never ran. */
  upstreamState(source: string): Promise<UpstreamState | null>;
  /**
   * Takes or renews the leadership of an upstream source until now + leaseMs: true when the caller
   * now leads (nobody led, it led already, or the leader's lease ran out).
   */
  claimUpstreamLeadership(source: string, owner: string, now: number, leaseMs: number): Promise<boolean>;
  releaseUpstreamLeadership(source: string, owner: string): Promise<void>;
  /** Sets the cursor if the source has none yet; returns the cursor in force. */
  initUpstreamCursor(source: string, cursor: number, now: number): Promise<number>;
  /** The leader's progress (cursor never moves back; clears the last error); false when owner no longer leads. */
  saveUpstreamProgress(source: string, owner: string, cursor: number, now: number): Promise<boolean>;
  saveUpstreamError(source: string, owner: string, error: string, now: number): Promise<void>;
  /** Those of the iDs that have at least one enabled webhook. */
  watchedOrcids(orcids: string[]): Promise<string[]>;
}
