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

describe('dashboard in Chromium', { skip, timeout: 120_000 }, () => {
  let h: Harness;
  let rx: Receiver;
  let browser: Browser;
  let webhookId: string;
  let callback: string;

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    h = await startHarness({ allowedTargets: ['127.0.0.0/8'] }, { listen: true });
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
  async function open(): Promise<{ context: BrowserContext; page: Page; problems: string[] }> {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
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

  test('sign in, touch a record, see the delivery, open its history, replay it', async () => {
    const { context, page, problems } = await open();
    try {
      await page.fill('#signin-token', ADMIN_TOKEN);
      await page.click('#signin-submit');
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      assert.equal(await page.evaluate(() => sessionStorage.getItem('orcid-webhooks.admin-token')), ADMIN_TOKEN);
      assert.ok(!page.url().includes(ADMIN_TOKEN), 'the token is never in the URL');
      await page.locator('[data-testid="stat-webhooks"]').filter({ hasText: '2' }).waitFor();

      // Record changes: touch the record by iD.
      await page.click('nav >> text=Record changes');
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

      // Webhooks: the delivered webhook shows its last sent time and status.
      await page.click('nav >> text=Webhooks');
      const row = page.locator(`tr[data-id="${webhookId}"]`);
      await row.waitFor();
      await eventually(async () => {
        const sent = (await row.locator('[data-col="last-sent"]').innerText()).trim();
        if (sent !== '—') return true;
        await page.click('button:has-text("Refresh")');
        return false;
      }, 10_000, 'last sent in the table');
      assert.equal((await row.locator('[data-col="last-status"]').innerText()).trim(), '200');

      // Search narrows the table to this webhook.
      await page.fill('input[type="search"]', 'orcid/updated');
      await page.locator('tbody tr').filter({ hasText: 'orcid/other' }).waitFor({ state: 'detached' });
      assert.equal(await page.locator('tbody tr').count(), 1);

      // Its page: the attempt answered 200.
      await row.locator('a').first().click();
      const attempts = page.locator('[data-testid="attempts"] tbody tr');
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
      await page.click('nav >> text=Record changes');
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
      const attempts = page.locator('[data-testid="attempts"] tbody tr');
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
});
