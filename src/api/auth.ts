import type { FastifyRequest } from 'fastify';
import { OAuthError, OrcidApiError } from '../domain/errors.ts';
import { constantTimeEqual, hashToken } from '../domain/secrets.ts';
import type { ClientRow, Store, TokenRow } from '../store/types.ts';

export interface Caller {
  client: ClientRow;
  token: TokenRow;
}

function bearer(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (!h) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1]! : null;
}

// The header carries a fixed text: the description may quote what the client sent.
const invalidToken = (description: string) =>
  new OAuthError(401, 'invalid_token', description, { 'www-authenticate': 'Bearer error="invalid_token"' });

/** Resolves the bearer token to its client; OAuth-form 401s for missing, unknown, expired or revoked. */
export async function authenticate(store: Store, req: FastifyRequest, now: number): Promise<Caller> {
  const token = bearer(req);
  if (!token) throw invalidToken('Invalid access token: missing bearer token in the Authorization header');
  const found = await store.findToken(hashToken(token));
  if (!found) throw invalidToken(`Invalid access token: ${token}`);
  if (found.token.expiresAt <= now) throw invalidToken(`Access token expired: ${token}`);
  if (found.client.revokedAt !== null) throw invalidToken(`Invalid access token: the client ${found.client.id} has been revoked`);
  return found;
}

/** A token without the /webhook scope: ORCID's 403 / 9038. */
export function requireWebhookScope(caller: Caller): void {
  if (!caller.token.scope.split(/\s+/).includes('/webhook')) {
    throw new OrcidApiError(9038, `The access token has scope "${caller.token.scope}"; webhooks need a token with the /webhook scope, which only premium member clients can obtain`);
  }
}

/** Admin API: a constant-time comparison with the admin token. */
export function requireAdmin(req: FastifyRequest, adminToken: string): void {
  const token = bearer(req);
  if (!token || !constantTimeEqual(token, adminToken)) {
    throw invalidToken('Invalid admin token: send "Authorization: Bearer <admin token>" (see the server start-up log for where the token is stored)');
  }
}
