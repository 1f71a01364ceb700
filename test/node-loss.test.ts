/**
 * Node loss, cordon and drain with real agents: a server without its own agent and `berth agent`
 * processes on the host's Docker daemon (each labels what it makes with its node id, so they share
 * it). A silent node is made by freezing its agent (`silence`); a version on separate machines with
 * their network cut only has to replace that one function.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

interface NodeView {
  id: string;
  name: string;
  status: 'READY' | 'NOT_READY';
  notReadySince: string | null;
  cordoned: boolean;
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
  marathonId?: string | null;
}
interface DrainView {
  moved: { podId: string; to: string | null }[];
  stays: { podId: string; reason: string }[];
}

const MAIN = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const WAIT = 90_000;

/** How an agent proves who it is: a join token, as an operator hands one to a machine. */
const credentialArgs = async (t: TestServer): Promise<string[]> => ['--token', await t.joinToken()];

interface RunningAgent {
  name: string;
  proc: ChildProcess;
  dir: string;
}

async function spawnAgent(t: TestServer, name: string, extra: string[] = []): Promise<RunningAgent> {
  const dir = await mkdtemp(join(tmpdir(), `berth-agent-${name}-`));
  const proc = spawn(process.execPath, [MAIN, 'agent', '--server', t.url, ...(await credentialArgs(t)), '--data-dir', dir, '--name', name, '--metrics-interval', '0', '--log-level', 'warn', ...extra], {
    stdio: ['ignore', 'ignore', process.env.BERTH_TEST_LOG ? 'inherit' : 'ignore'],
  });
  return { name, proc, dir };
}

/** The node stops answering the server; the returned function brings it back. */
async function silence(agent: RunningAgent): Promise<() => Promise<void>> {
  agent.proc.kill('SIGSTOP');
  return async () => {
    agent.proc.kill('SIGCONT');
  };
}

async function stopAgent(agent: RunningAgent): Promise<void> {
  if (agent.proc.exitCode === null && agent.proc.signalCode === null) {
    agent.proc.kill('SIGCONT');
    const exited = new Promise((r) => agent.proc.once('exit', r));
    agent.proc.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
    if (agent.proc.exitCode === null) agent.proc.kill('SIGKILL');
  }
  await rm(agent.dir, { recursive: true, force: true });
}

describe('node loss, cordon and drain with two real agents', () => {
  let t: TestServer;
  const agents: RunningAgent[] = [];
  const docker = new Docker();
  let inventory = '';

  before(async () => {
    await ensureTestImage();
    t = await startTestServer({ agent: false, nodeTimeoutSeconds: 5, unreachableAfterSeconds: 1 });
    inventory = join(tmpdir(), `berth-node-loss-gpus-${process.pid}.json`);
    await writeFile(inventory, JSON.stringify({ gpus: [{ uuid: 'GPU-nl-1', name: 'NVIDIA GeForce RTX 4090', memoryMb: 24564 }, { uuid: 'GPU-nl-2', name: 'NVIDIA GeForce RTX 4090', memoryMb: 24564 }] }));
  });
  after(async () => {
    // The server terminates its pods while the agents still run to remove them.
    await t?.close();
    for (const a of agents) await stopAgent(a);
    if (inventory) await rm(inventory, { force: true });
  });

  const nodes = async (): Promise<NodeView[]> => (await t.api<{ nodes: NodeView[] }>('GET', '/api/v1/nodes')).body.nodes;
  const nodeNamed = async (name: string): Promise<NodeView | undefined> => (await nodes()).find((n) => n.name === name);
  const pod = async (id: string): Promise<PodView> => (await t.api<PodView>('GET', `/api/v1/pods/${id}`)).body;
  const create = async (body: Record<string, unknown>): Promise<PodView> => {
    const r = await t.api<PodView>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0, ...body });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  };
  const runningOn = async (id: string, nodeId: string): Promise<PodView> => {
    let last: PodView | undefined;
    try {
      return await waitFor(`${id} RUNNING on ${nodeId}`, async () => {
        const p = (last = await pod(id));
        const live = p.instances.filter((i) => i.goal === 'running');
        return p.status === 'RUNNING' && live.length === 1 && live[0]!.nodeId === nodeId && live[0]!.state === 'running' ? p : undefined;
      }, WAIT);
    } catch (e) {
      throw new Error(`${(e as Error).message}; last seen: ${JSON.stringify({ status: last?.status, message: last?.statusMessage, instances: last?.instances.map((i) => [i.id, i.nodeId, i.goal, i.state]), nodes: await nodes() })}`);
    }
  };
  /** The pod's app containers Docker runs now, on any node. */
  const runningContainers = async (podId: string): Promise<number> =>
    (await docker.listContainers({ filters: { label: [`berth.pod=${podId}`], status: ['running'] } })).filter((c) => c.Labels['berth.kind'] !== 'infra').length;

  it('marks a silent node NOT_READY, moves what can move, keeps what is bound, and runs one copy of each when it is back', async () => {
    agents.push(await spawnAgent(t, 'node-a'), await spawnAgent(t, 'node-b'));
    const [a, b] = await waitFor('both nodes READY', async () => {
      const all = await nodes();
      const na = all.find((n) => n.name === 'node-a');
      const nb = all.find((n) => n.name === 'node-b');
      return na?.status === 'READY' && nb?.status === 'READY' ? [na, nb] : undefined;
    }, WAIT);

    // A cordoned node takes no new instance: both pods go to node-a.
    const cordoned = await t.api<NodeView>('POST', `/api/v1/nodes/${b!.id}/cordon`);
    assert.equal(cordoned.status, 200);
    assert.equal(cordoned.body.cordoned, true);
    const movable = await create({ name: 'movable' });
    const bound = await create({ name: 'bound', volumeGb: 1 });
    await runningOn(movable.id, a!.id);
    await runningOn(bound.id, a!.id);
    assert.equal((await t.api<NodeView>('POST', `/api/v1/nodes/node-b/uncordon`)).body.cordoned, false, 'a node is named by id or name');

    const bringBack = await silence(agents[0]!);
    const lost = await waitFor('node-a NOT_READY', async () => {
      const n = await nodeNamed('node-a');
      return n?.status === 'NOT_READY' ? n : undefined;
    }, WAIT);
    assert.ok(lost.notReadySince);
    const moved = await runningOn(movable.id, b!.id);
    assert.ok(moved.instances.some((i) => i.nodeId === a!.id && i.goal === 'removed' && i.state === 'unknown'), 'the lost instance is kept to be removed, shown UNKNOWN');
    // A change while the node is away keeps the replacement and never brings the lost one back.
    const changed = await t.api<PodView>('PATCH', `/api/v1/pods/${movable.id}`, { env: { CHANGED: '1' } });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    assert.deepEqual(changed.body.instances.filter((i) => i.goal === 'running').map((i) => i.nodeId), [b!.id]);
    assert.ok(changed.body.instances.some((i) => i.nodeId === a!.id && i.goal === 'removed'));
    await runningOn(movable.id, b!.id);
    const waiting = await waitFor('the bound pod says why it waits', async () => {
      const p = await pod(bound.id);
      return /node node-a is not answering .*volume disk .* lives on the node; it waits/.test(p.statusMessage ?? '') ? p : undefined;
    }, WAIT);
    assert.equal(waiting.instances.length, 1, 'a bound pod is not placed elsewhere');
    assert.equal(waiting.instances[0]!.state, 'unknown');
    assert.equal(waiting.instances[0]!.unknownSince, lost.notReadySince);

    await bringBack();
    await waitFor('node-a READY again', async () => ((await nodeNamed('node-a'))?.status === 'READY' ? true : undefined), WAIT);
    await waitFor('the replaced instance removed from node-a', async () => {
      const p = await pod(movable.id);
      return p.instances.length === 1 && p.instances[0]!.nodeId === b!.id && (await runningContainers(movable.id)) === 1 ? true : undefined;
    }, WAIT);
    const back = await runningOn(bound.id, a!.id);
    assert.doesNotMatch(back.statusMessage ?? '', /not answering/);
    assert.equal(await runningContainers(bound.id), 1);
  });

  it('drains: moves what may move and says what stays and why', async () => {
    const [a, b] = [(await nodeNamed('node-a'))!, (await nodeNamed('node-b'))!];
    const all = (await t.api<{ pods: PodView[] }>('GET', '/api/v1/pods')).body.pods;
    const movable = all.find((p) => p.nodeId === b.id)!;
    const bound = all.find((p) => p.nodeId === a.id)!;

    const fromB = await t.api<DrainView>('POST', `/api/v1/nodes/${b.id}/drain`);
    assert.equal(fromB.status, 200);
    assert.deepEqual(fromB.body.moved.map((m) => [m.podId, m.to]), [[movable.id, a.id]]);
    await runningOn(movable.id, a.id);
    await waitFor('one copy after the drain', async () => ((await runningContainers(movable.id)) === 1 && (await pod(movable.id)).instances.length === 1 ? true : undefined), WAIT);

    const other = await create({ name: 'other' });
    await runningOn(other.id, a.id);
    await t.api('POST', `/api/v1/nodes/${b.id}/uncordon`);
    const fromA = await t.api<DrainView>('POST', `/api/v1/nodes/${a.id}/drain`);
    assert.deepEqual(fromA.body.moved.map((m) => m.podId).sort(), [movable.id, other.id].sort());
    assert.deepEqual(fromA.body.stays.map((s) => s.podId), [bound.id]);
    assert.match(fromA.body.stays[0]!.reason, /volume disk .* lives on the node/);
    await runningOn(movable.id, b.id);
    await runningOn(other.id, b.id);
    await t.api('POST', `/api/v1/nodes/${a.id}/uncordon`);
  });

  it('keeps a pod no node can fit waiting (native, Marathon) until a big enough node joins; RunPod refuses it', async () => {
    const native = await create({ name: 'needs-gpu', gpuCount: 1 });
    assert.equal(native.status, 'PROVISIONING');
    assert.match(native.statusMessage ?? '', /waiting for resources: .*needs 1 GPU/);

    const marathon = await t.api<{ id: string }>('POST', '/marathon/v2/pods', {
      id: '/gpu/waits',
      containers: [{ name: 'main', image: { kind: 'DOCKER', id: TEST_IMAGE }, exec: { command: { shell: 'exec sleep 3600' } }, resources: { cpus: 0.1, mem: 32, gpus: 1 } }],
      networks: [{ mode: 'container/bridge' }],
    });
    assert.equal(marathon.status, 201, JSON.stringify(marathon.body));
    const queue = await t.api<{ queue: { pod?: { id: string }; delay?: unknown; processedOffersSummary?: unknown }[] }>('GET', '/marathon/v2/queue');
    assert.ok(JSON.stringify(queue.body).includes('/gpu/waits'), 'the Marathon queue holds it');

    const runpod = await t.api<{ detail?: string; error?: string }>('POST', '/runpod/v2/pods', { name: 'x', image: TEST_IMAGE, gpu: { id: 'NVIDIA GeForce RTX 4090', count: 1 } });
    assert.ok(runpod.status >= 400 && runpod.status < 500, `RunPod refuses what cannot be placed now (${runpod.status})`);
    assert.match(JSON.stringify(runpod.body), /no node can ever run this pod/);

    agents.push(await spawnAgent(t, 'node-gpu', ['--gpu-inventory', inventory]));
    const gpuNode = await waitFor('node-gpu READY', async () => {
      const n = await nodeNamed('node-gpu');
      return n?.status === 'READY' ? n : undefined;
    }, WAIT);
    await runningOn(native.id, gpuNode.id);
    const list = (await t.api<{ pods: (PodView & { marathonId: string | null })[] }>('GET', '/api/v1/pods')).body.pods;
    await runningOn(list.find((p) => p.marathonId === '/gpu/waits')!.id, gpuNode.id);
  });
});
