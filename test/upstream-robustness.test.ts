/*
 * The upstream poller as an operator relies on it during trouble: a store that fails for a moment
 * must not stop it, and what it reports (status, metrics) during an upstream outage must say so.
 * Against the fake public API of helpers/fake-orcid.ts and an in-memory SQLite store.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createLogger } from '../src/logger.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import { OrcidPublicApi } from '../src/upstream/orcid-public-api.ts';
import { UpstreamPoller } from '../src/upstream/poller.ts';
import { RateLimiter } from '../src/upstream/rate-limiter.ts';
import { FakeOrcid } from './helpers/fake-orcid.ts';
import { eventually } from './helpers/receiver.ts';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

const sink = { apply: async () => ({ created: 0, changed: 0, ignored: 0, webhooksNotified: 0 }) };

async function setup(opts: { intervalMs?: number } = {}) {
  const fake = await FakeOrcid.start({ records: 10 });
  cleanups.push(() => fake.close());
  const store = new SqliteStore(':memory:');
  await store.migrate();
  cleanups.push(() => store.close());
  const api = new OrcidPublicApi({ apiUrl: fake.url, tokenUrl: fake.tokenUrl, clientId: fake.clientId, clientSecret: fake.clientSecret, limiter: new RateLimiter(20), userAgent: 'test' });
  const poller = new UpstreamPoller({ store, api, logger: createLogger('silent'), intervalMs: opts.intervalMs ?? 300, overlapMs: 1000, sinceMs: null });
  cleanups.push(() => poller.stop());
  return { fake, store, api, poller };
}

describe('upstream poller robustness', () => {
  it('a store error while it becomes the leader (reading the cursor) does not stop the poller: it retries and polls', { timeout: 20_000 }, async () => {
    const { store, poller } = await setup();
    let failures = 1;
    const init = store.initUpstreamCursor.bind(store);
    store.initUpstreamCursor = async (...args) => {
      if (failures-- > 0) throw new Error('Connection terminated unexpectedly');
      return init(...args);
    };
    await poller.start(sink);
    await eventually(() => poller.status().state === 'idle' && poller.status().lastSuccessAt !== null, 10_000, 'the poller polls after the store recovers');
    assert.equal(poller.status().leader, true);
  });
});
