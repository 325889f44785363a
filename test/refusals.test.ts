/*
 * Requests no route should take, or that carry what one store could keep and the other not: each
 * gets a 4xx in the documented format, the same on both stores, and changes nothing.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { InjectOptions } from 'fastify';
import { ADMIN_TOKEN, SEED_ORCID, backends, snapshot, startHarness, webhookPath, type Harness } from './helpers/harness.ts';

const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` };
const JSON_ADMIN = { ...ADMIN, 'content-type': 'application/json' };

/** What the server answers on a raw socket (for requests inject cannot make), up to its close. */
function raw(url: string, request: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(request));
    let data = '';
    socket.setTimeout(3000, () => socket.destroy());
    socket.on('data', (d) => { data += String(d); });
    socket.on('close', () => resolve(data));
    socket.on('error', reject);
  });
}

const bodyOf = (rawResponse: string) => JSON.parse(rawResponse.slice(rawResponse.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;

for (const { backend, skip } of await backends()) describe(`refusals on ${backend}`, { skip }, () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({}, { backend, listen: true });
    await h.store.addRecords([SEED_ORCID], Date.now());
  });
  after(() => h?.close());

  /** The answer, with the check that nothing changed. */
  async function refused(opts: InjectOptions, status: number, code: number, detail: RegExp): Promise<Record<string, unknown>> {
    const before = await snapshot(h.store);
    const res = await h.svc.app.inject(opts);
    assert.equal(res.statusCode, status, `${opts.method} ${opts.url}: ${res.body}`);
    const body = res.json() as Record<string, unknown>;
    assert.equal(body['error-code'], code, res.body);
    assert.equal(body['response-code'], status);
    assert.match(String(body['developer-message']), detail);
    assert.deepEqual(await snapshot(h.store), before, `${opts.method} ${opts.url} changed nothing`);
    return { ...body, allow: res.headers.allow };
  }

  test('a path of ours with a method it does not take: 405 / 9054 naming the methods, with Allow; OPTIONS lists them', async () => {
    const get = await refused({ method: 'GET', url: '/admin/api/changes', headers: ADMIN }, 405, 9054, /^405 Method Not Allowed: .*GET is not a method of \/admin\/api\/changes: it takes POST$/);
    assert.equal(get.allow, 'POST');
    const health = await refused({ method: 'POST', url: '/health' }, 405, 9054, /takes GET, HEAD/);
    assert.equal(health.allow, 'GET, HEAD');
    const replay = await refused({ method: 'DELETE', url: '/admin/api/webhooks/wh_00000000000000000000000000000000/replay', headers: ADMIN }, 405, 9054, /takes POST/);
    assert.equal(replay.allow, 'POST');
    const options = await h.svc.app.inject({ method: 'OPTIONS', url: '/admin/api/webhooks' });
    assert.equal(options.statusCode, 204);
    assert.equal(options.headers.allow, 'GET, HEAD');
    // A path that does not exist stays 404 / 9053, a trailing slash included.
    await refused({ method: 'GET', url: '/admin/api/nothing-here', headers: ADMIN }, 404, 9053, /No endpoint GET \/admin\/api\/nothing-here/);
    await refused({ method: 'GET', url: '/health/' }, 404, 9053, /No endpoint GET \/health\//);
  });

  test('the token endpoint answers a wrong method in OAuth\'s format, with Allow', async () => {
    const res = await h.svc.app.inject({ method: 'PUT', url: '/oauth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'a=b' });
    assert.equal(res.statusCode, 405);
    assert.equal(res.headers.allow, 'POST');
    assert.equal(res.json().error, 'invalid_request');
    const bodiless = await h.svc.app.inject({ method: 'GET', url: '/oauth/token' });
    assert.equal(bodiless.statusCode, 405);
    assert.equal(bodiless.json().error, 'invalid_request');
  });

  test('ORCID\'s path with a method fastify does not route (PROPFIND): Jersey\'s 405 / 9001 with its Allow, as PATCH gets', async () => {
    for (const method of ['PROPFIND', 'PATCH']) {
      const res = await raw(h.svc.url, `${method} ${webhookPath(SEED_ORCID, 'https://example.org/cb')} HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nAuthorization: Bearer ${h.token}\r\nConnection: close\r\n\r\n`);
      assert.match(res, /^HTTP\/1\.1 405 /, `${method}: ${res.slice(0, 200)}`);
      assert.match(res, /\r\nallow: DELETE, GET, HEAD, OPTIONS, POST, PUT\r\n/i);
      assert.equal(bodyOf(res)['error-code'], 9001);
    }
  });

  test('the admin API takes JSON only: another media type, or none, with a body is 415 / 9055', async () => {
    const payload = JSON.stringify({ changes: [{ orcid: SEED_ORCID, modified: '2026-01-01T00:00:00Z' }] });
    await refused({ method: 'POST', url: '/admin/api/changes', headers: { ...ADMIN, 'content-type': 'text/plain' }, payload }, 415, 9055, /takes application\/json bodies \(Content-Type: text\/plain\)/);
    await refused({ method: 'POST', url: '/admin/api/changes', headers: { ...ADMIN, 'content-type': 'application/xml' }, payload }, 415, 9055, /application\/xml/);
    await refused({ method: 'POST', url: '/admin/api/clients', headers: { ...ADMIN, 'content-type': 'application/x-www-form-urlencoded' }, payload: 'name=x' }, 415, 9055, /takes application\/json/);
  });

  test('a NUL in a query or path parameter is 400 / 9052 naming it, before any query (PostgreSQL cannot hold one, SQLite can)', async () => {
    await refused({ method: 'GET', url: '/admin/api/webhooks?search=%00', headers: ADMIN }, 400, 9052, /search: must not contain a NUL character/);
    await refused({ method: 'GET', url: '/admin/api/webhooks?client=a%00b', headers: ADMIN }, 400, 9052, /client: must not contain a NUL/);
    await refused({ method: 'GET', url: '/admin/api/clients/%00/delivery', headers: ADMIN }, 400, 9052, /id: must not contain a NUL/);
    await refused({ method: 'POST', url: '/admin/api/clients/%00/recover', headers: JSON_ADMIN, payload: JSON.stringify({ since: '2026-01-01T00:00:00Z' }) }, 400, 9052, /id: must not contain a NUL/);
    await refused({ method: 'PUT', url: '/admin/api/clients/%00/payload', headers: JSON_ADMIN, payload: JSON.stringify({ mode: 'json' }) }, 400, 9052, /id: must not contain a NUL/);
    await refused({ method: 'GET', url: `/${SEED_ORCID}/webhook/${encodeURIComponent('https://example.org/\u0000')}`, headers: { authorization: `Bearer ${h.token}` } }, 400, 9052, /callback: must not contain a NUL/);
  });

  test('a JSON string with a lone surrogate escape is 400 / 9052; a pair (an emoji) is fine', async () => {
    await refused({ method: 'POST', url: '/admin/api/clients', headers: JSON_ADMIN, payload: '{"name":"\\ud800"}' }, 400, 9052, /not valid Unicode: .*lone UTF-16 surrogate/);
    await refused({ method: 'POST', url: '/admin/api/clients', headers: JSON_ADMIN, payload: '{"name":"a\\udc00b"}' }, 400, 9052, /lone UTF-16 surrogate/);
    const ok = await h.svc.app.inject({ method: 'POST', url: '/admin/api/clients', headers: JSON_ADMIN, payload: '{"name":"smile \\ud83d\\ude00"}' });
    assert.equal(ok.statusCode, 201, ok.body);
    assert.equal(ok.json().client.name, 'smile 😀');
  });

  test('errors name where the bad value was: a query parameter, a path parameter; a 9052 sent as 413 or 431 says so', async () => {
    await refused({ method: 'GET', url: '/admin/api/webhooks?foo=bar', headers: ADMIN }, 400, 9052, /query: Unrecognized key: "foo"/);
    await refused({ method: 'POST', url: '/admin/api/webhooks/WH_0/replay', headers: ADMIN }, 400, 9052, /id: must be a webhook id/);
    const big = await h.svc.app.inject({ method: 'PUT', url: `/admin/api/records/${SEED_ORCID}`, headers: JSON_ADMIN, payload: JSON.stringify({ modified: 'x'.repeat(100 * 1024) }) });
    assert.equal(big.statusCode, 413);
    assert.match(big.json()['developer-message'], /^413 Content Too Large: The request was not valid\./);
  });

  test('search folds A-Z only, alike on both stores (PostgreSQL\'s lower() also folded É to é)', async () => {
    const reg = await h.store.registerWebhook({ clientId: h.clientId, orcid: SEED_ORCID, url: 'https://Example.org/café', host: 'example.org', now: Date.now() });
    assert.equal(reg.outcome, 'created');
    const search = async (q: string) => ((await h.svc.app.inject({ method: 'GET', url: `/admin/api/webhooks?search=${encodeURIComponent(q)}`, headers: ADMIN })).json() as { webhooks: unknown[] }).webhooks.length;
    assert.equal(await search('EXAMPLE.ORG/CAF'), 1);
    assert.equal(await search('café'), 1);
    assert.equal(await search('CAFÉ'), 0);
    await h.store.deleteWebhook(h.clientId, SEED_ORCID, 'https://Example.org/café');
  });

  test('the client API takes its token in the access_token query parameter too', async () => {
    const res = await h.svc.app.inject({ method: 'GET', url: `/webhooks?access_token=${encodeURIComponent(h.token)}`, headers: { accept: 'application/json' } });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(Object.keys(res.json()).sort(), ['next_cursor', 'webhooks']);
    const wrong = await h.svc.app.inject({ method: 'GET', url: '/webhooks?access_token=nope', headers: { accept: 'application/json' } });
    assert.equal(wrong.statusCode, 401, wrong.body);
  });

  test('without Host (HTTP/1.1), and CONNECT: a 4xx in ORCID\'s format, never a bare answer or silence', async () => {
    const noHost = await raw(h.svc.url, 'GET /health HTTP/1.1\r\nConnection: close\r\n\r\n');
    assert.match(noHost, /^HTTP\/1\.1 400 /);
    assert.match(String(bodyOf(noHost)['developer-message']), /must carry a Host header/);
    const tunnel = await raw(h.svc.url, 'CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n');
    assert.match(tunnel, /^HTTP\/1\.1 405 /);
    assert.equal(bodyOf(tunnel)['error-code'], 9054);
    // HTTP/1.0 needs no Host.
    assert.match(await raw(h.svc.url, 'GET /health HTTP/1.0\r\n\r\n'), /^HTTP\/1\.1 200 /);
  });

  // Found by registering callbacks holding %01 and %1B: the default answer (ORCID's XML) echoed
  // them raw, and no XML parser reads a document holding a control character.
  test('a callback holding control characters is refused in well-formed XML (ORCID\'s default), and in JSON as it was', async () => {
    // eslint-disable-next-line no-control-regex -- the characters XML 1.0 cannot hold
    const illegalInXml = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;
    for (const callback of ['https://example.org/\u0001', 'https://example.org/\u001b[31mred', 'https://example.org/\u0000x']) {
      const url = `/${SEED_ORCID}/webhook/${encodeURIComponent(callback)}`;
      const xml = await h.svc.app.inject({ method: 'PUT', url, headers: { authorization: `Bearer ${h.token}` } });
      assert.equal(xml.statusCode, 400, xml.body);
      assert.equal(xml.headers['content-type'], 'application/vnd.orcid+xml');
      assert.match(xml.body, /<error-code>9012<\/error-code>/);
      assert.ok(!illegalInXml.test(xml.body), JSON.stringify(xml.body));
      assert.match(xml.body, /Webhook uri: https:\/\/example\.org\/\uFFFD/);
      const json = await h.svc.app.inject({ method: 'PUT', url, headers: { authorization: `Bearer ${h.token}`, accept: 'application/json' } });
      assert.equal(json.statusCode, 400, json.body);
      assert.ok(String(json.json()['developer-message']).includes(`Webhook uri: ${callback} `), json.body);
    }
  });

  // Found by sending absolute-form request lines (RFC 9112 3.2.2: a server must accept them): the
  // route matched, but the code reading the raw target saw a path starting with "http:".
  test('an absolute-form request target is answered as its origin-form: Location, ORCID\'s error format', async () => {
    const { host } = new URL(h.svc.url);
    const path = webhookPath(SEED_ORCID, 'https://example.org/absolute-form');
    const put = await raw(h.svc.url, `PUT http://${host}${path} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${h.token}\r\nConnection: close\r\n\r\n`);
    assert.match(put, /^HTTP\/1\.1 201 /, put);
    const location = /\r\nlocation: ([^\r]*)\r\n/i.exec(put)?.[1];
    assert.equal(location, `http://${host}${path}`);
    // An error on ORCID's path is ORCID's XML (no Accept), as for the same request in origin-form.
    const bad = await raw(h.svc.url, `PUT HTTP://${host}/${SEED_ORCID}/webhook/not-a-url HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${h.token}\r\nConnection: close\r\n\r\n`);
    assert.match(bad, /^HTTP\/1\.1 400 /, bad);
    assert.match(bad, /\r\ncontent-type: application\/vnd\.orcid\+xml\r\n/i, bad);
    assert.match(bad, /<error-code>9012<\/error-code>/, bad);
    const del = await raw(h.svc.url, `DELETE http://${host}${path} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${h.token}\r\nConnection: close\r\n\r\n`);
    assert.match(del, /^HTTP\/1\.1 204 /, del);
    // Our own endpoints too, the query string kept.
    const list = await raw(h.svc.url, `GET http://${host}/webhooks?limit=1 HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${h.token}\r\nConnection: close\r\n\r\n`);
    assert.match(list, /^HTTP\/1\.1 200 /, list);
  });
});
