import type { Dialect, Row } from '../dialect.ts';
import type { RecordRow } from '../types.ts';

/* ORCID records and their changes. */

export const GET_RECORD = 'SELECT * FROM records WHERE orcid = @orcid';
export const RECORD_EXISTS = 'SELECT 1 AS found FROM records WHERE orcid = @orcid';
export const LIST_RECORDS = 'SELECT * FROM records WHERE orcid > @after ORDER BY orcid LIMIT @limit';
/** Kept by triggers on records (migration 008): count(*) reads the whole table (17 ms at 1M, SQLite). */
export const COUNT_RECORDS = 'SELECT COALESCE(sum(n), 0) AS n FROM record_counts';

/** Creates the records of a list that do not exist yet; each iD counts once. (`WHERE true`: SQLite's upsert after a SELECT needs it.) */
export const addRecordsSql = (d: Dialect): string => `INSERT INTO records (orcid, modified_at, created_at)
  SELECT value, @now::bigint, @now::bigint FROM (${d.list('@orcids', 'text')}) AS o WHERE true
  ON CONFLICT (orcid) DO NOTHING`;

/*
 * Open records mode (issue 11): a record created by a webhook registration is a placeholder. Its
 * modified time is the registration's clock, not a change the registry reported, so it must not
 * hide a real change stamped in the same millisecond: ordering follows the sequence in which
 * registration and change were applied, not equal timestamps.
 */
export const CREATE_PLACEHOLDER = `INSERT INTO records (orcid, modified_at, created_at, placeholder) VALUES (@orcid, @now::bigint, @now::bigint, 1)
  ON CONFLICT (orcid) DO NOTHING`;

/**
 * Whether a change moves the record on: strictly newer, or, on a placeholder never changed, as new
 * as the registration that created it (the change was applied after the registration).
 */
export function isNewer(modified: number, current: number, placeholder: boolean): boolean {
  return modified > current || (placeholder && modified === current);
}

export function toRecord(r: Row): RecordRow {
  return { orcid: String(r.orcid), modifiedAt: Number(r.modified_at), createdAt: Number(r.created_at) };
}
