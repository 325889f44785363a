/*
 * Shared by the benchmark orchestrators (bench/run.ts, bench/delivery.ts) and the peer child
 * (bench/lib/peer.ts): settings from the environment, deterministic test data, statistics.
 */
import { performance } from 'node:perf_hooks';
import { orcidFromBase } from '../../src/domain/orcid-id.ts';

/** High-resolution wall-clock time in epoch ms, comparable across processes on one machine. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Integer setting from the environment, with a default. */
export function envInt(name: string, dflt: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  if (!/^\d+$/.test(raw.trim())) throw new Error(`${name} must be a whole number, got "${raw}"`);
  return Number(raw);
}

export function envStr(name: string, dflt: string): string {
  const raw = process.env[name];
  return raw === undefined || raw === '' ? dflt : raw;
}

/** The i-th benchmark record: valid iDs from a base far outside ORCID's minting range. */
export function benchOrcid(i: number): string {
  return orcidFromBase(100_000_000_000 + i);
}

/** Callback URL of webhook i: spread round-robin over the receiver's base URLs (one per host). */
export function callbackUrl(bases: string[], i: number): string {
  return `${bases[i % bases.length]}/cb/${i}`;
}

/** The webhook index in a callback path `/cb/<i>`, or -1. */
export function indexFromPath(path: string): number {
  if (!path.startsWith('/cb/')) return -1;
  const n = Number(path.slice(4));
  return Number.isInteger(n) && n >= 0 ? n : -1;
}

export interface Percentiles {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles of a list of milliseconds (rounded to 0.1 ms). */
export function percentiles(values: number[]): Percentiles {
  const v = Float64Array.from(values).sort();
  const at = (p: number): number => (v.length ? round1(v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))]!) : NaN);
  const mean = v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
  return { count: v.length, p50: at(50), p90: at(90), p99: at(99), max: v.length ? round1(v[v.length - 1]!) : NaN, mean: round1(mean) };
}

export function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

export function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

export function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

/* ---- IPC between the orchestrator and the peer child ---- */

export type PeerCommand =
  | { id: number; cmd: 'listen'; hosts: number; addresses: number }
  /** Start counting callbacks afresh, up to `count` distinct webhooks. */
  | { id: number; cmd: 'arm'; count: number }
  /** Answer when the armed count arrived, or after idleMs without a new callback. */
  | { id: number; cmd: 'wait'; idleMs: number }
  /** PUT /{orcid}/webhook/{callback} for webhooks [from, from + count); `expect` is the status that counts as success (201 new, 204 already there; 200 for the hello world). */
  | { id: number; cmd: 'register'; apiUrl: string; tokens: string[]; from: number; count: number; concurrency: number; expect: number }
  | { id: number; cmd: 'latency'; apiUrl: string; adminToken: string; rate: number; seconds: number; records: number; connections: number; graceMs: number }
  | { id: number; cmd: 'close' };

export interface ExpectResult {
  /** Callbacks counted (first arrival per webhook index). */
  received: number;
  duplicates: number;
  /** Epoch ms (wallNow) of the first and last counted callback. */
  first: number;
  last: number;
  timedOut: boolean;
}

export interface RegisterResult {
  ok: number;
  failed: number;
  /** status code -> count, for anything that was not the expected status. */
  statuses: Record<string, number>;
  seconds: number;
  perSecond: number;
  requestMs: Percentiles;
}

export interface LatencyResult {
  sent: number;
  received: number;
  missing: number;
  /** Callbacks for which no touch was waiting (a duplicate, or one not caused by this run). */
  unexpected: number;
  failedRequests: number;
  /** Achieved change rate (requests sent per second). */
  achievedRate: number;
  /** Change-to-callback latency: touch request sent -> callback received. */
  latencyMs: Percentiles;
  /** Admin API response time of the touch requests. */
  touchMs: Percentiles;
  /** How late the generator sent requests against their schedule (its own noise). */
  sendLagMs: Percentiles;
}

export type PeerReply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: string };
