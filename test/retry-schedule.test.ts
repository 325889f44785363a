import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration, parseRetrySchedule } from '../src/domain/retry-schedule.ts';

const S = 1000;
const M = 60 * S;
const H = 60 * M;

describe('parseDuration', () => {
  const cases: Array<[string, number]> = [
    ['250ms', 250], ['5s', 5 * S], ['5m', 5 * M], ['2h', 2 * H], ['1d', 24 * H], ['1500', 1500], ['0', 0], ['1.5s', 1500], [' 10s ', 10 * S],
  ];
  for (const [text, ms] of cases) {
    it(`${JSON.stringify(text)} is ${ms} ms`, () => assert.equal(parseDuration(text), ms));
  }
  for (const bad of ['', 'abc', '-5s', '5 s', '5w', '1.5', 's', '5sec', '1e3']) {
    it(`throws on ${JSON.stringify(bad)}`, () => assert.throws(() => parseDuration(bad), /is not a duration/));
  }
});

describe('standard schedule', () => {
  const schedule = parseRetrySchedule('standard');
  const base = [5 * S, 5 * M, 30 * M, 2 * H, 5 * H, 10 * H, 14 * H, 20 * H, 24 * H];

  it('waits 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h with no jitter at the midpoint', () => {
    assert.deepEqual(base.map((_, i) => schedule.delayAfter(i + 1, () => 0.5)), base);
  });

  it('jitters within [0.8, 1.2) of the base delay', () => {
    for (let i = 0; i < base.length; i++) {
      const b = base[i] as number;
      assert.equal(schedule.delayAfter(i + 1, () => 0), 0.8 * b);
      const high = schedule.delayAfter(i + 1, () => 0.999999) as number;
      assert.ok(high < 1.2 * b && high > 1.199 * b, `after failure ${i + 1}: ${high}`);
    }
  });

  it('uses Math.random by default and stays in bounds', () => {
    for (let n = 0; n < 200; n++) {
      const d = schedule.delayAfter(1) as number;
      assert.ok(d >= 4000 && d < 6000, String(d));
    }
  });

  it('is exhausted after the 10th failure', () => {
    assert.equal(schedule.delayAfter(10, () => 0.5), null);
    assert.equal(schedule.delayAfter(11), null);
    assert.equal(schedule.maxAttempts, 10);
    assert.equal(schedule.maxDelayMs, 24 * H * 1.2);
    assert.equal(schedule.name, 'standard');
  });

  it('refuses a failure count below 1', () => {
    assert.throws(() => schedule.delayAfter(0), RangeError);
    assert.throws(() => schedule.delayAfter(1.5), RangeError);
  });

  it('is case- and space-insensitive', () => {
    assert.equal(parseRetrySchedule(' Standard ').name, 'standard');
  });
});

describe('orcid schedule', () => {
  const schedule = parseRetrySchedule('orcid');

  it('waits n x 10 minutes after n failures, without jitter', () => {
    assert.equal(schedule.delayAfter(1, () => 0), 10 * M);
    assert.equal(schedule.delayAfter(2, () => 0.99), 20 * M);
    assert.equal(schedule.delayAfter(24), 240 * M);
  });

  it('is exhausted after 25 failures', () => {
    assert.equal(schedule.delayAfter(25), null);
    assert.equal(schedule.maxAttempts, 25);
    assert.equal(schedule.maxDelayMs, 240 * M);
    assert.equal(schedule.name, 'orcid');
  });
});

describe('explicit list schedule', () => {
  const schedule = parseRetrySchedule('100ms, 200ms,1s,5m,2h,1d');

  it('waits list[i-1] after failure i, exactly', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => schedule.delayAfter(n, () => 0)), [100, 200, S, 5 * M, 2 * H, 24 * H]);
  });

  it('is exhausted after list.length failures', () => {
    assert.equal(schedule.delayAfter(7), null);
    assert.equal(schedule.maxAttempts, 7);
    assert.equal(schedule.maxDelayMs, 24 * H);
    assert.equal(schedule.name, '100ms,200ms,1s,5m,2h,1d');
  });

  it('accepts a single entry', () => {
    const one = parseRetrySchedule('50');
    assert.equal(one.delayAfter(1), 50);
    assert.equal(one.delayAfter(2), null);
    assert.equal(one.maxAttempts, 2);
  });

  for (const [spec, token] of [['fast', 'fast'], ['', ''], ['1s,,2s', ''], ['1s,-2s', '-2s'], ['1s,2x', '2x']] as const) {
    it(`throws naming the bad token in ${JSON.stringify(spec)}`, () => {
      assert.throws(() => parseRetrySchedule(spec), (err: Error) => {
        assert.ok(err.message.startsWith(`retry-schedule: "${token}" is not a duration`), err.message);
        return true;
      });
    });
  }
});
