import type { FastifyInstance, FastifyRequest } from 'fastify';
import { deliveryUrl, validateCallbackUrl } from '../domain/callback-url.ts';
import { OrcidApiError, incorrectWebhookUri, jaxRsError, recordNotFound, webhookNotFound } from '../domain/errors.ts';
import { checkOrcid } from '../domain/orcid-id.ts';
import type { TargetPolicy } from '../domain/ssrf.ts';
import type { Store } from '../store/types.ts';
import { authenticate, requireWebhookScope, type Caller } from './auth.ts';
import { ORCID_JSON_TYPES, ORCID_XML_TYPES, orcidErrorType } from './errors.ts';
import { describeOperation, oauthErrorSchema, orcidErrorSchema } from './openapi.ts';

export const PATH = '/{orcid}/webhook/{callback}';
export const PATH_PARAMS = {
  orcid: 'ORCID iD, e.g. 0000-0002-7465-2162 (format and MOD 11-2 check character are validated, except with --compat orcid)',
  callback: 'The callback URL, URL-encoded into this one segment (slashes as %2F)',
};
export const AUTH_ERRORS = {
  401: { description: 'invalid_token: unknown or expired token, or revoked client; or a non-premium client (error-code 9017)', schema: oauthErrorSchema },
  403: { description: 'forbidden: no token at all; or the token lacks the /webhook scope (error-code 9038)', schema: orcidErrorSchema },
  429: { description: 'Rate limited (error-code 9051), with Retry-After', schema: orcidErrorSchema },
};

export interface WebhookRouteDeps {
  store: Store;
  policy: TargetPolicy;
  records: 'strict' | 'open' | 'upstream';
  /** `--compat orcid`: ORCID's own leniency where safe (no iD check digit; scheme-less callbacks called as http://). */
  compat?: 'none' | 'orcid';
  /** `--records upstream`: asks the upstream registry about an iD never seen (src/upstream/record-check.ts). */
  recordExists?: (orcid: string) => Promise<boolean>;
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

/**
 * The `{webhook_uri}` of ORCID's `@Path("/{orcid}/webhook/{webhook_uri}")`: one non-empty segment,
 * optionally followed by one `/` (Jersey matches a trailing slash). Anything else matches no route
 * there: Jersey's 404, which ORCID answers as 9001 (a callback sent with raw slashes lands here).
 */
export function callbackSegment(req: FastifyRequest): string {
  const raw = rawCallbackSegment(req.raw.url ?? '');
  const segment = raw.endsWith('/') ? raw.slice(0, -1) : raw;
  if (segment === '' || segment.includes('/')) throw jaxRsError(404);
  return segment;
}

/** Decoded once, as JAX-RS decodes a @PathParam. */
function decodeCallback(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw incorrectWebhookUri(segment);
  }
}

/** WebhooksService @Consumes: ORCID's XML and JSON media types, or no Content-Type at all; else Jersey's 415. */
function checkMediaTypes(req: FastifyRequest): void {
  const contentType = req.headers['content-type'];
  if (contentType !== undefined) {
    const type = contentType.split(';')[0]!.trim().toLowerCase();
    if (![...ORCID_XML_TYPES, ...ORCID_JSON_TYPES].includes(type as never)) throw jaxRsError(415);
  }
  // @Produces: an Accept that takes none of ORCID's types is Jersey's 406.
  if (orcidErrorType(req) === null) throw jaxRsError(406);
}

/** PUT's callback check: ORCID's `new java.net.URI(uri)`, then ours (scheme, host, credentials, address policy). */
export function checkCallback(uri: string, deps: Pick<WebhookRouteDeps, 'policy' | 'compat'>): { url: string; host: string } {
  const v = validateCallbackUrl(uri, deps.policy, { compat: deps.compat === 'orcid' });
  if (!v.ok) throw new OrcidApiError(9012, v.reason);
  return { url: v.url, host: v.host };
}

/** The webhook's own URL: the request path exactly as sent, without its query (ORCID: Response.created(uriInfo.getAbsolutePath())). */
function location(req: FastifyRequest, baseUrl: string | null): string {
  const base = baseUrl ?? `${req.protocol}://${req.host}`;
  return `${base}${(req.raw.url ?? '').split('?')[0]}`;
}

const ALLOW = 'DELETE, GET, HEAD, OPTIONS, POST, PUT';

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
      415: { description: 'Content-Type is not one of ORCID\'s XML or JSON types (9001)', schema: orcidErrorSchema },
    },
  });
  describeOperation({
    method: 'delete', path: PATH, tag: 'ORCID API', pathParams: PATH_PARAMS,
    summary: 'Unregister a webhook (ORCID-compatible)',
    responses: {
      204: { description: 'Unregistered' },
      400: { description: 'Invalid iD (9001)', schema: orcidErrorSchema },
      ...AUTH_ERRORS,
      404: { description: 'No such record (9011), or this client has no such webhook (9028)', schema: orcidErrorSchema },
      415: { description: 'Content-Type is not one of ORCID\'s XML or JSON types (9001)', schema: orcidErrorSchema },
    },
  });

  /**
   * ORCID's order (OrcidBearerTokenFilter, then Jersey's route and media-type matching, then
   * WebhooksServiceDelegatorImpl): token, route, media types, scope. Returns the caller and the
   * callback's path segment.
   */
  async function caller(req: FastifyRequest): Promise<{ c: Caller; segment: string }> {
    const c = await authenticate(deps.store, req, deps.now());
    const segment = callbackSegment(req);
    checkMediaTypes(req);
    requireWebhookScope(c);
    deps.beforeHandle?.(c);
    return { c, segment };
  }

  /**
   * ORCID's record check (`profileEntityManager.orcidExists`): 404 / 9011 when the record is not
   * there. Before it, ours: the iD's format and check digit (400 / 9001; not with --compat orcid,
   * where such an iD is simply a record that does not exist). `create`: PUT in open mode, where
   * a valid iD's record comes with its first webhook. Returns whether the record must be created.
   */
  async function requireRecord(orcid: string, create: boolean): Promise<boolean> {
    const check = checkOrcid(orcid);
    if (!check.ok && deps.compat !== 'orcid') throw new OrcidApiError(9001, `Invalid ORCID iD: ${check.reason}`);
    const known = (check.ok || orcid.length <= 64) && (await deps.store.getRecord(orcid)) !== null;
    if (known) return false;
    if (create && check.ok && deps.records === 'open') return true;
    // Upstream mode: an iD never seen here is asked of the upstream registry once (the answer is remembered).
    if (create && check.ok && deps.records === 'upstream' && (await deps.recordExists?.(orcid))) return true;
    throw recordNotFound(orcid);
  }

  app.route({
    method: ['PATCH', 'OPTIONS', 'TRACE', 'SEARCH', 'PROPFIND', 'LOCK', 'UNLOCK', 'MKCOL', 'COPY', 'MOVE', 'PROPPATCH'].filter((m) => app.supportedMethods.includes(m)),
    url: '/:orcid/webhook/*',
    handler: async function webhookOtherMethods(req, reply) {
      await authenticate(deps.store, req, deps.now());
      callbackSegment(req);
      // Jersey answers OPTIONS itself with the methods the path has; any other method is its 405.
      if (req.method === 'OPTIONS') return reply.code(204).header('allow', ALLOW).send();
      throw jaxRsError(405, { allow: ALLOW });
    },
  });

  app.put('/:orcid/webhook/*', async function registerWebhook(req, reply) {
    const { c, segment } = await caller(req);
    const orcid = (req.params as { orcid: string }).orcid;
    const t = checkCallback(decodeCallback(segment), deps);
    // Ours (not ORCID's): a name that is loopback by definition or resolves to a refused address now.
    const target = await deps.policy.checkRegistration(deliveryUrl(t.url));
    if (!target.allowed) throw new OrcidApiError(9012, `Webhook uri: ${t.url.length > 200 ? `${t.url.slice(0, 200)}…` : t.url} is not allowed: ${target.reason}`);
    const createRecord = await requireRecord(orcid, true);
    // Open mode: the record is created with the webhook, so a refused registration writes nothing.
    const res = await deps.store.registerWebhook({
      clientId: c.client.id, orcid, url: t.url, host: t.host, now: deps.now(), maxPerClient: deps.maxWebhooksPerClient,
      createRecord,
    });
    if (res.outcome === 'limit') {
      throw new OrcidApiError(9050, `Client ${c.client.id} already has the maximum of ${deps.maxWebhooksPerClient} webhooks; delete some first`);
    }
    deps.onRegistered?.(res.outcome);
    if (res.outcome === 'exists') return reply.code(204).send();
    return reply.code(201).header('location', location(req, deps.baseUrl)).send();
  });

  // ORCID checks no callback syntax on DELETE: a callback it never accepted is simply not found.
  app.delete('/:orcid/webhook/*', async function unregisterWebhook(req, reply) {
    const { c, segment } = await caller(req);
    const orcid = (req.params as { orcid: string }).orcid;
    const uri = decodeCallback(segment);
    await requireRecord(orcid, false);
    // Another client's webhook is simply not found: no answer reveals other clients' webhooks.
    const deleted = await deps.store.deleteWebhook(c.client.id, orcid, uri);
    if (!deleted) throw webhookNotFound(orcid, uri);
    deps.onRegistered?.('deleted');
    return reply.code(204).send();
  });
}
