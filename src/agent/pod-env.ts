/**
 * The env contract of Marathon pods, computed from the spec and the host ports the agent allocated:
 * ENDPOINT_/EP_HOST_/EP_CONTAINER_ per endpoint and MARATHON_*, MESOS_TASK_ID and HOST per container.
 */
import type { ContainerSpec, EndpointSpec, NetworkMode, PodSpec } from '../model/index.js';

/** Marathon's variable name for an endpoint or label: uppercased, anything but A-Z, 0-9 and _ as _. */
export function envName(name: string): string {
  return name.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
}

/**
 * The port the container listens on for an endpoint: the container port with bridge networking
 * (the host port when none was given, as Marathon publishes it on the same number), the host port
 * with host networking.
 */
export function listenPort(e: EndpointSpec, mode: NetworkMode, hostPort: number | undefined): number | undefined {
  if (mode === 'host') return hostPort ?? e.containerPort ?? undefined;
  return e.containerPort ?? hostPort;
}

/** ENDPOINT_<NAME>, EP_HOST_<NAME> and EP_CONTAINER_<NAME> for every endpoint of every container of the pod. */
export function endpointEnv(spec: PodSpec, hostPorts: Record<string, number>): Record<string, string> {
  const env: Record<string, string> = {};
  const mode = spec.network.mode;
  for (const e of spec.containers.flatMap((c) => c.endpoints)) {
    const name = envName(e.name);
    const host = hostPorts[e.name];
    const listen = listenPort(e, mode, host);
    if (listen !== undefined) env[`ENDPOINT_${name}`] = String(listen);
    if (host !== undefined) env[`EP_HOST_${name}`] = String(host);
    const containerPort = mode === 'host' ? (e.containerPort ?? undefined) : listen;
    if (containerPort !== undefined) env[`EP_CONTAINER_${name}`] = String(containerPort);
  }
  return env;
}

/** Marathon keeps label variables under the 512 bytes Mesos allows an env entry. */
const MAX_ENV_VALUE = 512;
const LABEL_PREFIX = 'MARATHON_APP_LABEL_';

/** MARATHON_APP_LABELS (the label variables' names, space-separated) and MARATHON_APP_LABEL_<K>. */
export function labelEnv(labels: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  const names: string[] = [];
  for (const [k, v] of Object.entries(labels)) {
    if (k.length + LABEL_PREFIX.length >= MAX_ENV_VALUE || v.length >= MAX_ENV_VALUE) continue;
    const name = envName(k);
    names.push(name);
    env[`${LABEL_PREFIX}${name}`] = v;
  }
  env.MARATHON_APP_LABELS = names.join(' ');
  return env;
}

export interface ContainerEnvContext {
  instanceId: string;
  /** The node's name: Marathon's HOST. */
  nodeName: string;
}

/** What Marathon tells one container of a pod about itself. */
export function marathonContainerEnv(spec: PodSpec, c: ContainerSpec, ctx: ContainerEnvContext): Record<string, string> {
  const memMb = c.resources.memoryMb ?? (spec.memoryGb !== null ? spec.memoryGb * 1024 : 0);
  return {
    ...(spec.marathon ? { MARATHON_APP_ID: spec.marathon.id } : {}),
    MARATHON_CONTAINER_ID: c.name,
    MARATHON_CONTAINER_RESOURCE_CPUS: String(c.resources.cpus ?? spec.vcpuCount ?? 0),
    MARATHON_CONTAINER_RESOURCE_MEM: String(memMb),
    MARATHON_CONTAINER_RESOURCE_DISK: String(c.resources.diskMb),
    MARATHON_CONTAINER_RESOURCE_GPUS: String(c.resources.gpus),
    HOST: ctx.nodeName,
    MESOS_TASK_ID: `${ctx.instanceId}.${c.name}`,
    ...labelEnv(spec.labels),
  };
}

/** The container's secret env: variable → the value of the pod secret it names. A missing value is left out. */
export function secretEnv(c: ContainerSpec, secrets: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, ref] of Object.entries(c.secretEnv)) {
    const value = secrets[ref];
    if (value !== undefined) env[k] = value;
  }
  return env;
}
