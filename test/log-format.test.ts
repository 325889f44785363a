/*
 * Logs: readable lines at a terminal, JSON otherwise; --log-format / LOG_FORMAT chooses.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
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
