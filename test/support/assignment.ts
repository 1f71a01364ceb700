/** An agent's assignment for unit tests: one instance of a pod compiled from `input`, on no volume. */
import type { Assignment } from '../../src/control/agent-protocol.js';
import { compilePodSpec, type InstanceId, type PodId, type PodInput } from '../../src/model/index.js';

export function testAssignment(input: PodInput, more: Omit<Partial<Assignment>, 'podId'> & { podId?: string } = {}): Assignment {
  const podId = (more.podId ?? 'pod1') as PodId;
  return {
    instanceId: `${podId}-0` as InstanceId,
    ordinal: 0,
    specVersion: 1,
    goal: 'running',
    resetGeneration: 0,
    restartGeneration: 0,
    observedRestartGeneration: null,
    spec: compilePodSpec({ volumeGb: 0, ...input }),
    gpus: [],
    hostPorts: {},
    env: {},
    registryLogin: null,
    secrets: {},
    volumeDisk: null,
    networkVolume: null,
    ...more,
    podId,
  };
}
