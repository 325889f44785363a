import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { OAuthError, OrcidApiError, jaxRsError, type OrcidErrorBody } from '../domain/errors.ts';
import { isDatabaseUnavailable } from '../store/database-errors.ts';

/** The media types ORCID's webhook endpoints produce and consume (WebhooksService, OrcidApiConstants). */
export const ORCID_XML_TYPES = ['application/vnd.orcid+xml', 'application/orcid+xml', 'application/xml'] as const;
export const ORCID_JSON_TYPES = ['application/vnd.orcid+json', 'application/orcid+json', 'application/json'] as const;
const ORCID_TYPES: readonly string[] = [...ORCID_XML_TYPES, ...ORCID_JSON_TYPES];
// ORCID's AcceptFilter list, with the qs parameters it carries in OrcidApiConstants.
const ACCEPT_FILTER_TYPES = ['application/vnd.orcid+xml; qs=0.5', 'application/orcid+xml; qs=0.3', 'application/xml',
  'application/vnd.orcid+json; qs=0.4', 'application/orcid+json; qs=0.2', 'application/json',
  'text/turtle', 'text/n3', 'application/n-triples', 'application/ld+json', 'application/rdf+xml'];

/** The methods of the webhook path, as Jersey lists them in Allow (its OPTIONS, and its 405). */
export const ORCID_ALLOW = 'DELETE, GET, HEAD, OPTIONS, POST, PUT';

/** ORCID's own endpoints (WebhooksService: PUT and DELETE, and what Jersey answers on that path); GET and POST there are ours. */
export function isOrcidEndpoint(req: FastifyRequest): boolean {
  return !['GET', 'HEAD', 'POST'].includes(req.method) && /^\/[^/?]*\/webhook(\/|\?|$)/.test(req.url ?? '');
}

/**
 * The Accept ORCID's AcceptFilter hands on: none or exactly `*\/*` becomes the request's
 * Content-Type when that is one of its types (its test: the Content-Type is a substring of one),
 * otherwise application/vnd.orcid+xml.
 */
function effectiveAccept(req: FastifyRequest): string {
  const accept = req.headers.accept;
  if (accept !== undefined && accept !== '*/*') return accept;
  const contentType = req.headers['content-type'];
  if (contentType !== undefined && ACCEPT_FILTER_TYPES.some((t) => t.includes(contentType))) return contentType;
  return 'application/vnd.orcid+xml';
}

/**
 * The media type an error on ORCID's endpoints is written in: the acceptable type with the highest
 * q, a wildcard meaning ORCID's XML; null when none of ORCID's types is acceptable (406).
 */
export function orcidErrorType(req: FastifyRequest): string | null {
  const ranges = effectiveAccept(req).split(',').map((part, i) => {
    const [type = '', ...params] = part.split(';').map((x) => x.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    return { type, q: q ? Number(q.slice(2)) : 1, i };
  }).filter((r) => r.type !== '' && r.q > 0).sort((a, b) => b.q - a.q || a.i - b.i);
  for (const r of ranges) {
    if (ORCID_TYPES.includes(r.type)) return r.type;
    if (r.type === '*/*' || r.type === 'application/*') return 'application/vnd.orcid+xml';
  }
  return null;
}

/** Our endpoints: XML when the client asks for application/xml or application/vnd.orcid+xml ahead of JSON; JSON otherwise. */
export function wantsXml(req: FastifyRequest): boolean {
  const accept = req.headers.accept ?? '';
  const xml = accept.search(/application\/(vnd\.orcid\+)?xml/i);
  if (xml < 0) return false;
  const json = accept.search(/application\/(vnd\.orcid\+)?json/i);
  return json < 0 || xml < json;
}

/**
 * Element text as ORCID's JAXB writes it (MinimumEscapeHandler, UTF8XmlOutput): only &, <, > and CR
 * are escaped; quotes stay. Characters XML 1.0 cannot hold at all, not even as a reference (C0
 * controls but tab, LF and CR; U+FFFE, U+FFFF; a lone surrogate), which JAXB would write raw into
 * a document no parser reads, become U+FFFD: a message quoting a callback such as
 * `https://x.org/%01` stays a readable error.
 */
// eslint-disable-next-line no-control-regex -- control characters are exactly what XML 1.0 cannot hold
const NOT_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const escapeXml = (s: string) => s.replace(/[<>&\r]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '\r': '&#xD;' })[c]!).replace(NOT_XML, '\uFFFD');

export function errorXml(b: OrcidErrorBody): string {
  return `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<error xmlns="http://www.orcid.org/ns/error">
    <response-code>${b['response-code']}</response-code>
    <developer-message>${escapeXml(b['developer-message'])}</developer-message>
    <user-message>${escapeXml(b['user-message'])}</user-message>
    <error-code>${b['error-code']}</error-code>
    <more-info>${escapeXml(b['more-info'])}</more-info>
</error>
`;
}

/**
 * Writes an ORCID-format error. On ORCID's endpoints in the media type ORCID's negotiation picks
 * (XML by default); when nothing ORCID writes is acceptable, ORCID's XML anyway, as the body of a
 * 406 must be in something. Our endpoints answer JSON unless XML is asked for.
 */
export function sendOrcidError(req: FastifyRequest, reply: FastifyReply, err: OrcidApiError): FastifyReply {
  reply.code(err.status).headers(err.headers);
  if (isOrcidEndpoint(req)) {
    const type = orcidErrorType(req) ?? 'application/vnd.orcid+xml';
    // A Buffer, so the media type goes out exactly as negotiated (no charset added).
    const text = type.endsWith('xml') ? errorXml(err.body()) : JSON.stringify(err.body());
    return reply.type(type).send(Buffer.from(text, 'utf8'));
  }
  if (wantsXml(req)) return reply.type('application/xml;charset=UTF-8').send(errorXml(err.body()));
  return reply.type('application/json;charset=UTF-8').send(err.body());
}


/** The one error handler: every failure leaves in ORCID's format (or OAuth's), never as a bare 500. */
export function errorHandler(err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  // ORCID writes these itself (APIAuthenticationEntryPoint, the token endpoint): always JSON.
  if (err instanceof OAuthError) {
    return reply.code(err.status).headers(err.headers).type('application/json;charset=UTF-8').send(err.body());
  }
  const fe = err as FastifyError;
  // The token endpoint speaks OAuth: a body it cannot parse or take is an invalid_request there.
  const status = err instanceof OrcidApiError ? err.status : fe.statusCode;
  if (status !== undefined && status >= 400 && status < 500 && /^\/oauth\/token\/?(\?|$)/.test(req.url)) {
    const detail = err instanceof OrcidApiError ? (err.detail ?? err.message) : fe.message;
    return errorHandler(new OAuthError(status, 'invalid_request', detail, err instanceof OrcidApiError ? err.headers : {}), req, reply);
  }
  if (err instanceof OrcidApiError) return sendOrcidError(req, reply, err);
  // PostgreSQL's class 22 (data exception: a NUL character, a number out of range...) is bad input
  // that reached the database, not a server fault.
  if (typeof fe.code === 'string' && /^22[0-9A-Z]{3}$/.test(fe.code) && 'severity' in err) {
    return sendOrcidError(req, reply, new OrcidApiError(9052, `A value in the request is not acceptable: ${fe.message}`));
  }
  if (fe.statusCode === 415 || fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return sendOrcidError(req, reply, isOrcidEndpoint(req) ? jaxRsError(415) : new OrcidApiError(9055, fe.message));
  }
  if (fe.statusCode === 413) return sendOrcidError(req, reply, new OrcidApiError(9052, `The request body is too large: ${fe.message}`, { status: 413 }));
  if (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500) {
    return sendOrcidError(req, reply, new OrcidApiError(9052, fe.message, { status: fe.statusCode }));
  }
  if (isDatabaseUnavailable(err)) {
    req.log.warn({ err }, 'database unavailable');
    return sendOrcidError(req, reply, new OrcidApiError(9057, 'The database did not answer. Retry shortly: registrations, deletions and record changes are safe to repeat.', { headers: { 'retry-after': '5' } }));
  }
  req.log.error({ err }, 'unhandled error');
  return sendOrcidError(req, reply, new OrcidApiError(9000, 'An unexpected error occurred; it has been logged.'));
}
