import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { OrcidApiError } from '../domain/errors.ts';
import { checkOrcid } from '../domain/orcid-id.ts';
import { parseIsoTime } from '../domain/time.ts';
import type { ChangeSink } from '../changes/source.ts';
import type { ApplyChangesResult, RecordChange, Store } from '../store/types.ts';
import { invalid, isoTime, issueText, validOrcid } from './kit.ts';
import { ADMIN, ADMIN_ERRORS, answer } from './openapi.ts';

export const MAX_BULK_CHANGES = 10_000;
/** How many bad items a refused bulk change names (the total is always given). */
export const MAX_NAMED_PROBLEMS = 50;

export interface AdminRecordRouteDeps {
  store: Store;
  now: () => number;
  /** Where the admin API's changes enter (src/changes/source.ts). */
  sink: ChangeSink;
  /** Wakes the delivery worker after changes were applied. */
  onChanges: (result: ApplyChangesResult) => void;
}

const touchBody = z.object({ modified: isoTime.optional() }).strict();
const changesBody = z.object({
  changes: z.array(z.object({ orcid: z.string(), modified: isoTime }).strict()).min(1).max(MAX_BULK_CHANGES),
}).strict();

/**
 * Every bad item of a bulk change (its shape, its time, its iD and check character), not only the
 * first, so a registry can fix its list in one go: ORCID's 9001 when only iDs are wrong, else 9052.
 */
function invalidChanges(body: unknown, err: z.ZodError | null): OrcidApiError | null {
  const problems = (err?.issues ?? []).map((i) => issueText(i, 'body'));
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

const changesResult = z.object({ created: z.number().int(), changed: z.number().int(), ignored: z.number().int(), webhooksNotified: z.number().int() });
const touchResult = z.object({ orcid: z.string(), modified: z.string(), created: z.boolean(), changed: z.boolean(), ignored: z.boolean(), webhooksNotified: z.number().int() });

/** Records and their changes, under the admin API's prefix and auth hook (admin-api.ts). */
export function adminRecordRoutes(admin: FastifyInstance, deps: AdminRecordRouteDeps): void {
  admin.put('/records/:orcid', {
    schema: {
      ...ADMIN, operationId: 'touchRecord', params: z.object({ orcid: z.string().describe('ORCID iD') }), body: touchBody,
      summary: 'Create a record, or mark it modified (now, or at the given time); its webhooks are notified',
      response: { 200: answer('Marked modified', touchResult), 201: answer('Created', touchResult), ...ADMIN_ERRORS },
    },
  }, async function touchRecord(req, reply) {
    const { orcid } = req.params as { orcid: string };
    validOrcid(orcid, 'orcid');
    const parsed = touchBody.safeParse(req.body ?? {});
    if (!parsed.success) throw invalid(parsed.error);
    const now = deps.now();
    const modified = parsed.data.modified;
    const change: RecordChange = modified ? { orcid, modifiedAt: parseIsoTime(modified)! } : { orcid, modifiedAt: now, touch: true };
    const result = await deps.sink.apply('admin', [change], { create: true, perChange: true });
    deps.onChanges(result);
    // The write says what the record's modified time is now: no read after it (issue 12, cause 6).
    return reply.code(result.created ? 201 : 200).send({
      orcid,
      modified: new Date(result.changes![0]!.modifiedAt!).toISOString(),
      created: result.created === 1,
      changed: result.changed === 1,
      ignored: result.ignored === 1,
      webhooksNotified: result.webhooksNotified,
    });
  });

  admin.post('/changes', {
    schema: {
      ...ADMIN, operationId: 'applyChanges', body: changesBody,
      summary: `Apply up to ${MAX_BULK_CHANGES} record changes (a registry's change list); older ones are ignored`,
      response: { 202: answer('Applied; counts', changesResult), ...ADMIN_ERRORS },
    },
  }, async function bulkChanges(req, reply) {
    const parsed = changesBody.safeParse(req.body);
    const refused = invalidChanges(req.body, parsed.success ? null : parsed.error);
    if (refused) throw refused;
    if (!parsed.success) throw invalid(parsed.error);
    const changes = parsed.data.changes.map((c) => ({ orcid: c.orcid, modifiedAt: parseIsoTime(c.modified)! }));
    const result = await deps.sink.apply('admin', changes, { create: true });
    deps.onChanges(result);
    return reply.code(202).send(result);
  });
}
