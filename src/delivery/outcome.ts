import type { RetrySchedule } from '../domain/retry-schedule.ts';
import type { AttemptOutcome } from '../store/types.ts';
import type { SendResult } from './sender.ts';

/** The class of an attempt's result, as metrics and logs name it. */
export type ResultClass = 'success' | 'http_error' | 'timeout' | 'network' | 'refused' | 'deferred';

export function classify(r: SendResult): ResultClass {
  if (r.kind === 'response') return r.status >= 200 && r.status < 300 ? 'success' : 'http_error';
  return r.kind;
}

/**
 * What an attempt's result means for the webhook. 2xx is success; 3xx (redirects are not
 * followed), 4xx, 5xx and transport errors are failures retried on the schedule; 410 Gone disables
 * at once. A 429/503 Retry-After may lengthen a wait (up to the schedule's longest), never shorten
 * it below the schedule's own step: a receiver answering `Retry-After: 0` cannot make us burn the
 * schedule in seconds. Disabling needs both the schedule's attempts and its time (minSpanMs since
 * the first failure of the run, `failingSince`).
 */
export function decideOutcome(r: SendResult, failedBefore: number, schedule: RetrySchedule, now: number, failingSince: number | null = null): AttemptOutcome {
  if (r.kind === 'response' && r.status >= 200 && r.status < 300) return { kind: 'success' };
  if (r.kind === 'response' && r.status === 410) return { kind: 'disable', reason: 'The receiver answered 410 Gone: webhook disabled at its request' };
  const failures = failedBefore + 1;
  const step = schedule.delayAfter(failures);
  const last = r.kind === 'response' ? `HTTP ${r.status}` : `${r.kind}: ${r.error}`;
  const asked = r.kind === 'response' && (r.status === 429 || r.status === 503) && r.retryAfterMs !== null
    ? Math.min(Math.max(r.retryAfterMs, 0), schedule.maxDelayMs)
    : 0;
  if (step === null) {
    const spanLeft = (failingSince ?? now) + schedule.minSpanMs - now;
    if (spanLeft <= 0) {
      return { kind: 'disable', reason: `Retry schedule "${schedule.name}" exhausted after ${failures} failed attempts (last: ${last})` };
    }
    // The attempts ran out before the schedule's time: keep trying until that time has passed.
    return { kind: 'retry', retryAt: now + Math.max(Math.min(spanLeft, schedule.maxDelayMs), asked) };
  }
  return { kind: 'retry', retryAt: now + Math.max(step, asked) };
}
