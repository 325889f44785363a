/*
 * /metrics (src/metrics.ts): Node's standard process metrics under their standard names, no gauge
 * named like a counter, build info, webhooks by state counted once each, the oldest owed
 * notification's age, callbacks in flight, and HTTP request durations by route pattern and status.
 */
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { parseRetrySchedule } from '../src/domain/retry-schedule.ts';
import type { WebhookRow } from '../src/store/types.ts';
import { VERSION } from '../src/version.ts';
import { ADMIN_TOKEN, backends, startHarness, webhookPath, type Harness } from './helpers/harness.ts';
import { eventually, startReceiver, type Receiver } from './helpers/receiver.ts';

const ORCIDS = ['0000-0002-1825-0097', '0000-0002-7465-2162', '0000-0001-5109-3700', '0000-0002-1694-233X'];
const MINUTE = 60_000;

const scrape = async (h: Harness): Promise<string> => {
  const res = await h.svc.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(res.statusCode, 200);
  return res.body;
};

/** The value of one sample, by its exact name and label text (`{a="b"}`, or '' for none). */
function sample(text: string, name: string, labels = ''): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? null : Number(line.slice(name.length + labels.length + 1));
}

describe('/metrics names', () => {
  let h: Harness;
  before(async () => { h = await startHarness({ role: 'api' }); });
  after(() => h.close());

  test('Node\'s process metrics keep their standard names; no gauge ends in _total; build info', async () => {
    const text = await scrape(h);
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
      assert.notEqual(sample(text, name), null, `${name} is exported`);
    }
    assert.doesNotMatch(text, /orcid_webhooks_(process|nodejs)_/, 'no project prefix on the standard metrics');
    const gauges = [...text.matchAll(/^# TYPE (\S+) gauge$/gm)].map((m) => m[1]!);
    assert.ok(gauges.length > 5);
    assert.deepEqual(gauges.filter((g) => g.endsWith('_total')), []);
    assert.equal(sample(text, 'orcid_webhooks_build_info', `{version="${VERSION}",node_version="${process.version}"}`), 1);
  });
});

for (const { backend, skip } of await backends()) {
  describe(`/metrics figures on ${backend}`, { skip }, () => {
    let h: Harness;
    before(async () => {
      // No delivery worker: webhook states change only when the test says.
      h = await startHarness({ role: 'api' }, { backend });
      await h.store.addRecords(ORCIDS, Date.now() - 10 * MINUTE);
    });
    after(() => h.close());

    test('webhooks by state: each webhook counted once; the oldest owed notification\'s age', async () => {
      const now = Date.now();
      const w: WebhookRow[] = [];
      for (const [i, orcid] of ORCIDS.entries()) {
        const r = await h.store.registerWebhook({ clientId: h.clientId, orcid, url: `https://m${i}.example.org/x`, host: `m${i}.example.org`, now: now - 5 * MINUTE });
        assert.equal(r.outcome, 'created');
        if (r.outcome === 'created') w.push(r.webhook);
      }
      // w0 owes nothing; w1, w2, w3 owe a change made two minutes ago; w2 then fails (backoff) and w3 is disabled.
      await h.store.applyChanges(ORCIDS.slice(1).map((orcid) => ({ orcid, modifiedAt: now - 2 * MINUTE })), { create: false, now, notifyDelayMs: 0 });
      const claims = await h.store.claimDue({ lease: 'm', limit: 10, now: now + MINUTE, leaseMs: MINUTE, excludeHosts: [] });
      await h.store.releaseClaims('m', [w[1]!.id]);
      const attempt = (webhookId: number, outcome: { kind: 'retry'; retryAt: number } | { kind: 'disable'; reason: string }) => ({
        webhookId, lease: 'm', claimedSeq: claims.find((c) => c.webhook.id === webhookId)!.webhook.changeSeq, notificationId: 'n', startedAt: now,
        durationMs: 5, statusCode: 500, error: null, responseSnippet: null, latencyMs: null, outcome, nextDueAt: now,
      });
      await h.store.completeAttempts([attempt(w[2]!.id, { kind: 'retry', retryAt: now + 10 * MINUTE }), attempt(w[3]!.id, { kind: 'disable', reason: 'test' })]);

      const text = await scrape(h);
      const states = Object.fromEntries(['enabled', 'pending', 'failing', 'disabled'].map((s) => [s, sample(text, 'orcid_webhooks_webhooks', `{state="${s}"}`)]));
      assert.deepEqual(states, { enabled: 1, pending: 1, failing: 1, disabled: 1 });
      assert.equal(sample(text, 'orcid_webhooks_webhooks', '{state="total"}'), null, 'no total beside its parts');
      // The oldest owed (w1 and w2, changed 2 minutes ago; w3 is disabled and not counted).
      const age = sample(text, 'orcid_webhooks_oldest_owed_notification_age_seconds')!;
      assert.ok(age >= 119 && age < 150, `age ${age}`);
      assert.equal(sample(text, 'orcid_webhooks_callbacks_in_flight'), 0, 'no worker in this process');
    });
  });
}

describe('/metrics with a delivery worker', () => {
  let h: Harness;
  let rx: Receiver;
  before(async () => {
    h = await startHarness({ allowedTargets: ['127.0.0.0/8'], retrySchedule: parseRetrySchedule('1h'), pollIntervalMs: 200 });
    rx = await startReceiver();
    await h.store.addRecords(ORCIDS, Date.now() - MINUTE);
  });
  after(async () => {
    await rx.close();
    await h.close();
  });

  test('callbacks in flight, while a receiver holds them', async () => {
    const held: ServerResponse[] = [];
    rx.behave((_r, res) => { held.push(res); });
    for (const orcid of ORCIDS.slice(0, 2)) {
      assert.equal((await h.svc.app.inject({ method: 'PUT', url: webhookPath(orcid, rx.url(`/held/${orcid}`)), headers: { authorization: `Bearer ${h.token}` } })).statusCode, 201);
      await h.svc.app.inject({ method: 'PUT', url: `/admin/api/records/${orcid}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    }
    await rx.waitFor(2);
    assert.equal(sample(await scrape(h), 'orcid_webhooks_callbacks_in_flight'), 2);
    for (const res of held) res.writeHead(200).end();
    await eventually(async () => sample(await scrape(h), 'orcid_webhooks_callbacks_in_flight') === 0, 5000, 'no callback in flight');
  });

  test('HTTP request durations by method, route pattern and status; never a raw path', async () => {
    const PUT = '{method="PUT",route="/:orcid/webhook/*",status_code="201"}';
    const putsBefore = sample(await scrape(h), 'orcid_webhooks_http_request_duration_seconds_count', PUT) ?? 0;
    await h.svc.app.inject({ url: '/health' });
    await h.svc.app.inject({ url: '/health' });
    await h.svc.app.inject({ method: 'PUT', url: webhookPath(ORCIDS[2]!, 'https://metrics.example.org/cb'), headers: { authorization: `Bearer ${h.token}` } });
    await h.svc.app.inject({ url: '/no-such-endpoint/0000-0002-1825-0097' });
    const text = await scrape(h);
    const count = (labels: string) => sample(text, 'orcid_webhooks_http_request_duration_seconds_count', labels);
    assert.ok(count('{method="GET",route="/health",status_code="200"}')! >= 2);
    assert.equal(count(PUT), putsBefore + 1);
    assert.ok(count('{method="GET",route="unmatched",status_code="404"}')! >= 1);
    const routes = new Set([...text.matchAll(/orcid_webhooks_http_request_duration_seconds_count\{[^}]*route="([^"]*)"/g)].map((m) => m[1]));
    assert.ok(![...routes].some((r) => /no-such|0000-|metrics\.example/.test(r!)), `routes: ${[...routes].join(' ')}`);
  });

  test('registrations and deletions: a webhook deleted by the operator (admin API, dashboard) counts as deleted, as one its client deletes', async () => {
    const DELETED = '{outcome="deleted"}';
    const deletedBefore = sample(await scrape(h), 'orcid_webhooks_registrations_total', DELETED) ?? 0;
    const byClient = 'https://deleted.example.org/by-client';
    const byAdmin = 'https://deleted.example.org/by-admin';
    for (const cb of [byClient, byAdmin]) {
      assert.equal((await h.svc.app.inject({ method: 'PUT', url: webhookPath(ORCIDS[3]!, cb), headers: { authorization: `Bearer ${h.token}` } })).statusCode, 201);
    }
    assert.equal((await h.svc.app.inject({ method: 'DELETE', url: webhookPath(ORCIDS[3]!, byClient), headers: { authorization: `Bearer ${h.token}` } })).statusCode, 204);
    const w = (await h.store.findWebhook(h.clientId, ORCIDS[3]!, byAdmin))!;
    const del = () => h.svc.app.inject({ method: 'DELETE', url: `/admin/api/webhooks/${w.publicId}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal((await del()).statusCode, 204);
    assert.equal((await del()).statusCode, 404, 'gone: a second delete deletes nothing');
    assert.equal(sample(await scrape(h), 'orcid_webhooks_registrations_total', DELETED), deletedBefore + 2, 'both deletions counted, the refused one not');
  });
});
