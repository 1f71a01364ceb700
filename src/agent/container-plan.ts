/**
 * What each container of an instance is, worked out from its assignment with no runtime at hand:
 * image, env, mounts, published ports, GPUs, limits, labels and network. The launch only creates
 * what these plans say.
 */
import type { Assignment } from '../control/agent-protocol.js';
import { BerthError, holdsNetworkApart, type ContainerSpec, type PodSpec } from '../model/index.js';
import type { ContainerPlan, MountPlan, PortBinding } from '../runtime/types.js';
import { ephemeralVolumeName, LABELS, persistentVolumeName, withoutBerthLabels } from './labels.js';
import { endpointEnv, marathonContainerEnv, secretEnv as secretValues } from './pod-env.js';
import type { NetPlan } from './ports.js';

/**
 * Whether an infra container holds the network namespace, the hostname and the published ports,
 * every container of the pod joining it: the pod model says (`holdsNetworkApart`), whichever API
 * made the pod.
 */
export function usesInfra(spec: PodSpec): boolean {
  return holdsNetworkApart(spec);
}

/**
 * The GPUs one container of an instance gets. Where containers ask for their own (Marathon's
 * `resources.gpus`), each gets its count from the instance's GPUs, in the spec's order, and one
 * that asks for none gets none; where none does (a RunPod pod), every container gets them all.
 */
export function containerGpus<G>(spec: PodSpec, gpus: G[], container: string): G[] {
  if (!spec.containers.some((c) => c.resources.gpus > 0)) return gpus;
  let at = 0;
  for (const c of spec.containers) {
    if (c.name === container) return gpus.slice(at, at + c.resources.gpus);
    at += c.resources.gpus;
  }
  return [];
}

/** `berth-<instance>-infra`, unless a container of the pod is called `infra`. */
export function infraName(a: Assignment): string {
  return a.spec.containers.some((c) => c.name === 'infra') ? `berth-${a.instanceId}_infra` : `berth-${a.instanceId}-infra`;
}

/** The env every container of the instance gets: the control plane's, the node's public IP and the host ports. */
export function podEnv(a: Assignment, net: NetPlan, publicIp: string): Record<string, string> {
  const env: Record<string, string> = { ...a.env, BERTH_PUBLIC_IP: publicIp, RUNPOD_PUBLIC_IP: publicIp };
  for (const p of a.spec.containers.flatMap((c) => c.ports)) {
    if (p.protocol !== 'tcp') continue;
    env[`BERTH_TCP_PORT_${p.port}`] = String(net.ports[String(p.port)]);
    env[`RUNPOD_TCP_PORT_${p.port}`] = String(net.ports[String(p.port)]);
  }
  return Object.assign(env, endpointEnv(a.spec, net.endpoints));
}

/** What the container holding the instance's network has: the published ports and their record, its network and host name. */
export interface HolderPlan {
  ports: PortBinding[];
  labels: Record<string, string>;
  networkMode?: string;
  hostname?: string;
}

export function holderPlan(a: Assignment, net: NetPlan): HolderPlan {
  // The holder of the network: the node's network, a named Docker network, the team's network, or the default bridge.
  const mode = a.spec.network.mode;
  const holderNetwork =
    mode === 'host' ? { networkMode: 'host' } : mode === 'container' && a.spec.network.name ? { networkMode: a.spec.network.name } : a.podNetwork ? { networkMode: a.podNetwork } : {};
  return {
    ports: net.bindings,
    labels: { [LABELS.endpoints]: JSON.stringify(net.endpoints), [LABELS.ports]: JSON.stringify(net.ports) },
    ...holderNetwork,
    // A host-networked container has the node's name.
    ...(mode === 'host' ? {} : { hostname: a.podId }),
  };
}

/** The infra container: it only holds the network, so it has no env, mounts, limits or GPUs. */
export function infraPlan(a: Assignment, image: string, holder: HolderPlan, generation: Record<string, string>, gpusSimulated: boolean): ContainerPlan {
  return {
    ...holder,
    name: infraName(a),
    image,
    entrypoint: [],
    command: [],
    env: {},
    labels: { ...generation, ...holder.labels, [LABELS.role]: 'infra' },
    mounts: [],
    cpus: null,
    memoryBytes: null,
    diskBytes: null,
    gpuUuids: [],
    gpusSimulated,
  };
}

export interface PlanContext {
  /** From podEnv. */
  podEnv: Record<string, string>;
  /** The labels of the instance's generation (generationLabels). */
  generation: Record<string, string>;
  /** The holder's plan for the sole container; `{ networkMode: 'container:<infra>' }` for one joining the infra container. */
  network: Partial<ContainerPlan>;
  nodeName: string;
  gpusSimulated: boolean;
}

/** One container of the instance, as the runtime creates it. */
export function containerPlan(a: Assignment, c: ContainerSpec, ctx: PlanContext): ContainerPlan {
  const extra = ctx.network;
  const gpus = containerGpus(a.spec, a.gpus, c.name);
  // A container with a share of the pod's GPUs counts its own.
  const gpuCount: Record<string, string> = gpus.length !== a.gpus.length ? { BERTH_GPU_COUNT: String(gpus.length), RUNPOD_GPU_COUNT: String(gpus.length) } : {};
  return {
    name: `berth-${a.instanceId}-${c.name}`,
    image: c.image,
    entrypoint: c.entrypoint,
    command: c.command,
    // The device list is ours, after the user's env: on hosts whose default runtime is nvidia,
    // NVIDIA_VISIBLE_DEVICES=all in a pod's env would otherwise expose every GPU of the node.
    env: {
      ...ctx.podEnv,
      ...gpuCount,
      ...(usesInfra(a.spec) ? marathonContainerEnv(a.spec, c, { instanceId: a.instanceId, nodeName: ctx.nodeName }) : {}),
      ...c.env,
      ...secretValues(c, a.secrets),
      NVIDIA_VISIBLE_DEVICES: gpus.map((g) => g.uuid).join(',') || 'void',
    },
    // The user's labels, never over ours: the agent finds its containers by them.
    labels: { ...withoutBerthLabels(c.labels), ...(extra.labels ?? {}), ...ctx.generation, [LABELS.container]: c.name, ...(gpus.length > 0 ? { [LABELS.gpus]: gpus.map((g) => g.uuid).join(',') } : {}) },
    ports: [],
    mounts: mountsOf(a, c),
    cpus: c.resources.cpus ?? a.spec.vcpuCount,
    memoryBytes: c.resources.memoryMb !== null ? Math.round(c.resources.memoryMb * 2 ** 20) : a.spec.memoryGb === null ? null : Math.round(a.spec.memoryGb * 2 ** 30),
    diskBytes: a.spec.containerDiskGb * 2 ** 30,
    gpuUuids: gpus.map((g) => g.uuid),
    gpusSimulated: ctx.gpusSimulated,
    ...(extra.ports ? { ports: extra.ports } : {}),
    ...(extra.networkMode ? { networkMode: extra.networkMode } : {}),
    ...(extra.hostname ? { hostname: extra.hostname } : {}),
    ...(c.user !== null ? { user: c.user } : {}),
    ...(c.tty ? { tty: true } : {}),
    ...(c.privileged ? { privileged: true } : {}),
    ...(c.capAdd?.length ? { capAdd: c.capAdd } : {}),
    ...(c.killGracePeriodSeconds !== null ? { stopTimeoutSeconds: c.killGracePeriodSeconds } : {}),
  };
}

/** The container's mounts: the volume disk at the pod's mount path, and its own volumeMounts. */
function mountsOf(a: Assignment, c: ContainerSpec): MountPlan[] {
  const byTarget = new Map<string, MountPlan>();
  const disk = a.volumeDisk ?? a.networkVolume;
  const ownDisk = c.volumeMounts.some((m) => m.name === 'volume-disk' || m.name === 'network-volume');
  if (disk && !ownDisk) byTarget.set(a.spec.volumeMountPath, { source: disk, target: a.spec.volumeMountPath, readOnly: false });
  for (const m of c.volumeMounts) {
    const source = mountSource(a, c, m.name);
    if (source) byTarget.set(m.mountPath, { ...source, target: m.mountPath, readOnly: m.readOnly });
  }
  return [...byTarget.values()];
}

function mountSource(a: Assignment, c: ContainerSpec, name: string): Pick<MountPlan, 'source' | 'kind'> | undefined {
  const missing = (what: string): BerthError => new BerthError('VALIDATION', `container ${c.name} mounts ${name}, but the pod has no ${what}`);
  if (name === 'volume-disk') {
    if (!a.volumeDisk) throw missing('volume disk');
    return { source: a.volumeDisk };
  }
  if (name === 'network-volume') {
    if (!a.networkVolume) throw missing('network volume');
    return { source: a.networkVolume };
  }
  const v = a.spec.volumes.find((x) => x.name === name);
  if (!v) throw missing(`volume ${name}`);
  switch (v.kind) {
    case 'ephemeral':
      return { source: ephemeralVolumeName(a.instanceId, v.name) };
    case 'persistent':
      return { source: persistentVolumeName(a.instanceId, v.name) };
    case 'host':
      // The control plane checked the path against the paths the operator allows.
      return { source: v.hostPath, kind: 'bind' };
    case 'secret':
      // A file written into the container before it starts, not a mount.
      return undefined;
  }
}
