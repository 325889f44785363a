/*
 * The upstream poller as it runs: `serve --upstream <fake>` processes on one database, changes
 * flowing on the fake ORCID, the polling process killed with SIGKILL in the middle of a window and
 * started again. Every changed watched record gets its callback, and none gets two notifications
 * (a notification is named by its webhook-id: a change applied twice would carry a second one).
 * On PostgreSQL two processes run: exactly one polls, the other takes over when it is killed.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createApiClient } from '../src/ops/clients.ts';
import { createStore } from '../src/store/index.ts';
import type { Store } from '../src/store/types.ts';
import { UPSTREAM_SOURCE } from '../src/upstream/poller.ts';
import { FakeOrcid, fakeOrcidId } from './helpers/fake-orcid.ts';
import { createTestSchema, requirePostgres } from './helpers/postgres.ts';
import { startServer, stopAllServers, tempDir, type ServerProcess } from './helpers/process.ts';
import { eventually, sleep, startReceiver, type Receiver } from './helpers/receiver.ts';

const RECORDS = 20_000;
const WATCHED = 150;
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  await stopAllServers();
  for (const c of cleanups.reverse()) await c();
});

async function seed(store: Store, rx: Receiver, indexes: number[]): Promise<void> {
  await store.migrate();
  const { client } = await createApiClient(store, { name: 'upstream process test', premium: true });
  const now = Date.now();
  await store.addRecords(indexes.map(fakeOrcidId), now - 60_000);
  for (const i of indexes) {
    const url = rx.url(`/hook/${fakeOrcidId(i)}`);
    await store.registerWebhook({ clientId: client.id, orcid: fakeOrcidId(i), url, host: new URL(url).host, now: now - 30_000 });
  }
}

function serverFlags(fake: FakeOrcid, db: string): Record<string, string> {
  return {
    db, upstream: fake.url, 'upstream-token-url': fake.tokenUrl, 'upstream-client-id': fake.clientId, 'upstream-client-secret': fake.clientSecret,
    'upstream-interval': '500ms', 'upstream-overlap': '4s', 'upstream-rate': '20', 'allowed-targets': '127.0.0.0/8',
    'poll-interval': '200ms', 'request-timeout': '1s', lease: '2s', 'log-level': 'info',
  };
}

/** webhook-ids received per record. */
function notifications(rx: Receiver): Map<string, Set<string>> {
  const m = new Map<string, Set<string>>();
  for (const r of rx.received) {
    const id = r.path.split('/').pop()!;
    if (!m.has(id)) m.set(id, new Set());
    m.get(id)!.add(String(r.headers['webhook-id']));
  }
  return m;
}

for (const backend of ['sqlite', 'postgres'] as const) {
  describe(`serve --upstream, SIGKILL mid-window (${backend})`, async () => {
    const pg = backend === 'postgres' ? await requirePostgres() : true;
    it('every changed watched record is notified once; the restarted (or other) process resumes from the stored cursor', { skip: pg ? false : 'PostgreSQL not reachable', timeout: 180_000 }, async () => {
      const fake = await FakeOrcid.start({ records: RECORDS, indexLagMs: 300, latencyMs: 20 });
      cleanups.push(() => fake.close());
      const rx = await startReceiver();
      cleanups.push(() => rx.close());
      let db: string;
      if (backend === 'postgres') {
        const schema = (await createTestSchema())!;
        cleanups.push(() => schema.drop());
        db = schema.url;
      } else {
        const t = tempDir();
        cleanups.push(() => t.remove());
        db = `sqlite:${join(t.dir, 'db.sqlite')}`;
      }
      const watched = Array.from({ length: WATCHED }, (_, k) => k * 131 + 7);
      const watchedSet = new Set(watched);
      const store = await createStore(db);
      cleanups.push(() => store.close());
      await seed(store, rx, watched);

      const procs: ServerProcess[] = [await startServer(serverFlags(fake, db))];
      if (backend === 'postgres') procs.push(await startServer(serverFlags(fake, db)));
      await eventually(async () => (await store.upstreamState(UPSTREAM_SOURCE))?.lastSuccessAt, 20_000, 'a first poll');

      // Changes: every watched record once, unwatched ones around them, over ~6 s.
      const changedAt = new Map<string, number>();
      let stop = false;
      const changer = (async () => {
        for (let k = 0; k < WATCHED && !stop; k++) {
          changedAt.set(fake.change(watched[k]!), Date.now());
          for (let j = 0; j < 5; j++) {
            const i = Math.floor(Math.random() * RECORDS);
            if (!watchedSet.has(i)) fake.change(i);
          }
          await sleep(40);
        }
      })();

      // Kill the polling process while it reads records (in the middle of a window).
      await sleep(2000);
      const leaderId = (await store.upstreamState(UPSTREAM_SOURCE))!.leader!;
      const leader = procs.find((p) => leaderId.startsWith(`${p.pid}-`))!;
      assert.ok(leader, `the leader ${leaderId} is one of ours`);
      const reads = fake.countRequests('record');
      await eventually(() => fake.countRequests('record') > reads, 10_000, 'a record read');
      leader.child.kill('SIGKILL');
      await leader.waitExit();
      const killedAt = Date.now();
      const survivor = procs.find((p) => p !== leader);
      if (survivor) {
        await eventually(async () => (await store.upstreamState(UPSTREAM_SOURCE))?.leader?.startsWith(`${survivor.pid}-`), 5000, 'the other process takes over');
        assert.ok(Date.now() - killedAt < 500 + 1500, 'takeover within about one interval after the lease');
        await eventually(() => survivor.logsMatching(/leading, polling from the stored cursor/).length === 1, 5000, 'the survivor logs that it leads');
      } else {
        await sleep(1000);
        procs.push(await startServer(serverFlags(fake, db)));
      }
      await changer;
      stop = true;
      await eventually(() => notifications(rx).size >= WATCHED ? true : null, 30_000, `callbacks for all ${WATCHED} watched records (got ${notifications(rx).size})`);
      await sleep(5000); // more polls over the same windows (overlap 4 s)
      const n = notifications(rx);
      for (const [orcid, at] of changedAt) {
        assert.equal(n.get(orcid)?.size, 1, `record ${orcid} (changed at ${new Date(at).toISOString()}): ${n.get(orcid)?.size ?? 0} notifications`);
      }
      assert.equal(fake.countRequests('record', (r) => !changedAt.has(r.orcid!)), 0, 'no record request for an unwatched record');
      // Dozens of polls, a handful of log lines: state changes only (following, leading, taking over).
      assert.ok(fake.countRequests('search') > 3, `${fake.countRequests('search')} searches`);
      for (const p of procs) assert.ok(p.logsMatching(/^upstream poller:/).length <= 3, `state changes only: ${p.logsMatching(/^upstream poller:/).map((l) => l.msg).join(' | ')}`);
    });
  });
}
