import { allowedActions, formatPort, podPorts, summarizeUsage, type InstanceUsage, type NetworkVolume, type Node, type PodAction, type PodStatus, type RegistryAuth, type Template } from '../../model/index.js';
import type { LifetimeView } from '../../control/lifetimes.js';
import type { PodDetail } from '../../store/types.js';
import { LABELS, dataCenterOf, flavorOf, joinArgs, mainContainer, type CompiledRunpodOptions } from './shared.js';

/** What a view needs besides the pod: the nodes (addresses, GPUs, data centers) and where the client came from. */
export interface ViewContext {
  nodes: Map<string, Node>;
  opts: CompiledRunpodOptions;
  /** Berth's SSH gateway as users reach it. */
  gateway: { host: string; port: number };
  /** The latest usage samples of a pod's running instances. */
  usage?: (podId: PodDetail['pod']['id']) => ReadonlyArray<{ usage: InstanceUsage }>;
  /** When a pod with a lifetime policy will stop or be terminated, and why. */
  lifetime?: (d: PodDetail) => LifetimeView | undefined;
}

/**
 * Berth's lifetime fields, outside RunPod's schema (clients ignore members they do not know), on a
 * pod that has a policy or a keep-alive only: every other pod answers exactly as RunPod's would.
 */
function lifetimeExtras(d: PodDetail, ctx: ViewContext) {
  if (!d.spec.lifetime && !d.pod.keepAliveUntil) return {};
  const l = ctx.lifetime?.(d);
  return { stopsAt: l?.stopsAt ?? null, stopReason: l?.stopReason ?? null, terminatesAt: l?.terminatesAt ?? null, keepAliveUntil: d.pod.keepAliveUntil };
}

const percent = (part: number | null, whole: number | null | undefined): number | null => (part === null || !whole ? null : Math.round((part / whole) * 1000) / 10);

/**
 * What a running pod uses, as percents: CPU of the pod's vCPUs, memory of its limit (else the
 * node's), each GPU's utilization and memory. Null where nothing was measured; a simulated GPU's
 * figures are null, and it is marked.
 */
function usagePercents(d: PodDetail, ctx: ViewContext, f: ReturnType<typeof facts>) {
  const s = summarizeUsage(ctx.usage?.(d.pod.id) ?? []);
  const cpus = d.spec.vcpuCount ?? f.node?.capacity.cpus ?? null;
  const memory = s?.memoryLimitBytes ?? (d.spec.memoryGb ? d.spec.memoryGb * 2 ** 30 : f.node ? f.node.capacity.memoryMb * 2 ** 20 : null);
  const measured = new Map((s?.gpus ?? []).map((g) => [g.uuid, g]));
  return {
    cpu: s ? percent(s.cpuCores, cpus) : null,
    memory: s ? percent(s.memoryBytes, memory) : null,
    gpus: f.gpus.map((g) => {
      const m = measured.get(g.uuid);
      return { id: g.uuid, util: m?.utilizationPercent ?? null, memoryUtil: m ? percent(m.memoryUsedMb, m.memoryTotalMb) : null, simulated: m?.simulated === true || f.node?.capacity.gpusSimulated === true };
    }),
  };
}

/** REST v2's `runtime` usage: `cpu.util`, `memory.util`, `gpus[].util|memoryUtil`, integers, left out where unknown. */
function v2Usage(d: PodDetail, ctx: ViewContext, f: ReturnType<typeof facts>) {
  const u = usagePercents(d, ctx, f);
  const util = (n: number | null) => (n === null ? {} : { util: Math.round(n) });
  return {
    cpu: util(u.cpu),
    memory: util(u.memory),
    gpus: u.gpus.map((g) => ({ ...util(g.util), ...(g.memoryUtil === null ? {} : { memoryUtil: Math.round(g.memoryUtil) }), ...(g.simulated ? { simulated: true } : {}) })),
  };
}

/** The legacy API's `runtime` usage (GraphQL `container {cpuPercent memoryPercent}`, `gpus {id gpuUtilPercent memoryUtilPercent}`). */
function v1Usage(d: PodDetail, ctx: ViewContext, f: ReturnType<typeof facts>) {
  const u = usagePercents(d, ctx, f);
  return {
    container: { cpuPercent: u.cpu, memoryPercent: u.memory },
    gpus: u.gpus.map((g) => ({ id: g.id, gpuUtilPercent: g.util, memoryUtilPercent: g.memoryUtil, ...(g.simulated ? { simulated: true } : {}) })),
  };
}

/** RunPod REST v2's transitions per status (its `podAction` description), narrowed to what Berth's table allows. */
const V2_ACTIONS: Readonly<Record<PodStatus, readonly PodAction[]>> = {
  PROVISIONING: ['stop', 'terminate'],
  STARTING: ['stop', 'terminate'],
  RUNNING: ['stop', 'restart', 'terminate'],
  EXITED: ['start', 'terminate'],
  ERROR: ['start', 'terminate'],
  TERMINATED: [],
};
export const v2Actions = (status: PodStatus): PodAction[] => V2_ACTIONS[status].filter((a) => allowedActions(status).includes(a));

function facts(d: PodDetail, ctx: ViewContext) {
  const { pod, spec } = d;
  const node = pod.nodeId ? ctx.nodes.get(pod.nodeId) : undefined;
  const first = d.instances[0];
  const running = pod.status === 'RUNNING' && first?.observed?.state === 'running';
  const mappings = running ? first.observed!.ports : {};
  const gpus = node && first ? node.capacity.gpus.filter((g) => first.gpuUuids.includes(g.uuid)) : [];
  const startedAt = first?.observed?.startedAt ?? pod.lastStartedAt;
  const uptime = running && startedAt ? Math.max(0, Math.floor((Date.now() - Date.parse(startedAt)) / 1000)) : 0;
  // As RunPod: nothing is billed while the pod is stopped or gone.
  const cost = pod.status === 'EXITED' || pod.status === 'TERMINATED' ? 0 : round(spec.gpuCount * ctx.opts.costPerGpuHour + (spec.vcpuCount ?? 0) * ctx.opts.costPerVcpuHour);
  return { node, first, running, mappings, gpus, uptime, cost, gpuId: gpus[0]?.name ?? spec.gpuTypeIds[0] ?? 'any' };
}

const round = (n: number): number => Math.round(n * 10_000) / 10_000;

/** Docker's nanosecond times → millisecond ISO-8601, which every client's date parser takes. */
const iso = (t: string | null): string | null => (t ? new Date(t).toISOString() : null);

/** The SSH block: Berth's gateway (user = pod id) and, with 22/tcp published, the pod's own sshd. */
function ssh(d: PodDetail, ctx: ViewContext, f: ReturnType<typeof facts>) {
  const { host, port } = ctx.gateway;
  const proxy = d.pod.nodeId && d.pod.status !== 'TERMINATED' ? { host, port, username: d.pod.id, command: `ssh ${port === 22 ? '' : `-p ${port} `}${d.pod.id}@${host}` } : null;
  const public22 = podPorts(d.spec).some((p) => p.port === 22 && p.protocol === 'tcp') ? f.mappings['22'] : undefined;
  const direct = f.running && public22 && f.node ? { host: f.node.publicIp, port: public22, username: 'root', command: `ssh root@${f.node.publicIp} -p ${public22}` } : null;
  return { proxy, direct };
}

function v2Mounts(d: PodDetail) {
  const { spec } = d;
  if (spec.networkVolumeId) return { network: [{ volumeId: spec.networkVolumeId, path: spec.volumeMountPath }] };
  if (spec.volumeGb > 0) return { persistent: { size: spec.volumeGb, path: spec.volumeMountPath } };
  return {};
}

/** A pod as RunPod REST v2's `Pod` schema has it. */
export function v2Pod(d: PodDetail, ctx: ViewContext) {
  const { pod, spec } = d;
  const main = mainContainer(spec);
  const f = facts(d, ctx);
  const compute =
    spec.gpuCount > 0
      ? { gpu: { id: f.gpuId, count: spec.gpuCount } }
      : { cpu: { id: flavorOf(spec).id, vcpuCount: spec.vcpuCount ?? f.node?.capacity.cpus ?? 0, memory: Math.round(spec.memoryGb ?? (f.node?.capacity.memoryMb ?? 0) / 1024) } };
  return {
    id: pod.id,
    name: pod.name,
    status: pod.status,
    actions: v2Actions(pod.status),
    image: main.image,
    args: joinArgs(main.command),
    disk: spec.containerDiskGb,
    ports: podPorts(spec).map(formatPort),
    env: main.env,
    registry: spec.registryAuthId,
    mounts: v2Mounts(d),
    ...compute,
    cloud: 'SECURE',
    dataCenterId: dataCenterOf(f.node),
    cudaVersion: null,
    ssh: ssh(d, ctx, f),
    template: spec.templateId,
    cost: f.cost,
    locked: false,
    globalNetworking: { enabled: false },
    runtime: f.running
      ? {
          uptime: f.uptime,
          ...v2Usage(d, ctx, f),
          ports: podPorts(spec).map((p) => ({ private: p.port, public: f.mappings[String(p.port)] ?? null, type: p.protocol, ip: f.node?.publicIp ?? null })),
        }
      : null,
    createdAt: iso(pod.createdAt),
    startedAt: iso(pod.lastStartedAt),
    ...lifetimeExtras(d, ctx),
  };
}

export interface V1Extras {
  machine?: boolean;
  savingsPlans?: boolean;
  networkVolume?: NetworkVolume;
  template?: Template;
}

/** Leaves out null and undefined members: the v1 spec marks most fields as plain strings, not nullable. */
const defined = <T extends Record<string, unknown>>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null)) as Partial<T>;

/**
 * A pod as RunPod REST v1's `Pod` schema has it, plus the spellings real clients read (runpodctl's
 * `imageName`, `gpuTypeId`, `gpuCount`, `createdAt`, `uptimeSeconds`, `runtime`).
 */
export function v1Pod(d: PodDetail, ctx: ViewContext, extras: V1Extras = {}) {
  const { pod, spec } = d;
  const main = mainContainer(spec);
  const f = facts(d, ctx);
  const isGpu = spec.gpuCount > 0;
  const dc = dataCenterOf(f.node);
  const gpu = isGpu ? { id: f.gpuId, count: spec.gpuCount, displayName: displayName(f.gpuId), securePrice: ctx.opts.costPerGpuHour, communityPrice: ctx.opts.costPerGpuHour } : undefined;
  return {
    ...defined({
      id: pod.id,
      name: pod.name,
      desiredStatus: pod.desiredStatus,
      image: main.image,
      imageName: main.image,
      env: main.env,
      ports: podPorts(spec).map(formatPort),
      containerDiskInGb: spec.containerDiskGb,
      volumeInGb: spec.networkVolumeId ? 0 : spec.volumeGb,
      volumeMountPath: spec.volumeMountPath,
      volumeEncrypted: false,
      memoryInGb: spec.memoryGb ?? Math.floor((f.node?.capacity.memoryMb ?? 0) / 1024),
      vcpuCount: spec.vcpuCount ?? f.node?.capacity.cpus ?? 0,
      gpu,
      gpuCount: spec.gpuCount,
      gpuTypeId: isGpu ? f.gpuId : undefined,
      cpuFlavorId: isGpu ? undefined : flavorOf(spec).id,
      machineId: pod.nodeId,
      machine: extras.machine && f.node ? machine(f.node, dc, gpu?.id, ctx.opts.costPerGpuHour) : undefined,
      networkVolumeId: spec.networkVolumeId,
      networkVolume: extras.networkVolume ? v1NetworkVolume(extras.networkVolume) : undefined,
      templateId: spec.templateId,
      template: extras.template ? v1Template(extras.template) : undefined,
      containerRegistryAuthId: spec.registryAuthId,
      dockerEntrypoint: main.entrypoint,
      dockerStartCmd: main.command,
      costPerHr: f.cost,
      adjustedCostPerHr: f.cost,
      savingsPlans: extras.savingsPlans ? [] : undefined,
      interruptible: false,
      locked: false,
      consumerUserId: pod.owner,
      createdAt: iso(pod.createdAt),
      lastStartedAt: iso(pod.lastStartedAt),
      lastStatusChange: `${pod.status}${pod.statusMessage ? `: ${pod.statusMessage}` : ''}`,
      uptimeSeconds: f.uptime,
    }),
    // Nullable in the v1 spec: empty until the container runs.
    portMappings: f.running ? f.mappings : null,
    publicIp: f.running && f.node ? f.node.publicIp : null,
    runtime: f.running
      ? {
          uptimeInSeconds: f.uptime,
          ports: podPorts(spec).flatMap((p) => {
            const pub = f.mappings[String(p.port)];
            return pub ? [{ ip: f.node?.publicIp ?? '', isIpPublic: true, privatePort: p.port, publicPort: pub, type: p.protocol }] : [];
          }),
          ...v1Usage(d, ctx, f),
        }
      : null,
    ...lifetimeExtras(d, ctx),
  };
}

/** "NVIDIA GeForce RTX 4090" → "RTX 4090", as RunPod's GPU display names read. */
export const displayName = (gpuId: string): string => gpuId.replace(/^(NVIDIA|AMD)\s+/, '').replace(/^GeForce\s+/, '') || gpuId;

function machine(node: Node, dc: string | null, gpuTypeId: string | undefined, costPerGpuHour: number) {
  return defined({
    gpuTypeId,
    gpuDisplayName: gpuTypeId ? displayName(gpuTypeId) : undefined,
    cpuCount: node.capacity.cpus,
    location: dc,
    dataCenterId: dc,
    supportPublicIp: true,
    secureCloud: true,
    currentPricePerGpu: costPerGpuHour,
    note: `Berth node ${node.name} (${node.id})`,
  });
}

export const v1NetworkVolume = (v: NetworkVolume) => ({ id: v.id, name: v.name, size: v.sizeGb, dataCenterId: v.dataCenterId });
export const v2NetworkVolume = (v: NetworkVolume) => ({ id: v.id, name: v.name, size: v.sizeGb, dataCenter: v.dataCenterId, type: 'STANDARD' as const });

export const registryView = (r: RegistryAuth) => ({ id: r.id, name: r.name });

/** A template's single container (a native multi-container template shows its first). */
function templateContainer(t: Template) {
  const p = t.pod;
  const c = p.containers?.[0];
  const ports = c?.ports ?? p.ports ?? [];
  return {
    image: c?.image ?? p.image ?? '',
    command: c?.command ?? p.command ?? [],
    entrypoint: c?.entrypoint ?? p.entrypoint ?? [],
    env: { ...p.env, ...c?.env },
    ports: (typeof ports === 'string' ? ports.split(',') : ports).map((s) => s.trim()).filter((s) => s !== ''),
  };
}

const category = (t: Template): 'NVIDIA' | 'AMD' | 'CPU' => {
  const c = t.pod.labels?.[LABELS.category];
  return c === 'AMD' || c === 'CPU' || c === 'NVIDIA' ? c : 'NVIDIA';
};

export function v1Template(t: Template) {
  const c = templateContainer(t);
  return defined({
    id: t.id,
    name: t.name,
    imageName: c.image,
    category: category(t),
    containerDiskInGb: t.pod.containerDiskGb ?? 50,
    containerRegistryAuthId: t.pod.registryAuthId,
    dockerEntrypoint: c.entrypoint,
    dockerStartCmd: c.command,
    env: c.env,
    ports: c.ports,
    readme: t.readme,
    volumeInGb: t.pod.volumeGb ?? 20,
    volumeMountPath: t.pod.volumeMountPath ?? '/workspace',
    isPublic: false,
    isRunpod: false,
    isServerless: false,
    earned: 0,
    runtimeInMin: 0,
  });
}

export function v2Template(t: Template) {
  const c = templateContainer(t);
  const volumeGb = t.pod.volumeGb ?? 20;
  return {
    id: t.id,
    name: t.name,
    image: c.image,
    args: joinArgs(c.command),
    disk: t.pod.containerDiskGb ?? 50,
    mounts: volumeGb > 0 ? { persistent: { size: volumeGb, path: t.pod.volumeMountPath ?? '/workspace' } } : {},
    ports: c.ports,
    env: c.env,
    registry: t.pod.registryAuthId ?? null,
    serverless: false,
    public: false,
    category: category(t),
    startSsh: t.pod.startSsh ?? true,
    startJupyter: t.pod.labels?.[LABELS.startJupyter] === 'true',
    allowedCudaVersions: [] as string[],
  };
}
