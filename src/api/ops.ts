import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Metrics } from '../metrics.ts';
import type { Store } from '../store/types.ts';
import { VERSION } from '../version.ts';
import { describeOperation, openApiDocument } from './openapi.ts';
import { docsPage } from './docs-page.ts';

export interface OpsDeps {
  store: Store;
  metrics: Metrics;
  /** Whether this process should be delivering, and whether it is. */
  worker: { expected: boolean; running: () => boolean };
}

const readySchema = z.object({
  status: z.enum(['ready', 'not ready']),
  failing: z.array(z.string()),
  checks: z.record(z.string(), z.string()),
});

/** Health, readiness, metrics and API documentation: unauthenticated, on every node. */
export function opsRoutes(app: FastifyInstance, deps: OpsDeps): void {
  describeOperation({ method: 'get', path: '/health', tag: 'Operations', security: 'none', summary: 'The process is alive', responses: { 200: { description: 'Alive', schema: z.object({ status: z.literal('ok'), version: z.string() }) } } });
  app.get('/health', async function health() {
    return { status: 'ok', version: VERSION };
  });

  describeOperation({
    method: 'get', path: '/ready', tag: 'Operations', security: 'none',
    summary: 'Ready to serve: store reachable, migrations current, worker running (when this node delivers)',
    responses: { 200: { description: 'Ready', schema: readySchema }, 503: { description: 'Not ready: the failing checks are named', schema: readySchema } },
  });
  app.get('/ready', async function ready(_req, reply) {
    const checks: Record<string, string> = {};
    try {
      await deps.store.ping();
      checks.store = 'ok';
      const pending = await deps.store.pendingMigrations();
      checks.migrations = pending.length ? `pending: ${pending.join(', ')}` : 'ok';
    } catch (e) {
      checks.store = `unreachable: ${(e as Error).message}`;
      checks.migrations = 'unknown: store unreachable';
    }
    if (deps.worker.expected) checks.worker = deps.worker.running() ? 'ok' : 'not running';
    const failing = Object.entries(checks).filter(([, v]) => v !== 'ok').map(([k]) => k);
    return reply.code(failing.length ? 503 : 200).send({ status: failing.length ? 'not ready' : 'ready', failing, checks });
  });

  describeOperation({ method: 'get', path: '/metrics', tag: 'Operations', security: 'none', summary: 'Prometheus metrics (text format)', responses: { 200: { description: 'Prometheus text exposition format' } } });
  app.get('/metrics', async function metrics(_req, reply) {
    return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  app.get('/openapi.json', async function openapi() {
    return openApiDocument();
  });
  app.get('/docs', async function docs(_req, reply) {
    return reply.type('text/html; charset=utf-8').send(docsPage());
  });
}
