import assert from 'node:assert/strict';
import { test } from 'node:test';
import { performance } from 'node:perf_hooks';
import { parseRetrySchedule } from '../src/domain/retry-schedule.ts';
import type { SendRequest, SendResult } from '../src/delivery/sender.ts';
import { DeliveryWorker, NEXT_DUE_QUERY_INTERVAL_MS, type WorkerOptions } from '../src/delivery/worker.ts';
import { orcidFromBase } from '../src/domain/orcid-id.ts';
import { createLogger } from '../src/logger.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import { eventually, sleep } from './helpers/receiver.ts';

const ORCID = '0000-0002-1825-0097';
const OK: SendResult = { kind: 'response', status: 200, durationMs: 1, bodySnippet: '', retryAfterMs: null };

/** A store with one client and a webhook on each iD (records modified at 1000), the i-th on host hostOf(i); returns the store and the webhooks' ids. */
async function storeWithWebhooks(orcids: string[], hostOf: (i: number) => string): Promise<{ store: SqliteStore; ids: number[] }> {
  const store = new SqliteStore(':memory:');
  await store.migrate();
  await store.createClient({ id: 'APP-W', name: 'w', secretHash: 'x', premium: true, createdAt: 1 });
  await store.addRecords(orcids, 1000);
  const ids: number[] = [];
  for (const [i, orcid] of orcids.entries()) {
    const reg = await store.registerWebhook({ clientId: 'APP-W', orcid, url: `https://${hostOf(i)}/cb`, host: hostOf(i), now: 2000 });
    assert.equal(reg.outcome, 'created');
    if (reg.outcome === 'created') ids.push(reg.webhook.id);
  }
  return { store, ids };
}

/** A worker on a stub sender, silent, calling at once; the test sets the limits and times. */
function stubWorker(store: SqliteStore, sender: WorkerOptions['sender'], o: Pick<WorkerOptions, 'concurrency' | 'leaseMs' | 'pollIntervalMs' | 'perClientConcurrency'> & { retry: string }): DeliveryWorker {
  return new DeliveryWorker({
    store, sender, schedule: parseRetrySchedule(o.retry), logger: createLogger('silent'), perHostConcurrency: 8, notifyDelayMs: 0, attemptRetentionMs: 86_400_000,
    concurrency: o.concurrency, leaseMs: o.leaseMs, pollIntervalMs: o.pollIntervalMs, ...(o.perClientConcurrency !== undefined && { perClientConcurrency: o.perClientConcurrency }),
  });
}

test('a completion delayed past its lease (database outage) cannot free a newer claim: never two calls at once', async () => {
  const { store, ids } = await storeWithWebhooks([ORCID], () => 'example.org');
  const id = ids[0]!;
  const touch = () => store.applyChanges([{ orcid: ORCID, modifiedAt: Date.now(), touch: true }], { create: false, now: Date.now(), notifyDelayMs: 0 });

  // Writing outcomes fails while `outage` is on; claims keep working (the outage hits one path).
  let outage = true;
  const complete = store.completeAttempts.bind(store);
  store.completeAttempts = async (a) => {
    if (outage) throw new Error('Connection terminated unexpectedly');
    return complete(a);
  };

  let inFlight = 0;
  let maxInFlight = 0;
  const sends: string[] = [];
  let secondStarted = false;
  let releaseSecond = (): void => undefined;
  const sender = {
    async send(req: SendRequest): Promise<SendResult> {
      sends.push(req.headers['webhook-id']!);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      if (sends.length === 2) {
        secondStarted = true;
        await new Promise<void>((r) => { releaseSecond = r; });
      }
      inFlight--;
      return OK;
    },
  };
  const worker = stubWorker(store, sender, { retry: '100ms', concurrency: 8, leaseMs: 1000, pollIntervalMs: 50 });
  try {
    await touch();
    await worker.start();
    // 1. The first call succeeds but its outcome cannot be written; its lease runs out and the
    //    webhook is claimed again: a second call (at-least-once), which hangs.
    await eventually(() => secondStarted, 5000, 'the second claim');
    // 2. The database comes back: the first outcome is written late (its retry is due ~0.5 s after
    //    the second claim), while the second claim holds the row (its lease runs 1 s).
    outage = false;
    await eventually(async () => (await store.listAttempts(id, 10)).length >= 1, 3000, 'the late first outcome');
    // 3. A new change: the row owes a notification, but the second call still holds it.
    await touch();
    await sleep(150);
    assert.equal(sends.length, 2, 'no third call while the second is in flight');
    assert.equal(maxInFlight, 1, 'never two calls at once');
    // 4. The second call finishes: the change that landed meanwhile gets exactly one more call.
    releaseSecond();
    await eventually(() => sends.length === 3, 5000, 'the call for the change made during the second');
    await eventually(async () => (await store.getWebhook(id))?.dueAt === null, 5000, 'nothing owed');
    assert.equal(maxInFlight, 1);
    assert.equal(sends[0], sends[1], 'the repeated call is the same notification');
    assert.notEqual(sends[2], sends[1], 'the later change is a new notification');
  } finally {
    releaseSecond();
    await worker.stop(1000);
    await store.close();
  }
});

test('under sustained load the worker asks nextDueAt (a scan of every owed row) at most every ~50 ms, not after every pump', async () => {
  const n = 1500;
  const orcids = Array.from({ length: n }, (_, i) => orcidFromBase(100_000_000_000 + i));
  // 8 hosts of 8 slots: 64 in flight at most, far below the global 256, so a slot is always free.
  const { store } = await storeWithWebhooks(orcids, (i) => `h${i % 8}.example.org`);
  let dueQueries = 0;
  const nextDueAt = store.nextDueAt.bind(store);
  store.nextDueAt = async () => {
    dueQueries++;
    return nextDueAt();
  };
  let sent = 0;
  const sender = {
    async send(): Promise<SendResult> {
      await sleep(1);
      sent++;
      return OK;
    },
  };
  const worker = stubWorker(store, sender, { retry: '1m', concurrency: 256, leaseMs: 60_000, pollIntervalMs: 1000 });
  try {
    await store.applyChanges(orcids.map((orcid) => ({ orcid, modifiedAt: Date.now(), touch: true })), { create: false, now: Date.now(), notifyDelayMs: 0 });
    const started = performance.now();
    await worker.start();
    await eventually(() => sent >= n, 30_000, 'every callback');
    const elapsed = performance.now() - started;
    // Before: one query per pump whenever a slot was free (one per finished callback, ~n of them).
    const allowed = Math.ceil(elapsed / NEXT_DUE_QUERY_INTERVAL_MS) + 3;
    assert.ok(dueQueries <= allowed, `${dueQueries} nextDueAt queries for ${n} callbacks in ${Math.round(elapsed)} ms (at most ${allowed})`);
    await eventually(async () => (await store.nextDueAt()) === null, 5000, 'nothing owed');
  } finally {
    await worker.stop(1000);
    await store.close();
  }
});

/**
 * A low-water mark scenario: 100 webhooks of one client, each on its own host (only the global or
 * the client's limit applies); `inFlight` callbacks are held, then `mark` - 1 finish (no rows
 * claimed) and one more (one claim takes `mark` rows). `countEmpty`: count claims that took nothing
 * too (a claim leaving an excluded client out finds nothing, and is remembered as empty).
 */
async function lowWaterCase(o: { base: number; inFlight: number; mark: number; countEmpty: boolean } & Pick<WorkerOptions, 'concurrency' | 'perClientConcurrency'>): Promise<void> {
  const orcids = Array.from({ length: 100 }, (_, i) => orcidFromBase(o.base + i));
  const { store } = await storeWithWebhooks(orcids, (i) => `h${i}.example.org`);
  let claims = 0;
  const claimDue = store.claimDue.bind(store);
  store.claimDue = async (c) => {
    const taken = await claimDue(c);
    if (taken.length || o.countEmpty) claims++;
    return taken;
  };
  const held: (() => void)[] = [];
  let sent = 0;
  const sender = {
    async send(): Promise<SendResult> {
      sent++;
      await new Promise<void>((r) => held.push(r));
      return OK;
    },
  };
  const worker = stubWorker(store, sender, { retry: '100ms', concurrency: o.concurrency, perClientConcurrency: o.perClientConcurrency, leaseMs: 30_000, pollIntervalMs: 60_000 });
  try {
    await store.applyChanges(orcids.map((orcid) => ({ orcid, modifiedAt: 3000 })), { create: false, now: Date.now(), notifyDelayMs: 0 });
    await worker.start();
    // Idle: the first claim fills every slot at once.
    await eventually(() => sent === o.inFlight, 5000, `${o.inFlight} callbacks in flight`);
    await sleep(100);
    const before = claims;
    // One finished callback fewer than the mark: no rows claimed.
    for (const release of held.splice(0, o.mark - 1)) release();
    await sleep(100);
    assert.equal(claims, before, 'no claim for fewer free slots than the low-water mark');
    assert.equal(sent, o.inFlight);
    // The next one reaches the mark: one claim takes them all.
    held.shift()!();
    await eventually(() => sent === o.inFlight + o.mark, 5000, `${o.mark} more callbacks`);
    assert.equal(claims, before + 1, `one claim for the ${o.mark} free slots`);
  } finally {
    for (const release of held.splice(0)) release();
    await worker.stop(1000);
    await store.close();
  }
}

test('while callbacks are in flight, a claim waits for a low-water mark of free slots (fewer, larger claims); an idle worker claims at once', async () => {
  // The global limit 64: low-water mark 8.
  await lowWaterCase({ base: 5_000_000, concurrency: 64, inFlight: 64, mark: 8, countEmpty: true });
});

test('a client at its limit is claimed for again only at its low-water mark (an eighth of its slots), not one freed slot at a time', async () => {
  // The client may have 32 in flight (mark 4), far below the global 256.
  await lowWaterCase({ base: 6_000_000, concurrency: 256, perClientConcurrency: 32, inFlight: 32, mark: 4, countEmpty: false });
});

test('an attempt the database refuses (bad data) is dropped alone: the others batched with it are recorded, later ones too', async () => {
  const orcids = Array.from({ length: 6 }, (_, i) => orcidFromBase(7_000_000 + i));
  const { store, ids } = await storeWithWebhooks(orcids, (i) => `h${i}.example.org`);
  const bad = ids[2]!;
  const complete = store.completeAttempts.bind(store);
  let refused = 0;
  store.completeAttempts = async (attempts) => {
    if (attempts.some((a) => a.webhookId === bad)) {
      refused++;
      throw Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: '22021' });
    }
    return complete(attempts);
  };
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const sender = {
    async send(): Promise<SendResult> {
      await gate;
      return OK;
    },
  };
  const worker = stubWorker(store, sender, { retry: '1m', concurrency: 64, leaseMs: 60_000, pollIntervalMs: 60_000 });
  try {
    await store.applyChanges(orcids.map((orcid) => ({ orcid, modifiedAt: 3000 })), { create: false, now: Date.now(), notifyDelayMs: 0 });
    await worker.start();
    await sleep(100);
    // All six finish together: one batch, refused because of one of them.
    release();
    const good = ids.filter((id) => id !== bad);
    await eventually(async () => (await Promise.all(good.map((id) => store.listAttempts(id, 5)))).every((a) => a.length === 1), 5000, 'the other attempts recorded');
    assert.deepEqual(await store.listAttempts(bad, 5), [], 'the refused attempt is dropped');
    assert.ok(refused >= 2, 'the batch, then the attempt alone');
    // The worker goes on: a later change of another webhook is recorded.
    await store.applyChanges([{ orcid: orcids[0]!, modifiedAt: 4000 }], { create: false, now: Date.now(), notifyDelayMs: 0 });
    worker.notify();
    await eventually(async () => (await store.listAttempts(ids[0]!, 5)).length === 2, 5000, 'a later attempt recorded');
  } finally {
    release();
    await worker.stop(1000);
    await store.close();
  }
});

test('a stream of wake-ups shares claims: at most one pump per minimum interval; an idle worker, and changes further apart, are claimed at once', async () => {
  const orcids = Array.from({ length: 40 }, (_, i) => orcidFromBase(100_000_000 + i));
  const { store } = await storeWithWebhooks(orcids, (i) => `h${i % 4}.example`);
  let claims = 0;
  const claimDue = store.claimDue.bind(store);
  store.claimDue = async (o) => {
    claims++;
    return claimDue(o);
  };
  const delivered: number[] = [];
  const sender = { send: async (): Promise<SendResult> => (delivered.push(performance.now()), OK) };
  const worker = new DeliveryWorker({
    store, sender, schedule: parseRetrySchedule('1s'), logger: createLogger('silent'), perHostConcurrency: 8, notifyDelayMs: 0, attemptRetentionMs: 86_400_000,
    concurrency: 64, leaseMs: 10_000, pollIntervalMs: 10_000, minPumpIntervalMs: 40,
  });
  const change = (orcid: string) => store.applyChanges([{ orcid, modifiedAt: Date.now(), touch: true }], { create: false, now: Date.now(), notifyDelayMs: 0 });
  try {
    await worker.start();
    await sleep(100);
    // Idle: a change is claimed at once, not at the end of an interval.
    claims = 0;
    const t0 = performance.now();
    await change(orcids[0]!);
    await eventually(() => delivered.length === 1, 2000, 'the first callback');
    assert.ok(delivered[0]! - t0 < 30, `the lone change waited ${Math.round(delivered[0]! - t0)} ms`);
    // A stream: 39 changes, one every 2 ms (each wakes the worker), and their callbacks finishing
    // (each pumps too) share claims: about one per 40 ms interval, not one or two per change.
    await sleep(60);
    claims = 0;
    const started = performance.now();
    for (const orcid of orcids.slice(1)) {
      await change(orcid);
      await sleep(2);
    }
    await eventually(() => delivered.length === 40, 5000, 'every callback');
    const intervals = Math.ceil((performance.now() - started) / 40) + 1;
    assert.ok(claims <= intervals + 1, `${claims} claims for 39 changes in ${intervals} intervals`);
    assert.ok(claims < 39 / 2, `${claims} claims for 39 changes`);
    // Changes further apart than the interval are not a stream: each is claimed at once.
    await sleep(300);
    for (const orcid of orcids.slice(0, 5)) {
      const before = delivered.length;
      const t = performance.now();
      await change(orcid);
      await eventually(() => delivered.length > before, 2000, 'the callback');
      assert.ok(delivered.at(-1)! - t < 20, `a change waited ${Math.round(delivered.at(-1)! - t)} ms`);
      // Past the interval after the last wake-up, but within it after the pump the callback's end
      // started (at the interval's end): a wait of every look would hold this change ~30 ms.
      await sleep(45);
    }
  } finally {
    await worker.stop(1000);
    await store.close();
  }
});
