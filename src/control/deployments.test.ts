import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { newNodeId, type Instance, type InstanceObservation, type OwnerId, type PodInput } from '../model/index.js';
import { openStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import type { Caller } from './caller.js';
import type { MarathonEvent } from './deployment-service.js';
import { DeploymentController } from './deployments.js';
import { PodService } from './pods.js';

/*
 * The rollout logic against a real SQLite store. No agent runs here: the test plays the agent's part
 * by writing the reports it would send, so each step of a rollout can be looked at in turn.
 */

const caller: Caller = { owner: 'admin' as OwnerId, admin: true };

function podInput(path: string, instances: number, image: string, upgrade?: PodInput['upgrade']): PodInput {
  return {
    name: path,
    containers: [{ name: 'web', image }],
    instances,
    volumeGb: 0,
    startSsh: false,
    ...(upgrade ? { upgrade } : {}),
    marathon: { id: path, definition: { id: path } },
  };
}

function running(inst: Instance): InstanceObservation {
  return {
    state: 'running',
    message: null,
    exitCode: null,
    ports: {},
    endpoints: {},
    containers: [{ name: 'web', containerId: `c-${inst.id}`, state: 'running', exitCode: null, startedAt: new Date().toISOString(), finishedAt: null, healthy: null, healthFailures: 0 }],
    pull: null,
    lastLogLines: [],
    startedAt: new Date().toISOString(),
    restartCount: 0,
    observedSpecVersion: inst.specVersion,
    observedResetGeneration: inst.resetGeneration,
    observedRestartGeneration: inst.restartGeneration,
    disk: null,
    updatedAt: new Date().toISOString(),
  };
}

describe('deployment controller', () => {
  let dir: string;
  let store: Store;
  let pods: PodService;
  let deployments: DeploymentController;
  const events: MarathonEvent[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-deploy-'));
    store = await openStore({ dataDir: dir });
    pods = new PodService(store);
    deployments = new DeploymentController(store, pods);
    deployments.onEvent((e) => events.push(e));
    const at = new Date().toISOString();
    await store.upsertNode({ id: newNodeId(), name: 'n1', publicIp: '127.0.0.1', labels: {}, capacity: { cpus: 64, memoryMb: 65536, gpus: [], gpusSimulated: false }, agentVersion: 't', registeredAt: at, lastSeenAt: at });
  });

  after(async () => {
    await deployments.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Reports every running-goal instance as running at its version, and confirms removals as the agent would. */
  async function agentPass(podId: string, only?: (i: Instance) => boolean): Promise<void> {
    for (const inst of await store.listInstances({ podId: podId as never })) {
      if (inst.goal === 'removed') await store.deleteInstance(inst.id);
      else if (!only || only(inst)) await store.updateInstance(inst.id, { observed: running(inst) });
    }
    await pods.refreshStatus(podId as never);
  }

  async function until<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
    for (let i = 0; i < 200; i++) {
      const v = await check();
      if (v !== undefined) return v;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  const active = async (podId: string) => (await store.listInstances({ podId: podId as never })).filter((i) => i.goal === 'running');

  it('creates, then refuses a second change while the first deployment runs, unless forced', async () => {
    const { detail, deployment, created } = await deployments.apply(caller, podInput('/lock', 1, 'img:1'), { force: false, mustBeNew: true });
    assert.equal(created, true);
    assert.equal(deployment.action, 'StartPod');
    await assert.rejects(deployments.apply(caller, podInput('/lock', 1, 'img:1'), { force: false, mustBeNew: true }), /already exists/);
    await assert.rejects(deployments.apply(caller, podInput('/lock', 1, 'img:2'), { force: false, mustBeNew: false }), (e: Error & { extra?: { deployments?: { id: string }[] } }) => {
      assert.match(e.message, /locked by one or more deployments/);
      assert.deepEqual(e.extra?.deployments, [{ id: deployment.id }]);
      return true;
    });
    const forced = await deployments.apply(caller, podInput('/lock', 1, 'img:2'), { force: true, mustBeNew: false });
    assert.equal(forced.deployment.action, 'RestartPod');
    assert.ok(!deployments.deployments().some((d) => d.id === deployment.id), 'the forced change cancels the first deployment');
    assert.ok(events.some((e) => e.eventType === 'deployment_failed' && 'deployment' in e && e.deployment.id === deployment.id));
    await deployments.remove(caller, '/lock', { force: true });
    await agentPass(detail.pod.id);
  });

  it('keeps a deployment in the store while it runs: after a restart it goes on under its id, and ends there', async () => {
    const { detail, deployment } = await deployments.apply(caller, podInput('/restart', 1, 'img:1'), { force: false, mustBeNew: true });
    const podId = detail.pod.id;
    await until('the deployment in the store', async () => ((await store.listDeployments()).some((d) => d.id === deployment.id) ? true : undefined));
    // The server stops mid-rollout (no instance reported yet) and starts again on the same store.
    await deployments.close();
    deployments = new DeploymentController(store, pods);
    deployments.onEvent((e) => events.push(e));
    await deployments.recover();
    assert.deepEqual(deployments.deployments().map((d) => ({ ...d })).filter((d) => d.podId === podId), [deployment], 'the same deployment, id and all');
    await assert.rejects(deployments.apply(caller, podInput('/restart', 1, 'img:2'), { force: false, mustBeNew: false }), /locked by one or more deployments/);
    await agentPass(podId);
    await until('the deployment to end', async () => (deployments.deployments().some((d) => d.id === deployment.id) ? undefined : true));
    assert.ok(events.some((e) => e.eventType === 'deployment_success' && e.deployment.id === deployment.id));
    await until('the store to forget it', async () => ((await store.listDeployments()).some((d) => d.id === deployment.id) ? undefined : true));
    // A pod left unconverged with no deployment in the store (a store from before this table) still gets one.
    // A new image: unconverged until the agent says the new instance is ready, which it does not here
    // (a new count would converge as soon as the step started the instance, maybe before close()).
    await deployments.apply(caller, podInput('/restart', 1, 'img:2'), { force: false, mustBeNew: false });
    await deployments.close();
    for (const d of await store.listDeployments()) await store.deleteDeployment(d.id);
    deployments = new DeploymentController(store, pods);
    deployments.onEvent((e) => events.push(e));
    const startedBefore = events.length;
    await deployments.recover();
    // Asked through the events: the deployment may already have ended by the time recover() returns.
    const fresh = events.slice(startedBefore).find((e) => e.eventType === 'deployment_started' && 'deployment' in e && e.deployment.podId === podId);
    assert.equal(fresh && 'deployment' in fresh ? fresh.deployment.action : undefined, 'RestartPod');
    await deployments.remove(caller, '/restart', { force: true });
    await agentPass(podId);
  });

  it('rolls 2 instances beside the old ones by default, stopping old ones only as new ones are ready', async () => {
    const { detail, deployment } = await deployments.apply(caller, podInput('/surge', 2, 'img:1'), { force: false, mustBeNew: true });
    const podId = detail.pod.id;
    await agentPass(podId);
    await until('the creation to finish', async () => (deployments.deployments().some((d) => d.id === deployment.id) ? undefined : true));
    const old = await active(podId);
    assert.equal(old.length, 2);

    const update = await deployments.apply(caller, podInput('/surge', 2, 'img:2'), { force: false, mustBeNew: false });
    // minimumHealthCapacity 1, maximumOverCapacity 1: two new instances start, both old ones stay.
    const four = await until('two new instances', async () => ((await active(podId)).length === 4 ? await active(podId) : undefined));
    const fresh = four.filter((i) => i.specVersion === update.detail.pod.specVersion);
    assert.equal(fresh.length, 2);
    // One new instance ready: exactly one old one goes.
    await agentPass(podId, (i) => i.id === fresh[0]!.id);
    await until('one old instance stopped', async () => ((await active(podId)).length === 3 ? true : undefined));
    await agentPass(podId);
    await until('the rollout to finish', async () => (deployments.deployments().some((d) => d.id === update.deployment.id) ? undefined : true));
    const left = await active(podId);
    assert.deepEqual(left.map((i) => i.specVersion), [update.detail.pod.specVersion, update.detail.pod.specVersion]);
    assert.ok(events.some((e) => e.eventType === 'deployment_success' && e.deployment.id === update.deployment.id));
  });

  it('replaces in place, one at a time, when the policy allows no extra instance', async () => {
    const policy = { minimumHealthCapacity: 0.5, maximumOverCapacity: 0 };
    const { detail, deployment } = await deployments.apply(caller, podInput('/inplace', 2, 'img:1', policy), { force: false, mustBeNew: true });
    const podId = detail.pod.id;
    await agentPass(podId);
    await until('the creation to finish', async () => (deployments.deployments().some((d) => d.id === deployment.id) ? undefined : true));
    const update = await deployments.apply(caller, podInput('/inplace', 2, 'img:2', policy), { force: false, mustBeNew: false });
    const v = update.detail.pod.specVersion;
    const moved = await until('one instance replaced', async () => {
      const list = await active(podId);
      return list.filter((i) => i.specVersion === v).length === 1 ? list : undefined;
    });
    assert.equal(moved.length, 2, 'never more than 2 instances');
    await agentPass(podId);
    await until('the second replaced', async () => ((await active(podId)).every((i) => i.specVersion === v) ? true : undefined));
    await agentPass(podId);
    await until('the rollout to finish', async () => (deployments.deployments().some((d) => d.id === update.deployment.id) ? undefined : true));
  });

  it('scales without replacing instances, and rolls back a creation by deleting the pod', async () => {
    const { detail, deployment } = await deployments.apply(caller, podInput('/scale', 1, 'img:1'), { force: false, mustBeNew: true });
    const podId = detail.pod.id;
    await agentPass(podId);
    await until('the creation to finish', async () => (deployments.deployments().some((d) => d.id === deployment.id) ? undefined : true));
    const [first] = await active(podId);
    const up = await deployments.apply(caller, podInput('/scale', 3, 'img:1'), { force: false, mustBeNew: false });
    assert.equal(up.deployment.action, 'ScalePod');
    await until('three instances', async () => ((await active(podId)).length === 3 ? true : undefined));
    assert.ok((await active(podId)).some((i) => i.id === first!.id && i.specVersion === first!.specVersion), 'the first instance is kept as it was');
    await agentPass(podId);
    await until('the scale to finish', async () => (deployments.deployments().some((d) => d.id === up.deployment.id) ? undefined : true));
    const down = await deployments.apply(caller, podInput('/scale', 1, 'img:1'), { force: false, mustBeNew: false });
    await until('one instance', async () => ((await active(podId)).length === 1 ? true : undefined));
    assert.equal((await active(podId))[0]!.id, first!.id, 'YOUNGEST_FIRST keeps the oldest');
    await agentPass(podId);
    await until('the scale down to finish', async () => (deployments.deployments().some((d) => d.id === down.deployment.id) ? undefined : true));
    assert.equal((await deployments.history(caller, '/scale')).length, 3);

    const fresh = await deployments.apply(caller, podInput('/undo', 1, 'img:1'), { force: false, mustBeNew: true });
    const rollback = await deployments.cancel(caller, fresh.deployment.id, { force: false });
    assert.equal(rollback?.action, 'StopPod');
    assert.equal(await deployments.find(caller, '/undo'), undefined);
  });
});
