import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { notificationId } from '../domain/notification-id.ts';
import { OrcidApiError } from '../domain/errors.ts';
import { parseIsoTime } from '../domain/time.ts';
import {
  ClientDeliveryError, deliverySettingsView, issueSigningSecret, recoverClientWebhooks, removeSigningSecret, setPayloadMode,
} from '../ops/client-delivery.ts';
import type { Store } from '../store/types.ts';
import { body, isoTime, noWebhook, parse, webhookIdParam } from './kit.ts';
import { ADMIN, ADMIN_ERRORS, answer, noBody, orcidError } from './openapi.ts';
import { adminWebhookSchema, adminWebhookView } from './views.ts';

/**
 * Admin API for what issue 5 adds per client: signing secrets, payload mode, replay and recovery.
 * Answers are camelCase like the rest of the admin API; secrets appear only in the answer that
 * creates them. Under the admin API's prefix and auth hook (admin-api.ts).
 */
export interface AdminClientRouteDeps {
  store: Store;
  now: () => number;
  /** How long a rotated-out signing secret keeps signing beside the new one. */
  signingRotationGraceMs: number;
  /** A client's signing or payload settings changed (the local delivery worker drops its cached copy). */
  onClientSettingsChanged?: (clientId: string) => void;
}

const signingSecretBody = z.object({
  rotate: z.boolean().optional().describe('Replace an existing secret; the old one keeps signing for the grace period'),
}).strict();
const payloadBody = z.object({
  mode: z.enum(['empty', 'json']).describe("empty: ORCID's empty POST (default); json: a record.updated event"),
}).strict();
const recoverBody = z.object({
  since: isoTime.describe('Webhooks disabled, or still failing with a failure, at or after this time'),
}).strict();

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
const replaySchema = z.object({ webhook: adminWebhookSchema, reenabled: z.boolean(), notificationId: z.string() });

const webhookParams = z.object({ id: webhookIdParam.describe('Webhook id') });
const clientParams = z.object({ id: z.string().describe('Client id') });
const noClient = { 404: orcidError('No such client (9011)') };

function rethrow(err: unknown): never {
  if (err instanceof ClientDeliveryError) {
    throw err.kind === 'no-client' ? new OrcidApiError(9011, err.message) : new OrcidApiError(9056, err.message);
  }
  throw err;
}

export function adminClientRoutes(admin: FastifyInstance, deps: AdminClientRouteDeps): void {
  const { store } = deps;
  const changed = (clientId: string) => deps.onClientSettingsChanged?.(clientId);

  admin.post('/webhooks/:id/replay', {
    schema: {
      ...ADMIN, operationId: 'replayWebhook', params: webhookParams,
      summary: 'Send the webhook\'s notification again now, with a new webhook-id; a disabled webhook is re-enabled',
      response: { 202: answer('Owed now', replaySchema), ...ADMIN_ERRORS, 404: orcidError('No such webhook (9028)') },
    },
  }, async function replayWebhook(req, reply) {
    const id = parse(webhookIdParam, (req.params as { id: string }).id, 'id');
    const w = await store.getWebhookByPublicId(id);
    const r = w && (await store.replayWebhook(w.id, deps.now()));
    if (!r) throw noWebhook(id);
    const client = await store.getClient(r.webhook.clientId);
    return reply.code(202).send({ webhook: adminWebhookView(r.webhook, client), reenabled: r.reenabled, notificationId: notificationId(r.webhook) });
  });

  admin.post('/clients/:id/recover', {
    schema: {
      ...ADMIN, operationId: 'recoverClientWebhooks', params: clientParams, body: recoverBody,
      summary: 'Re-enable the client\'s webhooks disabled or failing since a time, each owing one notification now',
      response: { 200: answer('How many', z.object({ client: z.string(), since: z.string(), recovered: z.number().int() })), ...ADMIN_ERRORS, ...noClient },
    },
  }, async function recoverWebhooks(req) {
    const { id } = req.params as { id: string };
    const { since } = parse(recoverBody, body(req.body));
    const at = parseIsoTime(since)!;
    const recovered = await recoverClientWebhooks(store, id, at, deps.now()).catch(rethrow);
    return { client: id, since: new Date(at).toISOString(), recovered };
  });

  admin.post('/clients/:id/signing-secret', {
    schema: {
      ...ADMIN, operationId: 'issueSigningSecret', params: clientParams, body: signingSecretBody,
      summary: 'Give the client a signing secret (Standard Webhooks), or rotate it with {"rotate": true}',
      response: {
        201: answer('The new secret, shown this once', secretSchema),
        ...ADMIN_ERRORS, ...noClient,
        409: orcidError('The client already has a secret and rotate was not asked (9056)'),
      },
    },
  }, async function issueSecret(req, reply) {
    const { id } = req.params as { id: string };
    const { rotate } = parse(signingSecretBody, body(req.body));
    const issued = await issueSigningSecret(store, id, { rotate: rotate ?? false, graceMs: deps.signingRotationGraceMs, now: deps.now() }).catch(rethrow);
    changed(id);
    return reply.code(201).send({
      client: id, secret: issued.secret,
      previousSecretExpires: issued.previousExpiresAt === null ? null : new Date(issued.previousExpiresAt).toISOString(),
    });
  });

  admin.delete('/clients/:id/signing-secret', {
    schema: {
      ...ADMIN, operationId: 'removeSigningSecret', params: clientParams,
      summary: 'Stop signing the client\'s callbacks',
      response: { 204: noBody('Removed (also when there was none)'), ...ADMIN_ERRORS, ...noClient },
    },
  }, async function removeSecret(req, reply) {
    const { id } = req.params as { id: string };
    await removeSigningSecret(store, id, deps.now()).catch(rethrow);
    changed(id);
    return reply.code(204).send();
  });

  admin.put('/clients/:id/payload', {
    schema: {
      ...ADMIN, operationId: 'setPayloadMode', params: clientParams, body: payloadBody,
      summary: 'Choose the client\'s callback body: ORCID\'s empty POST or a JSON event',
      response: { 200: answer('The client\'s delivery settings', settingsSchema), ...ADMIN_ERRORS, ...noClient },
    },
  }, async function choosePayload(req) {
    const { id } = req.params as { id: string };
    const { mode } = parse(payloadBody, body(req.body));
    await setPayloadMode(store, id, mode, deps.now()).catch(rethrow);
    changed(id);
    return deliverySettingsView(store, id, deps.now()).catch(rethrow);
  });

  admin.get('/clients/:id/delivery', {
    schema: {
      ...ADMIN, operationId: 'getDeliverySettings', params: clientParams,
      summary: 'The client\'s delivery settings: payload mode and whether callbacks are signed (never the secrets)',
      response: { 200: answer('The settings', settingsSchema), 401: ADMIN_ERRORS[401], ...noClient },
    },
  }, async function deliverySettings(req) {
    const { id } = req.params as { id: string };
    return deliverySettingsView(store, id, deps.now()).catch(rethrow);
  });
}
