/**
 * What the delivery path needs of an abort signal: AbortSignal has it, and so has CallAbort.
 * undici accepts it too (it takes any EventTarget-like or EventEmitter signal).
 */
export interface AbortSignalLike {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/**
 * A one-shot abort signal and its controller in one small object, for the two made per callback
 * (the worker's fence and the sender's deadline). AbortController + AbortSignal are EventTargets:
 * making one, and adding and removing a listener, cost about 5 % of a delivery run's CPU
 * (issue 12); this is a plain object with at most a few listeners, called once.
 */
export class CallAbort implements AbortSignalLike {
  aborted = false;
  reason: unknown = undefined;
  private listeners: (() => void)[] | null = null;

  addEventListener(_type: 'abort', listener: () => void): void {
    if (this.aborted) return;
    (this.listeners ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const l = this.listeners;
    if (l === null) return;
    const i = l.indexOf(listener);
    if (i >= 0) l.splice(i, 1);
  }

  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const l = this.listeners;
    this.listeners = null;
    if (l) for (const fn of l) fn();
  }
}
