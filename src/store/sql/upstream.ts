import { num } from '../dialect.ts';
import type { UpstreamState } from '../types.ts';

/* The upstream poller's cursor and leadership (issue 13). */

/**
 * Takes or keeps the leadership of a source: succeeds (returns a row) when nobody leads, the caller
 * already leads, or the leader's lease has run out (it died). One statement, so two processes
 * racing for it cannot both win: PostgreSQL locks the conflicting row, SQLite the database.
 */
export const CLAIM_LEADERSHIP = `INSERT INTO upstream_state (source, leader, leader_until, updated_at) VALUES (@source, @owner, @until::bigint, @now::bigint)
    ON CONFLICT (source) DO UPDATE SET leader = excluded.leader, leader_until = excluded.leader_until, updated_at = excluded.updated_at
    WHERE upstream_state.leader IS NULL OR upstream_state.leader = excluded.leader OR upstream_state.leader_until < excluded.updated_at
    RETURNING leader`;

export const RELEASE_LEADERSHIP = `UPDATE upstream_state SET leader = NULL, leader_until = NULL WHERE source = @source AND leader = @owner`;

/** Sets the cursor only when the source has none yet (first start, or after an import set it). */
export const INIT_CURSOR = `INSERT INTO upstream_state (source, cursor_at, updated_at) VALUES (@source, @cursor::bigint, @now::bigint)
    ON CONFLICT (source) DO UPDATE SET cursor_at = COALESCE(upstream_state.cursor_at, excluded.cursor_at), updated_at = excluded.updated_at
    RETURNING cursor_at`;

/**
 * Progress of the leader only: a process that lost its lease (paused past it) writes nothing, so
 * the cursor never moves back under the new leader. `cursor` never decreases.
 */
export const SAVE_PROGRESS = `UPDATE upstream_state SET
      cursor_at = CASE WHEN cursor_at IS NULL OR cursor_at < @cursor::bigint THEN @cursor::bigint ELSE cursor_at END,
      last_success_at = @now::bigint, last_error = NULL, last_error_at = NULL, updated_at = @now::bigint
    WHERE source = @source AND leader = @owner`;

export const SAVE_ERROR = `UPDATE upstream_state SET last_error = @error, last_error_at = @now::bigint, updated_at = @now::bigint
    WHERE source = @source AND leader = @owner`;

export const UPSTREAM_STATE = `SELECT * FROM upstream_state WHERE source = @source`;

export function toUpstreamState(r: Record<string, unknown>): UpstreamState {
  return {
    source: String(r.source),
    cursor: num(r.cursor_at),
    lastSuccessAt: num(r.last_success_at),
    lastError: (r.last_error as string | null | undefined) ?? null,
    lastErrorAt: num(r.last_error_at),
    leader: (r.leader as string | null | undefined) ?? null,
    leaderUntil: num(r.leader_until),
    updatedAt: Number(r.updated_at),
  };
}
