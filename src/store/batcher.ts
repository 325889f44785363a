/** One input's answer from a batch: a failing input fails alone. */
export type Settled<O> = { ok: O } | { err: unknown };

export interface BatcherOptions<I> {
  /** Largest batch (default 500); the rest waits for the next one. */
  maxSize?: number;
  /**
   * A check made for each batch: inputs it refuses stay queued, in order, for a later batch (e.g.
   * a second registration of the same webhook, which must see the first one committed).
   */
  admit?: () => (input: I) => boolean;
}

/**
 * Group commit: the inputs that arrive in one turn of the event loop, and those that arrive while a
 * batch is being written, go to `run` together, one batch at a time; each caller is answered with
 * its own result once `run` (its commit) is done. If run throws, every input of the batch fails.
 */
export function batcher<I, O>(run: (inputs: I[]) => Promise<Settled<O>[]>, opts: BatcherOptions<I> = {}): { add(input: I): Promise<O>; drained(): Promise<void> } {
  const maxSize = opts.maxSize ?? 500;
  const queue: { input: I; resolve: (o: O) => void; reject: (err: unknown) => void }[] = [];
  let running: Promise<void> | null = null;
  let scheduled = false;

  const flush = async (): Promise<void> => {
    scheduled = false;
    const admit = opts.admit?.() ?? (() => true);
    const batch: typeof queue = [];
    const rest: typeof queue = [];
    for (const p of queue) (batch.length < maxSize && admit(p.input) ? batch : rest).push(p);
    queue.splice(0, queue.length, ...rest);
    try {
      const results = await run(batch.map((p) => p.input));
      results.forEach((r, i) => ('ok' in r ? batch[i]!.resolve(r.ok) : batch[i]!.reject(r.err)));
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  };

  function schedule(): void {
    if (scheduled || running || queue.length === 0) return;
    scheduled = true;
    setImmediate(() => {
      running = flush().finally(() => {
        running = null;
        schedule();
      });
    });
  }

  return {
    add: (input) =>
      new Promise<O>((resolve, reject) => {
        queue.push({ input, resolve, reject });
        schedule();
      }),
    /** Resolves once every input queued so far has been answered. */
    async drained() {
      while (queue.length || running || scheduled) await (running ?? new Promise((resolve) => setImmediate(resolve)));
    },
  };
}
