import type { RecordedHeaders } from '../../domain/attempt-headers.ts';
import type { DeliveryBacklog, FailureCount } from '../types.ts';

/**
 * What an operator watches besides throughput (Store.deliveryBacklog, Store.failureBreakdown): how
 * long the oldest owed notification has waited, how many callbacks are under a live lease (in
 * flight, in any process), and where failures come from. Written once for both dialects; `p(name)`
 * renders a parameter in the dialect's syntax.
 */
export type Param = (name: 'now' | 'since' | 'limit') => string;

export const sqliteParam: Param = (name) => `CAST(@${name} AS INTEGER)`;
export const postgresParam: Param = (name) => `$${{ now: 1, since: 1, limit: 2 }[name]}::bigint`;

/**
 * Reads only the owed rows (the partial index webhooks_due): its cost follows the backlog, not the
 * number of webhooks. A leased row is always an owed one (a claim keeps due_at until completion).
 */
export function backlogSql(p: Param): string {
  return `SELECT min(pending_since) AS oldest_owed,
      sum(CASE WHEN lease_until > ${p('now')} THEN 1 ELSE 0 END) AS in_flight
    FROM webhooks WHERE enabled = 1 AND due_at IS NOT NULL`;
}

export function toBacklog(r: Record<string, unknown> | undefined): DeliveryBacklog {
  const oldest = r?.oldest_owed;
  return { oldestOwedSince: oldest === null || oldest === undefined ? null : Number(oldest), inFlight: Number(r?.in_flight ?? 0) };
}

/** Failed attempts at or after `since`, grouped by the webhook's host or client; most failures first. */
export function failuresBySql(column: 'host' | 'client_id', p: Param): string {
  const failed = 'CASE WHEN a.status_code BETWEEN 200 AND 299 THEN 0 ELSE 1 END';
  return `SELECT w.${column} AS key, count(*) AS attempts, sum(${failed}) AS failures
    FROM attempts a JOIN webhooks w ON w.id = a.webhook_id
    WHERE a.at >= ${p('since')}
    GROUP BY w.${column}
    HAVING sum(${failed}) > 0
    ORDER BY failures DESC, key
    LIMIT ${p('limit')}`;
}

export function toFailureCounts(rows: Record<string, unknown>[]): FailureCount[] {
  return rows.map((r) => ({ key: String(r.key), attempts: Number(r.attempts), failures: Number(r.failures) }));
}

/** The attempt's headers as stored (JSON text, or NULL when not kept). */
export function headersJson(a: { requestHeaders?: RecordedHeaders | null; responseHeaders?: RecordedHeaders | null }): { requestHeaders: string | null; responseHeaders: string | null } {
  return {
    requestHeaders: a.requestHeaders ? JSON.stringify(a.requestHeaders) : null,
    responseHeaders: a.responseHeaders ? JSON.stringify(a.responseHeaders) : null,
  };
}
