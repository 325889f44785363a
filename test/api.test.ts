import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { createApiClient } from '../src/ops/clients.ts';
import { TOKEN_CACHE_MS } from '../src/api/auth.ts';
import { ADMIN_TOKEN, SEED_CALLBACK, SEED_ENCODED, SEED_ORCID, backends, getToken, snapshot, startHarness, webhookPath, type Harness } from './helpers/harness.ts';

const ORCID_B = '0000-0002-1825-0097';
const form = (o: Record<string, string>) => new URLSearchParams(o).toString();
const FORM = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };

for (const { backend, skip } of await backends()) describe(`ORCID API on ${backend}`, { skip }, () => {
  let h: Harness;
  let publicClient: { id: string; secret: string };
  let premiumSecret: string;
  let premiumId: string;

  before(async () => {
    h = await startHarness({}, { backend });
    await h.store.addRecords([SEED_ORCID, ORCID_B], Date.now());
    const pub = await createApiClient(h.store, { name: 'Public', premium: false });
    publicClient = { id: pub.client.id, secret: pub.secret };
    const prem = await createApiClient(h.store, { name: 'Second premium', premium: true });
    premiumId = prem.client.id;
    premiumSecret = prem.secret;
  });
  after(() => h.close());

  const put = (path: string, token: string | null = h.token, headers: Record<string, string> = {}) =>
    h.svc.app.inject({ method: 'PUT', url: path, headers: { accept: 'application/json', ...(token && { authorization: `Bearer ${token}` }), ...headers } });
  const del = (path: string, token: string | null = h.token, headers: Record<string, string> = {}) =>
    h.svc.app.inject({ method: 'DELETE', url: path, headers: { accept: 'application/json', ...(token && { authorization: `Bearer ${token}` }), ...headers } });

  describe('POST /oauth/token', () => {
    test('issues a /webhook token with exactly ORCID\'s fields', async () => {
      const res = await h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: FORM, payload: form({ client_id: premiumId, client_secret: premiumSecret, grant_type: 'client_credentials', scope: '/webhook' }) });
      assert.equal(res.statusCode, 200);
      const body = res.json();
      assert.deepEqual(Object.keys(body), ['access_token', 'token_type', 'refresh_token', 'expires_in', 'scope', 'orcid']);
      assert.match(body.access_token, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      assert.equal(body.token_type, 'bearer');
      assert.equal(body.expires_in, 631138518);
      assert.equal(body.scope, '/webhook');
      assert.equal(body.orcid, null);
      assert.notEqual(body.refresh_token, body.access_token);
    });

    test('accepts HTTP Basic client credentials', async () => {
      const basic = Buffer.from(`${premiumId}:${premiumSecret}`).toString('base64');
      const res = await h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: { ...FORM, authorization: `Basic ${basic}` }, payload: form({ grant_type: 'client_credentials', scope: '/webhook' }) });
      assert.equal(res.statusCode, 200);
      assert.equal(res.json().scope, '/webhook');
    });

    test('bad secret and unknown client: 401 invalid_client', async () => {
      for (const [id, secret] of [[premiumId, 'wrong'], ['APP-NOPE', 'x']] as const) {
        const res = await h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: FORM, payload: form({ client_id: id, client_secret: secret, grant_type: 'client_credentials', scope: '/webhook' }) });
        assert.equal(res.statusCode, 401);
        assert.equal(res.json().error, 'invalid_client');
        assert.ok(res.json().error_description.length > 10);
      }
    });

    // Updated for issue 9: ORCID answers 400 here (OrcidClientCredentialsChecker), not 401.
    test('non-premium client asking for /webhook: 400 invalid_scope; /read-public is fine', async () => {
      const res = await h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: FORM, payload: form({ client_id: publicClient.id, client_secret: publicClient.secret, grant_type: 'client_credentials', scope: '/webhook' }) });
      assert.equal(res.statusCode, 400);
      assert.equal(res.json().error, 'invalid_scope');
      const ok = await h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: FORM, payload: form({ client_id: publicClient.id, client_secret: publicClient.secret, grant_type: 'client_credentials', scope: '/read-public' }) });
      assert.equal(ok.statusCode, 200);
      const unknown = await h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: FORM, payload: form({ client_id: premiumId, client_secret: premiumSecret, grant_type: 'client_credentials', scope: '/activities/update' }) });
      assert.equal(unknown.json().error, 'invalid_scope');
    });

    test('wrong grant type, missing grant, missing scope, not form-encoded', async () => {
      const grant = await h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: FORM, payload: form({ client_id: premiumId, client_secret: premiumSecret, grant_type: 'password', scope: '/webhook' }) });
      assert.equal(grant.statusCode, 400);
      assert.equal(grant.json().error, 'unsupported_grant_type');
      // ORCID (OrcidApiCommonEndpoints): UnsupportedGrantTypeException("grant_type is missing").
      const missing = await h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: FORM, payload: form({ client_id: premiumId, client_secret: premiumSecret, scope: '/webhook' }) });
      assert.equal(missing.statusCode, 400);
      assert.deepEqual(missing.json(), { error: 'unsupported_grant_type', error_description: 'grant_type is missing' });
      const empty = await h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: FORM, payload: form({ client_id: premiumId, client_secret: premiumSecret, grant_type: '', scope: '/webhook' }) });
      assert.equal(empty.statusCode, 400);
      assert.equal(empty.json().error, 'unsupported_grant_type');
      const noScope = await h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: FORM, payload: form({ client_id: premiumId, client_secret: premiumSecret, grant_type: 'client_credentials' }) });
      assert.equal(noScope.statusCode, 400);
      assert.equal(noScope.json().error, 'invalid_scope');
      const json = await h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ grant_type: 'client_credentials' }) });
      assert.equal(json.statusCode, 400);
      assert.equal(json.json().error, 'invalid_request');
      // A body its parser refuses (before the endpoint sees it) is answered in OAuth's format too.
      const broken = await h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: { 'content-type': 'application/json' }, payload: '{bad' });
      assert.equal(broken.statusCode, 400);
      assert.deepEqual(Object.keys(broken.json()).sort(), ['error', 'error_description']);
      assert.equal(broken.json().error, 'invalid_request');
      assert.match(broken.json().error_description, /not valid JSON/);
      assert.equal(broken.headers['cache-control'], 'no-store');
    });
  });

  describe('odd input never gives a 5xx', () => {
    test('Basic credentials with a bad %-escape, or a NUL in client_id: 401 invalid_client', async () => {
      const basic = Buffer.from('a%zz:b').toString('base64');
      const bad = await h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: { ...FORM, authorization: `Basic ${basic}` }, payload: form({ grant_type: 'client_credentials', scope: '/webhook' }) });
      assert.equal(bad.statusCode, 401);
      assert.equal(bad.json().error, 'invalid_client');
      const nul = await h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: FORM, payload: 'client_id=%00&client_secret=x&grant_type=client_credentials&scope=%2Fwebhook' });
      assert.equal(nul.statusCode, 401);
      assert.equal(nul.json().error, 'invalid_client');
    });

    test('a NUL or an out-of-range number reaching the database: 400, not 500', async () => {
      const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
      for (const url of ['/admin/api/webhooks?search=%00', '/admin/api/webhooks/99999999999999999999999', '/admin/api/clients/%00/revoke']) {
        const res = await h.svc.app.inject({ method: url.endsWith('revoke') ? 'POST' : 'GET', url, headers: auth });
        assert.ok(res.statusCode < 500, `${url}: ${res.statusCode} ${res.body}`);
      }
    });

    // Updated for issue 9: ORCID's Jersey 405 is error-code 9001.
    test('an unsupported method on a webhook: 405 with error-code 9001', async () => {
      const res = await h.svc.app.inject({ method: 'PATCH', url: webhookPath(ORCID_B, 'https://example.org/x'), headers: { authorization: `Bearer ${h.token}`, accept: 'application/json' } });
      assert.equal(res.statusCode, 405);
      assert.equal(res.json()['error-code'], 9001);
      assert.match(String(res.headers.allow), /PUT/);
    });

    // Updated for issue 9: ORCID sends no WWW-Authenticate; the description quotes the token up to a comma.
    test('an odd token: 401 quoting it as ORCID does, no WWW-Authenticate header', async () => {
      const res = await put(webhookPath(ORCID_B, 'https://example.org/x'), 'a"b,c');
      assert.equal(res.statusCode, 401);
      assert.equal(res.headers['www-authenticate'], undefined);
      assert.equal(res.json().error_description, 'Invalid access token: a"b');
    });
  });

  test('PUT /admin/api/records/{orcid} answers the modified time its write left, with no read after it', async () => {
    const orcid = '0000-0003-1415-9269';
    const getRecord = h.store.getRecord.bind(h.store);
    let reads = 0;
    h.store.getRecord = async (o: string) => {
      reads++;
      return getRecord(o);
    };
    try {
      const touch = (body?: object) => h.svc.app.inject({
        method: 'PUT', url: `/admin/api/records/${orcid}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body && { 'content-type': 'application/json' }) },
        ...(body && { payload: JSON.stringify(body) }),
      });
      const stored = async () => new Date((await getRecord(orcid))!.modifiedAt).toISOString();
      const created = await touch({ modified: '2031-01-01T00:00:00.000Z' });
      assert.equal(created.statusCode, 201);
      const c = created.json() as Record<string, unknown>;
      assert.deepEqual([c.orcid, c.modified, c.created, c.changed, c.ignored], [orcid, '2031-01-01T00:00:00.000Z', true, false, false]);
      // A touch "now" is before 2031: the store makes it the current time + 1 ms, so it still counts.
      const touched = await touch();
      assert.equal(touched.statusCode, 200);
      assert.equal(touched.json().modified, '2031-01-01T00:00:00.001Z');
      assert.equal(touched.json().changed, true);
      assert.equal(touched.json().modified, await stored());
      // An older change is ignored: the answer is the record's current time, not the change's.
      const older = await touch({ modified: '2030-01-01T00:00:00.000Z' });
      assert.equal(older.json().ignored, true);
      assert.equal(older.json().modified, '2031-01-01T00:00:00.001Z');
      assert.equal(reads, 0, 'no getRecord on the PUT path');
    } finally {
      h.store.getRecord = getRecord;
    }
  });

  describe('PUT and DELETE /{orcid}/webhook/{callback}', () => {
    test('Location is the request path exactly as sent, as ORCID answers', async () => {
      const raw = 'https%3a%2f%2fexample.org%2fLower%2dcase';
      const res = await put(`/${ORCID_B}/webhook/${raw}`, h.token, { host: 'api.example.org' });
      assert.equal(res.statusCode, 201);
      assert.equal(res.headers.location, `http://api.example.org/${ORCID_B}/webhook/${raw}`);
      assert.ok(await h.store.findWebhook(h.clientId, ORCID_B, 'https://example.org/Lower-case'));
    });

    test('the seed example: 201 with an absolute Location, then 204', async () => {
      const res = await put(`/${SEED_ORCID}/webhook/${SEED_ENCODED}`, h.token, { host: 'api.example.org' });
      assert.equal(res.statusCode, 201);
      assert.equal(res.headers.location, `http://api.example.org/${SEED_ORCID}/webhook/${SEED_ENCODED}`);
      assert.equal(res.body, '');
      const stored = await h.store.findWebhook(h.clientId, SEED_ORCID, SEED_CALLBACK);
      assert.ok(stored, 'the callback is stored decoded exactly once');
      const again = await put(`/${SEED_ORCID}/webhook/${SEED_ENCODED}`);
      assert.equal(again.statusCode, 204);
      assert.equal(again.body, '');
      const del1 = await del(`/${SEED_ORCID}/webhook/${SEED_ENCODED}`);
      assert.equal(del1.statusCode, 204);
      assert.equal(await h.store.findWebhook(h.clientId, SEED_ORCID, SEED_CALLBACK), null);
    });

    test('DELETE of a webhook that does not exist: 404 with error-code 9028', async () => {
      const res = await del(webhookPath(ORCID_B, 'https://example.org/never'));
      assert.equal(res.statusCode, 404);
      const body = res.json();
      assert.equal(body['response-code'], 404);
      assert.equal(body['error-code'], 9028);
      assert.match(body['developer-message'], /No webhook found for orcid=0000-0002-1825-0097, and uri=https:\/\/example.org\/never/);
      assert.equal(body['more-info'], 'https://members.orcid.org/api/resources/troubleshooting');
      assert.deepEqual(Object.keys(body), ['response-code', 'developer-message', 'user-message', 'error-code', 'more-info']);
    });

    test('a webhook belongs to its client: another client registers its own, cannot delete ours', async () => {
      const cb = 'https://example.org/shared';
      assert.equal((await put(webhookPath(ORCID_B, cb))).statusCode, 201);
      const other = await getToken(h.svc, premiumId, premiumSecret);
      assert.equal((await del(webhookPath(ORCID_B, cb), other)).statusCode, 404, 'another client\'s webhook is simply not found');
      assert.equal((await put(webhookPath(ORCID_B, cb), other)).statusCode, 201, 'the other client gets its own');
      assert.equal((await put(webhookPath(ORCID_B, cb), other)).statusCode, 204);
      assert.equal((await h.store.listWebhooks({ orcid: ORCID_B, limit: 10 })).filter((w) => w.url === cb).length, 2);
      assert.equal((await del(webhookPath(ORCID_B, cb), other)).statusCode, 204);
      assert.ok(await h.store.findWebhook(h.clientId, ORCID_B, cb), 'ours is untouched');
    });

    // Updated for issue 9: no token is ORCID's 403 forbidden; a public client's token 401 / 9017.
    test('token problems: 403 forbidden (missing), 401 invalid_token (unknown, expired, revoked client); 401 9017 for a public client', async () => {
      const path = webhookPath(ORCID_B, 'https://example.org/auth');
      const missing = await put(path, null);
      assert.equal(missing.statusCode, 403);
      assert.equal(missing.json().error, 'forbidden');
      const unknown = await put(path, '00000000-0000-4000-8000-000000000000');
      assert.equal(unknown.statusCode, 401);
      assert.equal(unknown.json().error, 'invalid_token');
      assert.match(unknown.json().error_description, /^Invalid access token: /);

      const readPublic = await getToken(h.svc, publicClient.id, publicClient.secret, '/read-public');
      const scope = await put(path, readPublic);
      assert.equal(scope.statusCode, 401);
      assert.equal(scope.json()['error-code'], 9017);

      const revokedClient = await createApiClient(h.store, { name: 'Soon revoked', premium: true });
      const revokedToken = await getToken(h.svc, revokedClient.client.id, revokedClient.secret);
      assert.equal((await put(path, revokedToken)).statusCode, 201);
      // Revoked behind this process's back (the CLI, another API process): refused within TOKEN_CACHE_MS.
      await h.store.revokeClient(revokedClient.client.id, Date.now());
      const revokedAt = performance.now();
      // Until TOKEN_CACHE_MS has passed the answer may still come from the cache (cached before the
      // revocation); a request that starts after it must be refused. No upper bound on the
      // machine's speed: the check is on when the request starts, not when it ends.
      await new Promise((r) => setTimeout(r, Math.max(0, TOKEN_CACHE_MS - (performance.now() - revokedAt)) + 5));
      const revoked = await put(path, revokedToken);
      assert.equal(revoked.statusCode, 401, 'refused once a second has passed since the revocation');
      assert.equal(revoked.json().error, 'invalid_token');

      const expiring = await createApiClient(h.store, { name: 'Expired', premium: true });
      const { hashToken } = await import('../src/domain/secrets.ts');
      await h.store.createToken({ tokenHash: hashToken('expired-token-value'), clientId: expiring.client.id, scope: '/webhook', createdAt: 0, expiresAt: Date.now() - 1 });
      const expired = await put(path, 'expired-token-value');
      assert.equal(expired.statusCode, 401);
      assert.equal(expired.json().error_description, 'Invalid access token: expired-token-value');
    });

    test('iD format and check character: 400 (ORCID skips this, we do not)', async () => {
      for (const bad of ['0000-0002-1825-0098', '0000-0002-1825-009', '0000000218250097', '0000-0002-1825-009x']) {
        const res = await put(webhookPath(bad, 'https://example.org/x'));
        assert.equal(res.statusCode, 400, bad);
        assert.equal(res.json()['error-code'], 9001);
        assert.match(res.json()['developer-message'], new RegExp(bad));
      }
    });

    test('unknown record in strict mode: 404 with error-code 9011', async () => {
      const res = await put(webhookPath('0000-0001-5109-3700', 'https://example.org/x'));
      assert.equal(res.statusCode, 404);
      assert.equal(res.json()['error-code'], 9011);
    });

    test('invalid callbacks: 400 with error-code 9012 saying why', async () => {
      const cases: [string, RegExp][] = [
        ['ftp://example.org/x', /http/],
        ['/relative/path', /syntactically incorrect/],
        ['https://example.org/a|b', /^The client application made a bad request to the ORCID API\. Full validation error: Webhook uri: https:\/\/example\.org\/a\|b is syntactically incorrect$/],
        ['https://user:pass@example.org/x', /credentials|user/i],
        [`https://example.org/${'a'.repeat(2100)}`, /2,?048/],
        ['http://169.254.169.254/latest/meta-data', /link-local/],
        ['http://127.0.0.1/x', /loopback/],
      ];
      for (const [cb, why] of cases) {
        const res = await put(webhookPath(ORCID_B, cb));
        assert.equal(res.statusCode, 400, cb);
        assert.equal(res.json()['error-code'], 9012, cb);
        assert.match(res.json()['developer-message'], why, cb);
      }
      const badEncoding = await put(`/${ORCID_B}/webhook/https%3A%2F%2Fexample.org%2F%E0%A4%A`);
      assert.equal(badEncoding.statusCode, 400);
      assert.equal(badEncoding.json()['error-code'], 9012);
    });

    test('XML errors with ORCID\'s namespace when asked for', async () => {
      for (const accept of ['application/xml', 'application/vnd.orcid+xml']) {
        const res = await del(webhookPath(ORCID_B, 'https://example.org/none'), h.token, { accept });
        assert.equal(res.statusCode, 404);
        assert.equal(res.headers['content-type'], accept);
        assert.match(res.body, /<error xmlns="http:\/\/www.orcid.org\/ns\/error">/);
        assert.match(res.body, /<error-code>9028<\/error-code>/);
        assert.match(res.body, /<response-code>404<\/response-code>/);
      }
    });

    test('an empty JSON body with a Content-Type is accepted', async () => {
      const res = await put(webhookPath(ORCID_B, 'https://example.org/ctype'), h.token, { 'content-type': 'application/json', 'content-length': '0' });
      assert.equal(res.statusCode, 201);
    });

    test('no rejected request writes anything', async () => {
      const before = await snapshot(h.store);
      const bad: (() => Promise<{ statusCode: number }>)[] = [
        () => put(webhookPath(ORCID_B, 'https://example.org/nowrite'), null),
        () => put(webhookPath(ORCID_B, 'https://example.org/nowrite'), 'not-a-token'),
        () => put(webhookPath('0000-0002-1825-0098', 'https://example.org/nowrite')),
        () => put(webhookPath('0000-0001-5109-3700', 'https://example.org/nowrite')),
        () => put(webhookPath(ORCID_B, 'ftp://example.org/nowrite')),
        () => put(webhookPath(ORCID_B, 'http://10.0.0.1/nowrite')),
        () => del(webhookPath(ORCID_B, 'https://example.org/nowrite')),
        () => h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: FORM, payload: form({ client_id: premiumId, client_secret: 'bad', grant_type: 'client_credentials', scope: '/webhook' }) }),
        () => h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: FORM, payload: form({ client_id: publicClient.id, client_secret: publicClient.secret, grant_type: 'client_credentials', scope: '/webhook' }) }),
        () => h.svc.app.inject({ method: 'PUT', url: `/admin/api/records/${ORCID_B}`, headers: { authorization: 'Bearer wrong' } }),
        () => h.svc.app.inject({ method: 'PUT', url: '/admin/api/records/0000-0002-1825-0098', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }),
        () => h.svc.app.inject({ method: 'POST', url: '/admin/api/changes', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, payload: JSON.stringify({ changes: [{ orcid: ORCID_B, modified: '2030-01-01T00:00:00Z' }, { orcid: 'bad', modified: '2030-01-01T00:00:00Z' }] }) }),
        () => h.svc.app.inject({ method: 'POST', url: '/admin/api/changes', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, payload: '{"changes":' }),
      ];
      for (const call of bad) {
        const res = await call();
        assert.ok(res.statusCode >= 400 && res.statusCode < 500, `expected a 4xx, got ${res.statusCode}`);
      }
      assert.deepEqual(await snapshot(h.store), before);
    });

    test('unknown endpoints: 404 in ORCID format', async () => {
      const res = await h.svc.app.inject({ method: 'GET', url: '/v3.0/0000-0002-1825-0097/record' });
      assert.equal(res.statusCode, 404);
      assert.equal(res.json()['response-code'], 404);
    });
  });
});

describe('open records mode', () => {
  test('any valid iD may get a webhook; the record is created', async () => {
    const h = await startHarness({ records: 'open' });
    try {
      const res = await h.svc.app.inject({ method: 'PUT', url: webhookPath('0000-0001-5109-3700', 'https://example.org/open'), headers: { authorization: `Bearer ${h.token}` } });
      assert.equal(res.statusCode, 201);
      assert.ok(await h.store.getRecord('0000-0001-5109-3700'));
      const bad = await h.svc.app.inject({ method: 'PUT', url: webhookPath('0000-0001-5109-3701', 'https://example.org/open'), headers: { authorization: `Bearer ${h.token}` } });
      assert.equal(bad.statusCode, 400);
      assert.equal(await h.store.getRecord('0000-0001-5109-3701'), null);
    } finally {
      await h.close();
    }
  });

  test('a registration refused by the webhook cap creates no record', async () => {
    const h = await startHarness({ records: 'open', maxWebhooksPerClient: 1 });
    try {
      const first = await h.svc.app.inject({ method: 'PUT', url: webhookPath('0000-0001-5109-3700', 'https://example.org/one'), headers: { authorization: `Bearer ${h.token}` } });
      assert.equal(first.statusCode, 201);
      const before = await snapshot(h.store);
      const capped = await h.svc.app.inject({ method: 'PUT', url: webhookPath('0000-0002-1825-0097', 'https://example.org/two'), headers: { authorization: `Bearer ${h.token}`, accept: 'application/json' } });
      assert.equal(capped.statusCode, 403);
      assert.equal(capped.json()['error-code'], 9050);
      assert.deepEqual(await snapshot(h.store), before);
    } finally {
      await h.close();
    }
  });
});

describe('over a real socket', () => {
  test('the seed page\'s exact request: PUT with Accept, Bearer and Content-Length: 0', async () => {
    const h = await startHarness({ baseUrl: 'https://api.sandbox.example.org' }, { listen: true });
    try {
      await h.store.addRecords([SEED_ORCID], Date.now());
      const url = new URL(h.svc.url);
      const send = (headers: Record<string, string>) => new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
        const req = httpRequest({ host: url.hostname, port: url.port, method: 'PUT', path: `/${SEED_ORCID}/webhook/${SEED_ENCODED}`, headers }, (res) => {
          let body = '';
          res.on('data', (c) => { body += c; });
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
        });
        req.on('error', reject);
        req.end();
      });
      const first = await send({ Accept: 'application/json', Authorization: `Bearer ${h.token}`, 'Content-Length': '0' });
      assert.equal(first.status, 201);
      assert.equal(first.headers.location, `https://api.sandbox.example.org/${SEED_ORCID}/webhook/${SEED_ENCODED}`);
      // Without Content-Length (chunked, empty body) works too.
      const second = await send({ Accept: 'application/json', Authorization: `Bearer ${h.token}`, 'Transfer-Encoding': 'chunked' });
      assert.equal(second.status, 204);
    } finally {
      await h.close();
    }
  });
});
