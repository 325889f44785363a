/*
 * A callback receiver for chaos runs, built on test/helpers/receiver.ts: it answers after a random
 * delay, answers 500 to a share of requests, and records per request what it answered and whether
 * the answer reached a live connection. Like test/helpers/process.ts's tracking receiver it counts
 * the requests in flight per path (from arrival until answered or the sender's connection closes),
 * so that two concurrent calls of one webhook show.
 */
import type { ServerResponse } from 'node:http';
import { sleep, startReceiver, type Received, type Receiver } from '../../test/helpers/receiver.ts';

export interface Answer {
  req: Received;
  /** The status the receiver chose (200 or 500). */
  status: number;
  /** The answer was written to a connection still open (the sender could read it). */
  written: boolean;
  /** Date.now() when the answer was written (or the connection was found gone). */
  answeredAt: number;
}

export interface FlakyReceiver extends Receiver {
  /** One entry per request, in order of arrival, filled in when answered. */
  answers: Answer[];
  /** Largest number of requests in flight at once on one path. */
  maxConcurrentPerPath(): number;
  /** "path at time" of every arrival that overlapped another request on its path. */
  overlaps: string[];
  /** Requests currently in flight (all paths). */
  inFlight(): number;
}

export interface FlakyOptions {
  /** Answer delay in ms, drawn per request. */
  delayMs: () => number;
  /** Whether to answer this request 500 (asked only while the path is under maxConsecutiveFailures). */
  fail: () => boolean;
  /**
   * At most this many 500s in a row on one path, so that a random run cannot exhaust a short retry
   * schedule and disable a webhook (which would make "nothing owed" depend on luck).
   */
  maxConsecutiveFailures: number;
}

export async function startFlakyReceiver(o: FlakyOptions): Promise<FlakyReceiver> {
  const rx = await startReceiver();
  const answers: Answer[] = [];
  const overlaps: string[] = [];
  const inFlightByPath = new Map<string, number>();
  const failStreak = new Map<string, number>();
  let inFlight = 0;
  let maxPerPath = 0;
  rx.behave(async (req, res: ServerResponse) => {
    const n = (inFlightByPath.get(req.path) ?? 0) + 1;
    inFlightByPath.set(req.path, n);
    if (n > 1) overlaps.push(`${req.path} at ${new Date(req.at).toISOString()}`);
    maxPerPath = Math.max(maxPerPath, n);
    inFlight++;
    const streak = failStreak.get(req.path) ?? 0;
    const status = streak < o.maxConsecutiveFailures && o.fail() ? 500 : 200;
    failStreak.set(req.path, status === 500 ? streak + 1 : 0);
    const answer: Answer = { req, status, written: false, answeredAt: 0 };
    answers.push(answer);
    let done = false;
    const finished = () => {
      if (done) return;
      done = true;
      inFlight--;
      inFlightByPath.set(req.path, (inFlightByPath.get(req.path) ?? 1) - 1);
    };
    // A killed sender closes the connection: the request is no longer in flight.
    res.on('close', finished);
    await sleep(o.delayMs());
    answer.answeredAt = Date.now();
    if (!res.destroyed) {
      res.writeHead(status).end(status === 200 ? 'ok' : 'try again');
      answer.written = true;
    }
    finished();
  });
  return {
    ...rx,
    answers,
    overlaps,
    maxConcurrentPerPath: () => maxPerPath,
    inFlight: () => inFlight,
  };
}

/** Small deterministic PRNG (mulberry32), so that a failing run can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
