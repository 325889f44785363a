import { existsSync, statSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { ConfigError, SETTINGS, resolveConfig, type Config } from '../config.ts';
import { notificationId } from '../domain/notification-id.ts';
import { checkOrcid, mintOrcid } from '../domain/orcid-id.ts';
import { isWebhookPublicId } from '../domain/public-id.ts';
import { WEBHOOK_STATES, webhookStateOf, type WebhookStateName } from '../domain/webhook-state.ts';
import { parseIsoTime } from '../domain/time.ts';
import { ClientDeliveryError, issueSigningSecret, recoverClientWebhooks, removeSigningSecret, setPayloadMode } from '../ops/client-delivery.ts';
import { clientView, createApiClient } from '../ops/clients.ts';
import { importChanges } from '../ops/import.ts';
import { redactUserinfo } from '../logger.ts';
import { parseDatabaseUrl, sqliteFile } from '../store/database-url.ts';
import type { Store, WebhookRow } from '../store/types.ts';
import { VERSION } from '../version.ts';
import { progressReporter } from './progress.ts';
import { importOrcidLambdaCommand, upstreamCommands } from './upstream.ts';

/** A user error: printed as one clear line, exit code 1 (2 for usage errors). */
class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

type Opts = Record<string, unknown> & { json?: boolean };

const iso = (t: number | null) => (t === null ? '' : new Date(t).toISOString());

function print(opts: Opts, json: unknown, human: () => string): void {
  process.stdout.write(opts.json ? `${JSON.stringify(json, null, 2)}\n` : `${human()}\n`);
}

function table(rows: Record<string, string | number | boolean | null>[], empty: string): string {
  if (!rows.length) return empty;
  const cols = Object.keys(rows[0]!);
  const cell = (v: unknown) => (v === null || v === undefined ? '' : String(v));
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(cols.map((c) => c.toUpperCase())), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join('\n');
}

/** The settings the store commands use; the rest (ports, timeouts...) belong to `serve`. */
const STORE_COMMAND_SETTINGS = ['db', 'poolSize', 'statementTimeoutMs', 'notifyDelayMs', 'signingRotationGraceMs', 'secretsKey'] as const;

function config(opts: Opts, only: readonly (keyof Config)[] = STORE_COMMAND_SETTINGS): Config {
  return resolveConfig(opts, process.env, only);
}

/**
 * The service (fastify, pino, the database drivers) is loaded only by the commands that use it:
 * `--version` and `--help` start in a fraction of the time (bench/cli-start.ts).
 */
async function openStore(cfg: Config): Promise<Store> {
  const [{ openStore: open }, { explainDatabaseError }] = await Promise.all([import('../service.ts'), import('../store/database-errors.ts')]);
  return open(cfg).catch((e: unknown) => { throw explainDatabaseError(e, cfg.db); });
}

/**
 * Runs fn with an up-to-date store (a new one is created and migrated), closing it after. Errors opening or migrating the database say
 * which and what to check. `existing`: commands that only read or change what is there (lists,
 * revocations, replays...) need a database of this service: a mistyped --db must not create an
 * empty one (its directories and a secrets key), nor add this service's tables to another
 * application's file, and then answer "nothing here".
 */
async function withStore<T>(opts: Opts, fn: (store: Store, cfg: Config) => Promise<T>, o: { existing?: boolean } = {}): Promise<T> {
  const cfg = config(opts);
  const file = o.existing ? sqliteFile(parseDatabaseUrl(cfg.db)) : null;
  if (file !== null && !existsSync(file)) {
    throw new CliError(`No database at ${file}: check --db (DATABASE_URL). A new one is created by "orcid-webhooks serve" or "orcid-webhooks migrate" with that --db.`);
  }
  const store = await openStore(cfg);
  try {
    const pending = await store.pendingMigrations().catch(() => []);
    // Never migrated (its first migration pending): empty, or another application's database.
    const fresh = pending[0]?.startsWith('001_') === true;
    if (o.existing && fresh) {
      throw new CliError(`${redactUserinfo(cfg.db)} is not a database of this service (it has none of its tables): check --db (DATABASE_URL). "orcid-webhooks migrate" makes it one.`);
    }
    // A database of an older version is upgraded only by `migrate` or `serve`, never as a side
    // effect of a list or a revocation: servers of the older version may still be running on it.
    if (pending.length > 0 && !fresh) {
      throw new CliError(`${redactUserinfo(cfg.db)} was last migrated by an older version of orcid-webhooks: ${pending.length} migration(s) of this version are pending (${pending.join(', ')}). Run "orcid-webhooks migrate" with that --db (or start this version's "serve", which migrates) once every server using it can be upgraded, then run this command again.`);
    }
    try {
      // A new database is created here; an up-to-date one only checks that no newer version migrated it.
      await store.migrate();
    } catch (e) {
      throw (await import('../store/database-errors.ts')).explainDatabaseError(e, cfg.db);
    }
    return await fn(store, cfg);
  } finally {
    await store.close();
  }
}

function validOrcids(ids: string[]): string[] {
  const bad = ids.map((id) => checkOrcid(id)).flatMap((c) => (c.ok ? [] : [c.reason]));
  if (bad.length) throw new CliError(`Invalid ORCID iD${bad.length > 1 ? 's' : ''} (nothing was changed):\n  ${bad.join('\n  ')}`);
  return ids;
}

/** A whole number from 1 to max (a larger one would overflow the database's integers, or never finish). */
const positiveInt = (name: string, max = 1_000_000) => (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) throw new CliError(`${name} must be a whole number from 1 to ${max.toLocaleString('en-US')}, got "${v}"`, 2);
  return Number(v);
};

/** An option naming one iD (a filter, a cursor): an invalid one is a usage error, not an empty answer. */
const orcidOption = (name: string) => (v: string) => {
  const check = checkOrcid(v);
  if (!check.ok) throw new CliError(`${name} must be an ORCID iD: ${check.reason}`, 2);
  return v;
};

const portNumber = (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) > 65535) throw new CliError(`--port must be a port number (0 to 65535), got "${v}"`, 2);
  return Number(v);
};

const httpStatus = (v: string) => {
  if (!/^[1-5]\d\d$/.test(v) || Number(v) < 200) throw new CliError(`--status must be an HTTP status from 200 to 599, got "${v}"`, 2);
  return Number(v);
};

const webhookIdArg = (name: string) => (v: string) => {
  if (!isWebhookPublicId(v)) throw new CliError(`${name} must be a webhook id such as wh_0123456789abcdef0123456789abcdef (see "webhooks list"), got "${v}"`, 2);
  return v;
};

async function webhookByPublicId(store: Store, id: string): Promise<WebhookRow> {
  const w = await store.getWebhookByPublicId(id);
  if (!w) throw new CliError(`No webhook with id ${id} (see "orcid-webhooks webhooks list")`);
  return w;
}

function dbOption(): Option {
  return new Option('--db <url>', 'database: sqlite:PATH, a file path, or postgres://... (env DATABASE_URL)');
}

function common(cmd: Command): Command {
  return cmd.addOption(dbOption()).option('--json', 'print JSON instead of text');
}

function webhookView(w: WebhookRow) {
  return {
    id: w.publicId, client: w.clientId, orcid: w.orcid, url: w.url,
    state: webhookStateOf(w),
    enabled: w.enabled, created: iso(w.createdAt), lastSent: iso(w.lastSentAt) || null, lastFailed: iso(w.lastFailedAt) || null,
    failedAttempts: w.failedAttempts, nextAttempt: w.enabled && w.dueAt !== null ? iso(w.dueAt) : null,
    disabledReason: w.disabledReason,
  };
}

/** A refusal of src/ops/client-delivery.ts as one line with what to do instead. */
function deliveryError(e: unknown): never {
  if (!(e instanceof ClientDeliveryError)) throw e;
  throw new CliError(e.kind === 'no-client' ? `${e.message} (see "orcid-webhooks clients list")` : `${e.message} (use --rotate or --remove)`);
}

function buildCli(): Command {
  const program = new Command('orcid-webhooks')
    .description('Self-hosted, ORCID-API-compatible webhook service.\nRun "orcid-webhooks serve" to start it; every command takes --help.')
    .version(VERSION, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ outputError: (str, write) => write(str) })
    .exitOverride();

  const serve = program.command('serve').description('serve the ORCID webhook API and deliver callbacks');
  for (const s of SETTINGS) {
    // The value's name: the flag's last word, but a count for the max-… limits (not a client, not an ip).
    const arg = s.key === 'httpsOnly' ? '' : ` <${s.flag.startsWith('max-') ? 'n' : s.flag.split('-').pop()}>`;
    serve.addOption(new Option(`--${s.flag}${arg}`, `${s.help} (env ${s.env}${s.default ? `, default ${s.default}` : ''})`));
    // A switch the environment can turn on, a flag must be able to turn off (flags win).
    if (s.key === 'httpsOnly') serve.addOption(new Option(`--no-${s.flag}`, `allow http:// callbacks even when ${s.env} is set`));
  }
  serve.action(async (opts: Opts) => {
    const cfg = resolveConfig(opts);
    const { startService } = await import('../service.ts');
    const svc = await startService(cfg);
    const where = svc.adminTokenFile ? `stored in ${svc.adminTokenFile}` : 'from --admin-token / ORCID_WEBHOOKS_ADMIN_TOKEN';
    svc.logger.info({ url: svc.url, db: redactUserinfo(cfg.db), role: cfg.role, records: cfg.records }, `orcid-webhooks ${VERSION} listening on ${svc.url}`);
    svc.logger.info(`admin token ${where}`);
    if (process.stderr.isTTY) {
      // A person at a terminal gets the essentials in plain words; the log lines stay on stdout.
      const ui = cfg.role === 'worker' ? '' : `\n  dashboard  ${svc.url}/admin (sign in with the admin token)\n  API docs   ${svc.url}/docs`;
      process.stderr.write(`\norcid-webhooks ${VERSION} on ${svc.url} (${cfg.role === 'all' ? 'API and delivery' : cfg.role})${ui}\n  admin token ${where}\n  stop with Ctrl-C\n\n`);
    }
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      svc.logger.info({ signal }, 'shutting down: draining in-flight callbacks');
      void svc.close().then(() => {
        svc.logger.info('stopped');
        process.exit(0);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });

  program.command('demo')
    .description("a guided tour: registers a webhook with ORCID's exact requests against a throw-away server and shows the callback")
    .action(async () => {
      await (await import('./demo.ts')).runDemo();
    });

  program.command('receive')
    .description('a tiny callback receiver to try the service with: prints each callback with its headers and latency')
    .option('--port <port>', 'port to listen on (0 picks a free one)', portNumber, 9000)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--status <code>', 'status to answer every callback with (503 or 410 show retries and disabling)', httpStatus, 204)
    .option('--json', 'one JSON object a line instead of text')
    .action(async (opts: Opts) => {
      const { receive } = await import('./receive.ts');
      const rx = await receive({ port: Number(opts.port), host: String(opts.host), status: Number(opts.status), json: Boolean(opts.json) })
        .catch((e: Error) => { throw new CliError(`Cannot listen on ${String(opts.host)}:${String(opts.port)}: ${e.message}`); });
      const stop = () => void rx.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });

  common(program.command('migrate').description('apply pending database migrations')).action(async (opts: Opts) => {
    const cfg = config(opts);
    const store = await openStore(cfg);
    try {
      const applied = await store.migrate().catch(async (e: unknown) => { throw (await import('../store/database-errors.ts')).explainDatabaseError(e, cfg.db); });
      print(opts, { applied }, () => (applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date'));
    } finally {
      await store.close();
    }
  });

  const clients = program.command('clients').description('manage API clients (who may get tokens)');
  common(clients.command('create').description('create a client and print its id and secret (the secret is shown once)'))
    .requiredOption('--name <name>', 'a name to recognise the client by')
    .option('--premium', 'a premium member client: may obtain the /webhook scope', false)
    .action(async (opts: Opts) => withStore(opts, async (store) => {
      const { client, secret } = await createApiClient(store, { name: String(opts.name), premium: Boolean(opts.premium) });
      print(opts, { ...clientView(client), secret }, () =>
        `client_id:     ${client.id}\nclient_secret: ${secret}\n${client.premium ? 'premium: may obtain the /webhook scope' : 'not premium: cannot obtain the /webhook scope (use --premium)'}\nKeep the secret now: it is stored only as a hash and cannot be shown again.`);
    }));
  common(clients.command('list').description('list clients')).action(async (opts: Opts) => withStore(opts, async (store) => {
    const rows = (await store.listClients()).map(clientView);
    print(opts, rows, () => table(rows, 'no clients yet: create one with "orcid-webhooks clients create --name NAME --premium"'));
  }, { existing: true }));
  common(clients.command('revoke').description('revoke a client: its tokens stop working at once').argument('<id>', 'client id'))
    .action(async (id: string, opts: Opts) => withStore(opts, async (store) => {
      if (!(await store.revokeClient(id, Date.now()))) throw new CliError(`No client with id ${id} (see "orcid-webhooks clients list")`);
      print(opts, { id, revoked: true }, () => `client ${id} revoked; its tokens no longer work`);
    }, { existing: true }));
  common(clients.command('signing-secret').description('give the client a signing secret: its callbacks then carry a Standard Webhooks webhook-signature (the secret is shown once)').argument('<id>', 'client id'))
    .option('--rotate', 'replace the existing secret; the old one also signs for --signing-rotation-grace', false)
    .option('--remove', "stop signing the client's callbacks", false)
    .option('--signing-rotation-grace <duration>', 'how long a rotated-out secret keeps signing (env ORCID_WEBHOOKS_SIGNING_ROTATION_GRACE, default 24h)')
    .action(async (id: string, opts: Opts) => withStore(opts, async (store, cfg) => {
      if (opts.rotate && opts.remove) throw new CliError('--rotate and --remove cannot be used together', 2);
      if (opts.remove) {
        await removeSigningSecret(store, id, Date.now()).catch(deliveryError);
        print(opts, { client: id, signed: false }, () => `client ${id}: callbacks are no longer signed`);
        return;
      }
      const issued = await issueSigningSecret(store, id, { rotate: Boolean(opts.rotate), graceMs: cfg.signingRotationGraceMs, now: Date.now() }).catch(deliveryError);
      const expires = issued.previousExpiresAt === null ? null : new Date(issued.previousExpiresAt).toISOString();
      print(opts, { client: id, secret: issued.secret, previousSecretExpires: expires }, () => [
        `signing secret: ${issued.secret}`,
        expires ? `The previous secret also signs until ${expires}; then only this one.` : `Callbacks of client ${id} are signed from now on.`,
        'Give it to the client to verify webhook-signature; it cannot be shown again.',
      ].join('\n'));
    }, { existing: true }));
  common(clients.command('payload').description("choose the client's callback body: empty (ORCID's, the default) or json (a record.updated event)")
    .argument('<id>', 'client id').argument('<mode>', 'json or empty'))
    .action(async (id: string, mode: string, opts: Opts) => withStore(opts, async (store) => {
      if (mode !== 'json' && mode !== 'empty') throw new CliError(`mode must be json or empty, got "${mode}"`, 2);
      await setPayloadMode(store, id, mode, Date.now()).catch(deliveryError);
      print(opts, { client: id, payload: mode }, () => `client ${id}: callbacks now carry ${mode === 'json' ? 'a JSON record.updated event' : "ORCID's empty body"}`);
    }, { existing: true }));

  const records = program.command('records').description('manage ORCID records (webhooks attach to them)');
  common(records.command('add').description('add records by iD').argument('<orcid...>', 'ORCID iDs such as 0000-0002-1825-0097'))
    .action(async (ids: string[], opts: Opts) => withStore(opts, async (store) => {
      const added = await store.addRecords(validOrcids(ids), Date.now());
      print(opts, { added, existing: ids.length - added }, () => `${added} record(s) added${ids.length - added ? `, ${ids.length - added} already existed` : ''}`);
    }));
  common(records.command('mint').description("create new random valid iDs in ORCID's current range"))
    .option('--count <n>', 'how many', positiveInt('--count'), 1)
    .action(async (opts: Opts) => withStore(opts, async (store) => {
      const ids = new Set<string>();
      while (ids.size < Number(opts.count)) ids.add(mintOrcid());
      await store.addRecords([...ids], Date.now());
      print(opts, [...ids], () => [...ids].join('\n'));
    }));
  common(records.command('list').description('list records'))
    .option('--limit <n>', 'at most this many', positiveInt('--limit'), 100)
    .option('--after <orcid>', 'start after this iD (pagination)', orcidOption('--after'))
    .action(async (opts: Opts) => withStore(opts, async (store) => {
      const rows = (await store.listRecords({ limit: Number(opts.limit), ...(opts.after ? { afterOrcid: String(opts.after) } : {}) }))
        .map((r) => ({ orcid: r.orcid, modified: iso(r.modifiedAt), created: iso(r.createdAt) }));
      print(opts, rows, () => table(rows, 'no records yet: add some with "orcid-webhooks records add ORCID" or "records mint"'));
    }, { existing: true }));
  common(records.command('touch').description('mark records modified now (creates missing ones); their webhooks are notified').argument('<orcid...>', 'ORCID iDs'))
    // No commander default: a default would count as a flag and hide ORCID_WEBHOOKS_NOTIFY_DELAY.
    .option('--notify-delay <duration>', 'delay before the notifications are due (env ORCID_WEBHOOKS_NOTIFY_DELAY, default 0)')
    .action(async (ids: string[], opts: Opts) => withStore(opts, async (store, cfg) => {
      const now = Date.now();
      const result = await store.applyChanges(validOrcids(ids).map((orcid) => ({ orcid, modifiedAt: now, touch: true })), { create: true, now, notifyDelayMs: cfg.notifyDelayMs });
      print(opts, result, () => `${result.changed} record(s) modified, ${result.created} created; ${result.webhooksNotified} webhook notification(s) owed`);
    }));
  common(records.command('import').description("import a registry's change list: CSV with header orcid,last_modified, or JSON lines; or ORCID's lambda file (--format orcid-lambda)").argument('<file>', 'the change list'))
    .addOption(new Option('--format <format>', 'changes: CSV or JSON lines; orcid-lambda: last_modified.csv.tar (gzipped tar) or its CSV, read until the upstream cursor').choices(['changes', 'orcid-lambda']).default('changes'))
    .option('--create-records', 'orcid-lambda: also create records not known yet (default: only known records change)', false)
    .option('--all-or-nothing', 'apply nothing if any line is malformed (as POST /admin/api/changes); by default the good lines are applied and the bad ones reported', false)
    .action(async (file: string, opts: Opts) => withStore(opts, async (store, cfg) => {
      if (opts.format === 'orcid-lambda') return importOrcidLambdaCommand(store, cfg, file, opts, print, (m) => new CliError(m));
      let size: number;
      try {
        size = statSync(file).size;
      } catch {
        throw new CliError(`Cannot read ${file}: no such file`);
      }
      const bar = opts.json ? null : progressReporter(`importing ${file}`);
      let report;
      try {
        report = await importChanges(store, file, {
          notifyDelayMs: cfg.notifyDelayMs, totalBytes: size, allOrNothing: Boolean(opts.allOrNothing),
          onProgress: (p) => bar?.update(p.bytes, p.totalBytes, `${p.lines} lines`),
        });
      } catch (e) {
        throw new CliError(`Import of ${file} failed: ${(e as Error).message}`);
      } finally {
        bar?.done();
      }
      const refused = Boolean(opts.allOrNothing) && report.rejectedCount > 0;
      print(opts, report, () => [
        refused ? `${report.lines} line(s): nothing was applied (--all-or-nothing) because of malformed lines; fix them and import again` : `${report.lines} line(s): ${report.created} record(s) created, ${report.changed} modified, ${report.ignored} ignored as not newer; ${report.webhooksNotified} webhook notification(s) owed`,
        ...(report.rejectedCount ? [`${report.rejectedCount} malformed line(s) rejected:`, ...report.rejected.map((r) => `  line ${r.line}: ${r.reason}`)] : []),
      ].join('\n'));
      if (report.rejectedCount) process.exitCode = 1;
    }));

  const webhooks = program.command('webhooks').description('inspect, replay and recover webhooks');
  common(webhooks.command('list').description('list webhooks'))
    .option('--orcid <orcid>', 'only this record', orcidOption('--orcid'))
    .option('--client <id>', 'only this client')
    .addOption(new Option('--state <state>', 'only this state').choices([...WEBHOOK_STATES]))
    .option('--limit <n>', 'at most this many', positiveInt('--limit'), 100)
    .option('--after <id>', 'start after this webhook id (pagination)', webhookIdArg('--after'))
    .action(async (opts: Opts) => withStore(opts, async (store) => {
      const rows = (await store.listWebhooks({
        limit: Number(opts.limit),
        ...(opts.orcid ? { orcid: String(opts.orcid) } : {}),
        ...(opts.client ? { clientId: String(opts.client) } : {}),
        ...(opts.state ? { state: opts.state as WebhookStateName } : {}),
        ...(opts.after ? { afterId: (await webhookByPublicId(store, String(opts.after))).id } : {}),
      })).map(webhookView);
      print(opts, rows, () => table(rows.map((r) => ({ id: r.id, client: r.client, orcid: r.orcid, state: r.state, failures: r.failedAttempts, 'last sent': r.lastSent, url: r.url })), 'no webhooks match'));
    }, { existing: true }));
  common(webhooks.command('replay').description("send a webhook's notification again now, with a new webhook-id; a disabled webhook is re-enabled")
    .argument('<id>', 'webhook id (see "webhooks list")', webhookIdArg('the webhook id')))
    .action(async (id: string, opts: Opts) => withStore(opts, async (store) => {
      const r = await store.replayWebhook((await webhookByPublicId(store, id)).id, Date.now());
      if (!r) throw new CliError(`No webhook with id ${id} (see "orcid-webhooks webhooks list")`);
      const nid = notificationId(r.webhook);
      print(opts, { id, notificationId: nid, reenabled: r.reenabled }, () =>
        `webhook ${id} owes notification ${nid} now${r.reenabled ? ' (it was disabled and is enabled again)' : ''}`);
    }, { existing: true }));
  common(webhooks.command('recover').description("re-enable a client's webhooks disabled or failing since a time; each owes one notification now"))
    .requiredOption('--client <id>', 'client id')
    .requiredOption('--since <time>', 'an ISO 8601 time such as 2026-01-31T12:00:00Z')
    .action(async (opts: Opts) => withStore(opts, async (store) => {
      const raw = String(opts.since);
      const since = parseIsoTime(raw);
      if (since === null) throw new CliError(`--since must be an ISO 8601 time such as 2026-01-31T12:00:00Z, got "${raw}"`, 2);
      const recovered = await recoverClientWebhooks(store, String(opts.client), since, Date.now()).catch(deliveryError);
      print(opts, { client: opts.client, since: new Date(since).toISOString(), recovered }, () =>
        `${recovered} webhook(s) of client ${String(opts.client)} re-enabled, each owing one notification now`);
    }, { existing: true }));

  upstreamCommands(program, { common, withStore, print });

  const secrets = program.command('secrets').description('the key that encrypts signing secrets at rest');
  common(secrets.command('reseal').description('encrypt every signing secret with the current key (the first of --secrets-key, or of the key file); serve also does it at start'))
    .option('--secrets-key <keys>', 'key(s), the first encrypting (env ORCID_WEBHOOKS_SECRETS_KEY; default: the data directory\'s secrets-key file)')
    .action(async (opts: Opts) => withStore(opts, async (store) => {
      const resealed = await store.resealSigningSecrets();
      print(opts, { resealed }, () => `${resealed} client(s)' signing secrets re-encrypted with the current key`);
    }, { existing: true }));
  common(secrets.command('rotate-key').description('replace the key in the data directory\'s secrets-key file with a new one and re-encrypt every signing secret with it (restart running servers after)'))
    .action(async (opts: Opts) => {
      const cfg = config(opts);
      const [{ secretsKeys }, { rotateKeyFile }, { createStore }] = await Promise.all([import('../service.ts'), import('../ops/secrets-key.ts'), import('../store/index.ts')]);
      const loaded = secretsKeys(cfg);
      if (!loaded.file) {
        throw new CliError('the keys come from --secrets-key (ORCID_WEBHOOKS_SECRETS_KEY): set it to "NEW,OLD" (a new key from `openssl rand -base64 32` first), run `orcid-webhooks secrets reseal`, restart the servers with it, then drop OLD', 2);
      }
      const result = await rotateKeyFile(loaded.file, async (box) => {
        const store = await createStore(cfg.db, { poolSize: cfg.poolSize, statementTimeoutMs: cfg.statementTimeoutMs, secrets: box });
        try {
          await store.migrate();
          return await store.resealSigningSecrets();
        } finally {
          await store.close();
        }
      });
      print(opts, { file: loaded.file, ...result }, () =>
        `new key ${result.newKeyId} in ${loaded.file}; ${result.resealed} client(s)' signing secrets re-encrypted; dropped key(s) ${result.dropped.join(', ')}. Restart running servers so they read the new key.`);
    });

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildCli();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help' ? 0 : 2;
    if (e instanceof ConfigError || e instanceof CliError) {
      process.stderr.write(`orcid-webhooks: ${e.message}\n`);
      return e instanceof CliError ? e.exitCode : 2;
    }
    process.stderr.write(`orcid-webhooks: ${(e as Error).message}\n`);
    return 1;
  }
}

/** Commands that keep running until stopped; every other command exits with its code. */
const LONG_RUNNING = new Set(['serve', 'receive']);

/**
 * Resolves once everything written to the stream so far has been handed to the OS. A pipe's writes
 * are asynchronous: process.exit() right after a large write would cut the output short (at 64 KiB).
 */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || !stream.writable) resolve();
    else stream.write('', () => resolve());
  });
}

export async function run(argv: string[]): Promise<void> {
  const longRunning = LONG_RUNNING.has(argv[2] ?? '');
  // A reader that stops early (`| head`) closes the pipe: the rest of the output is simply not
  // wanted, so the command ends quietly instead of crashing with an EPIPE stack trace.
  if (!longRunning) {
    for (const stream of [process.stdout, process.stderr]) {
      stream.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EPIPE') throw err;
        process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
      });
    }
  }
  const code = await main(argv);
  if (longRunning && code === 0) return;
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}

// `node src/cli/main.ts` (with tsx) and `node dist/cli/main.js`; the installed executable is bin.ts.
if (process.argv[1] && /cli[\\/]main\.[jt]s$/.test(process.argv[1])) await run(process.argv);
