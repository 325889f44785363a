import { OrcidApiError } from '../domain/errors.ts';
import { type OrcidPublicApi, UpstreamError } from './orcid-public-api.ts';

/*
 * `--records upstream`: a PUT for an iD the service has never seen asks the upstream whether the
 * record exists. A yes is remembered by the record the registration creates; a no is remembered
 * here for a while, so repeated PUTs for a wrong iD do not each cost an upstream request.
 */

const MISSING_TTL_MS = 10 * 60_000;
/** How long a registration waits for the upstream's answer, retries included. */
const CHECK_TIMEOUT_MS = 10_000;
const MISSING_MAX = 100_000;
/**
 * Distinct iDs asked of the upstream at once. The look-ups share the poller's rate limiter (served
 * in order): a client sending PUTs for new iDs faster than the rate would otherwise queue ten
 * seconds of look-ups ahead of every poller request, and so hold back every client's changes.
 * Beyond this, a PUT for a new iD is 503 / 9058 with Retry-After at once.
 */
export const MAX_LOOKUPS_IN_FLIGHT = 4;

export type RecordExists = (orcid: string) => Promise<boolean>;

export function upstreamRecordCheck(api: OrcidPublicApi, now: () => number = Date.now): RecordExists {
  const missing = new Map<string, number>();
  // One request per iD however many PUTs ask about it meanwhile.
  const asking = new Map<string, Promise<boolean>>();
  return function recordExistsUpstream(orcid) {
    const until = missing.get(orcid);
    if (until !== undefined && until > now()) return Promise.resolve(false);
    const pending = asking.get(orcid);
    if (pending) return pending;
    if (asking.size >= MAX_LOOKUPS_IN_FLIGHT) {
      return Promise.reject(new OrcidApiError(9058, `The upstream registry is being asked about ${asking.size} other iDs already; retry ${orcid} shortly`, { headers: { 'retry-after': '1' } }));
    }
    const lookup = ask(orcid).finally(() => asking.delete(orcid));
    asking.set(orcid, lookup);
    return lookup;
  };

  async function ask(orcid: string): Promise<boolean> {
    let exists: boolean;
    const deadline = Date.now() + CHECK_TIMEOUT_MS;
    try {
      // A retry the deadline would cut short is not waited for: the client hears the upstream's
      // own Retry-After at once instead of after the whole timeout.
      exists = await api.recordExists(orcid, AbortSignal.timeout(CHECK_TIMEOUT_MS), (failure) => {
        if (Date.now() + failure.retryAfterMs >= deadline) throw failure;
      });
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
  }
}
