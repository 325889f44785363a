import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { OAuthError } from '../domain/errors.ts';
import { hashToken, newToken, verifySecret } from '../domain/secrets.ts';
import type { Store } from '../store/types.ts';
import { answer, oauthError } from './openapi.ts';

/** ORCID's client-credentials tokens live about 20 years. */
export const TOKEN_LIFETIME_S = 631138518;

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

const tokenForm = z.object({
  grant_type: z.literal('client_credentials'),
  scope: z.string().describe('/webhook (premium member clients) or /read-public'),
  client_id: z.string().optional().describe('or send the credentials with HTTP Basic'),
  client_secret: z.string().optional(),
});

const tokenResponse = z.object({
  access_token: z.string(), token_type: z.literal('bearer'), refresh_token: z.string(),
  expires_in: z.number().int(), scope: z.string(), orcid: z.null(),
});

export function oauthRoutes(app: FastifyInstance, deps: { store: Store; now: () => number }): void {
  app.post('/oauth/token', {
    schema: {
      operationId: 'issueToken', tags: ['ORCID API'], security: [],
      summary: 'Get a client-credentials access token (as ORCID: form-encoded, about 20 years long)',
      consumes: ['application/x-www-form-urlencoded'], body: tokenForm,
      response: {
        200: answer('The token', tokenResponse),
        400: oauthError('invalid_request / unsupported_grant_type / unauthorized_client (revoked: deactivated) / invalid_scope (none, or one the client may not have)'),
        401: oauthError('invalid_client (bad credentials) / invalid_scope (not an ORCID scope)'),
        429: oauthError('Too many token requests from this address'),
      },
    },
    // ORCID (Spring OAuth's token endpoint and its error translator) sends these on every answer.
    onSend: async function noStore(_req, reply) {
      reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
    },
  }, async function issueToken(req, reply) {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') {
      throw new OAuthError(400, 'invalid_request', 'The token request must be form-encoded (Content-Type: application/x-www-form-urlencoded)');
    }
    const form = new URLSearchParams(typeof req.body === 'string' ? req.body : '');
    // Client authentication comes first, as in Spring's filter chain; "Bad client credentials" never says which part was wrong.
    const basic = basicCredentials(req);
    // OrcidOauth2TokenEndPointFilter trims the client_id parameter (Java's trim: characters up to U+0020).
    const formId = form.get('client_id');
    const clientId = formId !== null ? javaTrim(formId) : basic?.id;
    const secret = form.get('client_secret') ?? basic?.secret;
    if (!clientId || !secret) throw badCredentials();
    if (clientId.includes('\0') || clientId.length > 200) throw badCredentials();
    const client = await deps.store.getClient(clientId);
    // Verify against a dummy hash when the client is unknown, so timing does not reveal which ids exist.
    const ok = await verifySecret(secret, client?.secretHash ?? DUMMY_HASH);
    if (!client || !ok) throw badCredentials();

    const grantType = form.get('grant_type');
    // OrcidApiCommonEndpoints.obtainOauth2TokenPost: UnsupportedGrantTypeException when the parameter is absent.
    if (grantType === null) throw new OAuthError(400, 'unsupported_grant_type', 'grant_type is missing');

    // The delegator reads the scope names before any token granter looks at the grant type.
    const scopes = [...new Set((form.get('scope') ?? '').split(/[\s,]+/).filter((x) => x !== ''))];
    const unknown = scopes.filter((x) => !ORCID_SCOPES.has(x));
    if (unknown.length > 0) {
      // ORCID's OrcidInvalidScopeException for a scope that is not one of its ScopePathType values: 401.
      throw new OAuthError(401, 'invalid_scope', `${INVALID_SCOPE_9015} Provided scopes: ${scopes.join(',')}`);
    }
    // No granter for it: ORCID's apiError.unsupported_client_type.exception.
    if (grantType !== 'client_credentials') throw new OAuthError(400, 'unsupported_grant_type', `Unsupported grant type: ${grantType}`);
    // A client-credentials request keeps only client-credentials scopes (OrcidClientCredentialEndPointDelegatorImpl).
    const asked = scopes.filter((x) => CLIENT_CREDENTIALS_SCOPES.has(x));
    // OrcidClientCredentialsChecker.validateCredentials: the client is enabled (validateClientIsEnabled:
    // ClientDeactivatedException, which OAuthErrorUtils answers 400 unauthorized_client), then its scopes.
    if (client.revokedAt !== null) throw new OAuthError(400, 'unauthorized_client', `Client ${client.id} is deactivated`);
    checkScopes(client.premium, asked);
    const now = deps.now();
    const access = newToken();
    const refresh = newToken();
    await deps.store.createToken({ tokenHash: hashToken(access), clientId: client.id, scope: asked.join(' '), createdAt: now, expiresAt: now + TOKEN_LIFETIME_S * 1000 });
    return reply.type('application/json;charset=UTF-8').send({
      access_token: access,
      token_type: 'bearer',
      refresh_token: refresh,
      expires_in: TOKEN_LIFETIME_S,
      scope: asked.join(' '),
      orcid: null,
    });
  });
}

/** Java's String.trim(): drops leading and trailing characters up to U+0020 (controls and space). */
function javaTrim(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && s.charCodeAt(start) <= 0x20) start++;
  while (end > start && s.charCodeAt(end - 1) <= 0x20) end--;
  return s.slice(start, end);
}

/**
 * Spring Security's text for a wrong secret or an unknown client (401 invalid_client), with the
 * WWW-Authenticate header its OAuth2AuthenticationEntryPoint adds (ORCID configures it with realm
 * "ORCID T2 API" and type Bearer for the token endpoint's client filter).
 */
const BAD_CREDENTIALS = 'Bad client credentials';
const badCredentials = () => new OAuthError(401, 'invalid_client', BAD_CREDENTIALS, {
  'www-authenticate': `Bearer realm="ORCID T2 API", error="invalid_client", error_description="${BAD_CREDENTIALS}"`,
});

/** ORCID's apiError.9015.developerMessage. */
const INVALID_SCOPE_9015 = 'One of the provided scopes is not allowed. Please refer to the list of allowed scopes at: https://github.com/ORCID/ORCID-Source/tree/master/orcid-model/src/main/resources/record_2.0#scopes.';

/** ORCID's scope names (ScopePathType); any other is refused as ORCID refuses it. */
const ORCID_SCOPES = new Set([
  '/authenticate', '/openid', '/read-public', '/read-limited', '/activities/update', '/person/update', '/webhook',
  '/orcid-profile/create', '/premium-notification', '/group-id-record/read', '/group-id-record/update',
  '/activities/read-limited', '/person/read-limited', '/orcid-profile/read-limited', '/orcid-bio/read-limited',
  '/orcid-works/read-limited', '/orcid-works/create', '/orcid-works/update', '/funding/read-limited', '/funding/create',
  '/funding/update', '/affiliations/read-limited', '/affiliations/create', '/affiliations/update', '/orcid-bio/update',
  '/orcid-bio/external-identifiers/create', '/orcid-patents/read-limited', '/peer-review/read-limited',
  '/peer-review/create', '/peer-review/update', '/read-public-record', '/orcid-internal',
]);
const CLIENT_CREDENTIALS_SCOPES = new Set(['/read-public', '/webhook', '/orcid-profile/create', '/premium-notification', '/group-id-record/read', '/group-id-record/update']);

/**
 * OrcidClientCredentialsChecker.validateScope, with a premium client allowed /webhook and
 * /read-public, any other client /read-public: no scope is "Invalid scope (none)", a scope the
 * client may not have "Invalid scope: <scope>", both 400 invalid_scope.
 */
function checkScopes(premium: boolean, scopes: string[]): void {
  const allowed = new Set(premium ? ['/read-public', '/webhook'] : ['/read-public']);
  if (scopes.length === 0) throw new OAuthError(400, 'invalid_scope', 'Invalid scope (none)');
  if (scopes.length === 1 && scopes[0] === '/read-public') return;
  const refused = scopes.find((x) => !allowed.has(x));
  if (refused) throw new OAuthError(400, 'invalid_scope', `Invalid scope: ${refused}`);
}

// scrypt hash of a random value nobody knows; only used to spend the same time on unknown clients.
const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
