import type { FastifyInstance, FastifyRequest } from 'fastify';
import { OrcidApiError, jaxRsError } from '../domain/errors.ts';
import { redactUrl } from '../logger.ts';
import type { Store } from '../store/types.ts';
import { authenticate } from './auth.ts';
import { ORCID_ALLOW, isOrcidEndpoint } from './errors.ts';

/**
 * What each route may receive as a body, decided before a byte of it is read (issue 11: a 4 MB
 * nested JSON body sent without a token cost seconds of CPU). ORCID's PUT/DELETE and every read
 * take none; the admin API takes small JSON documents, its bulk change list up to 4 MB; the token
 * endpoint a small form. Admin routes authenticate in their own onRequest hook, which also runs
 * before the body is read.
 */
export const BODY_LIMITS = {
  none: 0,
  form: 16 * 1024,
  admin: 64 * 1024,
  /** POST /admin/api/changes: 10,000 changes of about 80 bytes, with room for whitespace. */
  bulk: 4 * 1024 * 1024,
} as const;

/** The largest body any route takes (fastify's global limit; each route has its own below it). */
export const MAX_BODY = BODY_LIMITS.bulk;

/** JSON nested deeper than this is refused before it is parsed; the API's own documents nest 3 deep. */
export const MAX_JSON_DEPTH = 32;

type Auth = 'client' | 'admin' | 'none';

/** Methods that take no body on any route (the admin API's GETs included). */
const BODILESS = new Set(['GET', 'HEAD']);

/** A route's body limit (0: none) and who may send one; `methods`: the route's, or the request's. */
export function bodyRule(url: string | undefined, methods: string | string[] = []): { limit: number; auth: Auth } {
  const bodiless = (Array.isArray(methods) ? methods : [methods]).every((m) => BODILESS.has(m.toUpperCase())) && methods.length > 0;
  if (url === '/oauth/token') return { limit: BODY_LIMITS.form, auth: 'none' };
  if (url === '/admin/api/changes') return { limit: BODY_LIMITS.bulk, auth: 'admin' };
  if (url?.startsWith('/admin/api/')) return { limit: bodiless ? BODY_LIMITS.none : BODY_LIMITS.admin, auth: 'admin' };
  if (url === '/:orcid/webhook/*' || url === '/webhooks') return { limit: BODY_LIMITS.none, auth: 'client' };
  return { limit: BODY_LIMITS.none, auth: 'none' };
}

const sendsBody = (req: FastifyRequest): boolean => {
  const length = req.headers['content-length'];
  if (length !== undefined) return length !== '0' && !/^0+$/.test(length.trim());
  return req.headers['transfer-encoding'] !== undefined;
};

/** The methods a path takes (sorted, for Allow); none: no such endpoint. */
export type AllowedMethods = (path: string) => string[];

/**
 * Records the routes as they are registered (install before any route), to tell a path that
 * exists with other methods (405 with Allow) from one that does not (404).
 */
export function routeMethods(app: FastifyInstance): AllowedMethods {
  const routes: Array<{ pattern: RegExp; methods: Set<string> }> = [];
  app.addHook('onRoute', function recordRoute(route) {
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).map((m) => m.toUpperCase());
    if (methods.includes('GET')) methods.push('HEAD');
    // fastify's syntax: `:name` one segment, `*` the rest.
    const source = route.url.split('/').map((seg) => (seg.startsWith(':') ? '[^/]+' : seg === '*' ? '.*' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/');
    const pattern = new RegExp(`^${source}$`);
    const known = routes.find((r) => r.pattern.source === pattern.source);
    if (known) for (const m of methods) known.methods.add(m);
    else routes.push({ pattern, methods: new Set(methods) });
  });
  return (path) => {
    const out = new Set<string>();
    for (const r of routes) if (r.pattern.test(path)) for (const m of r.methods) out.add(m);
    return [...out].sort();
  };
}

/**
 * The answer to a request no route takes (the path redacted: it may hold a callback URL): on a
 * path that exists, 405 with the methods it takes in Allow; else 404.
 */
export function notFoundError(req: FastifyRequest, allowed: AllowedMethods): OrcidApiError {
  const path = req.url.split('?')[0]!;
  const listed = allowed(path);
  // (A path the router did not match with a method it lists, such as one with a trailing slash, is a 404.)
  const methods = listed.includes(req.method) ? [] : listed;
  // ORCID's path: Jersey's 405 for any method the path lacks (fastify routes only the methods it
  // knows); `/{orcid}/webhook` with no callback after it has no route on ORCID either: its 404.
  if (isOrcidEndpoint(req)) return methods.length ? jaxRsError(405, { allow: ORCID_ALLOW }) : jaxRsError(404);
  if (methods.length) {
    return new OrcidApiError(9054, `${req.method} is not a method of ${redactUrl(path)}: it takes ${methods.join(', ')}`, { headers: { allow: methods.join(', ') } });
  }
  return new OrcidApiError(9053, `No endpoint ${req.method} ${redactUrl(path)}; webhooks live at PUT/DELETE /{orcid}/webhook/{url-encoded-callback}`);
}

const noBody = (req: FastifyRequest) =>
  new OrcidApiError(9052, `${req.method} ${req.routeOptions.url ?? 'this endpoint'} takes no request body: send none (Content-Length: 0)`);

/** Installs the per-route body limits and the checks that run before any body is read. */
export function bodyPolicy(app: FastifyInstance, deps: { store: Store; now: () => number; allowed: AllowedMethods }): void {
  app.addHook('onRoute', function routeBodyLimit(route) {
    const { limit } = bodyRule(route.url, route.method);
    // fastify has no "no body" limit: a body-less route keeps a small one, and the hooks refuse any body.
    route.bodyLimit = limit || 1024;
  });

  app.addHook('onRequest', async function bodyBeforeReading(req, reply) {
    if (!sendsBody(req)) return;
    try {
      if (req.is404) throw notFoundError(req, deps.allowed);
      const rule = bodyRule(req.routeOptions.url, req.method);
      if (rule.auth === 'client') await authenticate(deps.store, req, deps.now());
      // A Content-Length is checked now; a chunked body is counted against the route's bodyLimit as it arrives.
      if (rule.limit === 0 && req.headers['content-length'] !== undefined) throw noBody(req);
    } catch (err) {
      // Refused unread: close the connection rather than receive (and discard) the body to reuse it.
      reply.header('connection', 'close');
      throw err;
    }
  });

  app.addHook('preValidation', async function noBodyWhereNoneIsTaken(req) {
    if (bodyRule(req.routeOptions.url, req.method).limit !== 0) return;
    const body = req.body as unknown;
    if (body !== undefined && body !== null && !(typeof body === 'string' && body.trim() === '')) throw noBody(req);
  });
}

/** Deepest nesting of arrays and objects in a JSON text, counted without parsing it (strings skipped). */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > max) return true;
    } else if (c === 93 || c === 125) depth--;
  }
  return false;
}
