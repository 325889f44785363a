/*
 * Chaos on SQLite: one `serve` process delivering 1,000 webhooks (one per record) to 4 receivers
 * that answer after 5-80 ms and refuse ~10% of callbacks with 500, while two streams of changes
 * arrive through the admin API for 30 s (bulk POST /admin/api/changes on 900 records, PUT
 * /admin/api/records/{orcid} touches on the other 100) and the process is killed with SIGKILL at 5
 * random moments, each time restarted on the same database file.
 *
 * Once everything settles: every webhook whose record changed got a 2xx-answered callback after its
 * record's last committed change, and webhooks of unchanged records got none; the store owes
 * nothing (no due, pending or leased row, none disabled or failing); no webhook was ever called
 * twice at once; only requests cut by a kill failed at the API; duplicates (a notification answered
 * 2xx more than once) stay within 5 x the in-flight limit.
 *
 * The run is random but replayable: the seed is printed, CHAOS_SEED=<seed> repeats the choices
 * (records, batch sizes, kill moments; the timing itself is not).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import type { WebhookRow } from '../src/store/types.ts';
import {
  orcids, PROCESS_ADMIN_TOKEN, seedWebhooks, startServer, stopAllServers, tempDir, type ServerProcess,
} from '../test/helpers/process.ts';
import { eventually, sleep } from '../test/helpers/receiver.ts';
import { prng, startFlakyReceiver, type FlakyReceiver } from './helpers/flaky-receiver.ts';

const RECORDS = 1000;
/** Records 0..TOUCHED-1 change only by PUT (server-side time), the rest only by bulk POST (explicit times). */
const TOUCHED = 100;
const RECEIVERS = 4;
const CONCURRENCY = 32;
const PER_HOST = 8;
/** The most callbacks one process can have in flight: the global limit, here also 4 hosts x 8. */
const IN_FLIGHT_LIMIT = Math.min(CONCURRENCY, RECEIVERS * PER_HOST);
const KILLS = 5;
const RUN_MS = 30_000;
const FAIL_RATE = 0.1;
/** Changes in the bulk request a kill waits for (every bulk record twice): long enough to be cut. */
const BIG_BATCH = 2 * (RECORDS - TOUCHED);
const SEED = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** One request of the change streams. */
interface ChangeRequest {
  kind: 'bulk' | 'touch';
  /** record index -> (last) modified time sent (bulk); touches carry none (the server takes its clock). */
  values: Map<number, number>;
  /** Changes sent (a bulk request may change a record more than once). */
  count: number;
  sentAt: number;
  /** When the answer arrived; null if the request failed without one. */
  ackAt: number | null;
  status: number | null;
  error: string | null;
}

const dirs: { remove(): void }[] = [];
const receivers: FlakyReceiver[] = [];
after(async () => {
  await stopAllServers();
  for (const rx of receivers.splice(0)) await rx.close();
  for (const d of dirs.splice(0)) d.remove();
});

describe('chaos: SIGKILL x5 during a stream of changes (SQLite)', () => {
  it('every changed record\'s webhooks get a successful callback after its last change; nothing owed; no concurrent calls', { timeout: 180_000 }, async (t) => {
    const started = Date.now();
    const random = prng(SEED);
    t.diagnostic(`seed ${SEED} (CHAOS_SEED=${SEED} repeats the choices)`);

    const tmp = tempDir('ow-chaos-');
    dirs.push(tmp);
    const db = join(tmp.dir, 'db.sqlite');
    receivers.push(...(await Promise.all(Array.from({ length: RECEIVERS }, (_, i) => {
      const r = prng(SEED + 1 + i);
      return startFlakyReceiver({ delayMs: () => 5 + Math.floor(r() * 76), fail: () => r() < FAIL_RATE, maxConsecutiveFailures: 2 });
    }))));
    const ids = orcids(RECORDS);
    const hooks = ids.map((orcid, i) => ({ orcid, url: receivers[i % RECEIVERS]!.url(`/chaos/${i}`) }));
    const seedStore = new SqliteStore(db);
    let initialModified: Map<string, number>;
    try {
      await seedWebhooks(seedStore, hooks);
      initialModified = new Map((await seedStore.listRecords({ limit: RECORDS + 1 })).map((r) => [r.orcid, r.modifiedAt]));
    } finally {
      await seedStore.close();
    }

    const flags = {
      db: `sqlite:${db}`, 'allowed-targets': '127.0.0.0/8', 'poll-interval': '200ms', lease: '2s', 'request-timeout': '1s',
      'connect-timeout': '1s', 'retry-schedule': '200ms,500ms,1s,2s', concurrency: CONCURRENCY, 'per-host-concurrency': PER_HOST,
    };
    const processes: ServerProcess[] = [];
    const start = async () => {
      const p = await startServer(flags);
      processes.push(p);
      return p;
    };
    let current: Promise<ServerProcess> = start();
    await current;
    const runStart = Date.now();
    const runEnd = runStart + RUN_MS;

    // Kill moments: one at random in each fifth of the run (after 2 s, before its last 1.5 s).
    const window = RUN_MS - 3_500;
    const killAt = Array.from({ length: KILLS }, (_, k) => 2_000 + (k + 0.1 + random() * 0.8) * (window / KILLS));
    const kills: { at: number; held: number; restartMs: number; exit: string }[] = [];
    let onSend: (() => void) | null = null;
    const requests: ChangeRequest[] = [];
    const cutRequests: { size: number; applied: number }[] = [];
    const judged = new Set<ChangeRequest>();
    const killer = (async () => {
      for (const offset of killAt) {
        const wait = runStart + offset - Date.now();
        if (wait > 0) await sleep(wait);
        const victim = await current;
        // Every other kill lands while a large change request is on its way (it may or may not commit).
        if (kills.length % 2 === 1) await new Promise<void>((r) => { onSend = r; });
        let up!: (p: ServerProcess) => void;
        current = new Promise((r) => { up = r; });
        const held = receivers.reduce((n, rx) => n + rx.inFlight(), 0);
        const at = Date.now();
        const exit = await victim.stop('SIGKILL');
        // A change request cut by the kill committed all of its changes or none (checked while no
        // process has the database open for writing).
        const cutNow = requests.filter((r) => r.kind === 'bulk' && r.status === null && r.sentAt <= at && !judged.has(r));
        for (const r of cutNow) judged.add(r);
        if (cutNow.length) {
          const s = new SqliteStore(db);
          try {
            const now = new Map((await s.listRecords({ limit: RECORDS + 1 })).map((r) => [r.orcid, r.modifiedAt]));
            for (const req of cutNow) {
              const applied = [...req.values].filter(([r, m]) => now.get(ids[r]!)! >= m).length;
              cutRequests.push({ size: req.values.size, applied });
            }
          } finally {
            await s.close();
          }
        }
        const next = await start();
        up(next);
        kills.push({ at: at - runStart, held, restartMs: Date.now() - at, exit: `${exit.code}/${exit.signal}` });
      }
    })();

    // The change streams. Bulk times come from one increasing clock, so a record's final
    // modified_at names the last bulk change that committed, whether or not its answer arrived.
    let clock = Date.now();
    const send = async (req: ChangeRequest, method: string, path: string, body?: unknown) => {
      const srv = await current;
      requests.push(req);
      req.sentAt = Date.now();
      try {
        const answer = fetch(`${srv.url}/admin/api${path}`, {
          method,
          headers: { authorization: `Bearer ${PROCESS_ADMIN_TOKEN}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
          ...(body !== undefined && { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(15_000),
        });
        if (onSend && req.count >= BIG_BATCH) {
          setTimeout(onSend, Math.floor(random() * 25));
          onSend = null;
        }
        const res = await answer;
        const text = await res.text();
        req.status = res.status;
        req.ackAt = Date.now();
        if (req.kind === 'bulk' && res.status === 202) {
          const r = JSON.parse(text) as { changed: number; ignored: number };
          if (r.changed !== req.count) req.error = `changed ${r.changed} of ${req.count}: ${text}`;
        } else if (req.kind === 'touch' && res.status !== 200) req.error = `HTTP ${res.status}: ${text}`;
        else if (req.kind === 'bulk' && res.status !== 202) req.error = `HTTP ${res.status}: ${text}`;
      } catch (err) {
        req.error = `${(err as Error).message} ${String((err as { cause?: unknown }).cause ?? '')}`;
      }
    };
    const bulkStream = (async () => {
      while (Date.now() < runEnd) {
        // Usually 1-40 records; a large batch (every bulk record, twice) when a kill waits for one.
        const picks: number[] = [];
        if (onSend) for (let k = 0; k < BIG_BATCH; k++) picks.push(TOUCHED + (k % (RECORDS - TOUCHED)));
        else {
          const size = 1 + Math.floor(random() * 40);
          const set = new Set<number>();
          while (set.size < size) set.add(TOUCHED + Math.floor(random() * (RECORDS - TOUCHED)));
          picks.push(...set);
        }
        const changes = picks.map((r) => ({ r, m: (clock = Math.max(clock + 1, Date.now())) }));
        const values = new Map(changes.map((c) => [c.r, c.m]));
        await send({ kind: 'bulk', values, count: changes.length, sentAt: 0, ackAt: null, status: null, error: null }, 'POST', '/changes', {
          changes: changes.map((c) => ({ orcid: ids[c.r]!, modified: new Date(c.m).toISOString() })),
        });
        await sleep(20 + random() * 60);
      }
    })();
    const touchStream = (async () => {
      while (Date.now() < runEnd) {
        const r = Math.floor(random() * TOUCHED);
        await send({ kind: 'touch', values: new Map([[r, 0]]), count: 1, sentAt: 0, ackAt: null, status: null, error: null }, 'PUT', `/records/${ids[r]!}`);
        await sleep(50 + random() * 100);
      }
    })();
    await Promise.all([bulkStream, touchStream, killer]);
    const changesDone = Date.now();
    const srv = await current;
    assert.equal(kills.length, KILLS, 'every kill happened');
    for (const k of kills) assert.equal(k.exit, 'null/SIGKILL', 'killed by SIGKILL');

    // Settle: nothing owed or leased in the store, nothing in flight at the receivers.
    const total = () => receivers.reduce((n, rx) => n + rx.received.length, 0);
    const check = new SqliteStore(db);
    let webhooks: WebhookRow[];
    let records: Map<string, number>;
    try {
      await eventually(async () => receivers.every((rx) => rx.inFlight() === 0) && (await owedCount(check)) === 0, 90_000, 'the store to owe nothing');
      webhooks = await check.listWebhooks({ limit: RECORDS + 1 });
      records = new Map((await check.listRecords({ limit: RECORDS + 1 })).map((r) => [r.orcid, r.modifiedAt]));
    } finally {
      await check.close();
    }
    const settledAt = Date.now();
    const settledTotal = total();
    await sleep(1_000);
    assert.equal(total(), settledTotal, 'no callback after settling');
    assert.equal(srv.exited(), null, 'the last server is still running');
    assert.deepEqual(srv.logsMatching(/database error|could not record/), [], 'no database error in the last server');

    // The store: every webhook enabled, owing nothing, no failure outstanding.
    assert.equal(webhooks.length, RECORDS);
    for (const w of webhooks) {
      assert.ok(w.enabled && w.dueAt === null && w.pendingSince === null && w.lease === null && w.failedAttempts === 0,
        `webhook ${w.id} settled: ${JSON.stringify(w)}`);
    }

    // Only requests cut by a kill failed at the API: no HTTP error, no change ignored.
    const failed = requests.filter((r) => r.error !== null);
    const httpErrors = failed.filter((r) => r.status !== null);
    assert.deepEqual(httpErrors.map((r) => r.error), [], 'the API answered every request it read');

    // Per record, the last change that committed. Bulk: the request that sent the final modified_at
    // (one increasing clock). Touches: the latest one answered, or unanswered but committed, i.e. the
    // final modified_at is at or after it was sent (the server's clock is this machine's).
    const lastChange = new Map<number, ChangeRequest>();
    for (const req of requests) {
      for (const [r, m] of req.values) {
        const final = records.get(ids[r]!)!;
        const committed = req.kind === 'bulk' ? final === m : req.status === 200 || (req.ackAt === null && final >= req.sentAt);
        if (committed && (lastChange.get(r)?.sentAt ?? -1) <= req.sentAt) lastChange.set(r, req);
      }
    }
    for (let r = 0; r < RECORDS; r++) {
      const changedInStore = records.get(ids[r]!) !== initialModified.get(ids[r]!);
      assert.equal(lastChange.has(r), changedInStore, `record ${r}: a committed change is known exactly when the store shows one`);
    }

    // The receivers: 2xx-answered callbacks per path.
    const okByPath = new Map<string, { at: number; id: string }[]>();
    const allByPath = new Map<string, number>();
    let answered500 = 0;
    let cut = 0;
    for (const rx of receivers) {
      for (const a of rx.answers) {
        allByPath.set(a.req.path, (allByPath.get(a.req.path) ?? 0) + 1);
        if (!a.written) cut++;
        else if (a.status === 500) answered500++;
        else {
          let list = okByPath.get(a.req.path);
          if (!list) okByPath.set(a.req.path, (list = []));
          list.push({ at: a.req.at, id: String(a.req.headers['webhook-id']) });
        }
      }
    }
    const missing: string[] = [];
    const spurious: string[] = [];
    let onlyBeforeAck = 0;
    for (let r = 0; r < RECORDS; r++) {
      const path = `/chaos/${r}`;
      const change = lastChange.get(r);
      const ok = okByPath.get(path) ?? [];
      if (!change) {
        if (allByPath.has(path)) spurious.push(`${path} (record never changed) was called ${allByPath.get(path)} time(s)`);
        continue;
      }
      const after = ok.filter((g) => g.at >= change.sentAt);
      if (after.length === 0) missing.push(`${path}: last change sent at ${change.sentAt}, 2xx callbacks at ${ok.map((g) => g.at).join(',') || 'none'}`);
      // A callback between the change's request and its answer may predate the commit; the store
      // check above (nothing owed) covers that window, this only reports how often it was the sole one.
      else if (change.ackAt !== null && after.every((g) => g.at < change.ackAt!)) onlyBeforeAck++;
    }
    assert.deepEqual(missing, [], 'every changed record\'s webhook got a 2xx callback after its last change');
    assert.deepEqual(spurious, [], 'no callback for a record that never changed');
    for (const rx of receivers) assert.deepEqual(rx.overlaps, [], 'no webhook called twice at the same moment');
    for (const rx of receivers) assert.equal(rx.maxConcurrentPerPath(), 1);

    // Duplicates: a notification (webhook-id) answered 2xx more than once on its path.
    let duplicates = 0;
    for (const ok of okByPath.values()) duplicates += ok.length - new Set(ok.map((g) => g.id)).size;

    const changed = lastChange.size;
    for (const c of cutRequests) assert.ok(c.applied === 0 || c.applied === c.size, `a cut request applied ${c.applied} of ${c.size} records' changes`);
    const big = requests.filter((r) => r.count >= BIG_BATCH && r.ackAt !== null).map((r) => r.ackAt! - r.sentAt);
    t.diagnostic(`${requests.length} change requests (${requests.reduce((n, r) => n + r.count, 0)} changes, `
      + `${failed.length} cut by a kill; at the kills, bulk requests cut had applied ${cutRequests.map((c) => `${c.applied}/${c.size}`).join(', ') || 'none'}; `
      + `answered large batches took ${big.join(', ') || '-'} ms), ${changed} of ${RECORDS} records changed`);
    t.diagnostic(`kills (ms into the run / callbacks in flight / restart ms): ${kills.map((k) => `${k.at}/${k.held}/${k.restartMs}`).join(', ')}`);
    t.diagnostic(`${settledTotal} callbacks: ${okByPath.size} paths answered 2xx, ${answered500} answered 500, ${cut} cut by a kill; `
      + `${duplicates} duplicate(s) (bound ${5 * IN_FLIGHT_LIMIT}); ${onlyBeforeAck} webhook(s) whose only qualifying callback `
      + `arrived before the change's answer did; ${processes.length} processes`);
    t.diagnostic(`timings: run ${changesDone - runStart} ms, settle ${settledAt - changesDone} ms, total ${Date.now() - started} ms`);
    assert.ok(duplicates <= 5 * IN_FLIGHT_LIMIT, `duplicates (${duplicates}) at most 5 kills x ${IN_FLIGHT_LIMIT} in flight`);

    const exit = await srv.stop('SIGTERM');
    assert.deepEqual([exit.code, exit.signal], [0, null], 'SIGTERM exits 0');
  });
});

/** Webhooks owing a notification, leased, disabled or failing. */
async function owedCount(s: SqliteStore): Promise<number> {
  const row = s.db.prepare(`SELECT count(*) AS n FROM webhooks
    WHERE due_at IS NOT NULL OR pending_since IS NOT NULL OR lease_owner IS NOT NULL OR enabled = 0 OR failed_attempts > 0`).get() as { n: number };
  return row.n;
}
