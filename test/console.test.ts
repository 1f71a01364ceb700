/**
 * The web console end to end: Debian's Chromium (playwright-core) against a real `berth server`
 * with real pods: sign in, the API's words for a refused key and for bad form input field by field,
 * a pod created from the form seen RUNNING, its HTTP link opened through the proxy, stop and start,
 * the live list, and a server that goes away and comes back.
 * With BERTH_CONSOLE_SCREENSHOTS=<dir> it also saves a screenshot of each main page there (docs/).
 */
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from './support/browser.js';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, type TestServer } from './support/server.js';

const SHOTS = process.env.BERTH_CONSOLE_SCREENSHOTS;

async function shot(page: Page, name: string, fullPage = false): Promise<void> {
  if (!SHOTS) return;
  await mkdir(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `console-${name}.png`), fullPage });
}

/** The status the proxy answers a plain GET / for `host` with (fetch cannot set Host). */
function statusThroughProxy(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/', headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A web server in the test image: busybox httpd serving one page. */
const SERVE = `sh -c "echo hello-from-the-pod > /www/index.html && exec httpd -f -p 80 -h /www"`;

describe('web console', () => {
  let t: TestServer;
  let browser: Browser;
  let ctx: BrowserContext;
  let page: Page;
  const inventory = join(tmpdir(), `berth-console-gpus-${process.pid}.json`);

  before(async () => {
    // Chromium and the build first: each fails with what to do, and nothing is started for nothing.
    browser = await launchChromium();
    await ensureTestImage();
    // Simulated GPUs, so that the form's GPU choices and the list's GPU column have something to show.
    await writeFile(inventory, JSON.stringify({ gpus: [{ uuid: 'GPU-c0', name: 'NVIDIA GeForce RTX 4090', memoryMb: 24564 }, { uuid: 'GPU-c1', name: 'NVIDIA GeForce RTX 4090', memoryMb: 24564 }] }));
    t = await startTestServer({ gpuInventory: inventory });
    ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await ctx.newPage();
  });
  after(async () => {
    await browser?.close();
    await t?.close();
    await rm(inventory, { force: true });
  });

  it('refuses a key the API refuses, in the API\'s words, then signs in', async () => {
    await page.goto(t.url + '/');
    await page.fill('input[name=apiKey]', 'berth_not-a-key');
    await page.click('button[type=submit]');
    await page.getByRole('alert').filter({ hasText: 'the API key is not valid' }).waitFor();
    await shot(page, 'sign-in');
    await page.fill('input[name=apiKey]', t.key);
    await page.click('button[type=submit]');
    await page.getByRole('heading', { name: 'Pods' }).waitFor();
    // The key lives in the tab's session storage, never in the URL.
    assert.ok(!page.url().includes(t.key));
    const stored = await page.evaluate(() => sessionStorage.getItem('berth.apiKey'));
    assert.ok(stored?.includes(t.key));
    // An empty list still follows: a pod made now shows up (and goes when terminated).
    await page.getByText('No pods yet.').waitFor();
    const made = await t.api<{ id: string }>('POST', '/api/v1/pods', { name: 'first-of-all', image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0 });
    await page.locator(`.pod-row[data-pod="${made.body.id}"]`).waitFor();
    await t.api('POST', `/api/v1/pods/${made.body.id}/terminate`);
    await page.locator(`.pod-row[data-pod="${made.body.id}"]`).waitFor({ state: 'detached', timeout: 30_000 });
  });

  it('shows the API\'s validation messages under each field', async () => {
    await page.goto(t.url + '/pods/new');
    await page.locator('input[name=compute]').first().check(); // GPU
    await page.fill('input[name=gpuCount]', '-1');
    await page.fill('input[name=ports]', 'abc');
    await page.fill('textarea[name=env]', '1BAD=x');
    await page.fill('input[name=containerDiskGb]', '0');
    await page.click('button[type=submit]');
    const fieldError = (f: string) => page.locator(`[data-field-error=${f}]`);
    await fieldError('gpuCount').waitFor();
    assert.equal(await fieldError('gpuCount').textContent(), 'must be >= 0');
    assert.equal(await fieldError('image').textContent(), 'is required');
    assert.match((await fieldError('ports').textContent()) ?? '', /"abc" is not a port/);
    assert.match((await fieldError('env').textContent()) ?? '', /^1BAD: is not a valid variable name/);
    assert.equal(await fieldError('containerDiskGb').textContent(), 'must be between 1 and 65536');
    await page.getByRole('alert').filter({ hasText: 'Invalid request' }).waitFor();
    await shot(page, 'create-errors', true);
    // Nothing was created (the pod of the first test is terminated).
    const list = await t.api<{ pods: unknown[] }>('GET', '/api/v1/pods');
    assert.equal(list.body.pods.length, 0);
  });

  let podId = '';

  it('creates a pod from the form, sees it RUNNING, and opens its HTTP port through the proxy', async () => {
    await page.goto(t.url + '/pods/new');
    await page.fill('input[name=name]', 'console-web');
    await page.fill('input[name=image]', TEST_IMAGE);
    await page.fill('input[name=command]', SERVE);
    await page.fill('input[name=ports]', '80/http, 22/tcp');
    await page.fill('input[name=volumeGb]', '1');
    await page.fill('textarea[name=env]', 'GREETING=hi');
    await page.locator('input[name=compute]').first().check(); // GPU
    await page.selectOption('select[name=gpuType]', 'NVIDIA GeForce RTX 4090');
    await page.fill('input[name=gpuCount]', '1');
    await shot(page, 'create', true);
    await page.click('button[type=submit]');
    await page.waitForURL(/\/pods\/[0-9a-z]{14}$/);
    podId = page.url().split('/').pop()!;
    await page.locator('.pod-page[data-status=RUNNING]').waitFor({ timeout: 60_000 });

    const http = page.locator('.http-port[data-port="80"]');
    await http.locator('.mark-answering').waitFor({ timeout: 20_000 });
    const link = http.locator('a');
    const url = await link.getAttribute('href');
    assert.equal(url, `http://${podId}-80.localhost:${t.server.proxy!.port}/`);
    // TCP as ip:port, the ssh command with a copy button.
    await page.locator(`[data-tcp-port="22"] code`).filter({ hasText: /^127\.0\.0\.1:\d+$/ }).waitFor();
    await page.getByText(`ssh -p ${t.server.ssh!.port} ${podId}@localhost`).waitFor();
    await page.getByText('#0 NVIDIA GeForce RTX 4090 (simulated)').waitFor();
    await shot(page, 'pod');

    const [tab] = await Promise.all([ctx.waitForEvent('page'), link.click()]);
    await tab.waitForLoadState();
    assert.match(await tab.locator('body').innerText(), /hello-from-the-pod/);
    await tab.close();
  });

  it('stops the pod after saying what is lost, and starts it again', async () => {
    await page.getByRole('button', { name: 'Stop', exact: true }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    const text = await dialog.innerText();
    assert.match(text, /the container disk is wiped/);
    assert.match(text, /its GPUs are released/);
    assert.match(text, /Kept: the volume disk at \/workspace \(1 GB\)/);
    await dialog.getByRole('button', { name: 'Stop' }).click();
    await page.locator('.pod-page[data-status=EXITED]').waitFor({ timeout: 30_000 });
    await page.locator('.http-port .mark-not-yet').waitFor();

    await page.getByRole('button', { name: 'Start', exact: true }).click();
    await page.locator('.pod-page[data-status=RUNNING]').waitFor({ timeout: 60_000 });
    await page.locator('.http-port .mark-answering').waitFor({ timeout: 20_000 });

    // Terminate names the volume disk as lost.
    await page.getByRole('button', { name: 'Terminate' }).click();
    assert.match(await page.getByRole('dialog').innerText(), /the volume disk at \/workspace \(1 GB\) is deleted/);
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  });

  it('lists pods live: one created through the API shows up with its status, and search finds it', async () => {
    await page.goto(t.url + '/pods');
    const table = page.locator('.pod-table[data-state=ready]');
    await table.waitFor();
    const mine = page.locator(`.pod-row[data-pod="${podId}"]`);
    await mine.getByText('RUNNING').waitFor();
    assert.match(await mine.innerText(), /1 × NVIDIA GeForce RTX 4090[\s\S]*80\/http, 22\/tcp/);
    const made = await t.api<{ id: string }>('POST', '/api/v1/pods', { name: 'made-by-curl', image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0, gpuCount: 0 });
    assert.equal(made.status, 201);
    const row = page.locator(`.pod-row[data-pod="${made.body.id}"]`);
    await row.getByText('RUNNING').waitFor({ timeout: 60_000 });
    assert.match(await row.innerText(), /made-by-curl[\s\S]*CPU[\s\S]*berth-test\/busybox:1/);
    await shot(page, 'pods');
    await page.fill('input[type=search]', 'made-by');
    await page.locator('.pod-table[data-count="1"]').waitFor();
    await page.fill('input[type=search]', '');
  });

  it('creates a pod from a template, the form giving only what differs', async () => {
    const tpl = await t.api<{ id: string }>('POST', '/api/v1/templates', { name: 'busybox web', pod: { image: TEST_IMAGE, command: ['sh', '-c', 'echo from-template > /www/index.html && exec httpd -f -p 8080 -h /www'], ports: ['8080/http:private'], volumeGb: 0, gpuCount: 0 } });
    assert.equal(tpl.status, 201);
    await page.goto(t.url + '/pods/new');
    await page.selectOption('select[name=templateId]', tpl.body.id);
    // The template's values show as placeholders of the fields left empty.
    assert.equal(await page.getAttribute('input[name=image]', 'placeholder'), TEST_IMAGE);
    await page.fill('input[name=name]', 'from-template');
    await page.click('button[type=submit]');
    await page.waitForURL(/\/pods\/[0-9a-z]{14}$/);
    const id = page.url().split('/').pop()!;
    await page.locator('.pod-page[data-status=RUNNING]').waitFor({ timeout: 60_000 });
    const view = await t.api<{ name: string; image: string; ports: string[] }>('GET', `/api/v1/pods/${id}`);
    assert.equal(view.body.name, 'from-template');
    assert.equal(view.body.image, TEST_IMAGE);
    assert.deepEqual(view.body.ports, ['8080/http:private']);

    // A private port opens through a one-time link, which a plain visit without it cannot.
    const port = page.locator('.http-port[data-port="8080"]');
    await port.locator('.mark-answering').waitFor({ timeout: 20_000 });
    assert.equal(await statusThroughProxy(t.server.proxy!.port, `${id}-8080.localhost`), 401);
    const [tab] = await Promise.all([ctx.waitForEvent('page'), port.getByRole('button', { name: /one-time link/ }).click()]);
    await tab.waitForURL(new RegExp(`^http://${id}-8080\\.localhost:\\d+/$`));
    assert.match(await tab.locator('body').innerText(), /from-template/);
    await tab.close();
    await t.api('POST', `/api/v1/pods/${id}/terminate`);
  });

  it('says when the server goes away, and reconnects when it is back', async () => {
    await page.goto(`${t.url}/pods/${podId}`);
    await page.locator('.pod-page[data-status=RUNNING]').waitFor();
    // Stop answering without stopping the pods: close the API's listener, then listen again on the same port.
    const port = t.server.port;
    await t.server.app.server.close();
    t.server.app.server.closeAllConnections();
    await page.getByRole('alert').filter({ hasText: 'does not answer' }).waitFor({ timeout: 20_000 });
    await new Promise<void>((resolve) => t.server.app.server.listen(port, '127.0.0.1', resolve));
    await page.getByRole('alert').filter({ hasText: 'does not answer' }).waitFor({ state: 'detached', timeout: 20_000 });
    // Live again: an action through the API shows on the page.
    await t.api('POST', `/api/v1/pods/${podId}/stop`);
    await page.locator('.pod-page[data-status=EXITED]').waitFor({ timeout: 30_000 });
  });

  it('signs out, forgetting the key', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('input[name=apiKey]').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('berth.apiKey')), null);
  });
});
