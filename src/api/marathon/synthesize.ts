/**
 * Marathon's view of a pod whose spec carries no Marathon definition: one made through the native or
 * RunPod APIs (shown under `/<podId>`), or a Marathon pod changed through them since (its stored
 * definition was dropped; it keeps its path id). The definition is written from the spec as the
 * inverse of `convert.ts`: read and converted again, it gives the same spec. A pod is one pod in all
 * four APIs; this is how Marathon's clients see the others' changes.
 */
import type { ContainerSpec, HealthCheckSpec, PodSpec, PodVolume as BerthVolume } from '../../model/index.js';
import {
  MARATHON_DEFAULTS as D,
  SANDBOX,
  type Endpoint,
  type EnvValue,
  type HealthCheck,
  type MarathonPod,
  type MesosCommand,
  type MesosExec,
  type Network,
  type PodContainer,
  type PodVolume,
  type ResourceLimit,
  type ResourceLimits,
} from './schema.js';

/** The spec with a Marathon definition: its own, or one written from the spec under its Marathon id (else `/<podId>`). */
export function withDefinition(spec: PodSpec, podId: string): PodSpec {
  if (spec.marathon?.definition) return spec;
  const id = spec.marathon?.id ?? `/${podId}`;
  return { ...spec, marathon: { id, definition: definitionFromSpec(spec, id) as unknown as Record<string, unknown> } };
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;
const nonEmpty = <T extends object>(o: T): T | undefined => (Object.keys(o).length ? o : undefined);
const sum = (xs: number[]): number => xs.reduce((t, x) => t + x, 0);

/** Drops the keys whose value is undefined, so the definition leaves out what it does not set, as Marathon's serializer does. */
function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** `amount` in `count` parts of three decimals that add up to it: the first part takes the rounding. */
function spread(amount: number, count: number): number[] {
  const each = round3(amount / count);
  return Array.from({ length: count }, (_, i) => (i === 0 ? round3(amount - each * (count - 1)) : each));
}

/** One resource of each container as Marathon's request and limit, and the executor's share. */
interface Split {
  requests: number[];
  limits: (ResourceLimit | undefined)[];
  executor: number;
}

/**
 * Requests, limits and the executor's share that convert back to the spec: a container's own limit
 * (`own`; null: none, Marathon's "unlimited") and the pod's reservation (`total`), which Marathon
 * only has as the sum of the requests and the executor's. A container without a limit of its own
 * gets an equal share of what is left; where every container has one, the executor's share is what
 * is left; where the limits add up to more than the pod reserves, a request sits below its limit.
 */
function split(total: number | null, own: (number | null)[], executor: number, fallback: number): Split {
  const withLimits = (requests: number[], exec: number): Split => ({
    requests,
    limits: own.map((o, i) => (o === null ? 'unlimited' : o !== requests[i] ? o : undefined)),
    executor: exec,
  });
  // No reservation: Marathon has none to show; its default request stands in.
  if (total === null) return withLimits(own.map((o) => o ?? fallback), executor);
  const known = sum(own.map((o) => o ?? 0));
  const open = own.filter((o) => o === null).length;
  if (open > 0) {
    const shares = spread(total - executor - known, open);
    let next = 0;
    if (shares.every((s) => s > 0)) return withLimits(own.map((o) => o ?? shares[next++]!), executor);
  } else {
    const rest = round3(total - known);
    if (rest >= 0) return withLimits(own as number[], rest);
  }
  const budget = total - executor;
  if (budget <= 0) return withLimits(own.map((o) => o ?? fallback), executor);
  // The limits exceed the reservation. With one limit the largest, its request takes the difference
  // (a container limited above its request, as Marathon writes it); else requests go by the limits' shares.
  const weights = own.map((o) => o ?? budget / own.length);
  const largest = weights.indexOf(Math.max(...weights));
  const others = round3(sum(weights) - weights[largest]!);
  if (open === 0 && budget - others > 0) return withLimits(own.map((o, i) => (i === largest ? round3(budget - others) : o!)), executor);
  const scale = budget / sum(weights);
  return withLimits(weights.map((w, i) => Math.min(round3(w * scale), own[i] ?? Infinity)), executor);
}

/** The pod's GPUs over its containers: each keeps its own, the rest goes to the first ones. */
function gpusOf(spec: PodSpec): number[] {
  const own = spec.containers.map((c) => c.resources.gpus);
  const rest = spec.gpuCount - sum(own);
  if (rest <= 0) return own;
  const n = own.length;
  return own.map((g, i) => g + Math.floor(rest / n) + (i < rest % n ? 1 : 0));
}

/**
 * Each container's disk request. Marathon's pods keep theirs (the spec's `containerDiskGb` is the
 * largest); a pod that asked only for a writable layer of a size shows it on every container.
 */
function disksOf(spec: PodSpec): number[] {
  const own = spec.containers.map((c) => c.resources.diskMb);
  const defaultLayer = 50;
  if (own.some((d) => d > 0) || spec.containerDiskGb === defaultLayer) return own;
  return own.map(() => spec.containerDiskGb * 1024);
}

const SHELL = ['/bin/sh', '-c'];
const isShell = (argv: string[]): boolean => argv.length === 3 && argv[0] === SHELL[0] && argv[1] === SHELL[1];
const commandOf = (argv: string[]): MesosCommand => (isShell(argv) ? { shell: argv[2]! } : { argv });
const IN_SANDBOX = `cd ${SANDBOX} && `;

/**
 * Whether the container was given sandbox-relative mounts: conversion made them absolute under the
 * sandbox, set MESOS_SANDBOX, and starts a shell command there; all three are undone here.
 */
const inSandbox = (c: ContainerSpec): boolean => c.env.MESOS_SANDBOX === SANDBOX && c.volumeMounts.some((m) => sandboxRelative(m.mountPath) !== null);
const sandboxRelative = (path: string): string | null => (path.startsWith(`${SANDBOX}/`) && path.length > SANDBOX.length + 1 ? path.slice(SANDBOX.length + 1) : null);

/** Docker's entrypoint and command as Marathon's `exec`: a shell command, argv replacing CMD, or argv replacing the entrypoint too. */
function execOf(c: ContainerSpec, sandboxed: boolean): MesosExec | undefined {
  if (isShell(c.entrypoint) && c.command.length === 0) {
    const shell = c.entrypoint[2]!;
    return { command: { shell: sandboxed && shell.startsWith(IN_SANDBOX) ? shell.slice(IN_SANDBOX.length) : shell } };
  }
  if (c.entrypoint.length) return { command: { argv: [...c.entrypoint, ...c.command] }, overrideEntrypoint: true };
  if (c.command.length) return { command: { argv: c.command } };
  return undefined;
}

function healthCheckOf(hc: HealthCheckSpec | null): HealthCheck | undefined {
  if (!hc) return undefined;
  const timing = {
    gracePeriodSeconds: hc.gracePeriodSeconds,
    intervalSeconds: hc.intervalSeconds,
    maxConsecutiveFailures: hc.maxConsecutiveFailures,
    timeoutSeconds: hc.timeoutSeconds,
    delaySeconds: hc.delaySeconds,
  };
  switch (hc.kind) {
    case 'http':
      return { http: compact({ endpoint: hc.endpoint ?? '', path: hc.path ?? undefined, scheme: hc.scheme }), ...timing };
    case 'tcp':
      return { tcp: { endpoint: hc.endpoint ?? '' }, ...timing };
    case 'exec':
      return { exec: { command: commandOf(hc.argv) }, ...timing };
  }
}

/** Plain and secret variables together; MESOS_SANDBOX where conversion set it. */
function environmentOf(c: ContainerSpec, sandboxed: boolean): Record<string, EnvValue> | undefined {
  const env: Record<string, EnvValue> = { ...c.env };
  if (sandboxed) delete env.MESOS_SANDBOX;
  for (const [k, secret] of Object.entries(c.secretEnv)) env[k] = { secret };
  return nonEmpty(env);
}

/** Named endpoints as they are; a native pod's ports as endpoints named after them. */
function endpointsOf(c: ContainerSpec): Endpoint[] {
  return [
    ...c.ports.map((p) => ({ name: `${p.protocol}-${p.port}`, containerPort: p.port, hostPort: 0, protocol: [p.protocol] })),
    ...c.endpoints.map((e) =>
      compact({
        name: e.name,
        containerPort: e.containerPort ?? undefined,
        hostPort: e.hostPort ?? undefined,
        protocol: e.protocols,
        labels: nonEmpty(e.labels),
      }),
    ),
  ];
}

interface ContainerResources {
  cpus: number;
  mem: number;
  disk: number;
  gpus: number;
  limits: ResourceLimits | undefined;
}

function containerOf(c: ContainerSpec, r: ContainerResources): PodContainer {
  const sandboxed = inSandbox(c);
  const endpoints = endpointsOf(c);
  const mounts = c.volumeMounts.map((m) => ({ name: m.name, mountPath: (sandboxed ? sandboxRelative(m.mountPath) : null) ?? m.mountPath, readOnly: m.readOnly }));
  return compact({
    name: c.name,
    exec: execOf(c, sandboxed),
    resources: { cpus: r.cpus, mem: r.mem, disk: r.disk, gpus: r.gpus },
    resourceLimits: r.limits,
    endpoints: endpoints.length ? endpoints : undefined,
    image: { kind: 'DOCKER' as const, id: c.image },
    environment: environmentOf(c, sandboxed),
    user: c.user ?? undefined,
    healthCheck: healthCheckOf(c.healthCheck),
    volumeMounts: mounts.length ? mounts : undefined,
    labels: nonEmpty(c.labels),
    lifecycle: c.killGracePeriodSeconds !== null ? { killGracePeriodSeconds: c.killGracePeriodSeconds } : undefined,
    tty: c.tty ? true : undefined,
  });
}

function volumeOf(v: BerthVolume): PodVolume {
  switch (v.kind) {
    case 'ephemeral':
      return { name: v.name };
    case 'host':
      return { name: v.name, host: v.hostPath };
    case 'persistent':
      return { name: v.name, persistent: { type: 'root', size: v.sizeMb } };
    case 'secret':
      return { name: v.name, secret: v.secret };
  }
}

function networksOf(spec: PodSpec): Network[] {
  const { mode, name } = spec.network;
  if (mode === 'host') return [{ mode: 'host' }];
  if (mode === 'bridge') return [{ mode: 'container/bridge' }];
  return [name ? { name, mode: 'container' } : { mode: 'container' }];
}

/**
 * The spec as a normalized Marathon definition with path id `id`. Every field the spec models is
 * written; what it does not (artifacts, image pull settings, checks, linuxInfo, the unreachable
 * strategy, accepted roles, the role) has Marathon's defaults. The executor's resources are the part
 * of the pod's reservation the containers' requests leave (Marathon's default where they leave none).
 */
export function definitionFromSpec(spec: PodSpec, id: string): MarathonPod {
  const ex = D.executorResources;
  const cpus = split(spec.vcpuCount, spec.containers.map((c) => c.resources.cpus), ex.cpus, D.containerResources.cpus);
  const mem = split(spec.memoryGb === null ? null : spec.memoryGb * 1024, spec.containers.map((c) => c.resources.memoryMb), ex.mem, D.containerResources.mem);
  const gpus = gpusOf(spec);
  const disks = disksOf(spec);
  const containers = spec.containers.map((c, i) =>
    containerOf(c, {
      cpus: cpus.requests[i]!,
      mem: mem.requests[i]!,
      disk: disks[i]!,
      gpus: gpus[i]!,
      limits: nonEmpty(compact({ cpus: cpus.limits[i], mem: mem.limits[i] })),
    }),
  );
  const resident = spec.volumes.some((v) => v.kind === 'persistent');
  const constraints = spec.constraints.map((k) => compact({ fieldName: k.field, operator: k.operator, value: k.value ?? undefined }));
  const secrets = Object.fromEntries(Object.entries(spec.secrets).map(([name, source]) => [name, { source }]));
  return compact({
    id,
    labels: nonEmpty(spec.labels),
    containers,
    secrets: nonEmpty(secrets),
    volumes: spec.volumes.length ? spec.volumes.map(volumeOf) : undefined,
    networks: networksOf(spec),
    scaling: { kind: 'fixed' as const, instances: spec.instances },
    scheduling: compact({
      backoff: { backoff: spec.backoff.initialSeconds, backoffFactor: spec.backoff.factor, maxLaunchDelay: spec.backoff.maxSeconds },
      upgrade: { ...spec.upgrade },
      placement: constraints.length ? { constraints } : undefined,
      killSelection: spec.killSelection,
      // Marathon's rule for a resident pod: it is never declared unreachable.
      unreachableStrategy: resident ? ('disabled' as const) : { ...D.unreachable },
    }),
    executorResources: { cpus: cpus.executor, mem: mem.executor, disk: ex.disk },
    role: D.role,
  });
}
