import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Gpu } from '../model/index.js';
import type { ContainerInfo } from '../runtime/types.js';
import { testAssignment } from '../../test/support/assignment.js';
import { gpuHeld, heldMessage } from './gpu-holders.js';
import { LABELS } from './labels.js';

const gpu = (index: number): Gpu => ({ index, uuid: `GPU-${index}`, name: 'NVIDIA Test', memoryMb: 1024 });

function container(instance: string, state: ContainerInfo['state'], gpus?: string): ContainerInfo {
  const labels: Record<string, string> = { [LABELS.instance]: instance, [LABELS.pod]: instance.split('-')[0]! };
  if (gpus !== undefined) labels[LABELS.gpus] = gpus;
  return { id: `c-${instance}`, name: `berth-${instance}-main`, labels, state, exitCode: null, startedAt: null, finishedAt: null, ports: {}, error: null };
}

describe('a GPU held by another container', () => {
  const a = testAssignment({ image: 'x', gpuCount: 2 }, { gpus: [gpu(1), gpu(2)] });

  it('finds a container of another instance that still runs, or is being removed, with one of the GPUs', () => {
    for (const state of ['running', 'removing', 'created', 'restarting', 'paused'] as const) {
      const held = gpuHeld(a, [container('old-0', state, 'GPU-0,GPU-2')]);
      assert.equal(held?.uuid, 'GPU-2', state);
      assert.equal(held?.holder.id, 'c-old-0');
    }
  });

  it('ignores the instance’s own containers, ended ones, other GPUs, and containers with none', () => {
    const others = [
      container('pod1-0', 'running', 'GPU-1'),
      container('old-0', 'exited', 'GPU-1'),
      container('old-1', 'dead', 'GPU-2'),
      container('old-2', 'running', 'GPU-0,GPU-3'),
      container('old-3', 'running'),
    ];
    assert.equal(gpuHeld(a, others), undefined);
  });

  it('asks nothing of an instance without GPUs', () => {
    assert.equal(gpuHeld(testAssignment({ image: 'x' }), [container('old-0', 'running', 'GPU-1')]), undefined);
  });

  it('says which GPU, which container of which pod, and in what state', () => {
    const message = heldMessage({ uuid: 'GPU-2', holder: container('old-0', 'removing', 'GPU-2') });
    assert.match(message, /GPU-2/);
    assert.match(message, /berth-old-0-main/);
    assert.match(message, /pod old/);
    assert.match(message, /removing/);
  });
});
