import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { Metrics } from '../metrics.ts';
import type { Store } from '../store/types.ts';
import { USER_AGENT } from '../version.ts';
import { UpstreamMetrics } from './metrics.ts';
import { OrcidPublicApi } from './orcid-public-api.ts';
import { UpstreamPoller } from './poller.ts';
import { RateLimiter } from './rate-limiter.ts';
import { upstreamRecordCheck, type RecordExists } from './record-check.ts';
import type { UpstreamSettings } from './status.ts';

export interface Upstream {
  api: OrcidPublicApi;
  poller: UpstreamPoller;
  recordExists: RecordExists;
  settings: UpstreamSettings;
}

/** The upstream of `serve --upstream`: one rate limiter shared by the poller and the records-mode check. */
export function startUpstream(config: Config, deps: { store: Store; metrics: Metrics; logger: Logger }): Upstream {
  const target = config.upstream!;
  let poller: UpstreamPoller | null = null;
  const metrics = new UpstreamMetrics(deps.metrics, () => poller);
  const api = new OrcidPublicApi({
    apiUrl: target.apiUrl, tokenUrl: config.upstreamTokenUrl!, clientId: config.upstreamClientId!, clientSecret: config.upstreamClientSecret!,
    limiter: new RateLimiter(config.upstreamRate), userAgent: USER_AGENT, onRequest: (o) => metrics.request(o),
  });
  poller = new UpstreamPoller({
    store: deps.store, api, intervalMs: config.upstreamIntervalMs, overlapMs: config.upstreamOverlapMs, sinceMs: config.upstreamSinceMs, logger: deps.logger,
  });
  poller.on('changes', (r: { changed: number }) => metrics.recordsChanged.inc(r.changed));
  return { api, poller, recordExists: upstreamRecordCheck(api), settings: { apiUrl: target.apiUrl, intervalMs: config.upstreamIntervalMs, overlapMs: config.upstreamOverlapMs } };
}
