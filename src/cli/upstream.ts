import { statSync } from 'node:fs';
import type { Command } from 'commander';
import { resolveConfig, type Config } from '../config.ts';
import { importOrcidLambda } from '../ops/import-orcid-lambda.ts';
import type { Store } from '../store/types.ts';
import { UPSTREAM_SOURCE } from '../upstream/poller.ts';
import { upstreamStatusView, type UpstreamSettings } from '../upstream/status.ts';
import { progressReporter } from './progress.ts';

/* The CLI's upstream commands (issue 13): `upstream status` and `records import --format orcid-lambda`. */

type Opts = Record<string, unknown> & { json?: boolean };
type Print = (opts: Opts, json: unknown, human: () => string) => void;

const iso = (t: number | null) => (t === null ? 'none' : new Date(t).toISOString());

export async function importOrcidLambdaCommand(store: Store, cfg: Config, file: string, opts: Opts, print: Print, fail: (m: string) => Error): Promise<void> {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    throw fail(`Cannot read ${file}: no such file`);
  }
  const bar = opts.json ? null : progressReporter(`importing ${file}`);
  let report;
  try {
    report = await importOrcidLambda(store, file, {
      notifyDelayMs: cfg.notifyDelayMs, create: Boolean(opts.createRecords), totalBytes: size,
      onProgress: (p) => bar?.update(p.bytes, p.totalBytes, `${p.lines} lines`),
    });
  } catch (e) {
    throw fail(`Import of ${file} failed: ${(e as Error).message}`);
  } finally {
    bar?.done();
  }
  print(opts, report, () => [
    `${report.lines} line(s): ${report.changed} record(s) modified, ${report.created} created, ${report.ignored} ignored (not newer, or unknown); ${report.webhooksNotified} webhook notification(s) owed`,
    report.stoppedAtCursor ? `stopped at the upstream cursor ${iso(report.cursor)}: older lines are the poller's` : `upstream cursor: ${iso(report.cursor)}`,
    ...(report.rejectedCount ? [`${report.rejectedCount} malformed line(s) rejected:`, ...report.rejected.map((r) => `  line ${r.line}: ${r.reason}`)] : []),
  ].join('\n'));
  if (report.rejectedCount) process.exitCode = 1;
}

export function upstreamCommands(
  program: Command,
  k: { common: (c: Command) => Command; withStore: <T>(opts: Opts, fn: (store: Store, cfg: Config) => Promise<T>, o?: { existing?: boolean }) => Promise<T>; print: Print },
): void {
  const upstream = program.command('upstream').description('the upstream registry watched by serve --upstream');
  k.common(upstream.command('status').description('the upstream poller: who polls, the cursor, the lag, the last success and error'))
    .action(async (opts: Opts) => k.withStore(opts, async (store) => {
      const v = upstreamStatusView(await store.upstreamState(UPSTREAM_SOURCE), null, upstreamSettingsFromEnv(), Date.now());
      k.print(opts, v, () => [
        `state:        ${v.state}`,
        `leader:       ${v.leader ?? 'none'}${v.leaderUntil ? ` (lease until ${v.leaderUntil})` : ''}`,
        `cursor:       ${v.cursor ?? 'none'} (start of the next search window)`,
        `last success: ${v.lastSuccess ?? 'never'}${v.lagSeconds === null ? '' : ` (lag ${v.lagSeconds} s)`}`,
        `last error:   ${v.lastError ? `${v.lastError} at ${v.lastErrorAt}` : 'none'}`,
      ].join('\n'));
    }, { existing: true }));
}

/**
 * The upstream as serve reads it from the environment (ORCID_WEBHOOKS_UPSTREAM...), so that the
 * status does not call unconfigured a service that watches one; null when unset or invalid (the
 * store commands never fail on serve's settings).
 */
function upstreamSettingsFromEnv(): UpstreamSettings | null {
  try {
    const cfg = resolveConfig({}, process.env, ['upstream', 'upstreamClientId', 'upstreamClientSecret', 'upstreamTokenUrl', 'upstreamIntervalMs', 'upstreamOverlapMs']);
    return cfg.upstream ? { apiUrl: cfg.upstream.apiUrl, intervalMs: cfg.upstreamIntervalMs, overlapMs: cfg.upstreamOverlapMs } : null;
  } catch {
    return null;
  }
}
