import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { OrcidApiError } from '../domain/errors.ts';

/** Timeouts and caps of incoming connections (issue 11: slow bodies). */
export interface HttpLimits {
  /** The whole request (headers and body) must arrive within this; a slower one gets 408 and is closed. */
  requestTimeoutMs: number;
  /** The headers must arrive within this (at most requestTimeoutMs). */
  headersTimeoutMs: number;
  /** Open connections from one remote address; further ones are refused (0: unlimited). */
  maxConnectionsPerAddress: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = { requestTimeoutMs: 30_000, headersTimeoutMs: 10_000, maxConnectionsPerAddress: 256 };

/** Options of Node's http server that enforce the limits (fastify's `http`, `requestTimeout`, `connectionTimeout`). */
export function httpServerOptions(limits: HttpLimits) {
  const headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  return {
    requestTimeout: limits.requestTimeoutMs,
    // A socket silent this long (no request, no byte of one) is closed; keep-alive idles end sooner.
    connectionTimeout: limits.requestTimeoutMs * 2,
    http: {
      // A request without Host is refused by the app, in ORCID's format (Node's own 400 had no body).
      requireHostHeader: false,
      headersTimeout,
      requestTimeout: limits.requestTimeoutMs,
      // Node checks the two timeouts on this interval (default 30 s): check often enough that a
      // timeout ends within a quarter of itself, and at least every second.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4))),
    },
  };
}

const REFUSED_BODY = JSON.stringify({ error: 'too_many_connections', error_description: 'Too many open connections from this address: reuse a keep-alive connection or wait' });
const REFUSED = `HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: ${Buffer.byteLength(REFUSED_BODY)}\r\n\r\n${REFUSED_BODY}`;

/** Refuses a connection beyond `max` open ones from the same remote address. */
export function limitConnectionsPerAddress(server: Server, max: number): void {
  if (max <= 0) return;
  const open = new Map<string, number>();
  server.on('connection', function countConnection(socket: Socket) {
    const addr = socket.remoteAddress ?? '';
    const n = (open.get(addr) ?? 0) + 1;
    if (n > max) {
      socket.end(REFUSED);
      socket.destroySoon();
      return;
    }
    open.set(addr, n);
    socket.once('close', () => {
      const left = (open.get(addr) ?? 1) - 1;
      if (left <= 0) open.delete(addr);
      else open.set(addr, left);
    });
  });
}

/** Node's parser errors and what they mean to the client (fastify's defaults answer in its own JSON). */
const CLIENT_ERRORS: Record<string, [status: number, reason: string, detail: string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout', 'The request did not arrive in time'],
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large', 'The request\'s headers are too large'],
  HPE_INVALID_METHOD: [400, 'Bad Request', 'The request method is not HTTP'],
};

/**
 * Answers a request Node's HTTP parser refused (no route ever saw it): a malformed request line or
 * header, an unknown method, headers too large, a request too slow. The body is an ORCID error in
 * JSON (no Accept was parsed to choose XML), and the connection closes: the parser cannot continue.
 */
export function clientErrorResponse(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, reason, detail] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'Bad Request', `The request is not valid HTTP (${err.code ?? err.message})`];
  if (socket.writable) socket.write(rawErrorResponse(reason, new OrcidApiError(9052, detail, { status })));
  socket.destroy(err);
}

/** A whole HTTP response carrying an ORCID error in JSON, for a socket no route will answer. */
function rawErrorResponse(reason: string, err: OrcidApiError, headers = ''): string {
  const body = JSON.stringify(err.body());
  return `HTTP/1.1 ${err.status} ${reason}\r\nConnection: close\r\n${headers}Content-Type: application/json;charset=UTF-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/** CONNECT (a proxy's tunnel) is no method of this service: 405 (Node closed the socket without a word). */
export function refuseConnect(server: Server): void {
  server.on('connect', function refuseTunnel(_req, socket: Socket) {
    socket.on('error', () => undefined);
    socket.end(rawErrorResponse('Method Not Allowed', new OrcidApiError(9054, 'CONNECT is not a method of this service: it is no proxy', { status: 405 })));
  });
}
