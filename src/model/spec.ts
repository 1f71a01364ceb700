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

/**
 * A named port of a container (Marathon's endpoint). With bridge networking the container port is
 * published on a host port; with host networking the container listens on the allocated host port.
 */
export interface EndpointSpec {
  name: string;
  /** null: none (host networking: the container listens on the host port). */
  containerPort: number | null;
  /** null: not asked for; 0: any free port of the node; else exactly that port. */
  hostPort: number | null;
  /** Free-form, as Marathon (`tcp`, `udp`, `http`); `http` makes it reachable through the proxy. */
  protocols: string[];
  labels: Record<string, string>;
}

export interface HealthCheckSpec {
  kind: 'http' | 'tcp' | 'exec';
  /** http/tcp: the name of one of this container's endpoints. */
  endpoint: string | null;
  /** http: the request path. */
  path: string | null;
  scheme: 'HTTP' | 'HTTPS';
  /** exec: argv; a shell command is `['/bin/sh', '-c', command]`. */
  argv: string[];
  /** Failures are not counted until this long after the start, or until the first success. */
  gracePeriodSeconds: number;
  intervalSeconds: number;
  timeoutSeconds: number;
  /** This many failures in a row replace the instance; 0: never. */
  maxConsecutiveFailures: number;
  /** The first check runs this long after the start. */
  delaySeconds: number;
}

/** What one container may use; null: no limit of its own (the pod's `vcpuCount`/`memoryGb` apply). */
export interface ContainerResources {
  cpus: number | null;
  memoryMb: number | null;
  gpus: number;
  diskMb: number;
}

export interface ContainerSpec {
  name: string;
  image: string;
  /** Empty: the image's ENTRYPOINT. */
  entrypoint: string[];
  /** Empty: the image's CMD. */
  command: string[];
  env: Record<string, string>;
  /** Env vars whose value is a secret of the pod: variable → name in `PodSpec.secrets`. */
  secretEnv: Record<string, string>;
  ports: PortSpec[];
  endpoints: EndpointSpec[];
  resources: ContainerResources;
  /** Mounts of the pod's `volumes` by name. */
  volumeMounts: VolumeMount[];
  healthCheck: HealthCheckSpec | null;
  /** Run as this user (name or uid[:gid]); null: the image's. */
  user: string | null;
  tty: boolean;
  /** Seconds between SIGTERM and SIGKILL; null: the node's default. */
  killGracePeriodSeconds: number | null;
  labels: Record<string, string>;
}

/** A volume of the pod, mounted by its containers' `volumeMounts`. */
export type PodVolume =
  /** Lives as long as the instance; shared by its containers. */
  | { name: string; kind: 'ephemeral' }
  /** A directory of the node, only under the paths the operator allows. */
  | { name: string; kind: 'host'; hostPath: string }
  /** A volume on the node that outlives the instance's containers; the pod stays on its node. */
  | { name: string; kind: 'persistent'; sizeMb: number }
  /** One file holding the value of a pod secret. */
  | { name: string; kind: 'secret'; secret: string };

export type NetworkMode = 'bridge' | 'host' | 'container';

export interface NetworkSpec {
  /** `bridge`: the node's Docker bridge with published ports (RunPod pods, Marathon `container/bridge`); `host`: the node's own network; `container`: a named Docker network. */
  mode: NetworkMode;
  /** `container` mode: the Docker network to join; null: the default bridge. */
  name: string | null;
}

export const CONSTRAINT_OPERATORS = ['UNIQUE', 'CLUSTER', 'GROUP_BY', 'LIKE', 'UNLIKE', 'MAX_PER', 'IS'] as const;
export type ConstraintOperator = (typeof CONSTRAINT_OPERATORS)[number];

/** A placement rule on a node field: `hostname` (the node name) or one of the node's labels. */
export interface Constraint {
  field: string;
  operator: ConstraintOperator;
  value: string | null;
}

export interface UpgradePolicy {
  /** Share of instances that must stay healthy during a rollout (0..1). */
  minimumHealthCapacity: number;
  /** Share of extra instances a rollout may start beside the old ones (0..1). */
  maximumOverCapacity: number;
}

/**
 * How the pod was defined through the Marathon API: its path id and the normalized definition it
 * answers with. A change through another API drops the definition (it would show the spec before the
 * change); the Marathon API then writes one from the spec.
 */
export interface MarathonMeta {
  id: string;
  definition?: Record<string, unknown>;
}

export type RestartPolicy = 'always' | 'on-failure' | 'never';

/**
 * When an instance gets a container of its own that holds its network namespace, host name and
 * published ports, the app containers joining it: only when several containers share them
 * (`multi-container`), or `always`, one container or many (Marathon's layout).
 */
export type NetworkHolder = 'always' | 'multi-container';

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
  volumes: PodVolume[];
  network: NetworkSpec;
  /** Secrets the pod uses: its own name → the name in Berth's secret store. Values never live in a spec. */
  secrets: Record<string, string>;
  constraints: Constraint[];
  upgrade: UpgradePolicy;
  killSelection: 'YOUNGEST_FIRST' | 'OLDEST_FIRST';
  /** Set for pods defined through /marathon/v2; null otherwise. */
  marathon: MarathonMeta | null;
  /**
   * Whether one container's network is held apart too (see `holdsNetworkApart`); kept by updates.
   * Absent: `multi-container` (left out so that specs without it read as before).
   */
  networkHolder?: NetworkHolder;
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
  backoff?: Partial<BackoffPolicy>;
  volumes?: PodVolume[];
  network?: Partial<NetworkSpec>;
  secrets?: Record<string, string>;
  constraints?: (Omit<Constraint, 'value'> & { value?: string | null })[];
  upgrade?: Partial<UpgradePolicy>;
  killSelection?: 'YOUNGEST_FIRST' | 'OLDEST_FIRST';
  marathon?: MarathonMeta | null;
  /** @default multi-container */
  networkHolder?: NetworkHolder;
}

export interface ContainerInput {
  name?: string;
  image?: string;
  entrypoint?: string[];
  command?: string[];
  env?: Record<string, string>;
  secretEnv?: Record<string, string>;
  ports?: string[] | string;
  endpoints?: (Partial<EndpointSpec> & { name: string })[];
  resources?: Partial<ContainerResources>;
  volumeMounts?: (Omit<VolumeMount, 'readOnly'> & { readOnly?: boolean })[];
  healthCheck?: (Partial<HealthCheckSpec> & { kind: HealthCheckSpec['kind'] }) | null;
  user?: string | null;
  tty?: boolean;
  killGracePeriodSeconds?: number | null;
  labels?: Record<string, string>;
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
  network: { mode: 'bridge' as NetworkMode, name: null },
  /** As Marathon: a rollout keeps every instance until its replacement is healthy, and may double the pod meanwhile. */
  upgrade: { minimumHealthCapacity: 1, maximumOverCapacity: 1 },
  killSelection: 'YOUNGEST_FIRST' as const,
  /** As Marathon's health check defaults. */
  healthCheck: { gracePeriodSeconds: 300, intervalSeconds: 60, timeoutSeconds: 20, maxConsecutiveFailures: 3, delaySeconds: 15 },
};

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
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
  /** Env: keys are variable names. */
  env(path: string, v: unknown): Record<string, string> {
    return this.stringMap(path, v, (k) => (ENV_KEY.test(k) ? null : 'is not a valid variable name (letters, digits, _; not starting with a digit)'));
  }
  /** Labels and secret names: any non-empty key (Docker labels take dots and slashes). */
  labels(path: string, v: unknown): Record<string, string> {
    return this.stringMap(path, v, (k) => (k !== '' && k.length <= 255 ? null : 'must be 1-255 characters'));
  }
  private stringMap(path: string, v: unknown, keyProblem: (k: string) => string | null): Record<string, string> {
    if (v === undefined) return {};
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      this.add(path, 'must be an object of string values');
      return {};
    }
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(v)) {
      const problem = keyProblem(k);
      if (problem) this.add(`${path}/${k}`, problem);
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

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const isName = (v: unknown): v is string => typeof v === 'string' && v.length <= 63 && NAME.test(v);
const NAME_RULE = 'must be 1-63 lowercase letters, digits or -, starting and ending with a letter or digit';
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function compileEndpoints(c: Checker, path: string, v: unknown): EndpointSpec[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    c.add(path, 'must be a list');
    return [];
  }
  return v.map((e: unknown, i): EndpointSpec => {
    const p = `${path}(${i})`;
    const ep = isRecord(e) ? e : {};
    if (!isName(ep.name)) c.add(`${p}/name`, NAME_RULE);
    const containerPort = ep.containerPort ?? null;
    if (containerPort !== null) c.int(`${p}/containerPort`, containerPort, 0, 65535);
    const hostPort = ep.hostPort ?? null;
    if (hostPort !== null) c.int(`${p}/hostPort`, hostPort, 0, 65535);
    const protocols = ep.protocols ?? ['tcp'];
    c.strings(`${p}/protocols`, protocols);
    return {
      name: String(ep.name),
      containerPort: containerPort === 0 ? null : (containerPort as number | null),
      hostPort: hostPort as number | null,
      protocols: protocols as string[],
      labels: c.labels(`${p}/labels`, ep.labels),
    };
  });
}

function compileHealthCheck(c: Checker, path: string, v: unknown, endpoints: EndpointSpec[]): HealthCheckSpec | null {
  if (v === undefined || v === null) return null;
  if (!isRecord(v)) {
    c.add(path, 'must be an object');
    return null;
  }
  const d = POD_DEFAULTS.healthCheck;
  const kind = v.kind;
  if (kind !== 'http' && kind !== 'tcp' && kind !== 'exec') c.add(`${path}/kind`, 'must be http, tcp or exec');
  const endpoint = (v.endpoint as string | null | undefined) ?? null;
  if ((kind === 'http' || kind === 'tcp') && !endpoints.some((e) => e.name === endpoint)) c.add(`${path}/endpoint`, "must name one of this container's endpoints");
  const argv = (v.argv as string[] | undefined) ?? [];
  if (kind === 'exec' && (!c.strings(`${path}/argv`, argv) || argv.length === 0)) c.add(`${path}/argv`, 'must give the command to run');
  const num = (k: keyof typeof d): number => {
    const x = v[k] ?? d[k];
    c.int(`${path}/${k}`, x, 0, 86_400);
    return x as number;
  };
  const out: HealthCheckSpec = {
    kind: kind as HealthCheckSpec['kind'],
    endpoint,
    path: (v.path as string | null | undefined) ?? (kind === 'http' ? '/' : null),
    scheme: v.scheme === 'HTTPS' ? 'HTTPS' : 'HTTP',
    argv,
    gracePeriodSeconds: num('gracePeriodSeconds'),
    intervalSeconds: num('intervalSeconds'),
    timeoutSeconds: num('timeoutSeconds'),
    maxConsecutiveFailures: num('maxConsecutiveFailures'),
    delaySeconds: num('delaySeconds'),
  };
  if (out.intervalSeconds < 1) c.add(`${path}/intervalSeconds`, 'must be at least 1');
  if (out.timeoutSeconds >= out.intervalSeconds) c.add(`${path}/timeoutSeconds`, 'must be less than intervalSeconds');
  return out;
}

function compileResources(c: Checker, path: string, v: unknown): ContainerResources {
  const r = isRecord(v) ? v : {};
  if (v !== undefined && !isRecord(v)) c.add(path, 'must be an object');
  const cpus = (r.cpus as number | null | undefined) ?? null;
  if (cpus !== null) c.num(`${path}/cpus`, cpus, 0.001, 1024);
  const memoryMb = (r.memoryMb as number | null | undefined) ?? null;
  if (memoryMb !== null) c.num(`${path}/memoryMb`, memoryMb, 6, 16 * 2 ** 20);
  const gpus = (r.gpus as number | undefined) ?? 0;
  c.int(`${path}/gpus`, gpus, 0, 64);
  const diskMb = (r.diskMb as number | undefined) ?? 0;
  c.num(`${path}/diskMb`, diskMb, 0, 2 ** 40);
  return { cpus, memoryMb, gpus, diskMb };
}

function compileContainer(c: Checker, path: string, input: ContainerInput, fallbackName: string): ContainerSpec {
  const name = input.name ?? fallbackName;
  if (!isName(name)) c.add(`${path}/name`, NAME_RULE);
  if (input.image === undefined || input.image === '') c.add(`${path}/image`, 'is required');
  else if (typeof input.image !== 'string' || !IMAGE_REF.test(input.image)) c.add(`${path}/image`, 'is not an image reference');
  const entrypoint = input.entrypoint ?? [];
  const command = input.command ?? [];
  c.strings(`${path}/entrypoint`, entrypoint);
  c.strings(`${path}/command`, command);
  const endpoints = compileEndpoints(c, `${path}/endpoints`, input.endpoints);
  const volumeMounts = (input.volumeMounts ?? []).map((m, i): VolumeMount => {
    const p = `${path}/volumeMounts(${i})`;
    if (!isRecord(m) || typeof m.name !== 'string' || m.name === '') c.add(`${p}/name`, 'must name a volume of the pod');
    if (!isRecord(m) || typeof m.mountPath !== 'string' || !m.mountPath.startsWith('/')) c.add(`${p}/mountPath`, 'must be an absolute path');
    return { name: String(m?.name), mountPath: String(m?.mountPath), readOnly: m?.readOnly === true };
  });
  const kill = input.killGracePeriodSeconds ?? null;
  if (kill !== null) c.num(`${path}/killGracePeriodSeconds`, kill, 0, 3600);
  const user = input.user ?? null;
  if (user !== null && (typeof user !== 'string' || user === '')) c.add(`${path}/user`, 'must not be empty');
  return {
    name: String(name),
    image: String(input.image ?? ''),
    entrypoint,
    command,
    env: c.env(`${path}/env`, input.env),
    secretEnv: c.env(`${path}/secretEnv`, input.secretEnv),
    ports: c.ports(`${path}/ports`, input.ports),
    endpoints,
    resources: compileResources(c, `${path}/resources`, input.resources),
    volumeMounts,
    healthCheck: compileHealthCheck(c, `${path}/healthCheck`, input.healthCheck, endpoints),
    user,
    tty: input.tty === true,
    killGracePeriodSeconds: kill,
    labels: c.labels(`${path}/labels`, input.labels),
  };
}

function compileVolumes(c: Checker, v: unknown, secrets: Record<string, string>): PodVolume[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    c.add('/volumes', 'must be a list');
    return [];
  }
  const seen = new Set<string>();
  return v.map((x: unknown, i): PodVolume => {
    const p = `/volumes(${i})`;
    const vol = (isRecord(x) ? x : {}) as Record<string, unknown>;
    const name = String(vol.name ?? '');
    if (!isName(name)) c.add(`${p}/name`, NAME_RULE);
    if (seen.has(name)) c.add(`${p}/name`, `volume name ${name} is used twice`);
    seen.add(name);
    switch (vol.kind) {
      case 'ephemeral':
        return { name, kind: 'ephemeral' };
      case 'host':
        if (typeof vol.hostPath !== 'string' || !vol.hostPath.startsWith('/')) c.add(`${p}/hostPath`, 'must be an absolute path on the node');
        return { name, kind: 'host', hostPath: String(vol.hostPath) };
      case 'persistent':
        c.int(`${p}/sizeMb`, vol.sizeMb, 1, 2 ** 30);
        return { name, kind: 'persistent', sizeMb: Number(vol.sizeMb) };
      case 'secret':
        if (typeof vol.secret !== 'string' || !(vol.secret in secrets)) c.add(`${p}/secret`, 'must name a secret of the pod');
        return { name, kind: 'secret', secret: String(vol.secret) };
      default:
        c.add(`${p}/kind`, 'must be ephemeral, host, persistent or secret');
        return { name, kind: 'ephemeral' };
    }
  });
}

function compileConstraints(c: Checker, v: unknown): Constraint[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    c.add('/constraints', 'must be a list');
    return [];
  }
  return v.map((x: unknown, i): Constraint => {
    const k = (isRecord(x) ? x : {}) as Record<string, unknown>;
    const p = `/constraints(${i})`;
    if (typeof k.field !== 'string' || k.field === '') c.add(`${p}/field`, 'missing field for constraint declaration');
    if (!CONSTRAINT_OPERATORS.includes(k.operator as ConstraintOperator)) c.add(`${p}/operator`, `must be one of ${CONSTRAINT_OPERATORS.join(', ')}`);
    const value = k.value === undefined || k.value === null ? null : String(k.value);
    const op = k.operator as ConstraintOperator;
    if (op === 'UNIQUE' && value !== null) c.add(`${p}/value`, 'UNIQUE does not accept a value');
    if ((op === 'LIKE' || op === 'UNLIKE') && !value) c.add(`${p}/value`, `${op} requires a value`);
    if ((op === 'LIKE' || op === 'UNLIKE') && value) {
      try {
        new RegExp(`^(?:${value})$`);
      } catch {
        c.add(`${p}/value`, `'${value}' is not a valid regular expression`);
      }
    }
    if (op === 'MAX_PER' && !(value && /^\d+$/.test(value))) c.add(`${p}/value`, 'MAX_PER requires an integer value');
    if (op === 'GROUP_BY' && value !== null && !/^\d+$/.test(value)) c.add(`${p}/value`, 'GROUP BY must define an integer value or else no value at all');
    return { field: String(k.field), operator: op, value };
  });
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
  // Containers that ask for GPUs of their own get them from the pod's: there must be enough.
  const asked = containers.reduce((t, ct) => t + (ct.resources?.gpus ?? 0), 0);
  if (Number.isInteger(gpuCount) && gpuCount >= 0 && asked > gpuCount) c.add('/gpuCount', `the containers ask for ${asked} GPUs together; the pod must have at least that many (gpuCount ${gpuCount})`);
  const gpuTypeIds = input.gpuTypeIds ?? [];
  c.strings('/gpuTypeIds', gpuTypeIds);
  const vcpuCount = input.vcpuCount ?? null;
  if (vcpuCount !== null) c.num('/vcpuCount', vcpuCount, 0.01, 1024);
  const memoryGb = input.memoryGb ?? null;
  if (memoryGb !== null) c.num('/memoryGb', memoryGb, 6 / 1024, 16384);
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
  const labels = c.labels('/labels', input.labels);
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

  const secrets = c.labels('/secrets', input.secrets);
  const volumes = compileVolumes(c, input.volumes, secrets);
  containers.forEach((ct, i) => {
    ct.volumeMounts.forEach((m, j) => {
      if (m.name !== 'volume-disk' && m.name !== 'network-volume' && !volumes.some((v) => v.name === m.name)) c.add(`/containers(${i})/volumeMounts(${j})/name`, `no volume ${m.name} in the pod`);
    });
    for (const [k, ref] of Object.entries(ct.secretEnv)) if (!(ref in secrets)) c.add(`/containers(${i})/secretEnv/${k}`, `no secret ${ref} in the pod`);
  });
  const endpointNames = new Set<string>();
  containers.forEach((ct, i) =>
    ct.endpoints.forEach((e, j) => {
      if (endpointNames.has(e.name)) c.add(`/containers(${i})/endpoints(${j})/name`, `endpoint ${e.name} is used twice in the pod`);
      endpointNames.add(e.name);
    }),
  );
  const network: NetworkSpec = { ...POD_DEFAULTS.network, ...input.network };
  if (!['bridge', 'host', 'container'].includes(network.mode)) c.add('/network/mode', 'must be bridge, host or container');
  if (network.name !== null && typeof network.name !== 'string') c.add('/network/name', 'must be a string');
  const backoff = { ...POD_DEFAULTS.backoff, ...input.backoff };
  c.num('/backoff/initialSeconds', backoff.initialSeconds, 0, 86_400);
  c.num('/backoff/factor', backoff.factor, 0, 100);
  c.num('/backoff/maxSeconds', backoff.maxSeconds, 0, 86_400);
  const upgrade = { ...POD_DEFAULTS.upgrade, ...input.upgrade };
  c.num('/upgrade/minimumHealthCapacity', upgrade.minimumHealthCapacity, 0, 1);
  c.num('/upgrade/maximumOverCapacity', upgrade.maximumOverCapacity, 0, 1);
  const killSelection = input.killSelection ?? POD_DEFAULTS.killSelection;
  if (killSelection !== 'YOUNGEST_FIRST' && killSelection !== 'OLDEST_FIRST') c.add('/killSelection', 'must be YOUNGEST_FIRST or OLDEST_FIRST');
  const constraints = compileConstraints(c, input.constraints);
  const networkHolder = input.networkHolder;
  if (networkHolder !== undefined && networkHolder !== 'always' && networkHolder !== 'multi-container') c.add('/networkHolder', 'must be always or multi-container');
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
    backoff,
    volumes,
    network,
    secrets,
    constraints,
    upgrade,
    killSelection,
    marathon: input.marathon ?? null,
    ...(networkHolder !== undefined ? { networkHolder } : {}),
  };
}

/**
 * Whether an instance's network namespace, host name and published ports are held by a container
 * of their own that the app containers join, rather than by its one app container.
 */
export const holdsNetworkApart = (spec: PodSpec): boolean => spec.networkHolder === 'always' || spec.containers.length > 1;

/** Fills the fields a spec written by an older Berth lacks, so every reader sees the whole shape. */
export function normalizeSpec(spec: PodSpec): PodSpec {
  const s = spec as Partial<PodSpec> & Pick<PodSpec, 'containers'>;
  if (s.marathon !== undefined && (s.marathon === null || s.networkHolder !== undefined) && s.containers.every((ct) => ct.resources !== undefined)) return spec;
  return {
    ...spec,
    volumes: s.volumes ?? [],
    network: s.network ?? { ...POD_DEFAULTS.network },
    secrets: s.secrets ?? {},
    constraints: s.constraints ?? [],
    upgrade: s.upgrade ?? { ...POD_DEFAULTS.upgrade },
    killSelection: s.killSelection ?? POD_DEFAULTS.killSelection,
    marathon: s.marathon ?? null,
    // Reads stored data: before the field, every pod defined through /marathon/v2 held its network apart.
    ...(s.networkHolder !== undefined || s.marathon ? { networkHolder: s.networkHolder ?? 'always' } : {}),
    containers: s.containers.map((ct) => ({
      ...ct,
      secretEnv: ct.secretEnv ?? {},
      endpoints: ct.endpoints ?? [],
      resources: ct.resources ?? { cpus: null, memoryMb: null, gpus: 0, diskMb: 0 },
      volumeMounts: ct.volumeMounts ?? [],
      healthCheck: ct.healthCheck ?? null,
      user: ct.user ?? null,
      tty: ct.tty ?? false,
      killGracePeriodSeconds: ct.killGracePeriodSeconds ?? null,
      labels: ct.labels ?? {},
    })),
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
    backoff: spec.backoff,
    volumes: spec.volumes,
    network: spec.network,
    secrets: spec.secrets,
    constraints: spec.constraints,
    upgrade: spec.upgrade,
    killSelection: spec.killSelection,
    marathon: spec.marathon,
    ...(spec.networkHolder !== undefined ? { networkHolder: spec.networkHolder } : {}),
  };
  const [only] = spec.containers;
  if (spec.containers.length === 1 && only && only.name === 'main' && isPlain(only)) {
    return { ...base, image: only.image, entrypoint: only.entrypoint, command: only.command, env: only.env, ports: only.ports.map(formatPort) };
  }
  return { ...base, containers: spec.containers.map((ct) => ({ ...ct, ports: ct.ports.map(formatPort) })) };
}

/** A container with nothing but what the single-container fields say. */
const isPlain = (c: ContainerSpec): boolean =>
  Object.keys(c.secretEnv).length === 0 &&
  c.endpoints.length === 0 &&
  c.resources.cpus === null &&
  c.resources.memoryMb === null &&
  c.volumeMounts.length === 0 &&
  c.healthCheck === null &&
  c.user === null &&
  !c.tty &&
  c.killGracePeriodSeconds === null &&
  Object.keys(c.labels).length === 0;

/** All ports of the pod, over its containers. */
export const podPorts = (spec: PodSpec): PortSpec[] => spec.containers.flatMap((c) => c.ports);
