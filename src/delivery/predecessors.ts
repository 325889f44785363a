import { hostname } from 'node:os';
import type { WorkerRow } from '../store/types.ts';

/** `host:pid:random`, the id a worker's heartbeat row carries (see DeliveryWorker.owner). */
function parseWorkerId(id: string): { host: string; pid: number } | null {
  const parts = id.split(':');
  if (parts.length < 3) return null;
  const pid = Number(parts[parts.length - 2]);
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  return { host: parts.slice(0, -2).join(':'), pid };
}

function processGone(pid: number): boolean {
  // Our own pid under another id: an earlier process of this container (pid 1 again) or host.
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Workers of this host whose process no longer exists: a restarted service takes their claims at
 * once instead of waiting for their heartbeat to go stale. Workers of other hosts are left to the
 * heartbeat rule.
 */
export function deadPredecessors(workers: WorkerRow[], self: string, host = hostname()): string[] {
  return workers
    .filter((w) => w.id !== self)
    .filter((w) => {
      const id = parseWorkerId(w.id);
      return id !== null && id.host === host && processGone(id.pid);
    })
    .map((w) => w.id);
}

/**
 * Workers of this host whose process still runs and whose heartbeat is fresh (`now` and the
 * heartbeats on one clock: a single-node store's, SQLite's, is this host's): another delivering
 * process on the same database, whose claims are its callbacks in flight. A single-node store
 * takes every other claim at start, but not these: they pass by the heartbeat rule if it dies.
 */
export function liveSiblings(workers: WorkerRow[], self: string, staleMs: number, now = Date.now(), host = hostname()): string[] {
  return workers
    .filter((w) => w.id !== self && now - w.heartbeatAt < staleMs)
    .filter((w) => {
      const id = parseWorkerId(w.id);
      return id !== null && id.host === host && !processGone(id.pid);
    })
    .map((w) => w.id);
}
