import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AttemptEvent, DeliveryWorker } from './delivery/worker.ts';
import type { Store } from './store/types.ts';

/**
 * Prometheus metrics of one service instance (its own registry, so several can live in one
 * process). Label sets are bounded: no URL, iD or client labels.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly registrations = new Counter({ name: 'orcid_webhooks_registrations_total', help: 'Webhook registrations and deletions by outcome', labelNames: ['outcome'] as const, registers: [this.registry] });
  readonly callbacks = new Counter({ name: 'orcid_webhooks_callbacks_total', help: 'Callback attempts by outcome', labelNames: ['outcome'] as const, registers: [this.registry] });
  readonly attemptDuration = new Histogram({
    name: 'orcid_webhooks_attempt_duration_seconds', help: 'Duration of one callback attempt',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20], registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'orcid_webhooks_change_to_callback_seconds', help: 'From the record change to a successful callback',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300, 3600, 86400], registers: [this.registry],
  });
  readonly reclaims = new Counter({ name: 'orcid_webhooks_lease_reclaims_total', help: 'Claims taken over from a worker whose lease expired', registers: [this.registry] });
  readonly dbErrors = new Counter({ name: 'orcid_webhooks_database_errors_total', help: 'Database errors seen by the delivery worker', registers: [this.registry] });
  readonly changes = new Counter({ name: 'orcid_webhooks_record_changes_total', help: 'Record changes applied, by result', labelNames: ['result'] as const, registers: [this.registry] });

  constructor(store: Store) {
    collectDefaultMetrics({ register: this.registry, prefix: 'orcid_webhooks_' });
    const registry = this.registry;
    new Gauge({
      name: 'orcid_webhooks_webhooks', help: 'Webhooks by state (pending: owed and due or waiting out the notify delay; backoff: owed after failures)',
      labelNames: ['state'] as const, registers: [registry],
      async collect() {
        try {
          const c = await store.countWebhooks();
          this.set({ state: 'total' }, c.total);
          this.set({ state: 'enabled' }, c.enabled);
          this.set({ state: 'disabled' }, c.disabled);
          this.set({ state: 'pending' }, c.pending);
          this.set({ state: 'backoff' }, c.backoff);
        } catch {
          // The store is unreachable: /ready says so; keep the last values.
        }
      },
    });
  }

  observeWorker(worker: DeliveryWorker): void {
    worker.on('attempt', (e: AttemptEvent) => {
      this.callbacks.inc({ outcome: e.resultClass });
      this.attemptDuration.observe(e.result.durationMs / 1000);
      if (e.resultClass === 'success' && e.latencyMs !== null) this.latency.observe(Math.max(0, e.latencyMs) / 1000);
    });
    worker.on('reclaimed', (n: number) => this.reclaims.inc(n));
    worker.on('dbError', () => this.dbErrors.inc());
  }
}
