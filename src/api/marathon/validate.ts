/**
 * Marathon's semantic validation of a pod (`PodsValidation.podValidator` and the validators it
 * uses), with its messages and paths, run on a definition that read without shape errors. Berth's
 * own limits (one container network) come after, in the same shape.
 */
import { pathIdProblems } from './paths.js';
import { readPod, type JsonError } from './read.js';
import { isPersistent, isSecretVolume, type Endpoint, type EnvValue, type HealthCheck, type LinuxInfo, type MarathonPod, type PodContainer, type ResourceLimit } from './schema.js';

/** One path's violations, as Marathon's `Validation.failureWrites` groups them. */
export interface Violation {
  path: string;
  errors: string[];
}

class Violations {
  private readonly byPath = new Map<string, string[]>();
  add(path: string, message: string): void {
    const list = this.byPath.get(path) ?? [];
    if (!list.includes(message)) list.push(message);
    this.byPath.set(path, list);
  }
  check(ok: boolean, path: string, message: string): void {
    if (!ok) this.add(path, message);
  }
  list(): Violation[] {
    return [...this.byPath].map(([path, errors]) => ({ path, errors }));
  }
}

/** A number as Scala prints a Double (`128.0`, `0.1`), for messages that quote one. */
export const scalaDouble = (n: number): string => (Number.isInteger(n) ? `${n}.0` : String(n));

const distinct = <T>(xs: T[]): boolean => new Set(xs).size === xs.length;

function envViolations(v: Violations, path: string, env: Record<string, EnvValue> | undefined, secrets: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(env ?? {})) {
    if (typeof value !== 'string' && !(value.secret in secrets)) v.add(`${path}/${key}/secret`, 'references an undefined secret');
  }
}

function limitViolation(v: Violations, path: string, limit: ResourceLimit | undefined, requested: number): void {
  if (typeof limit === 'number' && limit < requested) v.add(path, `resource limit must be greater than or equal to requested resource (${scalaDouble(requested)})`);
}

function endpointViolations(v: Violations, path: string, ep: Endpoint, pod: MarathonPod): void {
  const networks = pod.networks ?? [];
  const names = networks.flatMap((n) => (n.name ? [n.name] : []));
  (ep.networkNames ?? []).forEach((n, k) => v.check(names.includes(n), `${path}/networkNames(${k})`, `is not one of (${names.join(',')})`));
  if (networks.some((n) => n.mode === 'host')) v.check(ep.containerPort === undefined, `${path}/containerPort`, 'is not allowed when using host-mode networking');
  if (networks.some((n) => n.mode === 'container')) v.check(ep.containerPort !== undefined, `${path}/containerPort`, 'is required when using container-mode networking');
  v.check(distinct(ep.protocol ?? []), `${path}/protocol`, 'Duplicate protocols within the same endpoint are not allowed');
  if (networks.filter((n) => n.mode === 'container').length > 1) {
    v.check(ep.hostPort === undefined || (ep.networkNames ?? []).length === 1, path, 'networkNames must be a single item list when hostPort is specified and more than 1 container network is defined');
  }
}

function healthCheckViolations(v: Violations, path: string, hc: HealthCheck, container: PodContainer): void {
  v.check(hc.timeoutSeconds < hc.intervalSeconds, `${path}/timeoutSeconds`, `got ${hc.timeoutSeconds}, expected less than ${hc.intervalSeconds}`);
  const endpoints = (container.endpoints ?? []).map((e) => e.name);
  if (hc.http) v.check(endpoints.includes(hc.http.endpoint), `${path}/http/endpoint`, 'contained in the container endpoints');
  if (hc.tcp) v.check(endpoints.includes(hc.tcp.endpoint), `${path}/tcp/endpoint`, 'contained in the container endpoints');
  v.check([hc.http, hc.tcp, hc.exec].filter((x) => x !== undefined).length === 1, path, 'Only one of http, tcp, or command may be specified');
}

function linuxInfoViolations(v: Violations, path: string, info: LinuxInfo | undefined, level: 'pod' | 'container'): void {
  const s = info?.seccomp;
  if (s && level === 'pod') v.add(`${path}/seccomp`, 'Seccomp configuration on executor level is not supported');
  if (s && level === 'container') {
    if (s.profileName !== undefined && s.unconfined) v.add(`${path}/seccomp`, 'Seccomp unconfined can NOT be true when Profile is defined');
    if (s.profileName === undefined && !s.unconfined) v.add(`${path}/seccomp`, 'Seccomp unconfined must be true when Profile is NOT defined');
  }
  if (info?.ipcInfo?.mode === 'SHARE_PARENT' && info.ipcInfo.shmSize !== undefined) v.add(`${path}/ipcInfo`, 'ipcInfo shmSize can NOT be set when mode is SHARE_PARENT');
}

function containerViolations(v: Violations, path: string, c: PodContainer, pod: MarathonPod): void {
  const secrets = pod.secrets ?? {};
  limitViolation(v, `${path}/resourceLimits/cpus`, c.resourceLimits?.cpus, c.resources.cpus);
  limitViolation(v, `${path}/resourceLimits/mem`, c.resourceLimits?.mem, c.resources.mem);
  (c.endpoints ?? []).forEach((ep, j) => endpointViolations(v, `${path}/endpoints(${j})`, ep, pod));
  if (c.image?.pullConfig) v.check(c.image.pullConfig.secret in secrets, `${path}/image/pullConfig`, 'pullConfig.secret must refer to an existing secret');
  envViolations(v, `${path}/environment`, c.environment, secrets);
  if (c.healthCheck) healthCheckViolations(v, `${path}/healthCheck`, c.healthCheck, c);
  const volumes = (pod.volumes ?? []).map((x) => x.name);
  (c.volumeMounts ?? []).forEach((m, j) => v.check(volumes.includes(m.name), `${path}/volumeMounts(${j})/name`, 'Referenced Volume in VolumeMount should exist'));
  linuxInfoViolations(v, `${path}/linuxInfo`, c.linuxInfo, 'container');
  if (pod.legacySharedCgroups) v.check(c.resourceLimits === undefined, `${path}/resourceLimits`, 'resourceLimits cannot be defined if legacySharedCgroups is enabled');
}

function networkViolations(v: Violations, pod: MarathonPod): void {
  const nets = pod.networks ?? [];
  const count = (mode: string) => nets.filter((n) => n.mode === mode).length;
  v.check(!nets.some((n) => n.mode === 'host' && (n.name || n.labels)), '/networks', 'Host networks may not have names or labels');
  v.check(!nets.some((n) => n.mode === 'container/bridge' && n.name), '/networks', 'Bridge networks may not have names');
  const unnamed = nets.filter((n) => n.mode === 'container' && !n.name).length;
  v.check(unnamed < 2 && distinct(nets.flatMap((n) => (n.name ? [n.name] : []))), '/networks', 'Duplicate networks are not allowed');
  const [host, bridge, container] = [count('host'), count('container/bridge'), count('container')];
  v.check((host <= 1 && bridge === 0 && container === 0) || (host === 0 && bridge <= 1 && container === 0) || (host === 0 && bridge === 0 && container > 0), '/networks', 'May specify a single host network, single bridge network, or else 1-to-n container networks');
}

/** `SchedulingValidation.complyWithConstraintRules`. */
function constraintViolations(v: Violations, pod: MarathonPod): void {
  (pod.scheduling.placement?.constraints ?? []).forEach((c, i) => {
    const path = `/scheduling/placement/constraints(${i})`;
    if (c.fieldName === '') return v.add(path, 'missing field for constraint declaration');
    const isInt = (s: string | undefined) => s !== undefined && /^[-+]?\d+$/.test(s) && Math.abs(Number(s)) <= 2 ** 31 - 1;
    switch (c.operator) {
      case 'UNIQUE':
        return v.check(c.value === undefined, path, 'UNIQUE does not accept a value');
      case 'CLUSTER':
        return;
      case 'GROUP_BY':
        return v.check(c.value === undefined || isInt(c.value), path, 'GROUP BY must define an integer value or else no value at all');
      case 'MAX_PER':
        return v.check(isInt(c.value), path, 'MAX_PER requires an integer value');
      case 'LIKE':
      case 'UNLIKE':
        if (c.value === undefined) return v.add(path, 'LIKE and UNLIKE require a non-empty, regular expression value');
        try {
          new RegExp(c.value);
        } catch {
          v.add(path, 'is not a valid regular expression');
        }
        return;
      case 'IS':
        return v.check(/^[a-zA-Z0-9_/.-]*$/.test(c.value ?? ''), path, 'IS only supports Mesos text and float values (see http://mesos.apache.org/documentation/latest/attributes-resources/)');
    }
  });
}

/** `ResourceRole.validAcceptedResourceRoles`: each name must be a usable Mesos role. */
function roleViolations(v: Violations, path: string, roles: string[]): void {
  for (const role of roles) {
    v.check(role !== '', path, 'A role name must not be "".');
    v.check(role !== '.', path, 'A role name must not be ".".');
    v.check(role !== '..', path, 'A role name must not be "..".');
    v.check(!role.startsWith('-'), path, "A role name must not start with a '-'.");
    const chars: [string, string][] = [
      ['\t', 'horizontal tab (\\x09)'],
      ['\n', 'line feed (\\x0a)'],
      ['\v', 'vertical tab (\\x0b)'],
      ['\f', 'form feed (\\x0c)'],
      ['\r', 'carriage return (\\x0d)'],
      [' ', 'space (\\x20)'],
      ['/', 'slash (\\x2f)'],
      ['\x7f', 'backspace (\\x7f)'],
    ];
    for (const [ch, label] of chars) v.check(!role.includes(ch), path, `A role name must not include a ${label} character.`);
  }
}

/** Every violation of a definition that read cleanly; `rawId` is the id as sent, before canonicalization. */
export function validatePod(pod: MarathonPod, rawId: string = pod.id): Violation[] {
  const v = new Violations();
  const secrets = pod.secrets ?? {};
  for (const p of pathIdProblems(rawId)) v.add('/id', p);
  if (pod.user !== undefined) v.check(pod.user !== '', '/user', 'must not be empty');
  envViolations(v, '/environment', pod.environment, secrets);

  const volumes = pod.volumes ?? [];
  volumes.forEach((vol, i) => {
    if (isSecretVolume(vol)) v.check(vol.secret in secrets, `/volumes(${i})/secret`, 'volume.secret must refer to an existing secret');
    v.check(
      pod.containers.some((c) => (c.volumeMounts ?? []).some((m) => m.name === vol.name)),
      `/volumes(${i})`,
      'volume must be referenced by at least one container',
    );
  });
  v.check(distinct(volumes.map((x) => x.name)), '/volumes', 'volume names must be unique');

  pod.containers.forEach((c, i) => containerViolations(v, `/containers(${i})`, c, pod));
  v.check(distinct(pod.containers.map((c) => c.name)), '/containers', 'container names must be unique');
  networkViolations(v, pod);

  constraintViolations(v, pod);
  const accepted = pod.scheduling.placement?.acceptedResourceRoles ?? [];
  roleViolations(v, '/scheduling/placement/acceptedResourceRoles', accepted);

  const endpoints = pod.containers.flatMap((c) => c.endpoints ?? []);
  v.check(distinct(endpoints.map((e) => e.name)), '/', 'endpoint names nust be unique across all containers');
  v.check(distinct(endpoints.flatMap((e) => (e.containerPort ? [e.containerPort] : []))), '/', 'container ports must be unique across all containers');
  v.check(distinct(endpoints.flatMap((e) => (e.hostPort ? [e.hostPort] : []))), '/', 'host ports must be unique across all containers');

  if (volumes.some(isPersistent)) {
    const over = pod.scheduling.upgrade.maximumOverCapacity;
    v.check(over === 0, '/upgrade/maximumOverCapacity', `got ${scalaDouble(over)}, expected 0.0`);
    v.check(pod.scheduling.unreachableStrategy === 'disabled', '/', 'unreachableStrategy must be disabled for pods with persistent volumes');
    if (accepted.length > 0) v.check(accepted.length === 1 && accepted[0] === '*', '/acceptedResourceRoles', 'A resident pod must have `acceptedResourceRoles = ["*"]`.');
  }
  linuxInfoViolations(v, '/linuxInfo', pod.linuxInfo, 'pod');

  // Berth's own limit: an instance has one network namespace on one Docker network.
  v.check(pod.networks === undefined || pod.networks.filter((n) => n.mode === 'container').length <= 1, '/networks', 'Berth joins a pod to one container network: give at most one');
  return v.list();
}

const totals = (pod: MarathonPod) =>
  pod.containers.reduce((t, c) => ({ cpus: t.cpus + c.resources.cpus, mem: t.mem + c.resources.mem, disk: t.disk + c.resources.disk, gpus: t.gpus + c.resources.gpus }), {
    cpus: pod.executorResources.cpus,
    mem: pod.executorResources.mem,
    disk: pod.executorResources.disk,
    gpus: 0,
  });

/** `PodsValidation.residentUpdateIsValid`: what a pod with persistent volumes may not change. */
export function validateUpdate(from: MarathonPod, to: MarathonPod): Violation[] {
  const v = new Violations();
  const resident = (p: MarathonPod) => (p.volumes ?? []).some(isPersistent);
  if (!resident(from) && !resident(to)) return [];
  const persistent = (p: MarathonPod) => (p.volumes ?? []).filter(isPersistent).map((x) => JSON.stringify(x));
  const [a, b] = [persistent(from), persistent(to)];
  v.check(a.length === b.length && a.every((x) => b.includes(x)), '/', 'persistent volumes cannot be updated');
  const [tf, tt] = [totals(from), totals(to)];
  v.check(tf.cpus === tt.cpus, '/', 'cpus cannot be updated if a pod has persistent volumes');
  v.check(tf.mem === tt.mem, '/', 'mem cannot be updated if a pod has persistent volumes');
  v.check(tf.disk === tt.disk, '/', 'disk cannot be updated if a pod has persistent volumes');
  v.check(tf.gpus === tt.gpus, '/', 'gpus cannot be updated if a pod has persistent volumes');
  const ports = (p: MarathonPod) => [...new Set(p.containers.flatMap((c) => (c.endpoints ?? []).flatMap((e) => (e.hostPort !== undefined ? [e.hostPort] : []))))].sort();
  v.check(JSON.stringify(ports(from)) === JSON.stringify(ports(to)), '/', 'host ports cannot be updated if a pod has persistent volumes');
  return v.list();
}

/** What a POST or PUT body comes to: the normalized definition, or Marathon's 422 body. */
export type Parsed = { ok: true; pod: MarathonPod; rawId: string } | { ok: false; body: { message: 'Invalid JSON'; details: JsonError[] } | { message: 'Object is not valid'; details: Violation[] } };

/** Reads, normalizes and validates a definition as Marathon's `PodsResource` does, shape first. */
export function parseDefinition(json: unknown): Parsed {
  const read = readPod(json);
  if (!read.ok) return { ok: false, body: { message: 'Invalid JSON', details: read.errors } };
  const violations = validatePod(read.pod, read.rawId);
  if (violations.length) return { ok: false, body: { message: 'Object is not valid', details: violations } };
  return read;
}
