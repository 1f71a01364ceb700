/**
 * How the agent marks what it makes on Docker and finds it again: the labels on every container and
 * volume, the names of an instance's volumes, and reading those labels back. Docker's own record is
 * the agent's memory, so a restarted agent adopts what runs.
 */
import type { Assignment } from '../control/agent-protocol.js';
import type { ContainerSpec, InstanceId, NodeId, PodSpec } from '../model/index.js';
import type { ContainerInfo } from '../runtime/types.js';

export const LABELS = {
  managed: 'berth.managed',
  pod: 'berth.pod',
  instance: 'berth.instance',
  version: 'berth.version',
  reset: 'berth.reset',
  container: 'berth.container',
  node: 'berth.node',
  /** `infra` on the container that holds an instance's network namespace; it has no `berth.container`. */
  role: 'berth.role',
  /** JSON, on the container holding the published ports: endpoint name → host port. */
  endpoints: 'berth.endpoints',
  /** JSON, on that container: container port → host port, for host networking where Docker publishes nothing. */
  ports: 'berth.ports',
  /** The GPUs (UUIDs, comma-separated) a container was given; absent when it has none. */
  gpus: 'berth.gpus',
} as const;

/** Volumes that belong to one instance (labelled with it) and go with it. */
export type InstanceVolumeKind = 'volume-disk' | 'ephemeral' | 'persistent';
export const INSTANCE_VOLUME_KINDS: readonly InstanceVolumeKind[] = ['volume-disk', 'ephemeral', 'persistent'];

export const ephemeralVolumeName = (instanceId: InstanceId, name: string): string => `berth-eph-${instanceId}-${name}`;
export const persistentVolumeName = (instanceId: InstanceId, name: string): string => `berth-pv-${instanceId}-${name}`;

/** The labels of everything made for the instance: its containers and its own volumes. */
export function instanceLabels(a: Assignment, nodeId: NodeId): Record<string, string> {
  return { [LABELS.managed]: '1', [LABELS.pod]: a.podId, [LABELS.instance]: a.instanceId, [LABELS.node]: nodeId };
}

/** The instance's labels plus the spec version and reset generation its containers were made for. */
export function generationLabels(a: Assignment, nodeId: NodeId): Record<string, string> {
  return { ...instanceLabels(a, nodeId), [LABELS.version]: String(a.specVersion), [LABELS.reset]: String(a.resetGeneration) };
}

export const isInfra = (c: ContainerInfo): boolean => c.labels[LABELS.role] === 'infra';

/** The infra container first, then the containers in the spec's order. */
export function sortContainers(spec: PodSpec, list: ContainerInfo[]): ContainerInfo[] {
  const order = spec.containers.map((c) => c.name);
  const rank = (c: ContainerInfo): number => (isInfra(c) ? -1 : order.indexOf(c.labels[LABELS.container] ?? ''));
  return [...list].sort((x, y) => rank(x) - rank(y));
}

/** The spec of a running container, by its label; undefined for the infra container. */
export function specOf(spec: PodSpec, c: ContainerInfo): ContainerSpec | undefined {
  const name = c.labels[LABELS.container];
  return name === undefined ? undefined : spec.containers.find((x) => x.name === name);
}

/** A JSON object of numbers the agent put in a label; {} when absent or unreadable. */
export function jsonLabel(c: ContainerInfo | undefined, label: string): Record<string, number> {
  const text = c?.labels[label];
  if (!text) return {};
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null) return {};
    return Object.fromEntries(Object.entries(v).filter((e): e is [string, number] => typeof e[1] === 'number'));
  } catch {
    return {};
  }
}

/** Labels in the berth.* namespace are the agent's: a user's would confuse what it finds by them. */
export function withoutBerthLabels(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).filter(([k]) => !k.startsWith('berth.')));
}
