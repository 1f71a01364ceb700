import type { NetworkVolumeId, RegistryAuthId, TemplateId } from './ids.js';
import { invalid, type Problem } from './errors.js';

export type PortProtocol = 'http' | 'tcp';
export interface PortSpec {
  port: number;
  protocol: PortProtocol;
  /** An http port only the owner reaches through the proxy (`8888/http:private`); absent: public, as on RunPod. */
  private?: true;
}

export interface VolumeMount {
  /** `volume-disk`, `network-volume`, or a pod volume's name. */
  name: string;
  mountPath: string;
  readOnly: boolean;
}

export interface ContainerSpec {
  name: string;
  image: string;
  /** Empty: the image's ENTRYPOINT. */
  entrypoint: string[];
  /** Empty: the image's CMD. */
  command: string[];
  env: Record<string, string>;
  ports: PortSpec[];
}

export type RestartPolicy = 'always' | 'on-failure' | 'never';

export interface BackoffPolicy {
  initialSeconds: number;
  factor: number;
  maxSeconds: number;
}

/** A compiled, fully defaulted pod spec: what the store keeps per version and the agent runs. */
export interface PodSpec {
  name: string;
  containers: ContainerSpec[];
  /** 0: a CPU-only pod. */
  gpuCount: number;
  /** Acceptable GPU types in order of preference; empty: any. */
  gpuTypeIds: string[];
  /** CPUs reserved on the node and enforced as a limit; null: no reservation, no limit. */
  vcpuCount: number | null;
  /** Memory reserved and enforced as a limit, in GB; null: no reservation, no limit. */
  memoryGb: number | null;
  containerDiskGb: number;
  /** The volume disk; 0: none. */
  volumeGb: number;
  volumeMountPath: string;
  /** Mounted at `volumeMountPath` in place of the volume disk. */
  networkVolumeId: NetworkVolumeId | null;
  registryAuthId: RegistryAuthId | null;
  templateId: TemplateId | null;
  /** Put the owner's SSH keys in PUBLIC_KEY, as RunPod's `startSsh`. */
  startSsh: boolean;
  restartPolicy: RestartPolicy;
  instances: number;
  labels: Record<string, string>;
  backoff: BackoffPolicy;
}

/** The friendly form the native API, CLI and templates take. Every field is optional. */
export interface PodInput {
  name?: string;
  image?: string;
  entrypoint?: string[];
  command?: string[];
  env?: Record<string, string>;
  /** `["8888/http", "22/tcp"]` or RunPod's `"8888/http,22/tcp"`. */
  ports?: string[] | string;
  containers?: ContainerInput[];
  gpuCount?: number;
  gpuTypeIds?: string[];
  vcpuCount?: number | null;
  memoryGb?: number | null;
  containerDiskGb?: number;
  volumeGb?: number;
  volumeMountPath?: string;
  networkVolumeId?: string | null;
  registryAuthId?: string | null;
  templateId?: string | null;
  startSsh?: boolean;
  restartPolicy?: RestartPolicy;
  instances?: number;
  labels?: Record<string, string>;
}

export interface ContainerInput {
  name?: string;
  image?: string;
  entrypoint?: string[];
  command?: string[];
  env?: Record<string, string>;
  ports?: string[] | string;
}

/** @default values a pod gets when the request leaves a field out (RunPod's, where it has one). */
export const POD_DEFAULTS = {
  name: 'my pod',
  containerDiskGb: 50,
  volumeGb: 20,
  volumeMountPath: '/workspace',
  restartPolicy: 'always' as RestartPolicy,
  startSsh: true,
  instances: 1,
  /** As Marathon: 1 s, ×1.15, at most 300 s. */
  backoff: { initialSeconds: 1, factor: 1.15, maxSeconds: 300 },
};

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const CONTAINER_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const IMAGE_REF = /^[A-Za-z0-9][A-Za-z0-9._\-/:@+]*$/;
const PORT_SPEC = /^(\d{1,5})\/(http|tcp)(?::(private|public))?$/;

/** Parses `8888/http` (or `8888/http:private`); returns a message when it is not one. */
export function parsePort(text: string): PortSpec | string {
  const m = PORT_SPEC.exec(text.trim());
  if (!m) return `"${text}" is not a port: write it as <port>/http, <port>/http:private or <port>/tcp`;
  const port = Number(m[1]);
  if (port < 1 || port > 65535) return `port ${port} is out of range 1-65535`;
  const protocol = m[2] as PortProtocol;
  if (m[3] === 'private' && protocol !== 'http') return `port ${port}: only http ports can be private (the proxy checks the key; a TCP port is reached directly)`;
  return m[3] === 'private' ? { port, protocol, private: true } : { port, protocol };
}

export const formatPort = (p: PortSpec): string => `${p.port}/${p.protocol}${p.private ? ':private' : ''}`;

/**
 * Template fields merged under a request: env merges per key, any other field the request gives wins.
 * A request in one form (`image` or `containers`) replaces the template's other form; a template's
 * env then goes under each requested container's own.
 */
export function mergeTemplate(template: PodInput, request: PodInput): PodInput {
  const merged: PodInput = { ...template };
  if (request.containers !== undefined) {
    for (const f of ['image', 'entrypoint', 'command', 'ports', 'env'] as const) delete merged[f];
  }
  if (request.image !== undefined) delete merged.containers;
  for (const [k, v] of Object.entries(request) as [keyof PodInput, unknown][]) {
    if (v !== undefined) (merged as Record<string, unknown>)[k] = v;
  }
  if (request.containers !== undefined && template.env) {
    merged.containers = request.containers.map((c) => ({ ...c, env: { ...template.env, ...c.env } }));
  } else if (template.env || request.env) {
    merged.env = { ...template.env, ...request.env };
  }
  return merged;
}

class Checker {
  readonly problems: Problem[] = [];
  add(path: string, message: string): void {
    this.problems.push({ path, message });
  }
  int(path: string, v: unknown, min: number, max: number): v is number {
    if (typeof v !== 'number' || !Number.isInteger(v)) this.add(path, 'must be a whole number');
    else if (v < min || v > max) this.add(path, `must be between ${min} and ${max}`);
    else return true;
    return false;
  }
  num(path: string, v: unknown, min: number, max: number): v is number {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.add(path, 'must be a number');
    else if (v < min || v > max) this.add(path, `must be between ${min} and ${max}`);
    else return true;
    return false;
  }
  strings(path: string, v: unknown): v is string[] {
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
      this.add(path, 'must be a list of strings');
      return false;
    }
    return true;
  }
  env(path: string, v: unknown): Record<string, string> {
    if (v === undefined) return {};
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      this.add(path, 'must be an object of string values');
      return {};
    }
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(v)) {
      if (!ENV_KEY.test(k)) this.add(`${path}/${k}`, 'is not a valid variable name (letters, digits, _; not starting with a digit)');
      else if (typeof val !== 'string') this.add(`${path}/${k}`, 'must be a string');
      else out[k] = val;
    }
    return out;
  }
  ports(path: string, v: unknown): PortSpec[] {
    if (v === undefined || v === '') return [];
    const given = typeof v === 'string' ? [v] : v;
    if (!this.strings(path, given)) return [];
    // RunPod writes "8888/http,22/tcp"; a schema layer may already have wrapped that in a list.
    const list = given.flatMap((s) => s.split(',')).filter((s) => s.trim() !== '');
    const out: PortSpec[] = [];
    list.forEach((text, i) => {
      const p = parsePort(text);
      if (typeof p === 'string') this.add(`${path}(${i})`, p);
      else if (out.some((q) => q.port === p.port)) this.add(`${path}(${i})`, `port ${p.port} is listed twice`);
      else out.push(p);
    });
    return out;
  }
}

function compileContainer(c: Checker, path: string, input: ContainerInput, fallbackName: string): ContainerSpec {
  const name = input.name ?? fallbackName;
  if (typeof name !== 'string' || name.length > 63 || !CONTAINER_NAME.test(name)) {
    c.add(`${path}/name`, 'must be 1-63 lowercase letters, digits or -, starting and ending with a letter or digit');
  }
  if (input.image === undefined || input.image === '') c.add(`${path}/image`, 'is required');
  else if (typeof input.image !== 'string' || !IMAGE_REF.test(input.image)) c.add(`${path}/image`, 'is not an image reference');
  const entrypoint = input.entrypoint ?? [];
  const command = input.command ?? [];
  c.strings(`${path}/entrypoint`, entrypoint);
  c.strings(`${path}/command`, command);
  return {
    name: String(name),
    image: String(input.image ?? ''),
    entrypoint,
    command,
    env: c.env(`${path}/env`, input.env),
    ports: c.ports(`${path}/ports`, input.ports),
  };
}

/** Compiles friendly input into a full spec, or throws a VALIDATION error listing every problem. */
export function compilePodSpec(input: PodInput): PodSpec {
  const c = new Checker();
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw invalid([{ path: '/', message: 'must be an object' }]);

  const name = input.name ?? POD_DEFAULTS.name;
  if (typeof name !== 'string' || name.length < 1 || name.length > 128) c.add('/name', 'must be 1-128 characters');

  let containers: ContainerSpec[];
  if (input.containers !== undefined) {
    for (const field of ['image', 'entrypoint', 'command', 'env', 'ports'] as const) {
      if (input[field] !== undefined) c.add(`/${field}`, `set ${field} on each container when giving containers`);
    }
    if (!Array.isArray(input.containers) || input.containers.length === 0) {
      c.add('/containers', 'must list at least one container');
      containers = [];
    } else {
      containers = input.containers.map((ci, i) => compileContainer(c, `/containers(${i})`, ci ?? {}, `c${i}`));
      const seen = new Set<string>();
      containers.forEach((ct, i) => {
        if (seen.has(ct.name)) c.add(`/containers(${i})/name`, `container name ${ct.name} is used twice`);
        seen.add(ct.name);
      });
      const ports = new Set<number>();
      containers.forEach((ct, i) =>
        ct.ports.forEach((p) => {
          if (ports.has(p.port)) c.add(`/containers(${i})/ports`, `port ${p.port} is used by another container of the pod`);
          ports.add(p.port);
        }),
      );
    }
  } else {
    const single = compileContainer(c, '', { name: 'main', image: input.image, entrypoint: input.entrypoint, command: input.command, env: input.env, ports: input.ports }, 'main');
    containers = [single];
  }

  const gpuCount = input.gpuCount ?? 0;
  c.int('/gpuCount', gpuCount, 0, 64);
  const gpuTypeIds = input.gpuTypeIds ?? [];
  c.strings('/gpuTypeIds', gpuTypeIds);
  const vcpuCount = input.vcpuCount ?? null;
  if (vcpuCount !== null) c.num('/vcpuCount', vcpuCount, 0.01, 1024);
  const memoryGb = input.memoryGb ?? null;
  if (memoryGb !== null) c.num('/memoryGb', memoryGb, 0.0625, 16384);
  const containerDiskGb = input.containerDiskGb ?? POD_DEFAULTS.containerDiskGb;
  c.int('/containerDiskGb', containerDiskGb, 1, 65536);
  const volumeGb = input.volumeGb ?? POD_DEFAULTS.volumeGb;
  c.int('/volumeGb', volumeGb, 0, 65536);
  const volumeMountPath = input.volumeMountPath ?? POD_DEFAULTS.volumeMountPath;
  if (typeof volumeMountPath !== 'string' || !volumeMountPath.startsWith('/') || volumeMountPath === '/') {
    c.add('/volumeMountPath', 'must be an absolute path other than /');
  }
  const restartPolicy = input.restartPolicy ?? POD_DEFAULTS.restartPolicy;
  if (!['always', 'on-failure', 'never'].includes(restartPolicy)) c.add('/restartPolicy', 'must be always, on-failure or never');
  const instances = input.instances ?? POD_DEFAULTS.instances;
  c.int('/instances', instances, 0, 1000);
  const startSsh = input.startSsh ?? POD_DEFAULTS.startSsh;
  if (typeof startSsh !== 'boolean') c.add('/startSsh', 'must be true or false');
  const labels = c.env('/labels', input.labels);
  const optionalId = (path: string, v: unknown): string | null => {
    if (v === undefined || v === null || v === '') return null;
    if (typeof v !== 'string') {
      c.add(path, 'must be a string');
      return null;
    }
    return v;
  };

  const networkVolumeId = optionalId('/networkVolumeId', input.networkVolumeId) as NetworkVolumeId | null;
  const registryAuthId = optionalId('/registryAuthId', input.registryAuthId) as RegistryAuthId | null;
  const templateId = optionalId('/templateId', input.templateId) as TemplateId | null;
  if (c.problems.length > 0) throw invalid(c.problems);
  return {
    name,
    containers,
    gpuCount,
    gpuTypeIds,
    vcpuCount,
    memoryGb,
    containerDiskGb,
    volumeGb,
    volumeMountPath,
    networkVolumeId,
    registryAuthId,
    templateId,
    startSsh,
    restartPolicy,
    instances,
    labels,
    backoff: { ...POD_DEFAULTS.backoff },
  };
}

/** The friendly form of a spec, so an update can merge a partial input over what the pod has. */
export function specToInput(spec: PodSpec): PodInput {
  const base: PodInput = {
    name: spec.name,
    gpuCount: spec.gpuCount,
    gpuTypeIds: spec.gpuTypeIds,
    vcpuCount: spec.vcpuCount,
    memoryGb: spec.memoryGb,
    containerDiskGb: spec.containerDiskGb,
    volumeGb: spec.volumeGb,
    volumeMountPath: spec.volumeMountPath,
    networkVolumeId: spec.networkVolumeId,
    registryAuthId: spec.registryAuthId,
    templateId: spec.templateId,
    startSsh: spec.startSsh,
    restartPolicy: spec.restartPolicy,
    instances: spec.instances,
    labels: spec.labels,
  };
  const [only] = spec.containers;
  if (spec.containers.length === 1 && only && only.name === 'main') {
    return { ...base, image: only.image, entrypoint: only.entrypoint, command: only.command, env: only.env, ports: only.ports.map(formatPort) };
  }
  return { ...base, containers: spec.containers.map((ct) => ({ ...ct, ports: ct.ports.map(formatPort) })) };
}

/** All ports of the pod, over its containers. */
export const podPorts = (spec: PodSpec): PortSpec[] => spec.containers.flatMap((c) => c.ports);
