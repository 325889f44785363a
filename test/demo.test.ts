import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { runDemo } from '../src/cli/demo.ts';

test('the demo registers with ORCID\'s exact requests, shows the callback, and leaves nothing behind', async () => {
  const lines: string[] = [];
  const { latencyMs, dir } = await runDemo((l) => lines.push(l));
  const text = lines.join('\n');
  assert.ok(latencyMs >= 0 && latencyMs < 5000);
  assert.match(text, /curl -s -X POST http:\/\/127\.0\.0\.1:\d+\/oauth\/token/);
  assert.match(text, /-H 'Accept: application\/json' -H 'Authorization: Bearer [0-9a-f-]{36}' -H 'Content-Length: 0'/);
  assert.match(text, /-> 201 Created, Location: http:\/\/127\.0\.0\.1:\d+\/0000-0002-7465-2162\/webhook\/http%3A%2F%2F127\.0\.0\.1%3A\d+%2F0000-0002-7465-2162%2Fupdated/);
  assert.match(text, /POST \/0000-0002-7465-2162\/updated/);
  assert.match(text, /content-length: 0/);
  assert.match(text, /webhook-id: msg_wh_[0-9a-f]{32}_\d+/);
  // Its own directory: other processes sharing the temporary directory may be running demos too.
  assert.ok(dir.startsWith(tmpdir()) && /orcid-webhooks-demo-/.test(dir));
  assert.equal(existsSync(dir), false, 'the temporary database is removed');
});

test('orcid-webhooks demo exits 0', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'demo'], { timeout: 30_000 });
  assert.match(stdout, /The callback arrived [\d.]+ ms after the change/);
});
