import { WEBHOOK_STATES, webhookStateOf } from '../domain/webhook-state.ts';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { notificationId } from '../delivery/worker.ts';
import { OrcidApiError, webhookNotFound } from '../domain/errors.ts';
import { checkOrcid } from '../domain/orcid-id.ts';
import { isWebhookPublicId } from '../domain/public-id.ts';
import type { AttemptRow, Store, WebhookRow } from '../store/types.ts';
import { invalid } from './admin.ts';
import { authenticate, requireWebhookScope, type Caller } from './auth.ts';
import { describeOperation, orcidErrorSchema } from './openapi.ts';
import { AUTH_ERRORS, PATH, PATH_PARAMS, rawCallbackSegment } from './orcid-webhooks.ts';

/**
 * Beyond ORCID: a client can see its own webhooks (one, or a filtered page of them) and ask for a
 * notification to be sent again. Answers are JSON in snake_case, like ORCID's token answer; errors
 * are ORCID's. Another client's webhook is simply not found (404 / 9028), as on DELETE.
 */
export interface ClientWebhookRouteDeps {
  store: Store;
  now: () => number;
  /** Runs before the request is handled (rate limiting): may throw an OrcidApiError. */
  beforeHandle?: (caller: Caller) => void;
}

export const CLIENT_WEBHOOK_STATES = WEBHOOK_STATES;
export const RECENT_ATTEMPTS = 10;
const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

const attemptSchema = z.object({
  at: z.string().describe('When the attempt started'),
  notification_id: z.string().describe('The webhook-id header it carried'),
  status_code: z.number().int().nullable().describe('The HTTP status answered; null when there was no answer'),
  error: z.string().nullable().describe('Why there was no answer: timeout, network, refused (by the SSRF policy)…'),
  duration_ms: z.number().int(),
});

export const webhookStatusSchema = z.object({
  id: z.string().describe('wh_ and 32 hexadecimal digits (random)'),
  orcid: z.string(),
  callback: z.string().describe('The callback URL as registered'),
  state: z.enum(CLIENT_WEBHOOK_STATES).describe('disabled; failing (retrying after failures); pending (a callback is owed); enabled (nothing owed)'),
  enabled: z.boolean(),
  disabled_reason: z.string().nullable(),
  disabled_at: z.string().nullable(),
  created_at: z.string(),
  last_sent_at: z.string().nullable().describe('Last successful callback'),
  last_failed_at: z.string().nullable(),
  last_status: z.string().nullable().describe('Status code or error of the last attempt'),
  consecutive_failures: z.number().int(),
  next_attempt_at: z.string().nullable().describe('When the owed callback is due; null when nothing is owed or the webhook is disabled'),
});
export const webhookDetailSchema = webhookStatusSchema.extend({
  recent_attempts: z.array(attemptSchema).describe(`The ${RECENT_ATTEMPTS} most recent attempts, newest first`),
});

export const listQuery = z.object({
  orcid: z.string().optional().describe('Only webhooks on this ORCID iD'),
  state: z.enum(CLIENT_WEBHOOK_STATES).optional()
    .describe('enabled (all enabled ones), disabled, failing (enabled, one or more consecutive failures), pending (enabled, a callback is owed)'),
  cursor: z.string().max(200).optional().describe('next_cursor of the previous page (opaque)'),
  limit: z.string().regex(/^\d+$/, 'must be a whole number').transform(Number).pipe(z.number().int().min(1).max(MAX_PAGE)).optional()
    .describe(`Page size, 1 to ${MAX_PAGE} (default ${DEFAULT_PAGE})`),
}).strict();

const listSchema = z.object({ webhooks: z.array(webhookStatusSchema), next_cursor: z.string().nullable() });
const replaySchema = z.object({
  notification_id: z.string().describe('The webhook-id the replayed callback carries'),
  reenabled: z.boolean().describe('The webhook was disabled and is enabled again'),
  webhook: webhookStatusSchema,
});

export const clientWebhookState = webhookStateOf;

export function webhookStatus(w: WebhookRow): z.infer<typeof webhookStatusSchema> {
  return {
    id: w.publicId, orcid: w.orcid, callback: w.url, state: clientWebhookState(w), enabled: w.enabled,
    disabled_reason: w.disabledReason, disabled_at: iso(w.disabledAt), created_at: iso(w.createdAt)!,
    last_sent_at: iso(w.lastSentAt), last_failed_at: iso(w.lastFailedAt), last_status: w.lastStatus,
    consecutive_failures: w.failedAttempts, next_attempt_at: w.enabled ? iso(w.dueAt) : null,
  };
}

function attemptView(a: AttemptRow): z.infer<typeof attemptSchema> {
  return { at: iso(a.at)!, notification_id: a.notificationId, status_code: a.statusCode, error: a.error, duration_ms: a.durationMs };
}

/** Cursors are opaque to clients: today the public id of the page's last webhook, which may change. */
export function encodeCursor(last: WebhookRow): string {
  return last.publicId;
}

/** The iD and the callback (decoded once) to look up; unlike PUT, no policy check: any stored webhook can be seen. */
function lookupTarget(req: FastifyRequest): { orcid: string; url: string } {
  const orcid = (req.params as { orcid: string }).orcid;
  const check = checkOrcid(orcid);
  if (!check.ok) throw new OrcidApiError(9001, `Invalid ORCID iD: ${check.reason}`);
  const raw = rawCallbackSegment(req.raw.url ?? '');
  try {
    const url = decodeURIComponent(raw);
    if (url) return { orcid, url };
  } catch {
    // reported below
  }
  throw new OrcidApiError(9012, `Webhook uri: ${raw.slice(0, 200)} is not a URL-encoded callback URL`);
}

/** Query parameters sent empty (`?state=&cursor=`) mean "not given". */
function givenQuery(q: unknown): Record<string, unknown> {
  return Object.fromEntries(Object.entries((q ?? {}) as Record<string, unknown>).filter(([, v]) => v !== ''));
}

export function clientWebhookRoutes(app: FastifyInstance, deps: ClientWebhookRouteDeps): void {
  const notFound = { 404: { description: 'This client has no such webhook (9028)', schema: orcidErrorSchema } };
  const badRequest = { 400: { description: 'Invalid iD (9001) or callback encoding (9012)', schema: orcidErrorSchema } };
  describeOperation({
    method: 'get', path: PATH, tag: 'Client', pathParams: PATH_PARAMS,
    summary: 'The state of one of your webhooks, with its most recent delivery attempts',
    responses: { 200: { description: 'The webhook', schema: webhookDetailSchema }, ...badRequest, ...AUTH_ERRORS, ...notFound },
  });
  describeOperation({
    method: 'post', path: PATH, tag: 'Client', pathParams: PATH_PARAMS,
    summary: 'Send the webhook\'s notification again now (a new webhook-id); re-enables a disabled webhook',
    responses: { 202: { description: 'Owed now; the worker calls it at once', schema: replaySchema }, ...badRequest, ...AUTH_ERRORS, ...notFound },
  });
  describeOperation({
    method: 'get', path: '/webhooks', tag: 'Client', query: listQuery,
    summary: 'Your webhooks, oldest first, filtered by iD and state, a page at a time',
    responses: {
      200: { description: 'A page; next_cursor is null on the last one', schema: listSchema },
      400: { description: 'Invalid iD (9001) or query parameter (9052)', schema: orcidErrorSchema },
      ...AUTH_ERRORS,
    },
  });

  async function caller(req: FastifyRequest): Promise<Caller> {
    const c = await authenticate(deps.store, req, deps.now());
    requireWebhookScope(c);
    deps.beforeHandle?.(c);
    return c;
  }

  async function ownWebhook(req: FastifyRequest): Promise<WebhookRow> {
    const c = await caller(req);
    const t = lookupTarget(req);
    const w = await deps.store.findWebhook(c.client.id, t.orcid, t.url);
    if (!w) throw webhookNotFound(t.orcid, t.url);
    return w;
  }

  app.get('/:orcid/webhook/*', async function getWebhook(req) {
    const w = await ownWebhook(req);
    const attempts = await deps.store.listAttempts(w.id, RECENT_ATTEMPTS);
    return { ...webhookStatus(w), recent_attempts: attempts.map(attemptView) } satisfies z.infer<typeof webhookDetailSchema>;
  });

  app.post('/:orcid/webhook/*', async function replayWebhook(req, reply) {
    const w = await ownWebhook(req);
    const r = await deps.store.replayWebhook(w.id, deps.now());
    // Deleted between the two statements: as if it had never been there.
    if (!r) throw webhookNotFound(w.orcid, w.url);
    return reply.code(202).send({ notification_id: notificationId(r.webhook), reenabled: r.reenabled, webhook: webhookStatus(r.webhook) } satisfies z.infer<typeof replaySchema>);
  });

  /** The cursor names the previous page's last webhook, one of the caller's own. */
  async function decodeCursor(cursor: string, clientId: string): Promise<number> {
    const w = isWebhookPublicId(cursor) ? await deps.store.getWebhookByPublicId(cursor) : null;
    if (!w || w.clientId !== clientId) throw new OrcidApiError(9052, `cursor: "${cursor.slice(0, 80)}" is not a cursor this server gave you, or its webhook was deleted; pass next_cursor from the previous page unchanged, or start again`);
    return w.id;
  }

  app.get('/webhooks', async function listWebhooks(req) {
    const c = await caller(req);
    const parsed = listQuery.safeParse(givenQuery(req.query));
    if (!parsed.success) throw invalid(parsed.error);
    const q = parsed.data;
    if (q.orcid !== undefined) {
      const check = checkOrcid(q.orcid);
      if (!check.ok) throw new OrcidApiError(9001, `orcid: ${check.reason}`);
    }
    const limit = q.limit ?? DEFAULT_PAGE;
    const rows = await deps.store.listWebhooks({
      clientId: c.client.id, limit: limit + 1,
      ...(q.orcid !== undefined && { orcid: q.orcid }),
      ...(q.state !== undefined && { state: q.state }),
      ...(q.cursor !== undefined && { afterId: await decodeCursor(q.cursor, c.client.id) }),
    });
    const page = rows.slice(0, limit);
    return {
      webhooks: page.map(webhookStatus),
      next_cursor: rows.length > limit ? encodeCursor(page[page.length - 1]!) : null,
    } satisfies z.infer<typeof listSchema>;
  });
}
