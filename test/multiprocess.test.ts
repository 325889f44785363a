/*
 * Horizontal scale on PostgreSQL: 2 API processes (`serve --role api`) and 3 delivery workers
 * (`serve --role worker`) on one fresh schema; 500 records, 2,000 webhooks (4 per record) on local
 * receivers, 10,000 changes in 20 bulk requests split across both API processes while deliveries
 * run, and one worker killed with SIGKILL mid-run. Every owed notification must arrive after the
 * last change of its record, no webhook may be called twice at once, and duplicates are bounded by
 * what the killed worker could have had in flight.
 *
 * Needs PostgreSQL (see helpers/postgres.ts): required under CI=true, otherwise skipped with one line.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { PostgresStore } from '../src/store/postgres/postgres-store.ts';
import { createTestSchema, postgresSuiteGate, pgTestUrl, type TestSchema } from './helpers/postgres.ts';
import {
  localTcpPorts, orcids, postChanges, seedWebhooks, startServer, startTrackingReceiver, stopAllServers, type BulkResult,
  type ServerProcess, type TrackingReceiver,
} from './helpers/process.ts';
import { eventually, sleep } from './helpers/receiver.ts';

const RECORDS = 500;
const PER_RECORD = 4;
const WEBHOOKS = RECORDS * PER_RECORD;
const RECEIVERS = 4;
const CHANGES = 10_000;
const BATCH = 500;
/** Batches sent at once, one to each API process. */
const PARALLEL = 2;
const WORKERS = 3;
const WORKER_CONCURRENCY = 16;
const PER_HOST = 4;
/** Kill a worker once this many batches have been sent. */
const KILL_AFTER_BATCHES = 8;

/** Small deterministic PRNG (mulberry32): the same spread of changes on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

if (await postgresSuiteGate('multi-process delivery on PostgreSQL')) {
  describe('multi-process delivery on PostgreSQL', () => {
    let schema: TestSchema | null = null;
    let store: PostgresStore | null = null;
    const rxs: TrackingReceiver[] = [];

    after(async () => {
      await stopAllServers();
      for (const rx of rxs.splice(0)) await rx.close();
      await store?.close();
      await schema?.drop();
    });

    it('2 API and 3 worker processes, 10,000 changes, a worker killed with SIGKILL: every owed notification arrives once its record settles', { timeout: 240_000 }, async (t) => {
      const started = Date.now();
      schema = (await createTestSchema()) ?? assert.fail('PostgreSQL went away');
      // PostgresStore turns ?schema= into the connection's search_path (the processes get the same URL).
      const u = new URL(pgTestUrl());
      u.searchParams.set('schema', schema.schema);
      const dbUrl = u.toString();

      rxs.push(...(await Promise.all(Array.from({ length: RECEIVERS }, () => startTrackingReceiver(() => 5 + Math.floor(Math.random() * 20))))));
      const ids = orcids(RECORDS);
      const hooks = ids.flatMap((orcid, r) => Array.from({ length: PER_RECORD }, (_, k) => {
        const rx = rxs[(r * PER_RECORD + k) % RECEIVERS]!;
        return { orcid, url: rx.url(`/mp/${r}/${k}`), rx, path: `/mp/${r}/${k}`, record: r };
      }));
      store = new PostgresStore(dbUrl, { poolSize: 6 });
      await seedWebhooks(store, hooks);
      const seeded = Date.now();

      const common = {
        db: dbUrl, 'allowed-targets': '127.0.0.0/8', 'poll-interval': '200ms', lease: '6s', 'request-timeout': '2s', // lease well past the timeout: a loaded machine may be slow to record an outcome
        'connect-timeout': '2s', 'pool-size': 4,
      };
      const [api0, api1, ...workers] = await Promise.all([
        startServer({ ...common, role: 'api' }, { startTimeoutMs: 90_000 }),
        startServer({ ...common, role: 'api' }, { startTimeoutMs: 90_000 }),
        ...Array.from({ length: WORKERS }, () => startServer({
          ...common, role: 'worker', concurrency: WORKER_CONCURRENCY, 'per-host-concurrency': PER_HOST,
        }, { startTimeoutMs: 90_000 })),
      ]);
      const apis = [api0!, api1!];
      const victim = workers[0]!;
      const deliveriesBy = (p: ServerProcess) => p.logsMatching(/^delivery$/).length;
      const processesUp = Date.now();

      // The changes: 20 batches of 500, records drawn at random (a record may change several times
      // in one batch), modified times strictly increasing. Per record, the last change (the newest
      // time) and when the request carrying it was sent: its callback cannot come earlier.
      const random = prng(4242);
      let clock = Date.now();
      const lastChangeSentAt = new Array<number>(RECORDS).fill(0);
      const lastModified = new Array<number>(RECORDS).fill(0);
      const results: BulkResult[] = [];
      let victimKilled = false;
      let victimPorts: Set<number> | null = null;
      let killedAt = 0;
      let victimHeld = 0;
      let victimDeliveries = 0;
      let batchesSent = 0;
      while (batchesSent < CHANGES / BATCH) {
        const round = Array.from({ length: PARALLEL }, () => {
          const picks = Array.from({ length: BATCH }, () => Math.floor(random() * RECORDS));
          const changes = picks.map((r) => {
            clock = Math.max(clock + 1, Date.now());
            lastModified[r] = clock;
            return { orcid: ids[r]!, modified: clock };
          });
          return { picks, changes };
        });
        const sentAt = Date.now();
        for (const b of round) for (const r of b.picks) lastChangeSentAt[r] = sentAt;
        results.push(...(await Promise.all(round.map((b, i) => postChanges(apis[i % apis.length]!.url, b.changes)))));
        batchesSent += round.length;
        if (batchesSent >= KILL_AFTER_BATCHES && !victimKilled) {
          // Mid-run: the victim must be busy delivering when it dies.
          await eventually(() => deliveriesBy(victim) >= 20, 30_000, 'the victim worker to deliver');
          victimKilled = true;
          victimDeliveries = deliveriesBy(victim);
          // Its TCP ports, read just before the kill, tell its requests apart at the receivers.
          victimPorts = localTcpPorts(victim.pid);
          const ports = victimPorts;
          victimHeld = rxs.reduce((n, rx) => n + rx.inFlightRequests().filter((r) => ports?.has(rx.remotePort(r) ?? -1)).length, 0);
          killedAt = Date.now();
          const killed = await victim.stop('SIGKILL');
          assert.equal(killed.signal, 'SIGKILL');
        }
        await sleep(250);
      }
      const changesDone = Date.now();
      assert.ok(victimKilled, 'a worker was killed mid-run');
      assert.equal(results.reduce((n, r) => n + r.changed + r.ignored, 0), CHANGES, 'every change accepted');
      assert.equal(results.reduce((n, r) => n + r.created, 0), 0);
      assert.ok(lastChangeSentAt.every((at) => at > 0), 'every record changed at least once');

      // Settle: nothing owed, nothing leased, nothing in flight, and it stays so.
      const db = store;
      const state = async () => (await db.pool.query<{ owed: number; leased: number }>(`SELECT
          count(*) FILTER (WHERE due_at IS NOT NULL OR pending_since IS NOT NULL)::int AS owed,
          count(*) FILTER (WHERE lease_owner IS NOT NULL)::int AS leased FROM webhooks`)).rows[0]!;
      const total = () => rxs.reduce((n, rx) => n + rx.received.length, 0);
      await eventually(async () => {
        const s = await state();
        return s.owed === 0 && s.leased === 0 && rxs.every((rx) => rx.inFlight() === 0);
      }, 90_000, 'every webhook to be notified');
      const settledAt = Date.now();
      const settledTotal = total();
      await sleep(500);
      assert.equal(total(), settledTotal, 'no callbacks after settling');

      // The store: every webhook enabled, owing nothing, no failure outstanding.
      const rows = await store.listWebhooks({ limit: WEBHOOKS + 1 });
      assert.equal(rows.length, WEBHOOKS);
      for (const w of rows) {
        assert.ok(w.enabled && w.dueAt === null && w.pendingSince === null && w.lease === null && w.failedAttempts === 0,
          `webhook ${w.id} settled: ${JSON.stringify(w)}`);
      }
      for (let r = 0; r < RECORDS; r++) assert.equal((await store.getRecord(ids[r]!))!.modifiedAt, lastModified[r], `record ${r} holds its newest change`);

      // The receivers: per webhook at least one callback, the last one after its record's last change.
      const byPath = new Map<string, { at: number; id: string; port: number | undefined }[]>();
      for (const rx of rxs) {
        for (const r of rx.received) {
          const key = `${rx.url('')}${r.path}`;
          let list = byPath.get(key);
          if (!list) byPath.set(key, (list = []));
          list.push({ at: r.at, id: String(r.headers['webhook-id']), port: rx.remotePort(r) });
        }
      }
      let late = 0;
      for (const h of hooks) {
        const got = byPath.get(h.url) ?? [];
        assert.ok(got.length >= 1, `${h.path} was called`);
        const last = Math.max(...got.map((g) => g.at));
        if (last < lastChangeSentAt[h.record]!) late++;
      }
      assert.equal(late, 0, `${late} webhook(s) whose last callback came before their record's last change`);
      assert.equal(byPath.size, WEBHOOKS, 'no callback to an unknown path');
      for (const rx of rxs) assert.equal(rx.maxConcurrentPerPath(), 1, 'no webhook called twice at the same moment');

      // Duplicates: the same notification (webhook-id) delivered more than once to one webhook. Each
      // must be one the killed worker was delivering: its first copy came from the victim's sockets.
      let duplicates = 0;
      const unexplained: string[] = [];
      for (const [path, got] of byPath) {
        const first = new Map<string, { at: number; port: number | undefined }>();
        for (const g of got) {
          const f = first.get(g.id);
          if (!f) first.set(g.id, g);
          else {
            duplicates++;
            // No port: the sender's connection was gone when the request was read, i.e. it died.
            const fromVictim = f.port === undefined ? f.at >= killedAt : victimPorts?.has(f.port);
            if (victimPorts && !fromVictim) unexplained.push(`${path} ${g.id}`);
          }
        }
      }
      // The victim's deliveries in flight at the kill, as the receivers saw them: those they were
      // answering, and those they read only after the signal (sent before it: the victim was dead).
      const victimInFlight = victimHeld + rxs.reduce((n, rx) => n + rx.received
        .filter((r) => r.at >= killedAt && victimPorts?.has(rx.remotePort(r) ?? -1)).length, 0);
      const failures = (await store.pool.query<{ status: string; n: number }>(`SELECT COALESCE(status_code::text, error) AS status, count(*)::int AS n
        FROM attempts WHERE status_code IS NULL OR status_code <> 200 GROUP BY 1`)).rows;

      // The survivors drain and exit cleanly.
      const exits = await Promise.all([...apis, ...workers.slice(1)].map((p) => p.stop('SIGTERM')));
      for (const e of exits) assert.deepEqual([e.code, e.signal], [0, null], 'SIGTERM exits 0');

      const perWorker = workers.map(deliveriesBy).join('/');
      t.diagnostic(`${settledTotal} callbacks for ${WEBHOOKS} webhooks after ${CHANGES} changes; ${duplicates} duplicate(s) `
        + `(the victim had ${victimPorts ? victimInFlight : '?'} in flight at the kill, `
        + `victim had delivered ${victimDeliveries}); failed attempts ${JSON.stringify(failures)}; deliveries per worker ${perWorker}; `
        + `setup ${seeded - started} ms, start ${processesUp - seeded} ms, changes ${changesDone - processesUp} ms, `
        + `settle ${settledAt - changesDone} ms, total ${Date.now() - started} ms`);
      assert.ok(duplicates <= WORKER_CONCURRENCY, `duplicates (${duplicates}) at most the killed worker's concurrency (${WORKER_CONCURRENCY})`);
      if (victimPorts) assert.deepEqual(unexplained, [], 'every duplicate is of a notification the killed worker was delivering');
      else t.diagnostic('no /proc: duplicates not attributed to the killed worker');
    });
  });
}
