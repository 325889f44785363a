/** When to try a failed callback again. Pure: the delivery side feeds it failure counts. */
export interface RetrySchedule {
  name: string;
  /** delay in ms before the next try after `failures` consecutive failures (1-based), or null when exhausted */
  delayAfter(failures: number, random?: () => number): number | null;
  /** the longest delay delayAfter can return (jitter included) */
  maxDelayMs: number;
  /** total tries, the first one included */
  maxAttempts: number;
  /**
   * The shortest time the schedule can span from the first failure to its last try (jitter
   * included): a webhook is disabled only once this much has passed, however fast it failed.
   */
  minSpanMs: number;
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

const UNIT_MS: Record<string, number> = { ms: 1, s: SECOND, m: MINUTE, h: HOUR, d: 24 * HOUR };

/** `250ms`, `5s`, `5m`, `2h`, `1d`, or a bare integer meaning milliseconds. */
export function parseDuration(s: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(s.trim());
  const unit = match?.[2];
  if (match === null || match[1] === undefined || (unit === undefined && match[1].includes('.'))) {
    throw new Error(`"${s}" is not a duration: expected a number with a unit such as 250ms, 5s, 5m, 2h or 1d`);
  }
  const ms = Math.round(Number(match[1]) * (unit === undefined ? 1 : (UNIT_MS[unit] ?? 1)));
  if (!Number.isSafeInteger(ms)) throw new Error(`"${s}" is too long a duration`);
  return ms;
}

/**
 * Waits after failure 1, 2, … 9; the 10th failure ends it. Front-loaded so a receiver that blips
 * gets its callback seconds later, while one that is down for a day is still reached.
 */
const STANDARD_DELAYS = [5 * SECOND, 5 * MINUTE, 30 * MINUTE, 2 * HOUR, 5 * HOUR, 10 * HOUR, 14 * HOUR, 20 * HOUR, 24 * HOUR];

/** ORCID's own behaviour (../shared/ORCID.md): linear, n x 10 minutes, silent stop after 25 failures. */
const ORCID_MAX_FAILURES = 25;
const ORCID_STEP = 10 * MINUTE;

/** +/-20%, so webhooks that failed together (a receiver outage) do not all retry in the same instant. */
const JITTER = 0.2;

export function parseRetrySchedule(spec: string): RetrySchedule {
  const name = spec.trim().toLowerCase();
  if (name === 'standard') return listSchedule('standard', STANDARD_DELAYS, JITTER);
  if (name === 'orcid') {
    return {
      name: 'orcid',
      delayAfter: (failures) => (checkFailures(failures) < ORCID_MAX_FAILURES ? failures * ORCID_STEP : null),
      maxDelayMs: (ORCID_MAX_FAILURES - 1) * ORCID_STEP,
      maxAttempts: ORCID_MAX_FAILURES,
      // 10 + 20 + ... + 240 minutes
      minSpanMs: ((ORCID_MAX_FAILURES - 1) * ORCID_MAX_FAILURES / 2) * ORCID_STEP,
    };
  }

  const tokens = name.split(',').map((t) => t.trim());
  const delays = tokens.map((token) => {
    try {
      return parseDuration(token);
    } catch {
      throw new Error(`retry-schedule: "${token}" is not a duration; use standard, orcid, or a list such as 5s,5m,1h (units ms, s, m, h, d)`);
    }
  });
  return listSchedule(tokens.join(','), delays, 0);
}

function listSchedule(name: string, delays: number[], jitter: number): RetrySchedule {
  return {
    name,
    delayAfter(failures, random = Math.random) {
      const base = delays[checkFailures(failures) - 1];
      if (base === undefined) return null;
      if (jitter === 0) return base;
      return Math.floor(base * (1 - jitter + 2 * jitter * random()));
    },
    maxDelayMs: Math.ceil(Math.max(...delays) * (1 + jitter)),
    maxAttempts: delays.length + 1,
    minSpanMs: Math.floor(delays.reduce((a, b) => a + b, 0) * (1 - jitter)),
  };
}

function checkFailures(failures: number): number {
  if (!Number.isInteger(failures) || failures < 1) throw new RangeError(`failures must be an integer >= 1, got ${failures}`);
  return failures;
}
