/**
 * A normalized Marathon pod definition as Berth's PodInput, and Berth's validation problems back at
 * the Marathon paths they came from. The definition itself travels along in `marathon.definition`,
 * so the API answers with exactly what it normalized.
 */
import type { ContainerInput, HealthCheckSpec, NetworkSpec, PodInput, PodVolume as BerthVolume, Problem } from '../../model/index.js';
import { isHostVolume, isPersistent, isSecretVolume, SANDBOX, type EnvValue, type HealthCheck, type KVLabels, type MarathonPod, type MesosCommand, type PodContainer, type PodVolume } from './schema.js';

export interface ConvertOptions {
  /** What a container without `image` runs: Mesos would use the agent's own filesystem, Docker needs an image with /bin/sh. */
  defaultImage: string;
}

export const DEFAULT_IMAGE = 'busybox:latest';

/** Labels pass as they are: the agent makes variable names of them (`com.example/tier` → `MARATHON_APP_LABEL_COM_EXAMPLE_TIER`). */
const berthLabels = (labels: KVLabels | undefined): Record<string, string> => ({ ...labels });

const round3 = (n: number): number => Math.round(n * 1000) / 1000;
const argvOf = (cmd: MesosCommand): string[] => ('shell' in cmd ? ['/bin/sh', '-c', cmd.shell] : cmd.argv);
const isRelative = (path: string): boolean => !path.startsWith('/');
const sandboxPath = (path: string): string => `${SANDBOX}/${path.replace(/^(\.\/)+/, '')}`;

/**
 * No networks at all is what Mesos runs in the agent's namespace (host); `container/bridge` is
 * Docker's bridge with published ports; a `container` network is a named Docker network.
 */
export function networkOf(pod: MarathonPod): NetworkSpec {
  const [net] = pod.networks ?? [];
  if (!net || net.mode === 'host') return { mode: 'host', name: null };
  if (net.mode === 'container/bridge') return { mode: 'bridge', name: null };
  return { mode: 'container', name: net.name ?? null };
}

/**
 * `exec` as Docker's entrypoint and command. A shell command replaces the image's entrypoint; argv
 * replaces its CMD, and its entrypoint too with `overrideEntrypoint`. Mesos runs commands in the
 * sandbox, so a container with sandbox-relative mounts starts its shell command there.
 */
function commandOf(c: PodContainer, inSandbox: boolean): { entrypoint: string[]; command: string[] } {
  const cmd = c.exec?.command;
  if (!cmd) return { entrypoint: [], command: [] };
  if ('shell' in cmd) return { entrypoint: ['/bin/sh', '-c', inSandbox ? `cd ${SANDBOX} && ${cmd.shell}` : cmd.shell], command: [] };
  if (c.exec?.overrideEntrypoint) return { entrypoint: cmd.argv.slice(0, 1), command: cmd.argv.slice(1) };
  return { entrypoint: [], command: cmd.argv };
}

/**
 * Pod then container variables (the container's win), split into plain values and secret
 * references. Marathon's own variables (MARATHON_*, ENDPOINT_*, HOST...) are the agent's to set: some
 * depend on the node and the ports it allocates. MESOS_SANDBOX is set where the sandbox exists.
 */
function environmentOf(pod: MarathonPod, c: PodContainer, inSandbox: boolean): { env: Record<string, string>; secretEnv: Record<string, string> } {
  const merged: Record<string, EnvValue> = { ...pod.environment, ...c.environment, ...(inSandbox ? { MESOS_SANDBOX: SANDBOX } : {}) };
  const env: Record<string, string> = {};
  const secretEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(merged)) {
    if (typeof v === 'string') env[k] = v;
    else secretEnv[k] = v.secret;
  }
  return { env, secretEnv };
}

function healthCheckOf(hc: HealthCheck | undefined): ContainerInput['healthCheck'] {
  if (!hc) return null;
  const timing = {
    gracePeriodSeconds: hc.gracePeriodSeconds,
    intervalSeconds: hc.intervalSeconds,
    timeoutSeconds: hc.timeoutSeconds,
    maxConsecutiveFailures: hc.maxConsecutiveFailures,
    delaySeconds: hc.delaySeconds,
  };
  const base: Omit<HealthCheckSpec, 'kind'> = { endpoint: null, path: null, scheme: 'HTTP', argv: [], ...timing };
  if (hc.http) return { ...base, kind: 'http', endpoint: hc.http.endpoint, path: hc.http.path ?? null, scheme: hc.http.scheme };
  if (hc.tcp) return { ...base, kind: 'tcp', endpoint: hc.tcp.endpoint };
  return { ...base, kind: 'exec', argv: hc.exec ? argvOf(hc.exec.command) : [] };
}

/** A limit of `resourceLimits` where one is given ("unlimited": none), else the request, as Mesos enforces it. */
const limitOf = (limit: number | 'unlimited' | undefined, requested: number): number | null => (limit === 'unlimited' ? null : (limit ?? requested));

function containerOf(pod: MarathonPod, c: PodContainer, opts: ConvertOptions): ContainerInput {
  const inSandbox = (c.volumeMounts ?? []).some((m) => isRelative(m.mountPath));
  const { env, secretEnv } = environmentOf(pod, c, inSandbox);
  return {
    name: c.name,
    image: c.image?.id ?? opts.defaultImage,
    ...commandOf(c, inSandbox),
    env,
    secretEnv,
    endpoints: (c.endpoints ?? []).map((e) => ({
      name: e.name,
      containerPort: e.containerPort ?? null,
      hostPort: e.hostPort ?? null,
      // `http` (any case) is what the proxy serves.
      protocols: (e.protocol ?? ['tcp']).map((p) => p.toLowerCase()),
      labels: berthLabels(e.labels),
    })),
    resources: {
      cpus: limitOf(c.resourceLimits?.cpus, c.resources.cpus),
      memoryMb: limitOf(c.resourceLimits?.mem, c.resources.mem),
      gpus: c.resources.gpus,
      diskMb: c.resources.disk,
    },
    volumeMounts: (c.volumeMounts ?? []).map((m) => ({ name: m.name, mountPath: isRelative(m.mountPath) ? sandboxPath(m.mountPath) : m.mountPath, readOnly: m.readOnly })),
    healthCheck: healthCheckOf(c.healthCheck),
    user: c.user ?? pod.user ?? null,
    tty: c.tty === true,
    killGracePeriodSeconds: c.lifecycle?.killGracePeriodSeconds ?? null,
    labels: berthLabels(c.labels),
  };
}

function volumeOf(v: PodVolume): BerthVolume {
  if (isPersistent(v)) return { name: v.name, kind: 'persistent', sizeMb: v.persistent.size };
  if (isSecretVolume(v)) return { name: v.name, kind: 'secret', secret: v.secret };
  // A relative host path is a directory of the executor's sandbox: an instance-long volume here.
  if (isHostVolume(v)) return v.host.startsWith('/') ? { name: v.name, kind: 'host', hostPath: v.host } : { name: v.name, kind: 'ephemeral' };
  return { name: v.name, kind: 'ephemeral' };
}

/** Secret store names have no leading slash; DC/OS writes sources as absolute paths. */
const storeName = (source: string): string => source.replace(/^\/+/, '');

/** The definition as Berth stores it: the same document without the request-time `version`. */
export function storedDefinition(pod: MarathonPod): Record<string, unknown> {
  const { version: _v, ...rest } = pod;
  return rest as unknown as Record<string, unknown>;
}

/** A normalized definition as a Berth pod: resources summed with the executor's, Mesos notions mapped to Docker's. */
export function toPodInput(pod: MarathonPod, opts: ConvertOptions = { defaultImage: DEFAULT_IMAGE }): PodInput {
  const sum = (f: (c: PodContainer) => number) => pod.containers.reduce((t, c) => t + f(c), 0);
  const diskMb = Math.max(0, ...pod.containers.map((c) => c.resources.disk));
  const s = pod.scheduling;
  return {
    name: pod.id,
    containers: pod.containers.map((c) => containerOf(pod, c, opts)),
    gpuCount: sum((c) => c.resources.gpus),
    gpuTypeIds: [],
    vcpuCount: round3(sum((c) => c.resources.cpus) + pod.executorResources.cpus),
    memoryGb: (sum((c) => c.resources.mem) + pod.executorResources.mem) / 1024,
    // Each container's writable layer; Marathon's disk is a per-container request in MB.
    containerDiskGb: diskMb > 0 ? Math.max(1, Math.ceil(diskMb / 1024)) : 50,
    volumeGb: 0,
    startSsh: false,
    restartPolicy: 'always',
    instances: pod.scaling.instances,
    labels: berthLabels(pod.labels),
    backoff: { initialSeconds: s.backoff.backoff, factor: s.backoff.backoffFactor, maxSeconds: s.backoff.maxLaunchDelay },
    volumes: (pod.volumes ?? []).map(volumeOf),
    // No networks is Mesos's host mode: the control plane gives it where the pod security policy grants it.
    ...(pod.networks?.length ? { network: networkOf(pod) } : { hostNetworkByDefault: true }),
    secrets: Object.fromEntries(Object.entries(pod.secrets ?? {}).map(([k, v]) => [k, storeName(v.source)])),
    // Berth's constraints read `hostname`, `@hostname`, `@region` and `@zone` as Marathon does.
    constraints: (s.placement?.constraints ?? []).map((c) => ({ field: c.fieldName, operator: c.operator, value: c.value ?? null })),
    upgrade: { ...s.upgrade },
    killSelection: s.killSelection,
    marathon: { id: pod.id, definition: storedDefinition(pod) },
    // As Mesos's default executor: every instance's network is held apart, one container or many.
    networkHolder: 'always',
  };
}

/** Berth's field names inside a container, as Marathon's. */
const CONTAINER_FIELDS: [RegExp, string][] = [
  [/^\/resources\/memoryMb/, '/resources/mem'],
  [/^\/resources\/diskMb/, '/resources/disk'],
  [/^\/(env|secretEnv)(?=\/|$)/, '/environment'],
  [/^\/image$/, '/image/id'],
  [/^\/entrypoint|^\/command/, '/exec/command'],
  [/^\/killGracePeriodSeconds/, '/lifecycle/killGracePeriodSeconds'],
  [/^\/healthCheck\/argv/, '/healthCheck/exec/command'],
  [/^\/endpoints\((\d+)\)\/protocols/, '/endpoints($1)/protocol'],
];

const POD_FIELDS: [RegExp, string][] = [
  [/^\/name$/, '/id'],
  [/^\/instances$/, '/scaling/instances'],
  [/^\/backoff\/initialSeconds$/, '/scheduling/backoff/backoff'],
  [/^\/backoff\/factor$/, '/scheduling/backoff/backoffFactor'],
  [/^\/backoff\/maxSeconds$/, '/scheduling/backoff/maxLaunchDelay'],
  [/^\/upgrade\//, '/scheduling/upgrade/'],
  [/^\/killSelection$/, '/scheduling/killSelection'],
  [/^\/constraints\((\d+)\).*$/, '/scheduling/placement/constraints($1)'],
  [/^\/volumes\((\d+)\)\/sizeMb$/, '/volumes($1)/persistent/size'],
  [/^\/volumes\((\d+)\)\/hostPath$/, '/volumes($1)/host'],
  [/^\/network(\/.*)?$/, '/networks'],
  [/^\/secrets\/([^/]+)$/, '/secrets/$1/source'],
  [/^\/labels\//, '/labels/'],
];

/** Berth's pod-wide fields that Marathon's definition only has as sums. */
const SUMMED: Record<string, string> = {
  '/vcpuCount': "the containers' and the executor's cpus together",
  '/memoryGb': "the containers' and the executor's mem together, in GB",
  '/gpuCount': "the containers' gpus together",
  '/containerDiskGb': "the largest container's disk, in GB",
};

/**
 * Where a problem Berth found in the converted input lies in the Marathon definition. Fields with
 * no counterpart (the pod's summed `memoryGb`) answer at `/`, naming Berth's field.
 */
export function marathonProblem(p: Problem): Problem {
  const m = /^\/containers\((\d+)\)(\/.*)?$/.exec(p.path);
  if (m) {
    const rest = m[2] ?? '';
    const rule = CONTAINER_FIELDS.find(([re]) => re.test(rest));
    return { path: `/containers(${m[1]})${rule ? rest.replace(rule[0], rule[1]) : rest}`, message: p.message };
  }
  const rule = POD_FIELDS.find(([re]) => re.test(p.path));
  if (rule) return { path: p.path.replace(rule[0], rule[1]), message: p.message };
  if (/^\/volumes\(\d+\)/.test(p.path)) return { path: p.path.replace(/^(\/volumes\(\d+\)).*$/, '$1'), message: p.message };
  const summed = SUMMED[p.path];
  return { path: '/', message: `${summed ?? p.path.replace(/^\//, '')}: ${p.message}` };
}
