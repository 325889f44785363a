/**
 * Row mapping and SQL fragments shared by both stores (the column names and the state filters are
 * the same in SQLite and PostgreSQL).
 */
import { parseRecordedHeaders } from '../domain/attempt-headers.ts';
import type { AttemptRow, ClientRow, WebhookRow, WorkerRow } from './types.ts';

type Row = Record<string, unknown>;

export const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export function toClient(r: Row): ClientRow {
  return {
    id: String(r.id), name: String(r.name), secretHash: String(r.secret_hash), premium: Boolean(r.premium),
    createdAt: Number(r.created_at), revokedAt: num(r.revoked_at),
  };
}

export function toWebhook(r: Row): WebhookRow {
  return {
    id: Number(r.id), publicId: String(r.public_id), clientId: String(r.client_id), orcid: String(r.orcid), url: String(r.url), host: String(r.host),
    createdAt: Number(r.created_at), enabled: Boolean(r.enabled),
    disabledReason: (r.disabled_reason as string | null) ?? null, disabledAt: num(r.disabled_at),
    pendingSince: num(r.pending_since), dueAt: num(r.due_at), changeSeq: Number(r.change_seq), notifySeq: Number(r.notify_seq),
    failedAttempts: Number(r.failed_attempts), failingSince: num(r.failing_since), lastSentAt: num(r.last_sent_at), lastFailedAt: num(r.last_failed_at),
    lastStatus: (r.last_status as string | null) ?? null, leaseOwner: (r.lease_owner as string | null) ?? null,
    leaseUntil: num(r.lease_until),
  };
}

export function toWorker(r: Row): WorkerRow {
  return { id: String(r.id), startedAt: Number(r.started_at), heartbeatAt: Number(r.heartbeat_at) };
}

export function toAttempt(r: Row): AttemptRow {
  return {
    id: Number(r.id), webhookId: Number(r.webhook_id), notificationId: String(r.notification_id), at: Number(r.at),
    durationMs: Number(r.duration_ms), statusCode: num(r.status_code), error: (r.error as string | null) ?? null,
    responseSnippet: (r.response_snippet as string | null) ?? null, latencyMs: num(r.latency_ms),
    requestHeaders: parseRecordedHeaders(r.request_headers), responseHeaders: parseRecordedHeaders(r.response_headers),
  };
}

/** SQL fragment of the state filter; identical in both dialects. */
export const STATE_SQL = {
  enabled: 'enabled = 1',
  disabled: 'enabled = 0',
  failing: 'enabled = 1 AND failed_attempts > 0',
  pending: 'enabled = 1 AND due_at IS NOT NULL',
} as const;
