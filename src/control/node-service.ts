/** Cordon, uncordon and drain: an operator taking a node out of placement, and moving what can move off it. */
import { notFound, type InstanceId, type Node, type NodeId, type PodId } from '../model/index.js';
import type { Store } from '../store/types.js';
import { requireAdmin, type Caller } from './caller.js';
import { boundToNode } from './node-binding.js';
import type { PodService } from './pods.js';

export interface DrainReport {
  node: Node;
  /** Placed again elsewhere: the old instance is removed from the node, a new one runs (or waits to) at `to`. */
  moved: { podId: PodId; instanceId: InstanceId; replacement: InstanceId; to: NodeId | null }[];
  /** Left on the node, each with why. */
  stays: { podId: PodId; instanceId: InstanceId; reason: string }[];
}

export class NodeService {
  constructor(
    private readonly store: Store,
    private readonly pods: PodService,
  ) {}

  private async node(id: string): Promise<Node> {
    const nodes = await this.store.listNodes();
    const node = nodes.find((n) => n.id === id) ?? nodes.find((n) => n.name === id);
    if (!node) throw notFound('node', id);
    return node;
  }

  /** The node takes no new instances; what runs there stays. */
  async cordon(caller: Caller, id: string): Promise<Node> {
    requireAdmin(caller, 'cordon nodes');
    return this.store.setNodeState((await this.node(id)).id, { cordoned: true });
  }

  async uncordon(caller: Caller, id: string): Promise<Node> {
    requireAdmin(caller, 'uncordon nodes');
    const node = await this.store.setNodeState((await this.node(id)).id, { cordoned: false });
    await this.pods.placeWaiting();
    return node;
  }

  /**
   * Cordon, then move every instance that may leave: each is placed on another node first and
   * removed from this one only once placed; one no other node can take now stays, as do those
   * bound to the node's storage (`boundToNode`).
   */
  async drain(caller: Caller, id: string): Promise<DrainReport> {
    requireAdmin(caller, 'drain nodes');
    const node = await this.store.setNodeState((await this.node(id)).id, { cordoned: true });
    const report: DrainReport = { node, moved: [], stays: [] };
    for (const inst of await this.store.listInstances({ nodeId: node.id })) {
      if (inst.goal !== 'running') continue;
      const spec = (await this.store.getPodVersion(inst.podId, inst.specVersion))?.spec;
      const pod = await this.store.getPod(inst.podId);
      if (!spec || !pod || pod.pod.desiredStatus !== 'RUNNING') continue;
      const bound = boundToNode(spec, await this.pods.networkVolumeHeld(spec));
      if (bound) {
        report.stays.push({ podId: inst.podId, instanceId: inst.id, reason: bound });
        continue;
      }
      const r = await this.pods.moveInstance(inst.id, { keepIfUnplaced: true });
      if (!r) continue;
      if ('unplaced' in r) report.stays.push({ podId: inst.podId, instanceId: inst.id, reason: `no other node can take it now: ${r.unplaced}` });
      else report.moved.push({ podId: inst.podId, instanceId: inst.id, replacement: r.moved.id, to: r.moved.nodeId });
    }
    return report;
  }
}
