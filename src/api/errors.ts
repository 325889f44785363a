import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { OAuthError, OrcidApiError, type OrcidErrorBody } from '../domain/errors.ts';

const XML_TYPES = /application\/(vnd\.orcid\+)?xml/i;

/** XML when the client asks for application/xml or application/vnd.orcid+xml ahead of JSON. */
export function wantsXml(req: FastifyRequest): boolean {
  const accept = req.headers.accept ?? '';
  const xml = accept.search(XML_TYPES);
  if (xml < 0) return false;
  const json = accept.search(/application\/(vnd\.orcid\+)?json/i);
  return json < 0 || xml < json;
}

const escapeXml = (s: string) => s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);

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

export function sendOrcidError(req: FastifyRequest, reply: FastifyReply, err: OrcidApiError): FastifyReply {
  reply.code(err.status).headers(err.headers);
  if (wantsXml(req)) return reply.type('application/xml;charset=UTF-8').send(errorXml(err.body()));
  return reply.type('application/json;charset=UTF-8').send(err.body());
}

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND',
  // PostgreSQL: connection exceptions (08xxx), shutdown (57P01-03), too many connections.
  '08000', '08001', '08003', '08004', '08006', '57P01', '57P02', '57P03', '53300',
  'SQLITE_BUSY', 'SQLITE_LOCKED',
]);

/** A database that is down, unreachable or busy: the request may succeed if retried. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e.code === 'string' && UNAVAILABLE_CODES.has(e.code)) return true;
  return typeof e.message === 'string'
    && /Connection terminated|timeout exceeded when trying to connect|Query read timeout|connection error|database is locked/i.test(e.message);
}

/** The one error handler: every failure leaves in ORCID's format (or OAuth's), never as a bare 500. */
export function errorHandler(err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (err instanceof OAuthError) {
    return reply.code(err.status).headers(err.headers).type('application/json;charset=UTF-8').send(err.body());
  }
  if (err instanceof OrcidApiError) return sendOrcidError(req, reply, err);
  const fe = err as FastifyError;
  // PostgreSQL's class 22 (data exception: a NUL character, a number out of range...) is bad input
  // that reached the database, not a server fault.
  if (typeof fe.code === 'string' && /^22[0-9A-Z]{3}$/.test(fe.code) && 'severity' in err) {
    return sendOrcidError(req, reply, new OrcidApiError(9052, `A value in the request is not acceptable: ${fe.message}`));
  }
  if (fe.statusCode === 415 || fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return sendOrcidError(req, reply, new OrcidApiError(9055, fe.message));
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
