import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { jsonDepthExceeds } from '../src/api/body-policy.ts';
import { ADMIN_TOKEN, SEED_ENCODED, SEED_ORCID, backends, snapshot, startHarness, type Harness } from './helpers/harness.ts';

/**
 * Sends the request head only (the announced body never comes) and returns the server's answer:
 * a route that reads the body before deciding would never answer.
 */
function headOnly(url: string, head: string, waitMs = 3000): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    let data = '';
    const done = () => { clearTimeout(timer); socket.destroy(); resolve(data); };
    const timer = setTimeout(done, waitMs);
    socket.on('data', (d) => {
      data += String(d);
      if (/\r\n\r\n/.test(data) && /content-length: (\d+)/i.test(data) && data.split('\r\n\r\n')[1]!.length >= Number(/content-length: (\d+)/i.exec(data)![1])) done();
    });
    socket.on('error', done);
    socket.on('connect', () => socket.write(head));
  });
}

const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

test('jsonDepthExceeds counts nesting outside strings only', () => {
  assert.equal(jsonDepthExceeds(nested(32), 32), false);
  assert.equal(jsonDepthExceeds(nested(33), 32), true);
  assert.equal(jsonDepthExceeds(`{"a":"${'['.repeat(100)}\\"["}`, 2), false);
});

for (const { backend, skip } of await backends()) describe(`request bodies on ${backend}`, { skip }, () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({}, { backend, listen: true });
    await h.store.addRecords([SEED_ORCID], Date.now());
  });
  after(() => h.close());
  const path = `/${SEED_ORCID}/webhook/${SEED_ENCODED}`;

  test('ORCID\'s empty PUT and DELETE keep working with Content-Length: 0 and a JSON or XML Content-Type', async () => {
    for (const type of [undefined, 'application/json', 'application/xml', 'application/vnd.orcid+xml']) {
      const headers = { authorization: `Bearer ${h.token}`, 'content-length': '0', ...(type && { 'content-type': type }) };
      const put = await h.svc.app.inject({ method: 'PUT', url: path, headers, payload: '' });
      assert.equal(put.statusCode, 201, `${type}: ${put.body}`);
      const del = await h.svc.app.inject({ method: 'DELETE', url: path, headers, payload: '' });
      assert.equal(del.statusCode, 204, `${type}: ${del.body}`);
    }
  });

  test('without a token, a request announcing a 4 MB body is answered 403 forbidden (ORCID\'s answer to no token) before the body is sent', async () => {
    for (const [method, url] of [['PUT', path], ['DELETE', path], ['GET', path], ['POST', path], ['GET', '/webhooks']]) {
      const res = await headOnly(h.svc.url, `${method} ${url} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4194304\r\n\r\n`);
      assert.match(res, /^HTTP\/1\.1 403/, `${method} ${url}: ${res.slice(0, 200)}`);
      assert.match(res, /"error":"forbidden"/);
    }
  });

  test('with a valid token, a body on a route that takes none is refused 400 / 9052 before it is read, and changes nothing', async () => {
    const before = await snapshot(h.store);
    const res = await headOnly(h.svc.url, `PUT ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${h.token}\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: 4194304\r\n\r\n`);
    assert.match(res, /^HTTP\/1\.1 400/, res.slice(0, 300));
    assert.match(res, /"error-code":9052/);
    assert.match(res, /takes no request body/);
    const chunked = await h.svc.app.inject({ method: 'PUT', url: path, headers: { authorization: `Bearer ${h.token}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, payload: '{"a":1}' });
    assert.equal(chunked.statusCode, 400, chunked.body);
    assert.match(chunked.body, /takes no request body/);
    const xml = await h.svc.app.inject({ method: 'DELETE', url: path, headers: { authorization: `Bearer ${h.token}`, accept: 'application/xml', 'content-type': 'application/xml' }, payload: '<x/>' });
    assert.equal(xml.statusCode, 400);
    assert.match(xml.body, /<error-code>9052<\/error-code>/);
    assert.deepEqual(await snapshot(h.store), before);
  });

  test('unknown endpoints and the admin API refuse before reading a body; bodies are bounded per route', async () => {
    const unknown = await headOnly(h.svc.url, 'POST /nope HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4194304\r\n\r\n');
    assert.match(unknown, /^HTTP\/1\.1 404/);
    const admin = await headOnly(h.svc.url, 'POST /admin/api/changes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4194304\r\n\r\n');
    assert.match(admin, /^HTTP\/1\.1 401/);
    const adminHeaders = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', accept: 'application/json' };
    const big = await h.svc.app.inject({ method: 'PUT', url: `/admin/api/records/${SEED_ORCID}`, headers: adminHeaders, payload: JSON.stringify({ modified: 'x'.repeat(100 * 1024) }) });
    assert.equal(big.statusCode, 413, big.body);
    const token = await h.svc.app.inject({ method: 'POST', url: '/oauth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `client_id=${'x'.repeat(20_000)}` });
    assert.equal(token.statusCode, 413);
    assert.equal(token.json().error, 'invalid_request', token.body);
    const deep = await h.svc.app.inject({ method: 'POST', url: '/admin/api/changes', headers: adminHeaders, payload: `{"changes":${nested(40)}}` });
    assert.equal(deep.statusCode, 400, deep.body);
    assert.match(deep.json()['developer-message'], /nests arrays or objects more than 32 deep/);
    // The bulk change list keeps its room: 10,000 changes.
    const changes = Array.from({ length: 10_000 }, () => ({ orcid: SEED_ORCID, modified: '2020-01-01T00:00:00.000Z' }));
    const bulk = await h.svc.app.inject({ method: 'POST', url: '/admin/api/changes', headers: adminHeaders, payload: JSON.stringify({ changes }, null, 2) });
    assert.equal(bulk.statusCode, 202, bulk.body.slice(0, 300));
  });

  test('the admin API\'s GETs take no body either: 400 / 9052, as every GET', async () => {
    const adminHeaders = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', accept: 'application/json' };
    for (const url of ['/admin/api/overview', '/admin/api/webhooks', '/admin/api/records']) {
      const res = await h.svc.app.inject({ method: 'GET', url, headers: adminHeaders, payload: '{}' });
      assert.equal(res.statusCode, 400, `${url}: ${res.body}`);
      assert.equal(res.json()['error-code'], 9052);
      assert.match(res.json()['developer-message'], /takes no request body/);
      assert.equal((await h.svc.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).statusCode, 200, `${url} without a body`);
    }
  });
});
