import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Metrics } from '../metrics.ts';
import type { Store } from '../store/types.ts';
import { VERSION } from '../version.ts';
import { requireAdmin } from './auth.ts';
import { answer, oauthError, orcidError } from './openapi.ts';
import { docsPage } from './docs-page.ts';

export interface OpsDeps {
  store: Store;
  metrics: Metrics;
  /** Whether this process should be delivering, and whether it is. */
  worker: { expected: boolean; running: () => boolean };
  /** /metrics and the texts of /ready's checks (which may quote a database error) need it. */
  adminToken: string;
}

const readySchema = z.object({
  status: z.enum(['ready', 'not ready']),
  failing: z.array(z.string()),
  checks: z.record(z.string(), z.string()).optional().describe('What each check found; only with the admin token (a database error may be quoted)'),
});

/** Whether the request carries the admin token (no error: the public answer is just shorter). */
function isAdmin(req: FastifyRequest, adminToken: string): boolean {
  try {
    requireAdmin(req, adminToken);
    return true;
  } catch {
    return false;
  }
}

/** Health, readiness, metrics and API documentation, on every node: /metrics and /ready's details need the admin token. */
export function opsRoutes(app: FastifyInstance, deps: OpsDeps): void {
  const OPERATIONS = { tags: ['Operations'], security: [] };
  // Like every body-less endpoint (body-policy.ts): a request body is refused unread.
  const NO_BODY_TAKEN = { 400: orcidError('A request body was sent; this endpoint takes none (9052)') };
  app.get('/health', {
    schema: {
      ...OPERATIONS, operationId: 'health', summary: 'The process is alive',
      response: { 200: answer('Alive', z.object({ status: z.literal('ok'), version: z.string() })), ...NO_BODY_TAKEN },
    },
  }, async function health() {
    return { status: 'ok', version: VERSION };
  });

  app.get('/ready', {
    schema: {
      ...OPERATIONS, operationId: 'ready',
      summary: 'Ready to serve: store reachable, migrations current, worker running (when this node delivers); the checks\' texts only with the admin token',
      response: { 200: answer('Ready', readySchema), ...NO_BODY_TAKEN, 503: answer('Not ready: the failing checks are named', readySchema) },
    },
  }, async function ready(req, reply) {
    const checks: Record<string, string> = {};
    try {
      await deps.store.ping();
      checks.store = 'ok';
      const { pending, unknown } = await deps.store.migrationState();
      checks.migrations = unknown.length ? `newer than this version: ${unknown.join(', ')}` : pending.length ? `pending: ${pending.join(', ')}` : 'ok';
    } catch (e) {
      checks.store = `unreachable: ${(e as Error).message}`;
      checks.migrations = 'unknown: store unreachable';
    }
    if (deps.worker.expected) checks.worker = deps.worker.running() ? 'ok' : 'not running';
    const failing = Object.entries(checks).filter(([, v]) => v !== 'ok').map(([k]) => k);
    const status = failing.length ? 'not ready' : 'ready';
    return reply.code(failing.length ? 503 : 200).send(isAdmin(req, deps.adminToken) ? { status, failing, checks } : { status, failing });
  });

  app.get('/metrics', {
    schema: {
      tags: ['Operations'], security: [{ adminToken: [] }], operationId: 'metrics', summary: 'Prometheus metrics (text format); the admin token as bearer token',
      response: {
        200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: z.string() } } },
        401: oauthError('Missing or wrong admin token'),
      },
    },
  }, async function metrics(req, reply) {
    requireAdmin(req, deps.adminToken);
    return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  // The document and its page describe the API; they are not operations of it.
  app.get('/openapi.json', { schema: { hide: true } }, async function openapi() {
    return app.swagger();
  });
  app.get('/docs', { schema: { hide: true } }, async function docs(_req, reply) {
    return reply.type('text/html; charset=utf-8').send(docsPage());
  });
}
