import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { OrcidApiError } from '../domain/errors.ts';
import type { ApplyChangesResult, Store } from '../store/types.ts';
import type { Metrics } from '../metrics.ts';
import { absoluteForm } from '../logger.ts';
import { createChangeSink, type ChangeSink } from '../changes/source.ts';
import { adminApi } from './admin-api.ts';
import type { UpstreamView } from './admin-upstream.ts';
import { MAX_BODY, MAX_JSON_DEPTH, bodyPolicy, jsonDepthExceeds, notFoundError, routeMethods } from './body-policy.ts';
import { DEFAULT_HTTP_LIMITS, clientErrorResponse, httpServerOptions, refuseConnect, limitConnectionsPerAddress, type HttpLimits } from './connection-limits.ts';
import { clientWebhookRoutes } from './client-webhooks.ts';
import { dashboardRoutes } from './dashboard-static.ts';
import { errorHandler, isOrcidEndpoint, sendOrcidError } from './errors.ts';
import { oauthRoutes } from './oauth.ts';
import { registerOpenApi } from './openapi.ts';
import { opsRoutes } from './ops.ts';
import { orcidWebhookRoutes, type WebhookRouteDeps } from './orcid-webhooks.ts';
import { RateLimiter, clientRateLimit, tokenRateLimit } from './rate-limit.ts';

/** ORCID's webhook endpoints' settings (policy, records mode, compat, base URL, limit) as orcid-webhooks.ts takes them. */
type WebhookSettings = Pick<WebhookRouteDeps, 'policy' | 'records' | 'compat' | 'recordExists' | 'baseUrl' | 'maxWebhooksPerClient'>;

export interface AppDeps extends WebhookSettings {
  store: Store;
  logger: Logger;
  adminToken: string;
  notifyDelayMs: number;
  now?: () => number;
  metrics: Metrics;
  /** Whether this node delivers, and whether its worker runs (for /ready). */
  worker: { expected: boolean; running: () => boolean };
  /** false on worker-only nodes: no ORCID or admin API, only the operational endpoints. */
  api?: boolean;
  onChanges?: (result: ApplyChangesResult) => void;
  /** Where the admin API's changes enter (default: straight into the store). */
  sink?: ChangeSink;
  /** The upstream poller of this process, for GET /admin/api/upstream (null: not configured). */
  upstream?: UpstreamView | null;
  /** ORCID API requests per client per minute, /oauth/token requests per IP per minute (0 or unset: unlimited). */
  rateLimitPerMinute?: number;
  tokenRateLimitPerMinute?: number;
  /** How long a rotated-out signing secret keeps signing (default 24 h). */
  signingRotationGraceMs?: number;
  /** A client's signing or payload settings changed through the admin API. */
  onClientSettingsChanged?: (clientId: string) => void;
  /** Incoming connection timeouts and caps (defaults: DEFAULT_HTTP_LIMITS). */
  httpLimits?: HttpLimits;
}

/** One log line per request, when it completes (fastify writes two: one on arrival, one at the end). */
class OneLinePerRequest extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null, req: FastifyRequest, reply: FastifyReply): void {
    const line = { req, res: { statusCode: reply.statusCode }, responseTime: reply.elapsedTime };
    if (error) reply.log.error({ ...line, err: error }, 'request errored');
    else reply.log.info(line, 'request completed');
  }
}

/** The HTTP API: ORCID's endpoints, the admin API, and one error handler in ORCID's format. */
export function buildApp(deps: AppDeps): FastifyInstance {
  const now = deps.now ?? Date.now;
  const limits = deps.httpLimits ?? DEFAULT_HTTP_LIMITS;
  const app = Fastify({
    ...httpServerOptions(limits),
    loggerInstance: deps.logger as FastifyBaseLogger,
    // Callback URLs of up to 2,048 characters travel URL-encoded inside one path segment.
    routerOptions: { maxParamLength: 8192 },
    // An absolute-form target (`PUT http://host/{orcid}/webhook/{cb}`, which a server must accept)
    // is its origin-form from here on: the router already ignores the origin, and the code that
    // reads the raw target (the callback segment, Location, ORCID's error format, the log) sees a path.
    rewriteUrl: originForm,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
    },
    bodyLimit: MAX_BODY,
    // What Node's HTTP parser refuses before fastify sees a request leaves in ORCID's format too.
    clientErrorHandler: clientErrorResponse,
    logController: new OneLinePerRequest(),
    // Errors raised before routing (a malformed %-escape in the path) leave in ORCID's format too.
    frameworkErrors: function frameworkError(err, req, reply) {
      const inCallback = (req.url ?? '').includes('/webhook/');
      return sendOrcidError(req, reply, inCallback
        ? new OrcidApiError(9012, `Webhook uri is syntactically incorrect: the path is not validly URL-encoded (${err.message})`)
        : new OrcidApiError(9052, err.message, { status: err.statusCode ?? 400 }));
    },
  });

  deps.metrics.observeHttp(app);
  limitConnectionsPerAddress(app.server, limits.maxConnectionsPerAddress);
  refuseConnect(app.server);

  app.addHook('onSend', async function requestIdHeader(req, reply) {
    reply.header('x-request-id', req.id);
  });

  // ORCID's PUT carries an empty body, with or without a Content-Type: accept an empty JSON body.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, function parseJson(_req, body, done) {
    const text = String(body);
    if (text.trim() === '') return done(null, undefined);
    if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) return done(new OrcidApiError(9052, `The body nests arrays or objects more than ${MAX_JSON_DEPTH} deep`), undefined);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      return done(new OrcidApiError(9052, `The body is not valid JSON: ${(e as Error).message}`), undefined);
    }
    // A \uD800 escape alone is no character: each store would keep something different of it.
    if (/\\u[dD][89a-fA-F]/.test(text) && holdsLoneSurrogate(value)) {
      return done(new OrcidApiError(9052, 'The body is not valid Unicode: a string holds a lone UTF-16 surrogate escape (such as \\ud800)'), undefined);
    }
    done(null, value);
  });
  // Any other media type (text/plain's own parser too) is read as text by the routes that take it.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser(['application/x-www-form-urlencoded', '*'], { parseAs: 'string' }, function parseText(req, body, done) {
    // The admin API reads JSON only: a body in another media type is refused, not read as text.
    if ((req.routeOptions.url ?? '').startsWith('/admin/api/') && String(body).trim() !== '') {
      const type = req.headers['content-type'] ?? 'none';
      return done(new OrcidApiError(9055, `The admin API takes application/json bodies (Content-Type: ${type.slice(0, 100)})`), undefined);
    }
    done(null, body);
  });

  app.addHook('onRequest', async function hostHeader(req) {
    // Node's own answer to an HTTP/1.1 request without Host (requireHostHeader) had no body.
    if (req.headers.host === undefined && req.raw.httpVersionMajor === 1 && req.raw.httpVersionMinor >= 1) {
      throw new OrcidApiError(9052, 'An HTTP/1.1 request must carry a Host header');
    }
  });

  app.addHook('preValidation', async function noNulInParameters(req) {
    // PostgreSQL's text cannot hold NUL (SQLite can): refused alike on both stores, before any query.
    // ORCID's own endpoints check the callback URL and the iD themselves (9012, 9001).
    if (isOrcidEndpoint(req)) return;
    for (const values of [req.params, req.query] as unknown[]) {
      for (const [name, v] of Object.entries((values ?? {}) as Record<string, unknown>)) {
        if (typeof v === 'string' && v.includes('\u0000')) throw new OrcidApiError(9052, `${name === '*' ? 'callback' : name}: must not contain a NUL character`);
      }
    }
  });

  // Before any route is added: the per-route limits and the methods of each path are recorded as
  // routes are registered.
  const allowed = routeMethods(app);
  bodyPolicy(app, { store: deps.store, now, allowed });

  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(function notFound(req, reply) {
    // OPTIONS on a path of ours: the methods it takes (ORCID's path answers OPTIONS in its own route).
    const methods = req.method === 'OPTIONS' && !isOrcidEndpoint(req) ? allowed(req.url.split('?')[0]!) : [];
    if (methods.length) return reply.code(204).header('allow', methods.join(', ')).send();
    return errorHandler(notFoundError(req, allowed), req, reply);
  });

  // The OpenAPI plugin collects the routes registered after it: they are added in one plugin scope
  // that loads after it (hooks and handlers set on the root above still apply to them).
  registerOpenApi(app);
  if (deps.api !== false) {
    // In this process's memory: with several API processes each one counts on its own.
    app.addHook('onRequest', tokenRateLimit(new RateLimiter(deps.tokenRateLimitPerMinute ?? 0, now)));
  }
  app.register(async function routes(api) {
    opsRoutes(api, { store: deps.store, metrics: deps.metrics, worker: deps.worker, adminToken: deps.adminToken });
    if (deps.api === false) return;
    const beforeHandle = clientRateLimit(new RateLimiter(deps.rateLimitPerMinute ?? 0, now));
    oauthRoutes(api, { store: deps.store, now });
    orcidWebhookRoutes(api, {
      store: deps.store, policy: deps.policy, records: deps.records, baseUrl: deps.baseUrl, compat: deps.compat ?? 'none',
      maxWebhooksPerClient: deps.maxWebhooksPerClient, now, beforeHandle,
      ...(deps.recordExists && { recordExists: deps.recordExists }),
      onRegistered: (outcome) => deps.metrics.registrations.inc({ outcome }),
    });
    clientWebhookRoutes(api, { store: deps.store, now, beforeHandle });
    adminApi(api, {
      store: deps.store, adminToken: deps.adminToken, now, upstream: deps.upstream ?? null,
      sink: deps.sink ?? createChangeSink({ store: deps.store, notifyDelayMs: deps.notifyDelayMs, now }),
      onChanges: (result) => {
        deps.metrics.changes.inc({ result: 'created' }, result.created);
        deps.metrics.changes.inc({ result: 'changed' }, result.changed);
        deps.metrics.changes.inc({ result: 'ignored' }, result.ignored);
        deps.onChanges?.(result);
      },
      onWebhookDeleted: () => deps.metrics.registrations.inc({ outcome: 'deleted' }),
      signingRotationGraceMs: deps.signingRotationGraceMs ?? 24 * 3_600_000,
      ...(deps.onClientSettingsChanged && { onClientSettingsChanged: deps.onClientSettingsChanged }),
    });
    dashboardRoutes(api);
  });
  return app;
}

/** `http://host/path?q` → `/path?q`; any other request target as it came. */
function originForm(req: { url?: string }): string {
  const url = req.url ?? '/';
  const absolute = url.startsWith('/') ? null : absoluteForm(url);
  if (!absolute) return url;
  return absolute.rest.startsWith('/') ? absolute.rest : `/${absolute.rest}`;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Whether a parsed JSON value holds a string (or key) with a lone surrogate. */
function holdsLoneSurrogate(v: unknown): boolean {
  if (typeof v === 'string') return LONE_SURROGATE.test(v);
  if (Array.isArray(v)) return v.some(holdsLoneSurrogate);
  if (v !== null && typeof v === 'object') return Object.entries(v).some(([k, x]) => LONE_SURROGATE.test(k) || holdsLoneSurrogate(x));
  return false;
}
