import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { OrcidApiError } from '../domain/errors.ts';
import { checkOrcid } from '../domain/orcid-id.ts';
import { PUBLIC_ID_PATTERN } from '../domain/public-id.ts';
import { parseIsoTime } from '../domain/time.ts';
import type { Store } from '../store/types.ts';
import { authenticate, requireWebhookScope, type Caller } from './auth.ts';

/**
 * What every route module shares: request parsing, the caller of the ORCID-style endpoints, time
 * formatting and the common refusals. Route modules import this, never each other.
 */

/** Milliseconds since the epoch as ISO 8601 (null stays null). */
export function iso(t: number): string;
export function iso(t: number | null): string | null;
export function iso(t: number | null): string | null {
  return t === null ? null : new Date(t).toISOString();
}

/** One zod issue as `field: message`; an issue of the whole value names `where` (body, query, a path parameter). */
export const issueText = (i: z.core.$ZodIssue, where: string): string => `${i.path.length ? i.path.join('.') : where}: ${i.message}`;

/** A failed zod parse as ORCID's 9052, naming each bad field. */
export function invalid(err: z.ZodError, where = 'body'): OrcidApiError {
  return new OrcidApiError(9052, err.issues.map((i) => issueText(i, where)).slice(0, 20).join('; '));
}

/** The value as the schema reads it, or ORCID's 9052 naming each bad field (`where`: what the value is, for issues of the whole of it). */
export function parse<S extends z.ZodType>(schema: S, value: unknown, where = 'body'): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw invalid(r.error, where);
  return r.data;
}

/** Query parameters sent empty (`?state=&cursor=`) mean "not given". */
export function query(q: unknown): Record<string, unknown> {
  return Object.fromEntries(Object.entries((q ?? {}) as Record<string, unknown>).filter(([, v]) => v !== ''));
}

/**
 * A list's query string as the schema reads it (empty parameters are not given); an `orcid` filter
 * is checked as an iD (400 / 9001).
 */
export function parseQuery<S extends z.ZodType<{ orcid?: string | undefined }>>(schema: S, q: unknown): z.output<S> {
  const parsed = parse(schema, query(q), 'query');
  if (parsed.orcid !== undefined) validOrcid(parsed.orcid, 'orcid');
  return parsed;
}

/**
 * One page of a list read with one row more than the page holds (`limit + 1`): the page, and the
 * cursor of the next one (the page's last row), null when this is the last page.
 */
export function pageOf<T>(rows: T[], limit: number, cursorOf: (last: T) => string): { page: T[]; next: string | null } {
  const page = rows.slice(0, limit);
  return { page, next: rows.length > limit ? cursorOf(page[page.length - 1]!) : null };
}

/** No body, or an empty one, counts as `{}`. */
export function body(b: unknown): unknown {
  return b === undefined || b === null || b === '' ? {} : b;
}

/** An ORCID iD given as a parameter: 400 / 9001 naming where it was, when its format or check character is wrong. */
export function validOrcid(orcid: string, where: string): void {
  const c = checkOrcid(orcid);
  if (!c.ok) throw new OrcidApiError(9001, `${where}: ${c.reason}`);
}

export const isoTime = z.string().refine((s) => parseIsoTime(s) !== null, { message: 'must be an ISO 8601 time such as 2026-01-31T12:00:00Z' });

/** A page size given as a query parameter (query parameters are text). */
export function pageLimit(max: number) {
  return z.string().regex(/^\d+$/, 'must be a whole number').transform(Number).pipe(z.number().int().min(1).max(max));
}

/** A webhook's public id in a path. */
export const webhookIdParam = z.string().regex(PUBLIC_ID_PATTERN, 'must be a webhook id: wh_ and 32 hexadecimal digits');

/** The admin API's answer for a webhook id that names nothing. */
export const noWebhook = (id: string) => new OrcidApiError(9028, `No webhook with id ${id}: it may have been deleted`);

export interface CallerDeps {
  store: Store;
  now: () => number;
  /** Runs before the request is handled (rate limiting): may throw an OrcidApiError. */
  beforeHandle?: (caller: Caller) => void;
}

/**
 * The client calling an ORCID-style endpoint: its token, then `afterToken` (ORCID's route and
 * media-type checks come between the token and the scope), then the /webhook scope and the rate limit.
 */
export async function caller(deps: CallerDeps, req: FastifyRequest, afterToken?: () => void): Promise<Caller> {
  const c = await authenticate(deps.store, req, deps.now());
  afterToken?.();
  requireWebhookScope(c);
  deps.beforeHandle?.(c);
  return c;
}

/**
 * The callback arrives URL-encoded in one path segment, `%2F` included: the raw text after
 * `/webhook/`, to be decoded exactly once, as ORCID does.
 */
export function rawCallbackSegment(rawUrl: string): string {
  const path = rawUrl.split('?')[0]!;
  const i = path.indexOf('/webhook/');
  return i < 0 ? '' : path.slice(i + '/webhook/'.length);
}

/** The path of ORCID's webhook endpoints (and of our GET and POST there): the iD, and the callback in one segment. */
export const webhookPathParams = z.object({
  orcid: z.string().describe('ORCID iD, e.g. 0000-0002-7465-2162 (format and MOD 11-2 check character are validated, except with --compat orcid)'),
  callback: z.string().describe('The callback URL, URL-encoded into this one segment (slashes as %2F)'),
});
