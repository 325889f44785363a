/*
 * A crash costs seconds, not a lease (issue 11): 20,000 webhooks owe a notification, and while
 * they are delivered the delivering process is killed with SIGKILL 5 times and restarted at once,
 * with the default 30 s lease. On SQLite one `serve` process; on PostgreSQL an API process and 2
 * workers (`--role worker`), the two workers killed in turn.
 *
 * It proves: every webhook got a 2xx-answered callback (missing 0); duplicates (a webhook answered
 * 2xx more than once) are no more than the claims the killed processes held (read from the
 * database right after each kill, when nothing can change them); no webhook was called twice at
 * once; and the first callback of a claim the killed process held arrives within 2 s of the
 * restart (the restarted worker takes over its dead predecessor's claims at start).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { PostgresStore } from '../src/store/postgres/postgres-store.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import type { Store } from '../src/store/types.ts';
import { createTestSchema, postgresSuiteGate, withPgClient, type TestSchema } from '../test/helpers/postgres.ts';
import { orcids, postChanges, seedWebhooks, startServer, stopAllServers, tempDir, type ServerProcess } from '../test/helpers/process.ts';
import { eventually } from '../test/helpers/receiver.ts';
import { startFlakyReceiver, type FlakyReceiver } from './helpers/flaky-receiver.ts';

const WEBHOOKS = Number(process.env.CRASH_WEBHOOKS ?? 20_000);
const KILLS = 5;
const RECEIVERS = 4;

const cleanups: (() => Promise<void> | void)[] = [];
/** Run after each suite: a file-level after() can run before a suite registered after a top-level await. */
async function cleanUp(): Promise<void> {
  await stopAllServers();
  for (const c of cleanups.splice(0).reverse()) await c();
}

interface Kill {
  victim: string;
  killedAt: number;
  /** Claims the killed process held (leased rows), read after it died. */
  held: number;
  /** Spawn to "listening". */
  restartMs: number;
  /**
   * From the restarted worker's start (its heartbeat row's started_at, database clock) to the
   * first callback of a held claim (null when none was held). Negative on PostgreSQL when the
   * other worker took the claims over first (the dead worker's heartbeat went stale).
   */
  firstRedeliveryAfterRestartMs: number | null;
  /** From the kill to that first callback. */
  firstRedeliveryAfterKillMs: number | null;
}

interface Topology {
  store: Store;
  /** The delivering processes, by name; restart(name) replaces one. */
  workers: Map<string, ServerProcess>;
  apiUrl: string;
  restart(name: string): Promise<ServerProcess>;
  /** Paths of the rows a dead process still holds. */
  heldPaths(victim: ServerProcess): Promise<string[]>;
  /** When the worker of this process started (its heartbeat row). */
  workerStartedAt(p: ServerProcess): Promise<number>;
}

async function run(t: TestContext, topo: Topology, receivers: FlakyReceiver[], ids: string[]): Promise<void> {
  try {
    await runKills(t, topo, receivers, ids);
  } finally {
    // The next test must not share the CPU with this one's processes.
    await stopAllServers();
  }
}

/**
 * 2xx answers per path, read incrementally (a full scan of 20,000+ answers every 20 ms would take
 * the CPU the receivers need): each receiver's answers are consumed in order once settled.
 */
function answerTracker(receivers: FlakyReceiver[]) {
  const byPath = new Map<string, number>();
  const firstAfter: { at: number; path: string }[] = [];
  const cursors = receivers.map(() => 0);
  const update = (): void => {
    receivers.forEach((rx, i) => {
      let c = cursors[i]!;
      while (c < rx.answers.length && rx.answers[c]!.answeredAt > 0) {
        const a = rx.answers[c]!;
        if (a.written && a.status === 200) {
          byPath.set(a.req.path, (byPath.get(a.req.path) ?? 0) + 1);
          firstAfter.push({ at: a.req.at, path: a.req.path });
        }
        c++;
      }
      cursors[i] = c;
    });
  };
  return {
    byPath,
    answered(): number {
      update();
      return byPath.size;
    },
    /** Earliest arrival after `since` of an answered call to one of `paths`, among those seen so far. */
    firstTo(paths: Set<string>, since: number): number | null {
      update();
      let best: number | null = null;
      for (let i = firstAfter.length - 1; i >= 0; i--) {
        const a = firstAfter[i]!;
        if (a.at <= since - 5_000) break;
        if (a.at > since && paths.has(a.path) && (best === null || a.at < best)) best = a.at;
      }
      return best;
    },
  };
}

async function runKills(t: TestContext, topo: Topology, receivers: FlakyReceiver[], ids: string[]): Promise<void> {
  const tracker = answerTracker(receivers);
  const answered = (): number => tracker.answered();
  // All 20,000 owed at once, through the API.
  const now = Date.now();
  for (let i = 0; i < ids.length; i += 10_000) {
    const r = await postChanges(topo.apiUrl, ids.slice(i, i + 10_000).map((orcid) => ({ orcid, modified: now })));
    assert.equal(r.changed, Math.min(10_000, ids.length - i));
  }
  const started = Date.now();
  const kills: Kill[] = [];
  const names = [...topo.workers.keys()];
  const upSince = new Map<string, number>();
  for (let k = 0; k < KILLS; k++) {
    // Spread the kills over the run: the k-th once (k+1)/(KILLS+2) of the webhooks are answered.
    const target = Math.floor(((k + 1) / (KILLS + 2)) * ids.length);
    await eventually(() => answered() >= target, 240_000, `${target} webhooks answered`);
    const name = names[k % names.length]!;
    // A victim restarted a moment ago may not have claimed anything yet: give it 2 s of work.
    const up = upSince.get(name) ?? 0;
    if (Date.now() - up < 2_000) await new Promise((r) => setTimeout(r, 2_000 - (Date.now() - up)));
    const victim = topo.workers.get(name)!;
    const killedAt = Date.now();
    await victim.stop('SIGKILL');
    const heldPaths = new Set(await topo.heldPaths(victim));
    const spawnAt = Date.now();
    const next = await topo.restart(name);
    const upAt = Date.now();
    upSince.set(name, upAt);
    const workerStart = await topo.workerStartedAt(next);
    let first: number | null = null;
    if (heldPaths.size) {
      // Answered ones only: a request of the killed process read late by this (busy) process is not a redelivery.
      first = await eventually(() => tracker.firstTo(heldPaths, killedAt), 60_000, 'a held claim redelivered');
    }
    kills.push({ victim: `${name} (pid ${victim.pid} -> ${next.pid})`, killedAt, held: heldPaths.size, restartMs: upAt - spawnAt,
      firstRedeliveryAfterRestartMs: first === null ? null : first - workerStart, firstRedeliveryAfterKillMs: first === null ? null : first - killedAt });
  }
  await eventually(() => answered() === ids.length, 240_000, 'every webhook answered');
  await eventually(async () => (await topo.store.countWebhooks()).pending === 0, 30_000, 'nothing owed');
  const elapsed = Date.now() - started;

  tracker.answered();
  const byPath = tracker.byPath;
  const duplicates = [...byPath.values()].reduce((n, c) => n + c - 1, 0);
  const held = kills.reduce((n, k) => n + k.held, 0);
  const counts = await topo.store.countWebhooks();
  for (const k of kills) t.diagnostic(`kill ${k.victim}: held ${k.held} claims; process up in ${k.restartMs} ms; first redelivery ${k.firstRedeliveryAfterRestartMs} ms after the new worker started, ${k.firstRedeliveryAfterKillMs} ms after the kill`);
  t.diagnostic(`${ids.length} webhooks in ${(elapsed / 1000).toFixed(1)} s; missing ${ids.length - byPath.size}; duplicates ${duplicates} (held at the kills: ${held}); max concurrent per webhook ${Math.max(...receivers.map((r) => r.maxConcurrentPerPath()))}`);

  assert.equal(byPath.size, ids.length, 'missing 0');
  assert.ok(duplicates <= held, `duplicates ${duplicates} <= claims held at the kills ${held}`);
  assert.deepEqual(receivers.flatMap((r) => r.overlaps), [], 'no webhook called twice at once');
  assert.deepEqual({ pending: counts.pending, backoff: counts.backoff, disabled: counts.disabled }, { pending: 0, backoff: 0, disabled: 0 });
  for (const k of kills) {
    assert.ok(k.held > 0, `kill ${k.victim} landed while callbacks were in flight`);
    assert.ok(k.firstRedeliveryAfterRestartMs !== null && k.firstRedeliveryAfterRestartMs < 2_000,
      `kill ${k.victim}: first redelivery ${k.firstRedeliveryAfterRestartMs} ms after the restart (the lease is 30 s)`);
  }
}

async function receiversFor(n: number): Promise<{ receivers: FlakyReceiver[]; hooks: { orcid: string; url: string }[]; ids: string[] }> {
  const receivers = await Promise.all(Array.from({ length: RECEIVERS }, (_, i) => startFlakyReceiver({
    delayMs: () => 20 + ((i * 7919 + Date.now()) % 60), fail: () => false, maxConsecutiveFailures: 0,
  })));
  cleanups.push(async () => { for (const r of receivers) await r.close(); });
  const ids = orcids(n);
  const hooks = ids.map((orcid, i) => ({ orcid, url: receivers[i % RECEIVERS]!.url(`/crash/${i}`) }));
  return { receivers, hooks, ids };
}

const STARTED_SQL = "SELECT started_at FROM workers WHERE id LIKE '%:' || $1 || ':%'";

/** Paths of the rows leased by the dead process (its worker id is `host:pid:random`). */
const HELD_SQL = "SELECT url FROM webhooks WHERE lease_owner IS NOT NULL AND lease_worker LIKE '%:' || $1 || ':%'";

describe('crash recovery: 20,000 owed webhooks, 5 SIGKILLs, default 30 s lease', () => {
  after(cleanUp);
  it('SQLite, one process: missing 0, duplicates within what was held, first redelivery within 2 s of each restart', { timeout: 600_000 }, async (t) => {
    const tmp = tempDir('ow-crash-');
    cleanups.push(() => tmp.remove());
    const db = join(tmp.dir, 'db.sqlite');
    const { receivers, hooks, ids } = await receiversFor(WEBHOOKS);
    const seed = new SqliteStore(db);
    await seedWebhooks(seed, hooks);
    await seed.close();
    const flags = {
      db: `sqlite:${db}`, 'allowed-targets': '127.0.0.0/8', 'request-timeout': '5s', 'connect-timeout': '2s',
      'retry-schedule': '200ms,500ms,1s,2s', concurrency: 64, 'per-host-concurrency': 16,
    };
    const workers = new Map([['serve', await startServer(flags)]]);
    const store = new SqliteStore(db);
    cleanups.push(() => store.close());
    await run(t, {
      store, workers,
      get apiUrl() { return workers.get('serve')!.url; },
      async restart(name) {
        const p = await startServer(flags);
        workers.set(name, p);
        return p;
      },
      async heldPaths(victim) {
        const rows = store.db.prepare(HELD_SQL.replace('$1', '?')).all(String(victim.pid)) as { url: string }[];
        return rows.map((r) => new URL(r.url).pathname);
      },
      async workerStartedAt(p) {
        const row = await eventually(() => store.db.prepare(STARTED_SQL.replace('$1', '?')).get(String(p.pid)) as { started_at: number } | undefined, 10_000, 'the worker row');
        return Number(row.started_at);
      },
    }, receivers, ids);
  });
});

if (await postgresSuiteGate('crash recovery on PostgreSQL')) {
  describe('crash recovery on PostgreSQL: an API process and 2 workers', () => {
    after(cleanUp);
    it('missing 0, duplicates within what was held, first redelivery within 2 s of each restart', { timeout: 600_000 }, async (t) => {
      const schema: TestSchema = (await createTestSchema()) ?? assert.fail('PostgreSQL went away');
      cleanups.push(() => schema.drop());
      const { receivers, hooks, ids } = await receiversFor(WEBHOOKS);
      const store = new PostgresStore(schema.url, { poolSize: 8 });
      cleanups.push(() => store.close());
      await seedWebhooks(store, hooks);
      const common = { db: schema.url, 'allowed-targets': '127.0.0.0/8' };
      const workerFlags = {
        ...common, role: 'worker', 'request-timeout': '5s', 'connect-timeout': '2s', 'retry-schedule': '200ms,500ms,1s,2s',
        concurrency: 32, 'per-host-concurrency': 8,
      };
      const api = await startServer({ ...common, role: 'api' });
      const workers = new Map([['worker-1', await startServer(workerFlags)], ['worker-2', await startServer(workerFlags)]]);
      await run(t, {
        store, workers, apiUrl: api.url,
        async restart(name) {
          const p = await startServer(workerFlags);
          workers.set(name, p);
          return p;
        },
        async heldPaths(victim) {
          const r = await withPgClient(schema.url, (c) => c.query<{ url: string }>(HELD_SQL, [String(victim.pid)]));
          return r.rows.map((row) => new URL(row.url).pathname);
        },
        async workerStartedAt(p) {
          const row = await eventually(async () => (await withPgClient(schema.url, (c) => c.query<{ started_at: string }>(STARTED_SQL, [String(p.pid)]))).rows[0], 10_000, 'the worker row');
          return Number(row.started_at);
        },
      }, receivers, ids);
    });
  });
}

