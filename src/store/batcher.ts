/** One input's answer from a batch: a failing input fails alone. */
export type Settled<O> = { ok: O } | { err: unknown };

export interface BatcherOptions<I> {
  /** Largest batch (default 500); the rest waits for the next one. */
  maxSize?: number;
  /** Batches being written at once (default 1); the inputs that arrive meanwhile wait and go together. */
  maxInFlight?: number;
  /**
   * A check made afresh for each batch: inputs it refuses stay queued, in order, for a later batch
   * (e.g. a second registration of the same webhook, which must see the first one committed).
   */
  admit?: () => (input: I) => boolean;
}

export interface Batcher<I, O> {
  /** Queues the input; answers once its batch is done (committed). */
  add(input: I): Promise<O>;
  /** Resolves once every input queued so far has been answered. */
  drained(): Promise<void>;
}

/**
 * Group commit: the inputs that arrive in one turn of the event loop, and those that arrive while
 * maxInFlight batches are being written, go to `run` together; each caller is answered with its own
 * result once `run` (its commit) is done. If run throws, every input of the batch fails with it.
 */
export function batcher<I, O>(run: (inputs: I[]) => Promise<Settled<O>[]>, opts: BatcherOptions<I> = {}): Batcher<I, O> {
  const maxSize = opts.maxSize ?? 500;
  const maxInFlight = Math.max(1, opts.maxInFlight ?? 1);
  const queue: { input: I; resolve: (o: O) => void; reject: (err: unknown) => void }[] = [];
  const running = new Set<Promise<void>>();
  let scheduled = false;

  const write = async (batch: typeof queue): Promise<void> => {
    try {
      const results = await run(batch.map((p) => p.input));
      results.forEach((r, i) => ('ok' in r ? batch[i]!.resolve(r.ok) : batch[i]!.reject(r.err)));
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  };

  const flush = (): void => {
    scheduled = false;
    while (queue.length && running.size < maxInFlight) {
      const admit = opts.admit?.() ?? (() => true);
      const batch: typeof queue = [];
      const rest: typeof queue = [];
      for (const p of queue) (batch.length < maxSize && admit(p.input) ? batch : rest).push(p);
      if (batch.length === 0) return;
      queue.splice(0, queue.length, ...rest);
      const done: Promise<void> = write(batch).finally(() => {
        running.delete(done);
        schedule();
      });
      running.add(done);
    }
  };

  function schedule(): void {
    if (scheduled || queue.length === 0 || running.size >= maxInFlight) return;
    scheduled = true;
    setImmediate(flush);
  }

  return {
    add: (input) =>
      new Promise<O>((resolve, reject) => {
        queue.push({ input, resolve, reject });
        schedule();
      }),
    async drained() {
      while (queue.length || running.size || scheduled) await (running.size ? Promise.race(running) : new Promise((resolve) => setImmediate(resolve)));
    },
  };
}
