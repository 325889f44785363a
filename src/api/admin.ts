import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { OrcidApiError } from '../domain/errors.ts';
import { checkOrcid } from '../domain/orcid-id.ts';
import { parseIsoTime } from '../domain/time.ts';
import type { ChangeSink } from '../changes/source.ts';
import type { ApplyChangesResult, RecordChange, Store } from '../store/types.ts';
import { requireAdmin } from './auth.ts';
import { describeOperation, oauthErrorSchema, orcidErrorSchema } from './openapi.ts';

export const MAX_BULK_CHANGES = 10_000;
/** How many bad items a refused bulk change names (the total is always given). */
export const MAX_NAMED_PROBLEMS = 50;

export interface AdminRouteDeps {
  store: Store;
  adminToken: string;
  notifyDelayMs: number;
  now: () => number;
  /** Where the admin API's changes enter (src/changes/source.ts). */
  sink: ChangeSink;
  /** Wakes the delivery worker after changes were applied. */
  onChanges: (result: ApplyChangesResult) => void;
}

export const isoTime = z.string().refine((s) => parseIsoTime(s) !== null, { message: 'must be an ISO 8601 time such as 2026-01-31T12:00:00Z' });

export const touchBody = z.object({ modified: isoTime.optional() }).strict();
export const changesBody = z.object({
  changes: z.array(z.object({ orcid: z.string(), modified: isoTime }).strict()).min(1).max(MAX_BULK_CHANGES),
}).strict();

/** A failed zod parse as ORCID's 9052, naming each bad field. */
export function invalid(err: z.ZodError): OrcidApiError {
  const detail = err.issues.map((i) => `${i.path.length ? i.path.join('.') : 'body'}: ${i.message}`).slice(0, 20).join('; ');
  return new OrcidApiError(9052, detail);
}

export function validOrcid(orcid: string, where: string): void {
  const c = checkOrcid(orcid);
  if (!c.ok) throw new OrcidApiError(9001, `${where}: ${c.reason}`);
}

/**
 * Every bad item of a bulk change (its shape, its time, its iD and check character), not only the
 * first, so a registry can fix its list in one go: ORCID's 9001 when only iDs are wrong, else 9052.
 */
export function invalidChanges(body: unknown, err: z.ZodError | null): OrcidApiError | null {
  const problems = (err?.issues ?? []).map((i) => `${i.path.length ? i.path.join('.') : 'body'}: ${i.message}`);
  const items = (body as { changes?: unknown } | null)?.changes;
  let badIds = 0;
  if (Array.isArray(items)) {
    items.forEach((c: unknown, i) => {
      const orcid = (c as { orcid?: unknown } | null)?.orcid;
      if (typeof orcid !== 'string') return;
      const check = checkOrcid(orcid);
      if (!check.ok) {
        problems.push(`changes.${i}.orcid: ${check.reason}`);
        badIds++;
      }
    });
  }
  if (!problems.length) return null;
  // Zod reports by field in item order within its own kinds: sort by item for a readable list.
  const item = (p: string) => Number(/^changes\.(\d+)\./.exec(p)?.[1] ?? -1);
  problems.sort((a, b) => item(a) - item(b));
  const named = problems.slice(0, MAX_NAMED_PROBLEMS).join('; ');
  const more = problems.length > MAX_NAMED_PROBLEMS ? `; and ${problems.length - MAX_NAMED_PROBLEMS} more` : '';
  const detail = `${problems.length} problem${problems.length > 1 ? 's' : ''}, nothing was changed: ${named}${more}`;
  return new OrcidApiError(badIds === problems.length ? 9001 : 9052, detail);
}

export const changesResult = z.object({ created: z.number().int(), changed: z.number().int(), ignored: z.number().int(), webhooksNotified: z.number().int() });
export const ADMIN_ERRORS = {
  400: { description: 'Invalid input (9001 iD, 9052 body); nothing is changed', schema: orcidErrorSchema },
  401: { description: 'Missing or wrong admin token', schema: oauthErrorSchema },
};

/** The onRequest hook of every admin API scope: the admin token, compared in constant time. */
export function adminAuth(adminToken: string) {
  return async function adminAuth(req: FastifyRequest): Promise<void> {
    requireAdmin(req, adminToken);
  };
}

export function adminRoutes(app: FastifyInstance, deps: AdminRouteDeps): void {
  describeOperation({
    method: 'put', path: '/admin/api/records/{orcid}', tag: 'Admin', security: 'admin', pathParams: { orcid: 'ORCID iD' },
    summary: 'Create a record, or mark it modified (now, or at the given time); its webhooks are notified',
    body: touchBody,
    responses: {
      200: { description: 'Marked modified', schema: z.object({ orcid: z.string(), modified: z.string(), created: z.boolean(), changed: z.boolean(), ignored: z.boolean(), webhooksNotified: z.number().int() }) },
      201: { description: 'Created' },
      ...ADMIN_ERRORS,
    },
  });
  describeOperation({
    method: 'post', path: '/admin/api/changes', tag: 'Admin', security: 'admin',
    summary: `Apply up to ${MAX_BULK_CHANGES} record changes (a registry's change list); older ones are ignored`,
    body: changesBody,
    responses: { 202: { description: 'Applied; counts', schema: changesResult }, ...ADMIN_ERRORS },
  });

  app.register(async function adminApi(admin) {
    admin.addHook('onRequest', adminAuth(deps.adminToken));

    admin.put('/records/:orcid', async function touchRecord(req, reply) {
      const { orcid } = req.params as { orcid: string };
      validOrcid(orcid, 'orcid');
      const parsed = touchBody.safeParse(req.body ?? {});
      if (!parsed.success) throw invalid(parsed.error);
      const now = deps.now();
      const modified = parsed.data.modified;
      const change: RecordChange = modified ? { orcid, modifiedAt: parseIsoTime(modified)! } : { orcid, modifiedAt: now, touch: true };
      const result = await deps.sink.apply('admin', [change], { create: true });
      deps.onChanges(result);
      const record = await deps.store.getRecord(orcid);
      return reply.code(result.created ? 201 : 200).send({
        orcid,
        modified: new Date(record!.modifiedAt).toISOString(),
        created: result.created === 1,
        changed: result.changed === 1,
        ignored: result.ignored === 1,
        webhooksNotified: result.webhooksNotified,
      });
    });

    admin.post('/changes', async function bulkChanges(req, reply) {
      const parsed = changesBody.safeParse(req.body);
      const refused = invalidChanges(req.body, parsed.success ? null : parsed.error);
      if (refused) throw refused;
      if (!parsed.success) throw invalid(parsed.error);
      const changes = parsed.data.changes.map((c) => ({ orcid: c.orcid, modifiedAt: parseIsoTime(c.modified)! }));
      const result = await deps.sink.apply('admin', changes, { create: true });
      deps.onChanges(result);
      return reply.code(202).send(result);
    });
  }, { prefix: '/admin/api' });
}
