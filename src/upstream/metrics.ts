import { Counter, Gauge } from 'prom-client';
import type { Metrics } from '../metrics.ts';
import type { RequestOutcome } from './orcid-public-api.ts';
import type { UpstreamPoller } from './poller.ts';

/** The upstream's metrics, in the service's registry. */
export class UpstreamMetrics {
  readonly requests: Counter<'outcome'>;
  readonly recordsChanged: Counter;

  constructor(metrics: Metrics, poller: () => UpstreamPoller | null) {
    const registers = [metrics.registry];
    this.requests = new Counter({ name: 'orcid_webhooks_upstream_requests_total', help: 'Requests to the upstream registry by outcome', labelNames: ['outcome'] as const, registers });
    this.recordsChanged = new Counter({ name: 'orcid_webhooks_upstream_records_changed_total', help: 'Watched records the upstream poller found changed (applied as changes)', registers });
    new Gauge({
      name: 'orcid_webhooks_upstream_lag_seconds', help: 'Now minus the end of the last upstream search window fully processed (this process, while it polls; 0 otherwise)', registers,
      collect() {
        const s = poller()?.status();
        // Before this process's first successful poll (a restart or takeover during an outage), the
        // last success stored by whoever polled before; never any: the cursor, where searching starts.
        const covered = s?.leader ? s.coveredUntil ?? s.lastSuccessAt ?? s.cursor : null;
        this.set(covered === null || covered === undefined ? 0 : Math.max(0, (Date.now() - covered) / 1000));
      },
    });
    new Gauge({
      name: 'orcid_webhooks_upstream_last_success_timestamp_seconds', help: 'When a poll of the upstream last completed', registers,
      collect() {
        const s = poller()?.status();
        if (s?.lastSuccessAt) this.set(s.lastSuccessAt / 1000);
      },
    });
    new Gauge({
      name: 'orcid_webhooks_upstream_leader', help: '1 when this process is the one polling the upstream', registers,
      collect() {
        this.set(poller()?.status().leader ? 1 : 0);
      },
    });
  }

  request(outcome: RequestOutcome): void {
    this.requests.inc({ outcome });
  }
}
