/*
 * `orcid-webhooks receive`: the README's walk-through receiver. A real service calls it; it prints
 * each callback with its headers and latency, and answers with the status it was given.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ADMIN_TOKEN, SEED_ORCID, startHarness, webhookPath, type Harness } from './helpers/harness.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const children: ChildProcess[] = [];
let h: Harness | undefined;
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await h?.close();
});

/** Starts `receive` and returns its URL and a reader of its next stdout chunk (a callback's lines). */
async function startReceive(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'receive', '--port', '0', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const r = await Promise.race([lines.next(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no output within 120 s')), 120_000).unref())]);
    if (r.done) throw new Error('receive exited');
    return r.value;
  };
  const first = await next();
  const url = /(http:\/\/127\.0\.0\.1:\d+)/.exec(first)?.[1];
  assert.ok(url, `receive printed where it listens: ${first}`);
  return { child, url, next };
}

async function touch(orcid: string) {
  const res = await h!.svc.app.inject({ method: 'PUT', url: `/admin/api/records/${orcid}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.ok(res.statusCode < 300, res.body);
}

async function payload(mode: 'json' | 'empty') {
  const res = await h!.svc.app.inject({ method: 'PUT', url: `/admin/api/clients/${h!.clientId}/payload`, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, payload: JSON.stringify({ mode }) });
  assert.equal(res.statusCode, 200, res.body);
}

async function register(callback: string) {
  const res = await h!.svc.app.inject({ method: 'PUT', url: webhookPath(SEED_ORCID, callback), headers: { authorization: `Bearer ${h!.token}`, accept: 'application/json' } });
  assert.equal(res.statusCode, 201, res.body);
}

test('receive --json: each callback with method, path, headers and latency; exact latency with the JSON payload', async () => {
  const rx = await startReceive(['--json']);
  h = await startHarness({ allowedTargets: ['127.0.0.0/8'] });
  await h.store.addRecords([SEED_ORCID], Date.now());
  await register(`${rx.url}/${SEED_ORCID}/updated`);

  await touch(SEED_ORCID);
  const empty = JSON.parse(await rx.next());
  assert.equal(empty.method, 'POST');
  assert.equal(empty.path, `/${SEED_ORCID}/updated`);
  assert.equal(empty.status, 204);
  assert.equal(empty.body, '');
  assert.equal(empty.headers['content-length'], '0');
  assert.match(empty.headers['webhook-id'], /^msg_wh_[0-9a-f]{32}_\d+$/);
  assert.match(empty.headers['user-agent'], /^orcid-webhooks\//);
  assert.equal(empty.latencyFrom, 'webhook-timestamp');

  await payload('json');
  await touch(SEED_ORCID);
  const json = JSON.parse(await rx.next());
  assert.equal(JSON.parse(json.body).type, 'record.updated');
  assert.equal(json.latencyFrom, 'data.modified');
  assert.ok(json.latencyMs >= 0 && json.latencyMs < 10_000, `latency ${json.latencyMs} ms`);
});

test('receive --status 503 (text): the service records the failure and retries; the lines show headers and latency', async () => {
  const rx = await startReceive(['--status', '503']);
  await rx.next(); // the second banner line
  await payload('empty');
  const callback = `${rx.url}/${SEED_ORCID}/failing`;
  await register(callback);
  await touch(SEED_ORCID);
  const block: string[] = [];
  while (!block.some((l) => l.includes('latency:'))) block.push(await rx.next());
  const text = block.join('\n');
  assert.match(text, new RegExp(`\\d\\d:\\d\\d:\\d\\d\\.\\d{3}  POST /${SEED_ORCID}/failing  from 127\\.0\\.0\\.1  -> 503`));
  assert.match(text, /^ {2}webhook-id: msg_wh_[0-9a-f]{32}_\d+$/m);
  assert.match(text, /^ {2}content-length: 0$/m);
  assert.match(text, /\(empty body\)/);
  assert.match(text, /latency: about [\d.]+ s after sending/);
  const row = (await h!.store.listWebhooks({ limit: 10 })).find((w) => w.url === callback);
  for (let i = 0; i < 100 && !row?.lastFailedAt; i++) {
    await new Promise((r) => setTimeout(r, 50));
    Object.assign(row!, (await h!.store.listWebhooks({ limit: 10 })).find((w) => w.url === callback));
  }
  assert.equal(row?.lastStatus, '503');
  assert.equal(row?.failedAttempts, 1);
});

test("the README's sample of receive's output shows a webhook-id of the form the service sends", async () => {
  const { readFileSync } = await import('node:fs');
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const sample = /After step 3, terminal 1 shows the callback[^\n]*\n\n```\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(sample, 'the walk-through shows what receive prints');
  const id = /^\s*webhook-id: (\S+)$/m.exec(sample)?.[1];
  assert.match(id ?? '', /^msg_wh_[0-9a-f]{32}_\d+$/, 'msg_ + the webhook id (wh_ and 32 hexadecimal digits) + _ + the notification number');
});
