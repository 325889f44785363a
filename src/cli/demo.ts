import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { createApiClient } from '../ops/clients.ts';
import { startService } from '../service.ts';

const ORCID = '0000-0002-7465-2162';

interface Callback {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/**
 * A guided tour: a throw-away server, client, record and local receiver, then ORCID's own
 * registration steps as curl commands, a record change, and the callback as it arrives.
 */
export async function runDemo(out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<{ latencyMs: number; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'orcid-webhooks-demo-'));
  const callbacks: Callback[] = [];
  let onCallback: (() => void) | null = null;
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      callbacks.push({ method: req.method!, path: req.url!, headers: req.headers, body, at: performance.now() });
      res.writeHead(204).end();
      onCallback?.();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const rxPort = (receiver.address() as AddressInfo).port;

  // The receiver is on loopback, which the SSRF policy refuses by default: open it for the demo.
  const config = testConfig({ db: `sqlite:${join(dir, 'demo.db')}`, port: 0, logLevel: 'silent', allowedTargets: ['127.0.0.0/8'], adminToken: 'demo-admin-token-not-secret' });
  const svc = await startService(config, { logger: createLogger('silent') });
  try {
    const base = svc.url;
    out(`orcid-webhooks demo: a server on ${base} with a temporary database, and a callback receiver on http://127.0.0.1:${rxPort}\n`);
    const { client, secret } = await createApiClient(svc.store, { name: 'Demo premium member', premium: true });
    await svc.store.addRecords([ORCID], Date.now());
    out(`Created a premium client ${client.id} and the record ${ORCID}.\n`);

    out('1. Get a token with the /webhook scope:');
    out(`   curl -s -X POST ${base}/oauth/token -H 'Accept: application/json' \\\n     -d client_id=${client.id} -d client_secret=${secret} -d grant_type=client_credentials -d scope=/webhook`);
    const tokenRes = await fetch(`${base}/oauth/token`, {
      method: 'POST', headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: client.id, client_secret: secret, grant_type: 'client_credentials', scope: '/webhook' }),
    });
    const token = (await tokenRes.json()) as { access_token: string };
    out(`   -> ${tokenRes.status} ${JSON.stringify(token)}\n`);

    const callback = `http://127.0.0.1:${rxPort}/${ORCID}/updated`;
    const encoded = encodeURIComponent(callback);
    out('2. URL-encode the callback URL and register it:');
    out(`   ${callback}  ->  ${encoded}`);
    out(`   curl -i -X PUT ${base}/${ORCID}/webhook/${encoded} \\\n     -H 'Accept: application/json' -H 'Authorization: Bearer ${token.access_token}' -H 'Content-Length: 0'`);
    const put = await fetch(`${base}/${ORCID}/webhook/${encoded}`, { method: 'PUT', headers: { accept: 'application/json', authorization: `Bearer ${token.access_token}` } });
    out(`   -> ${put.status} ${put.statusText}, Location: ${put.headers.get('location')}\n`);
    if (put.status !== 201) throw new Error(`registration failed with ${put.status}: ${await put.text()}`);

    out('3. The record changes (the registry tells us through the admin API):');
    out(`   curl -X PUT ${base}/admin/api/records/${ORCID} -H 'Authorization: Bearer <admin token>'`);
    const arrived = new Promise<void>((resolve, reject) => {
      onCallback = resolve;
      setTimeout(() => reject(new Error('no callback within 5 s')), 5000).unref();
    });
    const t0 = performance.now();
    const touch = await fetch(`${base}/admin/api/records/${ORCID}`, { method: 'PUT', headers: { authorization: `Bearer ${config.adminToken}` } });
    out(`   -> ${touch.status} ${await touch.text()}\n`);
    await arrived;
    const cb = callbacks[0]!;
    const latencyMs = cb.at - t0;
    out(`4. The callback arrived ${latencyMs.toFixed(1)} ms after the change:`);
    out(`   ${cb.method} ${cb.path}`);
    for (const h of ['content-length', 'user-agent', 'webhook-id', 'webhook-timestamp']) out(`   ${h}: ${String(cb.headers[h])}`);
    out(`   (empty body, as ORCID sends: the receiver now fetches the record to see what changed)\n`);
    out(`Done. Nothing was left behind. Start your own server with "npx orcid-webhooks serve" (see README.md).`);
    return { latencyMs, dir };
  } finally {
    await svc.close();
    receiver.closeAllConnections();
    await new Promise<void>((r) => receiver.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
}
