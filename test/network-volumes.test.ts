/**
 * Network volumes across machines: a server without an agent of its own, and four real `berth agent`
 * processes, two in a data center without shared storage and two in one with an NFS export.
 *
 * The agents share this host's Docker daemon (everything an agent makes carries its node id), so a
 * volume's Docker name alone cannot show that no second copy was made: the test asserts placement
 * (every pod using a node-held volume is on the holding node), that the one Docker volume carries
 * that node's label, and that data pod 1 wrote is what pod 2 read.
 *
 * This machine's kernel has no NFS client (no `nfs` in /proc/filesystems, no modprobe), so nothing
 * mounts the export here: the test checks that the volume is made with the NFS driver options and
 * that pods of that data center go to either of its nodes.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { exportRootVolumeName } from '../src/agent/nfs-subdirectory.js';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

const BIN = fileURLToPath(new URL('../../bin/berth.js', import.meta.url));
const NFS_DC = 'nfs-dc';
const NODE_DC = 'east';

interface NodeView {
  id: string;
  name: string;
}
interface PodView {
  id: string;
  status: string;
  statusMessage?: string | null;
  nodeId: string | null;
}
interface VolumeView {
  id: string;
  dataCenterId: string;
  storage: 'nfs' | 'node';
  nodeId: string | null;
  nodeName: string | null;
}

function cli(t: TestServer, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, BERTH_URL: t.url, BERTH_API_KEY: t.key }, timeout: 60_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
    );
  });
}

describe('network volumes across machines', { timeout: 600_000 }, () => {
  const docker = new Docker();
  let t: TestServer;
  const agents: ChildProcess[] = [];
  const dirs: string[] = [];
  const volumes: string[] = [];
  const nodes: Record<string, string> = {};

  before(async () => {
    await ensureTestImage();
    t = await startTestServer({ agent: false, nfsExports: { [NFS_DC]: { server: '127.0.0.1', path: '/srv/berth', options: ['rw', 'nfsvers=4'] } } });
    const stamp = Date.now().toString(36);
    const token = await t.joinToken({ description: 'network volume test agents' });
    for (const [name, dc] of [['a', NODE_DC], ['b', NODE_DC], ['c', NFS_DC], ['d', NFS_DC]] as const) {
      const dir = await mkdtemp(join(tmpdir(), `berth-nv-${name}-`));
      dirs.push(dir);
      const child = spawn(process.execPath, [BIN, 'agent', '--server', t.url, '--name', `nv-${name}-${stamp}`, '--data-dir', dir, '--label', `berth.io/datacenter=${dc}`, '--metrics-interval', '0', '--log-level', 'warn'], {
        env: { ...process.env, BERTH_TOKEN: token },
        stdio: 'ignore',
      });
      agents.push(child);
    }
    const registered = await waitFor(
      'four agents registered',
      async () => {
        const list = (await t.api<{ nodes: NodeView[] }>('GET', '/api/v1/nodes')).body.nodes;
        return list.length === 4 ? list : undefined;
      },
      120_000,
    );
    for (const n of registered) nodes[n.name.split('-')[1]!] = n.id;
  });

  after(async () => {
    await t?.close();
    for (const child of agents) child.kill('SIGTERM');
    await Promise.all(agents.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
    for (const v of volumes) await docker.getVolume(v).remove({ force: true }).catch(() => undefined);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  const pod = (id: string) => t.api<PodView>('GET', `/api/v1/pods/${id}`).then((r) => r.body);
  const running = (id: string) => waitFor(`pod ${id} running`, async () => ((await pod(id)).status === 'RUNNING' ? pod(id) : undefined), 180_000);

  it('keeps a volume without shared storage on the node of its first pod, and places every pod that uses it there', async () => {
    const created = await t.api<VolumeView>('POST', '/api/v1/network-volumes', { name: 'held', sizeGb: 1, dataCenterId: NODE_DC });
    assert.equal(created.status, 201);
    assert.equal(created.body.storage, 'node');
    assert.equal(created.body.nodeId, null, 'bound at its first pod');
    const vid = created.body.id;
    const dockerName = `berth-nv-${vid}`;
    volumes.push(dockerName);

    // Pod 1 takes one of its node's two vCPUs' worth: left to itself, the scheduler would put the next pod on the emptier node.
    const cpus = 1;
    const first = await t.api<PodView>('POST', '/api/v1/pods', {
      image: TEST_IMAGE,
      command: ['sh', '-c', 'echo written-by-pod-1 > /workspace/note && sleep 3600'],
      networkVolumeId: vid,
      vcpuCount: cpus,
    });
    assert.equal(first.status, 201);
    const p1 = await running(first.body.id);
    const volume = (await t.api<VolumeView>('GET', `/api/v1/network-volumes/${vid}`)).body;
    assert.equal(volume.nodeId, p1.nodeId, 'bound to the node of its first pod');
    assert.ok([nodes.a, nodes.b].includes(volume.nodeId!), 'in its own data center');
    const holderName = volume.nodeName!;

    const second = await t.api<PodView>('POST', '/api/v1/pods', {
      image: TEST_IMAGE,
      command: ['sh', '-c', 'cat /workspace/note > /workspace/read-by-pod-2 && sleep 3600'],
      networkVolumeId: vid,
      vcpuCount: cpus,
    });
    const p2 = await running(second.body.id);
    assert.equal(p2.nodeId, volume.nodeId, 'the other node of the data center was emptier; the volume decides');

    // One Docker volume, made by the holding node's agent, and what pod 1 wrote is what pod 2 read.
    const info = await docker.getVolume(dockerName).inspect();
    assert.equal(info.Labels['berth.node'], volume.nodeId);
    const read = await waitFor('pod 2 wrote what it read', async () => (await readFile(join(info.Mountpoint, 'read-by-pod-2'), 'utf8').catch(() => '')) || undefined);
    assert.equal(read.trim(), 'written-by-pod-1');

    // The holding node is full now: a third pod waits, saying why, though the other node is empty.
    const third = await t.api<PodView>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sleep', '3600'], networkVolumeId: vid, vcpuCount: 2 });
    assert.equal(third.status, 201);
    assert.equal(third.body.nodeId, null);
    const waiting = await pod(third.body.id);
    assert.match(waiting.statusMessage ?? '', new RegExp(`network volume ${vid} is held by node ${holderName}`));

    const listed = await cli(t, ['volume', 'ls']);
    assert.match(listed, new RegExp(`${vid}\\s+held\\s+1 GB\\s+${NODE_DC}\\s+${holderName}`), listed);

    // Deleting the volume removes it from its node once no pod uses it.
    for (const p of [first, second, third]) await t.api('POST', `/api/v1/pods/${p.body.id}/terminate`);
    await waitFor('pods gone', async () => ((await t.server.store.listInstances({})).length === 0 ? true : undefined), 120_000);
    assert.equal((await t.api('DELETE', `/api/v1/network-volumes/${vid}`)).status, 204);
    await waitFor('the holding node removed the volume', async () => ((await docker.getVolume(dockerName).inspect().catch(() => undefined)) ? undefined : true), 120_000);
  });

  it("makes a volume on the data center's NFS export with Docker's local driver, and places its pods on any node of that data center", async () => {
    const created = await t.api<VolumeView>('POST', '/api/v1/network-volumes', { name: 'shared', sizeGb: 1, dataCenterId: NFS_DC });
    assert.equal(created.status, 201);
    assert.equal(created.body.storage, 'nfs');
    const vid = created.body.id;
    const dockerName = `berth-nv-${vid}`;
    volumes.push(dockerName);

    // Two pods of one vCPU each: the scheduler spreads them over the two nodes, the volume pins neither.
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await t.api<PodView>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sleep', '3600'], networkVolumeId: vid, vcpuCount: 1 });
      assert.equal(res.status, 201);
      ids.push(res.body.id);
    }
    const placed = await Promise.all(ids.map((id) => pod(id)));
    assert.deepEqual(new Set(placed.map((p) => p.nodeId)), new Set([nodes.c, nodes.d]));
    assert.equal((await t.api<VolumeView>('GET', `/api/v1/network-volumes/${vid}`)).body.nodeId, null, 'bound to no node');

    // A node first makes the volume's directory through a volume of the export's root, which Docker
    // mounts with these options. The mount itself fails here (no NFS client in this kernel): the pod
    // says so, and the volume's own options (`device=:/srv/berth/<id>`) are checked in the unit tests.
    const rootName = exportRootVolumeName({ type: 'nfs', o: 'addr=127.0.0.1,rw,nfsvers=4', device: ':/srv/berth' });
    volumes.push(rootName);
    const info = await waitFor('the agents made the export root volume', () => docker.getVolume(rootName).inspect().catch(() => undefined), 120_000);
    assert.equal(info.Driver, 'local');
    assert.deepEqual(info.Options, { type: 'nfs', o: 'addr=127.0.0.1,rw,nfsvers=4', device: ':/srv/berth' });
    await waitFor('the pod says the mount failed', async () => (/cannot make the network volume's directory \w+ on the NFS export :\/srv\/berth \(addr=127\.0\.0\.1,rw,nfsvers=4\): .*failed to mount local volume/.test((await pod(ids[0]!)).statusMessage ?? '') ? true : undefined), 120_000);

    const listed = await cli(t, ['volume', 'get', vid]);
    assert.match(listed, /shared \(NFS\), on every node of nfs-dc/);

    for (const id of ids) await t.api('POST', `/api/v1/pods/${id}/terminate`);
    await waitFor('pods gone', async () => ((await t.server.store.listInstances({})).length === 0 ? true : undefined), 120_000);
    assert.equal((await t.api('DELETE', `/api/v1/network-volumes/${vid}`)).status, 204);
    assert.equal(await docker.getVolume(dockerName).inspect().catch(() => undefined), undefined, 'no local stand-in was made for the NFS volume');
  });
});
