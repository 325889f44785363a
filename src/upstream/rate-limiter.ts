import { performance } from 'node:perf_hooks';

/**
 * Never more than `perSecond` requests in any window of one second (fractional rates: one request
 * per 1/rate s), as the upstream counts them on arrival. A sliding window rather than a refilling
 * bucket (a full bucket lets a burst plus its refill through within one second). A request's slot
 * is stamped when it completes, not when it is sent: it arrived at the upstream before it completed,
 * so the next request counted against it cannot arrive less than a window later, whatever the
 * network's delays (a slow first connection, a reset, a stalled event loop).
 */
export class RateLimiter {
  private readonly n: number;
  private readonly windowMs: number;
  private readonly slots: { doneAt: number; done: Promise<void> }[] = [];
  private chain: Promise<void> = Promise.resolve();

  constructor(readonly perSecond: number, marginMs = 5) {
    this.n = Math.max(1, Math.floor(perSecond));
    this.windowMs = (this.n / perSecond) * 1000 + marginMs;
  }

  /**
   * Resolves when one more request may be sent (callers are served in order), with the function to
   * call once it has completed (answered or failed); rejects if aborted.
   */
  take(signal?: AbortSignal): Promise<() => void> {
    const turn = this.chain.then(() => this.wait(signal));
    this.chain = turn.then(() => undefined, () => undefined);
    return turn;
  }

  private async wait(signal?: AbortSignal): Promise<() => void> {
    for (;;) {
      signal?.throwIfAborted();
      const oldest = this.slots.length >= this.n ? this.slots[this.slots.length - this.n]! : null;
      if (oldest && Number.isNaN(oldest.doneAt)) {
        await Promise.race([oldest.done, sleep(1000, signal)]);
        continue;
      }
      const now = performance.now();
      if (!oldest || now - oldest.doneAt >= this.windowMs) break;
      await sleep(this.windowMs - (now - oldest.doneAt) + 1, signal);
    }
    let resolve!: () => void;
    const slot = { doneAt: NaN, done: new Promise<void>((r) => { resolve = r; }) };
    this.slots.push(slot);
    if (this.slots.length > this.n) this.slots.shift();
    return () => {
      if (Number.isNaN(slot.doneAt)) slot.doneAt = performance.now();
      resolve();
    };
  }
}

/** setTimeout as a promise that an AbortSignal cuts short (rejecting). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
