#!/usr/bin/env node
/*
 * The `orcid-webhooks` executable. `--version` is answered before anything else is loaded, and
 * Node 22+ keeps compiled code in its on-disk cache between runs: both keep start-up short
 * (bench/cli-start.ts). Everything else goes to the CLI, which loads the service lazily.
 */
import module from 'node:module';
import { VERSION } from '../version.ts';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  process.stdout.write(`${VERSION}\n`);
} else {
  // Node 22.1+; absent (and not needed) on Node 20.
  (module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
  const { run } = await import('./main.ts');
  await run(process.argv);
}
