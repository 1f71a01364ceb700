/** The friendly input form of a spec: a template merged under a request, and a spec turned back into input for an update. */
import { lifetimeToInput, mergeLifetime } from './lifetime.js';
import { formatPort } from './port-spec.js';
import type { ContainerSpec, PodInput, PodSpec } from './spec.js';

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
  // Per policy: a template's idle stop stays when the request sets only a maximum running time.
  const lifetime = mergeLifetime(template.lifetime, request.lifetime);
  if (lifetime !== undefined) merged.lifetime = lifetime;
  return merged;
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
    ...(spec.lifetime ? { lifetime: lifetimeToInput(spec.lifetime) } : {}),
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
  !c.privileged &&
  !c.capAdd &&
  Object.keys(c.labels).length === 0;
