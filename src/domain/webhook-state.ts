import type { WebhookCounts, WebhookRow } from '../store/types.ts';

/*
 * A webhook's state, defined once: its label, its SQL condition and its count. The API, the
 * dashboard, the CLI and the metrics all read it from here, so a card's count, the list it links
 * to and the labels in that list are the same set.
 *
 * Every webhook is in exactly one state:
 *  - disabled: not enabled (410 Gone, schedule exhausted, or by hand);
 *  - failing:  enabled, one or more consecutive failures (owes a callback, in backoff);
 *  - pending:  enabled, owes a callback, no failure yet (due now or after the notify delay);
 *  - enabled:  enabled and owing nothing (the dashboard shows it as "ok").
 */
export const WEBHOOK_STATES = ['enabled', 'disabled', 'failing', 'pending'] as const;
export type WebhookStateName = (typeof WEBHOOK_STATES)[number];

/** The state of one webhook; the same sets as STATE_SQL. */
export function webhookStateOf(w: Pick<WebhookRow, 'enabled' | 'failedAttempts' | 'dueAt'>): WebhookStateName {
  if (!w.enabled) return 'disabled';
  if (w.failedAttempts > 0) return 'failing';
  return w.dueAt !== null ? 'pending' : 'enabled';
}

/** The dashboard's label: 'ok' for a webhook enabled and owing nothing. */
export function dashboardStateOf(w: Pick<WebhookRow, 'enabled' | 'failedAttempts' | 'dueAt'>): 'ok' | Exclude<WebhookStateName, 'enabled'> {
  const s = webhookStateOf(w);
  return s === 'enabled' ? 'ok' : s;
}

/** Each state's condition on the webhooks table (both dialects): disjoint, together every row. */
const STATE_SQL: Record<WebhookStateName, string> = {
  disabled: 'enabled = 0',
  failing: 'enabled = 1 AND failed_attempts > 0',
  pending: 'enabled = 1 AND failed_attempts = 0 AND due_at IS NOT NULL',
  enabled: 'enabled = 1 AND failed_attempts = 0 AND due_at IS NULL',
};

/**
 * What a list filter (`?state=`, `--state`) selects: a union of states. `enabled` as a filter has
 * always meant every enabled webhook, so it also lists the pending and failing ones (labelled so);
 * the other filters are exactly their state.
 */
export const STATE_FILTERS: Record<WebhookStateName, readonly WebhookStateName[]> = {
  enabled: ['enabled', 'pending', 'failing'],
  disabled: ['disabled'],
  failing: ['failing'],
  pending: ['pending'],
};

export function stateFilterSql(filter: WebhookStateName): string {
  return `(${STATE_FILTERS[filter].map((s) => `(${STATE_SQL[s]})`).join(' OR ')})`;
}

/**
 * The rare states' partial indexes (migration 008), with exactly their STATE_SQL conditions: one
 * ordered by id (counts, and lists over all clients), one by client then id (a client's lists).
 * The common state, enabled and owing nothing, has none: it is most rows, and a scan in id order
 * finds a page of them at once.
 */
const STATE_INDEX: Partial<Record<WebhookStateName, string>> = { disabled: 'webhooks_disabled', failing: 'webhooks_failing', pending: 'webhooks_pending' };
const RARE_STATES = ['disabled', 'failing', 'pending'] as const;

/**
 * The partial index that serves a list filter, when it is one rare state (SQLite's planner has no
 * statistics and would walk the table in id order, reading every row to find a rare few).
 */
export function stateFilterIndex(filter: WebhookStateName, byClient: boolean): string | null {
  const states = STATE_FILTERS[filter];
  const index = states.length === 1 ? STATE_INDEX[states[0]!] : undefined;
  return index ? `${index}${byClient ? '_client' : ''}` : null;
}

/**
 * The counts in one statement (one snapshot), without reading every webhook (issue 12: 330 ms at
 * 1M): the total from the per-client counters (clients.webhook_count, kept by registration and
 * deletion), each rare state from its partial index (only the rows in that state), and enabled
 * (owing nothing) as the rest. SQLite is told the index (INDEXED BY; an error if it no longer
 * applies), PostgreSQL's planner picks it.
 */
export function stateCountsSql(dialect: 'sqlite' | 'postgres'): string {
  const count = (s: (typeof RARE_STATES)[number]): string =>
    `(SELECT count(*) FROM webhooks${dialect === 'sqlite' ? ` INDEXED BY ${STATE_INDEX[s]}` : ''} WHERE ${STATE_SQL[s]}) AS ${s}`;
  // MATERIALIZED: each count once (PostgreSQL would otherwise inline them into each use).
  return `WITH c AS MATERIALIZED (SELECT (SELECT COALESCE(sum(webhook_count), 0) FROM clients) AS total, ${RARE_STATES.map(count).join(', ')})
    SELECT total, ${RARE_STATES.join(', ')}, total - ${RARE_STATES.join(' - ')} AS enabled FROM c`;
}

/** The overview's counts (each matches a filter: enabled, disabled, pending, and backoff = failing) from a stateCountsSql row. */
export function toWebhookCounts(r: Record<string, unknown> | undefined): WebhookCounts {
  const n = (s: WebhookStateName): number => Number(r?.[s] ?? 0);
  const sum = (f: WebhookStateName): number => STATE_FILTERS[f].reduce((t, s) => t + n(s), 0);
  return { total: Number(r?.total ?? 0), enabled: sum('enabled'), disabled: sum('disabled'), pending: sum('pending'), backoff: sum('failing') };
}

/** Webhooks in each state (the metrics gauge): disjoint, so they sum to the number of webhooks. */
export function countsByState(c: WebhookCounts): Record<WebhookStateName, number> {
  return { enabled: c.enabled - c.pending - c.backoff, pending: c.pending, failing: c.backoff, disabled: c.disabled };
}
