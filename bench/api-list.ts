// bench: api-list — GET/POST /api/v1/pods with 10,000 pods in SQLite vs a minimal Fastify server sending the same bytes (targets: list p50 and p99, create p99 ≤ 2× the baseline's)
/**
 * With 10,000 pods in the store, how fast the native API lists them and creates one more.
 *
 * Berth runs in its own process with the agent off (`startServer({ agent: false })`): pods stay
 * PROVISIONING with no node, so what is timed is the API and the store (SQLite), nothing of Docker.
 * The load generator is this process; it sends one request at a time (latency, not throughput) over
 * keep-alive connections (global fetch) and times each to the last byte of the body.
 *
 * Baseline, in the same run: a minimal Fastify server in a third process that answers the same
 * routes with the very bytes Berth answered, held as buffers (bench/baseline-server.ts): the floor
 * for an HTTP round trip carrying that response on this machine. Samples alternate between the two
 * servers so that machine noise falls on both, and the targets are ratios to the baseline's figures
 * (absolute milliseconds moved by 2x between runs on the shared reference machine): Berth's own work
 * (authentication, the store, assembling the answer) adds at most what carrying the bytes costs.
 * The CPU time each server spent per list (from /proc) is printed beside them: it moves much less
 * with the machine's other work than latency does.
 *
 *   npm run bench -- api-list [--pods 10000] [--list-samples 100] [--page-samples 300] [--create-samples 500] [--concurrency 16]
 */

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiClient, intArg, fmt, log, msSince, pool, rssMiB, startChild, stats, summary, verdict, type ChildServer } from './common.js';

/** The targets: Berth's figure over the baseline's in the same run (list p50 and p99, create p99). */
const TARGET = 2;

const PODS = intArg('--pods', 10_000);
const LIST_SAMPLES = intArg('--list-samples', 100);
const PAGE_SAMPLES = intArg('--page-samples', 300);
const CREATE_SAMPLES = intArg('--create-samples', 500);
const CONCURRENCY = intArg('--concurrency', 16);

/** A typical RunPod-style pod: one image, a command, a port, some env. */
const podInput = (i: number) => ({
  name: `bench-${i}`,
  image: 'berth-test/busybox:1',
  command: ['httpd', '-f', '-p', '8080'],
  ports: ['8080/http', '22/tcp'],
  env: { MODEL: 'llama-3-8b', BATCH: String(i % 64), JUPYTER_PASSWORD: 'secret' },
});

/** Times one request to the last byte of its body; throws on an unexpected status. */
async function timed(url: string, init: RequestInit, expect: number): Promise<{ ms: number; bytes: number }> {
  const start = process.hrtime.bigint();
  const res = await fetch(url, init);
  const body = await res.arrayBuffer();
  const ms = msSince(start);
  if (res.status !== expect) throw new Error(`${init.method ?? 'GET'} ${url} answered ${res.status}: ${Buffer.from(body).toString('utf8').slice(0, 300)}`);
  return { ms, bytes: body.byteLength };
}

/** User and system CPU time of a process so far, in ms, from /proc/<pid>/stat. */
async function cpuMs(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

interface Pair {
  berth: number[];
  base: number[];
  bytes: number;
}

/** `samples` alternating requests to Berth and the baseline (the order flips each round), after `warmup` of each. */
async function interleaved(what: string, samples: number, warmup: number, berth: () => Promise<{ ms: number; bytes: number }>, base: () => Promise<{ ms: number; bytes: number }>): Promise<Pair> {
  for (let i = 0; i < warmup; i++) {
    await berth();
    await base();
  }
  const out: Pair = { berth: [], base: [], bytes: 0 };
  for (let i = 0; i < samples; i++) {
    if (i % 2 === 0) {
      const b = await berth();
      out.berth.push(b.ms);
      out.bytes = b.bytes;
      out.base.push((await base()).ms);
    } else {
      out.base.push((await base()).ms);
      const b = await berth();
      out.berth.push(b.ms);
      out.bytes = b.bytes;
    }
  }
  const s = stats(out.berth);
  const t = stats(out.base);
  log(`${what}: berth p50 ${fmt(s.p50)} p99 ${fmt(s.p99)} | baseline p50 ${fmt(t.p50)} p99 ${fmt(t.p99)} (${samples} samples each)`);
  return out;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'berth-bench-api-'));
  let berth: ChildServer | undefined;
  let base: ChildServer | undefined;
  try {
    berth = await startChild('berth-server', ['--data-dir', join(work, 'data'), '--no-agent']);
    const key = (await readFile(join(work, 'data', 'admin.key'), 'utf8')).trim();
    const api = apiClient(berth.url, key);
    const auth = { authorization: `Bearer ${key}` };
    log(`berth server ${berth.url} (pid ${berth.pid}), agent off; seeding ${PODS} pods, ${CONCURRENCY} at a time`);

    const seedStart = process.hrtime.bigint();
    const seedTimes: number[] = [];
    // The last of the PODS is created alone, below: its answer is the baseline's create body.
    await pool(Array.from({ length: PODS - 1 }, (_, i) => i), CONCURRENCY, async (i) => {
      const r = await api('POST', '/api/v1/pods', podInput(i));
      if (r.status !== 201) throw new Error(`seeding pod ${i}: ${r.status} ${JSON.stringify(r.body)}`);
      seedTimes.push(r.ms);
      if ((i + 1) % 2000 === 0) log(`seeded ${i + 1}`);
    });
    const seedS = msSince(seedStart) / 1000;
    const createdRes = await api('POST', '/api/v1/pods', podInput(PODS - 1));
    if (createdRes.status !== 201) throw new Error(`creating pod ${PODS - 1}: ${createdRes.status}`);
    const rssSeeded = await rssMiB(berth.pid);
    log(`seeded ${PODS} pods in ${seedS.toFixed(1)} s (${((PODS - 1) / seedS).toFixed(0)}/s); berth RSS ${rssSeeded.toFixed(0)} MiB`);

    // The baseline answers with Berth's own bytes.
    const listUrl = `${berth.url}/api/v1/pods`;
    const pageUrl = `${berth.url}/api/v1/pods?limit=100`;
    const listRes = await fetch(listUrl, { headers: auth });
    const listText = await listRes.text();
    const listed = (JSON.parse(listText) as { pods: unknown[] }).pods.length;
    if (listed !== PODS) throw new Error(`the list has ${listed} pods, expected ${PODS}`);
    const pageText = await (await fetch(pageUrl, { headers: auth })).text();
    await writeFile(join(work, 'list.json'), listText);
    await writeFile(join(work, 'page.json'), pageText);
    await writeFile(join(work, 'create.json'), JSON.stringify(createdRes.body));
    base = await startChild('baseline-server', ['--list', join(work, 'list.json'), '--page', join(work, 'page.json'), '--create', join(work, 'create.json')]);
    log(`baseline server ${base.url} (pid ${base.pid}); list body ${(Buffer.byteLength(listText) / 2 ** 20).toFixed(1)} MiB`);

    const get = (url: string) => () => timed(url, { headers: auth }, 200);
    const cpu0 = { berth: await cpuMs(berth.pid), base: await cpuMs(base.pid) };
    const list = await interleaved(`GET /api/v1/pods (${PODS} pods)`, LIST_SAMPLES, 5, get(listUrl), get(`${base.url}/api/v1/pods`));
    const listCpu = { berth: ((await cpuMs(berth.pid)) - cpu0.berth) / (LIST_SAMPLES + 5), base: ((await cpuMs(base.pid)) - cpu0.base) / (LIST_SAMPLES + 5) };
    const page = await interleaved('GET /api/v1/pods?limit=100', PAGE_SAMPLES, 20, get(pageUrl), get(`${base.url}/api/v1/pods?limit=100`));
    let n = PODS;
    const post = (url: string) => () => timed(url, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(podInput(n++)) }, 201);
    const create = await interleaved('POST /api/v1/pods', CREATE_SAMPLES, 20, post(listUrl), post(`${base.url}/api/v1/pods`));
    const rssEnd = await rssMiB(berth.pid);
    const baseRss = await rssMiB(base.pid);
    const podsAtEnd = PODS + 20 + CREATE_SAMPLES;

    // A sample over a second is the server (or the machine) stalling, not the request's own work.
    const stalls = (xs: number[]): number => xs.filter((x) => x > 1000).length;
    const line = (p: Pair): [string, string][] => {
      const s = stats(p.berth);
      const t = stats(p.base);
      return [
        ['  berth', `p50 ${fmt(s.p50)}  p90 ${fmt(s.p90)}  p95 ${fmt(s.p95)}  p99 ${fmt(s.p99)}  max ${fmt(s.max)}  (n=${s.n}; ${stalls(p.berth)} over 1 s)`],
        ['  baseline', `p50 ${fmt(t.p50)}  p90 ${fmt(t.p90)}  p95 ${fmt(t.p95)}  p99 ${fmt(t.p99)}  max ${fmt(t.max)}  (n=${t.n}; ${stalls(p.base)} over 1 s)`],
        ['  ratio berth/baseline', `p50 ${(s.p50 / t.p50).toFixed(2)}x  p99 ${(s.p99 / t.p99).toFixed(2)}x`],
      ];
    };
    const ratio = (p: Pair, q: 'p50' | 'p99'): number => stats(p.berth)[q] / stats(p.base)[q];
    const target = (what: string, value: number): [string, string] => [`${what} (target ≤ ${TARGET})`, `${value.toFixed(2)}  ${verdict(value, TARGET)}`];
    summary('api-list', [
      ['pods in the store', `${PODS} (seeded through the API, ${CONCURRENCY} at a time: ${((PODS - 1) / seedS).toFixed(0)} creates/s, p50 ${fmt(stats(seedTimes).p50)} under load)`],
      [`GET /api/v1/pods (all ${PODS}, ${(list.bytes / 2 ** 20).toFixed(1)} MiB)`, ''],
      ...line(list),
      ['  CPU per list', `berth ${fmt(listCpu.berth)}, baseline ${fmt(listCpu.base)} (server processes, /proc, over the ${LIST_SAMPLES + 5} lists)`],
      ['GET /api/v1/pods?limit=100', `(${(page.bytes / 1024).toFixed(0)} KiB)`],
      ...line(page),
      ['POST /api/v1/pods', `(store grows ${PODS + 20} → ${podsAtEnd} pods)`],
      ...line(create),
      ['berth server RSS', `${rssSeeded.toFixed(0)} MiB after seeding, ${rssEnd.toFixed(0)} MiB at the end (baseline server: ${baseRss.toFixed(0)} MiB)`],
      target('list p50 berth/baseline', ratio(list, 'p50')),
      target('list p99 berth/baseline', ratio(list, 'p99')),
      target('create p99 berth/baseline', ratio(create, 'p99')),
    ]);
  } finally {
    await base?.stop();
    await berth?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
