/**
 * Usage and metrics end to end: real containers burning CPU and holding memory show up in the pod's
 * metrics and in `GET /metrics` within two intervals (a 1 s `--metrics-interval` here), a simulated
 * GPU's series say so, the samples move no pod revision, and `/metrics` parses as Prometheus text
 * and refuses an ordinary user's key.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

interface Usage {
  at: string;
  cpuCores: number;
  memoryBytes: number;
  gpus: { uuid: string; utilizationPercent: number | null; simulated: boolean }[];
  instances: { instanceId: string; usage: { containers: { name: string; cpuSeconds: number; cpuCores: number; memoryBytes: number }[] } }[];
}
interface PodView {
  id: string;
  status: string;
  revision: number;
  usage: Usage | null;
}
interface Metrics {
  podId: string;
  since: string;
  latest: Usage | null;
  samples: { instanceId: string; at: string; containers: { cpuSeconds: number }[] }[];
}
interface Family {
  name: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string> }[];
}

const BIN = fileURLToPath(new URL('../../bin/berth.js', import.meta.url));
const INTERVAL_S = 1;
/** Cores a busy loop shows at least: the test machine's few cores are shared with whatever else runs. */
const BUSY = 0.2;
const TOKEN = 'metrics-token-for-the-test';
/** A loop on one core in a shell that holds 64 MiB in a variable. */
const BURN = ['sh', '-c', 'x=$(head -c 67108864 /dev/zero | tr "\\0" a); while :; do :; done'];

describe('usage and metrics', () => {
  let t: TestServer;
  before(async () => {
    await ensureTestImage();
    const inventory = join(tmpdir(), `berth-metrics-gpus-${process.pid}.json`);
    await writeFile(inventory, JSON.stringify({ gpus: [{ uuid: 'GPU-metrics-sim-0', name: 'NVIDIA GeForce RTX 4090', memoryMb: 24564 }] }));
    t = await startTestServer({ gpuInventory: inventory, metricsIntervalSeconds: INTERVAL_S, metricsToken: TOKEN });
  });
  after(async () => t?.close());

  const get = async (id: string) => (await t.api<PodView>('GET', `/api/v1/pods/${id}`)).body;
  const scrape = async (key: string | undefined) => {
    const res = await fetch(`${t.url}/metrics`, key ? { headers: { authorization: `Bearer ${key}` } } : {});
    return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
  };
  const series = (families: Family[], name: string, pod: string) => families.find((f) => f.name === name)?.metrics.filter((m) => m.labels?.pod === pod) ?? [];

  it('shows a CPU-burning, memory-holding container in the pod metrics and in /metrics within two intervals', async () => {
    const created = await t.api<PodView>('POST', '/api/v1/pods', { name: 'burner', image: TEST_IMAGE, command: BURN, volumeGb: 0 });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    await waitFor('RUNNING', async () => ((await get(id)).status === 'RUNNING' ? true : undefined), 30_000);
    const running = Date.now();

    // The first sample comes within two intervals of RUNNING (plus a second for Docker's stats and the report).
    await waitFor('a first sample', async () => ((await get(id)).usage ? true : undefined), 15_000);
    const seenAfter = (Date.now() - running) / 1000;
    assert.ok(seenAfter <= 2 * INTERVAL_S + 2, `usage showed ${seenAfter.toFixed(1)} s after RUNNING`);
    // Once the shell holds its memory (filling it takes a moment) the busy core and the memory show, in a sample at most two intervals old.
    const usage = await waitFor(
      'the busy core and the held memory in the pod view',
      async () => {
        const u = (await get(id)).usage;
        return u && u.cpuCores > BUSY && u.memoryBytes > 60 * 2 ** 20 ? u : undefined;
      },
      30_000,
    );
    const age = (Date.now() - Date.parse(usage.at)) / 1000;
    assert.ok(age <= 2 * INTERVAL_S + 1, `the sample shown is ${age.toFixed(1)} s old`);
    assert.ok(usage.cpuCores < 1.5, `one busy loop is about one core, got ${usage.cpuCores}`);
    assert.equal(usage.instances.length, 1);
    assert.equal(usage.instances[0]!.usage.containers[0]!.name, 'main');

    // The CLI: `pod top --once` and `pod get` show it.
    // One config home for the CLI's calls, removed after them.
    const home = await mkdtemp(join(tmpdir(), 'berth-cli-'));
    const cli = async (...args: string[]) => {
      const env = { ...process.env, XDG_CONFIG_HOME: home, BERTH_URL: t.url, BERTH_API_KEY: t.key };
      return new Promise<string>((resolve, reject) => execFile(process.execPath, [BIN, ...args], { env, timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${String(err)}: ${stderr}`)) : resolve(stdout))));
    };
    try {
      const topText = await cli('pod', 'top', '--once');
      const line = topText.split('\n').find((l) => l.startsWith(id));
      assert.ok(line, topText);
      assert.match(topText.split('\n')[0]!, /^ID\s+NAME\s+CPU\s+MEMORY\s+NET RX\/TX\s+GPU\s+SAMPLED/);
      assert.match(line, /burner\s+\d\.\d\d\s+\d+(\.\d)? MB/);
      const topJson = JSON.parse(await cli('pod', 'top', '--once', '-o', 'json')) as { pods: { id: string; usage: Usage | null }[] };
      assert.ok(topJson.pods.find((p) => p.id === id)?.usage);
      assert.match(await cli('pod', 'get', id), /Usage:\s+\d\.\d\d cores, \d+(\.\d)? MB memory/);
    } finally {
      await rm(home, { recursive: true, force: true });
    }

    const m = await t.api<Metrics>('GET', `/api/v1/pods/${id}/metrics?since=10m`);
    assert.equal(m.status, 200, JSON.stringify(m.body));
    assert.ok(m.body.latest && m.body.latest.cpuCores > BUSY, JSON.stringify(m.body.latest));
    assert.ok(m.body.samples.length >= 1, 'the history holds the first minute\'s sample');
    assert.ok(m.body.samples.every((s) => s.instanceId === `${id}-0`));
    assert.equal((await t.api('GET', `/api/v1/pods/${id}/metrics?since=yesterday-ish`)).status, 400);

    const res = await scrape(t.key);
    assert.equal(res.status, 200);
    assert.match(res.type, /text\/plain; version=0\.0\.4/);
    const families = parsePrometheusTextFormat(res.text) as Family[];
    const cpu = series(families, 'container_cpu_usage_seconds_total', id);
    assert.equal(cpu.length, 1, 'one series for the one container');
    assert.equal(cpu[0]!.labels!.container, 'main');
    assert.ok(cpu[0]!.labels!.node, 'labelled with the node');
    assert.ok(Number(cpu[0]!.value) > BUSY, `CPU seconds ${cpu[0]!.value}`);
    const mem = series(families, 'container_memory_working_set_bytes', id);
    assert.ok(Number(mem[0]!.value) > 60 * 2 ** 20, `working set ${mem[0]!.value}`);
    assert.equal(series(families, 'container_network_receive_bytes_total', id)[0]?.labels?.container, 'POD');
    // The control plane, the agents, the API and the proxy are there too.
    const names = new Set(families.map((f) => f.name));
    for (const n of ['berth_pods', 'berth_http_requests_total', 'berth_http_request_duration_seconds', 'berth_nodes', 'berth_agent_watches_total', 'berth_agent_usage_reports_total', 'berth_placements_total', 'berth_placement_queue_length', 'berth_deployments', 'berth_proxy_requests_total', 'berth_ssh_sessions_total']) {
      assert.ok(names.has(n), `${n} is exported`);
    }
    const running1 = families.find((f) => f.name === 'berth_pods')!.metrics.find((x) => x.labels?.status === 'RUNNING');
    assert.ok(Number(running1?.value) >= 1);
    const route = families.find((f) => f.name === 'berth_http_requests_total')!.metrics.find((x) => x.labels?.route === '/api/v1/pods/:id' && x.labels?.status === '200');
    assert.ok(route, 'requests are counted by route template');
  });

  it('moves no pod revision with its samples', async () => {
    const created = await t.api<PodView>('POST', '/api/v1/pods', { name: 'quiet', image: TEST_IMAGE, command: ['sleep', '600'], volumeGb: 0 });
    const id = created.body.id;
    await waitFor('usage', async () => ((await get(id)).usage ? true : undefined), 30_000);
    const before = (await get(id)).revision;
    const sampled = (await get(id)).usage!.at;
    await waitFor('two more samples', async () => ((await get(id)).usage!.at > sampled ? true : undefined), 10_000);
    await new Promise((r) => setTimeout(r, 2 * INTERVAL_S * 1000));
    assert.equal((await get(id)).revision, before, 'samples arrived and the pod revision stayed');
  });

  it('labels a simulated GPU as simulated, with no figures made up', async () => {
    const created = await t.api<PodView>('POST', '/api/v1/pods', { name: 'gpu', image: TEST_IMAGE, command: ['sleep', '600'], gpuCount: 1, volumeGb: 0 });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    const usage = await waitFor('a GPU sample', async () => {
      const u = (await get(id)).usage;
      return u && u.gpus.length ? u : undefined;
    }, 30_000);
    assert.deepEqual(
      usage.gpus.map((g) => ({ uuid: g.uuid, util: g.utilizationPercent, simulated: g.simulated })),
      [{ uuid: 'GPU-metrics-sim-0', util: null, simulated: true }],
    );
    const families = parsePrometheusTextFormat((await scrape(TOKEN)).text) as Family[];
    for (const name of ['DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_FB_USED', 'DCGM_FI_DEV_FB_FREE', 'DCGM_FI_DEV_POWER_USAGE', 'DCGM_FI_DEV_GPU_TEMP']) {
      const s = series(families, name, id);
      assert.equal(s.length, 1, `${name} for the pod`);
      assert.deepEqual({ ...s[0]!.labels }, { gpu: '0', UUID: 'GPU-metrics-sim-0', modelName: 'NVIDIA GeForce RTX 4090', Hostname: s[0]!.labels!.Hostname, pod: id, berth_instance: `${id}-0`, node: s[0]!.labels!.node, simulated: 'true' });
      // prom-client writes `Nan`; Prometheus reads NaN in any case (Go's ParseFloat).
      assert.match(s[0]!.value ?? '', /^nan$/i, `${name}: a simulated GPU has no measured figure`);
    }
    // RunPod's shape: the GPU's figures are unknown and marked, not zero.
    const v1 = await t.api<{ runtime: { gpus: { id: string; gpuUtilPercent: number | null; simulated?: boolean }[]; container: { cpuPercent: number | null } } }>('GET', `/runpod/v1/pods/${id}`);
    assert.deepEqual(v1.body.runtime.gpus, [{ id: 'GPU-metrics-sim-0', gpuUtilPercent: null, memoryUtilPercent: null, simulated: true }]);
    assert.equal(typeof v1.body.runtime.container.cpuPercent, 'number');
  });

  it("counts the proxy's requests in its worker processes and the bytes they carried", async () => {
    const proxy = t.server.proxy!;
    assert.ok(proxy.workerPids().length >= 1, 'the proxy runs worker processes');
    const created = await t.api<PodView>('POST', '/api/v1/pods', { name: 'web', image: TEST_IMAGE, command: ['sh', '-c', 'mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www'], ports: ['8080/http'], volumeGb: 0 });
    const id = created.body.id;
    const total = async (name: string) => Number((parsePrometheusTextFormat((await scrape(TOKEN)).text) as Family[]).find((f) => f.name === name)?.metrics[0]?.value ?? NaN);
    const before = await total('berth_proxy_requests_total');
    // node:http, not fetch: fetch sets Host itself.
    const viaProxy = () =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: proxy.port, path: '/', headers: { host: `${id}-8080.localhost:${proxy.port}` }, agent: false }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        });
        req.on('error', reject);
        req.end();
      });
    await waitFor('the pod to answer through the proxy', async () => ((await viaProxy().catch(() => undefined))?.status === 200 ? true : undefined), 60_000);
    for (let i = 0; i < 5; i++) assert.equal((await viaProxy()).text, 'hello\n');
    // Workers send their counters once a second.
    await waitFor('the workers\' requests in /metrics', async () => ((await total('berth_proxy_requests_total')) >= before + 6 ? true : undefined), 10_000);
    await waitFor('the bytes of the closed connections', async () => ((await total('berth_proxy_sent_bytes_total')) > 0 ? true : undefined), 15_000);
    assert.equal(await total('berth_proxy_workers'), proxy.workerPids().length);
  });

  it('refuses /metrics to an ordinary user and to no key; takes admin keys and the metrics token', async () => {
    const alice = (await t.api<{ key: string }>('POST', '/api/v1/keys', { name: 'alice', owner: 'alice-metrics' })).body.key;
    const user = await scrape(alice);
    assert.equal(user.status, 403);
    assert.match(user.type, /application\/problem\+json/);
    assert.equal((JSON.parse(user.text) as { code: string }).code, 'BERTH_ERR_FORBIDDEN');
    assert.equal((await scrape(undefined)).status, 401);
    assert.equal((await scrape('not-a-key')).status, 401);
    const token = await scrape(TOKEN);
    assert.equal(token.status, 200);
    assert.ok((parsePrometheusTextFormat(token.text) as Family[]).length > 10);
    // Only agents (admin keys) report usage; the route and both usage routes are in the OpenAPI document.
    assert.equal((await t.api('POST', '/api/v1/agent/usage', { nodeId: 'x', samples: [] }, alice)).status, 403);
    const openapi = (await t.api<{ paths: Record<string, unknown> }>('GET', '/api/v1/openapi.json')).body;
    for (const path of ['/api/v1/pods/{id}/metrics', '/api/v1/usage', '/api/v1/agent/usage', '/metrics']) assert.ok(openapi.paths[path], `${path} in the OpenAPI document`);
    // An owner's metrics are the owner's: another user's pod is not found.
    const pods = (await t.api<{ pods: { id: string }[] }>('GET', '/api/v1/pods')).body.pods;
    assert.equal((await t.api('GET', `/api/v1/pods/${pods[0]!.id}/metrics`, undefined, alice)).status, 404);
  });
});
