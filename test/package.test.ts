/*
 * The package as a user gets it: `npm pack` (which builds dist/ through the `prepare` script),
 * install the tarball into an empty directory (dependencies from npm's cache when there), then run
 * `npx orcid-webhooks` there and import it from JavaScript and from TypeScript.
 *
 * better-sqlite3 has no prebuilt binary to download here and would compile from source (1-2 min
 * on an idle 2-core machine, 15 under load). Its install script (prebuild-install) takes a "local
 * prebuild" instead: this checkout's own compiled binary for the running Node, packed as the
 * prebuilt archive it looks for, with better-sqlite3 pinned to the same version. The test then
 * takes about a minute. PACKAGE_TEST_COMPILE=1 compiles, as a user without a prebuilt binary would.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VERSION } from '../src/version.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ow-package-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The environment without what `npm run` adds for its script (it would point npm at this repository). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_cache', 'npm_config_nodedir', 'npm_config_userconfig', 'npm_config_registry']);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) || keep.has(k.toLowerCase())) env[k] = v;
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  return { ...env, ...extra };
}

function run(cmd: string, args: string[], cwd: string, timeoutMs: number, env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env: cleanEnv(env), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

test('the packed tarball installs into an empty directory and runs there', { timeout: 20 * 60_000 }, async (t) => {
  let tarball = '';
  await t.test('npm pack builds dist/ and packs compiled JavaScript, declarations, migrations and the dashboard', async () => {
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], ROOT, 5 * 60_000);
    // The build's own output comes first, the JSON last.
    const [info] = JSON.parse(stdout.slice(stdout.search(/^\[/m))) as { filename: string; files: { path: string }[] }[];
    tarball = join(dir, info!.filename);
    const files = info!.files.map((f) => f.path);
    for (const f of ['package.json', 'LICENSE', 'README.md', 'dist/cli/bin.js', 'dist/index.js', 'dist/index.d.ts',
      'dist/store/sqlite/migrations/001_init.sql', 'dist/store/postgres/migrations/001_init.sql', 'dist/dashboard/index.html']) {
      assert.ok(files.includes(f), `the tarball lacks ${f}`);
    }
    assert.deepEqual(files.filter((f) => !/^(dist\/|package\.json$|LICENSE$|README\.md$)/.test(f)), [], 'only dist/ and the package files');
    assert.deepEqual(files.filter((f) => f.startsWith('dist/') && f.endsWith('.ts') && !f.endsWith('.d.ts')), [], 'no TypeScript source');
  });

  const app = join(dir, 'app');
  let installed = false;
  await t.test('npm install of the tarball (dependencies from the local cache when there)', async () => {
    mkdirSync(app);
    const manifest: Record<string, unknown> = { name: 'tarball-user', private: true, allowScripts: { 'better-sqlite3': true } };
    const env: Record<string, string> = {};
    if (process.env.PACKAGE_TEST_COMPILE !== '1') {
      const sqliteDir = join(ROOT, 'node_modules', 'better-sqlite3');
      const { version } = JSON.parse(readFileSync(join(sqliteDir, 'package.json'), 'utf8')) as { version: string };
      const prebuilds = join(dir, 'prebuilds');
      mkdirSync(prebuilds);
      const archive = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
      await run('tar', ['-czf', join(prebuilds, archive), '-C', sqliteDir, 'build/Release/better_sqlite3.node'], ROOT, 60_000);
      manifest.overrides = { 'better-sqlite3': version };
      env.npm_config_better_sqlite3_local_prebuilds = prebuilds;
    }
    writeFileSync(join(app, 'package.json'), JSON.stringify(manifest));
    const { stderr } = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], app, 20 * 60_000, env);
    // engines says node >= 20: no dependency may ask for more (fastify's newest light-my-request pulls cookie 2, node >= 22).
    assert.doesNotMatch(stderr, /EBADENGINE/, `npm install warned of an unsupported engine:\n${stderr}`);
    assert.ok(existsSync(join(app, 'node_modules', 'orcid-webhooks', 'dist', 'cli', 'bin.js')));
    assert.ok(!existsSync(join(app, 'node_modules', 'tsx')), 'tsx is a development dependency only');
    assert.ok(!existsSync(join(app, 'node_modules', 'typescript')), 'typescript is a development dependency only');
    installed = true;
  });
  const needsInstall = () => assert.ok(installed, 'not run: the install failed');

  await t.test('npx orcid-webhooks --version and demo', async () => {
    needsInstall();
    assert.equal((await run('npx', ['orcid-webhooks', '--version'], app, 60_000)).stdout.trim(), VERSION);
    const { stdout } = await run('npx', ['orcid-webhooks', 'demo'], app, 120_000);
    assert.match(stdout, /-> 201 Created, Location: /);
    assert.match(stdout, /The callback arrived [\d.]+ ms after the change/);
  });

  await t.test('the library imports from JavaScript, and its declarations type-check TypeScript', async () => {
    needsInstall();
    const js = "import { isValidOrcid, VERSION } from 'orcid-webhooks'; console.log(JSON.stringify([VERSION, isValidOrcid('0000-0002-1825-0097'), isValidOrcid('0000-0002-1825-0098')]));";
    assert.deepEqual(JSON.parse((await run(process.execPath, ['--input-type=module', '-e', js], app, 60_000)).stdout), [VERSION, true, false]);

    writeFileSync(join(app, 'consumer.ts'), [
      "import { isValidOrcid, resolveConfig, startService, type Config } from 'orcid-webhooks';",
      "const cfg: Config = resolveConfig({ port: '0' });",
      "const ok: boolean = isValidOrcid('0000-0002-1825-0097');",
      '// @ts-expect-error the declarations are real types, not any: a number is not an iD',
      'isValidOrcid(42);',
      'void startService; void cfg; void ok;',
    ].join('\n'));
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, skipLibCheck: true, typeRoots: [join(ROOT, 'node_modules', '@types')], types: ['node'] },
      files: ['consumer.ts'],
    }));
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    await run(process.execPath, [tsc, '-p', app], app, 120_000);
  });
});
