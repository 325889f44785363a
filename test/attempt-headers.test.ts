/*
 * The headers of each callback attempt (src/domain/attempt-headers.ts, migration 006): what is
 * kept (bounded, secrets redacted), and that a real delivery stores them in both stores.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MAX_HEADERS, MAX_HEADERS_JSON, MAX_VALUE_CHARS, OMITTED_KEY, REDACTED, parseRecordedHeaders, recordHeaders } from '../src/domain/attempt-headers.ts';
import { parseRetrySchedule } from '../src/domain/retry-schedule.ts';
import { ADMIN_TOKEN, backends, startHarness, webhookPath, type Harness } from './helpers/harness.ts';
import { eventually, startReceiver, type Receiver } from './helpers/receiver.ts';

describe('recordHeaders', () => {
  test('lower-cases names, joins repeated values, and keeps ordinary headers as they are', () => {
    assert.deepEqual(recordHeaders({ 'Content-Type': 'text/plain', Vary: ['accept', 'origin'], 'content-length': 0 }), {
      'content-type': 'text/plain', vary: 'accept, origin', 'content-length': '0',
    });
    assert.equal(recordHeaders(null), null);
    assert.equal(recordHeaders(undefined), null);
  });

  test('redacts signatures, credentials and cookies, keeping their names', () => {
    const kept = recordHeaders({
      'webhook-signature': 'v1,abc v1,def', Authorization: 'Bearer secret-token', 'Set-Cookie': ['a=1', 'b=2'], cookie: 'c=3',
      'proxy-authorization': 'Basic xyz', 'x-api-key': 'k', 'webhook-id': 'msg_1_1',
    })!;
    assert.deepEqual(kept, {
      'webhook-signature': REDACTED, authorization: REDACTED, 'set-cookie': REDACTED, cookie: REDACTED,
      'proxy-authorization': REDACTED, 'x-api-key': REDACTED, 'webhook-id': 'msg_1_1',
    });
    assert.doesNotMatch(JSON.stringify(kept), /abc|secret-token|a=1|c=3|xyz/);
  });

  test('bounded: long values are cut, and past the header or size limit the rest is counted, not kept', () => {
    const long = recordHeaders({ 'x-long': 'y'.repeat(10_000) })!;
    assert.equal(long['x-long']!.length, MAX_VALUE_CHARS);
    assert.ok(long['x-long']!.endsWith('…'));

    const many = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`x-h${i}`, String(i)]));
    const kept = recordHeaders(many)!;
    assert.equal(Object.keys(kept).length, MAX_HEADERS + 1);
    assert.equal(kept[OMITTED_KEY], `${500 - MAX_HEADERS} more headers not kept`);

    const big = Object.fromEntries(Array.from({ length: 39 }, (_, i) => [`x-big-${i}`, 'z'.repeat(300)]));
    const bounded = recordHeaders(big)!;
    assert.ok(JSON.stringify(bounded).length <= MAX_HEADERS_JSON, `${JSON.stringify(bounded).length} characters`);
    assert.match(bounded[OMITTED_KEY]!, /^\d+ more headers not kept$/);

    // Values JSON escapes (quotes, backslashes) count at their stored size.
    const quoted = recordHeaders(Object.fromEntries(Array.from({ length: 39 }, (_, i) => [`x-q-${i}`, '"\\'.repeat(200)])))!;
    assert.ok(JSON.stringify(quoted).length <= MAX_HEADERS_JSON, `${JSON.stringify(quoted).length} characters`);
  });

  test('reading back: stored JSON, and null for anything unreadable', () => {
    assert.deepEqual(parseRecordedHeaders('{"a":"1"}'), { a: '1' });
    for (const bad of [null, '', 'not json', '[1]', '"x"', 5]) assert.equal(parseRecordedHeaders(bad), null);
  });
});

for (const { backend, skip } of await backends()) {
  describe(`attempt headers stored by a real delivery on ${backend}`, { skip }, () => {
    const ORCID = '0000-0002-1825-0097';
    let h: Harness;
    let rx: Receiver;

    before(async () => {
      h = await startHarness({ allowedTargets: ['127.0.0.0/8'], retrySchedule: parseRetrySchedule('1h'), pollIntervalMs: 200 }, { backend });
      rx = await startReceiver();
      await h.store.addRecords([ORCID], Date.now() - 60_000);
    });
    after(async () => {
      await rx?.close();
      await h?.close();
    });

    test('request headers as sent (signature redacted) and the answer\'s headers (cookie redacted)', async () => {
      rx.behave((_r, res) => { res.writeHead(503, { 'x-receiver': 'here', 'set-cookie': 'session=receiver-secret' }).end('busy'); });
      const secret = await h.svc.app.inject({
        method: 'POST', url: `/admin/api/clients/${h.clientId}/signing-secret`,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, payload: '{}',
      });
      assert.equal(secret.statusCode, 201, secret.body);
      const url = rx.url('/h');
      assert.equal((await h.svc.app.inject({ method: 'PUT', url: webhookPath(ORCID, url), headers: { authorization: `Bearer ${h.token}` } })).statusCode, 201);
      await h.svc.app.inject({ method: 'PUT', url: `/admin/api/records/${ORCID}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      const [got] = await rx.waitFor(1);
      const id = (await h.store.findWebhook(h.clientId, ORCID, url))!.id;
      const [attempt] = await eventually(async () => {
        const a = await h.store.listAttempts(id, 5);
        return a.length ? a : null;
      }, 5000, 'the attempt recorded');
      const req = attempt!.requestHeaders!;
      assert.equal(req['webhook-id'], got!.headers['webhook-id']);
      assert.equal(req['webhook-timestamp'], got!.headers['webhook-timestamp']);
      assert.equal(req['user-agent'], got!.headers['user-agent']);
      assert.equal(req['content-length'], '0');
      assert.match(String(got!.headers['webhook-signature']), /^v1,/);
      assert.equal(req['webhook-signature'], REDACTED);
      const res = attempt!.responseHeaders!;
      assert.equal(res['x-receiver'], 'here');
      assert.equal(res['set-cookie'], REDACTED);
      const stored = JSON.stringify(attempt);
      assert.ok(!stored.includes(String(got!.headers['webhook-signature']).slice(3)), 'no signature stored');
      assert.ok(!stored.includes('receiver-secret'), 'no cookie stored');
    });
  });
}
