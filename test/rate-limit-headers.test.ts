import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createApiClient } from '../src/ops/clients.ts';
import { getToken, startHarness } from './helpers/harness.ts';

/** One request every 30 s at 2 a minute: the wait is at most 30 s (less as the clock moves on). */
function assertLimitHeaders(headers: Record<string, unknown>): void {
  assert.equal(headers['ratelimit-limit'], '2');
  assert.equal(headers['ratelimit-remaining'], '0');
  assert.equal(headers['ratelimit-reset'], headers['retry-after']);
  const wait = Number(headers['retry-after']);
  assert.ok(wait >= 1 && wait <= 30, `wait ${wait} s`);
}

test('a 429 carries Retry-After and the RateLimit-* fields, in ORCID\'s and in the OAuth form', async () => {
  const h = await startHarness({ role: 'api', rateLimitPerMinute: 2, tokenRateLimitPerMinute: 2 }); // the harness takes one token
  try {
    const get = () => h.svc.app.inject({ method: 'GET', url: '/webhooks', headers: { authorization: `Bearer ${h.token}` } });
    assert.equal((await get()).statusCode, 200);
    assert.equal((await get()).statusCode, 200);
    const limited = await get();
    assert.equal(limited.statusCode, 429);
    assert.equal(limited.json()['error-code'], 9051);
    assertLimitHeaders(limited.headers);

    const c = await createApiClient(h.store, { name: 'Tokens', premium: true });
    await getToken(h.svc, c.client.id, c.secret);
    const token = await h.svc.app.inject({
      method: 'POST', url: '/oauth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ client_id: c.client.id, client_secret: c.secret, grant_type: 'client_credentials', scope: '/webhook' }).toString(),
    });
    assert.equal(token.statusCode, 429);
    assert.equal(token.json().error, 'slow_down');
    assertLimitHeaders(token.headers);
  } finally {
    await h.close();
  }
});
