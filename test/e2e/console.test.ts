/**
 * The web console end to end, in a real browser: Debian's chromium driven by playwright-core,
 * against a real `ferry serve` and two real redis-servers. Screenshots of every page go to
 * test-output/console/ (FERRY_TEST_OUTPUT overrides the folder).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { pipelinedLoad } from '../helpers/load.js';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { startService, type Service } from '../helpers/service.js';
import { compareServers, formatDifferences } from '../helpers/compare.js';
import { rawRequest } from '../helpers/http.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const OUT = path.resolve(process.env.FERRY_TEST_OUTPUT ?? path.join(root, 'test-output'), 'console');
const PROJECT = '0123456789abcdef0123456789abcdef';
const AK = 'FERRYCONSOLEAK000001';
const SK = 'ferry-console-secret-key-00000000000001';
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** The launch every browser test uses: headless, no sandbox (root in CI), nothing phoning home. */
export async function launchChromium(): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  const userDataDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });
}

describe('the built console', () => {
  it('web/dist is the build of web/src (the committed assets are current)', async () => {
    const out = mkdtempSync(path.join(os.tmpdir(), 'ferry-console-build-'));
    try {
      const { build } = await import('vite');
      await build({ configFile: path.join(root, 'web/vite.config.ts'), logLevel: 'silent', build: { outDir: out, emptyOutDir: true } });
      // Asset names carry a hash of their content: the same index.html means the same build.
      assert.equal(readFileSync(path.join(out, 'index.html'), 'utf8'), readFileSync(path.join(root, 'web/dist/index.html'), 'utf8'), 'web/dist is stale: run npm run build:console');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

describe('the web console, in chromium', () => {
  let service: Service;
  let source: RedisServer;
  let target: RedisServer;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;

  before(async () => {
    mkdirSync(OUT, { recursive: true });
    [source, target] = await Promise.all([startRedis({ password: 'console-src-pass', config: { 'repl-diskless-sync-delay': '0' } }), startRedis()]);
    service = await startService({ credentials: [{ ak: AK, sk: SK, projectId: PROJECT }] });
    browser = await launchChromium();
    page = await browser.context.newPage();
    page.setDefaultTimeout(20_000);
  });

  after(async () => {
    await browser?.close();
    await service?.stop();
    service?.cleanup();
    await stopAll();
  });

  it('signs in with the keyboard; the session is an HttpOnly, SameSite=Strict cookie and the SK is stored nowhere', async () => {
    await page.goto(`${service.endpoint}/console/`);
    await page.getByRole('heading', { name: 'Ferry console' }).waitFor();
    await shot(page, '01-sign-in');
    // A wrong SK: the API's answer, on the page.
    await page.getByLabel('Access key (AK)').fill(AK);
    await page.getByLabel('Secret key (SK)').fill('wrong');
    await page.keyboard.press('Enter');
    await page.getByRole('alert').filter({ hasText: 'APIGW' }).or(page.getByRole('alert').filter({ hasText: 'not valid' })).waitFor();
    // Keyboard only: focus, type, tab, type, Enter.
    await page.getByLabel('Secret key (SK)').fill('');
    await page.getByLabel('Access key (AK)').focus();
    await page.keyboard.press('Tab');
    await page.keyboard.type(SK);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Migration tasks' }).waitFor();

    const cookies = await browser.context.cookies();
    const session = cookies.find((c) => c.name === 'ferry_session');
    assert.ok(session, 'a session cookie is set');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.ok(session.expires > Date.now() / 1000 && session.expires < Date.now() / 1000 + 2 * 3600, 'short-lived');
    const stored = await page.evaluate(() => JSON.stringify({ local: { ...localStorage }, sessionStorage: { ...sessionStorage }, cookie: document.cookie }));
    assert.ok(!stored.includes(SK), `the SK is not kept by the page: ${stored}`);
    assert.ok(!stored.includes('ferry_session'), 'the session cookie is not readable by scripts');
  });

  it('creates an incremental task; a bad value shows the API error next to the field; the task reaches INCRMIGEATING with lag 0', async () => {
    const seed = source.client();
    for (let i = 0; i < 200; i++) await seed.set(`seed:${i}`, `v${i}`);
    await page.getByRole('link', { name: 'New task', exact: true }).first().click();
    await page.getByRole('heading', { name: 'New migration task' }).waitFor();
    await page.getByLabel('Name').fill('console-e2e');
    await page.getByLabel('Method').selectOption('incremental_migration');
    await page.getByLabel('Bandwidth limit (MB/s)').fill('0');
    const sourceSet = page.getByRole('group', { name: 'Source' });
    await sourceSet.getByLabel('Addresses', { exact: true }).fill(source.addr);
    await sourceSet.getByLabel('Password', { exact: true }).fill('console-src-pass');
    await page.getByRole('group', { name: 'Target' }).getByLabel('Addresses', { exact: true }).fill(target.addr);
    await page.getByRole('button', { name: 'Create and start' }).click();
    // The API's DCS error, next to the field it names, and the field focused.
    const fieldError = page.locator('#bandwidth_limit_mb-error');
    await fieldError.waitFor();
    assert.match(await fieldError.innerText(), /1 to 10240/);
    assert.match(await page.locator('#form-error').innerText(), /DCS\.4800/);
    assert.equal(await page.getByLabel('Bandwidth limit (MB/s)').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'bandwidth_limit_mb');
    await shot(page, '02-form-error');
    // The password the user typed stays in its input, never in the page's markup.
    assert.ok(!(await page.content()).includes('console-src-pass'), 'the password is not in the markup');

    await page.getByLabel('Bandwidth limit (MB/s)').fill('50');
    await page.getByRole('button', { name: 'Configure and start' }).click();
    await page.getByRole('heading', { name: 'console-e2e' }).waitFor();

    // Live writes while it runs: concurrent pipelined bursts of non-commutative pairs.
    const load = pipelinedLoad(source, { clients: 3, burst: 60, pauseMs: 20 });
    await page.locator('.badge', { hasText: 'INCRMIGEATING' }).waitFor({ timeout: 30_000 });
    await new Promise((r) => setTimeout(r, 1500));
    await load.stop();
    await page.locator('[data-metric="lag-bytes"]', { hasText: /^0 B$/ }).waitFor({ timeout: 30_000 });
    await page.locator('[data-metric="phase"]', { hasText: 'incremental' }).waitFor();
    assert.equal(await page.locator('[data-metric="progress"]').innerText(), '100 %');
    // The target holds the task's checkpoint besides the data (removed when the task is deleted).
    const diff = (await compareServers(source, target, { dbs: [0] })).filter((d) => !(d.kind === 'extra' && d.key.startsWith('__ferry:checkpoint:')));
    assert.ok(diff.length === 0, formatDifferences(diff));
    // The page never shows a password, only the masked form the API returns.
    assert.ok(!(await page.content()).includes('console-src-pass'), 'no password on the task page');
    await page.waitForTimeout(2500); // a few chart samples
    await shot(page, '03-task-incremental');
  });

  it('changes the bandwidth and the resume mode; a bad bandwidth shows the API error', async () => {
    const bw = page.getByLabel('Bandwidth limit (MB/s)');
    await bw.fill('99999');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.locator('#bandwidth-error', { hasText: /1 to 10240/ }).waitFor();
    await bw.fill('20');
    await page.getByLabel('Resume mode').selectOption('manual');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByRole('status').filter({ hasText: 'bandwidth 20 MB/s' }).waitFor();
    const id = decodeURIComponent(page.url().split('#/tasks/')[1]!);
    const res = await page.evaluate(async (taskId) => (await fetch(`/v2/0123456789abcdef0123456789abcdef/migration-task/${taskId}`)).json(), id);
    assert.equal(res.bandwidth_limit_mb, '20');
    assert.equal(res.resume_mode, 'manual');
  });

  it('stops the task after a confirmation and reads its logs, filtered by level and paged', async () => {
    await page.getByRole('toolbar', { name: 'Task actions' }).getByRole('button', { name: 'Stop' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Stop' }).click();
    await page.locator('.badge', { hasText: 'TERMINATED' }).waitFor({ timeout: 30_000 });
    const logs = page.getByRole('region', { name: 'Logs' }).or(page.locator('section[aria-labelledby="logs-title"]'));
    await logs.locator('td', { hasText: 'stop requested' }).first().waitFor({ timeout: 15_000 });
    await logs.locator('td', { hasText: 'migration stopped' }).first().waitFor({ timeout: 15_000 });
    await page.getByLabel('Level').selectOption('WARN');
    await logs.locator('td', { hasText: 'stop requested' }).first().waitFor({ state: 'detached' });
    await page.getByLabel('Level').selectOption('INFO');
    await logs.locator('td', { hasText: 'stop requested' }).first().waitFor();
    await logs.locator('section, div').first().waitFor();
    await page.locator('section[aria-labelledby="logs-title"]').scrollIntoViewIfNeeded();
    await shot(page, '04-task-stopped-logs');
    // A phone-sized viewport: the page fits its width (tables scroll inside their box).
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(overflow <= 392, `the page is ${overflow} px wide on a 390 px screen`);
    await shot(page, '05-task-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('lists, filters and batch-deletes tasks with a confirmation', async () => {
    await page.goto(`${service.endpoint}/console/#/tasks`);
    await page.getByRole('link', { name: 'console-e2e' }).waitFor();
    await page.getByLabel('Filter by name').fill('no-such-task');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByText('No tasks whose name contains').waitFor();
    await page.getByLabel('Filter by name').fill('console');
    await page.keyboard.press('Enter');
    await page.getByRole('link', { name: 'console-e2e' }).waitFor();
    await shot(page, '06-task-list');
    await page.getByLabel('Select console-e2e').check();
    await page.getByRole('toolbar', { name: 'Selected tasks' }).getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('status').filter({ hasText: 'Deleted 1 task' }).waitFor();
    await page.getByText('No tasks whose name contains').waitFor();
  });

  it('signs out: the old cookie no longer works for the API', async () => {
    const cookie = (await browser.context.cookies()).find((c) => c.name === 'ferry_session')!;
    const withCookie = { cookie: `ferry_session=${cookie.value}` };
    assert.equal((await rawRequest(service.port, 'GET', `/v2/${PROJECT}/migration-tasks`, null, withCookie)).status, 200);
    // A change made with the cookie alone (what a cross-site form could send) is refused.
    const forged = await rawRequest(service.port, 'DELETE', `/v2/${PROJECT}/migration-tasks/delete`, '{"task_id_list":[]}', { ...withCookie, 'content-type': 'application/json' });
    assert.equal(forged.status, 401, forged.body);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Ferry console' }).waitFor();
    const after = await rawRequest(service.port, 'GET', `/v2/${PROJECT}/migration-tasks`, null, withCookie);
    assert.equal(after.status, 401, after.body);
    assert.match(after.body, /APIGW\.0301/);
  });
});
