/*
 * Soak (issue 11): one `serve` process on SQLite under a steady load for SOAK_DURATION (default
 * 10m; e.g. SOAK_DURATION=2m for a quicker run): 200 webhooks on 2 receivers (5-20 ms answers,
 * 5% answered 500 and retried), 50 record changes a second through the admin API. Every 5 s it
 * samples the process's resident memory and open file descriptors (/proc) and its event-loop delay
 * and active handles (/metrics, prom-client's default metrics).
 *
 * After a warm-up (the first fifth), it proves the figures stay flat: the last quarter's median
 * RSS within 25% + 20 MB of the first post-warm-up quarter's, open descriptors and handles within
 * +25, event-loop delay p99 (median of the samples) within max(50 ms, 3x) of the first quarter's;
 * and that nothing is owed at the end.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseDuration } from '../src/domain/retry-schedule.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import { orcids, postChanges, PROCESS_ADMIN_TOKEN, seedWebhooks, startServer, stopAllServers, tempDir } from '../test/helpers/process.ts';
import { eventually, sleep } from '../test/helpers/receiver.ts';
import { prng, startFlakyReceiver, type FlakyReceiver } from './helpers/flaky-receiver.ts';

const DURATION_MS = parseDuration(process.env.SOAK_DURATION ?? '10m');
const SAMPLE_MS = 5_000;
const WEBHOOKS = 200;
const CHANGES_PER_SECOND = 50;

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  await stopAllServers();
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Sample { at: number; rssMb: number; fds: number; handles: number; eldP99Ms: number }

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.floor((s.length - 1) / 2)] as number) : NaN;
};

describe(`soak: a steady load for ${DURATION_MS / 1000} s`, () => {
  it('RSS, descriptors, handles and event-loop delay stay flat; nothing owed at the end', { timeout: DURATION_MS + 180_000 }, async (t) => {
    const tmp = tempDir('ow-soak-');
    cleanups.push(() => tmp.remove());
    const random = prng(42);
    const receivers: FlakyReceiver[] = await Promise.all([0, 1].map((i) => {
      const r = prng(100 + i);
      return startFlakyReceiver({ delayMs: () => 5 + Math.floor(r() * 16), fail: () => r() < 0.05, maxConsecutiveFailures: 2 });
    }));
    cleanups.push(async () => { for (const r of receivers) await r.close(); });
    const ids = orcids(WEBHOOKS);
    const db = join(tmp.dir, 'db.sqlite');
    const seed = new SqliteStore(db);
    await seedWebhooks(seed, ids.map((orcid, i) => ({ orcid, url: receivers[i % 2]!.url(`/soak/${i}`) })));
    await seed.close();
    const server = await startServer({
      db: `sqlite:${db}`, 'allowed-targets': '127.0.0.0/8', 'retry-schedule': '200ms,1s,2s', 'log-level': 'info',
    });

    const samples: Sample[] = [];
    const sample = async (): Promise<void> => {
      const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${PROCESS_ADMIN_TOKEN}` } });
      const text = await res.text();
      samples.push({
        at: Date.now(), rssMb: rssMb(server.pid), fds: readdirSync(`/proc/${server.pid}/fd`).length,
        handles: metric(text, 'orcid_webhooks_nodejs_active_handles_total'),
        eldP99Ms: metric(text, 'orcid_webhooks_nodejs_eventloop_lag_p99_seconds') * 1000,
      });
    };

    const end = Date.now() + DURATION_MS;
    let changes = 0;
    let nextSample = Date.now();
    while (Date.now() < end) {
      const tick = Date.now();
      const batch = Array.from({ length: CHANGES_PER_SECOND }, () => ({ orcid: ids[Math.floor(random() * WEBHOOKS)]!, modified: tick }));
      // One change per record per batch (a bulk request applies duplicates in order; the later are older).
      const unique = [...new Map(batch.map((c) => [c.orcid, c])).values()];
      await postChanges(server.url, unique);
      changes += unique.length;
      if (Date.now() >= nextSample) {
        await sample();
        nextSample += SAMPLE_MS;
      }
      await sleep(Math.max(0, 1_000 - (Date.now() - tick)));
    }
    await sample();
    const store = new SqliteStore(db);
    cleanups.push(() => store.close());
    await eventually(async () => (await store.countWebhooks()).pending === 0, 30_000, 'nothing owed');

    const warm = samples.slice(Math.floor(samples.length / 5));
    const q = Math.max(1, Math.floor(warm.length / 4));
    const first = warm.slice(0, q);
    const last = warm.slice(-q);
    const summary = (xs: Sample[]) => ({
      rssMb: Math.round(median(xs.map((s) => s.rssMb))), fds: Math.max(...xs.map((s) => s.fds)),
      handles: Math.max(...xs.map((s) => s.handles)), eldP99Ms: Math.round(median(xs.map((s) => s.eldP99Ms)) * 10) / 10,
    });
    const a = summary(first);
    const b = summary(last);
    const minutes = (warm.at(-1)!.at - warm[0]!.at) / 60_000;
    const slope = minutes > 0 ? (median(last.map((s) => s.rssMb)) - median(first.map((s) => s.rssMb))) / minutes : 0;
    const callbacks = receivers.reduce((n, r) => n + r.answers.length, 0);
    t.diagnostic(`${changes} changes, ${callbacks} callbacks in ${(DURATION_MS / 60_000).toFixed(1)} min; ${samples.length} samples`);
    t.diagnostic(`first quarter after warm-up: ${JSON.stringify(a)}; last quarter: ${JSON.stringify(b)}; RSS drift ${slope.toFixed(2)} MB/min`);

    assert.ok(samples.length >= 8, 'enough samples');
    assert.ok(b.rssMb <= a.rssMb * 1.25 + 20, `RSS flat: ${a.rssMb} -> ${b.rssMb} MB`);
    assert.ok(b.fds <= a.fds + 25, `descriptors flat: ${a.fds} -> ${b.fds}`);
    if (Number.isFinite(a.handles) && Number.isFinite(b.handles)) assert.ok(b.handles <= a.handles + 25, `handles flat: ${a.handles} -> ${b.handles}`);
    if (Number.isFinite(a.eldP99Ms) && Number.isFinite(b.eldP99Ms)) {
      assert.ok(b.eldP99Ms <= Math.max(50, 3 * a.eldP99Ms), `event-loop delay p99 flat: ${a.eldP99Ms} -> ${b.eldP99Ms} ms`);
    }
    assert.deepEqual(receivers.flatMap((r) => r.overlaps), [], 'no webhook called twice at once');
  });
});
