/*
 * The service as a real child process (`node --import tsx src/cli/main.ts serve`), for tests of
 * what only a process shows: signals, exit codes, kill -9 and several processes on one database.
 *
 * Every child started here is remembered until it exits: `stopAllServers()` (call it in `after`)
 * kills whatever is left, and 'exit', SIGTERM and SIGINT hooks SIGKILL stragglers if a test file
 * dies early.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ServerResponse } from 'node:http';
import { orcidFromBase } from '../../src/domain/orcid-id.ts';
import { createApiClient } from '../../src/ops/clients.ts';
import type { Store, WebhookRow } from '../../src/store/types.ts';
import { sleep, startReceiver, type Received, type Receiver } from './receiver.ts';
import { cleanEnv } from './cli.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PROCESS_ADMIN_TOKEN = 'process-test-admin-token-0123456789';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() when the process exited. */
  at: number;
}

/** One JSON log line of the service (pino), or `{ msg: <raw line> }` for anything else. */
export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

export interface ServerProcess {
  /** http://127.0.0.1:PORT */
  url: string;
  child: ChildProcess;
  pid: number;
  /** Every stdout line so far, parsed (bounded at 200,000 lines). */
  logs: LogLine[];
  /** stderr so far (bounded). */
  stderr(): string;
  /** Sends the signal and resolves when the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<ExitInfo>;
  /** Resolves when the process has exited (at once if it already has). */
  waitExit(timeoutMs?: number): Promise<ExitInfo>;
  /** null while running. */
  exited(): ExitInfo | null;
  /** Log lines whose msg matches. */
  logsMatching(re: RegExp): LogLine[];
}

const live = new Set<ServerProcess>();

function killLive(): void {
  for (const p of live) if (!p.exited()) p.child.kill('SIGKILL');
}
process.once('exit', killLive);
// A test file stopped by a signal (runner timeout, Ctrl-C) takes its servers with it, then dies of
// the same signal as it would have.
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    killLive();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  });
}

/** `{ lease: '2s', 'https-only': true }` -> `--lease 2s --https-only true`. */
function toArgs(flags: Record<string, string | number | boolean>): string[] {
  return Object.entries(flags).flatMap(([k, v]) => [`--${k}`, String(v)]);
}

const LISTENING = /^orcid-webhooks \S+ listening on (http:\/\/127\.0\.0\.1:\d+)$/;

/**
 * Starts `serve --port 0 --host 127.0.0.1 --admin-token ... <flags>` and resolves once it logs
 * "listening on"; rejects (and kills the child) when it exits first or takes longer than startTimeoutMs.
 */
export async function startServer(
  flags: Record<string, string | number | boolean>,
  opts: { startTimeoutMs?: number; env?: Record<string, string> } = {},
): Promise<ServerProcess> {
  const args = ['--import', 'tsx', join('src', 'cli', 'main.ts'), 'serve',
    ...toArgs({ port: 0, host: '127.0.0.1', 'admin-token': PROCESS_ADMIN_TOKEN, ...flags })];
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env: cleanEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: LogLine[] = [];
  let stderr = '';
  let exit: ExitInfo | null = null;
  const exitWaiters: ((e: ExitInfo) => void)[] = [];
  let onListening: ((url: string) => void) | null = null;

  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => {
    stderr = (stderr + s).slice(-20_000);
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let entry: LogLine;
    try {
      entry = JSON.parse(line) as LogLine;
    } catch {
      entry = { msg: line };
    }
    if (logs.length < 200_000) logs.push(entry);
    const m = typeof entry.msg === 'string' ? LISTENING.exec(entry.msg) : null;
    if (m && onListening) onListening(m[1]!);
  });
  child.on('exit', (code, signal) => {
    exit = { code, signal, at: Date.now() };
    live.delete(proc);
    for (const w of exitWaiters.splice(0)) w(exit);
  });

  const waitExit = (timeoutMs = 30_000): Promise<ExitInfo> => {
    if (exit) return Promise.resolve(exit);
    return new Promise((resolveExit, reject) => {
      const t = setTimeout(() => reject(new Error(`server pid ${child.pid} did not exit within ${timeoutMs} ms`)), timeoutMs);
      exitWaiters.push((e) => {
        clearTimeout(t);
        resolveExit(e);
      });
    });
  };

  const proc: ServerProcess = {
    url: '',
    child,
    pid: child.pid ?? -1,
    logs,
    stderr: () => stderr,
    exited: () => exit,
    waitExit,
    async stop(signal = 'SIGTERM') {
      if (!exit) child.kill(signal);
      return waitExit();
    },
    logsMatching: (re) => logs.filter((l) => typeof l.msg === 'string' && re.test(l.msg)),
  };
  live.add(proc);

  const timeoutMs = opts.startTimeoutMs ?? 45_000;
  try {
    proc.url = await new Promise<string>((resolveUrl, reject) => {
      const t = setTimeout(() => reject(new Error(`server did not start within ${timeoutMs} ms`)), timeoutMs);
      onListening = (url) => {
        clearTimeout(t);
        resolveUrl(url);
      };
      exitWaiters.push((e) => {
        clearTimeout(t);
        reject(new Error(`server exited during start-up (code ${e.code}, signal ${e.signal})`));
      });
    });
  } catch (err) {
    if (!exit) child.kill('SIGKILL');
    const tail = [...logs.slice(-10).map((l) => JSON.stringify(l)), stderr.slice(-2000)].join('\n');
    throw new Error(`${(err as Error).message}\n${tail}`);
  } finally {
    onListening = null;
  }
  return proc;
}

/** SIGKILLs every server still running and waits for them to go (for `after` hooks). */
export async function stopAllServers(): Promise<void> {
  const procs = [...live];
  for (const p of procs) if (!p.exited()) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.waitExit(10_000).catch(() => undefined)));
}

/** A temporary directory and its removal. */
export function tempDir(prefix = 'ow-proc-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** n distinct valid ORCID iDs (deterministic, in ORCID's current range). */
export function orcids(n: number, offset = 0): string[] {
  return Array.from({ length: n }, (_, i) => orcidFromBase(900_000_000_000 + 1_000 + offset + i));
}

/**
 * Prepares a migrated store: one premium client, the records, and a webhook per (orcid, url)
 * pair registered directly through the store (several at once, so PostgreSQL is quick too).
 * Records are created a minute in the past so that any change "now" is newer.
 */
export async function seedWebhooks(store: Store, hooks: { orcid: string; url: string }[]): Promise<{ clientId: string; webhooks: WebhookRow[] }> {
  await store.migrate();
  const { client } = await createApiClient(store, { name: 'process test client', premium: true });
  const now = Date.now();
  await store.addRecords([...new Set(hooks.map((h) => h.orcid))], now - 60_000);
  const webhooks: WebhookRow[] = new Array<WebhookRow>(hooks.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < hooks.length; i = next++) {
      const h = hooks[i]!;
      const r = await store.registerWebhook({ clientId: client.id, orcid: h.orcid, url: h.url, host: new URL(h.url).host, now: now - 30_000 });
      if (r.outcome !== 'created') throw new Error(`could not register ${h.url}: ${r.outcome}`);
      webhooks[i] = r.webhook;
    }
  };
  await Promise.all(Array.from({ length: store.dialect === 'postgres' ? 6 : 1 }, worker));
  return { clientId: client.id, webhooks };
}

/** A request to the admin API; throws unless the answer is 2xx. */
export async function adminRequest<T = unknown>(base: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${base}/admin/api${path}`, {
    method,
    headers: { authorization: `Bearer ${PROCESS_ADMIN_TOKEN}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** `PUT /admin/api/records/{orcid}`: marks the record modified now. */
export function touchRecord(base: string, orcid: string): Promise<{ webhooksNotified: number; changed: boolean }> {
  return adminRequest(base, 'PUT', `/records/${orcid}`);
}

export interface BulkResult { created: number; changed: number; ignored: number; webhooksNotified: number }

/** `POST /admin/api/changes` (at most 10,000 changes). */
export function postChanges(base: string, changes: { orcid: string; modified: number | string }[]): Promise<BulkResult> {
  return adminRequest(base, 'POST', '/changes', {
    changes: changes.map((c) => ({ orcid: c.orcid, modified: typeof c.modified === 'number' ? new Date(c.modified).toISOString() : c.modified })),
  });
}

/**
 * A receiver (see receiver.ts) that answers 200 after `delayMs()` and tracks, per path, how many
 * requests are in flight at once: a request counts from its arrival until it is answered or its
 * connection closes (a killed sender).
 */
export interface TrackingReceiver extends Receiver {
  /** Largest number of requests in flight at once on one path. */
  maxConcurrentPerPath(): number;
  /** Requests currently in flight (all paths). */
  inFlight(): number;
  /** Requests received per path. */
  countsByPath(): Map<string, number>;
  /**
   * The sender's TCP port of a request (tells apart which process sent it, see localTcpPorts);
   * undefined when the sender's connection was already gone when the request was read.
   */
  remotePort(r: Received): number | undefined;
  /** The requests in flight now (arrived, not yet answered). */
  inFlightRequests(): Received[];
}

export async function startTrackingReceiver(delayMs: () => number): Promise<TrackingReceiver> {
  const rx = await startReceiver();
  const inFlightByPath = new Map<string, number>();
  let inFlight = 0;
  let maxPerPath = 0;
  const ports = new Map<Received, number | undefined>();
  const pending = new Set<Received>();
  rx.behave(async (req, res: ServerResponse) => {
    ports.set(req, res.socket?.remotePort);
    const n = (inFlightByPath.get(req.path) ?? 0) + 1;
    inFlightByPath.set(req.path, n);
    inFlight++;
    pending.add(req);
    maxPerPath = Math.max(maxPerPath, n);
    let done = false;
    const finished = () => {
      if (done) return;
      done = true;
      inFlight--;
      pending.delete(req);
      inFlightByPath.set(req.path, (inFlightByPath.get(req.path) ?? 1) - 1);
    };
    // Answered counts as done at once: waiting for 'finish' would let the next request on the path
    // (sent after the sender read this answer) overlap it when this process is slow to see the write complete.
    res.on('close', finished);
    const d = delayMs();
    if (d > 0) await sleep(d);
    if (!res.destroyed) res.writeHead(200).end('ok');
    finished();
  });
  return {
    ...rx,
    maxConcurrentPerPath: () => maxPerPath,
    inFlight: () => inFlight,
    remotePort: (r) => ports.get(r),
    inFlightRequests: () => [...pending],
    countsByPath() {
      const m = new Map<string, number>();
      for (const r of rx.received) m.set(r.path, (m.get(r.path) ?? 0) + 1);
      return m;
    },
  };
}

/**
 * The local TCP ports of the sockets a process holds (Linux: /proc/PID/fd and /proc/net/tcp*),
 * read synchronously so that a snapshot can be taken just before a kill; null where /proc is not
 * available. A receiver sees these as the remote ports of that process's requests.
 */
export function localTcpPorts(pid: number): Set<number> | null {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return null;
  }
  const inodes = new Set<string>();
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    // sl local_address rem_address st queues tr retrnsmt uid timeout inode ...
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      const port = cols[1]?.split(':')[1];
      if (cols[9] !== undefined && port !== undefined && inodes.has(cols[9])) ports.add(parseInt(port, 16));
    }
  }
  return ports;
}
