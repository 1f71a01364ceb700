// bench: console — the web console's pod list with 1,000 pods in headless Chromium, navigation to painted and interactive, vs a static page of the same rows from the same server (targets: median ≤ 1.0 s, JS shipped ≤ 300 KB gzipped)
/**
 * How soon the console shows a long pod list, and how much JavaScript it ships.
 *
 * Berth runs in its own process with the agent off: 1,000 pods are created through the API and stay
 * PROVISIONING with no node (the list, not Docker, is measured). Debian's Chromium (playwright-core,
 * headless) opens `/pods` with the key already in the tab's session storage (signing in is not
 * timed), each sample in a fresh browser context: a cold HTTP cache, every byte fetched again.
 *
 * Timed, in the page, from the navigation's start (performance.timeOrigin) to the moment the list
 * holds its rows (the table says `data-state=ready` and the first row is in the DOM, seen by a
 * MutationObserver) and the page has then painted a frame and run a task: the main thread is free
 * to take input. As a check that
 * it is interactive, the search box is then typed into and the time until the list has filtered is
 * printed beside (not part of the target).
 *
 * Baseline, in the same run and from the same server: a static HTML page of the same 1,000 rows
 * (rendered here from the API's own list answer, the same columns, no JavaScript but the same
 * measuring snippet), added to a copy of the console's build that the server serves. Samples
 * alternate between the two pages. The ratio says what the console costs over the least a browser
 * needs to show those rows.
 *
 * JS shipped: the gzipped bytes of the JavaScript the list page loaded (as sent: the server
 * compresses with gzip -9), and of every chunk of the build (lazy pages included).
 *
 *   npm run bench -- console [--pods 1000] [--samples 15]
 */

import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { DEFAULT_CONSOLE_DIR } from '../src/cli/server.js';
import { launchChromium } from '../test/support/browser.js';
import { apiClient, fmt, intArg, log, median, pool, startChild, stats, summary, verdict, type ChildServer } from './common.js';

const PODS = intArg('--pods', 1000);
const SAMPLES = intArg('--samples', 15);
const TARGET_MS = 1000;
const TARGET_KB = 300;

/** Pods as a RunPod user makes them: a GPU type and count, an image, ports. */
const podInput = (i: number) => ({
  name: `bench-${i}`,
  image: i % 3 ? 'pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime' : 'berth-test/busybox:1',
  ports: ['8888/http', '22/tcp'],
  gpuCount: i % 4,
  ...(i % 4 ? { gpuTypeIds: ['NVIDIA RTX A6000'] } : {}),
  env: { MODEL: 'llama-3-8b', BATCH: String(i % 64) },
});

interface Summary {
  id: string;
  name: string;
  status: string;
  gpuCount: number;
  gpuType: string | null;
  image: string | null;
  ports: string[];
  nodeId: string | null;
}

const esc = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** The baseline: the same rows as static HTML, with the console's columns. */
function staticPage(pods: Summary[]): string {
  const rows = pods
    .map(
      (p) =>
        `<tr class="pod-row" data-pod="${p.id}"><td><a href="/pods/${p.id}">${esc(p.name)}</a><br><small>${p.id}</small></td><td>${p.status}</td><td>${p.gpuCount ? `${p.gpuCount} × ${esc(p.gpuType ?? 'any GPU')}` : 'CPU'}</td><td>${esc(p.image ?? '—')}</td><td>—</td><td>${esc(p.ports.join(', '))}</td><td>${p.nodeId ?? '—'}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Pods (static)</title>
<style>body{font:14px system-ui,sans-serif;margin:20px}table{border-collapse:collapse;width:100%}td,th{padding:4px 10px;border-bottom:1px solid #e3e6eb;text-align:left}</style></head>
<body><h1>Pods</h1><input type="search" placeholder="Search"><table class="pod-table" data-state="ready"><thead><tr><th>Name</th><th>Status</th><th>GPU</th><th>Image</th><th>Uptime</th><th>Ports</th><th>Node</th></tr></thead><tbody>
${rows}
</tbody></table></body></html>
`;
}

/**
 * Installed in every page before its own scripts: notes when the list's first row is in the DOM of
 * a ready table, then when the page has painted a frame and run a task after that, in
 * `window.__listReady` (ms from the navigation's start). Measured in the page, so the figure holds
 * no round trip to Playwright.
 */
function watchList(): void {
  const w = window as unknown as { __listReady?: number };
  const check = (): boolean => {
    if (!document.querySelector('[data-state=ready] .pod-row[data-pod]')) return false;
    requestAnimationFrame(() => setTimeout(() => (w.__listReady = performance.now()), 0));
    return true;
  };
  const mo = new MutationObserver(() => {
    if (check()) mo.disconnect();
  });
  mo.observe(document, { childList: true, subtree: true, attributes: true, attributeFilter: ['data-state'] });
}

/** Milliseconds from the navigation's start until the list's rows are there and a frame and a task have run after. */
async function loadTime(page: Page, url: string): Promise<number> {
  await page.goto(url, { waitUntil: 'commit' });
  const handle = await page.waitForFunction(() => (window as unknown as { __listReady?: number }).__listReady, undefined, { polling: 100, timeout: 30_000 });
  return (await handle.jsonValue()) as number;
}

/** Once loaded: typing a search until the list shows only the match (the console only). */
async function searchTime(page: Page, name: string): Promise<number> {
  const start = Date.now();
  await page.fill('input[type=search]', name);
  await page.waitForSelector('.pod-table[data-count="1"]', { timeout: 10_000 });
  return Date.now() - start;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'berth-bench-console-'));
  let berth: ChildServer | undefined;
  let browser: Browser | undefined;
  try {
    browser = await launchChromium();
    // The console's build plus the baseline page (written below, before the server reads the folder).
    const site = join(work, 'site');
    await cp(DEFAULT_CONSOLE_DIR, site, { recursive: true });
    const placeholder = join(site, 'static-pods.html');
    await writeFile(placeholder, '');
    // The server reads the console's folder once at start: seed through a first server, then start
    // the measured one on the same data with the baseline page in place.
    const data = join(work, 'data');
    let seeder: ChildServer | undefined = await startChild('berth-server', ['--data-dir', data, '--no-agent', '--console-dir', site]);
    const key = (await readFile(join(data, 'admin.key'), 'utf8')).trim();
    log(`berth server ${seeder.url}, agent off; creating ${PODS} pods through the API`);
    const api = apiClient(seeder.url, key);
    await pool(
      Array.from({ length: PODS }, (_, i) => i),
      16,
      async (i) => {
        const r = await api('POST', '/api/v1/pods', podInput(i));
        if (r.status !== 201) throw new Error(`creating pod ${i}: ${r.status} ${JSON.stringify(r.body)}`);
      },
    );
    const list = (await api<{ pods: Summary[] }>('GET', '/api/v1/pods')).body.pods;
    if (list.length !== PODS) throw new Error(`the list has ${list.length} pods, expected ${PODS}`);
    list.sort((a, b) => (a.id < b.id ? -1 : 1));
    await writeFile(placeholder, staticPage(list));
    await seeder.stop();
    seeder = undefined;
    berth = await startChild('berth-server', ['--data-dir', data, '--no-agent', '--console-dir', site]);
    log(`measuring on ${berth.url} (pid ${berth.pid})`);

    const who = { owner: 'admin', admin: true };
    const fresh = async (): Promise<{ page: Page; close: () => Promise<void>; jsBytes: () => number }> => {
      const ctx = await browser!.newContext({ viewport: { width: 1280, height: 800 } });
      // Signed in already: the key where the console keeps it, for this tab's session.
      await ctx.addInitScript((v: string) => sessionStorage.setItem('berth.apiKey', v), JSON.stringify({ key, who }));
      await ctx.addInitScript(watchList);
      const page = await ctx.newPage();
      let js = 0;
      page.on('response', (r) => {
        if (/\.js(\?|$)/.test(r.url())) js += Number(r.headers()['content-length'] ?? 0);
      });
      return { page, close: () => ctx.close(), jsBytes: () => js };
    };

    const consoleUrl = `${berth.url}/pods`;
    const staticUrl = `${berth.url}/static-pods.html`;
    const samples = { console: [] as number[], static: [] as number[], search: [] as number[] };
    let listJs = 0;
    for (let i = -2; i < SAMPLES; i++) {
      const order = i % 2 === 0 ? (['console', 'static'] as const) : (['static', 'console'] as const);
      for (const which of order) {
        const s = await fresh();
        try {
          const ms = await loadTime(s.page, which === 'console' ? consoleUrl : staticUrl);
          if (which === 'console') {
            const rows = await s.page.locator('.pod-table').getAttribute('data-count');
            if (Number(rows) !== PODS) throw new Error(`the console lists ${rows} pods, expected ${PODS}`);
            const search = await searchTime(s.page, `bench-${PODS - 1}`);
            listJs = s.jsBytes();
            if (i >= 0) samples.search.push(search);
          }
          if (i >= 0) samples[which].push(ms);
          log(`${i < 0 ? 'warm-up' : `sample ${i + 1}`}: ${which} ${fmt(ms)}`);
        } finally {
          await s.close();
        }
      }
    }

    // Every chunk of the build, as the server sends it (gzip -9).
    const assets = join(site, 'assets');
    let allJs = 0;
    const chunks: string[] = [];
    for (const f of await readdir(assets)) {
      if (!f.endsWith('.js')) continue;
      const gz = gzipSync(await readFile(join(assets, f)), { level: 9 }).length;
      allJs += gz;
      chunks.push(`${f} ${(gz / 1024).toFixed(1)} KB`);
    }

    const c = stats(samples.console);
    const b = stats(samples.static);
    const ratio = c.p50 / b.p50;
    const pairRatios = samples.console.map((x, i) => x / samples.static[i]!);
    summary('console', [
      ['pods in the store', `${PODS} (created through the API, agent off: PROVISIONING, no node)`],
      ['browser', `Debian's Chromium, headless, 1280×800, a fresh context (cold cache) per sample; ${SAMPLES} samples each after 2 warm-ups, alternating`],
      ['console /pods', `p50 ${fmt(c.p50)}  p90 ${fmt(c.p90)}  min ${fmt(c.min)}  max ${fmt(c.max)}`],
      ['static page, same rows (baseline)', `p50 ${fmt(b.p50)}  p90 ${fmt(b.p90)}  min ${fmt(b.min)}  max ${fmt(b.max)}`],
      ['ratio console/static', `medians ${ratio.toFixed(2)}x, median of per-pair ratios ${median(pairRatios).toFixed(2)}x`],
      ['search typed → list filtered', `p50 ${fmt(stats(samples.search).p50)} (interactive check, not a target)`],
      ['JS chunks (gzip -9)', chunks.join(', ')],
      ['JS shipped, every chunk', `${(allJs / 1024).toFixed(1)} KB gzipped`],
      [`list median, navigation → painted and interactive (target ≤ ${TARGET_MS} ms)`, `${fmt(c.p50)}  ${verdict(c.p50, TARGET_MS)}`],
      [`JS loaded by the list page, gzipped (target ≤ ${TARGET_KB} KB)`, `${(listJs / 1024).toFixed(1)} KB  ${verdict(listJs / 1024, TARGET_KB)}`],
    ]);
  } finally {
    await browser?.close();
    await berth?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
