/*
 * The dashboard end to end, in Debian's headless Chromium driven by playwright-core: the service
 * in-process on a real port, a local receiver, and the browser clicking through as an operator.
 * Without /usr/bin/chromium the tests are skipped with a notice, except under CI=true where that is
 * a failure. Screenshots go to test-artifacts/ (gitignored).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { orcidFromBase } from '../src/domain/orcid-id.ts';
import { ADMIN_TOKEN, startHarness, webhookPath, type Harness } from './helpers/harness.ts';
import { eventually, startReceiver, type Receiver } from './helpers/receiver.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = 'test-artifacts';
const ORCID = '0000-0002-1825-0097';
const OTHER_ORCID = '0000-0001-5109-3700';

function browserMissing(): string | false {
  if (existsSync(CHROMIUM)) return false;
  if (process.env.CI === 'true') throw new Error(`${CHROMIUM} is missing; CI=true requires it (apt-get install chromium)`);
  const prefix = process.env.NODE_TEST_CONTEXT ? '' : '# ';
  console.log(`${prefix}${CHROMIUM} not installed: skipping the dashboard browser tests (apt-get install chromium)`);
  return `${CHROMIUM} not installed`;
}

const skip = browserMissing();

describe('dashboard in Chromium', { skip, timeout: 300_000 }, () => {
  let h: Harness;
  let rx: Receiver;
  let browser: Browser;
  let webhookId: string;
  let callback: string;

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    // A short request timeout: the layout test needs a webhook whose last attempt timed out.
    h = await startHarness({ allowedTargets: ['127.0.0.0/8'], requestTimeoutMs: 1000 }, { listen: true });
    rx = await startReceiver();
    callback = rx.url('/orcid/updated');
    await h.store.addRecords([ORCID, OTHER_ORCID], Date.now() - 60_000);
    for (const [orcid, url] of [[ORCID, callback], [OTHER_ORCID, rx.url('/orcid/other')]] as const) {
      const res = await h.svc.app.inject({ method: 'PUT', url: webhookPath(orcid, url), headers: { authorization: `Bearer ${h.token}` } });
      assert.equal(res.statusCode, 201, res.body);
    }
    webhookId = (await h.store.findWebhook(h.clientId, ORCID, callback))!.publicId;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'],
    });
  });

  after(async () => {
    await browser?.close();
    await rx?.close();
    await h?.close();
  });

  /** A fresh context and page; any console error or uncaught exception (a CSP violation, a bug) fails the test. */
  async function open(viewport = { width: 1440, height: 900 }): Promise<{ context: BrowserContext; page: Page; problems: string[] }> {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
      // Refused requests (401, 400) are expected in some tests: the browser logs each one itself.
      if (msg.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(msg.text())) problems.push(`console: ${msg.text()}`);
    });
    await page.goto(`${h.svc.url}/admin`);
    return { context, page, problems };
  }

  async function signIn(page: Page): Promise<void> {
    await page.fill('#signin-token', ADMIN_TOKEN);
    await page.click('#signin-submit');
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
  }

  const go = (page: Page, hash: string) => page.evaluate((hash) => { location.hash = hash; }, hash);

  test('sign in, touch a record, see the delivery, open its history, replay it', async () => {
    const { context, page, problems } = await open();
    try {
      await page.fill('#signin-token', ADMIN_TOKEN);
      await page.click('#signin-submit');
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      assert.equal(await page.evaluate(() => sessionStorage.getItem('orcid-webhooks.admin-token')), ADMIN_TOKEN);
      assert.ok(!page.url().includes(ADMIN_TOKEN), 'the token is never in the URL');
      await page.locator('[data-testid="stat-webhooks"]').filter({ hasText: '2' }).waitFor();

      // Records: touch the record by iD.
      await page.click('nav >> text=Records');
      await page.fill('#touch-orcid', ORCID);
      await page.click('button:has-text("Touch record")');
      const result = page.locator('[data-testid="touch-result"]');
      await result.waitFor();
      assert.match(await result.innerText(), /marked modified/);
      assert.match(await result.innerText(), /1 webhook notified/);
      // The record's webhooks are re-read while the page is open: the delivery shows there too.
      await page.locator('[data-testid="record-webhooks"] .badge-ok').filter({ hasText: '200' }).waitFor({ timeout: 10_000 });
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-records.png`, fullPage: true });
      const [first] = await rx.waitFor(1);
      assert.equal(first!.path, '/orcid/updated');

      // Webhooks: the delivered webhook shows its last attempt, its status and its last success.
      await page.click('nav >> text=Webhooks');
      const row = page.locator(`tr[data-id="${webhookId}"]`);
      await row.waitFor();
      await eventually(async () => {
        const sent = (await row.locator('[data-col="last-success"]').innerText()).trim();
        if (sent !== '—') return true;
        await page.click('button:has-text("Refresh")');
        return false;
      }, 10_000, 'last success in the table');
      assert.notEqual((await row.locator('[data-col="last-attempt"]').innerText()).trim(), '—');
      assert.equal((await row.locator('[data-col="last-status"]').innerText()).trim(), '200');

      // Search narrows the table to this webhook.
      await page.fill('input[type="search"]', 'orcid/updated');
      await page.locator('tbody tr').filter({ hasText: 'orcid/other' }).waitFor({ state: 'detached' });
      assert.equal(await page.locator('tbody tr').count(), 1);

      // Its page: the attempt answered 200.
      await row.locator('a').first().click();
      const attempts = page.locator('[data-testid="attempts"] tbody tr[data-attempt]');
      await attempts.first().waitFor();
      assert.equal(await attempts.count(), 1);
      assert.equal((await attempts.first().locator('[data-col="result"]').innerText()).trim(), '200');

      // Replay now: a second callback reaches the receiver and shows in the history.
      await page.click('button:has-text("Replay now")');
      const got = await rx.waitFor(2, 10_000);
      assert.equal(got[1]!.path, '/orcid/updated');
      await eventually(async () => (await attempts.count()) === 2, 10_000, 'the replayed attempt in the history');
      assert.deepEqual((await attempts.locator('[data-col="result"]').allInnerTexts()).map((t) => t.trim()), ['200', '200']);
      await page.screenshot({ path: `${ARTIFACTS}/dashboard.png`, fullPage: true });

      // The other pages render too (and are kept as artefacts for review).
      await page.click('nav >> text=Overview');
      await page.locator('[data-testid="stat-success"]').filter({ hasText: '100%' }).waitFor();
      await page.locator('.chart canvas').first().waitFor();
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-overview.png`, fullPage: true });
      await page.click('nav >> text=Webhooks');
      await page.locator(`tr[data-id="${webhookId}"]`).waitFor();
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-webhooks.png`, fullPage: true });
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('clients: create shows the secret once; revoke asks for confirmation', async () => {
    const { context, page, problems } = await open();
    try {
      await page.fill('#signin-token', ADMIN_TOKEN);
      await page.click('#signin-submit');
      await page.click('nav >> text=Clients');
      await page.fill('#client-name', 'Example University CRIS');
      await page.click('button:has-text("Create client")');
      const secret = page.locator('[data-testid="secret-value"]');
      await secret.waitFor();
      assert.match(await secret.innerText(), /\S{20,}/);
      const created = (await h.store.listClients()).find((c) => c.name === 'Example University CRIS');
      assert.ok(created && created.revokedAt === null);
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-clients.png`, fullPage: true });

      const row = page.locator(`tr[data-client="${created.id}"]`);
      await row.locator('button:has-text("Revoke")').click();
      await page.locator('#confirm').getByRole('button', { name: 'Cancel' }).click();
      assert.equal((await h.store.getClient(created.id))?.revokedAt, null, 'cancel changes nothing');
      await row.locator('button:has-text("Revoke")').click();
      await page.locator('#confirm').getByRole('button', { name: 'Revoke client' }).click();
      await row.locator('text=Revoked').waitFor();
      assert.ok((await h.store.getClient(created.id))?.revokedAt);

      // A refused request shows the server's message.
      await page.click('nav >> text=Records');
      await page.fill('#touch-orcid', '0000-0002-1825-0098');
      await page.click('button:has-text("Touch record")');
      const alert = page.locator('[role="alert"]').filter({ hasText: 'Could not touch' });
      await alert.waitFor();
      assert.match(await alert.innerText(), /check/i);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('a disabled webhook: re-enable sends what it owed; delete asks for confirmation', async () => {
    const GONE_ORCID = '0000-0002-1694-233X';
    const gone = rx.url('/orcid/gone');
    const hits = () => rx.received.filter((r) => r.path === '/orcid/gone').length;
    rx.behave((r, res) => {
      // The first callback is refused for good (410 disables the webhook); later ones succeed.
      res.writeHead(r.path === '/orcid/gone' && hits() === 1 ? 410 : 200).end('ok');
    });
    await h.store.addRecords([GONE_ORCID], Date.now() - 60_000);
    const reg = await h.svc.app.inject({ method: 'PUT', url: webhookPath(GONE_ORCID, gone), headers: { authorization: `Bearer ${h.token}` } });
    assert.equal(reg.statusCode, 201, reg.body);
    const id = (await h.store.findWebhook(h.clientId, GONE_ORCID, gone))!.publicId;
    await h.store.applyChanges([{ orcid: GONE_ORCID, modifiedAt: Date.now(), touch: true }], { create: false, now: Date.now(), notifyDelayMs: 0 });
    h.svc.worker!.notify();
    await eventually(async () => (await h.store.getWebhookByPublicId(id))?.enabled === false, 5000, 'disabled by 410');

    const { context, page, problems } = await open();
    try {
      await page.fill('#signin-token', ADMIN_TOKEN);
      await page.click('#signin-submit');
      await page.click('nav >> text=Webhooks');
      await page.selectOption('select[aria-label="Filter by state"]', 'disabled');
      const row = page.locator(`tr[data-id="${id}"]`);
      await row.waitFor();
      // The unfiltered list may still be on screen for a moment: wait for the filtered one.
      await eventually(async () => (await page.locator('tbody tr').count()) === 1, 5000, 'only the disabled webhook listed');
      await row.locator('a').first().click();
      await page.locator('.alert-warn').filter({ hasText: 'Disabled' }).waitFor();
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-disabled.png`, fullPage: true });

      await page.click('button:has-text("Re-enable")');
      await eventually(() => hits() === 2, 10_000, 'the owed callback after re-enabling');
      const attempts = page.locator('[data-testid="attempts"] tbody tr[data-attempt]');
      await eventually(async () => (await attempts.count()) === 2, 10_000, 'two attempts in the history');
      assert.equal(await page.locator('button:has-text("Re-enable")').isVisible(), false);

      await page.click('button:has-text("Delete")');
      await page.locator('#confirm').getByRole('button', { name: 'Cancel' }).click();
      assert.ok(await h.store.getWebhookByPublicId(id), 'cancel keeps it');
      await page.click('button:has-text("Delete")');
      await page.locator('#confirm').getByRole('button', { name: 'Delete webhook' }).click();
      await page.getByRole('heading', { name: 'Webhooks' }).waitFor();
      assert.equal(await h.store.getWebhookByPublicId(id), null);
      assert.deepEqual(problems, []);
    } finally {
      rx.behave((_r, res) => { res.writeHead(200).end('ok'); });
      await context.close();
    }
  });

  test('a wrong admin token shows an error and nothing loads', async () => {
    const { context, page, problems } = await open();
    const apiCalls: string[] = [];
    page.on('request', (r) => {
      if (r.url().includes('/admin/api/')) apiCalls.push(r.url());
    });
    try {
      await page.fill('#signin-token', 'not-the-admin-token');
      await page.click('#signin-submit');
      const error = page.locator('#signin-error');
      await error.waitFor({ state: 'visible' });
      assert.match(await error.innerText(), /not accepted/);
      assert.equal(await page.locator('#shell').isVisible(), false);
      assert.equal(await page.locator('#view').innerHTML(), '');
      assert.equal(await page.evaluate(() => sessionStorage.getItem('orcid-webhooks.admin-token')), null);
      assert.deepEqual(apiCalls.map((u) => new URL(u).pathname), ['/admin/api/overview'], 'only the sign-in check was made');
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-signin-error.png` });
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });
  test('failed attempts: the last attempt shows beside an empty last success; attempt headers with secrets redacted; failures by host and client', async () => {
    const FAIL_ORCID = orcidFromBase(900_000_000_001);
    const failing = rx.url('/orcid/failing');
    rx.behave((r, res) => {
      if (r.path === '/orcid/failing') res.writeHead(503, { 'x-receiver': 'test-receiver', 'set-cookie': 'session=receiver-cookie-value' }).end('busy');
      else res.writeHead(200).end('ok');
    });
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
    const secret = await h.svc.app.inject({ method: 'POST', url: `/admin/api/clients/${h.clientId}/signing-secret`, headers: admin, payload: '{}' });
    assert.equal(secret.statusCode, 201, secret.body);
    await h.store.addRecords([FAIL_ORCID], Date.now() - 60_000);
    const reg = await h.svc.app.inject({ method: 'PUT', url: webhookPath(FAIL_ORCID, failing), headers: { authorization: `Bearer ${h.token}` } });
    assert.equal(reg.statusCode, 201, reg.body);
    const found = (await h.store.findWebhook(h.clientId, FAIL_ORCID, failing))!;
    const id = found.publicId;
    await h.store.applyChanges([{ orcid: FAIL_ORCID, modifiedAt: Date.now(), touch: true }], { create: false, now: Date.now(), notifyDelayMs: 0 });
    h.svc.worker!.notify();
    await eventually(async () => ((await h.store.getWebhook(found.id))?.failedAttempts ?? 0) >= 1, 10_000, 'a failed attempt');
    const sent = rx.received.find((r) => r.path === '/orcid/failing')!;
    const signature = String(sent.headers['webhook-signature']);
    assert.match(signature, /^v1,/, 'the callback was signed');

    const { context, page, problems } = await open();
    try {
      await signIn(page);
      // The list: a last attempt, no success.
      await go(page, '#/webhooks?search=orcid/failing');
      const row = page.locator(`tr[data-id="${id}"]`);
      await row.waitFor();
      assert.notEqual((await row.locator('[data-col="last-attempt"]').innerText()).trim(), '—');
      assert.equal((await row.locator('[data-col="last-success"]').innerText()).trim(), '—');
      assert.equal((await row.locator('[data-col="last-status"]').innerText()).trim(), '503');

      // Its page: the same, and the headers of the attempt.
      await row.locator('a').first().click();
      await page.locator('[data-testid="attempts"] tbody tr[data-attempt]').first().waitFor();
      assert.notEqual((await page.locator('[data-testid="last-attempt"]').innerText()).trim(), '—');
      assert.equal((await page.locator('[data-testid="last-success"]').innerText()).trim(), '—');
      const detail = page.locator('tr.attempt-detail').first();
      assert.equal(await detail.isVisible(), false);
      await page.locator('[data-testid="attempts"] tbody tr[data-attempt]').first().getByRole('button', { name: 'Headers' }).click();
      await detail.waitFor();
      const text = await detail.innerText();
      for (const expected of [/webhook-id\s+msg_/, /user-agent\s+orcid-webhooks\//, /webhook-signature\s+\[redacted\]/, /x-receiver\s+test-receiver/, /set-cookie\s+\[redacted\]/]) {
        assert.match(text, expected);
      }
      const html = await page.content();
      assert.ok(!html.includes(signature.slice(3, 20)), 'the signature is not in the page');
      assert.ok(!html.includes('receiver-cookie-value'), 'the cookie is not in the page');
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-attempt-headers.png`, fullPage: true });

      // The overview: failures by receiving host and by client, the oldest owed notification, callbacks in flight.
      await page.click('nav >> text=Overview');
      await page.locator('[data-testid="failures-by-host"] tr').filter({ hasText: '127.0.0.1' }).waitFor();
      await page.locator('[data-testid="failures-by-client"] tr').filter({ hasText: 'Test premium' }).waitFor();
      // A failing host's link opens the webhooks of exactly that host, the filter shown and removable.
      await page.locator('[data-testid="failures-by-host"] a').filter({ hasText: '127.0.0.1' }).first().click();
      await page.locator('[data-testid="host-filter"]').filter({ hasText: '127.0.0.1' }).waitFor();
      assert.match(page.url(), /#\/webhooks\?host=127\.0\.0\.1/);
      await page.locator('tbody tr').filter({ hasText: failing }).first().waitFor();
      await page.click('[data-testid="host-filter"] button');
      await page.waitForFunction(() => !location.hash.includes('host='));
      await page.click('nav >> text=Overview');
      await page.locator('[data-testid="failures-by-host"] tr').filter({ hasText: '127.0.0.1' }).waitFor();
      assert.notEqual((await page.locator('[data-testid="stat-oldest-owed"]').innerText()).trim(), 'none', 'the failing webhook still owes its notification');
      assert.match((await page.locator('[data-testid="stat-in-flight"]').innerText()).trim(), /^\d+$/);
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-overview-failures.png`, fullPage: true });
      // The oldest owed card opens the webhook that owes it: here the failing one, in no "pending" list.
      await page.click('[data-testid="stat-oldest-owed"]');
      await page.waitForFunction(() => /^#\/webhooks\/wh_/.test(location.hash));
      await page.locator('main').filter({ hasText: failing }).waitFor();
      assert.deepEqual(problems, []);
    } finally {
      await h.store.deleteWebhook(h.clientId, FAIL_ORCID, failing);
      await h.svc.app.inject({ method: 'DELETE', url: `/admin/api/clients/${h.clientId}/signing-secret`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      rx.behave((_r, res) => { res.writeHead(200).end('ok'); });
      await context.close();
    }
  });

  test('an unknown webhook id gets a page that says so, with a way back', async () => {
    const { context, page, problems } = await open();
    try {
      await signIn(page);
      for (const [id, reason] of [['wh_00000000000000000000000000000000', /may have been deleted/], ['987654321', /not a webhook id/]] as const) {
        await go(page, `#/webhooks/${id}`);
        const panel = page.locator('[data-testid="webhook-not-found"]');
        await panel.filter({ hasText: `No webhook #${id}` }).waitFor();
        assert.match(await panel.innerText(), reason);
        assert.equal(await page.locator('button:has-text("Replay now")').count(), 0, 'no actions on a webhook that does not exist');
      }
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-webhook-not-found.png`, fullPage: true });
      await page.locator('[data-testid="webhook-not-found"] input[type="search"]').fill('orcid/updated');
      await page.click('button:has-text("Search webhooks")');
      await page.locator(`tr[data-id="${webhookId}"]`).waitFor();
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('records: the list pages through known records, finds one by iD, and touches it', async () => {
    const many = Array.from({ length: 30 }, (_, i) => orcidFromBase(900_000_000_100 + i));
    await h.store.addRecords(many, Date.now() - 60_000);
    const total = (await h.store.listRecords({ limit: 1000 })).length;
    const { context, page, problems } = await open();
    try {
      await signIn(page);
      await page.click('nav >> text=Records');
      const rows = page.locator('[data-testid="records"] tbody tr');
      await rows.first().waitFor();
      assert.equal(await rows.count(), 25);
      const firstPage = await rows.evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.orcid));
      await page.click('button:has-text("Next →")');
      await eventually(async () => (await rows.count()) === total - 25, 5000, 'the second page');
      const secondPage = await rows.evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.orcid));
      assert.deepEqual([...firstPage, ...secondPage], [...firstPage, ...secondPage].sort(), 'ordered by iD across pages');
      assert.equal(new Set([...firstPage, ...secondPage]).size, total, 'every record once');

      await page.fill('#records-find', OTHER_ORCID);
      await eventually(async () => (await rows.count()) === 1, 5000, 'one record found');
      const row = page.locator(`tr[data-orcid="${OTHER_ORCID}"]`);
      await row.getByRole('button', { name: 'Touch' }).click();
      const result = page.locator('[data-testid="touch-result"]');
      await result.waitFor();
      assert.match(await result.innerText(), new RegExp(`${OTHER_ORCID} marked modified`));
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-records-list.png`, fullPage: true });

      // Its webhooks: exactly this record's, not those of another record whose callback URL names this iD.
      const decoy = rx.url(`/mentions/${OTHER_ORCID}/updated`);
      const reg = await h.svc.app.inject({ method: 'PUT', url: webhookPath(ORCID, decoy), headers: { authorization: `Bearer ${h.token}` } });
      assert.equal(reg.statusCode, 201, reg.body);
      try {
        await row.getByRole('link', { name: 'Webhooks' }).click();
        await page.locator('[data-testid="orcid-filter"]').filter({ hasText: OTHER_ORCID }).waitFor();
        const listed = page.locator('main tbody tr');
        await listed.first().waitFor();
        const texts = await listed.allInnerTexts();
        assert.ok(texts.length >= 1 && texts.every((t) => t.includes(OTHER_ORCID) && !t.includes('/mentions/')), texts.join('\n'));
      } finally {
        await h.store.deleteWebhook(h.clientId, ORCID, decoy);
      }
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('durations and shares are rounded sensibly: no "60.0 s", no hours in minutes, no 100% with failures', async () => {
    const { context, page, problems } = await open();
    try {
      const got = await page.evaluate(async () => {
        const { fmtMs, fmtPercent } = await import('/admin/assets/ui.js' as string) as { fmtMs: (ms: number) => string; fmtPercent: (r: number) => string };
        return {
          ms: [999.4, 999.6, 9_994, 9_996, 59_940, 59_960, 90_000, 3_596_000, 3_598_000, 5_400_000, 7_200_000].map(fmtMs),
          percent: [1, 0.9996, 0.999, 0.5, 0.0004, 0].map(fmtPercent),
        };
      });
      assert.deepEqual(got.ms, ['999 ms', '1.00 s', '9.99 s', '10.0 s', '59.9 s', '1.0 min', '1.5 min', '59.9 min', '1.0 h', '1.5 h', '2.0 h']);
      assert.deepEqual(got.percent, ['100%', '>99.9%', '99.9%', '50.0%', '<0.1%', '0%']);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('leaving the records page while a touch is on its way starts no watch of its webhooks', async () => {
    const { context, page, problems } = await open();
    try {
      await signIn(page);
      await page.click('nav >> text=Records');
      await page.route('**/admin/api/records/*', async (route) => {
        await new Promise((r) => setTimeout(r, 1000));
        await route.continue();
      });
      await page.fill('#touch-orcid', ORCID);
      await page.click('button:has-text("Touch record")');
      await page.click('nav >> text=Clients');
      await page.waitForTimeout(1500); // the touch has been answered
      const watched: string[] = [];
      page.on('request', (r) => {
        if (new URL(r.url()).pathname === '/admin/api/webhooks') watched.push(r.url());
      });
      await page.waitForTimeout(3000); // more than the watch's 2 s
      assert.deepEqual(watched, [], 'the records page, no longer shown, still watched the touched record');
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('the button that removes a host or record filter is named for a screen reader, not "×"', async () => {
    const { context, page, problems } = await open();
    try {
      await signIn(page);
      await go(page, `#/webhooks?host=127.0.0.1&orcid=${ORCID}`);
      await page.locator('[data-testid="host-filter"] button').waitFor();
      await page.getByRole('button', { name: 'Show every host', exact: true }).click();
      await page.waitForFunction(() => !location.hash.includes('host='));
      await page.getByRole('button', { name: 'Show every record', exact: true }).click();
      await page.waitForFunction(() => !location.hash.includes('orcid='));
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('leaving a page before it has loaded stops the auto-refresh of the page shown next, once that one is left', async () => {
    const { context, page, problems } = await open();
    try {
      await signIn(page);
      // A slow server: the clients page is still loading when the operator moves on to the overview.
      await page.route('**/admin/api/clients', async (route) => {
        await new Promise((r) => setTimeout(r, 1500));
        await route.continue();
      });
      await go(page, '#/clients');
      await go(page, '#/overview');
      await page.locator('[data-testid="stat-webhooks"]').waitFor();
      await page.waitForTimeout(2000); // the clients page's load has ended by now
      await go(page, '#/records');
      await page.locator('[data-testid="records"] tbody tr').first().waitFor();
      const overviewCalls: string[] = [];
      page.on('request', (r) => {
        if (new URL(r.url()).pathname === '/admin/api/overview') overviewCalls.push(r.url());
      });
      await page.waitForTimeout(6000); // more than the overview's 5 s refresh
      assert.deepEqual(overviewCalls, [], 'the overview, no longer shown, still refreshed');
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('every page fits the window at 1280 and 390 px: no horizontal scroll', async () => {
    // A long callback URL is what used to widen the webhooks list beyond the window.
    const longUrl = rx.url(`/orcid/${'a-very-long-path-segment-'.repeat(12)}end?token=${'x'.repeat(80)}`);
    const reg = await h.svc.app.inject({ method: 'PUT', url: webhookPath(ORCID, longUrl), headers: { authorization: `Bearer ${h.token}` } });
    assert.equal(reg.statusCode, 201, reg.body);
    const long = (await h.store.findWebhook(h.clientId, ORCID, longUrl))!;
    const longId = long.publicId;
    await h.store.applyChanges([{ orcid: ORCID, modifiedAt: Date.now(), touch: true }], { create: false, now: Date.now(), notifyDelayMs: 0 });
    h.svc.worker!.notify();
    await eventually(async () => (await h.store.listAttempts(long.id, 1)).length === 1, 10_000, 'an attempt of the long-URL webhook');

    // A receiver that never answers: the last status is a long timeout message, which used to widen
    // the list's last-attempt column (the table scrolled sideways) and the webhook's page at 390 px.
    const HANG_ORCID = orcidFromBase(900_000_000_002);
    const hang = rx.url('/orcid/hang');
    rx.behave((r, res) => {
      if (r.path !== '/orcid/hang') res.writeHead(200).end('ok');
    });
    await h.store.addRecords([HANG_ORCID], Date.now() - 60_000);
    const hangReg = await h.svc.app.inject({ method: 'PUT', url: webhookPath(HANG_ORCID, hang), headers: { authorization: `Bearer ${h.token}` } });
    assert.equal(hangReg.statusCode, 201, hangReg.body);
    const hanging = (await h.store.findWebhook(h.clientId, HANG_ORCID, hang))!;
    await h.store.applyChanges([{ orcid: HANG_ORCID, modifiedAt: Date.now(), touch: true }], { create: false, now: Date.now(), notifyDelayMs: 0 });
    h.svc.worker!.notify();
    await eventually(async () => ((await h.store.getWebhook(hanging.id))?.failedAttempts ?? 0) >= 1, 10_000, 'a timed-out attempt');

    const pages: [string, string, string][] = [
      ['overview', '#/overview', '.chart canvas'],
      ['webhooks', '#/webhooks', `tr[data-id="${longId}"]`],
      ['webhooks-timeout', '#/webhooks?search=orcid/hang', `tr[data-id="${hanging.publicId}"]`],
      ['webhook', `#/webhooks/${longId}`, '[data-testid="attempts"] tbody tr[data-attempt]'],
      ['webhook-timeout', `#/webhooks/${hanging.publicId}`, '[data-testid="attempts"] tbody tr[data-attempt]'],
      ['webhook-unknown', '#/webhooks/987654321', '[data-testid="webhook-not-found"]'],
      ['clients', '#/clients', 'tr[data-client]'],
      ['records', '#/records', '[data-testid="records"] tbody tr'],
    ];
    /** The page's overflow, and that of each table inside its card (a table that scrolls sideways hides columns). */
    const overflow = (page: Page) => page.evaluate(() => {
      const d = document.documentElement;
      const tables = [...document.querySelectorAll('.table-wrap')].filter((el) => el.scrollWidth > el.clientWidth)
        .map((el) => `${el.querySelector('thead')?.textContent?.slice(0, 40)} (${el.scrollWidth} > ${el.clientWidth})`);
      return { scrollWidth: d.scrollWidth, clientWidth: d.clientWidth, tables };
    });
    const failures: string[] = [];
    const check = async (page: Page, name: string, width: number, fullPage = true) => {
      const o = await overflow(page);
      if (o.scrollWidth > o.clientWidth) failures.push(`${name} at ${width} px: scrollWidth ${o.scrollWidth} > clientWidth ${o.clientWidth}`);
      for (const t of o.tables) failures.push(`${name} at ${width} px: a table scrolls sideways: ${t}`);
      await page.screenshot({ path: `${ARTIFACTS}/layout-${name}-${width}.png`, fullPage });
    };
    for (const width of [1280, 390]) {
      const { context, page, problems } = await open({ width, height: 900 });
      try {
        await page.locator('#signin-form').waitFor();
        await check(page, 'signin', width);
        await signIn(page);
        for (const [name, hash, ready] of pages) {
          await go(page, hash);
          await page.locator(ready).first().waitFor();
          // Open every attempt's headers: their long values must wrap, not widen the page.
          for (const button of await page.getByRole('button', { name: 'Headers' }).all()) await button.click();
          await check(page, name, width);
        }
        await page.goto(`${h.svc.url}/docs`);
        await page.locator('details').first().waitFor();
        await check(page, 'docs', width);
        // Every operation opened (the screenshot shows the first screen: the whole is very long).
        await page.evaluate(() => { for (const d of document.querySelectorAll('details')) d.open = true; });
        await check(page, 'docs-open', width, false);
        // A path on /docs is not squeezed to one character per line: each box holds at least 12 characters (or the whole path).
        const squeezed = await page.evaluate(() => [...document.querySelectorAll('.path')]
          .filter((el) => el.getBoundingClientRect().width < Math.min(el.textContent!.length, 12) * 7)
          .map((el) => el.textContent));
        if (squeezed.length) failures.push(`docs at ${width} px: paths squeezed: ${squeezed.join(', ')}`);
        assert.deepEqual(problems, []);
      } finally {
        await context.close();
      }
    }
    await h.store.deleteWebhook(h.clientId, HANG_ORCID, hang);
    rx.behave((_r, res) => { res.writeHead(200).end('ok'); });
    assert.deepEqual(failures, []);
  });
});
