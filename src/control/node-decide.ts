/**
 * The node monitor's decisions, pure: which nodes are NOT_READY or READY again, and what becomes of
 * an instance whose node is not answering. The monitor (node-monitor.ts) acts on them.
 */
import type { Instance, Node, PodSpec } from '../model/index.js';
import { boundToNode, unreachableAfterMs } from './node-binding.js';

/**
 * Nodes whose readiness the monitor must write: silent past the timeout and not yet marked. No node
 * is judged on silence from before `watchingSince` (the server's start): agents were calling a
 * server that was not there, and get one timeout to find it again.
 */
export function nodesGoneSilent(nodes: Node[], now: number, timeoutMs: number, watchingSince = 0): { node: Node; since: string }[] {
  const out: { node: Node; since: string }[] = [];
  for (const node of nodes) {
    if (node.notReadySince) continue;
    const seen = Math.max(Date.parse(node.lastSeenAt), watchingSince);
    if (now - seen > timeoutMs) out.push({ node, since: new Date(seen + timeoutMs).toISOString() });
  }
  return out;
}

export type LostVerdict =
  /** Nothing to do: its node answers, it runs nowhere, or nothing runs there to replace. */
  | { action: 'none' }
  /** Its node is gone for good and nothing of it can come back: the row goes. */
  | { action: 'forget' }
  /** Placed again elsewhere as a new instance; the old one gets goal `removed`. */
  | { action: 'replace' }
  /** Replaced at `at`, if its node is still silent then. */
  | { action: 'pending'; at: string }
  /** It stays with its node: `reason` says why. */
  | { action: 'wait'; reason: string };

/**
 * What becomes of an instance on a node that is NOT_READY (`node.notReadySince`) or no longer
 * registered (`node` undefined: removed for good, with whatever its disk held). `networkVolumeHeld`:
 * the pod's network volume lives on that node (see `boundToNode`).
 */
export function decideLost(inst: Pick<Instance, 'nodeId' | 'goal'>, spec: PodSpec, node: Node | undefined, now: number, defaultAfterMs?: number, networkVolumeHeld = false): LostVerdict {
  if (!inst.nodeId) return { action: 'none' };
  if (!node) {
    // Nothing of it is left anywhere: a running one starts again elsewhere (its volume disk is lost
    // with the node, and the pod says so); a stopped or removed one has nothing left to wait for.
    return inst.goal === 'running' ? { action: 'replace' } : { action: 'forget' };
  }
  if (!node.notReadySince || inst.goal !== 'running') return { action: 'none' };
  const bound = boundToNode(spec, networkVolumeHeld);
  if (bound) return { action: 'wait', reason: `${bound}; it waits for the node to come back` };
  const after = unreachableAfterMs(spec, defaultAfterMs);
  if (after === null) return { action: 'wait', reason: 'its unreachable strategy is disabled; it waits for the node to come back' };
  const at = Date.parse(node.notReadySince) + after;
  return now >= at ? { action: 'replace' } : { action: 'pending', at: new Date(at).toISOString() };
}

/** The pod's status message for an instance whose node is not answering. */
export function lostMessage(node: Node, verdict: LostVerdict): string {
  const head = `node ${node.name} is not answering (NOT_READY since ${node.notReadySince})`;
  switch (verdict.action) {
    case 'wait':
      return `${head}: ${verdict.reason}`;
    case 'pending':
      return `${head}: the instance is placed again elsewhere at ${verdict.at} unless the node comes back`;
    default:
      return `${head}: the instance is being placed again elsewhere`;
  }
}
