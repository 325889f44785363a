import type { FastifyInstance, FastifyRequest } from 'fastify';
import { validateCallbackUrl } from '../domain/callback-url.ts';
import { OrcidApiError } from '../domain/errors.ts';
import { checkOrcid } from '../domain/orcid-id.ts';
import type { TargetPolicy } from '../domain/ssrf.ts';
import type { Store } from '../store/types.ts';
import { authenticate, requireWebhookScope, type Caller } from './auth.ts';
import { describeOperation, oauthErrorSchema, orcidErrorSchema } from './openapi.ts';

export const PATH = '/{orcid}/webhook/{callback}';
export const PATH_PARAMS = {
  orcid: 'ORCID iD, e.g. 0000-0002-7465-2162 (format and MOD 11-2 check character are validated)',
  callback: 'The callback URL, URL-encoded into this one segment (slashes as %2F)',
};
export const AUTH_ERRORS = {
  401: { description: 'invalid_token: missing, unknown or expired token, or revoked client', schema: oauthErrorSchema },
  403: { description: 'The token lacks the /webhook scope (error-code 9038)', schema: orcidErrorSchema },
  429: { description: 'Rate limited (error-code 9051), with Retry-After', schema: orcidErrorSchema },
};

export interface WebhookRouteDeps {
  store: Store;
  policy: TargetPolicy;
  records: 'strict' | 'open';
  baseUrl: string | null;
  maxWebhooksPerClient: number;
  now: () => number;
  /** Called after each registration and deletion (metrics). */
  onRegistered?: (outcome: 'created' | 'exists' | 'deleted') => void;
  /** Runs before the request is handled (rate limiting): may throw an OrcidApiError. */
  beforeHandle?: (caller: Caller) => void;
}

export interface WebhookTarget {
  orcid: string;
  /** The callback URL exactly as registered (decoded once from the path segment). */
  url: string;
  host: string;
}

/**
 * The callback arrives URL-encoded in one path segment, `%2F` included: take the raw text after
 * `/webhook/` and decode it exactly once, as ORCID does.
 */
export function rawCallbackSegment(rawUrl: string): string {
  const path = rawUrl.split('?')[0]!;
  const i = path.indexOf('/webhook/');
  return i < 0 ? '' : path.slice(i + '/webhook/'.length);
}

export function parseTarget(req: FastifyRequest, deps: Pick<WebhookRouteDeps, 'policy'>): WebhookTarget {
  const orcid = (req.params as { orcid: string }).orcid;
  const check = checkOrcid(orcid);
  if (!check.ok) throw new OrcidApiError(9001, `Invalid ORCID iD: ${check.reason}`);
  const raw = rawCallbackSegment(req.raw.url ?? '');
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    throw new OrcidApiError(9012, `Webhook uri: ${raw} is syntactically incorrect: it is not a valid URL-encoded string`);
  }
  if (!decoded) throw new OrcidApiError(9012, 'Webhook uri is missing: URL-encode the callback URL into the path, as in /0000-0002-7465-2162/webhook/https%3A%2F%2Fexample.org%2Fupdated');
  const v = validateCallbackUrl(decoded, deps.policy);
  if (!v.ok) throw new OrcidApiError(9012, v.reason);
  return { orcid, url: v.url, host: v.host };
}

/** The webhook's own URL: the request path exactly as sent, as ORCID answers (Response.created). */
function location(req: FastifyRequest, baseUrl: string | null): string {
  const base = baseUrl ?? `${req.protocol}://${req.host}`;
  return `${base}${(req.raw.url ?? '').split('?')[0]}`;
}

export function orcidWebhookRoutes(app: FastifyInstance, deps: WebhookRouteDeps): void {
  describeOperation({
    method: 'put', path: PATH, tag: 'ORCID API', pathParams: PATH_PARAMS,
    summary: 'Register a webhook (ORCID-compatible); a disabled one is re-enabled',
    responses: {
      201: { description: 'Registered; Location is the webhook\'s absolute URL' },
      204: { description: 'This client already had it (re-enabled if it was disabled)' },
      400: { description: 'Invalid iD (9001) or callback URL (9012)', schema: orcidErrorSchema },
      ...AUTH_ERRORS,
      404: { description: 'No such record (9011)', schema: orcidErrorSchema },
    },
  });
  describeOperation({
    method: 'delete', path: PATH, tag: 'ORCID API', pathParams: PATH_PARAMS,
    summary: 'Unregister a webhook (ORCID-compatible)',
    responses: {
      204: { description: 'Unregistered' },
      400: { description: 'Invalid iD (9001) or callback URL (9012)', schema: orcidErrorSchema },
      ...AUTH_ERRORS,
      404: { description: 'This client has no such webhook (9028)', schema: orcidErrorSchema },
    },
  });

  async function caller(req: FastifyRequest): Promise<Caller> {
    const c = await authenticate(deps.store, req, deps.now());
    requireWebhookScope(c);
    deps.beforeHandle?.(c);
    return c;
  }

  app.route({
    method: ['PATCH', 'OPTIONS'], url: '/:orcid/webhook/*',
    handler: async function webhookMethodNotAllowed(req) {
      throw new OrcidApiError(9054, `${req.method} is not supported here: use PUT to register, DELETE to unregister, GET to read a webhook`, { headers: { allow: 'GET, PUT, POST, DELETE' } });
    },
  });

  app.put('/:orcid/webhook/*', async function registerWebhook(req, reply) {
    const c = await caller(req);
    const t = parseTarget(req, deps);
    const target = await deps.policy.checkRegistration(t.url);
    if (!target.allowed) throw new OrcidApiError(9012, `Webhook uri: ${t.url.length > 200 ? `${t.url.slice(0, 200)}…` : t.url} is not allowed: ${target.reason}`);
    const known = (await deps.store.getRecord(t.orcid)) !== null;
    if (!known && deps.records === 'strict') throw new OrcidApiError(9011, `No record found for ORCID iD ${t.orcid}`);
    // Open mode: the record is created with the webhook, so a refused registration writes nothing.
    const res = await deps.store.registerWebhook({
      clientId: c.client.id, orcid: t.orcid, url: t.url, host: t.host, now: deps.now(), maxPerClient: deps.maxWebhooksPerClient,
      createRecord: !known,
    });
    if (res.outcome === 'limit') {
      throw new OrcidApiError(9050, `Client ${c.client.id} already has the maximum of ${deps.maxWebhooksPerClient} webhooks; delete some first`);
    }
    deps.onRegistered?.(res.outcome);
    if (res.outcome === 'exists') return reply.code(204).send();
    return reply.code(201).header('location', location(req, deps.baseUrl)).send();
  });

  app.delete('/:orcid/webhook/*', async function unregisterWebhook(req, reply) {
    const c = await caller(req);
    const t = parseTarget(req, deps);
    // Another client's webhook is simply not found: no answer reveals other clients' webhooks.
    const deleted = await deps.store.deleteWebhook(c.client.id, t.orcid, t.url);
    if (!deleted) throw new OrcidApiError(9028, `No webhook found for orcid=${t.orcid}, and uri=${t.url}`);
    deps.onRegistered?.('deleted');
    return reply.code(204).send();
  });
}
