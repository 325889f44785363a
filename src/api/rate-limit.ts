import type { FastifyRequest } from 'fastify';
import { OAuthError, OrcidApiError } from '../domain/errors.ts';
import type { Caller } from './auth.ts';

/**
 * Token buckets in this process's memory, one per key (a client id, an IP address): each holds up
 * to a minute's allowance and refills continuously, so a key may burst to its limit and then gets
 * one request every 60/limit seconds. With several API processes each counts on its own: the
 * effective limit is the setting times the number of processes (documented in docs/beyond-orcid.md).
 *
 * Why not @fastify/rate-limit: it counts in fixed windows (a client may send twice its limit across
 * a window's edge) and keys requests before the route runs, while the per-client limit needs the
 * caller the route authenticates. Its RateLimit-* headers are sent here too, with every 429.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly perMs: number;
  private lastSweep = 0;

  /** perMinute 0 means unlimited. */
  constructor(readonly perMinute: number, private readonly now: () => number = Date.now) {
    this.perMs = perMinute / 60_000;
  }

  /** Takes one request from key's bucket: null when allowed, else the seconds to wait (at least 1). */
  take(key: string): number | null {
    if (this.perMinute <= 0) return null;
    const now = this.now();
    this.sweep(now);
    const b = this.buckets.get(key);
    const tokens = b ? Math.min(this.perMinute, b.tokens + (now - b.at) * this.perMs) : this.perMinute;
    if (tokens >= 1) {
      this.buckets.set(key, { tokens: tokens - 1, at: now });
      return null;
    }
    this.buckets.set(key, { tokens, at: now });
    return Math.max(1, Math.ceil((1 - tokens) / this.perMs / 1000));
  }

  /** Drops buckets that have refilled completely (they equal a fresh one), at most once a minute. */
  private sweep(now: number): void {
    if (now - this.lastSweep < 60_000) return;
    this.lastSweep = now;
    for (const [key, b] of this.buckets) {
      if (b.tokens + (now - b.at) * this.perMs >= this.perMinute) this.buckets.delete(key);
    }
  }
}

/** Retry-After, and the RateLimit-* fields (IETF draft, as @fastify/rate-limit sends them) of a refusal. */
function limitHeaders(limiter: RateLimiter, wait: number): Record<string, string> {
  return { 'retry-after': String(wait), 'ratelimit-limit': String(limiter.perMinute), 'ratelimit-remaining': '0', 'ratelimit-reset': String(wait) };
}

/** Per-client limit of the ORCID API, run once the caller is known: ORCID-format 429 / 9051. */
export function clientRateLimit(limiter: RateLimiter) {
  return function clientRateLimit(caller: Caller): void {
    const wait = limiter.take(caller.client.id);
    if (wait === null) return;
    throw new OrcidApiError(9051, `Client ${caller.client.id} made more than ${limiter.perMinute} requests in a minute; retry after ${wait} s`, {
      headers: limitHeaders(limiter, wait),
    });
  };
}

/** Per-IP limit of POST /oauth/token (an onRequest hook): OAuth-form 429. */
export function tokenRateLimit(limiter: RateLimiter) {
  return async function tokenRateLimit(req: FastifyRequest): Promise<void> {
    if (req.method !== 'POST' || req.routeOptions.url !== '/oauth/token') return;
    const wait = limiter.take(req.ip);
    if (wait === null) return;
    throw new OAuthError(429, 'slow_down', `More than ${limiter.perMinute} token requests in a minute from ${req.ip}; retry after ${wait} s`, limitHeaders(limiter, wait));
  };
}
