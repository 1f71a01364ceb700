/**
 * The reconcile decision: given what an instance should be and the containers Docker has for it,
 * what one pass does. Pure: the runner acts on it.
 */
import type { Assignment } from '../control/agent-protocol.js';
import type { ContainerInfo } from '../runtime/types.js';
import { usesInfra } from './container-plan.js';
import { isInfra, LABELS, sortContainers } from './labels.js';

export type Action =
  /** No assignment claims the instance any more: remove its containers and every volume of its own. */
  | 'forget'
  /** Goal stopped: remove the containers, keep the volume disk and persistent volumes. */
  | 'stop'
  /** Goal removed: remove the containers and all the instance's volumes. */
  | 'remove'
  /** Nothing ran before: create and start every container. */
  | 'launch'
  /** A new instance in place of the old: new containers and fresh ephemeral volumes. */
  | 'replace'
  /** A restart was asked for: the app containers restart, keeping their disk. */
  | 'restart-in-place'
  /** A health check condemned the instance: its running containers are stopped, and the exit handled as any other. */
  | 'stop-unhealthy'
  /** The backoff ran out for a single container: the exited ones start again. */
  | 'restart-exited'
  /** Nothing to change: report what runs and handle an exit. */
  | 'observe';

/** Why an instance is replaced. */
export type ReplaceCause = 'incomplete' | 'restart' | 'backoff';

export interface Decision {
  action: Action;
  /** Set for 'replace'. */
  cause?: ReplaceCause;
  /** Containers of another spec version or reset generation: removed before anything else. */
  stale: ContainerInfo[];
  /** The containers of the assignment's generation, the infra container first, then the spec's order. */
  current: ContainerInfo[];
  /** The restart generation done once this is acted on; null: as it was. */
  restartGenerationDone: number | null;
}

/** What the runner knows that Docker does not. */
export interface LocalFacts {
  /** The restart generation last acted on; null when the runner has not acted on one. */
  restartGenerationDone: number | null;
  /** A failed health check condemned the instance. */
  unhealthy: boolean;
  /** The backoff after an exit or a failed launch ran out. */
  restartDue: boolean;
}

export function decide(a: Assignment | undefined, containers: ContainerInfo[], local: LocalFacts): Decision {
  if (!a) return only('forget');
  if (a.goal !== 'running') return only(a.goal === 'removed' ? 'remove' : 'stop');

  // The infra container first, then the spec's order: the one holding the network namespace must (re)start before those joining it.
  const current = sortContainers(
    a.spec,
    containers.filter((c) => c.labels[LABELS.version] === String(a.specVersion) && c.labels[LABELS.reset] === String(a.resetGeneration)),
  );
  const stale = containers.filter((c) => !current.includes(c));
  const infra = usesInfra(a.spec);
  const decision = (action: Action, restartGenerationDone: number | null, cause?: ReplaceCause): Decision => ({ action, ...(cause ? { cause } : {}), stale, current, restartGenerationDone });

  if (current.length !== a.spec.containers.length + (infra ? 1 : 0) || current.some(isInfra) !== infra) {
    // Nothing ran before (a first launch): nothing to replace either.
    return containers.length > 0 ? decision('replace', null, 'incomplete') : decision('launch', null);
  }
  // A restart asked for while the agent was away is not lost: the node's last report says which it did.
  const done = local.restartGenerationDone ?? a.observedRestartGeneration ?? a.restartGeneration;
  if (a.restartGeneration > done) {
    // The infra container keeps the namespace; without it running the containers have no network to restart into.
    if (current.some((c) => isInfra(c) && c.state !== 'running')) return decision('replace', a.restartGeneration, 'restart');
    return decision('restart-in-place', a.restartGeneration);
  }
  if (local.unhealthy && current.some((c) => !isInfra(c) && c.state === 'running')) return decision('stop-unhealthy', done);
  if (local.restartDue) {
    // As Marathon: one failing container replaces the whole instance; a single container restarts in place.
    return infra || local.unhealthy ? decision('replace', done, 'backoff') : decision('restart-exited', done);
  }
  return decision('observe', done);
}

function only(action: 'forget' | 'stop' | 'remove'): Decision {
  return { action, stale: [], current: [], restartGenerationDone: null };
}
