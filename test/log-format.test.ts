/*
 * Logs: readable lines at a terminal, JSON otherwise; --log-format / LOG_FORMAT chooses.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cleanEnv } from './helpers/cli.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ow-logfmt-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Starts serve (optionally under a pseudo-terminal), collects stdout until the "listening" line, then stops it. */
function serveOutput(args: string[], env: Record<string, string> = {}, tty = false): Promise<string> {
  const argv = [process.execPath, '--import', 'tsx', 'src/cli/main.ts', 'serve', '--port', '0', '--db', `sqlite:${join(dir, `${Math.random()}.db`)}`,
    '--admin-token', 'log-format-test-admin-token', ...args];
  const [cmd, ...rest] = tty ? ['script', '-qfec', argv.map((a) => `'${a}'`).join(' '), '/dev/null'] : argv;
  const child = spawn(cmd!, rest, { cwd: ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`no "listening" line within 120 s:\n${out}`)); }, 120_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (/listening on/.test(out)) {
        clearTimeout(timer);
        child.kill('SIGTERM');
      }
    });
    child.on('exit', () => { clearTimeout(timer); resolve(out); });
  });
}

const listeningLine = (out: string) => out.split(/\r?\n/).find((l) => l.includes('listening on')) ?? '';

test('stdout not a terminal: JSON lines by default', async () => {
  const line = listeningLine(await serveOutput([]));
  assert.match(JSON.parse(line).msg, /orcid-webhooks .* listening on http:\/\/127\.0\.0\.1:\d+/);
});

test('--log-format pretty: readable lines with time, level and message', async () => {
  const line = listeningLine(await serveOutput(['--log-format', 'pretty']));
  assert.throws(() => JSON.parse(line));
  assert.match(line, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: orcid-webhooks .* listening on http:\/\/127\.0\.0\.1:\d+/);
});

test('LOG_FORMAT=pretty does the same; a bad value names the setting', async () => {
  assert.match(listeningLine(await serveOutput([], { LOG_FORMAT: 'pretty' })), /^\[[\d:.]+\] INFO: /);
  const out = await new Promise<string>((resolve) => {
    const c = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--log-format', 'xml'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    c.on('exit', () => resolve(err));
  });
  assert.match(out, /Invalid setting --log-format \(LOG_FORMAT\).*"xml" must be one of auto, pretty, json/);
});

test('at a terminal: readable lines by default, JSON with --log-format json', { skip: existsSync('/usr/bin/script') ? false : 'needs script(1) for a pseudo-terminal' }, async () => {
  const strip = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, ''); // eslint-disable-line no-control-regex
  assert.match(strip(listeningLine(await serveOutput([], {}, true))), /^\[[\d:.]+\] INFO: orcid-webhooks .* listening on/);
  assert.match(JSON.parse(listeningLine(await serveOutput(['--log-format', 'json'], {}, true))).msg, /listening on/);
});

test('log lines are buffered briefly, never lost at exit: a lone line is written within the flush interval, 5,000 lines logged right before process.exit all arrive', async () => {
  const file = join(dir, 'buffered.log');
  const script = `
    import { createLogger, logDestination, LOG_FLUSH_MS } from './src/logger.ts';
    const log = createLogger('info', logDestination(${JSON.stringify(file)}));
    log.info({ n: 0 }, 'lone line');
    await new Promise((r) => setTimeout(r, LOG_FLUSH_MS * 2 + 100));
    process.send('lone');
    await new Promise((r) => process.once('message', r));
    for (let n = 1; n <= 5000; n++) log.info({ n }, 'burst');
    process.exit(0);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, env: cleanEnv({}), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`exited (${code}) before the lone line was checked`)));
  });
  const lone = readFileSync(file, 'utf8').trim().split('\n');
  assert.equal(lone.length, 1, 'the lone line is on disk within the flush interval');
  assert.equal(JSON.parse(lone[0]!).msg, 'lone line');
  child.send('go');
  assert.equal(await exited, 0);
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { n: number });
  assert.equal(lines.length, 5001);
  assert.deepEqual(lines.map((l) => l.n), Array.from({ length: 5001 }, (_, i) => i));
});
