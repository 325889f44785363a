/*
 * Upstream watching (issue 13), against the fake ORCID public API (test/helpers/fake-orcid.ts) on
 * 127.0.0.1: 1,000,000 records upstream, 10,000 of them watched by webhooks here, 500 changes a
 * minute, `serve --upstream` as a child process on SQLite. Three phases:
 *   1. steady: every watched change must give exactly one callback within interval + 5 s of
 *      becoming searchable (change + index lag); no request for an unwatched record;
 *   2. SIGKILL of the service in the middle of a window, restart: nothing missed, nothing doubled;
 *   3. an outage of the upstream (503) standing for one hour, time-compressed: the hour's changes
 *      (500 a minute: 30,000) are made during it; afterwards everything is caught up and the
 *      request rate never exceeded --upstream-rate (the fake counts every arrival).
 * "Exactly one" is judged by webhook-id: a notification delivered again carries the same one, a
 * change applied twice would carry a new one. Watched records change at most once each.
 * Sizes: BENCH_UPSTREAM_* (bench/README.md). Writes bench/results/upstream.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApiClient } from '../src/ops/clients.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import { FakeOrcid, fakeOrcidId } from '../test/helpers/fake-orcid.ts';
import { startServer, stopAllServers, type ServerProcess } from '../test/helpers/process.ts';
import { startReceiver } from '../test/helpers/receiver.ts';
import { envInt, percentiles, sleep } from './lib/common.ts';
import { fmt, log, machine, markdownTable } from './lib/report.ts';
import { cpuPressure } from './lib/scenarios.ts';

const S = {
  records: envInt('BENCH_UPSTREAM_RECORDS', 1_000_000),
  watched: envInt('BENCH_UPSTREAM_WATCHED', 10_000),
  perMinute: envInt('BENCH_UPSTREAM_CHANGES_PER_MINUTE', 500),
  /** Share (percent) of the steady changes that hit a watched record (uniform would be 1%: too few to measure in minutes). */
  watchedSharePct: envInt('BENCH_UPSTREAM_WATCHED_SHARE', 10),
  steadySeconds: envInt('BENCH_UPSTREAM_SECONDS', 90),
  intervalSeconds: envInt('BENCH_UPSTREAM_INTERVAL', 5),
  indexLagSeconds: envInt('BENCH_UPSTREAM_INDEX_LAG', 10),
  overlapSeconds: envInt('BENCH_UPSTREAM_OVERLAP', 30),
  rate: envInt('BENCH_UPSTREAM_RATE', 8),
  /** Real seconds the one-hour outage lasts (time compression). */
  outageSeconds: envInt('BENCH_UPSTREAM_OUTAGE_SECONDS', 40),
};

interface Change { orcid: string; at: number; searchable: number; phase: 'steady' | 'kill' | 'outage' }

interface PhaseResult {
  watchedChanges: number;
  missing: number;
  doubled: number;
  delayAfterSearchableMs: { p50: number | null; p99: number | null; max: number | null };
  withinIntervalPlus5s: number;
}

export async function runUpstreamBench() {
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'ow-bench-upstream-'));
  const db = `sqlite:${join(dir, 'db.sqlite')}`;
  log(`upstream: fake ORCID with ${fmt(S.records)} records, ${fmt(S.watched)} watched`);
  const fake = await FakeOrcid.start({ records: S.records, indexLagMs: S.indexLagSeconds * 1000 });
  const rx = await startReceiver();
  const procs: ServerProcess[] = [];
  try {
    // Watched: every (records / watched)-th record, so they spread over the whole range.
    const step = Math.floor(S.records / S.watched);
    const watched = Array.from({ length: S.watched }, (_, k) => k * step + 3);
    const watchedSet = new Set(watched);
    {
      const store = new SqliteStore(join(dir, 'db.sqlite'));
      await store.migrate();
      const { client } = await createApiClient(store, { name: 'bench', premium: true });
      const now = Date.now();
      await store.addRecords(watched.map(fakeOrcidId), now - 120_000);
      const hooks = watched.map((i) => rx.url(`/hook/${fakeOrcidId(i)}`));
      store.db.transaction(() => {
        const ins = store.db.prepare('INSERT INTO webhooks (client_id, orcid, url, host, created_at) VALUES (?, ?, ?, ?, ?)');
        watched.forEach((i, k) => ins.run(client.id, fakeOrcidId(i), hooks[k], new URL(hooks[k]!).host, now - 60_000));
      })();
      await store.close();
    }
    const flags = {
      db, upstream: fake.url, 'upstream-token-url': fake.tokenUrl, 'upstream-client-id': fake.clientId, 'upstream-client-secret': fake.clientSecret,
      'upstream-interval': `${S.intervalSeconds}s`, 'upstream-overlap': `${S.overlapSeconds}s`, 'upstream-rate': String(S.rate),
      'allowed-targets': '127.0.0.0/8',
    };
    procs.push(await startServer(flags));
    await sleep(S.intervalSeconds * 1000 + 1000);

    const changes: Change[] = [];
    let nextWatched = 0;
    const unusedWatched = () => watched[(nextWatched++ * 7919) % watched.length]!; // a permutation: each watched record at most once
    const randomUnwatched = () => {
      for (;;) {
        const i = Math.floor(Math.random() * S.records);
        if (!watchedSet.has(i)) return i;
      }
    };
    const changedWatched = new Set<number>();
    const change = (i: number, phase: Change['phase']) => {
      const at = Date.now();
      const orcid = fake.change(i, at);
      if (watchedSet.has(i)) {
        changedWatched.add(i);
        changes.push({ orcid, at, searchable: at + S.indexLagSeconds * 1000, phase });
      }
    };
    /** Changes at perMinute for seconds, watchedShare of them on watched records. */
    const flow = async (seconds: number, phase: Change['phase'], share: number) => {
      const end = Date.now() + seconds * 1000;
      const gap = 60_000 / S.perMinute;
      while (Date.now() < end) {
        change(Math.random() * 100 < share ? unusedWatched() : randomUnwatched(), phase);
        await sleep(gap);
      }
    };

    // 1. Steady.
    log(`upstream: steady ${S.steadySeconds} s at ${S.perMinute} changes/min (${S.watchedSharePct}% on watched records)`);
    const steadyPressure = cpuPressure();
    await flow(S.steadySeconds, 'steady', S.watchedSharePct);
    // Let the last steady changes become searchable and be found before the next phase disturbs it.
    await sleep((S.indexLagSeconds + S.intervalSeconds + 5) * 1000);
    const steadyCpu = steadyPressure();

    // 2. SIGKILL mid-window (while it reads records), restart.
    log('upstream: SIGKILL mid-window and restart');
    const flowing = flow(20, 'kill', S.watchedSharePct);
    await sleep(5000);
    const reads = fake.countRequests('record');
    while (fake.countRequests('record') === reads) await sleep(20);
    procs[0]!.child.kill('SIGKILL');
    await procs[0]!.waitExit();
    const restartAt = Date.now();
    procs.push(await startServer(flags));
    await flowing;
    // The restarted process has polled (and caught up the kill phase) before the outage begins.
    const store = new SqliteStore(join(dir, 'db.sqlite'));
    while (((await store.upstreamState('upstream'))?.lastSuccessAt ?? 0) < restartAt) await sleep(200);
    await store.close();
    const restartSeconds = Math.round((Date.now() - restartAt) / 1000);
    await sleep((S.indexLagSeconds + S.intervalSeconds + 5) * 1000);

    // 3. The outage: one hour of changes (uniform over all records) while the upstream answers 503.
    const hourChanges = S.perMinute * 60;
    log(`upstream: outage of ${S.outageSeconds} s standing for one hour: ${fmt(hourChanges)} changes`);
    const outageStart = Date.now();
    fake.setOutage('503');
    for (let k = 0; k < hourChanges; k++) {
      const i = Math.floor(Math.random() * S.records);
      change(changedWatched.has(i) ? randomUnwatched() : i, 'outage');
      if (k % 500 === 0) await sleep((S.outageSeconds * 1000) / (hourChanges / 500));
    }
    while (Date.now() - outageStart < S.outageSeconds * 1000) await sleep(100);
    fake.setOutage('off');
    const outageEnd = Date.now();
    log('upstream: outage over; catching up');
    const catchPressure = cpuPressure();
    const expected = new Set(changes.map((c) => c.orcid));
    const deadline = Date.now() + 15 * 60_000;
    const received = () => new Set(rx.received.map((r) => r.path.split('/').pop()!));
    while (Date.now() < deadline && [...expected].some((o) => !received().has(o))) await sleep(500);
    const caughtUpAt = Date.now();
    const catchCpu = catchPressure();
    await sleep((S.intervalSeconds + S.overlapSeconds) * 1000); // more polls over the same windows

    // Results.
    const byOrcid = new Map<string, { first: number; ids: Set<string> }>();
    for (const r of rx.received) {
      const o = r.path.split('/').pop()!;
      const e = byOrcid.get(o) ?? { first: r.at, ids: new Set<string>() };
      e.first = Math.min(e.first, r.at);
      e.ids.add(String(r.headers['webhook-id']));
      byOrcid.set(o, e);
    }
    const phase = (p: Change['phase']): PhaseResult => {
      const cs = changes.filter((c) => c.phase === p);
      const delays = cs.filter((c) => byOrcid.has(c.orcid)).map((c) => byOrcid.get(c.orcid)!.first - c.searchable);
      return {
        watchedChanges: cs.length,
        missing: cs.filter((c) => !byOrcid.has(c.orcid)).length,
        doubled: cs.filter((c) => (byOrcid.get(c.orcid)?.ids.size ?? 0) > 1).length,
        delayAfterSearchableMs: percentiles(delays),
        withinIntervalPlus5s: delays.filter((d) => d <= (S.intervalSeconds + 5) * 1000).length,
      };
    };
    const unwatchedReads = fake.countRequests('record', (r) => !expected.has(r.orcid!));
    const result = {
      settings: S,
      steady: { ...phase('steady'), cpuPressurePct: steadyCpu },
      kill: { ...phase('kill'), restartSeconds },
      outage: { ...phase('outage'), catchUpSeconds: Math.round((caughtUpAt - outageEnd) / 1000), cpuPressurePct: catchCpu },
      requests: {
        search: fake.countRequests('search'), record: fake.countRequests('record'), token: fake.countRequests('token'),
        recordsForUnwatched: unwatchedReads, maxPerSecond: fake.maxInWindow(1000), refused503: fake.requests.filter((r) => r.status === 503).length,
      },
      durationSeconds: Math.round((Date.now() - started) / 1000),
    };
    return result;
  } finally {
    await stopAllServers();
    await rx.close();
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function upstreamReport(r: Awaited<ReturnType<typeof runUpstreamBench>>): string {
  const row = (name: string, p: PhaseResult) => [
    name, fmt(p.watchedChanges), fmt(p.missing), fmt(p.doubled), `${fmt(p.withinIntervalPlus5s)} / ${fmt(p.watchedChanges - p.missing)}`,
    `${fmt((p.delayAfterSearchableMs.p50 ?? NaN) / 1000, 1)} / ${fmt((p.delayAfterSearchableMs.p99 ?? NaN) / 1000, 1)} / ${fmt((p.delayAfterSearchableMs.max ?? NaN) / 1000, 1)} s`,
  ];
  const s = r.settings;
  return [
    markdownTable(['Phase', 'Watched changes', 'Missing', 'Doubled', `Within ${s.intervalSeconds + 5} s of searchable`, 'Delay after searchable p50 / p99 / max'], [
      row('steady', r.steady), row('SIGKILL + restart', r.kill), row(`outage (1 h of changes in ${s.outageSeconds} s)`, r.outage),
    ], ['l', 'r', 'r', 'r', 'r', 'r']),
    '',
    '- Delays in the SIGKILL and outage rows include the restart (the process starting again) and the outage itself: what those rows check is Missing and Doubled.',
    '',
    `- ${fmt(s.records)} records upstream, ${fmt(s.watched)} watched, ${s.perMinute} changes/min (${s.watchedSharePct}% on watched records while steady; uniform during the outage), interval ${s.intervalSeconds} s, index lag ${s.indexLagSeconds} s, overlap ${s.overlapSeconds} s, --upstream-rate ${s.rate}.`,
    `- Requests: ${fmt(r.requests.search)} search pages, ${fmt(r.requests.record)} record reads (${fmt(r.requests.recordsForUnwatched)} for unwatched records), ${r.requests.token} token(s), ${fmt(r.requests.refused503)} answered 503 during the outage; at most ${r.requests.maxPerSecond} in any one second (limit ${s.rate}).`,
    `- Restarted process polling ${r.kill.restartSeconds} s after the SIGKILL (start-up and a first poll). Caught up ${r.outage.catchUpSeconds} s after the outage. CPU pressure: steady ${r.steady.cpuPressurePct ?? 'n/a'}%, catch-up ${r.outage.cpuPressurePct ?? 'n/a'}%.`,
  ].join('\n');
}

const isMain = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const r = await runUpstreamBench();
  const m = machine();
  console.log(`\n## Upstream watching (${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${m.cpus} × ${m.cpuModel}, Node ${m.node.slice(1)}, commit ${m.gitCommit ?? 'unknown'})\n`);
  console.log(upstreamReport(r));
  const file = fileURLToPath(new URL('./results/upstream.json', import.meta.url));
  mkdirSync(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true });
  writeFileSync(file, `${JSON.stringify({ script: 'bench:upstream', at: new Date().toISOString(), machine: m, ...r }, null, 2)}\n`);
  console.log(`\nJSON: ${file}`);
  const bad = r.steady.missing + r.steady.doubled + r.kill.missing + r.kill.doubled + r.outage.missing + r.outage.doubled + r.requests.recordsForUnwatched;
  if (bad || r.requests.maxPerSecond > r.settings.rate) process.exitCode = 1;
}
