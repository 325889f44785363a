import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * `orcid-webhooks receive`: a tiny callback receiver for trying the service out. It answers every
 * request with one status (204 by default; 503 or 410 show retries and disabling) and prints it
 * with its headers and latency: exact with the JSON payload (from the record's change,
 * `data.modified`), otherwise from `webhook-timestamp` (whole seconds, so only roughly).
 */
export interface ReceiveOptions {
  port: number;
  host: string;
  status: number;
  json: boolean;
  out?: (line: string) => void;
}

interface ReceivedCallback {
  at: string;
  method: string;
  path: string;
  from: string | null;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  latencyMs: number | null;
  latencyFrom: 'data.modified' | 'webhook-timestamp' | null;
}

function latency(req: IncomingMessage, body: string, now: number): Pick<ReceivedCallback, 'latencyMs' | 'latencyFrom'> {
  try {
    const modified = Date.parse((JSON.parse(body) as { data?: { modified?: string } }).data?.modified ?? '');
    if (!Number.isNaN(modified)) return { latencyMs: now - modified, latencyFrom: 'data.modified' };
  } catch {
    // an empty (ORCID's) or non-JSON body
  }
  const ts = Number(req.headers['webhook-timestamp']);
  if (Number.isFinite(ts) && ts > 0) return { latencyMs: now - ts * 1000, latencyFrom: 'webhook-timestamp' };
  return { latencyMs: null, latencyFrom: null };
}

function human(c: ReceivedCallback): string {
  const lines = [`${c.at.slice(11, 23)}  ${c.method} ${c.path}  from ${c.from ?? '?'}  -> ${c.status}`];
  for (const [k, v] of Object.entries(c.headers)) lines.push(`  ${k}: ${Array.isArray(v) ? v.join(', ') : String(v)}`);
  lines.push(c.body ? `  body: ${c.body.length > 2000 ? `${c.body.slice(0, 2000)}…` : c.body}` : '  (empty body)');
  if (c.latencyFrom === 'data.modified') lines.push(`  latency: ${c.latencyMs!.toFixed(0)} ms after the record changed (data.modified)`);
  else if (c.latencyFrom === 'webhook-timestamp') lines.push(`  latency: about ${Math.max(0, c.latencyMs! / 1000).toFixed(1)} s after sending (webhook-timestamp has whole seconds; the json payload gives the exact change-to-callback time)`);
  return `${lines.join('\n')}\n`;
}

export async function receive(opts: ReceiveOptions): Promise<{ url: string; close(): Promise<void> }> {
  const out = opts.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const now = Date.now();
      res.writeHead(opts.status).end();
      const body = Buffer.concat(chunks).toString('utf8');
      const c: ReceivedCallback = {
        at: new Date(now).toISOString(), method: req.method ?? '', path: req.url ?? '', from: req.socket.remoteAddress ?? null,
        status: opts.status, headers: req.headers, body, ...latency(req, body, now),
      };
      out(opts.json ? JSON.stringify(c) : human(c));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`;
  out(opts.json ? JSON.stringify({ listening: url, status: opts.status })
    : `orcid-webhooks receive: listening on ${url}, answering ${opts.status}; stop with Ctrl-C\n`
      + `Register callbacks under ${url}/... (start the server with --allowed-targets 127.0.0.0/8: loopback is refused by default).\n`);
  return {
    url,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
