/*
 * What issue 12 compares the service with, in the same run: a fastify hello world (registrations)
 * and the job queues a Node developer would pick instead of this service to deliver the same
 * callbacks: BullMQ on the local Redis and pg-boss on PostgreSQL (dev dependencies, used only here).
 * Each peer gets one job per callback, and its worker POSTs with undici to the same receivers, with
 * the same limits (256 in flight, 8 connections per host) as the service and the raw loop.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Agent } from 'undici';
import { USER_AGENT } from '../../src/version.ts';
import { callbackUrl, round2, round3, sleep, wallNow } from './common.ts';
import type { Peer } from './peer-client.ts';
import { cpuMeter, cpuPressure } from './scenarios.ts';

export interface Hello {
  url: string;
  pid: number;
  close(): Promise<void>;
}

export async function startHello(): Promise<Hello> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./hello.ts', import.meta.url))], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    child.once('exit', (code) => reject(new Error(`hello world exited (${code})`)));
  });
  return {
    url, pid: child.pid ?? 0,
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface PeerQueueResult {
  peer: string;
  callbacks: number;
  received: number;
  duplicates: number;
  /** N / (last callback − first job enqueued): enqueueing is part of it, as the bulk change is for the service. */
  perSecond: number;
  enqueueMs: number;
  seconds: number;
  /** CPU of this process (producer and worker) per callback. */
  cpuMsPerCallback: number | null;
  cpuPressurePct: number | null;
}

/** POSTs one callback as the raw loop and the service do: empty body, the same headers. */
function poster(agent: Agent) {
  return async (url: string, i: number): Promise<void> => {
    const u = new URL(url);
    const res = await agent.request({
      origin: u.origin, path: u.pathname, method: 'POST', body: null,
      headers: { 'content-length': '0', 'user-agent': USER_AGENT, 'webhook-id': `msg_${i}_1`, 'webhook-timestamp': String(Math.floor(Date.now() / 1000)) },
    });
    await res.body.dump();
    if (res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}`);
  };
}

async function measured(name: string, peer: Peer, n: number, run: () => Promise<number>): Promise<PeerQueueResult> {
  await peer.arm(n);
  const cpu = cpuMeter([process.pid]);
  const pressure = cpuPressure();
  const t0 = wallNow();
  const enqueueMs = await run();
  const r = await peer.wait(15_000);
  const used = cpu();
  const seconds = (r.last - t0) / 1000;
  return {
    peer: name, callbacks: n, received: r.received, duplicates: r.duplicates, perSecond: Math.round(r.received / seconds),
    enqueueMs: Math.round(enqueueMs), seconds: round2(seconds), cpuMsPerCallback: used === null ? null : round3(used / r.received), cpuPressurePct: pressure(),
  };
}

/** BullMQ 5 on Redis: N jobs by addBulk, one Worker with concurrency 256. */
export async function bullmqRun(peer: Peer, n: number, o: { redisUrl: string; concurrency: number; perHost: number; bases: string[] }): Promise<PeerQueueResult> {
  const { Queue, Worker } = await import('bullmq');
  const u = new URL(o.redisUrl);
  const connection = { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null };
  const name = `ow-bench-${process.pid}-${Date.now()}`;
  const queue = new Queue(name, { connection });
  const agent = new Agent({ connections: o.perHost });
  const post = poster(agent);
  let worker: { close(): Promise<void> } | null = null;
  try {
    return await measured('BullMQ (Redis)', peer, n, async () => {
      const t = performance.now();
      for (let i = 0; i < n; i += 1000) {
        await queue.addBulk(Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({
          name: 'callback', data: { url: callbackUrl(o.bases, i + k), i: i + k },
          opts: { attempts: 5, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: true },
        })));
      }
      const enqueueMs = performance.now() - t;
      worker = new Worker<{ url: string; i: number }>(name, async (job) => post(job.data.url, job.data.i), { connection, concurrency: o.concurrency });
      return enqueueMs;
    });
  } finally {
    await (worker as { close(): Promise<void> } | null)?.close();
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    await agent.close();
  }
}

/** pg-boss 10 on PostgreSQL (a schema of its own): N jobs by insert, workers fetching batches until 256 are in flight. */
export async function pgBossRun(peer: Peer, n: number, o: { pgUrl: string; concurrency: number; perHost: number; bases: string[] }): Promise<PeerQueueResult> {
  const { default: PgBoss } = await import('pg-boss');
  const schema = `ow_bench_pgboss_${process.pid}`;
  const boss = new PgBoss({ connectionString: o.pgUrl, schema, max: 10, supervise: false, schedule: false });
  boss.on('error', () => undefined);
  await boss.start();
  const name = 'callbacks';
  await boss.createQueue(name);
  const agent = new Agent({ connections: o.perHost });
  const post = poster(agent);
  // pg-boss's unit of concurrency is a worker fetching a batch; 8 workers of 32 make 256 in flight.
  const workers = 8;
  try {
    return await measured('pg-boss (PostgreSQL)', peer, n, async () => {
      const t = performance.now();
      for (let i = 0; i < n; i += 1000) {
        await boss.insert(Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({
          name, data: { url: callbackUrl(o.bases, i + k), i: i + k }, retryLimit: 5, retryBackoff: true,
        })));
      }
      const enqueueMs = performance.now() - t;
      for (let w = 0; w < workers; w++) {
        await boss.work<{ url: string; i: number }>(name, { batchSize: Math.ceil(o.concurrency / workers), pollingIntervalSeconds: 0.5 }, async (jobs) => {
          await Promise.all(jobs.map((j) => post(j.data.url, j.data.i)));
        });
      }
      return enqueueMs;
    });
  } finally {
    await boss.stop({ graceful: false, wait: true }).catch(() => undefined);
    await sleep(200);
    const pg = (await import('pg')).default;
    const c = new pg.Client({ connectionString: o.pgUrl });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).finally(() => c.end());
    await agent.close();
  }
}
