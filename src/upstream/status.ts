import type { UpstreamState } from '../store/types.ts';
import type { PollerStatus } from './poller.ts';

/** What the dashboard, the CLI and the admin API show of the upstream poller: one view, one place. */
export interface UpstreamStatusView {
  configured: boolean;
  upstream: string | null;
  /** polling, idle, backoff (failing, retrying), following (another process polls), starting, stopped, or unknown (seen from the store only). */
  state: string;
  leader: string | null;
  leaderUntil: string | null;
  /** Start of the next search window. */
  cursor: string | null;
  /** How far behind the upstream the service is: now minus the end of the last window fully searched (or the last success). */
  lagSeconds: number | null;
  lastSuccess: string | null;
  lastError: string | null;
  lastErrorAt: string | null;
  nextPoll: string | null;
  intervalSeconds: number | null;
  recordsChanged: number | null;
}

const iso = (t: number | null | undefined): string | null => (t === null || t === undefined ? null : new Date(t).toISOString());

export interface UpstreamSettings {
  apiUrl: string;
  intervalMs: number;
  overlapMs: number;
}

/**
 * Combines the stored state (cursor, leader, last success and error: the same for every process)
 * with this process's poller, when it has one (its live state and next poll).
 */
export function upstreamStatusView(stored: UpstreamState | null, local: PollerStatus | null, settings: UpstreamSettings | null, now: number): UpstreamStatusView {
  // Seen from the store only, the last success stands for the end of the last window searched.
  const coveredUntil = local?.coveredUntil ?? stored?.lastSuccessAt ?? null;
  const leaderLive = stored?.leader && stored.leaderUntil !== null && stored.leaderUntil >= now ? stored.leader : null;
  return {
    configured: settings !== null,
    upstream: settings?.apiUrl ?? null,
    state: local?.state ?? (stored ? (leaderLive ? 'polling elsewhere' : 'not running') : 'never ran'),
    leader: leaderLive,
    leaderUntil: leaderLive ? iso(stored!.leaderUntil) : null,
    cursor: iso(local?.cursor ?? stored?.cursor),
    lagSeconds: coveredUntil === null ? null : Math.max(0, Math.round((now - coveredUntil) / 100) / 10),
    lastSuccess: iso(local?.lastSuccessAt ?? stored?.lastSuccessAt),
    lastError: local ? local.lastError : stored?.lastError ?? null,
    lastErrorAt: iso(local ? local.lastErrorAt : stored?.lastErrorAt),
    nextPoll: local?.leader ? iso(local.nextPollAt) : null,
    intervalSeconds: settings ? settings.intervalMs / 1000 : null,
    recordsChanged: local?.recordsChanged ?? null,
  };
}
