import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { notificationId } from '../delivery/worker.ts';
import { OrcidApiError } from '../domain/errors.ts';
import { PUBLIC_ID_PATTERN } from '../domain/public-id.ts';
import { parseIsoTime } from '../domain/time.ts';
import {
  ClientDeliveryError, deliverySettingsView, issueSigningSecret, recoverClientWebhooks, removeSigningSecret, setPayloadMode,
} from '../ops/client-delivery.ts';
import type { Store } from '../store/types.ts';
import { ADMIN_ERRORS, adminAuth, invalid, isoTime } from './admin.ts';
import { webhookView } from './admin-dashboard.ts';
import { describeOperation, orcidErrorSchema } from './openapi.ts';

/**
 * Admin API for what issue 5 adds per client: signing secrets, payload mode, replay and recovery.
 * Answers are camelCase like the rest of the admin API; secrets appear only in the answer that
 * creates them.
 */
export interface AdminClientRouteDeps {
  store: Store;
  adminToken: string;
  now: () => number;
  /** How long a rotated-out signing secret keeps signing beside the new one. */
  signingRotationGraceMs: number;
  /** A client's signing or payload settings changed (the local delivery worker drops its cached copy). */
  onClientSettingsChanged?: (clientId: string) => void;
}

export const signingSecretBody = z.object({
  rotate: z.boolean().optional().describe('Replace an existing secret; the old one keeps signing for the grace period'),
}).strict();
export const payloadBody = z.object({
  mode: z.enum(['empty', 'json']).describe("empty: ORCID's empty POST (default); json: a record.updated event"),
}).strict();
export const recoverBody = z.object({
  since: isoTime.describe('Webhooks disabled, or still failing with a failure, at or after this time'),
}).strict();

const webhookIdParam = z.string().regex(PUBLIC_ID_PATTERN, 'must be a webhook id: wh_ and 32 hexadecimal digits');

const settingsSchema = z.object({
  client: z.string(),
  payload: z.enum(['empty', 'json']),
  signed: z.boolean().describe('Callbacks carry a webhook-signature'),
  previousSecretExpires: z.string().nullable().describe('During a rotation: when the previous secret stops signing'),
});
const secretSchema = z.object({
  client: z.string(),
  secret: z.string().describe('whsec_… — shown this once; give it to the client to verify signatures'),
  previousSecretExpires: z.string().nullable(),
});

function parse<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw invalid(r.error);
  return r.data;
}

/** No body, or an empty one, counts as `{}`. */
function body(b: unknown): unknown {
  return b === undefined || b === null || b === '' ? {} : b;
}

function rethrow(err: unknown): never {
  if (err instanceof ClientDeliveryError) {
    throw err.kind === 'no-client' ? new OrcidApiError(9011, err.message) : new OrcidApiError(9056, err.message);
  }
  throw err;
}

function describeAll(): void {
  const admin = { tag: 'Admin', security: 'admin' } as const;
  const CLIENT = { id: 'Client id' };
  const noClient = { 404: { description: 'No such client (9011)', schema: orcidErrorSchema } };
  describeOperation({
    ...admin, method: 'post', path: '/admin/api/webhooks/{id}/replay', pathParams: { id: 'Webhook id' },
    summary: 'Send the webhook\'s notification again now, with a new webhook-id; a disabled webhook is re-enabled',
    responses: {
      202: { description: 'Owed now', schema: z.object({ webhook: z.unknown().describe('As in GET /admin/api/webhooks/{id}'), reenabled: z.boolean(), notificationId: z.string() }) },
      ...ADMIN_ERRORS, 404: { description: 'No such webhook (9028)', schema: orcidErrorSchema },
    },
  });
  describeOperation({
    ...admin, method: 'post', path: '/admin/api/clients/{id}/recover', pathParams: CLIENT, body: recoverBody,
    summary: 'Re-enable the client\'s webhooks disabled or failing since a time, each owing one notification now',
    responses: { 200: { description: 'How many', schema: z.object({ client: z.string(), since: z.string(), recovered: z.number().int() }) }, ...ADMIN_ERRORS, ...noClient },
  });
  describeOperation({
    ...admin, method: 'post', path: '/admin/api/clients/{id}/signing-secret', pathParams: CLIENT, body: signingSecretBody,
    summary: 'Give the client a signing secret (Standard Webhooks), or rotate it with {"rotate": true}',
    responses: {
      201: { description: 'The new secret, shown this once', schema: secretSchema },
      ...ADMIN_ERRORS, ...noClient,
      409: { description: 'The client already has a secret and rotate was not asked (9056)', schema: orcidErrorSchema },
    },
  });
  describeOperation({
    ...admin, method: 'delete', path: '/admin/api/clients/{id}/signing-secret', pathParams: CLIENT,
    summary: 'Stop signing the client\'s callbacks',
    responses: { 204: { description: 'Removed (also when there was none)' }, ...ADMIN_ERRORS, ...noClient },
  });
  describeOperation({
    ...admin, method: 'put', path: '/admin/api/clients/{id}/payload', pathParams: CLIENT, body: payloadBody,
    summary: 'Choose the client\'s callback body: ORCID\'s empty POST or a JSON event',
    responses: { 200: { description: 'The client\'s delivery settings', schema: settingsSchema }, ...ADMIN_ERRORS, ...noClient },
  });
  describeOperation({
    ...admin, method: 'get', path: '/admin/api/clients/{id}/delivery', pathParams: CLIENT,
    summary: 'The client\'s delivery settings: payload mode and whether callbacks are signed (never the secrets)',
    responses: { 200: { description: 'The settings', schema: settingsSchema }, 401: ADMIN_ERRORS[401], ...noClient },
  });
}

export function adminClientRoutes(app: FastifyInstance, deps: AdminClientRouteDeps): void {
  describeAll();
  const { store } = deps;
  const changed = (clientId: string) => deps.onClientSettingsChanged?.(clientId);

  app.register(async function adminClientApi(admin) {
    admin.addHook('onRequest', adminAuth(deps.adminToken));

    admin.post('/webhooks/:id/replay', async function replayWebhook(req, reply) {
      const id = parse(webhookIdParam, (req.params as { id: string }).id);
      const w = await store.getWebhookByPublicId(id);
      const r = w && (await store.replayWebhook(w.id, deps.now()));
      if (!r) throw new OrcidApiError(9028, `No webhook with id ${id}: it may have been deleted`);
      const client = await store.getClient(r.webhook.clientId);
      return reply.code(202).send({ webhook: webhookView(r.webhook, client), reenabled: r.reenabled, notificationId: notificationId(r.webhook) });
    });

    admin.post('/clients/:id/recover', async function recoverWebhooks(req) {
      const { id } = req.params as { id: string };
      const { since } = parse(recoverBody, body(req.body));
      const at = parseIsoTime(since)!;
      const recovered = await recoverClientWebhooks(store, id, at, deps.now()).catch(rethrow);
      return { client: id, since: new Date(at).toISOString(), recovered };
    });

    admin.post('/clients/:id/signing-secret', async function issueSecret(req, reply) {
      const { id } = req.params as { id: string };
      const { rotate } = parse(signingSecretBody, body(req.body));
      const issued = await issueSigningSecret(store, id, { rotate: rotate ?? false, graceMs: deps.signingRotationGraceMs, now: deps.now() }).catch(rethrow);
      changed(id);
      return reply.code(201).send({
        client: id, secret: issued.secret,
        previousSecretExpires: issued.previousExpiresAt === null ? null : new Date(issued.previousExpiresAt).toISOString(),
      });
    });

    admin.delete('/clients/:id/signing-secret', async function removeSecret(req, reply) {
      const { id } = req.params as { id: string };
      await removeSigningSecret(store, id, deps.now()).catch(rethrow);
      changed(id);
      return reply.code(204).send();
    });

    admin.put('/clients/:id/payload', async function choosePayload(req) {
      const { id } = req.params as { id: string };
      const { mode } = parse(payloadBody, body(req.body));
      await setPayloadMode(store, id, mode, deps.now()).catch(rethrow);
      changed(id);
      return deliverySettingsView(store, id, deps.now()).catch(rethrow);
    });

    admin.get('/clients/:id/delivery', async function deliverySettings(req) {
      const { id } = req.params as { id: string };
      return deliverySettingsView(store, id, deps.now()).catch(rethrow);
    });
  }, { prefix: '/admin/api' });
}
