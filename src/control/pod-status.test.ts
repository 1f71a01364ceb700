import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { instanceIdOf, type Instance, type InstanceObservation, type NodeId, type PodId } from '../model/index.js';
import { testObservation } from '../../test/support/observation.js';
import { summarize } from './pod-status.js';

const POD = '2s56cp0pof1rmt' as PodId;
const NODE = 'node1' as NodeId;

const observed = testObservation;

function inst(ordinal: number, obs: InstanceObservation | null, nodeId: NodeId | null = NODE): Instance {
  return { id: instanceIdOf(POD, ordinal), podId: POD, ordinal, nodeId, specVersion: 1, goal: 'running', resetGeneration: 0, restartGeneration: 0, gpuUuids: [], hostPorts: {}, observed: obs, revision: 1 };
}

describe('summarize', () => {
  it('is TERMINATED with no message once no node holds an instance', () => {
    assert.deepEqual(summarize('TERMINATED', [], null), { status: 'TERMINATED', message: null });
    assert.deepEqual(summarize('TERMINATED', [inst(0, null, null)], 'ignored'), { status: 'TERMINATED', message: null });
  });

  it('is not TERMINATED while a node still has the containers: it says it is terminating, and what failed', () => {
    assert.deepEqual(summarize('TERMINATED', [inst(0, observed('running'))], 'ignored'), { status: 'RUNNING', message: 'terminating: waiting for the node to remove the containers' });
    const stuck = observed('failed', { message: 'could not remove container main after killing it: Docker did not answer in 60 s; trying again' });
    assert.deepEqual(summarize('TERMINATED', [inst(0, stuck)], null), { status: 'ERROR', message: `terminating: ${stuck.message}` });
  });

  it('reports an unplaced instance as PROVISIONING with the reason it waits', () => {
    const reason = 'waiting for resources: n1: needs 1 GPU (any type), 0 free of 1';
    assert.deepEqual(summarize('RUNNING', [inst(0, null, null)], reason), { status: 'PROVISIONING', message: reason });
    assert.deepEqual(summarize('RUNNING', [inst(0, null, null)], null), { status: 'PROVISIONING', message: 'waiting to be placed' });
  });

  it('reports a start waiting for its quota (an instance still stopped on its node) as PROVISIONING with the reason', () => {
    const reason = 'waiting for quota: quota gpus of team red would be crossed: 5 asked for in all, 4 allowed';
    const held = { ...inst(0, observed('stopped')), goal: 'stopped' as const };
    assert.deepEqual(summarize('RUNNING', [held], reason), { status: 'PROVISIONING', message: reason });
    assert.deepEqual(summarize('RUNNING', [held], null), { status: 'PROVISIONING', message: 'waiting to start' });
    assert.equal(summarize('EXITED', [held], reason).status, 'EXITED');
  });

  it('reports an unplaced instance of a stopped pod as EXITED, not waiting', () => {
    assert.deepEqual(summarize('EXITED', [inst(0, null, null)], 'stale reason'), { status: 'EXITED', message: null });
  });

  it('reports a pod scaled to zero by what the user wants', () => {
    assert.deepEqual(summarize('RUNNING', [], null), { status: 'RUNNING', message: 'scaled to 0 instances' });
    assert.deepEqual(summarize('EXITED', [], null), { status: 'EXITED', message: 'scaled to 0 instances' });
  });

  it('follows a single instance through its life, carrying its message', () => {
    assert.deepEqual(summarize('RUNNING', [inst(0, null)], null), { status: 'PROVISIONING', message: null });
    assert.deepEqual(summarize('RUNNING', [inst(0, observed('pulling', { message: 'pulling busybox: 40%' }))], null), { status: 'PROVISIONING', message: 'pulling busybox: 40%' });
    assert.deepEqual(summarize('RUNNING', [inst(0, observed('creating', { message: 'creating containers' }))], null), { status: 'STARTING', message: 'creating containers' });
    assert.deepEqual(summarize('RUNNING', [inst(0, observed('running'))], null), { status: 'RUNNING', message: null });
    assert.deepEqual(summarize('RUNNING', [inst(0, observed('exited', { exitCode: 3, message: 'exited with code 3' }))], null), { status: 'ERROR', message: 'exited with code 3' });
    assert.deepEqual(summarize('EXITED', [inst(0, observed('stopped'))], null), { status: 'EXITED', message: null });
  });

  it('counts a pod serving from any instance as RUNNING', () => {
    const r = summarize('RUNNING', [inst(0, observed('running')), inst(1, observed('failed', { message: 'OOM' })), inst(2, null, null)], 'waiting for resources');
    assert.equal(r.status, 'RUNNING');
  });

  it('without a running instance, reports the most urgent status and its message', () => {
    const r = summarize('RUNNING', [inst(0, observed('pulling', { message: 'pulling' })), inst(1, observed('failed', { message: 'image not found' })), inst(2, null, null)], 'no GPU free');
    assert.deepEqual(r, { status: 'ERROR', message: 'image not found' });

    const starting = summarize('RUNNING', [inst(0, observed('pulling', { message: 'pulling' })), inst(1, observed('creating', { message: 'creating' }))], null);
    assert.deepEqual(starting, { status: 'STARTING', message: 'creating' });

    const waiting = summarize('RUNNING', [inst(0, observed('exited', { exitCode: 0 })), inst(1, null, null)], 'no GPU free');
    assert.deepEqual(waiting, { status: 'PROVISIONING', message: 'no GPU free' });
  });

  it('agrees when every instance reports the same, taking the first message given', () => {
    const r = summarize('RUNNING', [inst(0, observed('failed')), inst(1, observed('failed', { message: 'second' })), inst(2, observed('failed', { message: 'third' }))], null);
    assert.deepEqual(r, { status: 'ERROR', message: 'second' });
  });

  it('keeps the last status of an instance whose node is not answering, says so, and leaves out the one replaced', () => {
    const lostNode = 'node2' as NodeId;
    const away = (i: Instance) => (i.nodeId === lostNode ? 'node node2 is not answering (NOT_READY since t): it waits' : null);
    const onLost = { ...inst(0, observed('running')), nodeId: lostNode };
    assert.deepEqual(summarize('RUNNING', [onLost], null, away), { status: 'RUNNING', message: 'node node2 is not answering (NOT_READY since t): it waits' });
    const replaced = { ...onLost, goal: 'removed' as const };
    const replacement = inst(1, observed('creating'));
    assert.equal(summarize('RUNNING', [replaced, replacement], null, away).status, 'STARTING', 'the replaced copy, last seen running, counts no more');
    assert.equal(summarize('RUNNING', [replaced, replacement], null, away).message, null);
  });
});
