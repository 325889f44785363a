/*
 * The dashboard's Upstream panel in headless Chromium (skipped without /usr/bin/chromium, except
 * under CI=true): state, cursor, lag, next poll, and the last error while the fake ORCID is down.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { FakeOrcid } from './helpers/fake-orcid.ts';
import { ADMIN_TOKEN, startHarness, type Harness } from './helpers/harness.ts';
import { eventually } from './helpers/receiver.ts';

const CHROMIUM = '/usr/bin/chromium';
const missing = existsSync(CHROMIUM) ? false : process.env.CI === 'true' ? (() => { throw new Error(`${CHROMIUM} is missing; CI=true requires it`); })() : `${CHROMIUM} not installed`;

describe('dashboard: the Upstream panel', { skip: missing, timeout: 90_000 }, () => {
  let h: Harness;
  let fake: FakeOrcid;
  let browser: Browser;

  before(async () => {
    mkdirSync('test-artifacts', { recursive: true });
    fake = await FakeOrcid.start({ records: 100 });
    h = await startHarness({
      upstream: { name: 'custom', apiUrl: fake.url, tokenUrl: null }, upstreamTokenUrl: fake.tokenUrl,
      upstreamClientId: fake.clientId, upstreamClientSecret: fake.clientSecret, upstreamIntervalMs: 500, upstreamOverlapMs: 1000,
    }, { listen: true });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
  });

  after(async () => {
    await browser?.close();
    await h?.close();
    await fake?.close();
  });

  test('shows the state, cursor and lag; a failing upstream shows its error and never signs the operator out', async () => {
    await eventually(() => h.svc.upstream!.poller.status().state === 'idle', 10_000, 'first poll');
    const page = await (await browser.newContext()).newPage();
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(err.message));
    await page.goto(`${h.svc.url}/admin`);
    await page.fill('#signin-token', ADMIN_TOKEN);
    await page.click('#signin-submit');
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.click('nav >> text=Upstream');
    await page.getByRole('heading', { name: 'Upstream' }).waitFor();
    const state = page.locator('[data-testid="upstream-state"]');
    await state.filter({ hasText: /idle|polling/ }).waitFor();
    assert.match(await page.locator('[data-testid="upstream-cursor"]').innerText(), /^\d{4}-\d{2}-\d{2}T/);
    assert.match(await page.locator('[data-testid="upstream-lag"]').innerText(), /^\d+(\.\d)? s$/);
    assert.equal(await page.locator('[data-testid="upstream-last-error"]').innerText(), 'none');

    fake.setOutage('503');
    await eventually(() => h.svc.upstream!.poller.status().state === 'backoff', 30_000, 'backoff');
    await page.click('button:has-text("Refresh")');
    await state.filter({ hasText: 'backoff' }).waitFor();
    assert.match(await page.locator('[data-testid="upstream-last-error"]').innerText(), /503/);
    await page.screenshot({ path: 'test-artifacts/dashboard-upstream.png', fullPage: true });
    fake.setOutage('off');
    assert.deepEqual(problems, []);
  });
});
