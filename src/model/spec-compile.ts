/**
 * Compiling friendly input into a full spec: every field checked with its path, every problem
 * collected before one VALIDATION error is thrown, and the defaults filled in.
 */
import { invalid, type Problem } from './errors.js';
import type { NetworkVolumeId, RegistryAuthId, TemplateId } from './ids.js';
import { compileLifetime } from './lifetime.js';
import { execProblems } from './limits.js';
import { parsePort } from './port-spec.js';
import {
  CONSTRAINT_OPERATORS,
  POD_DEFAULTS,
  type Constraint,
  type ConstraintOperator,
  type ContainerInput,
  type ContainerResources,
  type ContainerSpec,
  type EndpointSpec,
  type HealthCheckSpec,
  type NetworkSpec,
  type PodInput,
  type PodSpec,
  type PodVolume,
  type PortSpec,
  type VolumeMount,
} from './spec.js';

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const IMAGE_REF = /^[A-Za-z0-9][A-Za-z0-9._\-/:@+]*$/;

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
  // The agent runs it with Docker exec: held to what the runtime takes.
  else if (kind === 'exec') for (const p of execProblems(argv, [], `${path}/argv`)) c.add(p.path, p.message);
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
  const givenMounts: unknown = input.volumeMounts ?? [];
  if (!Array.isArray(givenMounts)) c.add(`${path}/volumeMounts`, 'must be a list');
  const volumeMounts = (Array.isArray(givenMounts) ? (givenMounts as unknown[]) : []).map((x, i): VolumeMount => {
    const p = `${path}/volumeMounts(${i})`;
    const m = isRecord(x) ? x : {};
    if (typeof m.name !== 'string' || m.name === '') c.add(`${p}/name`, 'must name a volume of the pod');
    if (typeof m.mountPath !== 'string' || !m.mountPath.startsWith('/')) c.add(`${p}/mountPath`, 'must be an absolute path');
    return { name: String(m.name), mountPath: String(m.mountPath), readOnly: m.readOnly === true };
  });
  const kill = input.killGracePeriodSeconds ?? null;
  if (kill !== null) c.num(`${path}/killGracePeriodSeconds`, kill, 0, 3600);
  const user = input.user ?? null;
  if (user !== null && (typeof user !== 'string' || user === '')) c.add(`${path}/user`, 'must not be empty');
  const capAdd = input.capAdd ?? [];
  if (c.strings(`${path}/capAdd`, capAdd)) {
    capAdd.forEach((cap, i) => CAPABILITY.test(cap) || c.add(`${path}/capAdd(${i})`, 'must be a capability name such as NET_ADMIN'));
  }
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
    // Left out when off, so that specs written before these fields compare equal.
    ...(input.privileged === true ? { privileged: true as const } : {}),
    ...(capAdd.length ? { capAdd: capAdd.map((x) => x.toUpperCase().replace(/^CAP_/, '')) } : {}),
  };
}

const CAPABILITY = /^(CAP_)?[A-Za-z_]{2,32}$/;

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
      containers = input.containers.map((ci, i) => compileContainer(c, `/containers(${i})`, isRecord(ci) ? ci : {}, `c${i}`));
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
  const lifetime = compileLifetime(input.lifetime, c.problems);
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
    ...(lifetime ? { lifetime } : {}),
  };
}
