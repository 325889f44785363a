import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { OAuthError } from '../domain/errors.ts';
import { hashToken, newToken, verifySecret } from '../domain/secrets.ts';
import type { Store } from '../store/types.ts';
import { describeOperation, oauthErrorSchema } from './openapi.ts';

/** ORCID's client-credentials tokens live about 20 years. */
export const TOKEN_LIFETIME_S = 631138518;

const SCOPES = new Set(['/webhook', '/read-public']);

function basicCredentials(req: FastifyRequest): { id: string; secret: string } | null {
  const m = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (!m) return null;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return null;
  try {
    return { id: decodeURIComponent(decoded.slice(0, i)), secret: decodeURIComponent(decoded.slice(i + 1)) };
  } catch {
    throw new OAuthError(401, 'invalid_client', 'The HTTP Basic credentials are not validly URL-encoded');
  }
}

export const tokenForm = z.object({
  grant_type: z.literal('client_credentials'),
  scope: z.string().describe('/webhook (premium member clients) or /read-public'),
  client_id: z.string().optional().describe('or send the credentials with HTTP Basic'),
  client_secret: z.string().optional(),
});

export const tokenResponse = z.object({
  access_token: z.string(), token_type: z.literal('bearer'), refresh_token: z.string(),
  expires_in: z.number().int(), scope: z.string(), orcid: z.null(),
});

export function oauthRoutes(app: FastifyInstance, deps: { store: Store; now: () => number }): void {
  describeOperation({
    method: 'post', path: '/oauth/token', tag: 'ORCID API', security: 'none',
    summary: 'Get a client-credentials access token (as ORCID: form-encoded, about 20 years long)',
    body: tokenForm, bodyType: 'application/x-www-form-urlencoded',
    responses: {
      200: { description: 'The token', schema: tokenResponse },
      400: { description: 'invalid_request / unsupported_grant_type', schema: oauthErrorSchema },
      401: { description: 'invalid_client (bad credentials, revoked) / invalid_scope (not premium)', schema: oauthErrorSchema },
      429: { description: 'Too many token requests from this address', schema: oauthErrorSchema },
    },
  });

  app.post('/oauth/token', async function issueToken(req, reply) {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') {
      throw new OAuthError(400, 'invalid_request', 'The token request must be form-encoded (Content-Type: application/x-www-form-urlencoded)');
    }
    const form = new URLSearchParams(typeof req.body === 'string' ? req.body : '');
    const grantType = form.get('grant_type');
    if (!grantType) throw new OAuthError(400, 'invalid_request', 'Missing grant_type: use grant_type=client_credentials');
    if (grantType !== 'client_credentials') {
      throw new OAuthError(400, 'unsupported_grant_type', `Unsupported grant type: ${grantType}; this server issues client_credentials tokens`);
    }
    const basic = basicCredentials(req);
    const clientId = form.get('client_id') ?? basic?.id;
    const secret = form.get('client_secret') ?? basic?.secret;
    if (!clientId || !secret) throw new OAuthError(401, 'invalid_client', 'Client credentials are required: send client_id and client_secret in the form or with HTTP Basic');
    if (clientId.includes('\0') || clientId.length > 200) throw new OAuthError(401, 'invalid_client', 'Bad client credentials: malformed client_id');
    const client = await deps.store.getClient(clientId);
    // Verify against a dummy hash when the client is unknown, so timing does not reveal which ids exist.
    const ok = await verifySecret(secret, client?.secretHash ?? DUMMY_HASH);
    if (!client || !ok) throw new OAuthError(401, 'invalid_client', `Bad client credentials for client ${clientId}`);
    if (client.revokedAt !== null) throw new OAuthError(401, 'invalid_client', `Client ${clientId} has been revoked`);

    const scope = (form.get('scope') ?? '').trim();
    if (!scope) throw new OAuthError(400, 'invalid_request', 'Missing scope: use scope=/webhook');
    const scopes = scope.split(/\s+/);
    const unknown = scopes.find((s) => !SCOPES.has(s));
    if (unknown) throw new OAuthError(401, 'invalid_scope', `Invalid scope: ${unknown}; client-credentials tokens may have /webhook or /read-public`);
    if (scopes.includes('/webhook') && !client.premium) {
      throw new OAuthError(401, 'invalid_scope', `Client ${clientId} is not a premium member client and cannot obtain the /webhook scope`);
    }
    const now = deps.now();
    const access = newToken();
    const refresh = newToken();
    await deps.store.createToken({ tokenHash: hashToken(access), clientId, scope: scopes.join(' '), createdAt: now, expiresAt: now + TOKEN_LIFETIME_S * 1000 });
    return reply.type('application/json;charset=UTF-8').send({
      access_token: access,
      token_type: 'bearer',
      refresh_token: refresh,
      expires_in: TOKEN_LIFETIME_S,
      scope: scopes.join(' '),
      orcid: null,
    });
  });
}

// scrypt hash of a random value nobody knows; only used to spend the same time on unknown clients.
const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
