import { performance } from 'node:perf_hooks';

/**
 * Never more than `perSecond` requests in any window of one second (fractional rates: one request
 * per 1/rate s). A sliding window rather than a refilling bucket: a bucket that is full lets a
 * burst plus its refill through within one second, i.e. up to twice the rate. A small margin keeps
 * the upstream's own count (taken at arrival) within the limit despite network jitter.
 */
export class RateLimiter {
  private readonly n: number;
  private readonly windowMs: number;
  private readonly sent: number[] = [];
  private chain: Promise<void> = Promise.resolve();

  constructor(readonly perSecond: number, private readonly marginMs = 25) {
    this.n = Math.max(1, Math.floor(perSecond));
    this.windowMs = (this.n / perSecond) * 1000 + marginMs;
  }

  /** Resolves when one more request may be sent (callers are served in order); rejects if aborted. */
  take(signal?: AbortSignal): Promise<void> {
    const turn = this.chain.then(() => this.wait(signal));
    this.chain = turn.catch(() => undefined);
    return turn;
  }

  private async wait(signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const now = performance.now();
      if (this.sent.length < this.n || now - this.sent[0]! >= this.windowMs) {
        this.sent.push(now);
        if (this.sent.length > this.n) this.sent.shift();
        return;
      }
      await sleep(this.windowMs - (now - this.sent[0]!) + 1, signal);
    }
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
