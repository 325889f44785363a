import pino, { type Logger } from 'pino';

const ORCID_SEGMENT = /^\d{4}-\d{4}-\d{4}-\d{3}[\dXx]$/;
/** First path segments of this service's own routes: their paths carry no callback. */
const OWN_ROUTES = new Set(['', 'admin', 'oauth', 'webhooks', 'dashboard', 'health', 'ready', 'metrics', 'docs', 'openapi.json', 'favicon.ico']);

/** An absolute-form request target (`http://host/path?q`) split after its authority; null for any other. */
export function absoluteForm(target: string): { origin: string; rest: string } | null {
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(target);
  return m ? { origin: m[0], rest: target.slice(m[0].length) } : null;
}

/**
 * Callback URLs may carry the integrator's own secrets, in the path segment after the iD or in a
 * query string, under any spelling of `webhook` (a near-miss path too). By rule: query values are
 * always replaced; on a path that is not one of this service's own routes, only the first segment
 * (the iD) and a plain word after it (`webhook`, `Webhook`...) are kept, everything after is
 * `[redacted]`. Under one of our own first segments, plain segments are kept up to the first that
 * is not plain (a `%`, a `:`) or that follows an iD (`/webhooks/{iD}/webhook/...`). A doubled
 * slash (`//{iD}/webhook/...`, a base URL ending in `/` joined with a path starting with one) is
 * no own route, and an absolute-form target (`http://host/{iD}/webhook/...`) keeps its origin and
 * has its path redacted alike.
 */
export function redactUrl(url: string): string {
  if (!url.startsWith('/')) {
    if (url === '*') return url;
    const absolute = absoluteForm(url);
    if (!absolute) return '[redacted]';
    const { origin, rest } = absolute;
    return `${redactUserinfo(origin)}${rest.startsWith('/') ? redactUrl(rest) : redactUrl(`/${rest}`).slice(1)}`;
  }
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : `?${url.slice(q + 1).split('&').map((kv) => `${kv.split('=')[0]!.slice(0, 40)}=[redacted]`).join('&')}`;
  const segments = path.split('/');
  // segments[0] is '' (the path starts with '/'); segments[1] is the first segment ('' for '/' and '//...').
  const first = segments[1] ?? '';
  if (OWN_ROUTES.has(first) && (first !== '' || segments.length <= 2)) {
    for (let i = 1; i < segments.length; i++) {
      if (!/^[\w.~-]{0,100}$/.test(segments[i]!) || (i > 1 && ORCID_SEGMENT.test(segments[i - 1]!))) {
        return `${segments.slice(0, i).join('/')}/[redacted]${query}`;
      }
    }
    return `${path}${query}`;
  }
  const keep = ['', ORCID_SEGMENT.test(first) || /^[\w.-]{0,40}$/.test(first) ? first : '[redacted]'];
  if (segments.length > 2 && /^[a-z]{1,20}$/i.test(segments[2]!)) keep.push(segments[2]!);
  const redacted = segments.length > keep.length;
  return `${keep.join('/')}${redacted ? '/[redacted]' : ''}${query}`;
}

/** `scheme://user:password@host` → `scheme://[redacted]@host`, up to the last `@` (a password may contain `@`). */
export function redactUserinfo(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/?#]*@/gi, '$1[redacted]@');
}

/** Fields that hold a secret wherever they appear, at the top of a log object or one level down. */
const SECRET_FIELDS = new Set(['secret', 'token', 'adminToken', 'signingSecret', 'authorization']);

/**
 * Replaces the values of SECRET_FIELDS in a log object and in the objects it holds. A formatter, not
 * pino's wildcard `redact` paths: those walk every key of every logged object on every line (they
 * were a measurable part of each request's CPU); this looks at the keys once and copies only what
 * it changes.
 */
export function redactSecretFields(obj: Record<string, unknown>): Record<string, unknown> {
  let out = obj;
  for (const key in obj) {
    const value = obj[key];
    if (SECRET_FIELDS.has(key) && value !== undefined) {
      if (out === obj) out = { ...obj };
      out[key] = '[redacted]';
    } else if (value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Error)) {
      const inner = value as Record<string, unknown>;
      let copy: Record<string, unknown> | null = null;
      for (const k in inner) {
        if (SECRET_FIELDS.has(k) && inner[k] !== undefined) {
          copy ??= { ...inner };
          copy[k] = '[redacted]';
        }
      }
      if (copy) {
        if (out === obj) out = { ...obj };
        out[key] = copy;
      }
    }
  }
  return out;
}

/**
 * Where the service's JSON lines go (stdout by default, or a file): buffered, and written
 * asynchronously once 4 KiB have gathered or every LOG_FLUSH_MS, whichever comes first. A
 * synchronous write per line took 8.5 % of a delivery run's CPU (a line per callback, a line per
 * request; issue 12); an asynchronous write per line cost more than that for lines logged one at a
 * time. What is still buffered is written synchronously when the process exits (a signal,
 * process.exit, an uncaught error): only a SIGKILL or an OS crash can lose the last lines. The
 * buffer is bounded (16 MiB): a log reader that stops reading costs lines, never a frozen service.
 */
export function logDestination(dest: number | string = 1): pino.DestinationStream {
  const stream = pino.destination({ dest, sync: false, append: true, minLength: 4096, maxLength: 16 * 1024 * 1024 });
  const flush = setInterval(() => {
    try {
      stream.flush();
    } catch {
      clearInterval(flush); // destroyed (its 'close' clears this too)
    }
  }, LOG_FLUSH_MS);
  flush.unref();
  stream.once('close', () => clearInterval(flush));
  return stream;
}
/** The longest a log line waits in the buffer. */
export const LOG_FLUSH_MS = 200;

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
    formatters: { log: redactSecretFields },
    serializers: {
      req: (req: { method: string; url: string; ip?: string; socket?: { remoteAddress?: string } }) => ({
        method: req.method,
        url: redactUrl(req.url),
        remoteAddress: req.ip ?? req.socket?.remoteAddress,
      }),
      err: (err: Error) => {
        const out = pino.stdSerializers.err(err);
        out.message = redactUserinfo(out.message);
        if (out.stack) out.stack = redactUserinfo(out.stack);
        return out;
      },
    },
    hooks: {
      // Messages may quote a database URL (a connection error): its password never reaches the log.
      // Only a string with '://' can hold userinfo: the others (every delivery line's 'delivery')
      // skip the regular expression and the copy of the arguments.
      logMethod(args, method) {
        for (let i = 0; i < args.length; i++) {
          const a: unknown = args[i];
          if (typeof a === 'string' && a.includes('://')) args[i] = redactUserinfo(a);
        }
        method.apply(this, args);
      },
    },
  }, destination ?? (pretty || level === 'silent' ? undefined : logDestination()));
}
