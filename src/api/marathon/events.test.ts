import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { instancePhase, type Deployment } from '../../control/index.js';
import { compilePodSpec, type Instance, type InstanceObservation, type Node, type PodVersion } from '../../model/index.js';
import { CONDITIONS, conditionOf } from './conditions.js';
import { marathonEvents } from './events.js';

const deployment: Deployment = { id: 'd1', path: '/web', podId: 'p1', action: 'StartPod', version: '2024-01-01T00:00:00.000Z', toVersion: 1, fromVersion: null, startedAt: '2024-01-01T00:00:00.000Z' };
const plan = {
  id: 'd1',
  version: '2024-01-01T00:00:00.000Z',
  steps: [{ actions: [{ action: 'StartPod', pod: '/web' }] }],
};

const node = { id: 'n1', name: 'box', publicIp: '10.0.0.2' } as Node;
const spec = compilePodSpec({ containers: [{ name: 'web', image: 'nginx' }], marathon: { id: '/web' } });
const version: PodVersion = { podId: 'p1', version: 1, spec, createdAt: '2024-01-01T00:00:00.000Z' } as PodVersion;
const store = { getNode: async () => node, getPodVersion: async () => version };

function instance(goal: Instance['goal'], nodeId: string | null, state?: InstanceObservation['state']): Instance {
  const observed = state ? ({ state, message: null, ports: {}, endpoints: {}, containers: [{ name: 'web', state: state === 'running' ? 'running' : 'exited', exitCode: 0 }] } as unknown as InstanceObservation) : null;
  return { id: 'p1-0', podId: 'p1', ordinal: 0, nodeId, specVersion: 1, goal, resetGeneration: 0, restartGeneration: 0, gpuUuids: [], hostPorts: {}, observed, revision: 1 } as unknown as Instance;
}

describe("the deployment service's events in Marathon's words", () => {
  it('a started deployment is deployment_info with its one step', async () => {
    assert.deepEqual(await marathonEvents({ eventType: 'deployment_started', deployment }, store), [{ eventType: 'deployment_info', plan, currentStep: plan.steps[0] }]);
  });

  it('an ended deployment ends its step first, with the reason on both', async () => {
    assert.deepEqual(await marathonEvents({ eventType: 'deployment_success', deployment }, store), [
      { eventType: 'deployment_step_success', plan, currentStep: plan.steps[0] },
      { eventType: 'deployment_success', id: 'd1', plan },
    ]);
    assert.deepEqual(await marathonEvents({ eventType: 'deployment_failed', deployment, reason: 'rolled back by the user' }, store), [
      { eventType: 'deployment_step_failure', plan, currentStep: plan.steps[0], reason: 'rolled back by the user' },
      { eventType: 'deployment_failed', id: 'd1', plan, reason: 'rolled back by the user' },
    ]);
  });

  it("an instance's change is each task's status update, then instance_changed_event with its condition", async () => {
    const inst = instance('running', 'n1', 'running');
    const events = await marathonEvents({ eventType: 'instance_changed', instance: inst, path: '/web', phase: 'running' }, store);
    assert.deepEqual(
      events.map((e) => e.eventType),
      ['status_update_event', 'instance_changed_event'],
    );
    assert.equal(events[0]!.taskStatus, 'TASK_RUNNING');
    assert.deepEqual(events[1], {
      eventType: 'instance_changed_event',
      instanceId: 'web.instance-p1-0',
      runSpecId: '/web',
      runSpecVersion: '2024-01-01T00:00:00.000Z',
      condition: 'Running',
      agentId: 'n1',
      host: '10.0.0.2',
      goal: 'Running',
    });
  });

  it("a health verdict's change is instance_health_changed_event", async () => {
    const inst = instance('running', 'n1', 'running');
    assert.deepEqual(await marathonEvents({ eventType: 'instance_health_changed', instance: inst, path: '/web', healthy: false }, store), [
      { eventType: 'instance_health_changed_event', instanceId: 'web.instance-p1-0', runSpecId: '/web', runSpecVersion: '2024-01-01T00:00:00.000Z', healthy: false },
    ]);
  });
});

describe("Marathon's conditions for Berth's instance phases", () => {
  it('reads each phase as the condition Marathon gave that state', () => {
    const cases: [Instance, string][] = [
      [instance('running', null), 'Scheduled'],
      [instance('running', 'n1'), 'Provisioned'],
      [instance('running', 'n1', 'pending'), 'Provisioned'],
      [instance('running', 'n1', 'pulling'), 'Staging'],
      [instance('running', 'n1', 'creating'), 'Starting'],
      [instance('running', 'n1', 'running'), 'Running'],
      [instance('running', 'n1', 'exited'), 'Finished'],
      [instance('running', 'n1', 'failed'), 'Failed'],
      [instance('stopped', 'n1', 'stopped'), 'Killed'],
      [instance('removed', 'n1', 'running'), 'Killed'],
    ];
    for (const [inst, condition] of cases) assert.equal(conditionOf(inst), condition, `${inst.goal} ${inst.observed?.state ?? 'unobserved'}`);
  });

  it('gives every phase a condition of its own, so a change of one is a change of the other', () => {
    const conditions = Object.values(CONDITIONS);
    assert.equal(new Set(conditions).size, conditions.length);
    assert.equal(instancePhase(instance('removed', null)), 'stopped');
  });
});
