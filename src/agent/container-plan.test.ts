import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Assignment } from '../control/agent-protocol.js';
import { type Gpu, type NodeId, type PodInput } from '../model/index.js';
import { containerGpus, containerPlan, holderPlan, infraName, infraPlan, podEnv, usesInfra, type PlanContext } from './container-plan.js';
import { generationLabels, LABELS } from './labels.js';
import type { NetPlan } from './ports.js';
import { testAssignment } from '../../test/support/assignment.js';

const NODE = 'node-1' as NodeId;

function assignment(input: PodInput, more: Partial<Assignment> = {}): Assignment {
  return testAssignment(input, { specVersion: 3, resetGeneration: 1, ...more });
}

const gpu = (index: number): Gpu => ({ index, uuid: `GPU-${index}`, name: 'NVIDIA Test', memoryMb: 1024 });
const noNet: NetPlan = { ports: {}, endpoints: {}, bindings: [] };

function ctx(a: Assignment, more: Partial<PlanContext> = {}): PlanContext {
  return { podEnv: podEnv(a, noNet, '10.0.0.5'), generation: generationLabels(a, NODE), network: {}, nodeName: 'box', gpusSimulated: false, ...more };
}

describe('container plan', () => {
  it("plans a RunPod pod's sole container: its image, the pod's limits and env, the volume disk, its generation labels", () => {
    const a = assignment(
      { image: 'app:1', command: ['serve'], env: { MODE: 'x' }, vcpuCount: 2, memoryGb: 1.5, containerDiskGb: 5, volumeGb: 10, ports: ['8888/http', '22/tcp'] },
      { env: { RUNPOD_POD_ID: 'pod1' }, volumeDisk: 'berth-vol-pod1-0' },
    );
    const net: NetPlan = { ports: { '8888': 40001, '22': 40002 }, endpoints: {}, bindings: [{ containerPort: 8888, hostPort: 40001, hostIp: '0.0.0.0' }] };
    const holder = holderPlan(a, net);
    const plan = containerPlan(a, a.spec.containers[0]!, ctx(a, { podEnv: podEnv(a, net, '10.0.0.5'), network: holder }));
    assert.equal(plan.name, 'berth-pod1-0-main');
    assert.equal(plan.image, 'app:1');
    assert.deepEqual(plan.command, ['serve']);
    assert.equal(plan.cpus, 2);
    assert.equal(plan.memoryBytes, 1.5 * 2 ** 30);
    assert.equal(plan.diskBytes, 5 * 2 ** 30);
    assert.deepEqual(plan.ports, net.bindings);
    assert.equal(plan.hostname, 'pod1');
    assert.equal(plan.networkMode, undefined);
    assert.deepEqual(plan.mounts, [{ source: 'berth-vol-pod1-0', target: '/workspace', readOnly: false }]);
    assert.equal(plan.env.MODE, 'x');
    assert.equal(plan.env.RUNPOD_POD_ID, 'pod1');
    assert.equal(plan.env.RUNPOD_PUBLIC_IP, '10.0.0.5');
    assert.equal(plan.env.RUNPOD_TCP_PORT_22, '40002');
    assert.equal(plan.env.BERTH_TCP_PORT_22, '40002');
    assert.equal(plan.env.RUNPOD_TCP_PORT_8888, undefined, 'only TCP ports get the variable');
    assert.equal(plan.env.NVIDIA_VISIBLE_DEVICES, 'void');
    assert.equal(plan.env.MARATHON_CONTAINER_ID, undefined, 'no Marathon env outside a Marathon pod');
    assert.deepEqual(plan.labels, {
      [LABELS.endpoints]: '{}',
      [LABELS.ports]: JSON.stringify(net.ports),
      [LABELS.managed]: '1',
      [LABELS.pod]: 'pod1',
      [LABELS.instance]: 'pod1-0',
      [LABELS.node]: NODE,
      [LABELS.version]: '3',
      [LABELS.reset]: '1',
      [LABELS.container]: 'main',
    });
    assert.equal(usesInfra(a.spec), false);
    // The layout is the pod model's: one container held apart when the spec says so (Marathon's pods), whichever API made it.
    assert.equal(usesInfra({ ...a.spec, networkHolder: 'always' }), true);
    assert.equal(usesInfra({ ...a.spec, marathon: { id: '/web' } }), false, 'being a Marathon pod is not what decides');
  });

  it('gives host networking the node network and name, and a named network to the holder only', () => {
    const host = assignment({ image: 'x', network: { mode: 'host' } });
    assert.equal(holderPlan(host, noNet).networkMode, 'host');
    assert.equal(holderPlan(host, noNet).hostname, undefined);
    const named = assignment({ image: 'x', network: { mode: 'container', name: 'team-net' } });
    assert.equal(holderPlan(named, noNet).networkMode, 'team-net');
    assert.equal(holderPlan(named, noNet).hostname, 'pod1');
  });

  it('shares the GPUs by the containers’ own counts, in spec order; without counts every container gets them all', () => {
    const split = assignment(
      { gpuCount: 3, containers: [{ name: 'a', image: 'x', resources: { gpus: 1 } }, { name: 'b', image: 'x' }, { name: 'c', image: 'x', resources: { gpus: 2 } }] },
      { gpus: [gpu(0), gpu(1), gpu(2)] },
    );
    assert.deepEqual(containerGpus(split.spec, split.gpus, 'a').map((g) => g.index), [0]);
    assert.deepEqual(containerGpus(split.spec, split.gpus, 'b'), []);
    assert.deepEqual(containerGpus(split.spec, split.gpus, 'c').map((g) => g.index), [1, 2]);
    const c = containerPlan(split, split.spec.containers[2]!, ctx(split));
    assert.deepEqual(c.gpuUuids, ['GPU-1', 'GPU-2']);
    assert.equal(c.env.NVIDIA_VISIBLE_DEVICES, 'GPU-1,GPU-2');
    assert.equal(c.env.BERTH_GPU_COUNT, '2');
    assert.equal(c.labels[LABELS.gpus], 'GPU-1,GPU-2', 'the label another launch on the node looks for (gpu-holders.ts)');
    const none = containerPlan(split, split.spec.containers[1]!, ctx(split));
    assert.equal(none.env.NVIDIA_VISIBLE_DEVICES, 'void');
    assert.equal(none.labels[LABELS.gpus], undefined);

    const all = assignment({ image: 'x', gpuCount: 2 }, { gpus: [gpu(0), gpu(1)] });
    const plan = containerPlan(all, all.spec.containers[0]!, ctx(all, { gpusSimulated: true }));
    assert.deepEqual(plan.gpuUuids, ['GPU-0', 'GPU-1']);
    assert.equal(plan.gpusSimulated, true);
    assert.equal(plan.env.BERTH_GPU_COUNT, undefined, 'the pod-wide count is the control plane’s');
  });

  it("keeps the device list the agent's, whatever the pod's env says, and the user's labels off berth.*", () => {
    const a = assignment({ containers: [{ name: 'app', image: 'x', env: { NVIDIA_VISIBLE_DEVICES: 'all', RUNPOD_PUBLIC_IP: 'mine' }, labels: { team: 'core', 'berth.pod': 'forged' } }] });
    const plan = containerPlan(a, a.spec.containers[0]!, ctx(a));
    assert.equal(plan.env.NVIDIA_VISIBLE_DEVICES, 'void');
    assert.equal(plan.env.RUNPOD_PUBLIC_IP, 'mine', "the container's env goes over the pod's");
    assert.equal(plan.labels.team, 'core');
    assert.equal(plan.labels[LABELS.pod], 'pod1');
  });

  it("mounts the pod's volumes: ephemeral and persistent by instance, host paths bound, secrets as files, the disk where a container names it", () => {
    const a = assignment(
      {
        secrets: { db: 'prod/db' },
        volumes: [
          { name: 'scratch', kind: 'ephemeral' },
          { name: 'data', kind: 'persistent', sizeMb: 100 },
          { name: 'node', kind: 'host', hostPath: '/srv/shared' },
          { name: 'cred', kind: 'secret', secret: 'db' },
        ],
        containers: [
          {
            name: 'app',
            image: 'x',
            volumeMounts: [
              { name: 'scratch', mountPath: '/tmp/s' },
              { name: 'data', mountPath: '/data' },
              { name: 'node', mountPath: '/mnt/node', readOnly: true },
              { name: 'cred', mountPath: '/run/secrets/db' },
              { name: 'volume-disk', mountPath: '/disk' },
            ],
          },
          { name: 'side', image: 'x' },
        ],
      },
      { volumeDisk: 'berth-vol-pod1-0', secrets: { db: 's3cret' } },
    );
    assert.deepEqual(containerPlan(a, a.spec.containers[0]!, ctx(a)).mounts, [
      { source: 'berth-eph-pod1-0-scratch', target: '/tmp/s', readOnly: false },
      { source: 'berth-pv-pod1-0-data', target: '/data', readOnly: false },
      { source: '/srv/shared', kind: 'bind', target: '/mnt/node', readOnly: true },
      { source: 'berth-vol-pod1-0', target: '/disk', readOnly: false },
    ]);
    assert.deepEqual(containerPlan(a, a.spec.containers[1]!, ctx(a)).mounts, [{ source: 'berth-vol-pod1-0', target: '/workspace', readOnly: false }]);
  });

  it('refuses a mount of something the pod does not have, naming it', () => {
    const a = assignment({ containers: [{ name: 'app', image: 'x', volumeMounts: [{ name: 'network-volume', mountPath: '/nv' }] }] });
    assert.throws(() => containerPlan(a, a.spec.containers[0]!, ctx(a)), /container app mounts network-volume, but the pod has no network volume/);
  });

  it("gives a Marathon pod's containers Marathon's env, and an infra container that holds only the network", () => {
    const a = assignment({
      containers: [
        { name: 'web', image: 'x', resources: { cpus: 0.5, memoryMb: 64 }, endpoints: [{ name: 'http', containerPort: 80, hostPort: 0 }] },
        { name: 'infra', image: 'y' },
      ],
    });
    assert.equal(usesInfra(a.spec), true);
    assert.equal(infraName(a), 'berth-pod1-0_infra', 'not the name of the container called infra');
    const net: NetPlan = { ports: { '80': 41000 }, endpoints: { http: 41000 }, bindings: [{ containerPort: 80, hostPort: 41000, hostIp: '0.0.0.0' }] };
    const holder = holderPlan(a, net);
    const infra = infraPlan(a, 'localhost/berth-infra:1', holder, generationLabels(a, NODE), false);
    assert.equal(infra.name, 'berth-pod1-0_infra');
    assert.deepEqual(infra.ports, net.bindings);
    assert.equal(infra.labels[LABELS.role], 'infra');
    assert.equal(infra.labels[LABELS.endpoints], '{"http":41000}');
    assert.equal(infra.labels[LABELS.container], undefined);
    assert.deepEqual([infra.env, infra.mounts, infra.cpus, infra.gpuUuids], [{}, [], null, []]);

    const web = containerPlan(a, a.spec.containers[0]!, ctx(a, { podEnv: podEnv(a, net, '10.0.0.5'), network: { networkMode: 'container:infra-id' } }));
    assert.equal(web.networkMode, 'container:infra-id');
    assert.deepEqual(web.ports, []);
    assert.equal(web.hostname, undefined);
    assert.equal(web.cpus, 0.5);
    assert.equal(web.memoryBytes, 64 * 2 ** 20);
    assert.equal(web.env.MARATHON_CONTAINER_ID, 'web');
    assert.equal(web.env.HOST, 'box');
    assert.equal(web.env.EP_HOST_HTTP, '41000');
  });

  it('sets the user, tty and stop grace only where the container asks', () => {
    const a = assignment({ containers: [{ name: 'a', image: 'x', user: '1000:1000', tty: true, killGracePeriodSeconds: 3 }, { name: 'b', image: 'x' }] });
    const [tuned, plain] = a.spec.containers.map((c) => containerPlan(a, c, ctx(a)));
    assert.deepEqual([tuned!.user, tuned!.tty, tuned!.stopTimeoutSeconds], ['1000:1000', true, 3]);
    assert.ok(!('user' in plain!) && !('tty' in plain!) && !('stopTimeoutSeconds' in plain!));
  });
});
