import { z } from 'zod';
import type { RecordedHeaders } from '../domain/attempt-headers.ts';
import { dashboardStateOf, WEBHOOK_STATES, webhookStateOf } from '../domain/webhook-state.ts';
import type { AttemptRow, ClientRow, RecordRow, WebhookRow } from '../store/types.ts';
import { iso } from './kit.ts';

/**
 * What the API shows of a webhook, an attempt and a record: one function reads a webhook's facts,
 * and each audience gets its variant of them (the client API in snake_case, like ORCID's token
 * answer; the admin API, and the dashboard behind it, in camelCase with the client and the host).
 * Explicit fields only: never lease internals or secrets.
 */

/** Every webhook view is made of these. */
function webhookFacts(w: WebhookRow) {
  return {
    id: w.publicId, orcid: w.orcid, url: w.url, enabled: w.enabled, disabledReason: w.disabledReason,
    disabledAt: iso(w.disabledAt), createdAt: iso(w.createdAt), lastSentAt: iso(w.lastSentAt), lastFailedAt: iso(w.lastFailedAt),
    lastStatus: w.lastStatus, failedAttempts: w.failedAttempts, dueAt: iso(w.dueAt),
  };
}

// --- The client API's variant ------------------------------------------------------------------

export const clientWebhookSchema = z.object({
  id: z.string().describe('wh_ and 32 hexadecimal digits (random)'),
  orcid: z.string(),
  callback: z.string().describe('The callback URL as registered'),
  state: z.enum(WEBHOOK_STATES).describe('disabled; failing (retrying after failures); pending (a callback is owed); enabled (nothing owed)'),
  enabled: z.boolean(),
  disabled_reason: z.string().nullable(),
  disabled_at: z.string().nullable(),
  created_at: z.string(),
  last_sent_at: z.string().nullable().describe('Last successful callback'),
  last_failed_at: z.string().nullable(),
  last_status: z.string().nullable().describe('Status code or error of the last attempt'),
  consecutive_failures: z.number().int(),
  next_attempt_at: z.string().nullable().describe('When the owed callback is due; null when nothing is owed or the webhook is disabled'),
}).meta({ id: 'ClientWebhook', description: 'A webhook as the client API shows it to the client that registered it' });

export function clientWebhookView(w: WebhookRow): z.infer<typeof clientWebhookSchema> {
  const f = webhookFacts(w);
  return {
    id: f.id, orcid: f.orcid, callback: f.url, state: webhookStateOf(w), enabled: f.enabled,
    disabled_reason: f.disabledReason, disabled_at: f.disabledAt, created_at: f.createdAt,
    last_sent_at: f.lastSentAt, last_failed_at: f.lastFailedAt, last_status: f.lastStatus,
    consecutive_failures: f.failedAttempts, next_attempt_at: f.enabled ? f.dueAt : null,
  };
}

export const clientAttemptSchema = z.object({
  at: z.string().describe('When the attempt started'),
  notification_id: z.string().describe('The webhook-id header it carried'),
  status_code: z.number().int().nullable().describe('The HTTP status answered; null when there was no answer'),
  error: z.string().nullable().describe('Why there was no answer: timeout, network, refused (by the SSRF policy)…'),
  duration_ms: z.number().int(),
}).meta({ id: 'ClientAttempt', description: 'A delivery attempt as the client API shows it' });

export function clientAttemptView(a: AttemptRow): z.infer<typeof clientAttemptSchema> {
  return { at: iso(a.at), notification_id: a.notificationId, status_code: a.statusCode, error: a.error, duration_ms: a.durationMs };
}

// --- The admin API's variant -------------------------------------------------------------------

export const adminWebhookSchema = z.object({
  id: z.string().describe('wh_ and 32 hexadecimal digits (random)'), orcid: z.string(), url: z.string(), host: z.string(),
  client: z.object({ id: z.string(), name: z.string().nullable() }),
  state: z.enum(['ok', 'pending', 'failing', 'disabled']).describe('ok (enabled, nothing owed), pending (owes a callback, no failure yet), failing (in backoff after failures), disabled'),
  enabled: z.boolean(), disabledReason: z.string().nullable(), disabled: z.string().nullable(), created: z.string(),
  pendingSince: z.string().nullable(), due: z.string().nullable(), failedAttempts: z.number().int(),
  lastAttempt: z.string().nullable().describe('The last attempt, successful or not'),
  lastSuccess: z.string().nullable().describe('The last attempt answered 2xx'),
  lastFailed: z.string().nullable(), lastStatus: z.string().nullable().describe('Status code or error of the last attempt'),
}).meta({ id: 'AdminWebhook', description: 'A webhook as the admin API and the dashboard show it' });

/** Every attempt either succeeds (last_sent_at) or fails (last_failed_at): the later one is the last attempt. */
function lastAttemptAt(w: WebhookRow): number | null {
  if (w.lastSentAt === null) return w.lastFailedAt;
  return w.lastFailedAt === null ? w.lastSentAt : Math.max(w.lastSentAt, w.lastFailedAt);
}

export function adminWebhookView(w: WebhookRow, client: ClientRow | null | undefined): z.infer<typeof adminWebhookSchema> {
  const f = webhookFacts(w);
  return {
    id: f.id, orcid: f.orcid, url: f.url, host: w.host,
    client: { id: w.clientId, name: client?.name ?? null },
    state: dashboardStateOf(w), enabled: f.enabled, disabledReason: f.disabledReason, disabled: f.disabledAt,
    created: f.createdAt, pendingSince: iso(w.pendingSince), due: f.dueAt, failedAttempts: f.failedAttempts,
    lastAttempt: iso(lastAttemptAt(w)), lastSuccess: f.lastSentAt, lastFailed: f.lastFailedAt, lastStatus: f.lastStatus,
  };
}

const headersSchema = z.record(z.string(), z.string()).nullable()
  .describe('Lower-cased names; at most 40 headers of 256 characters, secrets (webhook-signature, authorization, cookies) redacted; null when not kept or no answer');
export const adminAttemptSchema = z.object({
  id: z.number().int(), notificationId: z.string(), at: z.string(), durationMs: z.number().int(),
  statusCode: z.number().int().nullable(), error: z.string().nullable(), responseSnippet: z.string().nullable(),
  latencyMs: z.number().int().nullable(), ok: z.boolean(),
  requestHeaders: headersSchema, responseHeaders: headersSchema,
}).meta({ id: 'AdminAttempt', description: 'A delivery attempt as the admin API shows it, with the headers kept' });

export function adminAttemptView(a: AttemptRow): z.infer<typeof adminAttemptSchema> {
  return {
    id: a.id, notificationId: a.notificationId, at: iso(a.at), durationMs: a.durationMs, statusCode: a.statusCode,
    error: a.error, responseSnippet: a.responseSnippet, latencyMs: a.latencyMs,
    ok: a.statusCode !== null && a.statusCode >= 200 && a.statusCode < 300,
    requestHeaders: a.requestHeaders satisfies RecordedHeaders | null, responseHeaders: a.responseHeaders,
  };
}

export const recordSchema = z.object({ orcid: z.string(), modified: z.string(), created: z.string() }).meta({ id: 'Record' });

export function recordView(r: RecordRow): z.infer<typeof recordSchema> {
  return { orcid: r.orcid, modified: iso(r.modifiedAt), created: iso(r.createdAt) };
}
