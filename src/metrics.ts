import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AttemptEvent, DeliveryWorker } from './delivery/worker.ts';
import type { Store } from './store/types.ts';
import { countsByState } from './domain/webhook-state.ts';
import { VERSION } from './version.ts';

/**
 * prom-client's default gauges that end in `_total`, against Prometheus' naming rules (`_total` is
 * for counters): the same figures stay available by type in nodejs_active_handles,
 * nodejs_active_requests and nodejs_active_resources.
 */
const MISNAMED_DEFAULT_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * Prometheus metrics of one service instance (its own registry, so several can live in one
 * process). Label sets are bounded: no URL, iD or client labels; HTTP requests are labelled with
 * the route pattern, never the path.
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
  readonly httpDuration = new Histogram({
    name: 'orcid_webhooks_http_request_duration_seconds', help: 'HTTP requests served, by method, route pattern (unmatched: no route) and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [this.registry],
  });
  private worker: DeliveryWorker | null = null;

  constructor(store: Store, opts: { now?: () => number } = {}) {
    const now = opts.now ?? Date.now;
    collectDefaultMetrics({ register: this.registry });
    for (const name of MISNAMED_DEFAULT_GAUGES) this.registry.removeSingleMetric(name);
    const registry = this.registry;
    new Gauge({
      name: 'orcid_webhooks_build_info', help: 'Always 1; the labels say which build is running',
      labelNames: ['version', 'node_version'] as const, registers: [registry],
    }).set({ version: VERSION, node_version: process.version }, 1);
    new Gauge({
      name: 'orcid_webhooks_webhooks',
      help: 'Webhooks by state, each counted once: enabled (nothing owed), pending (owes a callback, no failure yet), failing (owes one after failures, in backoff), disabled',
      labelNames: ['state'] as const, registers: [registry],
      async collect() {
        try {
          for (const [state, n] of Object.entries(countsByState(await store.countWebhooks()))) this.set({ state }, n);
        } catch {
          // The store is unreachable: /ready says so; keep the last values.
        }
      },
    });
    const backlog = { oldestOwedSince: null as number | null, at: 0 };
    new Gauge({
      name: 'orcid_webhooks_oldest_owed_notification_age_seconds',
      help: 'How long the oldest notification an enabled webhook owes has waited since its record changed (0 when none is owed)',
      registers: [registry],
      async collect() {
        try {
          backlog.oldestOwedSince = (await store.deliveryBacklog(now())).oldestOwedSince;
          backlog.at = now();
        } catch {
          // Keep the last value.
        }
        this.set(backlog.oldestOwedSince === null ? 0 : Math.max(0, backlog.at - backlog.oldestOwedSince) / 1000);
      },
    });
    const inFlight = (): number => this.worker?.inFlightCount ?? 0;
    new Gauge({
      name: 'orcid_webhooks_callbacks_in_flight', help: 'Callbacks being sent by this process now',
      registers: [registry],
      collect() {
        this.set(inFlight());
      },
    });
  }

  observeWorker(worker: DeliveryWorker): void {
    this.worker = worker;
    worker.on('attempt', (e: AttemptEvent) => {
      this.callbacks.inc({ outcome: e.resultClass });
      this.attemptDuration.observe(e.result.durationMs / 1000);
      if (e.resultClass === 'success' && e.latencyMs !== null) this.latency.observe(Math.max(0, e.latencyMs) / 1000);
    });
    worker.on('reclaimed', (n: number) => this.reclaims.inc(n));
    worker.on('dbError', () => this.dbErrors.inc());
  }

  /** Times every request of the app by its route pattern (bounded: the routes the app declares). */
  observeHttp(app: FastifyInstance): void {
    const histogram = this.httpDuration;
    app.addHook('onResponse', async function httpMetrics(req, reply) {
      const route = req.routeOptions.url ?? 'unmatched';
      histogram.observe({ method: req.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
    });
  }
}
