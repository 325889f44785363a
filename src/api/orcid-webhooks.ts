import type { FastifyInstance, FastifyRequest } from 'fastify';
import { deliveryUrl, validateCallbackUrl } from '../domain/callback-url.ts';
import { OrcidApiError, incorrectWebhookUri, jaxRsError, recordNotFound, webhookNotFound } from '../domain/errors.ts';
import { checkOrcid } from '../domain/orcid-id.ts';
import type { TargetPolicy } from '../domain/ssrf.ts';
import type { Store } from '../store/types.ts';
import { authenticate, type Caller } from './auth.ts';
import { ORCID_ALLOW, ORCID_JSON_TYPES, ORCID_XML_TYPES, orcidErrorType } from './errors.ts';
import { caller, rawCallbackSegment, webhookPathParams } from './kit.ts';
import { CLIENT_AUTH_ERRORS, noBody, orcidError } from './openapi.ts';

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

/**
 * The `{webhook_uri}` of ORCID's `@Path("/{orcid}/webhook/{webhook_uri}")`: one non-empty segment,
 * optionally followed by one `/` (Jersey matches a trailing slash). Anything else matches no route
 * there: Jersey's 404, which ORCID answers as 9001 (a callback sent with raw slashes lands here).
 */
function callbackSegment(req: FastifyRequest): string {
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
function checkCallback(uri: string, deps: Pick<WebhookRouteDeps, 'policy' | 'compat'>): { url: string; host: string } {
  const v = validateCallbackUrl(uri, deps.policy, { compat: deps.compat === 'orcid' });
  if (!v.ok) throw new OrcidApiError(9012, v.reason);
  return { url: v.url, host: v.host };
}

/** The webhook's own URL: the request path exactly as sent, without its query (ORCID: Response.created(uriInfo.getAbsolutePath())). */
function location(req: FastifyRequest, baseUrl: string | null): string {
  const base = baseUrl ?? `${req.protocol}://${req.host}`;
  return `${base}${(req.raw.url ?? '').split('?')[0]}`;
}

/** PUT's or DELETE's operation: its own answers, and what both refuse (token, scope, media types, rate limit). */
function webhookOperation<A extends Record<number, unknown>>(operationId: string, summary: string, answers: A) {
  const refusals = { ...CLIENT_AUTH_ERRORS, 415: orcidError('Content-Type is not one of ORCID\'s XML or JSON types (9001)') };
  return { schema: { tags: ['ORCID API'], security: [{ bearer: [] }], params: webhookPathParams, operationId, summary, response: { ...answers, ...refusals } } };
}

export function orcidWebhookRoutes(app: FastifyInstance, deps: WebhookRouteDeps): void {
  /**
   * ORCID's order (OrcidBearerTokenFilter, then Jersey's route and media-type matching, then
   * WebhooksServiceDelegatorImpl): token, route, media types, scope. Returns the caller, the iD and
   * the callback decoded once.
   */
  async function orcidCaller(req: FastifyRequest): Promise<{ c: Caller; orcid: string; uri: string }> {
    let segment = '';
    const c = await caller(deps, req, () => {
      segment = callbackSegment(req);
      checkMediaTypes(req);
    });
    return { c, orcid: (req.params as { orcid: string }).orcid, uri: decodeCallback(segment) };
  }

  /** ORCID's record check (`profileEntityManager.orcidExists`): 404 / 9011 when the record is not there. */
  async function requireRecord(orcid: string): Promise<void> {
    validOrcid(orcid);
    if ((await deps.store.getRecord(orcid)) === null) throw recordNotFound(orcid);
  }

  /**
   * The iD's format and check digit: 400 / 9001, ours (not with --compat orcid, where such an iD is
   * simply a record that does not exist: false, and beyond 64 characters 404 at once).
   */
  function validOrcid(orcid: string): boolean {
    const check = checkOrcid(orcid);
    if (!check.ok && deps.compat !== 'orcid') throw new OrcidApiError(9001, `Invalid ORCID iD: ${check.reason}`);
    if (!check.ok && orcid.length > 64) throw recordNotFound(orcid);
    return check.ok;
  }

  app.route({
    method: ['PATCH', 'OPTIONS', 'TRACE', 'SEARCH', 'PROPFIND', 'LOCK', 'UNLOCK', 'MKCOL', 'COPY', 'MOVE', 'PROPPATCH'].filter((m) => app.supportedMethods.includes(m)),
    url: '/:orcid/webhook/*',
    // Jersey's answers to methods the path does not have: not operations of this API.
    schema: { hide: true },
    handler: async function webhookOtherMethods(req, reply) {
      await authenticate(deps.store, req, deps.now());
      callbackSegment(req);
      // Jersey answers OPTIONS itself with the methods the path has; any other method is its 405.
      if (req.method === 'OPTIONS') return reply.code(204).header('allow', ORCID_ALLOW).send();
      throw jaxRsError(405, { allow: ORCID_ALLOW });
    },
  });

  app.put('/:orcid/webhook/*', webhookOperation('registerWebhook', 'Register a webhook (ORCID-compatible); a disabled one is re-enabled', {
    201: noBody('Registered', { location: "The webhook's absolute URL: the request's path, without its query" }),
    204: noBody('This client already had it (re-enabled if it was disabled)'),
    400: orcidError('Invalid iD (9001) or callback URL (9012)'),
    404: orcidError('No such record (9011)'),
  }), async function registerWebhook(req, reply) {
    const { c, orcid, uri } = await orcidCaller(req);
    const t = checkCallback(uri, deps);
    // Ours (not ORCID's): a name that is loopback by definition or resolves to a refused address now.
    const target = await deps.policy.checkRegistration(deliveryUrl(t.url));
    if (!target.allowed) throw new OrcidApiError(9012, `Webhook uri: ${t.url.length > 200 ? `${t.url.slice(0, 200)}…` : t.url} is not allowed: ${target.reason}`);
    // The record check (404 / 9011) is the store's, in the registration's own statement or
    // transaction. Open mode: the record is created with the webhook, so a refused registration
    // writes nothing. Upstream mode: an iD never seen here is asked of the upstream registry once.
    const valid = validOrcid(orcid);
    const register = (createRecord: boolean) => deps.store.registerWebhook({
      clientId: c.client.id, orcid, url: t.url, host: t.host, now: deps.now(), maxPerClient: deps.maxWebhooksPerClient, createRecord,
    });
    let res = await register(valid && deps.records === 'open');
    if (res.outcome === 'no-record' && valid && deps.records === 'upstream' && (await deps.recordExists?.(orcid))) res = await register(true);
    if (res.outcome === 'no-record') throw recordNotFound(orcid);
    if (res.outcome === 'limit') {
      throw new OrcidApiError(9050, `Client ${c.client.id} already has the maximum of ${deps.maxWebhooksPerClient} webhooks; delete some first`);
    }
    deps.onRegistered?.(res.outcome);
    if (res.outcome === 'exists') return reply.code(204).send();
    return reply.code(201).header('location', location(req, deps.baseUrl)).send();
  });

  // ORCID checks no callback syntax on DELETE: a callback it never accepted is simply not found.
  app.delete('/:orcid/webhook/*', webhookOperation('unregisterWebhook', 'Unregister a webhook (ORCID-compatible)', {
    204: noBody('Unregistered'),
    400: orcidError('Invalid iD (9001)'),
    404: orcidError('No such record (9011), or this client has no such webhook (9028)'),
  }), async function unregisterWebhook(req, reply) {
    const { c, orcid, uri } = await orcidCaller(req);
    await requireRecord(orcid);
    // Another client's webhook is simply not found: no answer reveals other clients' webhooks.
    const deleted = await deps.store.deleteWebhook(c.client.id, orcid, uri);
    if (!deleted) throw webhookNotFound(orcid, uri);
    deps.onRegistered?.('deleted');
    return reply.code(204).send();
  });
}
