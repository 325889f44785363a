/*
 * Leases and worker heartbeats (issue 11): one SQL text for both dialects, each store passing its
 * own placeholders. Lease and heartbeat times come from the database's clock, never a worker's,
 * so clock skew between hosts cannot make a live lease look expired to another worker.
 */

export type Dialect = 'sqlite' | 'postgres';

/** The database's current time in epoch milliseconds. */
export function dbNowSql(dialect: Dialect): string {
  return dialect === 'sqlite'
    ? "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    : '(extract(epoch from statement_timestamp()) * 1000)::bigint';
}

/**
 * A row another worker may take: never leased, lease expired, or leased by a worker whose
 * heartbeat is older than `staleMs` (it died). Leases without a worker (written before this
 * migration) only expire.
 */
export function claimableSql(dialect: Dialect, staleMs: string): string {
  const now = dbNowSql(dialect);
  return `(webhooks.lease_until IS NULL OR webhooks.lease_until < ${now}
      OR (webhooks.lease_worker IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM workers k WHERE k.id = webhooks.lease_worker AND k.heartbeat_at >= ${now} - ${staleMs})))`;
}

/** Creates the worker's row or stamps its heartbeat. */
export function heartbeatSql(dialect: Dialect, worker: string): string {
  const now = dbNowSql(dialect);
  return `INSERT INTO workers (id, started_at, heartbeat_at) VALUES (${worker}, ${now}, ${now})
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at`;
}

/** Rows of workers silent for an hour: long dead, nothing refers to them any more. */
export function pruneWorkersSql(dialect: Dialect): string {
  return `DELETE FROM workers WHERE heartbeat_at < ${dbNowSql(dialect)} - 3600000`;
}

/**
 * Expires, at once, the leases held by the given workers (dead ones): the next claim takes them
 * over (and counts them as reclaimed). `workers` is a list placeholder the caller expands.
 */
export function expireLeasesSql(workersIn: string): string {
  return `UPDATE webhooks SET lease_until = 0 WHERE lease_owner IS NOT NULL AND lease_worker ${workersIn}`;
}
