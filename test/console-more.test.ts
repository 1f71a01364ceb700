/**
 * The console's pod tabs and resource pages end to end: Debian's Chromium (playwright-core) against
 * a real `berth server` with real pods. The web terminal answers what is typed and finds the same
 * shell after a reload; a stop and start wipes the container disk, as the terminal shows; logs
 * follow live with their colours, search, and 100,000 lines; versions show their diff; a Marathon
 * pod of two containers shows both healthy, and its deployment rolls back; the resource pages list
 * what the API has and show its problems.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import ssh2 from 'ssh2';
import { launchChromium } from './support/browser.js';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

/** With BERTH_CONSOLE_SCREENSHOTS=<dir>, as test/console.test.ts: a screenshot of each page shown here. */
async function shot(page: Page, name: string): Promise<void> {
  const dir = process.env.BERTH_CONSOLE_SCREENSHOTS;
  if (!dir) return;
  await mkdir(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `console-${name}.png`) });
}

describe('web console: terminal, logs, versions, instances, resources', () => {
  let t: TestServer;
  let browser: Browser;
  let page: Page;

  const running = (id: string) => waitFor(`pod ${id} to run`, async () => ((await t.api<{ status: string }>('GET', `/api/v1/pods/${id}`)).body.status === 'RUNNING' ? true : undefined), 90_000);
  const create = async (body: Record<string, unknown>) => {
    const made = await t.api<{ id: string }>('POST', '/api/v1/pods', { image: TEST_IMAGE, volumeGb: 0, ...body });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    return made.body.id;
  };

  /** The terminal's screen as text (xterm's DOM renderer), once it matches `pattern`. */
  const screen = (pattern: RegExp, timeout = 15_000) =>
    waitFor(`${pattern} on the terminal`, async () => {
      const text = await page.locator('.terminal-box .xterm-rows').innerText();
      return pattern.test(text) ? text : undefined;
    }, timeout);
  const typeLine = async (line: string) => {
    await page.locator('.terminal-box').click();
    await page.keyboard.type(line);
    await page.keyboard.press('Enter');
  };

  before(async () => {
    browser = await launchChromium();
    await ensureTestImage();
    t = await startTestServer();
    page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    await page.goto(t.url + '/');
    await page.fill('input[name=apiKey]', t.key);
    await page.click('button[type=submit]');
    await page.getByRole('heading', { name: 'Pods' }).waitFor();
  });
  after(async () => {
    await browser?.close();
    await t?.close();
  });

  it('types into the web terminal, reloads, and finds the same shell; a stop and start wipes the container disk', async () => {
    const id = await create({ name: 'term', command: ['sleep', '3600'] });
    await running(id);
    await page.goto(`${t.url}/pods/${id}#terminal`);
    await page.locator('.terminal-pane[data-state=open]').waitFor({ timeout: 20_000 });
    await typeLine('export X=42; echo marker > /root/written; echo pid=$$.');
    const pid = /pid=(\d+)\./.exec(await screen(/pid=\d+\./))![1]!;
    const session = await page.evaluate((k) => sessionStorage.getItem(k), `berth.terminal.${id}`);
    assert.ok(session, 'the session id is kept in sessionStorage');

    await page.reload();
    await page.locator('.terminal-pane[data-state=open]').waitFor({ timeout: 20_000 });
    // The screen before the reload is replayed, and the shell is the same one.
    await screen(/pid=\d+\./);
    await typeLine('echo X=$X same=$$ file=$(cat /root/written)');
    await screen(new RegExp(`X=42 same=${pid} file=marker`));
    await shot(page, 'terminal');
    assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), `berth.terminal.${id}`), session);

    // Stop (the dialog says the container disk is wiped) and start: a new container, a new shell, no file.
    await page.getByRole('button', { name: 'Stop', exact: true }).click();
    assert.match(await page.getByRole('dialog').innerText(), /the container disk is wiped/);
    await page.getByRole('dialog').getByRole('button', { name: 'Stop' }).click();
    await page.locator('.pod-page[data-status=EXITED]').waitFor({ timeout: 30_000 });
    await page.getByText('a terminal opens in a running pod').waitFor();
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    await page.locator('.pod-page[data-status=RUNNING]').waitFor({ timeout: 60_000 });
    await page.locator('.terminal-pane[data-state=open]').waitFor({ timeout: 20_000 });
    await typeLine('cat /root/written || echo wiped-$((40+2)) shell=$$ x=[$X]');
    const after = await screen(/wiped-42 shell=\d+ x=\[\]/);
    assert.match(after, /No such file or directory/);
  });

  it('follows logs live with ANSI colours and search, and keeps 100,000 lines without drawing them all', async () => {
    const id = await create({ name: 'chatty', command: ['sh', '-c', 'i=0; while true; do i=$((i+1)); printf "\\033[31mred-%s\\033[0m plain %s\\n" $i $i; echo "to stderr $i" >&2; sleep 0.2; done'] });
    await running(id);
    await page.goto(`${t.url}/pods/${id}#logs`);
    const pane = page.locator('.logs-pane');
    await pane.waitFor();
    // Live: the count grows while the page is open.
    const lines = async () => Number(await pane.getAttribute('data-total'));
    const first = await waitFor('some lines', async () => ((await lines()) >= 4 ? lines() : undefined));
    await waitFor('more lines, followed', async () => ((await lines()) > first + 4 ? true : undefined));
    // The escape codes became colours, not text.
    const red = page.locator('.log-line span', { hasText: /^red-\d+$/ }).first();
    assert.equal(await red.evaluate((el) => getComputedStyle(el).color), 'rgb(205, 49, 49)');
    assert.doesNotMatch(await page.locator('.log-view').innerText(), /\[31m/);
    assert.ok((await page.locator('.log-line.stderr').count()) > 0);
    await shot(page, 'logs');
    await page.fill('.logs-pane input[type=search]', 'RED-3');
    await waitFor('search to narrow the lines', async () => ((await page.locator('.log-line').count()) >= 1 && (await page.locator('.log-line', { hasNotText: /red-3/i }).count()) === 0 ? true : undefined));
    assert.equal(await page.locator('.log-line mark').first().innerText(), 'red-3');
    await page.fill('.logs-pane input[type=search]', '');

    const big = await create({ name: 'big-log', command: ['sh', '-c', 'seq 1 100010; echo all-written; exec sleep 3600'] });
    await running(big);
    await page.goto(`${t.url}/pods/${big}#logs`);
    await page.getByLabel('Lines to load').selectOption('100000');
    const started = Date.now();
    await waitFor('100,000 lines', async () => ((await pane.getAttribute('data-lines')) === '100000' ? true : undefined), 60_000);
    const loadMs = Date.now() - started;
    // Only the rows in view are in the DOM; the last line is in view (following).
    assert.ok((await page.locator('.log-line').count()) < 200, 'the view is virtualized');
    await page.locator('.log-line', { hasText: 'all-written' }).waitFor();
    // Search over 100,000 lines answers at once.
    const searched = Date.now();
    await page.fill('.logs-pane input[type=search]', '99999');
    await page.locator('[data-matches="1"]').waitFor();
    const searchMs = Date.now() - searched;
    // Scrolling to the top draws the oldest kept lines.
    await page.fill('.logs-pane input[type=search]', '');
    await page.locator('.log-view').evaluate((el) => (el.scrollTop = 0));
    await page.locator('.log-line', { hasText: /^12$/ }).waitFor();
    console.log(`# 100,000 log lines: loaded and drawn in ${loadMs} ms, searched in ${searchMs} ms`);
    assert.ok(searchMs < 2000, `search took ${searchMs} ms`);
  });

  it('shows versions with a diff of what changed', async () => {
    const id = await create({ name: 'versioned', command: ['sleep', '3600'], env: { MODE: 'one' } });
    await running(id);
    const changed = await t.api('PATCH', `/api/v1/pods/${id}`, { env: { MODE: 'two', ADDED: 'yes' } });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    await page.goto(`${t.url}/pods/${id}#versions`);
    const v2 = page.locator('.version[data-version="2"]');
    await v2.waitFor();
    const modeRow = v2.locator('tr[data-path="/containers/0/env/MODE"]');
    assert.equal(await modeRow.locator('.before').innerText(), '"one"');
    assert.equal(await modeRow.locator('.after').innerText(), '"two"');
    assert.equal(await v2.locator('tr.diff-added[data-path="/containers/0/env/ADDED"] .after').innerText(), '"yes"');
    await page.locator('.version[data-version="1"]').getByText('The spec the pod was created with.').waitFor();
    await shot(page, 'versions');
  });

  it('shows a Marathon pod of two containers healthy, with its endpoints, and rolls a deployment back', async () => {
    const resources = { cpus: 0.1, mem: 32 };
    const image = { kind: 'DOCKER', id: TEST_IMAGE };
    const check = { gracePeriodSeconds: 30, intervalSeconds: 2, timeoutSeconds: 1, delaySeconds: 0 };
    const duo = (sidecarCheck: string) => ({
      id: '/console/duo',
      containers: [
        { name: 'web', image, exec: { command: { shell: 'mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 8080 -h /www' } }, resources, endpoints: [{ name: 'http', containerPort: 8080, hostPort: 0, protocol: ['http'] }], healthCheck: { http: { endpoint: 'http', path: '/index.html' }, ...check } },
        { name: 'sidecar', image, exec: { command: { shell: 'exec sleep 3600' } }, resources, healthCheck: { exec: { command: { shell: sidecarCheck } }, ...check } },
      ],
      networks: [{ mode: 'container/bridge' }],
    });
    const made = await t.api('POST', '/marathon/v2/pods', duo('wget -q -O- http://127.0.0.1:8080/index.html | grep -q hi'));
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const list = await t.api<{ pods: { id: string; name: string }[] }>('GET', '/api/v1/pods');
    const id = list.body.pods.find((p) => p.name === '/console/duo')?.id ?? list.body.pods.at(-1)!.id;
    await page.goto(`${t.url}/pods/${id}#instances`);
    const inst = page.locator('.instance').first();
    for (const c of ['web', 'sidecar']) await inst.locator(`.container-row[data-container=${c}] [data-healthy=true]`).waitFor({ timeout: 90_000 });
    await inst.locator('.instance-head [data-healthy=true]').waitFor();
    assert.match(await inst.locator('.container-row[data-container=web]').innerText(), /http: 8080 → 127\.0\.0\.1:\d+ http/);
    await shot(page, 'instances');

    // A version whose sidecar never gets healthy holds a deployment; rolling it back goes back to the healthy one.
    const put = await t.api('PUT', '/marathon/v2/pods/console/duo', { ...duo('false'), containers: duo('false').containers.map((c) => (c.name === 'sidecar' ? { ...c, healthCheck: { ...c.healthCheck, gracePeriodSeconds: 600 } } : c)) });
    assert.ok(put.status === 200 || put.status === 201, JSON.stringify(put.body));
    const deploymentId = put.headers.get('marathon-deployment-id');
    assert.ok(deploymentId);
    const deployment = page.locator(`.deployment[data-deployment="${deploymentId}"]`);
    await deployment.waitFor({ timeout: 20_000 });
    await deployment.getByRole('button', { name: 'Roll back' }).click();
    await page.getByText(/None in progress/).waitFor({ timeout: 90_000 });
    const versions = await t.api<{ versions: { version: number }[] }>('GET', `/api/v1/pods/${id}/versions`);
    assert.ok(versions.body.versions.length >= 3, 'the rollback is a new version');
    for (const c of ['web', 'sidecar']) await inst.locator(`.container-row[data-container=${c}] [data-healthy=true]`).waitFor({ timeout: 90_000 });
  });

  it('lists and creates on the resource pages, with the API\'s problems under the fields', async () => {
    const vol = await t.api<{ id: string }>('POST', '/api/v1/network-volumes', { name: 'datasets', sizeGb: 5 });
    assert.equal(vol.status, 201, JSON.stringify(vol.body));
    await t.api('POST', '/api/v1/templates', { name: 'jupyter', pod: { image: TEST_IMAGE, ports: '8888/http' } });
    await t.api('PUT', '/api/v1/secrets/db%2Fpassword', { value: 's3cret-value' });
    await t.api('POST', '/api/v1/registry-auths', { name: 'ghcr', username: 'me', password: 'pw-not-shown' });
    const { public: pub } = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'me@laptop' });
    await t.api('POST', '/api/v1/ssh-keys', { publicKey: pub });
    await t.api('POST', '/api/v1/keys', { name: 'ci key', owner: 'ci' });

    const rows = (path: string) => page.locator(`.resource-page[data-resource="${path}"] .resource-table`);
    await page.goto(`${t.url}/network-volumes`);
    await rows('network-volumes').getByText('datasets').waitFor();
    // Bad input: the API's message under the field, nothing made.
    await page.fill('input[name=name]', 'tiny');
    await page.fill('input[name=sizeGb]', '0');
    await page.click('.resource-form button[type=submit]');
    await page.locator('[data-field-error=sizeGb]').waitFor();
    assert.match(await page.locator('[data-field-error=sizeGb]').innerText(), /1/);
    await page.fill('input[name=sizeGb]', '2');
    await page.click('.resource-form button[type=submit]');
    await rows('network-volumes').getByText('tiny').waitFor();

    await page.goto(`${t.url}/templates`);
    await rows('templates').getByText('jupyter').waitFor();
    await page.goto(`${t.url}/secrets`);
    await rows('secrets').getByText('db/password').waitFor();
    assert.doesNotMatch(await page.locator('main').innerText(), /s3cret-value/);
    await page.fill('input[name=name]', 'api/token');
    await page.fill('input[name=value]', 'another-secret');
    await page.click('.resource-form button[type=submit]');
    await rows('secrets').getByText('api/token').waitFor();
    assert.doesNotMatch(await page.locator('main').innerText(), /another-secret/);
    await page.goto(`${t.url}/registry-auths`);
    await rows('registry-auths').getByText('ghcr').waitFor();
    assert.doesNotMatch(await page.locator('main').innerText(), /pw-not-shown/);
    await page.goto(`${t.url}/ssh-keys`);
    await rows('ssh-keys').getByText('me@laptop').waitFor();
    await page.goto(`${t.url}/keys`);
    await rows('keys').getByText('ci key').waitFor();
    await page.fill('input[name=name]', 'made here');
    await page.click('.resource-form button[type=submit]');
    const shown = await page.locator('.new-key code').innerText();
    assert.match(shown, /^berth_/);
    assert.equal((await t.api('GET', '/api/v1/whoami', undefined, shown)).status, 200);

    // Delete, confirmed; the API's refusal would show the same way.
    await page.goto(`${t.url}/templates`);
    await rows('templates').locator('.resource-row', { hasText: 'jupyter' }).getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await page.locator('.resource-page[data-resource=templates] .empty').waitFor();

    const nodes = await t.api<{ nodes: { name: string }[] }>('GET', '/api/v1/nodes');
    await page.goto(`${t.url}/nodes`);
    const node = rows('nodes').locator('.resource-row').first();
    await node.getByText(nodes.body.nodes[0]!.name, { exact: true }).waitFor();
    await node.getByText('READY').waitFor();
    await shot(page, 'nodes');
  });
});
