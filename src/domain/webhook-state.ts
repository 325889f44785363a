import type { WebhookRow } from '../store/types.ts';

export const WEBHOOK_STATES = ['enabled', 'disabled', 'failing', 'pending'] as const;
export type WebhookStateName = (typeof WEBHOOK_STATES)[number];

/** The most specific state of a webhook: disabled, failing (retrying), pending (owes a callback), or enabled. */
export function webhookStateOf(w: WebhookRow): WebhookStateName {
  if (!w.enabled) return 'disabled';
  if (w.failedAttempts > 0) return 'failing';
  return w.dueAt !== null ? 'pending' : 'enabled';
}
