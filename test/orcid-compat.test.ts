/**
 * Exactly ORCID: each behaviour of ORCID's webhook API, with the file of ORCID/ORCID-Source it comes
 * from. Paths are shortened: WebhooksService = orcid-api-web/.../member/common/WebhooksService.java,
 * Delegator = .../delegator/impl/WebhooksServiceDelegatorImpl.java, api_en = orcid-core/src/main/
 * resources/i18n/api_en.properties, CoreMapper = orcid-core/.../exception/OrcidCoreExceptionMapper.java,
 * ExceptionMapper = orcid-api-common/.../jaxb/OrcidExceptionMapper.java, the token endpoint as it
 * stood before commit 80b50c1fb6 (OrcidClientCredentialEndPointDelegatorImpl,
 * OrcidClientCredentialsChecker, OAuthErrorUtils). Deliberate differences are tested at the end, with
 * ORCID's behaviour under --compat orcid where that is safe.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { resolveConfig, testConfig } from '../src/config.ts';
import { deliveryUrl } from '../src/domain/callback-url.ts';
import { javaUriSyntaxError } from '../src/domain/java-uri.ts';
import { redactUrl } from '../src/logger.ts';
import { createApiClient } from '../src/ops/clients.ts';
import { ADMIN_TOKEN, backends, getToken, snapshot, startHarness, webhookPath, type Harness } from './helpers/harness.ts';
import { startReceiver } from './helpers/receiver.ts';

const KNOWN = '0000-0002-1825-0097';
const UNKNOWN = '0000-0001-5109-3700';
const CB = 'https://example.org/orcid/updated';
const MORE_INFO = 'https://members.orcid.org/api/resources/troubleshooting';
const JSON_ACCEPT = { accept: 'application/json' };
const FORM = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };

describe('java.net.URI grammar (Delegator: `new URI(webhookUri)`; JDK java.net.URI.Parser, RFC 2396)', () => {
  const refused = ['https://example.org/a|b', 'https://example.org/{a}', 'https://example.org/a^b', 'https://example.org/"a"',
    'https://example.org/<a>', 'https://example.org/a\\b', 'https://example.org/a%zz', 'https://example.org/a%2', 'https://example.org/a b',
    ' https://example.org/', 'https://example.org/a`b', 'https://example.org/a[1]', 'https://example.org/#a#b', 'http:', 'http://',
    '1http://example.org/', 'https://[zz]/', 'https://exa mple.org/', 'https://example.org/\u0001'];
  for (const uri of refused) test(`refuses ${JSON.stringify(uri)}`, () => assert.notEqual(javaUriSyntaxError(uri), null));
  const accepted = ['https://nowhere2.com/0000-0002-7465-2162/updated', 'https://example.org/?a[1]=2', 'https://example.org/%41',
    'http:///x', 'https://[::1]:80/', 'https://[fe80::1%25eth0]/', 'https://example.org:abc/', 'https://bücher.de/',
    'mailto:a@b', 'example.org/no-scheme', 'localhost:8080/cb', "https://example.org/a;b=c/d:e@f&g+h$i,j!k~l*m'n(o)p"];
  for (const uri of accepted) test(`accepts ${JSON.stringify(uri)}`, () => assert.equal(javaUriSyntaxError(uri), null));
});

test('callback timeouts default to ORCID\'s 20 s connect, 20 s request, and the lease still exceeds them (HttpRequestUtils: org.orcid.http.connect.timeout / org.orcid.http.timeout = 20)', () => {
  const c = testConfig();
  assert.equal(c.connectTimeoutMs, 20_000);
  assert.equal(c.requestTimeoutMs, 20_000);
  assert.ok(c.leaseMs > c.requestTimeoutMs && c.leaseMs > c.connectTimeoutMs);
});

test('--compat orcid is a setting like the others: flag, environment, named error', () => {
  assert.equal(resolveConfig({}, {}).compat, 'none');
  assert.equal(resolveConfig({ compat: 'orcid' }, {}).compat, 'orcid');
  assert.equal(resolveConfig({}, { ORCID_WEBHOOKS_COMPAT: 'orcid' }).compat, 'orcid');
  assert.throws(() => resolveConfig({}, { ORCID_WEBHOOKS_COMPAT: 'exact' }), /--compat \(ORCID_WEBHOOKS_COMPAT\)/);
});

test('a scheme-less callback is called as http:// + it (WebhookManagerImpl.doPost)', () => {
  assert.equal(deliveryUrl('example.org/cb'), 'http://example.org/cb');
  assert.equal(deliveryUrl('HTTPS://example.org/cb'), 'HTTPS://example.org/cb');
  assert.equal(deliveryUrl('https://example.org/cb'), 'https://example.org/cb');
});

test('a token sent in the access_token query parameter never reaches the log', () => {
  // Every query value is redacted (logger.ts), the token included.
  assert.equal(redactUrl('/webhooks?limit=5&access_token=5eb23750-secret&state=failing'), '/webhooks?limit=[redacted]&access_token=[redacted]&state=[redacted]');
  assert.equal(redactUrl('/0000-0002-1825-0097/webhook/https%3A%2F%2Fx.org?access_token=t'), '/0000-0002-1825-0097/webhook/[redacted]?access_token=[redacted]');
});

for (const { backend, skip } of await backends()) describe(`ORCID's webhook API, message for message, on ${backend}`, { skip }, () => {
  let h: Harness;
  let readPublicOnly: string;
  let publicToken: string;

  before(async () => {
    h = await startHarness({}, { backend });
    await h.store.addRecords([KNOWN], Date.now());
    // A premium client's token without the /webhook scope, and a public client's token.
    const prem = await createApiClient(h.store, { name: 'Premium, read-public token', premium: true });
    readPublicOnly = await getToken(h.svc, prem.client.id, prem.secret, '/read-public');
    const pub = await createApiClient(h.store, { name: 'Public', premium: false });
    publicToken = await getToken(h.svc, pub.client.id, pub.secret, '/read-public');
  });
  after(() => h.close());

  const req = (method: 'PUT' | 'DELETE' | 'OPTIONS' | 'PATCH', url: string, headers: Record<string, string> = JSON_ACCEPT, token: string | null = h.token) =>
    h.svc.app.inject({ method, url, headers: { ...(token !== null && { authorization: `Bearer ${token}` }), ...headers } });
  const errorBody = (code: number, status: number, developer: string, user: string) =>
    ({ 'response-code': status, 'developer-message': developer, 'user-message': user, 'error-code': code, 'more-info': MORE_INFO });

  describe('order of checks: scope, java.net.URI, record exists, webhook (Delegator)', () => {
    test('PUT: the scope is checked before the callback and the record', async () => {
      const res = await req('PUT', webhookPath(UNKNOWN, 'https://example.org/a|b'), JSON_ACCEPT, readPublicOnly);
      assert.equal(res.statusCode, 403);
      assert.equal(res.json()['error-code'], 9038);
    });
    test('PUT: the callback\'s syntax before the record', async () => {
      const res = await req('PUT', webhookPath(UNKNOWN, 'https://example.org/a|b'));
      assert.equal(res.statusCode, 400);
      assert.equal(res.json()['error-code'], 9012);
    });
    test('PUT: then the record', async () => {
      const res = await req('PUT', webhookPath(UNKNOWN, CB));
      assert.equal(res.statusCode, 404);
      assert.equal(res.json()['error-code'], 9011);
    });
    test('DELETE of an unknown record is 9011, not 9028, whatever the callback', async () => {
      for (const cb of [CB, 'https://example.org/a|b']) {
        const res = await req('DELETE', webhookPath(UNKNOWN, cb));
        assert.equal(res.statusCode, 404, cb);
        assert.deepEqual(res.json(), errorBody(9011, 404, '404 Not Found: The ORCID record or item was not found.', 'The resource was not found.'));
      }
    });
    test('DELETE checks no callback syntax: a callback ORCID never accepted is simply not found (9028)', async () => {
      const res = await req('DELETE', webhookPath(KNOWN, 'https://example.org/a|b'));
      assert.equal(res.statusCode, 404);
      assert.equal(res.json()['error-code'], 9028);
    });
    test('DELETE: the scope comes first there too', async () => {
      const res = await req('DELETE', webhookPath(UNKNOWN, CB), JSON_ACCEPT, readPublicOnly);
      assert.equal(res.json()['error-code'], 9038);
    });
  });

  describe('ORCID\'s texts, with the same parameters (api_en, CoreMapper.getDeveloperMessage)', () => {
    test('9012: apiError.badrequest_incorrect_webhook.exception after "Full validation error:"', async () => {
      const cb = 'https://example.org/{x}';
      const res = await req('PUT', webhookPath(KNOWN, cb));
      assert.deepEqual(res.json(), errorBody(9012, 400,
        `The client application made a bad request to the ORCID API. Full validation error: Webhook uri: ${cb} is syntactically incorrect`,
        'The client application made a bad request to the ORCID API.'));
    });
    test('9028: "No webhook found for orcid=${orcid}, and uri=${uri}." with the decoded callback', async () => {
      const res = await req('DELETE', webhookPath(KNOWN, CB));
      assert.deepEqual(res.json(), errorBody(9028, 404, `No webhook found for orcid=${KNOWN}, and uri=${CB}.`, 'The resource was not found.'));
    });
    test('9038: OrcidAccessControlException has no message of its own', async () => {
      const res = await req('PUT', webhookPath(KNOWN, CB), JSON_ACCEPT, readPublicOnly);
      assert.deepEqual(res.json(), errorBody(9038, 403,
        '409 Conflict: The item has a limited or private visibility and your request doesn\'t have the required scope.',
        'You don\'t have the permissions to execute this action.'));
    });
    test('XML bodies escape text as JAXB does (MinimumEscapeHandler / UTF8XmlOutput): &, <, > only; quotes and apostrophes stay as they are', async () => {
      const res = await req('PUT', webhookPath(KNOWN, CB), {}, readPublicOnly);
      assert.equal(res.statusCode, 403);
      assert.equal(res.headers['content-type'], 'application/vnd.orcid+xml');
      assert.equal(res.body, `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<error xmlns="http://www.orcid.org/ns/error">
    <response-code>403</response-code>
    <developer-message>409 Conflict: The item has a limited or private visibility and your request doesn't have the required scope.</developer-message>
    <user-message>You don't have the permissions to execute this action.</user-message>
    <error-code>9038</error-code>
    <more-info>${MORE_INFO}</more-info>
</error>
`);
      const cb = 'https://example.org/it\'s?a=1&b="2"';
      const del = await req('DELETE', webhookPath(KNOWN, cb), { accept: 'application/xml' });
      assert.match(del.body, /<developer-message>No webhook found for orcid=0000-0002-1825-0097, and uri=https:\/\/example\.org\/it's\?a=1&amp;b="2"\.<\/developer-message>/);
    });
    test('9017: a public client (OrcidSecurityManagerImpl.checkClientType)', async () => {
      const res = await req('PUT', webhookPath(KNOWN, CB), JSON_ACCEPT, publicToken);
      assert.deepEqual(res.json(), errorBody(9017, 401,
        '401 Unauthorized: The client application is not authorized for this ORCID record. Full validation error: The client application is forbidden to perform the action.',
        'The client application is not authorized.'));
    });
  });

  describe('the callback is one path segment (WebhooksService: @Path("/{orcid}/webhook/{webhook_uri}"))', () => {
    test('raw slashes match no route: Jersey\'s 404, error-code 9001; nothing is registered', async () => {
      const before = await snapshot(h.store);
      const res = await req('PUT', `/${KNOWN}/webhook/https://example.org/raw`);
      assert.equal(res.statusCode, 404);
      assert.deepEqual(res.json(), errorBody(9001, 404,
        '400 Bad Request: There is an issue with your data or the API endpoint. 405 Method Not Allowed: Endpoint and method mismatch. 415 Unsupported Media Type: data must be in XML or JSON format. Full validation error: HTTP 404 Not Found',
        'ORCID could not process the data, because they were invalid.'));
      assert.deepEqual(await snapshot(h.store), before);
    });
    test('no callback at all (`/{orcid}/webhook`, with or without a slash) is the same 404 / 9001, XML by default', async () => {
      for (const method of ['PUT', 'DELETE'] as const) {
        for (const path of [`/${KNOWN}/webhook`, `/${KNOWN}/webhook/`]) {
          const res = await req(method, path, {});
          assert.equal(res.statusCode, 404, `${method} ${path}`);
          assert.equal(res.headers['content-type'], 'application/vnd.orcid+xml');
          assert.match(res.body, /<error-code>9001<\/error-code>/);
        }
      }
    });
    test('one trailing slash is matched (Jersey); Location is the path as sent, without the query (uriInfo.getAbsolutePath)', async () => {
      const path = `${webhookPath(KNOWN, 'https://example.org/trailing?x=1')}/`;
      const res = await req('PUT', `${path}?access_token=${h.token}`, JSON_ACCEPT, null);
      assert.equal(res.statusCode, 201);
      assert.equal(res.headers.location, `http://localhost:80${path}`);
      assert.ok(await h.store.findWebhook(h.clientId, KNOWN, 'https://example.org/trailing?x=1'));
    });
  });

  describe('media types (WebhooksService @Consumes / @Produces; AcceptFilter; ExceptionMapper)', () => {
    test('Content-Type: ORCID\'s XML and JSON types, with parameters, or none; anything else 415 / 9001', async () => {
      const types = ['application/vnd.orcid+xml', 'application/orcid+xml', 'application/xml', 'application/vnd.orcid+json',
        'application/orcid+json', 'application/json; charset=UTF-8'];
      for (const [i, type] of types.entries()) {
        const res = await req('PUT', webhookPath(KNOWN, `https://example.org/ct/${i}`), { ...JSON_ACCEPT, 'content-type': type });
        assert.equal(res.statusCode, 201, type);
      }
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'text/xml']) {
        const before = await snapshot(h.store);
        for (const method of ['PUT', 'DELETE'] as const) {
          const res = await req(method, webhookPath(KNOWN, 'https://example.org/ct/0'), { ...JSON_ACCEPT, 'content-type': type });
          assert.equal(res.statusCode, 415, `${method} ${type}`);
          assert.equal(res.json()['error-code'], 9001);
          assert.match(res.json()['developer-message'], /Full validation error: HTTP 415 Unsupported Media Type$/);
        }
        assert.deepEqual(await snapshot(h.store), before);
      }
    });

    test('no Accept, or exactly */*: ORCID\'s XML as application/vnd.orcid+xml', async () => {
      for (const headers of [{}, { accept: '*/*' }] as Record<string, string>[]) {
        const res = await req('DELETE', webhookPath(KNOWN, CB), headers);
        assert.equal(res.statusCode, 404);
        assert.equal(res.headers['content-type'], 'application/vnd.orcid+xml');
        assert.equal(res.body, `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<error xmlns="http://www.orcid.org/ns/error">
    <response-code>404</response-code>
    <developer-message>No webhook found for orcid=${KNOWN}, and uri=${CB}.</developer-message>
    <user-message>The resource was not found.</user-message>
    <error-code>9028</error-code>
    <more-info>${MORE_INFO}</more-info>
</error>
`);
      }
    });

    test('an XML or JSON Accept gets that exact media type back', async () => {
      for (const accept of ['application/xml', 'application/vnd.orcid+xml', 'application/orcid+xml', 'application/json', 'application/vnd.orcid+json', 'application/orcid+json']) {
        const res = await req('DELETE', webhookPath(KNOWN, CB), { accept });
        assert.equal(res.headers['content-type'], accept);
        if (accept.endsWith('json')) assert.equal(res.json()['error-code'], 9028);
        else assert.match(res.body, /<error-code>9028<\/error-code>/);
      }
    });

    test('no Accept: a Content-Type ORCID knows stands in for it (AcceptFilter)', async () => {
      const res = await req('DELETE', webhookPath(KNOWN, CB), { 'content-type': 'application/json' });
      assert.equal(res.headers['content-type'], 'application/json');
      assert.equal(res.json()['error-code'], 9028);
    });

    test('an Accept none of ORCID\'s types satisfies: Jersey\'s 406, nothing written', async () => {
      const before = await snapshot(h.store);
      const res = await req('PUT', webhookPath(KNOWN, 'https://example.org/406'), { accept: 'text/html' });
      assert.equal(res.statusCode, 406);
      assert.match(res.body, /<error-code>9001<\/error-code>/);
      assert.deepEqual(await snapshot(h.store), before);
    });

    test('OPTIONS lists the methods (Jersey\'s automatic OPTIONS); another method is 405 / 9001 with Allow', async () => {
      const options = await req('OPTIONS', webhookPath(KNOWN, CB));
      assert.equal(options.statusCode, 204);
      assert.match(String(options.headers.allow), /DELETE.*PUT/);
      const patch = await req('PATCH', webhookPath(KNOWN, CB));
      assert.equal(patch.statusCode, 405);
      assert.equal(patch.json()['error-code'], 9001);
      assert.equal(patch.headers.allow, options.headers.allow);
    });
  });

  describe('bearer token (OrcidBearerTokenFilter, APIAuthenticationEntryPoint, OAuthErrorResponseHelper)', () => {
    test('no token at all: 403 forbidden, always JSON', async () => {
      for (const headers of [{}, { authorization: 'Bearer ' }] as Record<string, string>[]) {
        const res = await req('PUT', webhookPath(KNOWN, CB), headers, null);
        assert.equal(res.statusCode, 403);
        assert.equal(res.headers['content-type'], 'application/json;charset=UTF-8');
        assert.deepEqual(res.json(), { error: 'forbidden', error_description: 'Forbidden: The server understood the request but refuses to authorize it.' });
      }
    });
    test('unknown token: 401 invalid_token "Invalid access token: <token>", no WWW-Authenticate', async () => {
      const res = await req('DELETE', webhookPath(KNOWN, CB), {}, 'not-a-token');
      assert.equal(res.statusCode, 401);
      assert.deepEqual(res.json(), { error: 'invalid_token', error_description: 'Invalid access token: not-a-token' });
      assert.equal(res.headers['www-authenticate'], undefined);
    });
    test('the token may come in the access_token query parameter; the header prefix is case-insensitive', async () => {
      const viaQuery = await req('PUT', `${webhookPath(KNOWN, 'https://example.org/query-token')}?access_token=${h.token}`, JSON_ACCEPT, null);
      assert.equal(viaQuery.statusCode, 201);
      const lower = await req('PUT', webhookPath(KNOWN, 'https://example.org/query-token'), { authorization: `bearer ${h.token}` }, null);
      assert.equal(lower.statusCode, 204);
    });
  });

  describe('token endpoint (OrcidClientCredentialEndPointDelegatorImpl, OrcidClientCredentialsChecker, OAuthErrorUtils; before 80b50c1fb6)', () => {
    let premium: { id: string; secret: string };
    let pub: { id: string; secret: string };
    before(async () => {
      const p = await createApiClient(h.store, { name: 'Token premium', premium: true });
      premium = { id: p.client.id, secret: p.secret };
      const q = await createApiClient(h.store, { name: 'Token public', premium: false });
      pub = { id: q.client.id, secret: q.secret };
    });
    const token = (fields: Record<string, string>) =>
      h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: FORM, payload: new URLSearchParams({ grant_type: 'client_credentials', ...fields }).toString() });

    test('Cache-Control: no-store and Pragma: no-cache on every answer', async () => {
      const answers = [
        await token({ client_id: premium.id, client_secret: premium.secret, scope: '/webhook' }),
        await token({ client_id: premium.id, client_secret: 'wrong', scope: '/webhook' }),
        await token({ client_id: pub.id, client_secret: pub.secret, scope: '/webhook' }),
      ];
      assert.deepEqual(answers.map((r) => r.statusCode), [200, 401, 400]);
      for (const r of answers) {
        assert.equal(r.headers['cache-control'], 'no-store');
        assert.equal(r.headers.pragma, 'no-cache');
      }
    });
    test('a client not allowed /webhook: 400 invalid_scope "Invalid scope: /webhook"', async () => {
      const res = await token({ client_id: pub.id, client_secret: pub.secret, scope: '/webhook' });
      assert.equal(res.statusCode, 400);
      assert.deepEqual(res.json(), { error: 'invalid_scope', error_description: 'Invalid scope: /webhook' });
    });
    test('no scope at all: 400 invalid_scope "Invalid scope (none)"', async () => {
      const res = await h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: FORM,
        payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: premium.id, client_secret: premium.secret }).toString() });
      assert.equal(res.statusCode, 400);
      assert.deepEqual(res.json(), { error: 'invalid_scope', error_description: 'Invalid scope (none)' });
    });
    test('a wrong secret or an unknown client: 401 invalid_client "Bad client credentials", no client id in the text', async () => {
      for (const [id, secret] of [[premium.id, 'wrong'], ['APP-NOSUCHCLIENT0000', 'x']] as const) {
        const res = await token({ client_id: id, client_secret: secret, scope: '/webhook' });
        assert.equal(res.statusCode, 401);
        assert.deepEqual(res.json(), { error: 'invalid_client', error_description: 'Bad client credentials' });
      }
    });
    test('a scope ORCID does not know: 401 invalid_scope with apiError.9015.developerMessage', async () => {
      const res = await token({ client_id: premium.id, client_secret: premium.secret, scope: '/nonsense' });
      assert.equal(res.statusCode, 401);
      assert.equal(res.json().error, 'invalid_scope');
      assert.match(res.json().error_description, /^One of the provided scopes is not allowed\. .* Provided scopes: \/nonsense$/);
      // The delegator reads the scope names before any token granter sees the grant type.
      const grant = await token({ client_id: premium.id, client_secret: premium.secret, scope: '/nonsense', grant_type: 'password' });
      assert.equal(grant.statusCode, 401);
      assert.equal(grant.json().error, 'invalid_scope');
    });
    test('"Bad client credentials" carries the WWW-Authenticate header of the token filter\'s entry point (orcid-api-security-context.xml: OAuth2AuthenticationEntryPoint, realm "ORCID T2 API", type Bearer); errors of the endpoint itself do not', async () => {
      for (const fields of [{ client_id: premium.id, client_secret: 'wrong' }, { client_id: 'APP-NOSUCHCLIENT0000', client_secret: 'x' }]) {
        const res = await token({ ...fields, scope: '/webhook' });
        assert.equal(res.statusCode, 401);
        assert.equal(res.headers['www-authenticate'], 'Bearer realm="ORCID T2 API", error="invalid_client", error_description="Bad client credentials"');
      }
      // OrcidExceptionMapper's answers (invalid_scope 400 and 401, unsupported_grant_type) have none.
      for (const fields of [{ scope: '/nonsense' }, { scope: '/webhook', grant_type: 'password' }] as Record<string, string>[]) {
        const res = await token({ client_id: premium.id, client_secret: premium.secret, ...fields });
        assert.ok(res.statusCode >= 400);
        assert.equal(res.headers['www-authenticate'], undefined);
      }
      const pubScope = await token({ client_id: pub.id, client_secret: pub.secret, scope: '/webhook' });
      assert.equal(pubScope.headers['www-authenticate'], undefined);
    });
    test('client_id is trimmed before the client is looked up (OrcidOauth2TokenEndPointFilter: clientId.trim())', async () => {
      const res = await token({ client_id: ` ${premium.id}\t`, client_secret: premium.secret, scope: '/webhook' });
      assert.equal(res.statusCode, 200);
      assert.equal(res.json().scope, '/webhook');
      const put = await req('PUT', webhookPath(KNOWN, 'https://example.org/trimmed-client'), JSON_ACCEPT, res.json().access_token);
      assert.equal(put.statusCode, 201);
    });
    test('a deactivated (revoked) client with its right secret: 400 unauthorized_client "Client <id> is deactivated" (Checker.validateClientIsEnabled, ClientDeactivatedException)', async () => {
      const c = await createApiClient(h.store, { name: 'Token deactivated', premium: true });
      await h.store.revokeClient(c.client.id, Date.now());
      const res = await token({ client_id: c.client.id, client_secret: c.secret, scope: '/webhook' });
      assert.equal(res.statusCode, 400);
      assert.deepEqual(res.json(), { error: 'unauthorized_client', error_description: `Client ${c.client.id} is deactivated` });
      assert.equal(res.headers['cache-control'], 'no-store');
      // The Checker runs inside the client-credentials granter: the resource's and the delegator's checks come first.
      const grant = await token({ client_id: c.client.id, client_secret: c.secret, scope: '/webhook', grant_type: 'password' });
      assert.equal(grant.json().error, 'unsupported_grant_type');
      const scope = await token({ client_id: c.client.id, client_secret: c.secret, scope: '/nonsense' });
      assert.equal(scope.statusCode, 401);
      assert.equal(scope.json().error, 'invalid_scope');
      // A wrong secret is still the filter's "Bad client credentials".
      const wrong = await token({ client_id: c.client.id, client_secret: 'wrong', scope: '/webhook' });
      assert.deepEqual(wrong.json(), { error: 'invalid_client', error_description: 'Bad client credentials' });
    });
  });
});

for (const { backend, skip } of await backends()) describe(`where we differ from ORCID, and --compat orcid, on ${backend}`, { skip }, () => {
  test('MOD 11-2 check digit: 400 / 9001 by default; with --compat orcid the record simply does not exist (404 / 9011)', async () => {
    const strict = await startHarness({}, { backend });
    const compat = await startHarness({ compat: 'orcid' }, { backend });
    try {
      const bad = webhookPath('0000-0002-1825-0098', CB);
      const ours = await strict.svc.app.inject({ method: 'PUT', url: bad, headers: { authorization: `Bearer ${strict.token}`, ...JSON_ACCEPT } });
      assert.equal(ours.statusCode, 400);
      assert.equal(ours.json()['error-code'], 9001);
      for (const method of ['PUT', 'DELETE'] as const) {
        const orcid = await compat.svc.app.inject({ method, url: bad, headers: { authorization: `Bearer ${compat.token}`, ...JSON_ACCEPT } });
        assert.equal(orcid.statusCode, 404, method);
        assert.equal(orcid.json()['error-code'], 9011, method);
      }
    } finally {
      await strict.close();
      await compat.close();
    }
  });

  test('scheme-less callbacks: refused by default; with --compat orcid stored as given and called at http:// + it; the address policy still applies', async () => {
    const receiver = await startReceiver();
    const port = new URL(receiver.url()).port;
    const strict = await startHarness({ allowedTargets: ['127.0.0.0/8', '::1/128'] }, { backend });
    const compat = await startHarness({ compat: 'orcid', allowedTargets: ['127.0.0.0/8', '::1/128'] }, { backend });
    const guarded = await startHarness({ compat: 'orcid' }, { backend });
    try {
      const cb = `localhost:${port}/schemeless`;
      for (const hh of [strict, compat, guarded]) await hh.store.addRecords([KNOWN], Date.now());
      const put = (hh: Harness, uri: string) => hh.svc.app.inject({ method: 'PUT', url: webhookPath(KNOWN, uri), headers: { authorization: `Bearer ${hh.token}`, ...JSON_ACCEPT } });

      const ours = await put(strict, cb);
      assert.equal(ours.statusCode, 400);
      assert.equal(ours.json()['error-code'], 9012);

      assert.equal((await put(compat, cb)).statusCode, 201);
      assert.ok(await compat.store.findWebhook(compat.clientId, KNOWN, cb), 'stored exactly as given');
      const touched = await compat.svc.app.inject({ method: 'PUT', url: `/admin/api/records/${KNOWN}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      assert.ok(touched.statusCode < 300);
      const [call] = await receiver.waitFor(1, 10_000);
      assert.equal(call!.method, 'POST');
      assert.equal(call!.path, '/schemeless');

      // SSRF protection stays on regardless: the http:// URL it would be called at is checked.
      const refused = await put(guarded, cb);
      assert.equal(refused.statusCode, 400);
      assert.match(refused.json()['developer-message'], /loopback/);
      // Encoded twice is never what the integrator meant, compat or not.
      const twice = await put(guarded, encodeURIComponent('https://example.org/x'));
      assert.equal(twice.statusCode, 400);
      assert.match(twice.json()['developer-message'], /URL-encoded twice/);
    } finally {
      await strict.close();
      await compat.close();
      await guarded.close();
      await receiver.close();
    }
  });

  test('per-client isolation: another client\'s webhook is 404 / 9028 to you (ORCID: 403 / 9014)', async () => {
    const h = await startHarness({}, { backend });
    try {
      await h.store.addRecords([KNOWN], Date.now());
      assert.equal((await h.svc.app.inject({ method: 'PUT', url: webhookPath(KNOWN, CB), headers: { authorization: `Bearer ${h.token}` } })).statusCode, 201);
      const other = await createApiClient(h.store, { name: 'Other', premium: true });
      const otherToken = await getToken(h.svc, other.client.id, other.secret);
      const res = await h.svc.app.inject({ method: 'DELETE', url: webhookPath(KNOWN, CB), headers: { authorization: `Bearer ${otherToken}`, ...JSON_ACCEPT } });
      assert.equal(res.statusCode, 404);
      assert.equal(res.json()['error-code'], 9028);
    } finally {
      await h.close();
    }
  });
});
