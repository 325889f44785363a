import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { OrcidApiError } from '../domain/errors.ts';
import { forgetClientTokens } from './auth.ts';
import type { RecordedHeaders } from '../domain/attempt-headers.ts';
import { PUBLIC_ID_PATTERN } from '../domain/public-id.ts';
import { dashboardStateOf, WEBHOOK_STATES } from '../domain/webhook-state.ts';
import { clientView, createApiClient } from '../ops/clients.ts';
import type { AttemptBucket, AttemptRow, ClientRow, FailureCount, RecordRow, Store, WebhookRow } from '../store/types.ts';
import { ADMIN_ERRORS, adminAuth, invalid, validOrcid } from './admin.ts';
import { describeOperation, orcidErrorSchema } from './openapi.ts';

/**
 * The admin API behind the dashboard (/admin): an overview, webhooks and clients. The dashboard is
 * a thin client of these endpoints; every rule lives in the store and in src/ops.
 */
export interface DashboardApiDeps {
  store: Store;
  adminToken: string;
  now: () => number;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** Hosts and clients listed in the overview's failure breakdown. */
const TOP_FAILURES = 10;

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

// --- Schemas: they validate the requests and describe the operations in /openapi.json. ---------

const webhookParams = z.object({ id: z.string().regex(PUBLIC_ID_PATTERN, 'must be a webhook id: wh_ and 32 hexadecimal digits') });


export const listWebhooksQuery = z.object({
  search: z.string().max(2048).optional().describe('An exact iD or client id, or part of the callback URL'),
  state: z.enum(WEBHOOK_STATES).optional().describe('enabled (all enabled ones), disabled, pending (owes a callback, no failure yet), failing (in backoff after failures)'),
  client: z.string().max(200).optional().describe('Only this client id'),
  orcid: z.string().optional().describe('Only this ORCID iD'),
  cursor: z.string().regex(PUBLIC_ID_PATTERN, 'must be the nextCursor of a previous page').optional().describe('nextCursor of the previous page'),
  limit: z.string().regex(/^\d+$/, 'must be a whole number').transform(Number).pipe(z.number().int().min(1).max(500)).optional().describe('Page size, 1 to 500 (default 50)'),
}).strict();

export const webhookQuery = z.object({
  attempts: z.string().regex(/^\d+$/, 'must be a whole number').transform(Number).pipe(z.number().int().min(1).max(500)).optional().describe('How many attempts, newest first (default 100, at most 500)'),
}).strict();

export const listRecordsQuery = z.object({
  orcid: z.string().optional().describe('Only this ORCID iD (an exact iD)'),
  cursor: z.string().regex(/^\d{4}-\d{4}-\d{4}-\d{3}[\dX]$/, 'must be the nextCursor of a previous page').optional().describe('nextCursor of the previous page'),
  limit: z.string().regex(/^\d+$/, 'must be a whole number').transform(Number).pipe(z.number().int().min(1).max(500)).optional().describe('Page size, 1 to 500 (default 50)'),
}).strict();

export const createClientBody = z.object({
  name: z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters'),
  premium: z.boolean().optional().describe('Premium member clients may get /webhook tokens (default false)'),
}).strict();

const webhookSchema = z.object({
  id: z.string().describe('wh_ and 32 hexadecimal digits (random)'), orcid: z.string(), url: z.string(), host: z.string(),
  client: z.object({ id: z.string(), name: z.string().nullable() }),
  state: z.enum(['ok', 'pending', 'failing', 'disabled']),
  enabled: z.boolean(), disabledReason: z.string().nullable(), disabled: z.string().nullable(), created: z.string(),
  pendingSince: z.string().nullable(), due: z.string().nullable(), failedAttempts: z.number().int(),
  lastAttempt: z.string().nullable().describe('The last attempt, successful or not'),
  lastSuccess: z.string().nullable().describe('The last attempt answered 2xx'),
  lastFailed: z.string().nullable(), lastStatus: z.string().nullable().describe('Status code or error of the last attempt'),
});
const headersSchema = z.record(z.string(), z.string()).nullable()
  .describe('Lower-cased names; at most 40 headers of 256 characters, secrets (webhook-signature, authorization, cookies) redacted; null when not kept or no answer');
const attemptSchema = z.object({
  id: z.number().int(), notificationId: z.string(), at: z.string(), durationMs: z.number().int(),
  statusCode: z.number().int().nullable(), error: z.string().nullable(), responseSnippet: z.string().nullable(),
  latencyMs: z.number().int().nullable(), ok: z.boolean(),
  requestHeaders: headersSchema, responseHeaders: headersSchema,
});
const recordSchema = z.object({ orcid: z.string(), modified: z.string(), created: z.string() });
const failureSchema = z.object({ attempts: z.number().int(), failures: z.number().int() });
const clientSchema = z.object({ id: z.string(), name: z.string(), premium: z.boolean(), created: z.string(), revoked: z.string().nullable() });
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
    inFlight: z.number().int().describe('Callbacks being sent now (webhooks under a live lease, in every worker process)'),
  }),
  failures: z.object({
    byHost: z.array(failureSchema.extend({ host: z.string() })),
    byClient: z.array(failureSchema.extend({ client: z.object({ id: z.string(), name: z.string().nullable() }) })),
  }).describe('Attempts of the last hour by receiving host and by client: the 10 with most failures, those with none left out'),
  series: z.array(pointSchema).describe('The last 60 minutes, one point per minute, oldest first (the last one is the current minute)'),
});

const ERRORS_404 = { 404: { description: 'No such webhook (9028) or client (9011)', schema: orcidErrorSchema } };
const ID_PARAM = { id: 'Webhook id' };

function describeAll(): void {
  const admin = { tag: 'Admin', security: 'admin' } as const;
  describeOperation({
    ...admin, method: 'get', path: '/admin/api/overview',
    summary: 'Counts, and callbacks, success rate and change-to-callback latency over the last hour',
    responses: { 200: { description: 'The overview', schema: overviewSchema }, 401: ADMIN_ERRORS[401] },
  });
  describeOperation({
    ...admin, method: 'get', path: '/admin/api/webhooks', query: listWebhooksQuery,
    summary: 'List webhooks by id, with search, filters and cursor pagination',
    responses: { 200: { description: 'A page', schema: z.object({ webhooks: z.array(webhookSchema), nextCursor: z.string().nullable() }) }, ...ADMIN_ERRORS },
  });
  describeOperation({
    ...admin, method: 'get', path: '/admin/api/webhooks/{id}', pathParams: ID_PARAM, query: webhookQuery,
    summary: 'A webhook with its attempts history, newest first',
    responses: { 200: { description: 'The webhook', schema: z.object({ webhook: webhookSchema, attempts: z.array(attemptSchema) }) }, ...ADMIN_ERRORS, ...ERRORS_404 },
  });
  describeOperation({
    ...admin, method: 'post', path: '/admin/api/webhooks/{id}/enable', pathParams: ID_PARAM,
    summary: 'Re-enable a disabled webhook: failures reset, a notification it still owed is due now',
    responses: { 200: { description: 'Enabled (reenabled is false when it already was)', schema: z.object({ webhook: webhookSchema, reenabled: z.boolean() }) }, ...ADMIN_ERRORS, ...ERRORS_404 },
  });
  describeOperation({
    ...admin, method: 'delete', path: '/admin/api/webhooks/{id}', pathParams: ID_PARAM,
    summary: 'Delete a webhook and its attempts history',
    responses: { 204: { description: 'Deleted' }, ...ADMIN_ERRORS, ...ERRORS_404 },
  });
  describeOperation({
    ...admin, method: 'get', path: '/admin/api/records', query: listRecordsQuery,
    summary: 'List records by iD, with cursor pagination',
    responses: { 200: { description: 'A page', schema: z.object({ records: z.array(recordSchema), nextCursor: z.string().nullable() }) }, ...ADMIN_ERRORS },
  });
  describeOperation({
    ...admin, method: 'get', path: '/admin/api/clients',
    summary: 'List API clients (never their secrets)',
    responses: { 200: { description: 'The clients', schema: z.object({ clients: z.array(clientSchema) }) }, 401: ADMIN_ERRORS[401] },
  });
  describeOperation({
    ...admin, method: 'post', path: '/admin/api/clients', body: createClientBody,
    summary: 'Create an API client; its secret is answered this once and stored only as a hash',
    responses: { 201: { description: 'Created', schema: z.object({ client: clientSchema, secret: z.string() }) }, ...ADMIN_ERRORS },
  });
  describeOperation({
    ...admin, method: 'post', path: '/admin/api/clients/{id}/revoke', pathParams: { id: 'Client id' },
    summary: 'Revoke a client: its tokens are deleted and it can get no new ones',
    responses: { 200: { description: 'Revoked (revoking again keeps the first time)', schema: z.object({ client: clientSchema }) }, ...ADMIN_ERRORS, ...ERRORS_404 },
  });
}

// --- Views ------------------------------------------------------------------------------------

/** What the dashboard shows of a webhook: explicit fields only, never lease internals or secrets. */
export function webhookView(w: WebhookRow, client: ClientRow | null | undefined): z.infer<typeof webhookSchema> {
  return {
    id: w.publicId, orcid: w.orcid, url: w.url, host: w.host,
    client: { id: w.clientId, name: client?.name ?? null },
    state: dashboardStateOf(w), enabled: w.enabled, disabledReason: w.disabledReason, disabled: iso(w.disabledAt),
    created: iso(w.createdAt)!, pendingSince: iso(w.pendingSince), due: iso(w.dueAt), failedAttempts: w.failedAttempts,
    lastAttempt: iso(lastAttemptAt(w)), lastSuccess: iso(w.lastSentAt), lastFailed: iso(w.lastFailedAt), lastStatus: w.lastStatus,
  };
}

/** Every attempt either succeeds (last_sent_at) or fails (last_failed_at): the later one is the last attempt. */
function lastAttemptAt(w: WebhookRow): number | null {
  if (w.lastSentAt === null) return w.lastFailedAt;
  return w.lastFailedAt === null ? w.lastSentAt : Math.max(w.lastSentAt, w.lastFailedAt);
}

function recordView(r: RecordRow): z.infer<typeof recordSchema> {
  return { orcid: r.orcid, modified: iso(r.modifiedAt)!, created: iso(r.createdAt)! };
}

function attemptView(a: AttemptRow): z.infer<typeof attemptSchema> {
  return {
    id: a.id, notificationId: a.notificationId, at: iso(a.at)!, durationMs: a.durationMs, statusCode: a.statusCode,
    error: a.error, responseSnippet: a.responseSnippet, latencyMs: a.latencyMs,
    ok: a.statusCode !== null && a.statusCode >= 200 && a.statusCode < 300,
    requestHeaders: a.requestHeaders satisfies RecordedHeaders | null, responseHeaders: a.responseHeaders,
  };
}

/** One point per minute from `since`, zeros where no attempt was made. */
function minuteSeries(since: number, minutes: number, buckets: AttemptBucket[]): z.infer<typeof pointSchema>[] {
  const byStart = new Map(buckets.map((b) => [b.start, b]));
  return Array.from({ length: minutes }, (_, i) => {
    const start = since + i * MINUTE;
    const b = byStart.get(start);
    return {
      at: iso(start)!, callbacks: b?.callbacks ?? 0, successes: b?.successes ?? 0, failures: b?.failures ?? 0,
      latencyP50Ms: b?.latencyP50 ?? null, latencyP95Ms: b?.latencyP95 ?? null,
    };
  });
}

function parse<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw invalid(r.error);
  return r.data;
}

/** Query parameters sent empty (`?search=&state=`) mean "not given". */
function query(q: unknown): Record<string, unknown> {
  return Object.fromEntries(Object.entries((q ?? {}) as Record<string, unknown>).filter(([, v]) => v !== ''));
}

function webhookId(params: unknown): string {
  return parse(webhookParams, params).id;
}

const noWebhook = (id: string) => new OrcidApiError(9028, `No webhook with id ${id}: it may have been deleted`);

export function adminDashboardRoutes(app: FastifyInstance, deps: DashboardApiDeps): void {
  describeAll();
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

  app.register(async function adminDashboardApi(admin) {
    admin.addHook('onRequest', adminAuth(deps.adminToken));

    admin.get('/overview', async function overview() {
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
          inFlight: backlog.inFlight,
        },
        failures: {
          byHost: failures.byHost.map((f) => ({ host: f.key, ...counts(f) })),
          byClient: failures.byClient.map((f) => ({ client: { id: f.key, name: clientNames.get(f.key) ?? null }, ...counts(f) })),
        },
        series: minuteSeries(since, 60, buckets),
      };
    });

    admin.get('/webhooks', async function listWebhooks(req) {
      const q = parse(listWebhooksQuery, query(req.query));
      if (q.orcid !== undefined) validOrcid(q.orcid, 'orcid');
      const limit = q.limit ?? 50;
      const rows = await store.listWebhooks({
        limit: limit + 1,
        ...(q.search && { search: q.search.trim() }),
        ...(q.state && { state: q.state }),
        ...(q.client !== undefined && { clientId: q.client }),
        ...(q.orcid !== undefined && { orcid: q.orcid }),
        ...(q.cursor !== undefined && { afterId: await afterIdOf(q.cursor) }),
      });
      const page = rows.slice(0, limit);
      const clients = await clientsById();
      return {
        webhooks: page.map((w) => webhookView(w, clients.get(w.clientId))),
        nextCursor: rows.length > limit ? page[page.length - 1]!.publicId : null,
      };
    });

    admin.get('/webhooks/:id', async function getWebhook(req) {
      const id = webhookId(req.params);
      const q = parse(webhookQuery, query(req.query));
      const w = await loadWebhook(id);
      const [client, attempts] = await Promise.all([store.getClient(w.clientId), store.listAttempts(w.id, q.attempts ?? 100)]);
      return { webhook: webhookView(w, client), attempts: attempts.map(attemptView) };
    });

    admin.post('/webhooks/:id/enable', async function enableWebhook(req) {
      const id = webhookId(req.params);
      const r = await store.enableWebhook((await loadWebhook(id)).id, deps.now());
      if (!r) throw noWebhook(id);
      return { webhook: webhookView(r.webhook, await store.getClient(r.webhook.clientId)), reenabled: r.reenabled };
    });

    admin.delete('/webhooks/:id', async function deleteWebhook(req, reply) {
      const id = webhookId(req.params);
      const w = await loadWebhook(id);
      if (!(await store.deleteWebhook(w.clientId, w.orcid, w.url))) throw noWebhook(id);
      return reply.code(204).send();
    });

    admin.get('/records', async function listRecords(req) {
      const q = parse(listRecordsQuery, query(req.query));
      if (q.orcid !== undefined) {
        validOrcid(q.orcid, 'orcid');
        const r = await store.getRecord(q.orcid);
        return { records: r ? [recordView(r)] : [], nextCursor: null };
      }
      const limit = q.limit ?? 50;
      const rows = await store.listRecords({ limit: limit + 1, ...(q.cursor !== undefined && { afterOrcid: q.cursor }) });
      const page = rows.slice(0, limit);
      return { records: page.map(recordView), nextCursor: rows.length > limit ? page[page.length - 1]!.orcid : null };
    });

    admin.get('/clients', async function listClients() {
      return { clients: (await store.listClients()).map(clientView) };
    });

    admin.post('/clients', async function createClient(req, reply) {
      const body = parse(createClientBody, req.body);
      const { client, secret } = await createApiClient(store, { name: body.name, premium: body.premium ?? false, now: deps.now() });
      return reply.code(201).send({ client: clientView(client), secret });
    });

    admin.post('/clients/:id/revoke', async function revokeClient(req) {
      const { id } = req.params as { id: string };
      if (!(await store.revokeClient(id, deps.now()))) throw new OrcidApiError(9011, `No client with id ${id}`);
      forgetClientTokens(store, id);
      return { client: clientView((await store.getClient(id))!) };
    });
  }, { prefix: '/admin/api' });
}
