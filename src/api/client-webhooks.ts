import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { notificationId } from '../domain/notification-id.ts';
import { WEBHOOK_STATES } from '../domain/webhook-state.ts';
import { OrcidApiError, webhookNotFound } from '../domain/errors.ts';
import { checkOrcid } from '../domain/orcid-id.ts';
import { isWebhookPublicId } from '../domain/public-id.ts';
import type { Store, WebhookRow } from '../store/types.ts';
import type { Caller } from './auth.ts';
import { caller, pageLimit, pageOf, parseQuery, rawCallbackSegment, webhookPathParams } from './kit.ts';
import { CLIENT_AUTH_ERRORS, answer, orcidError } from './openapi.ts';
import { clientAttemptSchema, clientAttemptView, clientWebhookSchema, clientWebhookView } from './views.ts';

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

const RECENT_ATTEMPTS = 10;
const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;

const webhookDetailSchema = clientWebhookSchema.extend({
  recent_attempts: z.array(clientAttemptSchema).describe(`The ${RECENT_ATTEMPTS} most recent attempts, newest first`),
});

const listQuery = z.object({
  orcid: z.string().optional().describe('Only webhooks on this ORCID iD'),
  state: z.enum(WEBHOOK_STATES).optional()
    .describe('enabled (all enabled ones), disabled, failing (enabled, one or more consecutive failures), pending (enabled, a callback is owed)'),
  cursor: z.string().max(200).optional().describe('next_cursor of the previous page (opaque)'),
  limit: pageLimit(MAX_PAGE).optional().describe(`Page size, 1 to ${MAX_PAGE} (default ${DEFAULT_PAGE})`),
  access_token: z.string().optional().describe('The bearer token, for a client that cannot send an Authorization header (as ORCID accepts)'),
}).strict();

const listSchema = z.object({ webhooks: z.array(clientWebhookSchema), next_cursor: z.string().nullable() });
const replaySchema = z.object({
  notification_id: z.string().describe('The webhook-id the replayed callback carries'),
  reenabled: z.boolean().describe('The webhook was disabled and is enabled again'),
  webhook: clientWebhookSchema,
});

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

const CLIENT = { tags: ['Client'], security: [{ bearer: [] }] };
const notFound = { 404: orcidError('This client has no such webhook (9028)') };
const badRequest = { 400: orcidError('Invalid iD (9001) or callback encoding (9012)') };

export function clientWebhookRoutes(app: FastifyInstance, deps: ClientWebhookRouteDeps): void {
  async function ownWebhook(req: FastifyRequest): Promise<WebhookRow> {
    const c = await caller(deps, req);
    const t = lookupTarget(req);
    const w = await deps.store.findWebhook(c.client.id, t.orcid, t.url);
    if (!w) throw webhookNotFound(t.orcid, t.url);
    return w;
  }

  app.get('/:orcid/webhook/*', {
    schema: {
      ...CLIENT, operationId: 'getOwnWebhook', params: webhookPathParams,
      summary: 'The state of one of your webhooks, with its most recent delivery attempts',
      response: { 200: answer('The webhook', webhookDetailSchema), ...badRequest, ...CLIENT_AUTH_ERRORS, ...notFound },
    },
  }, async function getWebhook(req) {
    const w = await ownWebhook(req);
    const attempts = await deps.store.listAttempts(w.id, RECENT_ATTEMPTS);
    return { ...clientWebhookView(w), recent_attempts: attempts.map(clientAttemptView) } satisfies z.infer<typeof webhookDetailSchema>;
  });

  app.post('/:orcid/webhook/*', {
    schema: {
      ...CLIENT, operationId: 'replayOwnWebhook', params: webhookPathParams,
      summary: 'Send the webhook\'s notification again now (a new webhook-id); re-enables a disabled webhook',
      response: { 202: answer('Owed now; the worker calls it at once', replaySchema), ...badRequest, ...CLIENT_AUTH_ERRORS, ...notFound },
    },
  }, async function replayWebhook(req, reply) {
    const w = await ownWebhook(req);
    const r = await deps.store.replayWebhook(w.id, deps.now());
    // Deleted between the two statements: as if it had never been there.
    if (!r) throw webhookNotFound(w.orcid, w.url);
    return reply.code(202).send({ notification_id: notificationId(r.webhook), reenabled: r.reenabled, webhook: clientWebhookView(r.webhook) } satisfies z.infer<typeof replaySchema>);
  });

  /** The cursor names the previous page's last webhook, one of the caller's own (opaque to clients: it may change). */
  async function decodeCursor(cursor: string, clientId: string): Promise<number> {
    const w = isWebhookPublicId(cursor) ? await deps.store.getWebhookByPublicId(cursor) : null;
    if (!w || w.clientId !== clientId) throw new OrcidApiError(9052, `cursor: "${cursor.slice(0, 80)}" is not a cursor this server gave you, or its webhook was deleted; pass next_cursor from the previous page unchanged, or start again`);
    return w.id;
  }

  app.get('/webhooks', {
    schema: {
      ...CLIENT, operationId: 'listOwnWebhooks', querystring: listQuery,
      summary: 'Your webhooks, oldest first, filtered by iD and state, a page at a time',
      response: {
        200: answer('A page; next_cursor is null on the last one', listSchema),
        400: orcidError('Invalid iD (9001) or query parameter (9052)'),
        ...CLIENT_AUTH_ERRORS,
      },
    },
  }, async function listWebhooks(req) {
    const c = await caller(deps, req);
    const q = parseQuery(listQuery, req.query);
    const limit = q.limit ?? DEFAULT_PAGE;
    const rows = await deps.store.listWebhooks({
      clientId: c.client.id, limit: limit + 1,
      ...(q.orcid !== undefined && { orcid: q.orcid }),
      ...(q.state !== undefined && { state: q.state }),
      ...(q.cursor !== undefined && { afterId: await decodeCursor(q.cursor, c.client.id) }),
    });
    const { page, next } = pageOf(rows, limit, (w) => w.publicId);
    return { webhooks: page.map(clientWebhookView), next_cursor: next } satisfies z.infer<typeof listSchema>;
  });
}
