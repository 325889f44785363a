import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/*
 * SQLite's automatic WAL checkpoint runs inside whichever commit crosses the threshold and waits on
 * the disk there; on a busy disk one took ~400 ms and stalled the event loop with it (bench,
 * 2026-11-28: p50 1.7 ms, p99 534 ms at 200 changes/s). The service turns automatic checkpoints off
 * and runs PASSIVE checkpoints on a thread with its own connection instead: they never block the
 * writer, and the stall leaves the event loop.
 */
const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 1000');
const timer = setInterval(() => {
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ ok: true, log: r.log, checkpointed: r.checkpointed });
  } catch (e) {
    parentPort.postMessage({ ok: false, error: String(e && e.message || e) });
  }
}, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m === 'stop') {
    clearInterval(timer);
    db.close();
    parentPort.close();
  }
});
`;

export interface CheckpointStats {
  runs: number;
  /** WAL frames checkpointed by the last run. */
  lastCheckpointed: number;
  lastError: string | null;
}

export class BackgroundCheckpointer {
  readonly stats: CheckpointStats = { runs: 0, lastCheckpointed: 0, lastError: null };
  private readonly worker: Worker;

  constructor(path: string, intervalMs = 1000) {
    const module = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, module, intervalMs } });
    this.worker.on('message', (m: { ok: boolean; checkpointed?: number; error?: string }) => {
      this.stats.runs++;
      if (m.ok) this.stats.lastCheckpointed = m.checkpointed ?? 0;
      this.stats.lastError = m.ok ? null : (m.error ?? 'unknown error');
    });
    // A failing checkpointer must not take the service down: the next commit's WAL just grows.
    this.worker.on('error', (e) => { this.stats.lastError = e.message; });
    this.worker.unref();
  }

  async stop(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage('stop');
    const timeout = setTimeout(() => void this.worker.terminate(), 2000);
    await exited;
    clearTimeout(timeout);
  }
}
