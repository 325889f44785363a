import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideOutcome } from '../src/delivery/outcome.ts';
import type { SendResult } from '../src/delivery/sender.ts';
import { parseRetrySchedule } from '../src/domain/retry-schedule.ts';
import type { AttemptOutcome } from '../src/store/types.ts';

const S = 1000;
const H = 3600 * S;
const busy = (retryAfterMs: number | null, status = 503): SendResult => ({ kind: 'response', status, durationMs: 1, bodySnippet: '', retryAfterMs });

/** Plays a receiver that always answers `result` until the webhook is disabled; returns when and after how many calls. */
function untilDisabled(result: SendResult, spec = 'standard'): { calls: number; elapsedMs: number; waits: number[] } {
  const schedule = parseRetrySchedule(spec);
  const start = 1_700_000_000_000;
  let now = start;
  let failed = 0;
  let failingSince: number | null = null;
  const waits: number[] = [];
  for (let calls = 1; calls < 1000; calls++) {
    const o: AttemptOutcome = decideOutcome(result, failed, schedule, now, failingSince);
    if (o.kind === 'disable') return { calls, elapsedMs: now - start, waits };
    assert.equal(o.kind, 'retry');
    if (o.kind !== 'retry') break;
    failingSince ??= now;
    failed++;
    waits.push(o.retryAt - now);
    now = o.retryAt;
  }
  return assert.fail('never disabled');
}

describe('decideOutcome: Retry-After cannot burn the schedule', () => {
  const standard = parseRetrySchedule('standard');

  for (const [name, retryAfterMs] of [['Retry-After: 0', 0], ['a past date (0 ms)', 0], ['Retry-After: 1', 1000]] as const) {
    it(`503 with ${name} waits at least the schedule's step and is disabled only after the schedule's span`, () => {
      const r = untilDisabled(busy(retryAfterMs));
      assert.equal(r.calls, standard.maxAttempts);
      assert.ok(r.elapsedMs >= standard.minSpanMs, `disabled after ${r.elapsedMs} ms, schedule spans at least ${standard.minSpanMs}`);
      assert.ok(r.elapsedMs >= 60 * H, `about 75 h, not seconds (${r.elapsedMs / H} h)`);
      assert.ok(r.waits[0]! >= 4 * S, `first wait ${r.waits[0]} ms is the schedule's 5 s (jittered), not ${retryAfterMs} ms`);
    });
  }

  it('a longer Retry-After lengthens the wait, up to the schedule\'s longest', () => {
    const one = decideOutcome(busy(3_600_000), 0, standard, 0);
    assert.deepEqual(one, { kind: 'retry', retryAt: 3_600_000 });
    const huge = decideOutcome(busy(30 * 24 * H, 429), 0, standard, 0);
    assert.deepEqual(huge, { kind: 'retry', retryAt: standard.maxDelayMs });
  });

  it('Retry-After is read only on 429 and 503', () => {
    const o = decideOutcome(busy(3_600_000, 500), 0, parseRetrySchedule('1s'), 0);
    assert.deepEqual(o, { kind: 'retry', retryAt: 1000 });
  });

  it('attempts used up before the schedule\'s time: keep trying until it has passed, then disable', () => {
    const schedule = parseRetrySchedule('10s,10s');
    // Two failures already, the run began 5 s ago (e.g. failures counted before an upgrade).
    // The schedule spans 20 s: wait (at most its longest step, 10 s), then the rest.
    assert.deepEqual(decideOutcome(busy(null, 500), 2, schedule, 5_000, 0), { kind: 'retry', retryAt: 15_000 });
    assert.deepEqual(decideOutcome(busy(null, 500), 3, schedule, 15_000, 0), { kind: 'retry', retryAt: 20_000 });
    const late = decideOutcome(busy(null, 500), 4, schedule, 20_000, 0);
    assert.equal(late.kind, 'disable');
  });

  it('410 still disables at once, 2xx succeeds', () => {
    assert.equal(decideOutcome(busy(null, 410), 0, standard, 0).kind, 'disable');
    assert.equal(decideOutcome(busy(null, 204), 9, standard, 0).kind, 'success');
  });
});
