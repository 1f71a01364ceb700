import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Deployment } from '../../control/index.js';
import { compilePodSpec, instanceIdOf, type ContainerObservation, type Instance, type InstanceObservation, type InstanceState, type Node, type NodeId, type OwnerId, type PodId, type PodSpec } from '../../model/index.js';
import { toPodInput } from './convert.js';
import { berthInstanceId, canonicalPath, marathonInstanceId, parsePathId, pathIdProblems, safeId } from './paths.js';
import { parseDefinition } from './validate.js';
import { deploymentView, instanceView, podStatusView, podView, queueEntry, rejectReasons, relaunchDelay, waitingInstances, type PodContext } from './views.js';

const POD = '2s56cp0pof1rmt' as PodId;
const NODE = 'node1' as NodeId;
const T0 = '2024-01-01T00:00:00.000Z';
const T1 = '2024-01-01T00:01:00.000Z';

const definition = {
  id: '/shop/web',
  containers: [
    {
      name: 'web',
      resources: { cpus: 0.5, mem: 64 },
      image: { kind: 'DOCKER', id: 'nginx' },
      endpoints: [
        { name: 'admin', containerPort: 9000 },
        { name: 'http', containerPort: 80, hostPort: 0, protocol: ['http'] },
      ],
      healthCheck: { http: { endpoint: 'http', path: '/' }, intervalSeconds: 5, timeoutSeconds: 2 },
    },
    { name: 'log', resources: { cpus: 0.1, mem: 32 }, exec: { command: { shell: 'tail -f /dev/null' } } },
  ],
  networks: [{ mode: 'container/bridge' }],
  scaling: { kind: 'fixed', instances: 2 },
};

function spec(): PodSpec {
  const p = parseDefinition(definition);
  if (!p.ok) throw new Error(JSON.stringify(p.body));
  return compilePodSpec(toPodInput(p.pod));
}

const container = (name: string, state: InstanceState, extra: Partial<ContainerObservation> = {}): ContainerObservation => ({
  name,
  containerId: `docker-${name}`,
  state,
  exitCode: null,
  startedAt: T0,
  finishedAt: null,
  ...extra,
});

function observed(state: InstanceState, containers: ContainerObservation[], extra: Partial<InstanceObservation> = {}): InstanceObservation {
  return {
    state,
    message: null,
    exitCode: null,
    ports: {},
    endpoints: { http: 31001 },
    containers,
    pull: null,
    lastLogLines: [],
    startedAt: T0,
    restartCount: 0,
    observedSpecVersion: 1,
    observedResetGeneration: 0,
    observedRestartGeneration: 0,
    disk: null,
    updatedAt: T1,
    ...extra,
  };
}

const inst = (ordinal: number, obs: InstanceObservation | null, nodeId: NodeId | null = NODE, goal: Instance['goal'] = 'running'): Instance => ({
  id: instanceIdOf(POD, ordinal),
  podId: POD,
  ordinal,
  nodeId,
  specVersion: 1,
  goal,
  resetGeneration: 0,
  restartGeneration: 0,
  gpuUuids: [],
  hostPorts: {},
  observed: obs,
  revision: 1,
});

function context(instances: Instance[], deleting = false, waitReason: string | null = null): PodContext {
  const s = spec();
  const node = { id: NODE, name: 'n1', publicIp: '10.0.0.7', labels: {}, capacity: { cpus: 4, memoryMb: 8192, gpus: [], gpusSimulated: false } } as unknown as Node;
  return {
    detail: {
      pod: { id: POD, owner: 'o' as OwnerId, name: '/shop/web', specVersion: 1, desiredStatus: 'RUNNING', status: 'RUNNING', statusMessage: null, nodeId: NODE, createdAt: T0, updatedAt: T0, lastStartedAt: T0, terminatedAt: null, keepAliveUntil: null, lastStoppedAt: null, lifetimeNote: null, revision: 1 },
      spec: s,
      instances,
    },
    versions: new Map([[1, { podId: POD, version: 1, spec: s, createdAt: T0 }]]),
    nodes: new Map([[NODE as string, node]]),
    deleting,
    waitReason,
    now: T1,
  };
}

const healthyRunning = () => observed('running', [container('web', 'running', { healthy: true }), container('log', 'running')]);

describe('Marathon path ids', () => {
  it('parses, makes canonical and builds instance ids', () => {
    assert.deepEqual(parsePathId('//a/b//c/'), { absolute: true, segments: ['a', 'b', 'c'] });
    assert.equal(canonicalPath('a/./b/../c'), '/a/c');
    assert.equal(canonicalPath('/../x'), '/x');
    assert.equal(safeId('/shop/web'), 'shop_web');
    assert.equal(marathonInstanceId('/shop/web', 'abc-0'), 'shop_web.instance-abc-0');
    assert.equal(berthInstanceId('/shop/web', 'shop_web.instance-abc-0'), 'abc-0');
    assert.equal(berthInstanceId('/shop/web', 'other.instance-abc-0'), null);
    assert.equal(berthInstanceId('/shop/web', 'nonsense'), null);
    assert.deepEqual(pathIdProblems('/ok/id'), []);
    assert.deepEqual(pathIdProblems('rel'), ['Path needs to be absolute']);
  });
});

describe('Marathon views', () => {
  it('answers GET with the stored definition, version after the id', () => {
    const v = podView(spec(), T0);
    assert.deepEqual(Object.keys(v).slice(0, 3), ['id', 'version', 'containers']);
    assert.equal(v.version, T0);
    assert.deepEqual(v.scaling, { kind: 'fixed', instances: 2 });
  });

  it('is STABLE when enough instances run with healthy (or unchecked) containers', () => {
    const s = podStatusView(context([inst(0, healthyRunning()), inst(1, healthyRunning())]));
    assert.equal(s.status, 'STABLE');
    assert.equal(s.id, '/shop/web');
    const [i] = s.instances;
    assert.equal(i!.id, `shop_web.instance-${POD}-0`);
    assert.equal(i!.status, 'STABLE');
    assert.equal(i!.agentHostname, '10.0.0.7');
    assert.equal(i!.specReference, `/v2/pods/shop/web::versions/${T0}`);
    assert.deepEqual(i!.resources, { cpus: 0.7, mem: 128, disk: 10, gpus: 0 }, 'the default executor plus the containers');
    const [web, log] = i!.containers;
    assert.equal(web!.status, 'TASK_RUNNING');
    assert.equal(web!.containerId, `shop_web.instance-${POD}-0.web`);
    assert.deepEqual(web!.conditions.map((c) => [c.name, c.value, c.reason]), [['healthy', 'true', 'health-reported-by-mesos']]);
    assert.deepEqual(web!.endpoints, [{ name: 'admin' }, { name: 'http', allocatedHostPort: 31001, healthy: true }], 'host ports first; the checked endpoint last, with its verdict');
    assert.deepEqual(log!.conditions, [], 'no health check, no condition');
  });

  it('degrades on a failing or not yet reported health check, and with too few stable instances', () => {
    const unreported = podStatusView(context([inst(0, observed('running', [container('web', 'running', { healthy: null }), container('log', 'running')])), inst(1, healthyRunning())]));
    assert.equal(unreported.status, 'DEGRADED');
    assert.equal(unreported.instances[0]!.status, 'DEGRADED');
    assert.equal((unreported.instances[0] as { message?: string }).message, 'at least one container is not healthy');
    assert.deepEqual(unreported.instances[0]!.containers[0]!.conditions.map((c) => [c.value, c.reason]), [['false', 'health-unreported-by-mesos']]);
    const one = podStatusView(context([inst(0, healthyRunning())]));
    assert.equal(one.status, 'DEGRADED', 'one of two instances');
  });

  it('maps instance life: PENDING unplaced, STAGING while pulling, TERMINAL when ended; TERMINAL pod while deleted', () => {
    const s = podStatusView(
      context([
        inst(0, null, null),
        inst(1, observed('pulling', [])),
        inst(2, observed('failed', [container('web', 'failed', { exitCode: 2 }), container('log', 'stopped')], { message: 'web exited with code 2' })),
        inst(3, healthyRunning(), NODE, 'removed'),
      ]),
    );
    assert.deepEqual(
      s.instances.map((i) => i.status),
      ['PENDING', 'STAGING', 'TERMINAL'],
      'instances on their way out are left out',
    );
    assert.deepEqual(s.instances[0]!.containers, [], 'an unplaced instance has no tasks yet');
    assert.deepEqual(
      s.instances[1]!.containers.map((c) => c.status),
      ['TASK_STAGING', 'TASK_STAGING'],
    );
    const failed = s.instances[2]!.containers[0]!;
    assert.equal(failed.status, 'TASK_FAILED');
    assert.deepEqual(failed.termination, { exitCode: 2, message: 'web exited with code 2' });
    assert.equal(s.instances[2]!.containers[1]!.status, 'TASK_KILLED');
    assert.equal(podStatusView(context([inst(0, healthyRunning())], true)).status, 'TERMINAL');
    assert.equal(podStatusView(context([])).statusSince, T1, 'no instances: now');
  });

  it('answers a kill with Marathon\'s Instance', () => {
    const ctx = context([inst(0, healthyRunning())]);
    assert.deepEqual(instanceView(ctx, ctx.detail.instances[0]!), {
      instanceId: `shop_web.instance-${POD}-0`,
      agentInfo: { host: '10.0.0.7', agentId: NODE, attributes: [] },
      runSpecVersion: T0,
      state: { condition: 'Running', since: T1, activeSince: T0, healthy: true, goal: 'Running' },
      unreachableStrategy: { inactiveAfterSeconds: 0, expungeAfterSeconds: 0 },
    });
  });

  it('shows deployments and queue entries in Marathon\'s shape', () => {
    const d: Deployment = { id: 'd1', path: '/shop/web', podId: POD, action: 'RestartPod', version: T1, toVersion: 2, fromVersion: 1, startedAt: T1 };
    assert.deepEqual(deploymentView(d), {
      id: 'd1',
      version: T1,
      affectedApps: [],
      affectedPods: ['/shop/web'],
      steps: [{ actions: [{ action: 'RestartPod', pod: '/shop/web' }] }],
      currentActions: [{ action: 'RestartPod', pod: '/shop/web', readinessCheckResults: [] }],
      currentStep: 1,
      totalSteps: 1,
    });
    assert.deepEqual(rejectReasons('n1: needs 2 vCPU, 1 of 4 free; n2: needs 1.0 GB memory, 0.5 GB free; n3: it has no label rack'), ['InsufficientCpus', 'InsufficientMemory', 'UnfulfilledConstraint']);
    const ctx = context([inst(0, null, null)]);
    const q = queueEntry(ctx, waitingInstances(ctx), 'waiting for resources: n1: needs 1 GPU (any type), 0 free of 0');
    assert.equal(q.count, 1);
    assert.deepEqual(q.processedOffersSummary.rejectSummaryLastOffers, [{ reason: 'InsufficientGpus', declined: 1, processed: 1 }]);
    assert.equal((q.pod as { id: string }).id, '/shop/web');
    assert.deepEqual(q.delay, { timeLeftSeconds: 0, overdue: true });
  });

  it('says why an instance that cannot start does not, in its status, the pod\'s and the queue', () => {
    const pull = 'pull of 127.0.0.1:1/nothing:1 failed: connection refused; retrying in 1.5 s';
    // Reported at T1 (the context's now) after three failed launches: 1 × 1.15^3 = 1.52 s to the next.
    const failing = inst(0, observed('failed', [], { message: pull, launchFailures: 3, startedAt: null, endpoints: {} }));
    const ctx = context([failing, inst(1, healthyRunning())]);
    const s = podStatusView(ctx);
    const [i] = s.instances;
    assert.equal(i!.status, 'TERMINAL');
    assert.equal(i!.message, pull);
    assert.deepEqual(
      i!.containers.map((c) => [c.status, c.message, c.termination]),
      [
        ['TASK_FAILED', pull, { message: pull }],
        ['TASK_FAILED', pull, { message: pull }],
      ],
      'tasks never made failed with their instance',
    );
    assert.equal(s.status, 'DEGRADED');
    assert.equal(s.message, pull);
    assert.equal(podStatusView(context([inst(0, healthyRunning()), inst(1, healthyRunning())])).message, undefined, 'a STABLE pod has nothing to explain');

    assert.equal(relaunchDelay(failing, ctx.detail.spec, Date.parse(T1)), 2);
    assert.equal(relaunchDelay(failing, ctx.detail.spec, Date.parse(T1) + 60_000), 0, 'overdue');
    assert.equal(relaunchDelay(inst(1, healthyRunning()), ctx.detail.spec, Date.parse(T1)), undefined);
    const waiting = waitingInstances(ctx);
    assert.deepEqual(
      waiting.map((w) => [w.instance.id, w.delay]),
      [[failing.id, 2]],
    );
    const q = queueEntry(ctx, waiting, null);
    assert.equal(q.count, 1);
    assert.deepEqual(q.delay, { timeLeftSeconds: 2, overdue: false });
    assert.equal(q.message, pull);
    assert.deepEqual(q.processedOffersSummary.rejectSummaryLastOffers, []);

    const unplaced = podStatusView(context([inst(0, null, null), inst(1, healthyRunning())], false, 'waiting for resources: n1: it has no label rack'));
    assert.equal(unplaced.instances[0]!.message, 'waiting for resources: n1: it has no label rack');
    assert.equal(unplaced.message, 'waiting for resources: n1: it has no label rack');
  });
});
