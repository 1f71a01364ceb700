/**
 * The lifetime policies end to end, on real containers: an idle pod stopped and one kept by an open
 * SSH session or steady proxied requests (through a proxy worker process), the maximum running time,
 * a keep-alive, terminate after stopped, what the event stream and the status message say, the
 * validation, a change of policy that recreates nothing, the template and server defaults, and the
 * CLI's flags and lines. Timeouts are seconds; every wait has a generous bound, nothing is timed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ssh2 from 'ssh2';
import { newHostKeyPair } from '../src/ssh/gateway.js';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

const BIN = fileURLToPath(new URL('../../bin/berth.js', import.meta.url));
const HTTPD = ['sh', '-c', 'mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www'];

interface View {
  id: string;
  status: string;
  statusMessage: string | null;
  lifetime: { idleStop: { idleSeconds: number; gpuThresholdPercent: number; signals: string[] } | null; maxRuntimeSeconds: number | null; terminateAfterStoppedSeconds: number | null } | null;
  keepAliveUntil: string | null;
  stopsAt: string | null;
  stopReason: string | null;
  idleSince: string | null;
  terminatesAt: string | null;
  terminateReason: string | null;
  specVersion: number;
  instances: { containers: { containerId: string | null }[] }[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function proxyGet(port: number, podId: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host: `${podId}-8080.localhost:${port}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

function cli(t: TestServer, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, BERTH_URL: t.url, BERTH_API_KEY: t.key, XDG_CONFIG_HOME: '/nonexistent' }, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('lifetime policies', { concurrency: true }, () => {
  let t: TestServer;
  let keyPair: { private: string; public: string };

  const get = async (id: string): Promise<View> => (await t.api<View>('GET', `/api/v1/pods/${id}`)).body;
  const status = (id: string, want: string, timeoutMs = 60_000): Promise<View> => waitFor(`pod ${id} to be ${want}`, async () => ((await get(id)).status === want ? get(id) : undefined), timeoutMs);
  async function runningPod(body: Record<string, unknown>): Promise<string> {
    const created = await t.api<View>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: HTTPD, ports: ['8080/http'], volumeGb: 0, ...body });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await status(created.body.id, 'RUNNING');
    return created.body.id;
  }

  before(async () => {
    await ensureTestImage();
    // One proxy worker: proxied requests reach the idle policy over the workers' IPC.
    t = await startTestServer({ proxyWorkers: 1 });
    keyPair = newHostKeyPair();
    assert.equal((await t.api('POST', '/api/v1/ssh-keys', { publicKey: keyPair.public })).status, 201);
  });
  after(async () => {
    await t?.close();
  });

  it('stops an idle pod, and the event stream and status message say why', async () => {
    const events = new AbortController();
    const res = await fetch(`${t.url}/api/v1/events`, { headers: { authorization: `Bearer ${t.key}` }, signal: events.signal });
    let text = '';
    const reading = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of res.body!) text += dec.decode(chunk as Uint8Array, { stream: true });
    })().catch(() => undefined);
    try {
      const id = await runningPod({ lifetime: { idleStop: { idleSeconds: 3 } } });
      const running = await get(id);
      assert.equal(running.stopReason, 'GPU under 5% and no SSH, terminal, proxy or port-forward activity for 3 s');
      assert.ok(running.stopsAt && running.idleSince, JSON.stringify(running));
      const stopped = await status(id, 'EXITED');
      assert.equal(stopped.statusMessage, 'stopped by the idle policy: GPU under 5% and no SSH, terminal, proxy or port-forward activity for 3 s');
      assert.equal(stopped.stopsAt, null);
      await waitFor('the lifetime event', async () => (text.includes('event: lifetime') && text.includes(id) ? true : undefined), 10_000);
      const line = text.split('\n').find((l) => l.startsWith('data: ') && l.includes('"policy"') && l.includes(id))!;
      const event = JSON.parse(line.slice(6)) as { podId: string; action: string; policy: string; message: string };
      assert.deepEqual([event.podId, event.action, event.policy, event.message], [id, 'stop', 'idle', stopped.statusMessage]);
      // Nothing is deleted without the policy saying so: it stays stopped.
      await sleep(3000);
      assert.equal((await get(id)).status, 'EXITED');
      // A start forgets what the policy did.
      assert.equal((await t.api('POST', `/api/v1/pods/${id}/start`)).status, 200);
      const again = await status(id, 'RUNNING');
      assert.notEqual(again.statusMessage, stopped.statusMessage);
    } finally {
      events.abort();
      await reading;
    }
  });

  it('does not stop a pod while an SSH session is open, and does once it closes', async () => {
    // The policy comes once the session is open: on a loaded machine the SSH handshake alone may take
    // longer than the idle time, which would stop the pod before the session could hold it.
    const id = await runningPod({});
    const conn = new ssh2.Client();
    await new Promise<void>((resolve, reject) => {
      conn.once('ready', () => resolve());
      conn.once('error', reject);
      conn.connect({ host: '127.0.0.1', port: t.server.ssh!.port, username: id, privateKey: keyPair.private });
    });
    try {
      assert.equal((await t.api('PATCH', `/api/v1/pods/${id}`, { lifetime: { idleStop: { idleSeconds: 3 } } })).status, 200);
      await sleep(10_000);
      const held = await get(id);
      assert.equal(held.status, 'RUNNING', held.statusMessage ?? '');
      assert.equal(held.stopsAt, null);
    } finally {
      conn.end();
    }
    const stopped = await status(id, 'EXITED');
    assert.match(stopped.statusMessage ?? '', /^stopped by the idle policy/);
  });

  it('does not stop a pod with steady proxied requests, and does once they end', async () => {
    const id = await runningPod({ lifetime: { idleStop: { idleSeconds: 4, signals: ['proxy'] } } });
    const port = t.server.proxy!.port;
    const until = Date.now() + 12_000;
    while (Date.now() < until) {
      assert.equal(await proxyGet(port, id), 200);
      await sleep(700);
    }
    assert.equal((await get(id)).status, 'RUNNING');
    const stopped = await status(id, 'EXITED');
    assert.equal(stopped.statusMessage, 'stopped by the idle policy: no proxy activity for 4 s');
  });

  it('stops a pod after its maximum running time; a keep-alive postpones it', async () => {
    const plain = await runningPod({ lifetime: { maxRuntimeSeconds: 4 } });
    const kept = await runningPod({ lifetime: { maxRuntimeSeconds: 4 } });
    const alive = await t.api<View>('POST', `/api/v1/pods/${kept}/keep-alive`, { hours: 15 / 3600 });
    assert.equal(alive.status, 200, JSON.stringify(alive.body));
    assert.ok(alive.body.keepAliveUntil);
    assert.equal(alive.body.stopsAt, alive.body.keepAliveUntil);
    assert.equal(alive.body.stopReason, 'ran for 4 s');
    // RunPod's views carry the same, beside RunPod's own fields.
    const runpod = await t.api<{ id: string; stopsAt: string | null; keepAliveUntil: string | null }>('GET', `/runpod/v2/pods/${kept}`);
    assert.equal(runpod.status, 200);
    assert.deepEqual([runpod.body.stopsAt, runpod.body.keepAliveUntil], [alive.body.stopsAt, alive.body.keepAliveUntil]);
    const stopped = await status(plain, 'EXITED');
    assert.equal(stopped.statusMessage, 'stopped by the maximum running time: ran for 4 s');
    assert.equal((await get(kept)).status, 'RUNNING');
    const later = await status(kept, 'EXITED');
    assert.equal(later.statusMessage, 'stopped by the maximum running time: ran for 4 s');
    assert.ok(Date.now() >= Date.parse(alive.body.keepAliveUntil!) - 1000);
    // Out of range, or on a pod that is gone.
    const bad = await t.api<{ problems: { path: string }[] }>('POST', `/api/v1/pods/${kept}/keep-alive`, { hours: -1 });
    assert.equal(bad.status, 400);
  });

  it('terminates a pod stopped for long enough, with the reason', async () => {
    const id = await runningPod({ lifetime: { terminateAfterStoppedSeconds: 3 } });
    const running = await get(id);
    assert.equal(running.terminatesAt, null);
    // The clock runs from the stop asked for, whether or not the containers are down yet.
    const stopped = await t.api<View>('POST', `/api/v1/pods/${id}/stop`);
    assert.ok(stopped.body.terminatesAt, JSON.stringify(stopped.body));
    assert.equal(stopped.body.terminateReason, 'stopped for 3 s');
    const gone = await waitFor('the pod to be terminated', async () => {
      const r = await t.api<{ pods: View[] }>('GET', `/api/v1/pods?includeTerminated=true&view=full`);
      const p = r.body.pods.find((x) => x.id === id);
      return p?.status === 'TERMINATED' ? p : undefined;
    }, 60_000);
    assert.equal(gone.statusMessage, 'terminated by the terminate-after-stopped policy: stopped for 3 s');
  });

  it('names every wrong field of a policy', async () => {
    const r = await t.api<{ code: string; problems: { path: string; message: string }[] }>('POST', '/api/v1/pods', {
      image: TEST_IMAGE,
      lifetime: { idleStop: { idleSeconds: 0, gpuThresholdPercent: 150, signals: ['ssh', 'jupyter'] }, maxRuntimeSeconds: -1 },
    });
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 'BERTH_ERR_VALIDATION');
    const byPath = Object.fromEntries(r.body.problems.map((p) => [p.path, p.message]));
    assert.match(byPath['/lifetime/idleStop/idleSeconds'] ?? '', /more than 0/);
    assert.match(byPath['/lifetime/idleStop/gpuThresholdPercent'] ?? '', /percentage/);
    assert.match(byPath['/lifetime/idleStop/signals(1)'] ?? '', /must be one of gpu, ssh, terminal, proxy, port-forward/);
    assert.match(byPath['/lifetime/maxRuntimeSeconds'] ?? '', /more than 0/);
    const missing = await t.api<{ problems: { path: string; message: string }[] }>('POST', '/api/v1/pods', { image: TEST_IMAGE, lifetime: { idleStop: { signals: ['ssh'] } } });
    assert.deepEqual(missing.body.problems.map((p) => p.path), ['/lifetime/idleStop/idleSeconds']);
  });

  it('changes a policy without recreating the containers, one policy at a time', async () => {
    const id = await runningPod({ lifetime: { idleStop: { idleSeconds: 3600 } } });
    const before = await get(id);
    const containerId = before.instances[0]!.containers[0]!.containerId;
    const patched = await t.api<View>('PATCH', `/api/v1/pods/${id}`, { lifetime: { maxRuntimeSeconds: 7200 } });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.deepEqual(patched.body.lifetime, { idleStop: { idleSeconds: 3600, gpuThresholdPercent: 5, signals: ['gpu', 'ssh', 'terminal', 'proxy', 'port-forward'] }, maxRuntimeSeconds: 7200, terminateAfterStoppedSeconds: null });
    const off = await t.api<View>('PATCH', `/api/v1/pods/${id}`, { lifetime: { idleStop: null } });
    assert.equal(off.body.lifetime?.idleStop, null);
    assert.equal(off.body.stopReason, 'ran for 2 h');
    await sleep(2000);
    const after = await get(id);
    assert.equal(after.status, 'RUNNING');
    assert.equal(after.instances[0]!.containers[0]!.containerId, containerId);
  });

  it('sets, shows and postpones policies from the CLI', async () => {
    const created = await cli(t, ['pod', 'create', '--image', TEST_IMAGE, '--volume-gb', '0', '--idle-stop', '2h', '--idle-signals', 'ssh,proxy', '--max-runtime', '8h', '--', ...HTTPD]);
    assert.equal(created.code, 0, created.stderr);
    const id = /pod (\w{14})/.exec(created.stderr + created.stdout)![1]!;
    const shown = await cli(t, ['pod', 'get', id]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /Lifetime:\s+idle stop: no SSH or proxy activity for 2 h; max runtime 8 h/);
    assert.match(shown.stdout, /Stops:\s+\S+ \(in [\d.]+ h\): no SSH or proxy activity for 2 h/);
    const kept = await cli(t, ['pod', 'keep-alive', id, '--hours', '10']);
    assert.equal(kept.code, 0, kept.stderr);
    assert.match(kept.stdout, /kept alive until/);
    assert.match((await cli(t, ['pod', 'get', id])).stdout, /Kept alive until:\s+\S+ \(in 10 h\)/);
    const off = await cli(t, ['pod', 'update', id, '--max-runtime', 'off', '--detach']);
    assert.equal(off.code, 0, off.stderr);
    assert.equal((await get(id)).lifetime?.maxRuntimeSeconds, null);
    const bad = await cli(t, ['pod', 'update', id, '--max-runtime', '8']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /give a duration with its unit \(90s, 30m, 8h, 7d\), or off/);
  });
});

describe('lifetime defaults and Marathon', () => {
  let t: TestServer;
  let dataDir: string;
  const get = async (id: string): Promise<View> => (await t.api<View>('GET', `/api/v1/pods/${id}`)).body;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'berth-lifetime-defaults-'));
    // No agent: the specs are what is looked at.
    t = await startTestServer({ agent: false, proxy: false, ssh: false, dataDir, lifetimeDefault: { idleStop: { idleSeconds: 1800 }, terminateAfterStoppedSeconds: 7 * 86_400 } });
  });
  after(async () => {
    await t?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("puts the server's default under a template's and the request's, policy by policy", async () => {
    const plain = await t.api<View>('POST', '/api/v1/pods', { image: TEST_IMAGE });
    assert.deepEqual(plain.body.lifetime, { idleStop: { idleSeconds: 1800, gpuThresholdPercent: 5, signals: ['gpu', 'ssh', 'terminal', 'proxy', 'port-forward'] }, maxRuntimeSeconds: null, terminateAfterStoppedSeconds: 604_800 });
    const template = await t.api<{ id: string }>('POST', '/api/v1/templates', { name: 'short', pod: { image: TEST_IMAGE, lifetime: { idleStop: { idleSeconds: 600, signals: ['ssh'] }, maxRuntimeSeconds: 3600 } } });
    assert.equal(template.status, 201, JSON.stringify(template.body));
    const fromTemplate = await t.api<View>('POST', '/api/v1/pods', { templateId: template.body.id, lifetime: { maxRuntimeSeconds: 60, terminateAfterStoppedSeconds: null } });
    assert.deepEqual(fromTemplate.body.lifetime, { idleStop: { idleSeconds: 600, gpuThresholdPercent: 5, signals: ['ssh'] }, maxRuntimeSeconds: 60, terminateAfterStoppedSeconds: null });
    const none = await t.api<View>('POST', '/api/v1/pods', { image: TEST_IMAGE, lifetime: null });
    assert.equal(none.body.lifetime, null);
  });

  it("keeps a Marathon pod's policies across a Marathon change, and tells Marathon's bus when one terminates it", async () => {
    const events = new AbortController();
    const res = await fetch(`${t.url}/marathon/v2/events`, { headers: { authorization: `Bearer ${t.key}`, accept: 'text/event-stream' }, signal: events.signal });
    let text = '';
    const reading = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of res.body!) text += dec.decode(chunk as Uint8Array, { stream: true });
    })().catch(() => undefined);
    try {
      const definition = { id: '/lt/sleeper', containers: [{ name: 'main', image: { kind: 'DOCKER', id: TEST_IMAGE }, exec: { command: { shell: 'exec sleep 3600' } }, resources: { cpus: 0.1, mem: 32 } }], networks: [{ mode: 'container/bridge' }] };
      assert.equal((await t.api('POST', '/marathon/v2/pods', definition)).status, 201);
      const id = (await t.api<{ pods: View[] }>('GET', '/api/v1/pods?view=full')).body.pods.find((p) => (p as unknown as { marathonId: string }).marathonId === '/lt/sleeper')!.id;
      assert.equal((await t.api('PATCH', `/api/v1/pods/${id}`, { lifetime: { idleStop: null, terminateAfterStoppedSeconds: 1 } })).status, 200);
      const changed = await t.api('PUT', '/marathon/v2/pods/lt/sleeper?force=true', { ...definition, labels: { changed: 'yes' } });
      assert.ok(changed.status < 300, JSON.stringify(changed.body));
      assert.equal((await get(id)).lifetime?.terminateAfterStoppedSeconds, 1);
      assert.equal((await t.api('POST', `/api/v1/pods/${id}/stop`)).status, 200);
      await waitFor("Marathon's pod_deleted_event", async () => (/event: pod_deleted_event\ndata: .*"uri":"\/v2\/pods\/lt\/sleeper".*terminated by the terminate-after-stopped policy/.test(text) ? true : undefined), 30_000);
    } finally {
      events.abort();
      await reading;
    }
  });
});
