import type { UpstreamState } from '../types.ts';

/*
 * The upstream poller's cursor and leadership (issue 13): one SQL text for both dialects, each
 * store passing its own placeholders (`@name` for SQLite, `$n` for PostgreSQL).
 */

/**
 * Takes or keeps the leadership of a source: succeeds (returns a row) when nobody leads, the caller
 * already leads, or the leader's lease has run out (it died). One statement, so two processes
 * racing for it cannot both win: PostgreSQL locks the conflicting row, SQLite the database.
 */
export function claimLeadershipSql(p: { source: string; owner: string; until: string; now: string }): string {
  return `INSERT INTO upstream_state (source, leader, leader_until, updated_at) VALUES (${p.source}, ${p.owner}, ${p.until}, ${p.now})
    ON CONFLICT (source) DO UPDATE SET leader = excluded.leader, leader_until = excluded.leader_until, updated_at = excluded.updated_at
    WHERE upstream_state.leader IS NULL OR upstream_state.leader = excluded.leader OR upstream_state.leader_until < excluded.updated_at
    RETURNING leader`;
}

export function releaseLeadershipSql(p: { source: string; owner: string }): string {
  return `UPDATE upstream_state SET leader = NULL, leader_until = NULL WHERE source = ${p.source} AND leader = ${p.owner}`;
}

/** Sets the cursor only when the source has none yet (first start, or after an import set it). */
export function initCursorSql(p: { source: string; cursor: string; now: string }): string {
  return `INSERT INTO upstream_state (source, cursor_at, updated_at) VALUES (${p.source}, ${p.cursor}, ${p.now})
    ON CONFLICT (source) DO UPDATE SET cursor_at = COALESCE(upstream_state.cursor_at, excluded.cursor_at), updated_at = excluded.updated_at
    RETURNING cursor_at`;
}

/**
 * Progress of the leader only: a process that lost its lease (paused past it) writes nothing, so
 * the cursor never moves back under the new leader. `cursor` never decreases.
 */
export function saveProgressSql(p: { source: string; owner: string; cursor: string; now: string }): string {
  return `UPDATE upstream_state SET
      cursor_at = CASE WHEN cursor_at IS NULL OR cursor_at < ${p.cursor} THEN ${p.cursor} ELSE cursor_at END,
      last_success_at = ${p.now}, last_error = NULL, last_error_at = NULL, updated_at = ${p.now}
    WHERE source = ${p.source} AND leader = ${p.owner}`;
}

export function saveErrorSql(p: { source: string; owner: string; error: string; now: string }): string {
  return `UPDATE upstream_state SET last_error = ${p.error}, last_error_at = ${p.now}, updated_at = ${p.now}
    WHERE source = ${p.source} AND leader = ${p.owner}`;
}

export function upstreamStateSql(source: string): string {
  return `SELECT * FROM upstream_state WHERE source = ${source}`;
}

/** The iDs among a list that have at least one enabled webhook. */
export function watchedOrcidsSql(list: string): string {
  return `SELECT DISTINCT orcid FROM webhooks WHERE enabled = 1 AND orcid IN (${list})`;
}

const n = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export function toUpstreamState(r: Record<string, unknown>): UpstreamState {
  return {
    source: String(r.source),
    cursor: n(r.cursor_at),
    lastSuccessAt: n(r.last_success_at),
    lastError: (r.last_error as string | null | undefined) ?? null,
    lastErrorAt: n(r.last_error_at),
    leader: (r.leader as string | null | undefined) ?? null,
    leaderUntil: n(r.leader_until),
    updatedAt: Number(r.updated_at),
  };
}
