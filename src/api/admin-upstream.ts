import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Store } from '../store/types.ts';
import type { PollerStatus } from '../upstream/poller.ts';
import { UPSTREAM_SOURCE } from '../upstream/poller.ts';
import { upstreamStatusView, type UpstreamSettings } from '../upstream/status.ts';
import { ADMIN, ADMIN_ERRORS, answer } from './openapi.ts';

/** This process's upstream poller as the admin API sees it. */
export interface UpstreamView {
  settings: UpstreamSettings;
  status(): PollerStatus;
}

export interface AdminUpstreamDeps {
  store: Store;
  now: () => number;
  upstream: UpstreamView | null;
}

const statusSchema = z.object({
  configured: z.boolean(), upstream: z.string().nullable(), state: z.string(), leader: z.string().nullable(), leaderUntil: z.string().nullable(),
  cursor: z.string().nullable(), lagSeconds: z.number().nullable(), lastSuccess: z.string().nullable(), lastError: z.string().nullable(),
  lastErrorAt: z.string().nullable(), nextPoll: z.string().nullable(), intervalSeconds: z.number().nullable(), recordsChanged: z.number().nullable(),
});

/** GET /admin/api/upstream: the upstream poller's state (dashboard panel, scripts). Under the admin API's prefix and auth hook. */
export function adminUpstreamRoutes(admin: FastifyInstance, deps: AdminUpstreamDeps): void {
  admin.get('/upstream', {
    schema: {
      ...ADMIN, operationId: 'getUpstreamStatus',
      summary: 'The upstream poller (--upstream): state, cursor, lag, last error, next poll',
      response: { 200: answer('Its state; configured is false when this process does not watch an upstream', statusSchema), 401: ADMIN_ERRORS[401] },
    },
  }, async function upstreamStatus() {
    const stored = await deps.store.upstreamState(UPSTREAM_SOURCE);
    return upstreamStatusView(stored, deps.upstream?.status() ?? null, deps.upstream?.settings ?? null, deps.now());
  });
}
