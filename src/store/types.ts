import type { RecordedHeaders } from '../domain/attempt-headers.ts';
import type { WebhookStateName } from '../domain/webhook-state.ts';
import type { SqlStore } from './sql-store.ts';

/* The rows and options of the Store's operations; all times are epoch milliseconds. */

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
  /** changeSeq at which the pending notification began: names it (`webhook-id`) across retries, until a change lands after a failed attempt (OWED_NOTIFICATION_SENT). */
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

export type NewClient = Omit<ClientRow, 'revokedAt'>;

/** Store.registerWebhook's input. */
export interface NewWebhook {
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
  /** Report each change's own outcome (ApplyChangesResult.changes), e.g. to answer the callers of a group commit. */
  perChange?: boolean;
}

/** What one change of a batch did, judged against what the changes before it in the batch left. */
export interface ChangeOutcome {
  outcome: 'created' | 'changed' | 'ignored';
  /** The record's modified time after this change (the current one when ignored); null when ignored because the record does not exist (create: false). */
  modifiedAt: number | null;
  /** Webhooks that now owe a notification because of this change (or owe one more). */
  webhooksNotified: number;
}

export interface ApplyChangesResult {
  created: number;
  changed: number;
  /** Changes not newer than the record's current modified time. */
  ignored: number;
  /** Webhooks that now owe a notification (or owe one more). */
  webhooksNotified: number;
  /** With perChange: each change's outcome, in the order given (the counts above are their sums). */
  changes?: ChangeOutcome[];
}

export type RegisterResult =
  | { outcome: 'created'; webhook: WebhookRow }
  | { outcome: 'exists'; webhook: WebhookRow; reenabled: boolean }
  | { outcome: 'limit' }
  | { outcome: 'no-record' };

export interface WebhookFilter {
  clientId?: string;
  orcid?: string;
  /** See src/domain/webhook-state.ts. */
  state?: WebhookStateName;
  /** Free text matched against iD, URL and client id. */
  search?: string;
  /** Exactly this (lower-cased) host, as the webhooks' `host` column and the failures by host name it. */
  host?: string;
  /** Return webhooks with id greater than this (cursor pagination). */
  afterId?: number;
  limit: number;
}

/**
 * What a worker needs of a claimed webhook to call it and record the outcome, and the lease token
 * it now holds. Not the whole row: RETURNING * with the row's 23 columns was ~40 % of a claim's
 * time on SQLite (issue 12).
 */
export type ClaimedWebhook = Pick<WebhookRow,
  'id' | 'publicId' | 'clientId' | 'orcid' | 'url' | 'host' | 'pendingSince' | 'dueAt' | 'changeSeq' | 'notifySeq' | 'failedAttempts' | 'failingSince' | 'lease'>;

/** One webhook handed to a worker, with the lease it now holds. */
export interface Claim {
  webhook: ClaimedWebhook;
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
  /**
   * For a success during which the webhook was replayed: when the replay is due (at once: the
   * notify delay lets changes settle, a replay follows the callback in flight). Absent: nextDueAt.
   */
  replayDueAt?: number;
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
  /** The public id of the webhook that owes it; null when none is owed. */
  oldestOwedWebhook: string | null;
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

/** Store.replayWebhook and Store.enableWebhook. */
export interface ReplayResult {
  webhook: WebhookRow;
  /** The webhook was disabled and this enabled it again. */
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

/**
 * The narrow seam between the service and its database: the public operations of SqlStore, where
 * each is documented once. The same behaviour suite (test/store.test.ts) runs against every driver.
 */
export type Store = Pick<SqlStore, keyof SqlStore>;
