/*
 * Signed callbacks and JSON payloads (issue 5), verified on callbacks a real local receiver got,
 * with the independent `standardwebhooks` package rather than our own code; plus the request
 * builder's cache and the delivery side of replay and recovery.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { CallbackRequestBuilder } from '../src/delivery/request-builder.ts';
import { newSigningSecret, signingKey } from '../src/domain/signing.ts';
import type { ClientDeliverySettings, WebhookRow } from '../src/store/types.ts';
import { ADMIN_TOKEN, FAST_DELIVERY as fast, startHarness, webhookPath, type Harness } from './helpers/harness.ts';
import { eventually, sleep, startReceiver, type Received, type Receiver } from './helpers/receiver.ts';

const headersOf = (r: Received): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.headers)) if (typeof v === 'string') out[k] = v;
  return out;
};

/** The expected signature rebuilt from primitives, as the specification states it. */
const expected = (secret: string, r: Received): string =>
  `v1,${createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64'))
    .update(`${r.headers['webhook-id']}.${r.headers['webhook-timestamp']}.${r.body}`).digest('base64')}`;

describe('signed callbacks and payloads, end to end', () => {
  let h: Harness;
  let rx: Receiver;
  let n = 0;

  before(async () => {
    h = await startHarness(fast);
  });
  after(() => h.close());
  afterEach(async () => {
    await rx?.close();
  });

  const admin = (method: 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) =>
    h.svc.app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, ...(payload !== undefined && { payload: JSON.stringify(payload) }) });

  /** A fresh record with a webhook to the receiver; touch() changes the record and waits for the callback. */
  async function setup(path: string) {
    const { orcidFromBase } = await import('../src/domain/orcid-id.ts');
    const orcid = orcidFromBase(900_000_300_000 + ++n);
    await h.store.addRecords([orcid], Date.now() - 60_000);
    const url = rx.url(path);
    const res = await h.svc.app.inject({ method: 'PUT', url: webhookPath(orcid, url), headers: { authorization: `Bearer ${h.token}` } });
    assert.equal(res.statusCode, 201);
    const touch = async (): Promise<Received> => {
      const count = rx.received.length;
      const t = await h.svc.app.inject({ method: 'PUT', url: `/admin/api/records/${orcid}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      assert.ok(t.statusCode < 300);
      const got = await rx.waitFor(count + 1, 3000);
      return got[count]!;
    };
    return { orcid, url, touch };
  }

  test('default: ORCID\'s empty POST, no signature, no Content-Type', async () => {
    rx = await startReceiver();
    const s = await setup('/plain');
    const r = await s.touch();
    assert.equal(r.body, '');
    assert.equal(r.headers['content-length'], '0');
    assert.equal(r.headers['webhook-signature'], undefined);
    assert.equal(r.headers['content-type'], undefined);
  });

  test('with a secret: every callback is signed; the library verifies it and rejects tampering, wrong secrets and stale timestamps', async () => {
    rx = await startReceiver();
    const s = await setup('/signed');
    const issued = await admin('POST', `/admin/api/clients/${h.clientId}/signing-secret`);
    assert.equal(issued.statusCode, 201);
    const secret = issued.json().secret as string;
    try {
      const r = await s.touch();
      const headers = headersOf(r);
      assert.match(headers['webhook-signature']!, /^v1,[A-Za-z0-9+/]+=*$/);
      assert.equal(headers['webhook-signature'], expected(secret, r), 'HMAC-SHA256 over id.timestamp.body, as the specification says');
      assert.equal(new Webhook(secret).verify(r.body, headers), undefined, 'verifies (an empty body yields no payload)');

      assert.throws(() => new Webhook(secret).verify('{"forged":true}', headers), WebhookVerificationError, 'a tampered body');
      assert.throws(() => new Webhook(secret).verify(r.body, { ...headers, 'webhook-id': 'msg_1_1' }), WebhookVerificationError, 'a changed id');
      assert.throws(() => new Webhook(newSigningSecret()).verify(r.body, headers), WebhookVerificationError, 'another secret');
      const ts = String(Number(headers['webhook-timestamp']) - 1);
      assert.throws(() => new Webhook(secret).verify(r.body, { ...headers, 'webhook-timestamp': ts }), WebhookVerificationError, 'a changed timestamp');
      // The same callback captured and replayed ten minutes later is refused as too old.
      const realNow = Date.now;
      Date.now = () => realNow() + 10 * 60_000;
      try {
        assert.throws(() => new Webhook(secret).verify(r.body, headers), /too old/);
      } finally {
        Date.now = realNow;
      }

      const again = await s.touch();
      assert.notEqual(again.headers['webhook-id'], r.headers['webhook-id']);
      assert.doesNotThrow(() => new Webhook(secret).verify(again.body, headersOf(again)), 'every callback, not only the first');
    } finally {
      await admin('DELETE', `/admin/api/clients/${h.clientId}/signing-secret`);
    }
  });

  test('JSON payload mode: a record.updated event, Content-Type application/json, signed exactly as sent', async () => {
    rx = await startReceiver();
    const s = await setup('/json');
    assert.equal((await admin('PUT', `/admin/api/clients/${h.clientId}/payload`, { mode: 'json' })).statusCode, 200);
    const secret = (await admin('POST', `/admin/api/clients/${h.clientId}/signing-secret`)).json().secret as string;
    try {
      const r = await s.touch();
      const record = (await h.store.getRecord(s.orcid))!;
      assert.equal(r.headers['content-type'], 'application/json');
      assert.equal(r.headers['content-length'], String(Buffer.byteLength(r.body)));
      const event = JSON.parse(r.body);
      assert.deepEqual(Object.keys(event), ['type', 'timestamp', 'data']);
      assert.equal(event.type, 'record.updated');
      assert.equal(event.timestamp, new Date(Number(r.headers['webhook-timestamp']) * 1000).toISOString());
      assert.deepEqual(event.data, { orcid: s.orcid, modified: new Date(record.modifiedAt).toISOString() });
      assert.deepEqual(new Webhook(secret).verify(r.body, headersOf(r)), event, 'the library verifies and parses it');
      assert.equal(headersOf(r)['webhook-signature'], expected(secret, r));
      assert.throws(() => new Webhook(secret).verify(r.body.replace(s.orcid, '0000-0002-1825-0097'), headersOf(r)), WebhookVerificationError);

      assert.equal((await admin('PUT', `/admin/api/clients/${h.clientId}/payload`, { mode: 'empty' })).statusCode, 200);
      const plain = await s.touch();
      assert.equal(plain.body, '', 'back to the empty body at once');
      assert.doesNotThrow(() => new Webhook(secret).verify(plain.body, headersOf(plain)));
    } finally {
      await admin('PUT', `/admin/api/clients/${h.clientId}/payload`, { mode: 'empty' });
      await admin('DELETE', `/admin/api/clients/${h.clientId}/signing-secret`);
    }
  });

  test('replay and recover reach the receiver with new webhook-ids', async () => {
    rx = await startReceiver();
    let gone = true;
    rx.behave((_r, res) => { res.writeHead(gone ? 410 : 200).end(); });
    const s = await setup('/replayed');
    const first = await s.touch();
    const w = await eventually(async () => { const w = await h.store.findWebhook(h.clientId, s.orcid, s.url); return w && !w.enabled ? w : null; }, 2000, 'disabled by 410');
    gone = false;
    const since = new Date(Date.now() - 60_000).toISOString();
    const rec = await admin('POST', `/admin/api/clients/${h.clientId}/recover`, { since });
    assert.equal(rec.json().recovered, 1);
    const [, recovered] = await rx.waitFor(2, 3000);
    assert.notEqual(recovered!.headers['webhook-id'], first.headers['webhook-id']);
    await eventually(async () => (await h.store.getWebhook(w.id))?.dueAt === null, 2000, 'delivered');

    const replay = await admin('POST', `/admin/api/webhooks/${w.publicId}/replay`);
    assert.equal(replay.statusCode, 202);
    const [, , replayed] = await rx.waitFor(3, 3000);
    assert.equal(replayed!.headers['webhook-id'], replay.json().notificationId);
    const byClient = await h.svc.app.inject({ method: 'POST', url: webhookPath(s.orcid, s.url), headers: { authorization: `Bearer ${h.token}` } });
    assert.equal(byClient.statusCode, 202);
    const [, , , again] = await rx.waitFor(4, 3000);
    assert.equal(again!.headers['webhook-id'], byClient.json().notification_id);
    await sleep(300);
    assert.equal(rx.received.length, 4, 'one callback per replay');
  });
});

describe('signing secret rotation', () => {
  test('both signatures during the grace period, each verifying with its own secret; only the new one after', async () => {
    const h = await startHarness({ ...fast, signingRotationGraceMs: 1500 });
    const rx = await startReceiver();
    try {
      const orcid = '0000-0002-1825-0097';
      await h.store.addRecords([orcid], Date.now() - 60_000);
      await h.svc.app.inject({ method: 'PUT', url: webhookPath(orcid, rx.url('/rot')), headers: { authorization: `Bearer ${h.token}` } });
      const admin = (payload?: unknown) => h.svc.app.inject({
        method: 'POST', url: `/admin/api/clients/${h.clientId}/signing-secret`,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, ...(payload !== undefined && { payload: JSON.stringify(payload) }),
      });
      const touch = async (): Promise<Record<string, string> & { body: string }> => {
        const count = rx.received.length;
        await h.svc.app.inject({ method: 'PUT', url: `/admin/api/records/${orcid}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
        const r = (await rx.waitFor(count + 1, 3000))[count]!;
        return { ...headersOf(r), body: r.body };
      };
      const oldSecret = (await admin()).json().secret as string;
      const before = await touch();
      assert.equal(before['webhook-signature']!.split(' ').length, 1);

      const rotated = await admin({ rotate: true });
      const newSecret = rotated.json().secret as string;
      const during = await touch();
      const sigs = during['webhook-signature']!.split(' ');
      assert.equal(sigs.length, 2, 'two signatures, space-separated');
      assert.ok(sigs.every((x) => x.startsWith('v1,')));
      assert.doesNotThrow(() => new Webhook(oldSecret).verify(during.body, during), 'receivers still on the old secret verify');
      assert.doesNotThrow(() => new Webhook(newSecret).verify(during.body, during), 'receivers already on the new secret verify');

      await sleep(Date.parse(rotated.json().previousSecretExpires) - Date.now() + 50);
      const afterGrace = await touch();
      assert.equal(afterGrace['webhook-signature']!.split(' ').length, 1, 'the old one is dropped');
      assert.doesNotThrow(() => new Webhook(newSecret).verify(afterGrace.body, afterGrace));
      assert.throws(() => new Webhook(oldSecret).verify(afterGrace.body, afterGrace), WebhookVerificationError);
    } finally {
      await rx.close();
      await h.close();
    }
  });
});

describe('CallbackRequestBuilder', () => {
  const webhook = (clientId: string, over: Partial<WebhookRow> = {}): WebhookRow => ({
    id: 7, publicId: 'wh_00000000000000000000000000000007', clientId, orcid: '0000-0002-1825-0097', url: 'https://example.org/cb', host: 'example.org', createdAt: 0, enabled: true,
    disabledReason: null, disabledAt: null, pendingSince: 1_700_000_000_000, dueAt: 1, changeSeq: 3, notifySeq: 3, failedAttempts: 0,
    lastSentAt: null, lastFailedAt: null, lastStatus: null, lease: 'w', leaseUntil: 2, ...over,
  });

  function fakeStore(settings: Record<string, Partial<ClientDeliverySettings>>) {
    const calls: string[] = [];
    let fail = false;
    return {
      calls,
      failNext(v: boolean) { fail = v; },
      async getClientDeliverySettings(clientId: string): Promise<ClientDeliverySettings | null> {
        calls.push(clientId);
        await sleep(5);
        if (fail) throw new Error('database unreachable');
        const s = settings[clientId];
        return s ? { clientId, payloadMode: 'empty', signingSecret: null, previousSigningSecret: null, previousSecretUntil: null, ...s } : null;
      },
    };
  }

  test('reads a client\'s settings about once per TTL, whatever the number of callbacks; only the first read is waited for', async () => {
    let now = 1_000;
    const settings: Record<string, Partial<ClientDeliverySettings>> = { a: { signingSecret: newSigningSecret() }, b: {} };
    const store = fakeStore(settings);
    const b = new CallbackRequestBuilder({ store, ttlMs: 2000, now: () => now });
    const first = await Promise.all(Array.from({ length: 500 }, (_, i) => b.build(webhook(i % 2 ? 'a' : 'b'), `msg_${i}`, 1)));
    assert.deepEqual(store.calls.sort(), ['a', 'b'], 'concurrent first callbacks share one read per client');
    assert.equal(first.filter((r) => r.headers['webhook-signature']).length, 250);
    const hit = b.build(webhook('a'), 'msg_x', 1);
    assert.ok(!(hit instanceof Promise), 'a cached client builds synchronously');

    settings.a = { payloadMode: 'json' }; // changed elsewhere (the CLI)
    now += 2001;
    const stale = b.build(webhook('a'), 'msg_y', 1);
    assert.ok(!(stale instanceof Promise), 'past the TTL: built at once with the known settings...');
    assert.ok(stale.headers['webhook-signature']);
    for (let i = 0; i < 100; i++) b.build(webhook('a'), `msg_y${i}`, 1);
    assert.equal(store.calls.length, 3, '...while one read runs in the background');
    await sleep(20);
    const fresh = b.build(webhook('a'), 'msg_z', 1) as { headers: Record<string, string>; body: string };
    assert.equal(fresh.headers['webhook-signature'], undefined, 'then the new settings apply');
    assert.match(fresh.body, /record\.updated/);
    assert.equal(store.calls.length, 3);

    b.invalidate('a');
    assert.ok(b.build(webhook('a'), 'msg_w', 1) instanceof Promise, 'after invalidate the next callback waits for a read');
    assert.equal(store.calls.length, 4);
  });

  test('a failed read keeps signing with what it knew; with nothing known the callback fails (and is retried)', async () => {
    let now = 0;
    const store = fakeStore({ a: { signingSecret: newSigningSecret() } });
    const b = new CallbackRequestBuilder({ store, ttlMs: 100, now: () => now });
    await b.build(webhook('a'), 'm1', 1);
    now += 200;
    store.failNext(true);
    b.build(webhook('a'), 'm2', 1);
    await sleep(20);
    const stale = await b.build(webhook('a'), 'm3', 1);
    assert.ok(stale.headers['webhook-signature'], 'never unsigned because the database blinked');
    await assert.rejects(Promise.resolve(b.build(webhook('new'), 'm4', 1)), /unreachable/);
    store.failNext(false);
    assert.equal((await b.build(webhook('new'), 'm5', 1)).headers['webhook-signature'], undefined, 'unknown clients: defaults');
    const calls = store.calls.length;
    now += 50;
    b.build(webhook('a'), 'm6', 1);
    assert.equal(store.calls.length, calls, 'after a failed read, the next one waits a TTL');
    now += 100;
    b.build(webhook('a'), 'm7', 1);
    assert.equal(store.calls.length, calls + 1);
  });

  test('an unusable secret in the database fails the read, never the process', async () => {
    const store = fakeStore({ bad: { signingSecret: 'whsec_AAAA' } });
    const b = new CallbackRequestBuilder({ store });
    await assert.rejects(Promise.resolve(b.build(webhook('bad'), 'm', 1)), /24 bytes/);
    await assert.rejects(Promise.resolve(b.build(webhook('bad'), 'm', 1)), /24 bytes/, 'not cached: read again');
    assert.equal(store.calls.length, 2);
  });

  test('signatures and payload from primitives; the previous secret only until its time', async () => {
    let now = 5_000;
    const cur = newSigningSecret();
    const prev = newSigningSecret();
    const store = fakeStore({ a: { signingSecret: cur, previousSigningSecret: prev, previousSecretUntil: 6_000, payloadMode: 'json' } });
    const b = new CallbackRequestBuilder({ store, now: () => now });
    const r = await b.build(webhook('a'), 'msg_7_3', 1_700_000_123);
    assert.equal(r.url, 'https://example.org/cb');
    assert.equal(r.body, '{"type":"record.updated","timestamp":"2023-11-14T22:15:23.000Z","data":{"orcid":"0000-0002-1825-0097","modified":"2023-11-14T22:13:20.000Z"}}');
    const sig = (s: string) => `v1,${createHmac('sha256', signingKey(s)).update(`msg_7_3.1700000123.${r.body}`).digest('base64')}`;
    assert.equal(r.headers['webhook-signature'], `${sig(cur)} ${sig(prev)}`);
    assert.deepEqual(Object.keys(r.headers).sort(), ['content-type', 'webhook-id', 'webhook-signature', 'webhook-timestamp']);
    now = 6_000;
    assert.equal((await b.build(webhook('a'), 'msg_7_3', 1_700_000_123)).headers['webhook-signature'], sig(cur));
  });

  test('secrets: whsec_ and 32 random bytes; keys of fewer than 24 bytes are refused', () => {
    const s = newSigningSecret();
    assert.match(s, /^whsec_[A-Za-z0-9+/]{43}=$/);
    assert.equal(signingKey(s).length, 32);
    assert.notEqual(newSigningSecret(), s);
    assert.throws(() => signingKey('whsec_AAAA'), /24 bytes/);
    assert.throws(() => signingKey('secret'), /whsec_/);
  });
});
