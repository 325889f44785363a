import type { Store } from '../../src/store/types.ts';

export interface CallStats {
  calls: number;
  totalMs: number;
  meanMs: number;
  maxMs: number;
  /** Items passed (completeAttempts, applyChanges) or returned (claimDue) per call, on average. */
  meanItems: number | null;
}

const TIMED = ['claimDue', 'completeAttempts', 'nextDueAt', 'applyChanges', 'releaseClaims', 'registerWebhook', 'findToken', 'getRecord'] as const;

/**
 * Wraps the delivery-path methods of an in-process store to time them (the worker looks its store
 * methods up at each call, so wrapping after start works). Returns a function that takes a
 * snapshot of the stats gathered since the last one.
 */
export function timeStore(store: Store): () => Record<string, CallStats> {
  type Acc = { calls: number; totalMs: number; maxMs: number; items: number; counted: boolean };
  let acc: Record<string, Acc> = {};
  const target = store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  for (const name of TIMED) {
    const original = target[name];
    if (typeof original !== 'function') continue;
    target[name] = async function timed(this: unknown, ...args: unknown[]) {
      const t = performance.now();
      const result = await original.apply(store, args);
      const ms = performance.now() - t;
      const a = (acc[name] ??= { calls: 0, totalMs: 0, maxMs: 0, items: 0, counted: false });
      a.calls++;
      a.totalMs += ms;
      if (ms > a.maxMs) a.maxMs = ms;
      const list = args.find(Array.isArray) ?? result;
      const items = Array.isArray(list) ? list.length : null;
      if (items !== null) {
        a.items += items;
        a.counted = true;
      }
      return result;
    };
  }
  return () => {
    const out: Record<string, CallStats> = {};
    for (const [name, a] of Object.entries(acc)) {
      out[name] = {
        calls: a.calls, totalMs: Math.round(a.totalMs), meanMs: Math.round((a.totalMs / a.calls) * 1000) / 1000,
        maxMs: Math.round(a.maxMs * 10) / 10, meanItems: a.counted ? Math.round((a.items / a.calls) * 10) / 10 : null,
      };
    }
    acc = {};
    return out;
  };
}
