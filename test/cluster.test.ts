/**
 * A cluster end to end (issue 16): a server with its own node and three machines
 * (test/support/machines.ts), each with its own dockerd in its own network namespace, dialling the
 * server and reached by nothing. Everything interactive reaches a pod on such a machine through the
 * server alone; a machine cut off loses its node, whose movable pod runs elsewhere while its resident
 * pod waits and says why, and once it is back exactly one copy of each runs. (An agent killed with -9
 * re-adopting its pods is test/machines.test.ts'.)
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import WebSocket from 'ws';
import { connects, freePort, sha256, spawnRun, sshOptions, wsUntil, type Ran } from './support/clients.js';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { Machines, type Machine } from './support/machines.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

const run = promisify(execFile);
const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
/** Generous: the box running the tests is loaded. */
const WAIT = 180_000;
const A100 = 'NVIDIA A100 80GB PCIe';
const H100 = 'NVIDIA H100 80GB HBM3';

interface NodeView {
  id: string;
  name: string;
  status: 'READY' | 'NOT_READY';
  notReadySince: string | null;
}
interface InstanceView {
  id: string;
  nodeId: string | null;
  goal: string;
  state: string;
  unknownSince: string | null;
}
interface PodView {
  id: string;
  status: string;
  statusMessage: string | null;
  nodeId: string | null;
  instances: InstanceView[];
  connection: { tcp: { port: number; address: string | null }[] };
}

/** One GET to the proxy at `address:port` with the given Host header. */
function proxied(address: string, port: number, host: string, path = '/', key?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: address, port, path, headers: { host, ...(key ? { authorization: `Bearer ${key}` } : {}) } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.setTimeout(15_000, () => req.destroy(new Error('no answer in 15 s')));
    req.on('error', reject);
    req.end();
  });
}

describe('a cluster: a server with its own node and three machines that accept no inbound connection', { timeout: 1_200_000 }, () => {
  let machines: Machines | undefined;
  let t: TestServer | undefined;
  let dir = '';
  let image = '';
  let sshPort = 0;
  const host = new Docker();

  before(async () => {
    await ensureTestImage();
    dir = await mkdtemp(join(tmpdir(), 'berth-cluster-'));
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id')]);
    machines = await Machines.start([
      { name: 'machine-1', gpus: [{ name: A100 }] },
      { name: 'machine-2', gpus: [{ name: H100 }] },
      { name: 'machine-3' },
    ]);
    image = await machines.publish(TEST_IMAGE);
    // A silent node is NOT_READY after 6 s and its movable instances go elsewhere 2 s later.
    t = await startTestServer({ host: machines.address, nodeTimeoutSeconds: 6, unreachableAfterSeconds: 2 });
    sshPort = t.server.ssh!.port;
    assert.equal((await t.api('POST', '/api/v1/ssh-keys', { publicKey: await readFile(join(dir, 'id.pub'), 'utf8') })).status, 201);
    await machines.startAgents({ server: t.url, token: await t.joinToken({ description: 'cluster test machines' }) });
  });
  after(async () => {
    try {
      await t?.close();
    } finally {
      await machines?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  });

  const api = <T,>(method: string, path: string, body?: unknown) => t!.api<T>(method, path, body);
  const m = (n: number): Machine => machines!.machine(n);
  const pod = async (id: string) => (await api<PodView>('GET', `/api/v1/pods/${id}`)).body;
  const nodes = async () => (await api<{ nodes: NodeView[] }>('GET', '/api/v1/nodes')).body.nodes;
  const create = async (body: Record<string, unknown>): Promise<PodView> => {
    const r = await api<PodView>('POST', '/api/v1/pods', { image, command: ['sleep', '3600'], volumeGb: 0, ...body });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  };
  /** Waits until the pod runs one live instance, on `where(nodeId)`; the last view in the error. */
  const runningWhere = async (id: string, what: string, where: (nodeId: string | null) => boolean): Promise<PodView> => {
    let last: PodView | undefined;
    try {
      return await waitFor(`${id} RUNNING ${what}`, async () => {
        const p = (last = await pod(id));
        const live = p.instances.filter((i) => i.goal === 'running');
        return p.status === 'RUNNING' && live.length === 1 && live[0]!.state === 'running' && where(live[0]!.nodeId) ? p : undefined;
      }, WAIT);
    } catch (e) {
      throw new Error(`${(e as Error).message}; last seen: ${JSON.stringify({ status: last?.status, message: last?.statusMessage, instances: last?.instances.map((i) => [i.nodeId, i.goal, i.state]), nodes: await nodes() })}`);
    }
  };
  /** The pod's running app containers on every daemon: the host's and each machine's. */
  const runningCopies = async (podId: string): Promise<number> => {
    const filters = { label: [`berth.pod=${podId}`], status: ['running'] };
    const all = [await host.listContainers({ filters }), ...(await Promise.all(machines!.list.map((x) => x.docker.listContainers({ filters }))))].flat();
    return all.filter((c) => c.Labels['berth.kind'] !== 'infra').length;
  };

  describe('every interactive way in, to a pod on machine 1, through the server alone', () => {
    let podId = '';
    const target = () => `${podId}@${machines!.address}`;
    const ssh = (args: string[], input?: string): Promise<Ran> => spawnRun('ssh', [...sshOptions(join(dir, 'id')), '-p', String(sshPort), ...args], input);
    const scp = (from: string, to: string): Promise<Ran> => spawnRun('scp', [...sshOptions(join(dir, 'id')), '-P', String(sshPort), from, to]);

    before(async () => {
      // Pinned by the GPU type only machine 1 has; 8080 served for the proxy, 8081 published as TCP.
      const created = await create({
        gpuCount: 1,
        gpuTypeIds: [A100],
        ports: ['8080/http', '8081/tcp'],
        command: ['sh', '-c', 'mkdir -p /www && echo hello-from-machine-1 > /www/index.html && httpd -p 8081 -h /www && httpd -f -p 8080 -h /www & i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.3; done'],
      });
      podId = created.id;
      await runningWhere(podId, 'on machine 1', (n) => n === m(1).nodeId);
      await waitFor('the node channel', async () => ((await api('POST', `/api/v1/pods/${podId}/exec`, { command: ['true'] })).status === 200 ? true : undefined), 60_000);
    });
    after(async () => {
      if (podId) await api('POST', `/api/v1/pods/${podId}/terminate`);
    });

    it('runs on a machine nothing can dial: its published port answers on the machine, not from the server’s host', async () => {
      const tcp = (await pod(podId)).connection.tcp[0]!;
      const [ip, port] = tcp.address!.split(':') as [string, string];
      assert.equal(ip, m(1).ip, "the TCP port shows the machine's address");
      const page = await waitFor('the pod answering on its machine', async () => (await m(1).exec(['busybox', 'wget', '-q', '-O', '-', `http://${tcp.address}/index.html`])) || undefined, 30_000);
      assert.equal(page.trim(), 'hello-from-machine-1');
      assert.equal(await connects(ip, Number(port)), false, 'the machine accepts no inbound connection');
    });

    it('runs exec (native API), keeping the exit code', async () => {
      const r = await api<{ exitCode: number; stdout: string }>('POST', `/api/v1/pods/${podId}/exec`, { command: ['sh', '-c', 'echo gpu=$NVIDIA_VISIBLE_DEVICES; exit 3'] });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.exitCode, 3);
      assert.equal(r.body.stdout, 'gpu=GPU-machine-1-0\n');
    });

    it('follows logs: new lines arrive', async () => {
      const ac = new AbortController();
      const res = await fetch(`${t!.url}/api/v1/pods/${podId}/logs?follow=true&tail=1`, { headers: { authorization: `Bearer ${t!.key}` }, signal: ac.signal });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      let text = '';
      const ticks = new Set<string>();
      try {
        while (ticks.size < 4) {
          const { value, done } = await reader.read();
          assert.ok(!done, 'the follow ended early');
          text += Buffer.from(value).toString();
          for (const x of text.matchAll(/tick (\d+)/g)) ticks.add(x[1]!);
        }
      } finally {
        ac.abort();
        await reader.cancel().catch(() => undefined);
      }
    });

    it('opens an SSH shell with a PTY and runs an ssh command', async () => {
      const shell = await ssh(['-tt', target()], 'tty; echo "term=$TERM"; exit 7\n');
      assert.equal(shell.code, 7, shell.stderr);
      assert.match(shell.stdout, /\/dev\/pts\/\d+/);
      assert.match(shell.stdout, /term=xterm-256color/);
      const cmd = await ssh([target(), '--', 'echo out-$((40+2)); echo err >&2; exit 3']);
      assert.equal(cmd.code, 3, cmd.stderr);
      assert.equal(cmd.stdout, 'out-42\n');
      assert.equal(cmd.stderr, 'err\n');
    });

    it('copies a few MB both ways with scp and with sftp, bytes intact', async () => {
      const data = randomBytes(5 * 2 ** 20 + 123);
      const local = join(dir, 'up.bin');
      await writeFile(local, data);
      const up = await scp(local, `${target()}:/tmp/up.bin`);
      assert.equal(up.code, 0, up.stderr);
      assert.equal((await ssh([target(), 'sha256sum /tmp/up.bin'])).stdout.split(' ')[0], sha256(data));
      const down = await scp(`${target()}:/tmp/up.bin`, join(dir, 'down.bin'));
      assert.equal(down.code, 0, down.stderr);
      assert.equal(sha256(await readFile(join(dir, 'down.bin'))), sha256(data));

      const batch = join(dir, 'batch');
      await writeFile(batch, [`put ${local} /tmp/sftp.bin`, `get /tmp/sftp.bin ${join(dir, 'sftp-back.bin')}`, 'mkdir /tmp/d', 'rename /tmp/sftp.bin /tmp/d/moved.bin', 'ls /tmp/d', ''].join('\n'));
      const s = await spawnRun('sftp', [...sshOptions(join(dir, 'id')), '-P', String(sshPort), '-b', batch, target()]);
      assert.equal(s.code, 0, s.stderr + s.stdout);
      assert.match(s.stdout, /moved\.bin/);
      assert.equal(sha256(await readFile(join(dir, 'sftp-back.bin'))), sha256(data));
      assert.equal((await ssh([target(), 'sha256sum /tmp/d/moved.bin'])).stdout.split(' ')[0], sha256(data));
    });

    it('forwards a local port into the pod with ssh -L', async () => {
      const local = await freePort();
      const child = spawn('ssh', [...sshOptions(join(dir, 'id')), '-p', String(sshPort), '-N', '-L', `${local}:localhost:8080`, target()], { stdio: 'ignore', detached: true });
      try {
        const body = await waitFor('the -L forward', async () => {
          const r = await fetch(`http://127.0.0.1:${local}/`).catch(() => undefined);
          return r?.ok ? r.text() : undefined;
        }, 60_000);
        assert.equal(body, 'hello-from-machine-1\n');
      } finally {
        process.kill(-child.pid!, 'SIGKILL');
      }
    });

    it('opens the web terminal (WebSocket), resizes it and runs a command in it', async () => {
      const ws = new WebSocket(`${t!.url.replace('http', 'ws')}/api/v1/pods/${podId}/terminal?cols=100&rows=30`, { headers: { authorization: `Bearer ${t!.key}` } });
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      try {
        const size = wsUntil(ws, /size=40 132/, 30_000);
        ws.send(JSON.stringify({ type: 'resize', cols: 132, rows: 40 }));
        await new Promise((r) => setTimeout(r, 300));
        ws.send(Buffer.from('echo "size=$(stty size)"\n'));
        await size;
      } finally {
        ws.close();
      }
    });

    it('forwards a port with berth port-forward', async () => {
      const local = await freePort();
      const child = spawn(process.execPath, [MAIN, 'port-forward', podId, `${local}:8080`], { env: { ...process.env, BERTH_URL: t!.url, BERTH_API_KEY: t!.key }, stdio: 'ignore' });
      try {
        const body = await waitFor('the forward', async () => {
          const r = await fetch(`http://127.0.0.1:${local}/`).catch(() => undefined);
          return r?.ok ? r.text() : undefined;
        }, 60_000);
        assert.equal(body, 'hello-from-machine-1\n');
      } finally {
        child.kill();
      }
    });

    it('serves the pod’s HTTP port through the proxy ({podId}-{port}.localhost)', async () => {
      const proxyPort = t!.server.proxy!.port;
      let last: unknown;
      const page = await waitFor('the pod through the proxy', async () => {
        const r = (last = await proxied(machines!.address, proxyPort, `${podId}-8080.localhost:${proxyPort}`, '/', t!.key).catch((e: Error) => e.message));
        return typeof r === 'object' && r.status === 200 ? r.body : undefined;
      }, 60_000).catch((e: Error) => assert.fail(`${e.message}; last answer: ${JSON.stringify(last)}`));
      assert.equal(page, 'hello-from-machine-1\n');
    });
  });

  it('moves a cut-off machine’s movable pod, keeps its resident pod waiting, and runs one copy of each when it is back', async (ctx) => {
    // Both pods placed on machine 2 by cordoning every other node, then uncordoned: the movable one may go anywhere.
    const others = (await nodes()).filter((n) => n.id !== m(2).nodeId);
    for (const n of others) assert.equal((await api('POST', `/api/v1/nodes/${n.id}/cordon`)).status, 200);
    const movable = await create({ name: 'movable', volumeGb: 0 });
    const resident = await create({ name: 'resident', volumeGb: 1 });
    await runningWhere(movable.id, 'on machine 2', (n) => n === m(2).nodeId);
    await runningWhere(resident.id, 'on machine 2', (n) => n === m(2).nodeId);
    for (const n of others) assert.equal((await api('POST', `/api/v1/nodes/${n.id}/uncordon`)).status, 200);
    assert.equal(await runningCopies(movable.id), 1);
    assert.equal(await runningCopies(resident.id), 1);

    const cutAt = Date.now();
    await m(2).cut();
    try {
      const lost = await waitFor('machine 2 NOT_READY', async () => (await nodes()).find((n) => n.id === m(2).nodeId && n.status === 'NOT_READY'), WAIT);
      ctx.diagnostic(`machine 2 NOT_READY ${((Date.now() - cutAt) / 1000).toFixed(1)} s after the cut`);
      const moved = await runningWhere(movable.id, 'on another node', (n) => n !== null && n !== m(2).nodeId);
      ctx.diagnostic(`the movable pod RUNNING elsewhere ${((Date.now() - cutAt) / 1000).toFixed(1)} s after the cut`);
      assert.ok(moved.instances.some((i) => i.nodeId === m(2).nodeId && i.goal === 'removed' && i.state === 'unknown'), `the lost instance is kept to be removed, shown UNKNOWN: ${JSON.stringify(moved.instances)}`);

      const waiting = await waitFor('the resident pod saying why it waits', async () => {
        const p = await pod(resident.id);
        return /node machine-2 is not answering .*volume disk .* lives on the node; it waits/.test(p.statusMessage ?? '') ? p : undefined;
      }, WAIT);
      assert.equal(waiting.instances.length, 1, 'a resident pod is not placed elsewhere');
      assert.equal(waiting.instances[0]!.nodeId, m(2).nodeId);
      assert.equal(waiting.instances[0]!.state, 'unknown');
      assert.equal(waiting.instances[0]!.unknownSince, lost.notReadySince);
    } finally {
      await m(2).restore();
    }

    const backAt = Date.now();
    await waitFor('machine 2 READY again', async () => ((await nodes()).find((n) => n.id === m(2).nodeId)?.status === 'READY' ? true : undefined), WAIT);
    ctx.diagnostic(`machine 2 READY ${((Date.now() - backAt) / 1000).toFixed(1)} s after the restore`);
    let seen: unknown;
    await waitFor('the replaced copy removed from machine 2, one copy left', async () => {
      const p = await pod(movable.id);
      const onTwo = await m(2).podContainers(movable.id);
      const copies = await runningCopies(movable.id);
      seen = { instances: p.instances.map((i) => [i.nodeId, i.goal, i.state]), onTwo: onTwo.map((c) => c.State), copies };
      return p.status === 'RUNNING' && p.instances.length === 1 && p.instances[0]!.nodeId !== m(2).nodeId && onTwo.length === 0 && copies === 1 ? true : undefined;
    }, WAIT).catch((e: Error) => assert.fail(`${e.message}; last seen: ${JSON.stringify(seen)}`));
    const back = await runningWhere(resident.id, 'on machine 2 again', (n) => n === m(2).nodeId);
    assert.doesNotMatch(back.statusMessage ?? '', /not answering/);
    assert.equal(await runningCopies(resident.id), 1);
    assert.equal(await runningCopies(movable.id), 1);
    ctx.diagnostic(`one copy of each ${((Date.now() - backAt) / 1000).toFixed(1)} s after the restore`);
    for (const id of [movable.id, resident.id]) await api('POST', `/api/v1/pods/${id}/terminate`);
  });
});
