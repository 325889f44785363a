import type { FastifyRequest } from 'fastify';
import { OAuthError, OrcidApiError } from '../domain/errors.ts';
import { constantTimeEqual, hashToken } from '../domain/secrets.ts';
import type { ClientRow, Store, TokenRow } from '../store/types.ts';

export interface Caller {
  client: ClientRow;
  token: TokenRow;
}

/**
 * The token as ORCID reads it (OrcidBearerTokenFilter.extractToken): the first Authorization header
 * starting with "bearer" (any case), trimmed, cut at a comma; failing that, the `access_token` query
 * parameter. '' when the header is there but empty.
 */
export function bearerToken(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (h !== undefined && h.toLowerCase().startsWith('bearer')) {
    const value = h.slice('bearer'.length).trim();
    const comma = value.indexOf(',');
    return comma > 0 ? value.slice(0, comma) : value;
  }
  const q = (req.query as Record<string, unknown> | undefined)?.access_token;
  if (typeof q === 'string') return q;
  if (Array.isArray(q) && typeof q[0] === 'string') return q[0];
  return null;
}

/** ORCID's APIAuthenticationEntryPoint with no authentication at all: 403 "forbidden". */
const FORBIDDEN = 'Forbidden: The server understood the request but refuses to authorize it.';

/**
 * The one place that answers for the bearer token, so it can run wherever authentication runs.
 * As ORCID (OrcidBearerTokenFilter, APIAuthenticationEntryPoint, OAuthErrorResponseHelper): no
 * token is 403 `forbidden`; an unknown, expired or revoked one is 401 `invalid_token`
 * "Invalid access token: <token>". Neither carries a WWW-Authenticate header.
 */
export async function authenticate(store: Store, req: FastifyRequest, now: number): Promise<Caller> {
  const token = bearerToken(req);
  if (token === null || token.trim() === '') throw new OAuthError(403, 'forbidden', FORBIDDEN);
  const invalid = () => new OAuthError(401, 'invalid_token', `Invalid access token: ${token}`);
  if (token.length > 1000) throw invalid();
  const found = await findTokenCached(store, hashToken(token));
  if (!found || found.token.expiresAt <= now || found.client.revokedAt !== null) throw invalid();
  return found;
}

/**
 * How long a token's look-up is reused. A client revoked in another process (the CLI, another API
 * process) is refused within this time; one revoked through this process's admin API at once
 * (forgetClientTokens). Expiry is checked on every request against the cached row.
 */
export const TOKEN_CACHE_MS = 1000;
const TOKEN_CACHE_MAX = 10_000;

interface Cached { found: Caller; at: number }
const tokenCaches = new WeakMap<Store, Map<string, Cached>>();

/** findToken, remembered for TOKEN_CACHE_MS per store. Unknown tokens are not remembered: a flood of made-up tokens cannot fill it. */
async function findTokenCached(store: Store, tokenHash: string): Promise<Caller | null> {
  let cache = tokenCaches.get(store);
  if (!cache) tokenCaches.set(store, (cache = new Map()));
  const t = performance.now();
  const hit = cache.get(tokenHash);
  if (hit && t - hit.at < TOKEN_CACHE_MS) return hit.found;
  const found = await store.findToken(tokenHash);
  cache.delete(tokenHash);
  if (found) {
    if (cache.size >= TOKEN_CACHE_MAX) cache.delete(cache.keys().next().value!);
    cache.set(tokenHash, { found, at: t });
  }
  return found;
}

/** Forgets the cached tokens of a client (revoked through this process): its next request is refused. */
export function forgetClientTokens(store: Store, clientId: string): void {
  const cache = tokenCaches.get(store);
  if (!cache) return;
  for (const [hash, entry] of cache) if (entry.found.client.id === clientId) cache.delete(hash);
}

/**
 * ORCID's OrcidSecurityManager.checkScopes(WEBHOOK): a public (here: non-premium) client is
 * 401 / 9017, a token without the /webhook scope 403 / 9038.
 */
export function requireWebhookScope(caller: Caller): void {
  if (!caller.client.premium) throw new OrcidApiError(9017, 'The client application is forbidden to perform the action.');
  if (!caller.token.scope.split(/\s+/).includes('/webhook')) throw new OrcidApiError(9038, null);
}

// The admin API is ours: a fixed text, and the WWW-Authenticate header RFC 6750 asks for.
const invalidAdminToken = () =>
  new OAuthError(401, 'invalid_token', 'Invalid admin token: send "Authorization: Bearer <admin token>" (see the server start-up log for where the token is stored)', { 'www-authenticate': 'Bearer error="invalid_token"' });

/** Admin API: a constant-time comparison with the admin token. */
export function requireAdmin(req: FastifyRequest, adminToken: string): void {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  const token = m ? m[1]! : null;
  if (!token || !constantTimeEqual(token, adminToken)) throw invalidAdminToken();
}
