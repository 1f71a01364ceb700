/**
 * What the APIs see of the deployment controller: the service they call, the events it tells, and
 * how a pod's instances read (phase, readiness, path id). The controller is `deployments.ts`.
 */
import type { Deployment, Instance, PodInput, PodSpec, PodVersion } from '../model/index.js';
import type { PodDetail } from '../store/types.js';
import type { Caller } from './caller.js';

export type { Deployment, DeploymentAction } from '../model/index.js';

/** Where an instance is, as listeners hear of it: each change is an `instance_changed` event. */
export type InstancePhase = 'unplaced' | 'placed' | 'pulling' | 'creating' | 'running' | 'exited' | 'failed' | 'stopped';

/**
 * What the deployment service tells its listeners: a deployment started, ended well or not (with
 * why), an instance moved to another phase, an instance's health verdict changed. The APIs word them
 * (Marathon's event bus: `api/marathon/events.ts`).
 */
export type DeploymentEvent =
  | { eventType: 'deployment_started'; deployment: Deployment }
  | { eventType: 'deployment_success' | 'deployment_failed'; deployment: Deployment; reason?: string }
  /** `path`: the pod's path id, as its deployments carry it. */
  | { eventType: 'instance_changed'; instance: Instance; path: string; phase: InstancePhase }
  /** `healthy`: null while the instance is not running. */
  | { eventType: 'instance_health_changed'; instance: Instance; path: string; healthy: boolean | null };

/** @deprecated The former name of `DeploymentEvent`. */
export type MarathonEvent = DeploymentEvent;

export interface ApplyOptions {
  /** Cancel a deployment that holds the pod instead of refusing with 409. */
  force: boolean;
  /** POST refuses an existing path; PUT creates or updates. */
  mustBeNew: boolean;
}

export interface ApplyResult {
  detail: PodDetail;
  deployment: Deployment;
  created: boolean;
}

/**
 * The deployment controller: pods defined by a Marathon path id, rolled to new versions honouring
 * `upgrade.minimumHealthCapacity` / `maximumOverCapacity`, waiting for health checks.
 */
export interface DeploymentService {
  /**
   * Creates or updates the pod at `input.marathon.id`. CONFLICT with `extra.deployments` when a
   * deployment holds it and not `force`; with `extra.duplicate` and `extra.path` when it must be new.
   */
  apply(caller: Caller, input: PodInput, opts: ApplyOptions): Promise<ApplyResult>;
  /** Deletes (terminates) the pod at `path`; NOT_FOUND (`extra.path`) when there is none. */
  remove(caller: Caller, path: string, opts: { force: boolean }): Promise<Deployment>;
  /** The live (not terminated) pod at `path` (`/<podId>` finds a pod made through another API). */
  find(caller: Caller, path: string): Promise<PodDetail | undefined>;
  /** Every live pod the caller sees: Marathon's own, and the others under `/<podId>` (see `marathonPathOf`). */
  list(caller: Caller): Promise<PodDetail[]>;
  /** Every version ever written under `path`, over deleted and re-created pods, oldest first. */
  history(caller: Caller, path: string): Promise<PodVersion[]>;
  deployments(): Deployment[];
  /** Rolls back (a new deployment to the version before; a creation is undone by deleting the pod), or with `force` just stops it. NOT_FOUND (`extra.deploymentId`) when unknown. */
  cancel(caller: Caller, id: string, opts: { force: boolean }): Promise<Deployment | null>;
  /** Kills instances: relaunched with the same id, or with `wipe` replaced by new ones (persistent volumes dropped). Unknown ids are skipped. */
  killInstances(caller: Caller, path: string, instanceIds: string[], opts: { wipe: boolean }): Promise<Instance[]>;
  /** Why instances of the pod wait to be placed, if they do. */
  waitReason(podId: string): string | null;
  onEvent(listener: (e: DeploymentEvent) => void): () => void;
}

/**
 * The pod's Marathon path id: the one it was defined with, or `/<podId>` for a pod made through the
 * native or RunPod APIs, so that every pod is one pod in all four APIs.
 */
export const marathonPathOf = (d: PodDetail): string => d.spec.marathon?.id ?? `/${d.pod.id}`;

/** Running its version and every health check passed (or none defined). */
export function instanceReady(inst: Instance, spec: PodSpec | undefined): boolean {
  const o = inst.observed;
  if (!o || o.state !== 'running' || o.observedSpecVersion !== inst.specVersion || o.observedResetGeneration !== inst.resetGeneration) return false;
  const checked = new Set((spec?.containers ?? []).filter((c) => c.healthCheck).map((c) => c.name));
  return o.containers.every((c) => (checked.has(c.name) ? c.healthy === true : c.healthy !== false));
}

/** The instance's phase for what the agent last saw; one being removed is `stopped` already. */
export function instancePhase(inst: Instance): InstancePhase {
  if (inst.goal === 'removed') return 'stopped';
  switch (inst.observed?.state) {
    case undefined:
    case 'pending':
      return inst.nodeId ? 'placed' : 'unplaced';
    case 'pulling':
    case 'creating':
    case 'running':
    case 'exited':
    case 'failed':
      return inst.observed.state;
    case 'stopped':
    case 'removed':
      return 'stopped';
  }
}
