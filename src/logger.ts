import pino, { type Logger } from 'pino';

/**
 * Callback URLs may carry the integrator's own secrets: log the path up to the callback only (and
 * nothing after it: an unencoded callback's own query would follow).
 */
export function redactUrl(url: string): string {
  // Bearer tokens may come in the access_token query parameter, as on ORCID.
  return url.replace(/(\/webhook\/).+$/, '$1[callback]').replace(/([?&]access_token=)[^&#]*/gi, '$1[token]');
}

/**
 * format: json writes one JSON object a line (for log collectors); pretty writes readable lines
 * through pino's pretty transport (pino-pretty, on a worker thread); auto picks pretty when stdout
 * is a terminal. A given destination always gets JSON.
 */
export function createLogger(level: string, destination?: pino.DestinationStream, format: 'auto' | 'pretty' | 'json' = 'json'): Logger {
  const pretty = !destination && level !== 'silent' && (format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true));
  return pino({
    ...(pretty && {
      transport: { target: 'pino-pretty', options: { colorize: process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } },
    }),
    level,
    base: { service: 'orcid-webhooks' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.secret', '*.token', '*.adminToken', '*.signingSecret'], censor: '[redacted]' },
    serializers: {
      req: (req: { method: string; url: string; ip?: string; socket?: { remoteAddress?: string } }) => ({
        method: req.method,
        url: redactUrl(req.url),
        remoteAddress: req.ip ?? req.socket?.remoteAddress,
      }),
    },
  }, destination);
}
