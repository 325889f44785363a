import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { OrcidApiError } from '../domain/errors.ts';
import { PUBLIC_ID_PATTERN } from '../domain/public-id.ts';
import { WEBHOOK_STATES } from '../domain/webhook-state.ts';
import { clientView, createApiClient, NAME_CHARACTERS } from '../ops/clients.ts';
import type { AttemptBucket, ClientRow, FailureCount, Store, WebhookRow } from '../store/types.ts';
import { forgetClientTokens } from './auth.ts';
import { iso, noWebhook, pageLimit, pageOf, parse, parseQuery, query, webhookIdParam } from './kit.ts';
import { ADMIN, ADMIN_ERRORS, answer, noBody, orcidError } from './openapi.ts';
import { adminAttemptSchema, adminAttemptView, adminWebhookSchema, adminWebhookView, recordSchema, recordView } from './views.ts';

/**
 * The admin API behind the dashboard (/admin): an overview, webhooks and clients. The dashboard is
 * a thin client of these endpoints; every rule lives in the store and in src/ops. Under the admin
 * API's prefix and auth hook (admin-api.ts).
 */
export interface DashboardApiDeps {
  store: Store;
  now: () => number;
  /** A webhook was deleted here (counted with the deletions of the ORCID API in the metrics). */
  onWebhookDeleted?: () => void;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** Hosts and clients listed in the overview's failure breakdown. */
const TOP_FAILURES = 10;

// --- Schemas: they validate the requests and describe the operations in /openapi.json. ---------

const webhookParams = z.object({ id: webhookIdParam.describe('Webhook id') });


const listWebhooksQuery = z.object({
  search: z.string().max(2048).optional().describe('An exact iD or client id, or part of the callback URL'),
  state: z.enum(WEBHOOK_STATES).optional().describe('enabled (all enabled ones), disabled, pending (owes a callback, no failure yet), failing (in backoff after failures)'),
  client: z.string().max(200).optional().describe('Only this client id'),
  orcid: z.string().optional().describe('Only this ORCID iD'),
  cursor: z.string().regex(PUBLIC_ID_PATTERN, 'must be the nextCursor of a previous page').optional().describe('nextCursor of the previous page'),
  limit: pageLimit(500).optional().describe('Page size, 1 to 500 (default 50)'),
  host: z.string().max(300).optional().describe('Only webhooks to this host, exactly (as the overview\'s failures by host name it; IDNs in their xn-- form)'),
}).strict();

const webhookQuery = z.object({
  attempts: pageLimit(500).optional().describe('How many attempts, newest first (default 100, at most 500)'),
}).strict();

const listRecordsQuery = z.object({
  orcid: z.string().optional().describe('Only this ORCID iD (an exact iD)'),
  cursor: z.string().regex(/^\d{4}-\d{4}-\d{4}-\d{3}[\dX]$/, 'must be the nextCursor of a previous page').optional().describe('nextCursor of the previous page'),
  limit: pageLimit(500).optional().describe('Page size, 1 to 500 (default 50)'),
}).strict();

const createClientBody = z.object({
  name: z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters')
    .regex(NAME_CHARACTERS, 'must not contain control characters (NUL, line breaks, tabs...)'),
  premium: z.boolean().optional().describe('Premium member clients may get /webhook tokens (default false)'),
}).strict();

const failureSchema = z.object({ attempts: z.number().int(), failures: z.number().int() });
const clientSchema = z.object({ id: z.string(), name: z.string(), premium: z.boolean(), created: z.string(), revoked: z.string().nullable() })
  .meta({ id: 'Client', description: 'An API client (never its secret)' });
const pointSchema = z.object({
  at: z.string(), callbacks: z.number().int(), successes: z.number().int(), failures: z.number().int(),
  latencyP50Ms: z.number().nullable(), latencyP95Ms: z.number().nullable(),
});
const overviewSchema = z.object({
  now: z.string(),
  webhooks: z.object({ total: z.number().int(), enabled: z.number().int(), disabled: z.number().int(), pending: z.number().int(), backoff: z.number().int() }),
  records: z.number().int(),
  clients: z.object({ total: z.number().int(), active: z.number().int() }),
  lastHour: pointSchema.omit({ at: true }).extend({ perMinute: z.number(), successRate: z.number().nullable() }),
  lastMinute: z.object({ callbacks: z.number().int() }),
  delivery: z.object({
    oldestOwedSince: z.string().nullable().describe('Change time of the oldest notification an enabled webhook owes'),
    oldestOwedAgeMs: z.number().int().nullable().describe('How long it has waited; null when nothing is owed'),
    oldestOwedWebhook: z.string().nullable().describe('Id of the webhook that owes it (it may be pending or failing); null when nothing is owed'),
    inFlight: z.number().int().describe('Callbacks being sent now (webhooks under a live lease, in every worker process)'),
  }),
  failures: z.object({
    byHost: z.array(failureSchema.extend({ host: z.string() })),
    byClient: z.array(failureSchema.extend({ client: z.object({ id: z.string(), name: z.string().nullable() }) })),
  }).describe('Attempts of the last hour by receiving host and by client: the 10 with most failures, those with none left out'),
  series: z.array(pointSchema).describe('The last 60 minutes, one point per minute, oldest first (the last one is the current minute)'),
});

/** A paged list's operation: its query, and a page of its items under `key` with the cursor of the next page. */
function listOperation(operationId: string, summary: string, querystring: z.ZodType, key: string, item: z.ZodType) {
  const page = z.object({ [key]: z.array(item), nextCursor: z.string().nullable().describe('Pass as cursor for the next page; null on the last one') });
  return { schema: { ...ADMIN, operationId, summary, querystring, response: { 200: answer('A page', page), ...ADMIN_ERRORS } } };
}

const ERRORS_404 = { 404: orcidError('No such webhook (9028) or client (9011)') };

/** One point per minute from `since`, zeros where no attempt was made. */
function minuteSeries(since: number, minutes: number, buckets: AttemptBucket[]): z.infer<typeof pointSchema>[] {
  const byStart = new Map(buckets.map((b) => [b.start, b]));
  return Array.from({ length: minutes }, (_, i) => {
    const start = since + i * MINUTE;
    const b = byStart.get(start);
    return {
      at: iso(start), callbacks: b?.callbacks ?? 0, successes: b?.successes ?? 0, failures: b?.failures ?? 0,
      latencyP50Ms: b?.latencyP50 ?? null, latencyP95Ms: b?.latencyP95 ?? null,
    };
  });
}

function webhookId(params: unknown): string {
  return parse(webhookParams, params, 'path').id;
}

export function adminDashboardRoutes(admin: FastifyInstance, deps: DashboardApiDeps): void {
  const { store } = deps;

  async function clientsById(): Promise<Map<string, ClientRow>> {
    return new Map((await store.listClients()).map((c) => [c.id, c]));
  }

  async function loadWebhook(id: string): Promise<WebhookRow> {
    const w = await store.getWebhookByPublicId(id);
    if (!w) throw noWebhook(id);
    return w;
  }

  /** A page cursor is the public id of the previous page's last webhook. */
  async function afterIdOf(cursor: string): Promise<number> {
    const w = await store.getWebhookByPublicId(cursor);
    if (!w) throw new OrcidApiError(9052, 'cursor: the webhook it names was deleted; start again from the first page');
    return w.id;
  }

  admin.get('/overview', {
    schema: {
      ...ADMIN, operationId: 'getOverview', summary: 'Counts, and callbacks, success rate and change-to-callback latency over the last hour',
      response: { 200: answer('The overview', overviewSchema), 401: ADMIN_ERRORS[401] },
    },
  }, async function overview() {
    const now = deps.now();
    // Sixty whole-minute buckets ending with the current (partial) minute.
    const since = Math.floor(now / MINUTE) * MINUTE - 59 * MINUTE;
    const [webhooks, records, clients, buckets, hour, minute, backlog, failures] = await Promise.all([
      store.countWebhooks(), store.countRecords(), store.listClients(),
      store.attemptStats(since, MINUTE), store.attemptStats(now - HOUR, HOUR), store.attemptStats(now - MINUTE, MINUTE),
      store.deliveryBacklog(now), store.failureBreakdown(now - HOUR, TOP_FAILURES),
    ]);
    const clientNames = new Map(clients.map((c) => [c.id, c.name]));
    const counts = ({ attempts, failures: n }: FailureCount) => ({ attempts, failures: n });
    const h = hour[0];
    const callbacks = h?.callbacks ?? 0;
    return {
      now: iso(now),
      webhooks,
      records,
      clients: { total: clients.length, active: clients.filter((c) => c.revokedAt === null).length },
      lastHour: {
        callbacks, successes: h?.successes ?? 0, failures: h?.failures ?? 0,
        perMinute: Math.round((callbacks / 60) * 100) / 100,
        successRate: callbacks ? (h?.successes ?? 0) / callbacks : null,
        latencyP50Ms: h?.latencyP50 ?? null, latencyP95Ms: h?.latencyP95 ?? null,
      },
      lastMinute: { callbacks: minute[0]?.callbacks ?? 0 },
      delivery: {
        oldestOwedSince: iso(backlog.oldestOwedSince),
        oldestOwedAgeMs: backlog.oldestOwedSince === null ? null : Math.max(0, now - backlog.oldestOwedSince),
        oldestOwedWebhook: backlog.oldestOwedWebhook,
        inFlight: backlog.inFlight,
      },
      failures: {
        byHost: failures.byHost.map((f) => ({ host: f.key, ...counts(f) })),
        byClient: failures.byClient.map((f) => ({ client: { id: f.key, name: clientNames.get(f.key) ?? null }, ...counts(f) })),
      },
      series: minuteSeries(since, 60, buckets),
    };
  });

  admin.get('/webhooks', listOperation('listWebhooks', 'List webhooks by id, with search, filters and cursor pagination', listWebhooksQuery, 'webhooks', adminWebhookSchema), async function listWebhooks(req) {
    const q = parseQuery(listWebhooksQuery, req.query);
    const limit = q.limit ?? 50;
    const rows = await store.listWebhooks({
      limit: limit + 1,
      ...(q.search && { search: q.search.trim() }),
      ...(q.state && { state: q.state }),
      ...(q.client !== undefined && { clientId: q.client }),
      ...(q.orcid !== undefined && { orcid: q.orcid }),
      ...(q.host !== undefined && { host: q.host.toLowerCase() }),
      ...(q.cursor !== undefined && { afterId: await afterIdOf(q.cursor) }),
    });
    const { page, next } = pageOf(rows, limit, (w) => w.publicId);
    const clients = await clientsById();
    return { webhooks: page.map((w) => adminWebhookView(w, clients.get(w.clientId))), nextCursor: next };
  });

  admin.get('/webhooks/:id', {
    schema: {
      ...ADMIN, operationId: 'getWebhook', params: webhookParams, querystring: webhookQuery, summary: 'A webhook with its attempts history, newest first',
      response: { 200: answer('The webhook', z.object({ webhook: adminWebhookSchema, attempts: z.array(adminAttemptSchema) })), ...ADMIN_ERRORS, ...ERRORS_404 },
    },
  }, async function getWebhook(req) {
    const id = webhookId(req.params);
    const q = parse(webhookQuery, query(req.query), 'query');
    const w = await loadWebhook(id);
    const [client, attempts] = await Promise.all([store.getClient(w.clientId), store.listAttempts(w.id, q.attempts ?? 100)]);
    return { webhook: adminWebhookView(w, client), attempts: attempts.map(adminAttemptView) };
  });

  admin.post('/webhooks/:id/enable', {
    schema: {
      ...ADMIN, operationId: 'enableWebhook', params: webhookParams, summary: 'Re-enable a disabled webhook: failures reset, a notification it still owed is due now',
      response: { 200: answer('Enabled (reenabled is false when it already was)', z.object({ webhook: adminWebhookSchema, reenabled: z.boolean() })), ...ADMIN_ERRORS, ...ERRORS_404 },
    },
  }, async function enableWebhook(req) {
    const id = webhookId(req.params);
    const r = await store.enableWebhook((await loadWebhook(id)).id, deps.now());
    if (!r) throw noWebhook(id);
    return { webhook: adminWebhookView(r.webhook, await store.getClient(r.webhook.clientId)), reenabled: r.reenabled };
  });

  admin.delete('/webhooks/:id', {
    schema: {
      ...ADMIN, operationId: 'deleteWebhook', params: webhookParams, summary: 'Delete a webhook and its attempts history',
      response: { 204: noBody('Deleted'), ...ADMIN_ERRORS, ...ERRORS_404 },
    },
  }, async function deleteWebhook(req, reply) {
    const id = webhookId(req.params);
    const w = await loadWebhook(id);
    if (!(await store.deleteWebhook(w.clientId, w.orcid, w.url))) throw noWebhook(id);
    deps.onWebhookDeleted?.();
    return reply.code(204).send();
  });

  admin.get('/records', listOperation('listRecords', 'List records by iD, with cursor pagination', listRecordsQuery, 'records', recordSchema), async function listRecords(req) {
    const q = parseQuery(listRecordsQuery, req.query);
    if (q.orcid !== undefined) {
      const r = await store.getRecord(q.orcid);
      return { records: r ? [recordView(r)] : [], nextCursor: null };
    }
    const limit = q.limit ?? 50;
    const rows = await store.listRecords({ limit: limit + 1, ...(q.cursor !== undefined && { afterOrcid: q.cursor }) });
    const { page, next } = pageOf(rows, limit, (r) => r.orcid);
    return { records: page.map(recordView), nextCursor: next };
  });

  admin.get('/clients', {
    schema: {
      ...ADMIN, operationId: 'listClients', summary: 'List API clients (never their secrets)',
      response: { 200: answer('The clients', z.object({ clients: z.array(clientSchema) })), 401: ADMIN_ERRORS[401] },
    },
  }, async function listClients() {
    return { clients: (await store.listClients()).map(clientView) };
  });

  admin.post('/clients', {
    schema: {
      ...ADMIN, operationId: 'createClient', body: createClientBody, summary: 'Create an API client; its secret is answered this once and stored only as a hash',
      response: { 201: answer('Created', z.object({ client: clientSchema, secret: z.string() })), ...ADMIN_ERRORS },
    },
  }, async function createClient(req, reply) {
    const body = parse(createClientBody, req.body);
    const { client, secret } = await createApiClient(store, { name: body.name, premium: body.premium ?? false, now: deps.now() });
    return reply.code(201).send({ client: clientView(client), secret });
  });

  admin.post('/clients/:id/revoke', {
    schema: {
      ...ADMIN, operationId: 'revokeClient', params: z.object({ id: z.string().describe('Client id') }), summary: 'Revoke a client: its tokens are deleted and it can get no new ones',
      response: { 200: answer('Revoked (revoking again keeps the first time)', z.object({ client: clientSchema })), ...ADMIN_ERRORS, ...ERRORS_404 },
    },
  }, async function revokeClient(req) {
    const { id } = req.params as { id: string };
    if (!(await store.revokeClient(id, deps.now()))) throw new OrcidApiError(9011, `No client with id ${id}`);
    forgetClientTokens(store, id);
    return { client: clientView((await store.getClient(id))!) };
  });
}
