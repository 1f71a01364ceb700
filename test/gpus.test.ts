import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

interface PodView {
  id: string;
  status: string;
  statusMessage: string | null;
  instances: { gpus: { uuid: string; name: string; simulated: boolean }[] }[];
}
interface NodeView {
  gpus: { uuid: string; simulated: boolean; inUse: boolean }[];
  allocated: { gpus: number };
}

describe('GPU placement with a declared (simulated) inventory', () => {
  let t: TestServer;
  before(async () => {
    await ensureTestImage();
    const inventory = join(tmpdir(), `berth-gpus-${process.pid}.json`);
    await writeFile(
      inventory,
      JSON.stringify({
        gpus: [
          { uuid: 'GPU-aaaa', name: 'NVIDIA GeForce RTX 4090', memoryMb: 24564 },
          { uuid: 'GPU-bbbb', name: 'NVIDIA GeForce RTX 4090', memoryMb: 24564 },
          { uuid: 'GPU-cccc', name: 'NVIDIA A100-SXM4-80GB', memoryMb: 81920 },
        ],
      }),
    );
    t = await startTestServer({ gpuInventory: inventory });
  });
  after(async () => t?.close());

  const get = async (id: string) => (await t.api<PodView>('GET', `/api/v1/pods/${id}`)).body;
  const status = (id: string, want: string) => waitFor(`${id} ${want}`, async () => ((await get(id)).status === want ? get(id) : undefined));
  const sleeper = { image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0 };

  it('places by type and count, hands over exact devices, queues and explains, and refuses a start without its GPUs', async () => {
    const nodes = (await t.api<{ nodes: NodeView[] }>('GET', '/api/v1/nodes')).body.nodes;
    assert.equal(nodes[0]!.gpus.length, 3);
    assert.ok(nodes[0]!.gpus.every((g) => g.simulated), 'declared GPUs are marked simulated');

    const a100 = await t.api<PodView>('POST', '/api/v1/pods', { ...sleeper, gpuCount: 1, gpuTypeIds: ['NVIDIA A100-SXM4-80GB'] });
    assert.equal(a100.status, 201);
    const running = await status(a100.body.id, 'RUNNING');
    assert.deepEqual(running.instances[0]!.gpus.map((g) => g.uuid), ['GPU-cccc']);
    const env = (await t.api<{ stdout: string }>('POST', `/api/v1/pods/${a100.body.id}/exec`, { command: ['env'] })).body.stdout;
    assert.match(env, /^NVIDIA_VISIBLE_DEVICES=GPU-cccc$/m);
    assert.match(env, /^BERTH_GPU_COUNT=1$/m);
    assert.match(env, /^RUNPOD_GPU_NAME=NVIDIA\+A100-SXM4-80GB$/m);

    // More GPUs than any node has: it waits in the queue, saying why (a machine may join), as Kubernetes keeps a pod Pending.
    const tooMany = await t.api<PodView>('POST', '/api/v1/pods', { ...sleeper, gpuCount: 4 });
    assert.equal(tooMany.status, 201);
    assert.equal(tooMany.body.status, 'PROVISIONING');
    assert.match(tooMany.body.statusMessage ?? '', /waiting for resources: .*needs 4 GPU/);
    await t.api('POST', `/api/v1/pods/${tooMany.body.id}/terminate`);

    const pair = await t.api<PodView>('POST', '/api/v1/pods', { ...sleeper, gpuCount: 2, gpuTypeIds: ['NVIDIA GeForce RTX 4090'] });
    await status(pair.body.id, 'RUNNING');
    const waiting = await t.api<PodView>('POST', '/api/v1/pods', { ...sleeper, gpuCount: 1, gpuTypeIds: ['NVIDIA GeForce RTX 4090'] });
    assert.equal(waiting.status, 201);
    const queued = await get(waiting.body.id);
    assert.equal(queued.status, 'PROVISIONING');
    assert.match(queued.statusMessage ?? '', /waiting for resources: .*needs 1 GPU/);

    // Stopping the pair frees its GPUs; the waiting pod is placed at once.
    await t.api('POST', `/api/v1/pods/${pair.body.id}/stop`);
    const placed = await status(waiting.body.id, 'RUNNING');
    assert.equal(placed.instances[0]!.gpus.length, 1);

    // The pair's GPUs are partly taken now: its start says why and does not start without them.
    await status(pair.body.id, 'EXITED');
    const refused = await t.api<{ code: string; detail: string }>('POST', `/api/v1/pods/${pair.body.id}/start`);
    assert.equal(refused.status, 409);
    assert.match(refused.body.detail, /needs 2 GPU/);
    assert.equal((await get(pair.body.id)).status, 'EXITED', 'a refused start changes nothing');
    const zero = await t.api<PodView>('POST', `/api/v1/pods/${pair.body.id}/start`, { gpuCount: 0 });
    assert.equal(zero.status, 200);
    const recovered = await status(pair.body.id, 'RUNNING');
    assert.equal(recovered.instances[0]!.gpus.length, 0, 'started with zero GPUs when asked');
    const greedy = await t.api<{ code: string }>('POST', `/api/v1/pods/${a100.body.id}/stop`);
    assert.equal(greedy.status, 200);
    await status(a100.body.id, 'EXITED');
    const more = await t.api<{ code: string }>('POST', `/api/v1/pods/${a100.body.id}/start`, { gpuCount: 2 });
    assert.equal(more.status, 400, 'a start cannot take more GPUs than the pod asks for');
  });

  it("gives each container of a pod the GPUs it asks for, and a container that asks for none none", async () => {
    for (const p of (await t.api<{ pods: { id: string }[] }>('GET', '/api/v1/pods')).body.pods) await t.api('POST', `/api/v1/pods/${p.id}/terminate`);
    await waitFor('all instances gone', async () => ((await t.server.store.listInstances({})).length === 0 ? true : undefined));
    const container = (name: string, gpus: number) => ({ name, image: TEST_IMAGE, command: ['sleep', '3600'], resources: { gpus } });
    const short = await t.api<{ problems: { path: string; message: string }[] }>('POST', '/api/v1/pods', { volumeGb: 0, gpuCount: 1, containers: [container('a', 1), container('b', 1)] });
    assert.equal(short.status, 400);
    assert.match(JSON.stringify(short.body.problems), /the containers ask for 2 GPUs together/);

    const p = await t.api<PodView>('POST', '/api/v1/pods', { volumeGb: 0, gpuCount: 2, gpuTypeIds: ['NVIDIA GeForce RTX 4090'], containers: [container('a', 1), container('b', 1), container('sidecar', 0)] });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    const running = await status(p.body.id, 'RUNNING');
    const env = async (c: string) => (await t.api<{ stdout: string }>('POST', `/api/v1/pods/${p.body.id}/exec`, { container: c, command: ['env'] })).body.stdout;
    const devices = async (c: string) => /^NVIDIA_VISIBLE_DEVICES=(.*)$/m.exec(await env(c))?.[1];
    const [a, b] = running.instances[0]!.gpus.map((g) => g.uuid);
    assert.equal(await devices('a'), a);
    assert.equal(await devices('b'), b);
    assert.equal(await devices('sidecar'), 'void');
    assert.match(await env('a'), /^BERTH_GPU_COUNT=1$/m);
    assert.match(await env('sidecar'), /^RUNPOD_GPU_COUNT=0$/m);
    await t.api('POST', `/api/v1/pods/${p.body.id}/terminate`);
  });

  it('scales a GPU pod without handing one GPU to two instances', async () => {
    for (const p of (await t.api<{ pods: { id: string }[] }>('GET', '/api/v1/pods')).body.pods) await t.api('POST', `/api/v1/pods/${p.id}/terminate`);
    await waitFor('all instances gone', async () => ((await t.server.store.listInstances({})).length === 0 ? true : undefined));
    const p = await t.api<PodView>('POST', '/api/v1/pods', { ...sleeper, gpuCount: 1, gpuTypeIds: ['NVIDIA GeForce RTX 4090'] });
    await status(p.body.id, 'RUNNING');
    const two = await t.api<PodView>('PATCH', `/api/v1/pods/${p.body.id}`, { instances: 2 });
    assert.equal(two.status, 200);
    const uuids = two.body.instances.map((i) => i.gpus.map((g) => g.uuid)).flat();
    assert.deepEqual([...uuids].sort(), ['GPU-aaaa', 'GPU-bbbb'], 'each instance has its own GPU');
    // No third RTX 4090: the third instance waits unplaced rather than sharing one.
    const three = await t.api<PodView & { instances: { nodeId: string | null }[] }>('PATCH', `/api/v1/pods/${p.body.id}`, { instances: 3 });
    assert.equal(three.status, 200);
    assert.equal(three.body.instances.length, 3);
    assert.equal(three.body.instances[2]!.nodeId, null);
    assert.deepEqual(three.body.instances[2]!.gpus, []);
    // Back to one: the waiting instance goes at once, the placed one once its node has removed it.
    assert.equal((await t.api('PATCH', `/api/v1/pods/${p.body.id}`, { instances: 1 })).status, 200);
    await waitFor('scaled down to one', async () => ((await t.server.store.listInstances({ podId: p.body.id as never })).length === 1 ? true : undefined));
  });

  it('a GPU a stop freed is given to the next pod at once, whose containers start only once the stopping one is gone', async () => {
    for (const p of (await t.api<{ pods: { id: string }[] }>('GET', '/api/v1/pods')).body.pods) await t.api('POST', `/api/v1/pods/${p.id}/terminate`);
    await waitFor('all instances gone', async () => ((await t.server.store.listInstances({})).length === 0 ? true : undefined));
    const docker = new Docker();
    const a100 = { gpuCount: 1, gpuTypeIds: ['NVIDIA A100-SXM4-80GB'], volumeGb: 0 };
    // It ignores SIGTERM, so its stop would take the whole kill grace period (60 s): the GPU is free
    // in the store (the stop took effect there) while the container still runs on the node, until
    // the test removes it below.
    const slow = await t.api<PodView>('POST', '/api/v1/pods', { ...a100, containers: [{ name: 'main', image: TEST_IMAGE, command: ['sh', '-c', "trap '' TERM; while true; do sleep 1; done"], killGracePeriodSeconds: 60 }] });
    assert.equal(slow.status, 201, JSON.stringify(slow.body));
    await status(slow.body.id, 'RUNNING');

    // Watch the node's Docker: never two running containers with GPU-cccc, from the stop to the next pod's start.
    const running = async () => (await docker.listContainers({ filters: { label: ['berth.gpus'], status: ['running'] } })).filter((c) => c.Labels['berth.gpus']!.split(',').includes('GPU-cccc'));
    const holders = async (): Promise<string[]> => (await running()).map((c) => c.Labels['berth.pod']!);
    let watching = true;
    const seen: string[][] = [];
    const watcher = (async () => {
      while (watching) {
        const h = await holders();
        if (h.length > 1) seen.push(h);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      assert.equal((await t.api('POST', `/api/v1/pods/${slow.body.id}/stop`)).status, 200);
      const next = await t.api<PodView>('POST', '/api/v1/pods', { ...sleeper, ...a100 });
      assert.equal(next.status, 201);
      const waiting = await waitFor(`${next.body.id} saying it waits for GPU-cccc`, async () => {
        const p = await get(next.body.id);
        return /waiting for GPU GPU-cccc: container .* of pod /.test(p.statusMessage ?? '') ? p : undefined;
      });
      assert.deepEqual(waiting.instances[0]!.gpus.map((g) => g.uuid), ['GPU-cccc'], 'placed on the GPU at once');
      assert.equal(waiting.status, 'PROVISIONING');
      assert.deepEqual(await holders(), [slow.body.id], 'the stopping pod still holds it while the next waits');
      // The old container ends (as it would when its grace period runs out): the next pod goes on.
      for (const c of await running()) if (c.Labels['berth.pod'] === slow.body.id) await docker.getContainer(c.Id).remove({ force: true });
      await status(next.body.id, 'RUNNING');
      assert.deepEqual(await holders(), [next.body.id]);
      await status(slow.body.id, 'EXITED');
    } finally {
      watching = false;
      await watcher;
    }
    assert.deepEqual(seen, [], 'no moment with two running containers on one GPU');
  });
});
