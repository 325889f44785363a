// Writes the OpenAPI document the server serves at /openapi.json, for `npm run lint:openapi`:
// node --import tsx scripts/openapi.ts <file>. The app is built without listening, on an
// in-memory database, without a delivery worker.
import { writeFileSync } from 'node:fs';
import { testConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { startService } from '../src/service.ts';

const out = process.argv[2];
if (!out) throw new Error('usage: node --import tsx scripts/openapi.ts <output file>');
const config = testConfig({ db: 'sqlite::memory:', adminToken: 'openapi-document-only', logLevel: 'silent', role: 'api' });
const svc = await startService(config, { logger: createLogger('silent'), listen: false });
try {
  await svc.app.ready();
  writeFileSync(out, `${JSON.stringify(svc.app.swagger(), null, 2)}\n`);
} finally {
  await svc.close();
}
