/*
 * The CLI as a subprocess (`node --import tsx src/cli/main.ts ...`), with none of the settings'
 * environment variables of the caller's shell, so that nothing outside a test can leak into it.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SETTINGS } from '../../src/config.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const MAIN = join(ROOT, 'src', 'cli', 'main.ts');

/** The environment without any of our settings nor the test runner's own, plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const s of SETTINGS) delete env[s.env];
  delete env.NODE_TEST_CONTEXT;
  return { ...env, ...extra };
}

export interface CliResult { code: number; stdout: string; stderr: string }

export interface CliOptions {
  env?: Record<string, string>;
  /** The script to run (default src/cli/main.ts). */
  entry?: string;
  /** Working directory (default the repository). */
  cwd?: string;
  /** What `--import` loads (default `tsx`, resolved from cwd). */
  loader?: string;
  timeoutMs?: number;
}

/** Runs the CLI; resolves with its exit code and output, never rejects on a non-zero exit (only when it did not finish). */
export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const argv = ['--import', opts.loader ?? 'tsx', opts.entry ?? MAIN, ...args];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, argv, { cwd: opts.cwd ?? ROOT, env: cleanEnv(opts.env), timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && (err.killed || typeof err.code !== 'number')) {
        reject(new Error(`orcid-webhooks ${args.join(' ')} did not finish: ${err.message}\n${stderr}`));
        return;
      }
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}
