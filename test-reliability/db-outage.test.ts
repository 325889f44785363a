/*
 * Database outages on PostgreSQL, with the service reaching PostgreSQL only through a TCP proxy on
 * 127.0.0.1 (helpers/tcp-proxy.ts) while changes stream in through the admin API.
 *
 * 1. Cut (the database is down): an API process (`serve --role api`) and a delivery worker
 *    (`serve --role worker`), 300 webhooks on 300 records; the proxy destroys every connection and
 *    refuses new ones for 5 s mid-run, then forwards again. Neither process exits; /ready answers
 *    503 naming `store` during the outage and 200 after it; the worker logs the database errors
 *    with its retry delay, and no log line holds the database password, the admin token or an API
 *    token; changes and ORCID API calls made during the outage are answered at once with a 5xx in
 *    ORCID's format; once restored, every owed notification is delivered after its record's last
 *    committed change and nothing stays owed.
 * 2. Stall (a partition: connections stay open, nothing answers) for 30 s, one `serve` (role all)
 *    with --statement-timeout 1s: every API request and /ready probe is answered with a 5xx (503
 *    naming `store` for /ready) within 15 s instead of waiting for the database to come back, and
 *    afterwards everything owed is delivered.
 *
 * Needs PostgreSQL (see test/helpers/postgres.ts): required under CI=true, otherwise skipped with one line.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createApiClient } from '../src/ops/clients.ts';
import { PostgresStore } from '../src/store/postgres/postgres-store.ts';
import { webhookPath } from '../test/helpers/harness.ts';
import { createTestSchema, postgresSuiteGate, pgTestUrl, type TestSchema } from '../test/helpers/postgres.ts';
import {
  orcids, PROCESS_ADMIN_TOKEN, seedWebhooks, startServer, startTrackingReceiver, stopAllServers, type ServerProcess, type TrackingReceiver,
} from '../test/helpers/process.ts';
import { eventually, sleep } from '../test/helpers/receiver.ts';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.ts';

const RECORDS = 300;
const RECEIVERS = 3;
const WARM_MS = 4_000;
const OUTAGE_MS = 5_000;
const AFTER_MS = 4_000;
const STALL_RECORDS = 100;
const STALL_MS = 30_000;
/**
 * During a stall: the longest a request may take. The pool gives up on a connection after 10 s and
 * a query after statement-timeout + 2 s (3 s here); a transaction is a connection plus BEGIN and
 * ROLLBACK.
 */
const STALL_BOUND_MS = 15_000;
/** A request answered later than this counts as a hang. */
const PROMPT_MS = 5_000;
/** Put in the database URL when it carries no password, to check that none reaches a log (trust auth ignores it). */
const SENTINEL_PASSWORD = 'outage-sentinel-pw-5f1c2e';

interface Call {
  what: string;
  sentAt: number;
  ms: number;
  status: number | null;
  body: string;
  error: string | null;
  /** Bulk changes: record index -> modified time sent. */
  values?: Map<number, number>;
}

/** A request with a deadline: a hang shows as an error rather than a stuck test. */
async function call(what: string, url: string, init: RequestInit = {}): Promise<Call> {
  const sentAt = Date.now();
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
    const body = await res.text();
    return { what, sentAt, ms: Date.now() - sentAt, status: res.status, body, error: null };
  } catch (err) {
    return { what, sentAt, ms: Date.now() - sentAt, status: null, body: '', error: `${(err as Error).name}: ${(err as Error).message}` };
  }
}

const admin = (method: string, body?: unknown): RequestInit => ({
  method,
  headers: { authorization: `Bearer ${PROCESS_ADMIN_TOKEN}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
  ...(body !== undefined && { body: JSON.stringify(body) }),
});

/** An ORCID-format error body (JSON), or null. */
function orcidError(c: Call): { 'response-code': number; 'error-code': number; 'developer-message': string; 'user-message': string; 'more-info': string } | null {
  try {
    const b = JSON.parse(c.body) as Record<string, unknown>;
    const ok = typeof b['response-code'] === 'number' && typeof b['error-code'] === 'number' && typeof b['developer-message'] === 'string'
      && typeof b['user-message'] === 'string' && typeof b['more-info'] === 'string';
    return ok ? (b as ReturnType<typeof orcidError>) : null;
  } catch {
    return null;
  }
}

if (await postgresSuiteGate('database outage on PostgreSQL')) {
  describe('database outage on PostgreSQL', () => {
    const schemas: TestSchema[] = [];
    const stores: PostgresStore[] = [];
    const proxies: TcpProxy[] = [];
    const rxs: TrackingReceiver[] = [];

    after(async () => {
      await stopAllServers();
      for (const rx of rxs.splice(0)) await rx.close();
      for (const p of proxies.splice(0)) await p.close();
      for (const s of stores.splice(0)) await s.close();
      for (const s of schemas.splice(0)) await s.drop();
    });

    /** A fresh schema, a store on it (direct), and the URL of the same schema through a new proxy. */
    async function setup(): Promise<{ store: PostgresStore; proxy: TcpProxy; direct: URL; viaProxy: URL; password: string }> {
      const schema = (await createTestSchema()) ?? assert.fail('PostgreSQL went away');
      schemas.push(schema);
      const direct = new URL(pgTestUrl());
      direct.searchParams.set('schema', schema.schema);
      const store = new PostgresStore(direct.toString(), { poolSize: 4 });
      stores.push(store);
      const proxy = await startTcpProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
      proxies.push(proxy);
      const viaProxy = new URL(direct);
      viaProxy.host = `127.0.0.1:${proxy.port}`;
      if (!viaProxy.password && !process.env.PGPASSWORD) viaProxy.password = SENTINEL_PASSWORD;
      return { store, proxy, direct, viaProxy, password: decodeURIComponent(viaProxy.password) };
    }

    it('a 5 s cut between the processes and PostgreSQL: no crash, 503 from /ready and the API, every notification delivered after', { timeout: 180_000 }, async (t) => {
      const started = Date.now();
      const { store, proxy, viaProxy, password } = await setup();

      rxs.push(...(await Promise.all(Array.from({ length: RECEIVERS }, () => startTrackingReceiver(() => 5 + Math.floor(Math.random() * 25))))));
      const ids = orcids(RECORDS);
      const hooks = ids.map((orcid, i) => ({ orcid, url: rxs[i % RECEIVERS]!.url(`/outage/${i}`), path: `/outage/${i}`, rx: rxs[i % RECEIVERS]! }));
      await seedWebhooks(store, hooks);
      const initial = new Map((await store.listRecords({ limit: RECORDS + 1 })).map((r) => [r.orcid, r.modifiedAt]));
      // A second client, with its secret, for the ORCID API side.
      const { client, secret } = await createApiClient(store, { name: 'outage ORCID API client', premium: true });

      const common = {
        db: viaProxy.toString(), 'allowed-targets': '127.0.0.0/8', 'poll-interval': '200ms', lease: '4s', 'request-timeout': '1s',
        'connect-timeout': '1s', 'pool-size': 4,
      };
      const [api, worker] = await Promise.all([
        startServer({ ...common, role: 'api' }, { startTimeoutMs: 90_000 }),
        startServer({ ...common, role: 'worker', concurrency: 32, 'per-host-concurrency': 8 }, { startTimeoutMs: 90_000 }),
      ]) as [ServerProcess, ServerProcess];
      const procs = { api, worker };

      const tokenRes = await call('token', `${api.url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ client_id: client.id, client_secret: secret, grant_type: 'client_credentials', scope: '/webhook' }).toString(),
      });
      assert.equal(tokenRes.status, 200, tokenRes.body);
      const token = (JSON.parse(tokenRes.body) as { access_token: string }).access_token;
      const orcidApi = (method: string, orcid: string, callback: string) => call(`ORCID API ${method}`, `${api.url}${webhookPath(orcid, callback)}`, {
        method, headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      });
      const extra = rxs[0]!.url('/outage/extra');

      // Probes: /ready of both processes every 250 ms.
      const ready: { proc: 'api' | 'worker'; at: number; ms: number; status: number | null; failing: string[]; checks: Record<string, string> }[] = [];
      let probing = true;
      const prober = (async () => {
        while (probing) {
          await Promise.all((['api', 'worker'] as const).map(async (name) => {
            const c = await call('ready', `${procs[name].url}/ready`);
            let body: { failing?: string[]; checks?: Record<string, string> } = {};
            try {
              body = JSON.parse(c.body) as typeof body;
            } catch {
              // a hang or a non-JSON answer: status and error tell
            }
            ready.push({ proc: name, at: c.sentAt, ms: c.ms, status: c.status, failing: body.failing ?? [], checks: body.checks ?? {} });
          }));
          await sleep(250);
        }
      })();

      // The change stream: 10 records every ~100 ms, times from one increasing clock.
      const changes: Call[] = [];
      let clock = Date.now();
      let changing = true;
      const stream = (async () => {
        let k = 0;
        while (changing) {
          const values = new Map<number, number>();
          while (values.size < 10) values.set(Math.floor(Math.random() * RECORDS), 0);
          for (const r of values.keys()) values.set(r, (clock = Math.max(clock + 1, Date.now())));
          const c = await call(`changes ${k++}`, `${api.url}/admin/api/changes`, admin('POST', {
            changes: [...values].map(([r, m]) => ({ orcid: ids[r]!, modified: new Date(m).toISOString() })),
          }));
          c.values = values;
          changes.push(c);
          await sleep(100);
        }
      })();

      await sleep(WARM_MS);
      const deliveredBeforeCut = rxs.reduce((n, rx) => n + rx.received.length, 0);
      const cutAt = Date.now();
      await proxy.cut();
      await sleep(1_000);
      // The ORCID API and a single-record touch while the database is away.
      const during = await Promise.all([
        orcidApi('PUT', ids[0]!, extra),
        orcidApi('GET', ids[1]!, hooks[1]!.url),
        call('touch', `${api.url}/admin/api/records/${ids[2]!}`, admin('PUT')),
        call('health', `${api.url}/health`),
      ]);
      await sleep(OUTAGE_MS - (Date.now() - cutAt));
      for (const [name, p] of Object.entries(procs)) assert.equal(p.exited(), null, `the ${name} process is alive at the end of the outage`);
      await proxy.restore();
      const restoredAt = Date.now();
      await sleep(AFTER_MS);
      const afterApi = await orcidApi('PUT', ids[0]!, extra);
      changing = false;
      await stream;
      const changesDone = Date.now();

      // Settle: nothing owed or leased, nothing in flight.
      const db = store;
      const owed = async () => (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM webhooks
        WHERE due_at IS NOT NULL OR pending_since IS NOT NULL OR lease_owner IS NOT NULL OR enabled = 0 OR failed_attempts > 0`)).rows[0]!.n;
      await eventually(async () => rxs.every((rx) => rx.inFlight() === 0) && (await owed()) === 0, 60_000, 'the store to owe nothing');
      const settledAt = Date.now();
      await eventually(() => ready.filter((r) => r.at > settledAt).length >= 4, 10_000, 'a few /ready probes after settling');
      probing = false;
      await prober;

      // 1. Neither process exited.
      for (const [name, p] of Object.entries(procs)) assert.equal(p.exited(), null, `the ${name} process never exited (stderr: ${p.stderr().slice(-500)})`);

      // 2. /ready: promptly 503 naming store during the outage (after the first 500 ms), 200 after.
      const inOutage = ready.filter((r) => r.at >= cutAt + 500 && r.at + r.ms <= restoredAt);
      for (const name of ['api', 'worker'] as const) {
        const mine = inOutage.filter((r) => r.proc === name);
        assert.ok(mine.length >= 5, `${name}: /ready probed during the outage (${mine.length})`);
        for (const r of mine) {
          assert.equal(r.status, 503, `${name}: /ready during the outage: ${JSON.stringify(r)}`);
          assert.ok(r.failing.includes('store'), `${name}: /ready names the store: ${JSON.stringify(r)}`);
        }
        const last = ready.filter((r) => r.proc === name).slice(-3);
        for (const r of last) assert.equal(r.status, 200, `${name}: /ready after the outage: ${JSON.stringify(r)}`);
      }
      const slowest = Math.max(...ready.map((r) => r.ms));
      assert.ok(slowest < PROMPT_MS, `/ready always answered within ${PROMPT_MS} ms (slowest ${slowest} ms)`);
      const backAfter = Math.min(...(['api', 'worker'] as const).map((name) => {
        const first = ready.find((r) => r.proc === name && r.at >= restoredAt && r.status === 200);
        return first ? first.at - restoredAt : Infinity;
      }));
      const backAll = Math.max(...(['api', 'worker'] as const).map((name) => {
        const first = ready.find((r) => r.proc === name && r.at >= restoredAt && r.status === 200);
        return first ? first.at + first.ms - restoredAt : Infinity;
      }));

      // 3. The API during the outage: a prompt 5xx in ORCID's format; before and after, accepted.
      const refused = changes.filter((c) => c.status !== 202);
      const cutChanges = changes.filter((c) => c.sentAt >= cutAt + 200 && c.sentAt + c.ms <= restoredAt);
      assert.ok(cutChanges.length >= 10, `changes sent during the outage (${cutChanges.length})`);
      for (const c of [...refused, ...during.filter((d) => d.what !== 'health')]) {
        assert.ok(c.status !== null && c.status >= 500 && c.status <= 599, `${c.what}: a 5xx, not ${c.status ?? c.error}`);
        assert.ok(c.ms < PROMPT_MS, `${c.what}: answered within ${PROMPT_MS} ms (${c.ms} ms)`);
        const e = orcidError(c);
        assert.ok(e, `${c.what}: an ORCID-format error body: ${c.body}`);
        assert.equal(e['response-code'], c.status);
      }
      for (const c of cutChanges) assert.notEqual(c.status, 202, `${c.what}, sent during the outage, was refused`);
      for (const c of refused) {
        assert.equal(c.status, 503, `${c.what}: 503 Service Unavailable, not ${c.status}`);
        assert.equal(orcidError(c)!['error-code'], 9057, `${c.what}: error-code 9057 (database unavailable)`);
      }
      assert.ok(refused.every((c) => c.sentAt >= cutAt - 1_000 && c.sentAt <= restoredAt + 1_000), 'only changes sent around the outage were refused');
      assert.equal(during.find((d) => d.what === 'health')!.status, 200, '/health (no database) still answers 200');
      assert.ok(afterApi.status === 201 || afterApi.status === 204, `ORCID API PUT after the outage: ${afterApi.status} ${afterApi.body}`);

      // 4. Logs: the worker's database errors with their retry, and no secret anywhere.
      const dbErrors = worker.logsMatching(/database error|could not record attempts/);
      assert.ok(dbErrors.length >= 1, 'the worker logged the database errors');
      assert.ok(dbErrors.every((l) => typeof l.retryInMs === 'number' && l.retryInMs > 0), 'each with its retry delay');
      assert.ok(dbErrors.every((l) => l.err !== undefined), 'each with the error');
      const apiErrors = api.logsMatching(/database unavailable/).filter((l) => (l.level ?? 0) >= 40);
      assert.ok(apiErrors.length >= 1, 'the API logged the failed requests (warn: database unavailable)');
      for (const [name, p] of Object.entries(procs)) {
        const text = JSON.stringify(p.logs) + p.stderr();
        assert.ok(!text.includes(password), `${name}: the database password is in no log line`);
        assert.ok(!text.includes(PROCESS_ADMIN_TOKEN), `${name}: the admin token is in no log line`);
        assert.ok(!text.includes(token), `${name}: the ORCID API token is in no log line`);
      }

      // 5. Delivery: every record's webhook was called after the record's last committed change
      // (a change answered 5xx may still have committed: the final modified_at says which did).
      const rows = await store.listWebhooks({ limit: RECORDS + 10 });
      for (const w of rows) {
        assert.ok(w.enabled && w.dueAt === null && w.pendingSince === null && w.lease === null && w.failedAttempts === 0,
          `webhook ${w.id} settled: ${JSON.stringify(w)}`);
      }
      const final = new Map((await store.listRecords({ limit: RECORDS + 1 })).map((r) => [r.orcid, r.modifiedAt]));
      const lastChange = new Map<number, Call>();
      let refusedButCommitted = 0;
      for (const c of changes) {
        for (const [r, m] of c.values ?? []) {
          if (final.get(ids[r]!) === m) {
            lastChange.set(r, c);
            if (c.status !== 202) refusedButCommitted++;
          }
        }
      }
      const missing: string[] = [];
      for (let r = 0; r < RECORDS; r++) {
        const h = hooks[r]!;
        const got = h.rx.received.filter((q) => q.path === h.path);
        const change = lastChange.get(r);
        if (!change) {
          // Records 0..2 may have changed through the touch or the ORCID API calls above.
          if (final.get(ids[r]!) !== initial.get(ids[r]!) && r > 2) missing.push(`${h.path}: changed by an unknown request`);
          continue;
        }
        if (!got.some((q) => q.at >= change.sentAt)) missing.push(`${h.path}: last change sent at ${change.sentAt}, callbacks at ${got.map((q) => q.at).join(',') || 'none'}`);
      }
      assert.deepEqual(missing, [], 'every changed record\'s webhook was called after its last change');
      for (const rx of rxs) assert.equal(rx.maxConcurrentPerPath(), 1, 'no webhook called twice at once');

      const attemptErrors = (await store.pool.query<{ status: string; n: number }>(`SELECT COALESCE(status_code::text, error) AS status, count(*)::int AS n
        FROM attempts WHERE status_code IS NULL OR status_code <> 200 GROUP BY 1`)).rows;
      const sample = refused[0] ?? during[0]!;
      t.diagnostic(`${changes.length} change requests, ${refused.length} refused (${refusedButCommitted} record change(s) answered 5xx yet committed); `
        + `${rxs.reduce((n, rx) => n + rx.received.length, 0)} callbacks (${deliveredBeforeCut} before the cut); failed attempts ${JSON.stringify(attemptErrors)}`);
      t.diagnostic(`refused change: HTTP ${sample.status} in ${sample.ms} ms: ${sample.body}`);
      for (const d of during) t.diagnostic(`during the outage, ${d.what}: HTTP ${d.status ?? d.error} in ${d.ms} ms${d.status === 200 ? '' : `: ${d.body.slice(0, 300)}`}`);
      const r503 = inOutage.find((r) => r.proc === 'worker');
      t.diagnostic(`/ready during the outage (worker): ${JSON.stringify(r503 && { status: r503.status, failing: r503.failing, checks: r503.checks })}; `
        + `slowest /ready ${slowest} ms; 200 again ${backAfter}-${backAll} ms after the restore`);
      t.diagnostic(`worker: ${dbErrors.length} database error line(s), e.g. ${JSON.stringify({ msg: dbErrors[0]?.msg, retryInMs: dbErrors[0]?.retryInMs, err: (dbErrors[0]?.err as { message?: string } | undefined)?.message })}; `
        + `api: ${apiErrors.length} error line(s), e.g. ${JSON.stringify({ msg: apiErrors[0]?.msg, err: (apiErrors[0]?.err as { message?: string } | undefined)?.message })}`);
      t.diagnostic(`timings: start ${restoredAt - OUTAGE_MS - WARM_MS - started} ms (setup and processes), settle ${settledAt - changesDone} ms, total ${Date.now() - started} ms`);

      const exits = await Promise.all([api.stop('SIGTERM'), worker.stop('SIGTERM')]);
      for (const e of exits) assert.deepEqual([e.code, e.signal], [0, null], 'SIGTERM exits 0');
    });

    it('a 30 s stall (partition: connections open, nothing answers): the API and /ready answer 5xx within a bound, never wait for the database', { timeout: 180_000 }, async (t) => {
      const started = Date.now();
      const { store, proxy, viaProxy } = await setup();
      const rx = await startTrackingReceiver(() => 5 + Math.floor(Math.random() * 20));
      rxs.push(rx);
      const ids = orcids(STALL_RECORDS, 10_000);
      await seedWebhooks(store, ids.map((orcid, i) => ({ orcid, url: rx.url(`/stall/${i}`) })));
      const srv = await startServer({
        db: viaProxy.toString(), 'allowed-targets': '127.0.0.0/8', 'poll-interval': '200ms', lease: '4s', 'request-timeout': '1s',
        'connect-timeout': '1s', 'pool-size': 4, 'statement-timeout': '1s',
      }, { startTimeoutMs: 90_000 });

      // Changes every 250 ms and /ready every 500 ms, each waited for on its own (a hang is a long answer).
      const calls: Call[] = [];
      const pending: Promise<void>[] = [];
      let clock = Date.now();
      let running = true;
      const driver = (async () => {
        for (let k = 0; running; k++) {
          if (k % 2 === 0) pending.push(call('ready', `${srv.url}/ready`).then((c) => void calls.push(c)));
          const values = new Map<number, number>();
          while (values.size < 5) values.set(Math.floor(Math.random() * STALL_RECORDS), 0);
          for (const r of values.keys()) values.set(r, (clock = Math.max(clock + 1, Date.now())));
          pending.push(call('changes', `${srv.url}/admin/api/changes`, admin('POST', {
            changes: [...values].map(([r, m]) => ({ orcid: ids[r]!, modified: new Date(m).toISOString() })),
          })).then((c) => void calls.push({ ...c, values })));
          await sleep(250);
        }
      })();

      await sleep(2_000);
      const stalledAt = Date.now();
      proxy.stall();
      await sleep(STALL_MS);
      assert.equal(srv.exited(), null, 'the process is alive at the end of the stall');
      const restoredAt = Date.now();
      await proxy.restore();
      await sleep(3_000);
      running = false;
      await driver;
      await Promise.all(pending);
      const changesDone = Date.now();

      const owed = async () => (await store.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM webhooks
        WHERE due_at IS NOT NULL OR pending_since IS NOT NULL OR lease_owner IS NOT NULL OR enabled = 0 OR failed_attempts > 0`)).rows[0]!.n;
      await eventually(async () => rx.inFlight() === 0 && (await owed()) === 0, 60_000, 'the store to owe nothing');
      const settledAt = Date.now();
      assert.equal(srv.exited(), null, `the process never exited (stderr: ${srv.stderr().slice(-500)})`);

      // Requests sent during the stall, early enough for the bound to fall before the restore.
      const inStall = calls.filter((c) => c.sentAt >= stalledAt + 100 && c.sentAt + STALL_BOUND_MS < restoredAt);
      assert.ok(inStall.length >= 20, `requests sent during the stall (${inStall.length})`);
      const late = inStall.filter((c) => c.status === null || c.ms > STALL_BOUND_MS);
      assert.deepEqual(late.map((c) => `${c.what} sent ${c.sentAt - stalledAt} ms into the stall: ${c.status ?? c.error} after ${c.ms} ms`), [],
        `every request during the stall answered within ${STALL_BOUND_MS} ms`);
      for (const c of inStall) {
        assert.ok(c.status === 503 || (c.what !== 'ready' && c.status! >= 500), `${c.what} during the stall: ${c.status} ${c.body}`);
        if (c.what === 'ready') assert.ok((JSON.parse(c.body) as { failing: string[] }).failing.includes('store'), `/ready names the store: ${c.body}`);
        else assert.ok(orcidError(c), `${c.what}: an ORCID-format error: ${c.body}`);
      }
      const lastReady = calls.filter((c) => c.what === 'ready').sort((a, b) => a.sentAt - b.sentAt).at(-1)!;
      assert.equal(lastReady.status, 200, `/ready after the stall: ${lastReady.body}`);

      // Every record's webhook called after the record's last committed change.
      const final = new Map((await store.listRecords({ limit: STALL_RECORDS + 1 })).map((r) => [r.orcid, r.modifiedAt]));
      const lastChange = new Map<number, Call>();
      for (const c of calls.filter((x) => x.values).sort((a, b) => a.sentAt - b.sentAt)) {
        for (const [r, m] of c.values!) if (final.get(ids[r]!) === m) lastChange.set(r, c);
      }
      const missing: string[] = [];
      for (const [r, c] of lastChange) {
        if (!rx.received.some((q) => q.path === `/stall/${r}` && q.at >= c.sentAt)) missing.push(`/stall/${r}`);
      }
      assert.deepEqual(missing, [], 'every changed record\'s webhook was called after its last change');
      assert.equal(rx.maxConcurrentPerPath(), 1, 'no webhook called twice at once');

      const latencies = inStall.map((c) => c.ms).sort((a, b) => a - b);
      const byKind = (w: string) => inStall.filter((c) => c.what === w).map((c) => c.ms);
      t.diagnostic(`during the stall: ${inStall.length} requests, answered in ${latencies[0]}-${latencies.at(-1)} ms `
        + `(median ${latencies[Math.floor(latencies.length / 2)]}); /ready max ${Math.max(...byKind('ready'))} ms, changes max ${Math.max(...byKind('changes'))} ms`);
      const sample = inStall.find((c) => c.what === 'changes');
      const sampleReady = inStall.find((c) => c.what === 'ready');
      t.diagnostic(`e.g. changes: HTTP ${sample?.status} ${sample?.body.slice(0, 200)}; /ready: HTTP ${sampleReady?.status} ${sampleReady?.body.slice(0, 300)}`);
      t.diagnostic(`timings: settle ${settledAt - changesDone} ms, total ${Date.now() - started} ms`);
      const exit = await srv.stop('SIGTERM');
      assert.deepEqual([exit.code, exit.signal], [0, null], 'SIGTERM exits 0');
    });
  });
}
