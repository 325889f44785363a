import { OrcidApiError } from '../domain/errors.ts';
import { type OrcidPublicApi, UpstreamError } from './orcid-public-api.ts';

/*
 * `--records upstream`: a PUT for an iD the service has never seen asks the upstream whether the
 * record exists. A yes is remembered by the record the registration creates; a no is remembered
 * here for a while, so repeated PUTs for a wrong iD do not each cost an upstream request.
 */

const MISSING_TTL_MS = 10 * 60_000;
const MISSING_MAX = 100_000;

export type RecordExists = (orcid: string) => Promise<boolean>;

export function upstreamRecordCheck(api: OrcidPublicApi, now: () => number = Date.now): RecordExists {
  const missing = new Map<string, number>();
  return async function recordExistsUpstream(orcid) {
    const until = missing.get(orcid);
    if (until !== undefined && until > now()) return false;
    let exists: boolean;
    try {
      exists = await api.recordExists(orcid, AbortSignal.timeout(10_000));
    } catch (e) {
      const wait = e instanceof UpstreamError ? Math.max(1, Math.ceil(e.retryAfterMs / 1000)) : 5;
      // The API stays up: only registrations of iDs it has never seen wait for the upstream.
      throw new OrcidApiError(9058, `Could not ask the upstream registry whether ${orcid} exists (${(e as Error).message}); retry later`, { headers: { 'retry-after': String(Math.min(wait, 60)) } });
    }
    if (!exists) {
      if (missing.size >= MISSING_MAX) missing.delete(missing.keys().next().value!);
      missing.set(orcid, now() + MISSING_TTL_MS);
    }
    return exists;
  };
}
