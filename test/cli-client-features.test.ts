/*
 * The CLI commands of issue 5 as subprocesses: clients signing-secret, clients payload,
 * webhooks replay, webhooks recover.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { loadSecretBox } from '../src/ops/secrets-key.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import { runCli, type CliResult } from './helpers/cli.ts';


function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, { env });
}

async function json<T = Record<string, unknown>>(args: string[], env?: Record<string, string>): Promise<T> {
  const r = await cli([...args, '--json'], env);
  assert.equal(r.code, 0, `${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

describe('CLI: signing secrets, payload mode, replay and recover', { concurrency: 2 }, () => {
  let dir: string;
  let db: string;
  let clientId: string;
  const ORCID = '0000-0002-1825-0097';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ow-cli5-'));
    db = `sqlite:${join(dir, 'x.db')}`;
    clientId = (await json<{ id: string }>(['clients', 'create', '--name', 'Signed', '--premium', '--db', db])).id;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Reads the store the CLI wrote (closed again at once), with the secrets key it generated beside it. */
  async function withStore<T>(fn: (s: SqliteStore) => Promise<T>): Promise<T> {
    const s = new SqliteStore(join(dir, 'x.db'), { secrets: loadSecretBox(null, dir).box });
    try {
      return await fn(s);
    } finally {
      await s.close();
    }
  }

  test('clients signing-secret: once, then --rotate (grace from the setting), --remove; clear errors', async () => {
    const first = await json<{ client: string; secret: string; previousSecretExpires: string | null }>(['clients', 'signing-secret', clientId, '--db', db]);
    assert.match(first.secret, /^whsec_/);
    assert.equal(first.previousSecretExpires, null);
    assert.doesNotThrow(() => new Webhook(first.secret), 'the library accepts the secret format');

    const again = await cli(['clients', 'signing-secret', clientId, '--db', db]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already has a signing secret.*--rotate/);
    assert.equal(again.stdout, '', 'no secret printed');

    /** The rotated-out secret's expiry lies between the call's start and end plus the grace. */
    const graceOf = async (args: string[], env?: Record<string, string>) => {
      const start = Date.now();
      const out = await json<{ secret: string; previousSecretExpires: string }>(args, env);
      const at = Date.parse(out.previousSecretExpires);
      return { out, within: (graceMs: number) => at >= start + graceMs && at <= Date.now() + graceMs };
    };
    const rotated = await graceOf(['clients', 'signing-secret', clientId, '--rotate', '--db', db], { ORCID_WEBHOOKS_SIGNING_ROTATION_GRACE: '1h' });
    assert.notEqual(rotated.out.secret, first.secret);
    assert.ok(rotated.within(3_600_000), 'the grace from the environment');
    const flagged = await graceOf(['clients', 'signing-secret', clientId, '--rotate', '--signing-rotation-grace', '2h', '--db', db], { ORCID_WEBHOOKS_SIGNING_ROTATION_GRACE: '1h' });
    assert.ok(flagged.within(7_200_000), 'the flag wins over the environment');
    const byDefault = await graceOf(['clients', 'signing-secret', clientId, '--rotate', '--db', db]);
    assert.ok(byDefault.within(24 * 3_600_000), 'default 24 h');
    await withStore(async (s) => {
      const settings = await s.getClientDeliverySettings(clientId);
      assert.equal(settings?.previousSigningSecret, flagged.out.secret);
    });

    const human = await cli(['clients', 'signing-secret', clientId, '--rotate', '--db', db]);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /^signing secret: whsec_\S+\nThe previous secret also signs until \d{4}-/);

    assert.deepEqual(await json(['clients', 'signing-secret', clientId, '--remove', '--db', db]), { client: clientId, signed: false });
    await withStore(async (s) => assert.equal((await s.getClientDeliverySettings(clientId))?.signingSecret, null));

    const unknown = await cli(['clients', 'signing-secret', 'APP-NOPE', '--db', db]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /No client with id APP-NOPE.*clients list/);
    assert.equal((await cli(['clients', 'signing-secret', clientId, '--rotate', '--remove', '--db', db])).code, 2);
  });

  test('clients payload ID json|empty', async () => {
    assert.deepEqual(await json(['clients', 'payload', clientId, 'json', '--db', db]), { client: clientId, payload: 'json' });
    await withStore(async (s) => assert.equal((await s.getClientDeliverySettings(clientId))?.payloadMode, 'json'));
    const back = await cli(['clients', 'payload', clientId, 'empty', '--db', db]);
    assert.equal(back.code, 0);
    assert.match(back.stdout, /empty body/);
    const bad = await cli(['clients', 'payload', clientId, 'xml', '--db', db]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /json or empty/);
    assert.equal((await cli(['clients', 'payload', 'APP-NOPE', 'json', '--db', db])).code, 1);
  });

  test('webhooks replay ID and webhooks recover --client --since', async () => {
    const publicIds: string[] = [];
    const ids = await withStore(async (s) => {
      await s.addRecords([ORCID], Date.now() - 60_000);
      const out: number[] = [];
      for (const u of ['https://cli.example/1', 'https://cli.example/2']) {
        const r = await s.registerWebhook({ clientId, orcid: ORCID, url: u, host: 'cli.example', now: Date.now() - 30_000 });
        if (r.outcome === 'created') out.push(r.webhook.id);
        if (r.outcome === 'created') publicIds.push(r.webhook.publicId);
      }
      // The second one fails until it is disabled.
      const now = Date.now();
      await s.replayWebhook(out[1]!, now);
      const [c] = await s.claimDue({ lease: 't', limit: 10, now, leaseMs: 1000, excludeHosts: [] });
      await s.completeAttempts([{
        webhookId: out[1]!, lease: 't', claimedSeq: c!.webhook.changeSeq, notificationId: 'n', startedAt: now, durationMs: 1, statusCode: 410,
        error: null, responseSnippet: null, latencyMs: null, outcome: { kind: 'disable', reason: '410 Gone' }, nextDueAt: now,
      }]);
      return out;
    });

    const replay = await json<{ id: string; notificationId: string; reenabled: boolean }>(['webhooks', 'replay', publicIds[0]!, '--db', db]);
    assert.equal(replay.id, publicIds[0]);
    assert.match(replay.notificationId, new RegExp(`^msg_${publicIds[0]}_\\d+$`));
    assert.equal(replay.reenabled, false);
    await withStore(async (s) => assert.notEqual((await s.getWebhook(ids[0]!))?.dueAt, null));
    const missing = await cli(['webhooks', 'replay', 'wh_00000000000000000000000000000000', '--db', db]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /No webhook with id wh_0{32}/);
    assert.equal((await cli(['webhooks', 'replay', 'abc', '--db', db])).code, 2);
    assert.equal((await cli(['webhooks', 'replay', String(ids[0]), '--db', db])).code, 2, 'the internal integer id is not accepted');

    const since = new Date(Date.now() - 3_600_000).toISOString();
    const recovered = await json<{ recovered: number }>(['webhooks', 'recover', '--client', clientId, '--since', since, '--db', db]);
    assert.equal(recovered.recovered, 1);
    await withStore(async (s) => {
      const w = await s.getWebhook(ids[1]!);
      assert.equal(w?.enabled, true);
      assert.notEqual(w?.dueAt, null);
    });
    const human = await cli(['webhooks', 'recover', '--client', clientId, '--since', since, '--db', db]);
    assert.match(human.stdout, /^0 webhook\(s\) of client APP-\w+ re-enabled/);
    const bad = await cli(['webhooks', 'recover', '--client', clientId, '--since', 'last tuesday', '--db', db]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--since must be an ISO 8601 time/);
    assert.equal((await cli(['webhooks', 'recover', '--client', 'APP-NOPE', '--since', since, '--db', db])).code, 1);
    assert.equal((await cli(['webhooks', 'recover', '--since', since, '--db', db])).code, 2, '--client is required');
  });
});
