/**
 * RunPod request bodies → Berth's `PodInput` and template input. Each field is honoured, mapped, noted
 * as accepted-but-ignored (the `berth-ignored-fields` header), or refused with a reason; none is
 * dropped without a word. docs/runpod.md has the same table for people.
 */
import type { Node, PodInput, PodSpec, Problem, Template } from '../../model/index.js';
import type * as S from './schemas.js';
import { Ignored, LABELS, checkDataCenters, cpuReservation, jupyterPassword, refuseIfTrue, splitArgs, throwIf } from './shared.js';

const NO_GLOBAL_NETWORKING = 'Berth has no global networking; pods on one node reach each other through their published ports';
const NO_LOCK = 'Berth does not lock pods; leave locked out or false';
const NO_SPOT = 'Berth runs no interruptible (spot) pods: pods on your own machines are never preempted';

/** Labels a template keeps for RunPod only; a pod made from it does not inherit them. */
const TEMPLATE_ONLY = [LABELS.startJupyter, LABELS.category] as string[];

const podLabels = (template: Template | undefined, own: Record<string, string>): Record<string, string> | undefined => {
  const inherited = Object.fromEntries(Object.entries(template?.pod.labels ?? {}).filter(([k]) => !TEMPLATE_ONLY.includes(k)));
  const labels = { ...inherited, ...own };
  return Object.keys(labels).length || template ? labels : undefined;
};

/** `startJupyter` as RunPod documents it: a generated JUPYTER_PASSWORD unless the request or template sets one. */
function withJupyter(env: Record<string, string> | undefined, template: Template | undefined): Record<string, string> {
  const has = env?.JUPYTER_PASSWORD !== undefined || template?.pod.env?.JUPYTER_PASSWORD !== undefined || template?.pod.containers?.some((c) => c.env?.JUPYTER_PASSWORD !== undefined);
  return has ? { ...env } : { ...env, JUPYTER_PASSWORD: jupyterPassword() };
}

const V2_CREATE_FIELDS = ['name', 'image', 'args', 'disk', 'env', 'ports', 'registry', 'cloud', 'cpu', 'gpu', 'dataCenterIds', 'globalNetworking', 'mounts', 'startJupyter', 'startSsh', 'templateId'];

/** REST v2 `CreatePodRequest` → pod input. `template` is the one `templateId` names, already looked up. */
export function fromV2Create(body: S.V2CreatePodT, nodes: Node[], template: Template | undefined, ignored: Ignored): PodInput {
  const raw = body as Record<string, unknown>;
  ignored.unknown(raw, V2_CREATE_FIELDS);
  const problems: Problem[] = [];
  if (body.gpu && body.cpu) problems.push({ path: '/cpu', message: 'set gpu for a GPU pod or cpu for a CPU pod, not both' });
  if (!body.gpu && !body.cpu) problems.push({ path: '/gpu', message: 'set gpu ({"id": "<GPU type>", "count": 1}) for a GPU pod or cpu ({"id": "cpu3c", "vcpuCount": 2}) for a CPU pod' });
  if (body.image === undefined && body.templateId === undefined) problems.push({ path: '/image', message: 'is required unless templateId is set' });
  if (body.cloud === 'COMMUNITY') ignored.add('cloud');
  checkDataCenters(body.dataCenterIds, nodes, '/dataCenterIds', problems);
  refuseIfTrue(problems, raw, 'globalNetworking', '/globalNetworking', NO_GLOBAL_NETWORKING);
  if (body.mounts?.persistent && body.mounts.network?.length) problems.push({ path: '/mounts', message: 'persistent and network mounts are mutually exclusive' });

  const input: PodInput = { name: body.name };
  if (body.image !== undefined) input.image = body.image;
  if (body.args !== undefined) input.command = splitArgs(body.args);
  if (body.disk !== undefined) input.containerDiskGb = body.disk;
  if (body.ports !== undefined) input.ports = body.ports;
  if (body.registry !== undefined) input.registryAuthId = body.registry;
  if (body.templateId !== undefined) input.templateId = body.templateId;

  let own: Record<string, string> = {};
  if (body.gpu) {
    ignored.unknown(body.gpu as Record<string, unknown>, ['id', 'count', 'allowedCudaVersions', 'minCudaVersion'], 'gpu.');
    // Berth does not know its hosts' CUDA versions (nvidia-smi reports none it reads), so it cannot match them.
    if (body.gpu.allowedCudaVersions?.length) ignored.add('gpu.allowedCudaVersions');
    if (body.gpu.minCudaVersion !== undefined) ignored.add('gpu.minCudaVersion');
    Object.assign(input, { gpuCount: body.gpu.count ?? 1, gpuTypeIds: [body.gpu.id], vcpuCount: null, memoryGb: null });
  } else if (body.cpu) {
    ignored.unknown(body.cpu as Record<string, unknown>, ['id', 'vcpuCount'], 'cpu.');
    const n = body.cpu.vcpuCount;
    if ((n & (n - 1)) !== 0) problems.push({ path: '/cpu/vcpuCount', message: 'must be a power of two (2, 4, 8, ...)' });
    try {
      const { labels, ...reservation } = cpuReservation(body.cpu.id, n, '/cpu/id');
      Object.assign(input, reservation, { gpuTypeIds: [] });
      own = labels;
    } catch (e) {
      problems.push(...(e as { problems: Problem[] }).problems);
    }
  }

  const m = body.mounts;
  if (m?.persistent) Object.assign(input, { volumeGb: m.persistent.size, volumeMountPath: m.persistent.path, networkVolumeId: null });
  else if (m?.network?.[0]) Object.assign(input, { networkVolumeId: m.network[0].volumeId, volumeMountPath: m.network[0].path, volumeGb: 0 });
  // No mount asked for: none, unless a GPU pod's template brings its persistent one ("CPU pods do not inherit a template's persistent mount").
  else if (body.cpu || template?.pod.volumeGb === undefined) input.volumeGb = 0;

  const startSsh = body.startSsh ?? (template ? (template.pod.startSsh ?? true) : false);
  input.startSsh = startSsh;
  const startJupyter = body.startJupyter ?? template?.pod.labels?.[LABELS.startJupyter] === 'true';
  if (startJupyter) input.env = withJupyter(body.env, template);
  else if (body.env !== undefined) input.env = body.env;
  const labels = podLabels(template, own);
  if (labels) input.labels = labels;
  throwIf(problems);
  return input;
}

const V2_UPDATE_FIELDS = ['name', 'image', 'args', 'disk', 'env', 'ports', 'registry', 'mounts', 'locked', 'globalNetworking', 'templateId'];

/** REST v2 `UpdatePodRequest` → a partial pod input over the pod's current spec. */
export function fromV2Update(body: S.V2UpdatePodT, current: PodSpec, ignored: Ignored): PodInput {
  const raw = body as Record<string, unknown>;
  ignored.unknown(raw, V2_UPDATE_FIELDS);
  const problems: Problem[] = [];
  refuseIfTrue(problems, raw, 'locked', '/locked', NO_LOCK);
  refuseIfTrue(problems, raw, 'globalNetworking', '/globalNetworking', NO_GLOBAL_NETWORKING);
  const input: PodInput = {};
  if (body.name !== undefined) input.name = body.name;
  if (body.image !== undefined) input.image = body.image;
  if (body.args !== undefined) input.command = splitArgs(body.args);
  if (body.disk !== undefined) input.containerDiskGb = body.disk;
  if (body.env !== undefined) input.env = body.env;
  if (body.ports !== undefined) input.ports = body.ports;
  if (body.registry !== undefined) input.registryAuthId = body.registry;
  if (body.templateId !== undefined) input.templateId = body.templateId;
  // As RunPod: the mount kind and a network volume are fixed at create; sizes and paths may change.
  const m = body.mounts;
  const kind = current.networkVolumeId ? 'network' : current.volumeGb > 0 ? 'persistent' : 'none';
  if (m?.persistent) {
    if (kind !== 'persistent') problems.push({ path: '/mounts/persistent', message: `the pod was created with ${kind === 'none' ? 'no mount' : 'a network mount'}; the mount kind is fixed at create` });
    else Object.assign(input, { volumeGb: m.persistent.size, volumeMountPath: m.persistent.path });
  }
  if (m?.network) {
    const [n] = m.network;
    if (!n) problems.push({ path: '/mounts/network', message: 'clearing mounts is not supported' });
    else if (kind !== 'network') problems.push({ path: '/mounts/network', message: `the pod was created with ${kind === 'none' ? 'no mount' : 'a persistent mount'}; the mount kind is fixed at create` });
    else if (n.volumeId !== current.networkVolumeId) problems.push({ path: '/mounts/network(0)/volumeId', message: `a network mount's volume is fixed at create (${current.networkVolumeId})` });
    else input.volumeMountPath = n.path;
  }
  throwIf(problems);
  return input;
}

/** v1's env in any of the shapes clients send: a map, `[{key, value}]` or `["K=V"]`. */
export function v1Env(env: unknown): Record<string, string> | undefined {
  if (env === undefined || env === null) return undefined;
  if (!Array.isArray(env)) return env as Record<string, string>;
  const out: Record<string, string> = {};
  for (const e of env as (string | { key: string; value: string })[]) {
    if (typeof e === 'string') {
      const i = e.indexOf('=');
      out[i < 0 ? e : e.slice(0, i)] = i < 0 ? '' : e.slice(i + 1);
    } else out[e.key] = e.value;
  }
  return out;
}

/** Fields of v1's create that Berth accepts without acting on: RunPod marketplace preferences and host minimums. */
const V1_CREATE_NOTED = ['gpuTypePriority', 'cpuFlavorPriority', 'dataCenterPriority', 'countryCodes', 'allowedCudaVersions', 'minCudaVersion', 'minRAMPerGPU', 'minVCPUPerGPU', 'minDiskBandwidthMBps', 'minDownloadMbps', 'minUploadMbps', 'supportPublicIp'];
const V1_COMMON = ['name', 'imageName', 'image', 'containerDiskInGb', 'volumeInGb', 'volumeMountPath', 'ports', 'env', 'dockerEntrypoint', 'dockerStartCmd', 'dockerArgs', 'containerRegistryAuthId', 'globalNetworking', 'locked'];
const V1_CREATE_FIELDS = [...V1_COMMON, 'templateId', 'computeType', 'cloudType', 'gpuTypeIds', 'gpuCount', 'cpuFlavorIds', 'vcpuCount', 'dataCenterIds', 'networkVolumeId', 'interruptible'];

function v1Common(body: S.V1UpdatePodT, problems: Problem[]): PodInput {
  const raw = body as Record<string, unknown>;
  refuseIfTrue(problems, raw, 'locked', '/locked', NO_LOCK);
  refuseIfTrue(problems, raw, 'globalNetworking', '/globalNetworking', NO_GLOBAL_NETWORKING);
  const input: PodInput = {};
  if (body.name !== undefined) input.name = body.name;
  const image = body.imageName ?? body.image;
  if (image !== undefined) input.image = image;
  if (body.containerDiskInGb != null) input.containerDiskGb = body.containerDiskInGb;
  if (body.volumeInGb != null) input.volumeGb = body.volumeInGb;
  if (body.volumeMountPath !== undefined) input.volumeMountPath = body.volumeMountPath;
  if (body.ports !== undefined) input.ports = body.ports;
  const env = v1Env(body.env);
  if (env) input.env = env;
  if (body.dockerEntrypoint !== undefined) input.entrypoint = body.dockerEntrypoint;
  // runpodctl sends `dockerArgs` (one string) where the spec has `dockerStartCmd`.
  if (body.dockerStartCmd !== undefined) input.command = body.dockerStartCmd;
  else if (body.dockerArgs !== undefined && body.dockerArgs !== '') input.command = splitArgs(body.dockerArgs);
  if (body.containerRegistryAuthId !== undefined) input.registryAuthId = body.containerRegistryAuthId || null;
  return input;
}

/** REST v1 `PodCreateInput` → pod input. */
export function fromV1Create(body: S.V1CreatePodT, nodes: Node[], ignored: Ignored): PodInput {
  const raw = body as Record<string, unknown>;
  ignored.unknown(raw, [...V1_CREATE_FIELDS, ...V1_CREATE_NOTED]);
  for (const f of V1_CREATE_NOTED) if (raw[f] !== undefined) ignored.add(f);
  const problems: Problem[] = [];
  const input = v1Common(body, problems);
  refuseIfTrue(problems, raw, 'interruptible', '/interruptible', NO_SPOT);
  if (body.cloudType !== undefined && body.cloudType !== 'SECURE') ignored.add('cloudType');
  checkDataCenters(body.dataCenterIds, nodes, '/dataCenterIds', problems);
  if (body.templateId !== undefined) input.templateId = body.templateId;
  if (body.networkVolumeId !== undefined) input.networkVolumeId = body.networkVolumeId;
  // The spec's default is GPU; a body that names only CPU flavours means a CPU pod.
  const cpu = body.computeType === 'CPU' || (body.computeType === undefined && body.cpuFlavorIds?.length && !body.gpuTypeIds?.length && body.gpuCount === undefined);
  if (cpu) {
    if (body.gpuTypeIds !== undefined) ignored.add('gpuTypeIds');
    if (body.gpuCount !== undefined) ignored.add('gpuCount');
    try {
      const { labels, ...reservation } = cpuReservation(body.cpuFlavorIds?.[0] ?? 'cpu3c', body.vcpuCount ?? 2, '/cpuFlavorIds(0)');
      Object.assign(input, reservation, { gpuTypeIds: [], labels });
    } catch (e) {
      problems.push(...(e as { problems: Problem[] }).problems);
    }
  } else {
    if (body.cpuFlavorIds !== undefined) ignored.add('cpuFlavorIds');
    if (body.vcpuCount !== undefined) ignored.add('vcpuCount');
    Object.assign(input, { gpuCount: body.gpuCount ?? 1, gpuTypeIds: body.gpuTypeIds ?? [], vcpuCount: null, memoryGb: null });
  }
  throwIf(problems);
  return input;
}

/** REST v1 `PodUpdateInput` → a partial pod input. */
export function fromV1Update(body: S.V1UpdatePodT, ignored: Ignored): PodInput {
  ignored.unknown(body as Record<string, unknown>, V1_COMMON);
  const problems: Problem[] = [];
  const input = v1Common(body, problems);
  throwIf(problems);
  return input;
}

export interface TemplateInput {
  name?: string;
  pod?: PodInput;
  readme?: string;
}

const NO_PUBLIC = 'Berth templates are visible to their owner (and admins) only';
const NO_SERVERLESS = 'Berth does not run RunPod Serverless';

/** REST v1 `TemplateCreateInput`/`TemplateUpdateInput` → template input; `current` is the template being updated. */
export function fromV1Template(body: S.V1TemplateT, ignored: Ignored, current?: Template): TemplateInput {
  const raw = body as Record<string, unknown>;
  ignored.unknown(raw, ['category', 'containerDiskInGb', 'containerRegistryAuthId', 'dockerEntrypoint', 'dockerStartCmd', 'env', 'imageName', 'isPublic', 'isServerless', 'name', 'ports', 'readme', 'volumeInGb', 'volumeMountPath']);
  const problems: Problem[] = [];
  refuseIfTrue(problems, raw, 'isPublic', '/isPublic', NO_PUBLIC);
  refuseIfTrue(problems, raw, 'isServerless', '/isServerless', NO_SERVERLESS);
  const pod: PodInput = {};
  if (body.imageName !== undefined) pod.image = body.imageName;
  if (body.containerDiskInGb !== undefined) pod.containerDiskGb = body.containerDiskInGb;
  if (body.containerRegistryAuthId !== undefined) pod.registryAuthId = body.containerRegistryAuthId || null;
  if (body.dockerEntrypoint !== undefined) pod.entrypoint = body.dockerEntrypoint;
  if (body.dockerStartCmd !== undefined) pod.command = body.dockerStartCmd;
  const env = v1Env(body.env);
  if (env) pod.env = env;
  if (body.ports !== undefined) pod.ports = body.ports;
  if (body.volumeInGb !== undefined) pod.volumeGb = body.volumeInGb;
  if (body.volumeMountPath !== undefined) pod.volumeMountPath = body.volumeMountPath;
  if (body.category !== undefined) pod.labels = { ...current?.pod.labels, [LABELS.category]: body.category };
  throwIf(problems);
  return { ...(body.name !== undefined ? { name: body.name } : {}), pod, ...(body.readme !== undefined ? { readme: body.readme } : {}) };
}

/** REST v2 `CreateTemplateRequest`/`UpdateTemplateRequest` → template input. */
export function fromV2Template(body: S.V2TemplateT, ignored: Ignored, current?: Template): TemplateInput {
  const raw = body as Record<string, unknown>;
  ignored.unknown(raw, ['name', 'image', 'args', 'disk', 'env', 'ports', 'registry', 'allowedCudaVersions', 'category', 'mounts', 'public', 'serverless', 'startJupyter', 'startSsh']);
  if (body.allowedCudaVersions?.length) ignored.add('allowedCudaVersions');
  const problems: Problem[] = [];
  refuseIfTrue(problems, raw, 'public', '/public', NO_PUBLIC);
  refuseIfTrue(problems, raw, 'serverless', '/serverless', NO_SERVERLESS);
  const pod: PodInput = {};
  if (body.image !== undefined) pod.image = body.image;
  if (body.args !== undefined) pod.command = splitArgs(body.args);
  if (body.disk !== undefined) pod.containerDiskGb = body.disk;
  if (body.env !== undefined) pod.env = body.env;
  if (body.ports !== undefined) pod.ports = body.ports;
  if (body.registry !== undefined) pod.registryAuthId = body.registry;
  if (body.mounts?.persistent) Object.assign(pod, { volumeGb: body.mounts.persistent.size, volumeMountPath: body.mounts.persistent.path });
  else if (!current) pod.volumeGb = 0;
  // RunPod's template defaults: startSsh and startJupyter on, as console-made templates have them.
  const startSsh = body.startSsh ?? (current ? undefined : true);
  if (startSsh !== undefined) pod.startSsh = startSsh;
  const labels: Record<string, string> = { ...current?.pod.labels };
  const startJupyter = body.startJupyter ?? (current ? undefined : true);
  if (startJupyter !== undefined) labels[LABELS.startJupyter] = String(startJupyter);
  if (body.category !== undefined) labels[LABELS.category] = body.category;
  if (Object.keys(labels).length) pod.labels = labels;
  throwIf(problems);
  return { ...(body.name !== undefined ? { name: body.name } : {}), pod };
}
