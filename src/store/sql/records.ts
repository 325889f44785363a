/*
 * Open records mode (issue 11): a record created by a webhook registration is a placeholder. Its
 * modified time is the registration's clock, not a change the registry reported, so it must not
 * hide a real change stamped in the same millisecond: ordering follows the sequence in which
 * registration and change were applied, not equal timestamps.
 */

/** Creates the placeholder record of a registration; an existing record is kept. */
export function createPlaceholderSql(p: { orcid: string; now: string }): string {
  return `INSERT INTO records (orcid, modified_at, created_at, placeholder) VALUES (${p.orcid}, ${p.now}, ${p.now}, 1)
    ON CONFLICT (orcid) DO NOTHING`;
}

/**
 * Whether a change moves the record on: strictly newer, or, on a placeholder never changed, as new
 * as the registration that created it (the change was applied after the registration).
 */
export function isNewer(modified: number, current: number, placeholder: boolean): boolean {
  return modified > current || (placeholder && modified === current);
}
