/**
 * Marathon's view of a pod made through the native or RunPod APIs: such a pod has no stored Marathon
 * definition, so one is written from its spec, under the path id `/<podId>`. A pod is one pod in all
 * four APIs; this is how Marathon's clients see the others'.
 */
import type { ContainerSpec, PodSpec } from '../../model/index.js';
import { MARATHON_DEFAULTS, type Endpoint, type MarathonPod, type PodContainer } from './schema.js';

/** The spec with a Marathon definition: its own, or one written from the spec. */
export function withDefinition(spec: PodSpec, podId: string): PodSpec {
  if (spec.marathon) return spec;
  return { ...spec, marathon: { id: `/${podId}`, definition: definitionFromSpec(spec, podId) as unknown as Record<string, unknown> } };
}

export function definitionFromSpec(spec: PodSpec, podId: string): MarathonPod {
  const share = (total: number | null, fallback: number): number => (total === null ? fallback : total / spec.containers.length);
  return {
    id: `/${podId}`,
    ...(Object.keys(spec.labels).length ? { labels: spec.labels } : {}),
    containers: spec.containers.map((c) => container(c, spec, share(spec.vcpuCount, MARATHON_DEFAULTS.containerResources.cpus), share(spec.memoryGb === null ? null : spec.memoryGb * 1024, MARATHON_DEFAULTS.containerResources.mem))),
    networks: [spec.network.mode === 'host' ? { mode: 'host' } : spec.network.mode === 'container' && spec.network.name ? { mode: 'container', name: spec.network.name } : { mode: 'container/bridge' }],
    scaling: { kind: 'fixed', instances: spec.instances },
    scheduling: {
      backoff: { backoff: spec.backoff.initialSeconds, backoffFactor: spec.backoff.factor, maxLaunchDelay: spec.backoff.maxSeconds },
      upgrade: { ...spec.upgrade },
      killSelection: spec.killSelection,
      unreachableStrategy: { ...MARATHON_DEFAULTS.unreachable },
    },
    executorResources: { ...MARATHON_DEFAULTS.executorResources },
    role: MARATHON_DEFAULTS.role,
  };
}

function container(c: ContainerSpec, spec: PodSpec, cpus: number, mem: number): PodContainer {
  const endpoints: Endpoint[] = [
    ...c.ports.map((p) => ({ name: `${p.protocol}-${p.port}`, containerPort: p.port, hostPort: 0, protocol: [p.protocol] })),
    ...c.endpoints.map((e) => ({
      name: e.name,
      ...(e.containerPort !== null ? { containerPort: e.containerPort } : {}),
      ...(e.hostPort !== null ? { hostPort: e.hostPort } : {}),
      protocol: e.protocols,
    })),
  ];
  const argv = [...c.entrypoint, ...c.command];
  return {
    name: c.name,
    ...(argv.length ? { exec: { command: { argv }, ...(c.entrypoint.length ? { overrideEntrypoint: true } : {}) } } : {}),
    resources: {
      cpus: Math.round((c.resources.cpus ?? cpus) * 1000) / 1000,
      mem: Math.round(c.resources.memoryMb ?? mem),
      disk: spec.containerDiskGb * 1024,
      gpus: c.resources.gpus || Math.round(spec.gpuCount / spec.containers.length),
    },
    ...(endpoints.length ? { endpoints } : {}),
    image: { kind: 'DOCKER', id: c.image },
    ...(Object.keys(c.env).length ? { environment: c.env } : {}),
  };
}
