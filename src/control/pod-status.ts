import { derivePodStatus, type DesiredStatus, type Instance, type PodStatus } from '../model/index.js';

const PRIORITY: PodStatus[] = ['ERROR', 'STARTING', 'PROVISIONING', 'EXITED', 'RUNNING', 'TERMINATED'];

/**
 * The pod's status and message from what the user wants and what its instances report. `away`
 * says, for an instance whose node is not answering, what the pod's message should say (null: its
 * node answers): such an instance keeps its last status, the message says why it may be stale, and
 * one already replaced elsewhere (goal `removed`) counts no more. `unplacedReason`: why instances
 * not yet placed — or, for a start waiting for its team's quota, not yet started — wait.
 */
export function summarize(desired: DesiredStatus, all: Instance[], unplacedReason: string | null, away?: (i: Instance) => string | null): { status: PodStatus; message: string | null } {
  const instances = away ? all.filter((i) => !(i.goal === 'removed' && desired !== 'TERMINATED' && away(i))) : all;
  if (desired === 'TERMINATED') {
    // TERMINATED once the nodes have removed every container (an instance row goes with its node's
    // report that it is removed), not before: until then the pod says what it still is, and why.
    const left = instances.filter((i) => i.nodeId);
    if (left.length === 0) return { status: 'TERMINATED', message: null };
    const stopping = summarize('EXITED', left, null);
    return { status: stopping.status, message: `terminating: ${stopping.message ?? 'waiting for the node to remove the containers'}` };
  }
  if (instances.length === 0) return { status: desired === 'RUNNING' ? 'RUNNING' : 'EXITED', message: 'scaled to 0 instances' };
  const each = instances.map((i) => {
    if (!i.nodeId && desired === 'RUNNING') return { status: 'PROVISIONING' as PodStatus, message: unplacedReason ?? 'waiting to be placed' };
    // A start that waits for its team's quota: still stopped on its node until the placement pass starts it.
    if (i.goal === 'stopped' && desired === 'RUNNING') return { status: 'PROVISIONING' as PodStatus, message: unplacedReason ?? 'waiting to start' };
    const o = i.observed;
    return { status: derivePodStatus(desired, o?.state, o?.exitCode), message: o?.message ?? null };
  });
  const statuses = new Set(each.map((e) => e.status));
  // Mixed instances: a pod serving from any instance counts as RUNNING; Marathon's view says DEGRADED.
  const status = statuses.size === 1 ? each[0]!.status : statuses.has('RUNNING') ? 'RUNNING' : PRIORITY.find((s) => statuses.has(s))!;
  const lost = away ? instances.filter((i) => i.goal === 'running').map(away).find((m) => m) : undefined;
  const message = lost ?? each.find((e) => e.status === status && e.message)?.message ?? null;
  return { status, message };
}
