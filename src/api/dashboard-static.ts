import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OrcidApiError } from '../domain/errors.ts';

/**
 * Serves the dashboard (src/dashboard: plain HTML, CSS and ES modules; uPlot from its npm package) at /admin.
 * The files are read once at start-up and served from memory with an ETag: a handful of small
 * files, no build step, nothing fetched from elsewhere (works offline). The admin token never
 * reaches these routes: the page asks for it and calls /admin/api with it.
 *
 * Why not @fastify/static: it reads each file from disk per request and derives ETags from the
 * file's size and time; for a dozen small files served from memory with content hashes it would
 * add dependencies (send, glob...) and still need this CSP, the index routes and the uPlot mapping.
 */
export const DASHBOARD_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'dashboard');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** Only same-origin assets and API calls; uPlot sizes its elements through the CSSOM, which CSP allows. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Files of npm packages the pages import, by the asset path they use: uPlot comes from `uplot`. */
const PACKAGE_ASSETS: Record<string, string> = {
  'vendor/uplot/uPlot.esm.js': 'uplot/dist/uPlot.esm.js',
  'vendor/uplot/uPlot.min.css': 'uplot/dist/uPlot.min.css',
};

interface Asset {
  type: string;
  body: Buffer;
  etag: string;
}

function asset(path: string): Asset | null {
  const type = TYPES[extname(path)];
  if (!type) return null;
  const body = readFileSync(path);
  return { type, body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else {
        const a = asset(path);
        if (a) assets.set(relative(dir, path).split(sep).join('/'), a);
      }
    }
  };
  walk(dir);
  const require = createRequire(import.meta.url);
  for (const [at, file] of Object.entries(PACKAGE_ASSETS)) assets.set(at, asset(require.resolve(file))!);
  return assets;
}

function send(req: FastifyRequest, reply: FastifyReply, a: Asset): FastifyReply {
  reply.header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    // Revalidate every time: cheap (304), and a new version of the service is picked up at once.
    .header('cache-control', 'no-cache')
    .header('etag', a.etag);
  if (req.headers['if-none-match'] === a.etag) return reply.code(304).send();
  return reply.type(a.type).send(a.body);
}

export function dashboardRoutes(app: FastifyInstance, opts: { dir?: string } = {}): void {
  const assets = loadAssets(opts.dir ?? DASHBOARD_DIR);
  const index = assets.get('index.html');
  if (!index) throw new Error(`dashboard: index.html missing in ${opts.dir ?? DASHBOARD_DIR}`);

  // The dashboard's page and assets: not operations of the API (hidden from /openapi.json).
  const hide = { schema: { hide: true } };
  app.get('/admin', hide, async function dashboardPage(req, reply) {
    return send(req, reply, index);
  });
  app.get('/admin/', hide, async function dashboardPageSlash(req, reply) {
    return send(req, reply, index);
  });
  app.get('/admin/assets/*', hide, async function dashboardAsset(req, reply) {
    const path = (req.params as { '*': string })['*'];
    const asset = path === 'index.html' ? undefined : assets.get(path);
    if (!asset) throw new OrcidApiError(9053, `No dashboard asset ${path}`);
    return send(req, reply, asset);
  });
}
