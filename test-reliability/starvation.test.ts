/*
 * One client cannot starve the others (issue 11). Client A registers 320 webhooks on 40 ports of
 * one silent address (127.0.0.3: connections are accepted, never answered) and keeps them owed
 * with its own replay endpoint (`POST /{orcid}/webhook/{callback}`, ~64 a second, within the
 * default rate limit).
 * Client B's 20 webhooks point at a receiver on 127.0.0.2 that answers at once; B's records are
 * touched every 100 ms. One `serve` process on SQLite with the default limits (256 callbacks in
 * flight, 8 per host, 32 per address, 128 per client).
 *
 * Before the fix A held all 256 slots and B's callbacks waited up to 14 s. It proves B's
 * change-to-callback p99 stays under 100 ms while A attacks, and reports B's baseline without the
 * attack from the same run.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createApiClient } from '../src/ops/clients.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import { orcids, startServer, stopAllServers, tempDir, touchRecord } from '../test/helpers/process.ts';
import { sleep, startReceiver, type Receiver } from '../test/helpers/receiver.ts';

const PORTS = 40;
const PER_PORT = 8;
const VICTIM_HOOKS = 20;
const BASELINE_MS = Number(process.env.STARVATION_BASELINE_MS ?? 6_000);
const ATTACK_MS = Number(process.env.STARVATION_ATTACK_MS ?? 25_000);
const SILENT_HOST = '127.0.0.3';
const VICTIM_HOST = '127.0.0.2';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  await stopAllServers();
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Listeners on SILENT_HOST that accept connections and never answer; counts connections with a request. */
async function silentAddress(ports: number): Promise<{ ports: number[]; open(): number; close(): void }> {
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  for (let i = 0; i < ports; i++) {
    // A connection counts once a request arrives on it (the sender may also hold idle ones).
    const srv = createServer((s) => {
      s.on('data', () => sockets.add(s));
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => srv.listen(0, SILENT_HOST, r));
    servers.push(srv);
  }
  return {
    ports: servers.map((s) => (s.address() as { port: number }).port),
    open: () => sockets.size,
    close() {
      for (const s of sockets) s.destroy();
      for (const s of servers) s.close();
    },
  };
}

function p99(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)] ?? NaN;
}

async function token(base: string, id: string, secret: string): Promise<string> {
  const res = await fetch(`${base}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ client_id: id, client_secret: secret, grant_type: 'client_credentials', scope: '/webhook' }),
  });
  assert.equal(res.status, 200);
  return ((await res.json()) as { access_token: string }).access_token;
}

describe('starvation: one client\'s silent webhooks cannot delay another client', () => {
  it('320 webhooks on 40 ports of one silent address, replayed: the other client\'s p99 stays under 100 ms', { timeout: 180_000 }, async (t) => {
    const tmp = tempDir('ow-starve-');
    cleanups.push(() => tmp.remove());
    const silent = await silentAddress(PORTS);
    cleanups.push(() => silent.close());
    const rx: Receiver = await startReceiver(VICTIM_HOST);
    cleanups.push(() => rx.close());

    const db = join(tmp.dir, 'db.sqlite');
    const ids = orcids(PORTS * PER_PORT + VICTIM_HOOKS);
    const attackIds = ids.slice(0, PORTS * PER_PORT);
    const victimIds = ids.slice(PORTS * PER_PORT);
    const attackUrls = attackIds.map((_, i) => `http://${SILENT_HOST}:${silent.ports[i % PORTS]}/a/${i}`);
    const seed = new SqliteStore(db);
    await seed.migrate();
    const attacker = await createApiClient(seed, { name: 'attacker', premium: true });
    const victim = await createApiClient(seed, { name: 'victim', premium: true });
    const then = Date.now() - 60_000;
    await seed.addRecords(ids, then);
    for (const [i, orcid] of attackIds.entries()) {
      const url = attackUrls[i]!;
      await seed.registerWebhook({ clientId: attacker.client.id, orcid, url, host: new URL(url).host, now: then });
    }
    for (const [i, orcid] of victimIds.entries()) {
      const url = rx.url(`/b/${i}`);
      await seed.registerWebhook({ clientId: victim.client.id, orcid, url, host: new URL(url).host, now: then });
    }
    await seed.close();

    const server = await startServer({ db: `sqlite:${db}`, 'allowed-targets': '127.0.0.0/8' });
    const attackToken = await token(server.url, attacker.client.id, attacker.secret);

    // B's records are touched every 100 ms, round robin; each touch's latency is the time to B's
    // first callback on that webhook after the touch was sent.
    const touches: { path: string; sentAt: number; phase: 'baseline' | 'attack' }[] = [];
    const run: { phase: 'baseline' | 'attack' | 'done' } = { phase: 'baseline' };
    const toucher = (async () => {
      for (let k = 0; run.phase !== 'done'; k++) {
        const i = k % VICTIM_HOOKS;
        touches.push({ path: `/b/${i}`, sentAt: Date.now(), phase: run.phase });
        await touchRecord(server.url, victimIds[i]!);
        await sleep(100);
      }
    })();

    await sleep(BASELINE_MS);
    run.phase = 'attack';
    const replayed = { ok: 0, refused: 0 };
    const attackStart = Date.now();
    const attackEnd = attackStart + ATTACK_MS;
    let maxSilentOpen = 0;
    const sampler = setInterval(() => { maxSilentOpen = Math.max(maxSilentOpen, silent.open()); }, 50);
    // A keeps every one of its webhooks owed with its own replay endpoint: round after round over
    // all 320, at about 64 requests a second (within the default rate limit of 6,000 a minute).
    const replay = async (i: number): Promise<void> => {
      const res = await fetch(`${server.url}/${attackIds[i]}/webhook/${encodeURIComponent(attackUrls[i]!)}`, {
        method: 'POST', headers: { authorization: `Bearer ${attackToken}`, accept: 'application/json' },
      });
      await res.arrayBuffer();
      if (res.status === 202) replayed.ok++;
      else replayed.refused++;
    };
    for (let k = 0; Date.now() < attackEnd; k += 8) {
      const tick = Date.now();
      await Promise.all(Array.from({ length: 8 }, (_, j) => replay((k + j) % attackIds.length)));
      await sleep(Math.max(0, 125 - (Date.now() - tick)));
    }
    run.phase = 'done';
    await toucher;
    clearInterval(sampler);
    await sleep(500);

    const latency = (phase: 'baseline' | 'attack'): number[] => touches.filter((x) => x.phase === phase).map((x) => {
      const got = rx.received.find((r) => r.path === x.path && r.at >= x.sentAt);
      return got ? got.at - x.sentAt : Infinity;
    });
    const base = latency('baseline');
    const attack = latency('attack');
    const worst = touches.filter((x) => x.phase === 'attack').map((x, i) => ({ ms: attack[i]!, at: x.sentAt - attackStart })).sort((a, b) => b.ms - a.ms).slice(0, 5);
    t.diagnostic(`slowest under attack (ms, at ms into the attack): ${worst.map((w) => `${w.ms}@${w.at}`).join(' ')}`);
    t.diagnostic(`baseline (no attack): ${base.length} callbacks, p99 ${p99(base)} ms, max ${Math.max(...base)} ms`);
    t.diagnostic(`under attack: ${attack.length} callbacks, p99 ${p99(attack)} ms, max ${Math.max(...attack)} ms; replays accepted ${replayed.ok}, refused ${replayed.refused}; A's open connections at most ${maxSilentOpen}`);
    if (process.env.STARVATION_DEBUG) {
      const lines = server.logs.filter((l) => l.msg === 'delivery' && typeof l.time === 'number' && Math.abs((l.time as number) - (attackStart + worst[0]!.at)) < 2000);
      for (const l of lines) t.diagnostic(`${(l.time as number) - attackStart} ${l.host} ${l.result} ${l.durationMs}`);
    }
    assert.ok(replayed.ok >= PORTS * PER_PORT, 'the attack ran (replays accepted)');
    assert.ok(maxSilentOpen >= 8, `A's callbacks were in flight (${maxSilentOpen})`);
    assert.ok(maxSilentOpen <= 32, `at most --per-address-concurrency (32) to the silent address, saw ${maxSilentOpen}`);
    assert.ok(attack.length >= 50, 'B kept changing during the attack');
    assert.ok(p99(attack) < 100, `B's p99 under attack ${p99(attack)} ms`);
  });
});
