/**
 * A GPU is given to one container at a time on this node. The control plane frees an instance's
 * GPUs the moment its goal leaves `running`, and may hand them to a new instance at once, while the
 * old one's containers are still being stopped here (a kill grace period, a slow daemon, a watch
 * answer that arrived late): the new instance's launch waits until no other container holds them,
 * as the kubelet does not give a device to a pod while a terminating one still has it. The runner
 * looks before the launch and again in the launch's slot, right before it makes anything (another
 * instance's launch may have made its containers meanwhile).
 */
import type { Assignment } from '../control/agent-protocol.js';
import type { ContainerInfo } from '../runtime/types.js';
import { LABELS } from './labels.js';

/** A GPU the assignment wants, and the container of another instance that still holds it. */
export interface GpuHeld {
  uuid: string;
  holder: ContainerInfo;
}

/** States in which a container holds its GPUs: its process may run (or is about to). */
const HOLDING = new Set<ContainerInfo['state']>(['created', 'running', 'paused', 'restarting', 'removing']);

/** The first of the assignment's GPUs another instance's container on the node still holds, if any. */
export function gpuHeld(a: Assignment, nodeContainers: ContainerInfo[]): GpuHeld | undefined {
  if (a.gpus.length === 0) return undefined;
  const wanted = new Set(a.gpus.map((g) => g.uuid));
  for (const c of nodeContainers) {
    if (c.labels[LABELS.instance] === a.instanceId || !HOLDING.has(c.state)) continue;
    const uuid = (c.labels[LABELS.gpus] ?? '').split(',').find((u) => wanted.has(u));
    if (uuid) return { uuid, holder: c };
  }
  return undefined;
}

/** What the waiting instance reports. */
export function heldMessage({ uuid, holder }: GpuHeld): string {
  const pod = holder.labels[LABELS.pod] ?? 'another pod';
  return `waiting for GPU ${uuid}: container ${holder.name} of pod ${pod} still holds it (${holder.state}); the launch goes on once it is gone`;
}
