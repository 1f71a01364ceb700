/**
 * The node monitor: marks a node NOT_READY when its agent has been silent past the node timeout,
 * and places again elsewhere the instances a lost node held once their pod's unreachable strategy
 * says so (the decisions are `decideLost` and `nodesGoneSilent`, pure, in node-decide.ts). A node
 * READY again is the agent service's to mark, on the agent's next call.
 */
import type { Logger } from 'pino';
import type { NodeId, PodId } from '../model/index.js';
import type { Store } from '../store/types.js';
import type { Leadership } from './leadership.js';
import { decideLost, nodesGoneSilent } from './node-decide.js';
import type { PodService } from './pods.js';

export interface NodeMonitorOptions {
  /** A node whose agent is silent this long is NOT_READY. @default 40000 */
  nodeTimeoutMs: number;
  /** For pods without a Marathon unreachable strategy: how long after NOT_READY their instances are placed again. @default 60000 */
  unreachableAfterMs?: number;
  logger?: Logger;
  /** Several servers: passes run on the leader, fenced by its lease. @default one server */
  leadership?: Pick<Leadership, 'lead'>;
}

export const DEFAULT_NODE_TIMEOUT_MS = 40_000;

export class NodeMonitor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** The nodes of the last pass: one that went from the store was removed, and what it held is looked at once. */
  private known = new Set<NodeId>();
  private first = true;
  /** Since when this server watches: a node is given a timeout's grace from then (a new leader has heard from no agent yet). */
  private startedAt = Date.now();

  constructor(
    private readonly store: Store,
    private readonly pods: PodService,
    private readonly options: NodeMonitorOptions,
  ) {}

  /** Judges every `nodeTimeout / 4` (at least 250 ms, at most 5 s). */
  start(): void {
    this.startedAt = Date.now();
    this.first = true;
    const every = Math.min(5_000, Math.max(250, Math.round(this.options.nodeTimeoutMs / 4)));
    this.timer = setInterval(() => void this.tick(), every);
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One pass; passes never overlap. */
  tick(): Promise<void> {
    const leadership = this.options.leadership;
    this.running ??= (leadership ? leadership.lead(() => this.pass()) : this.pass())
      .catch((err: unknown) => this.options.logger?.warn({ err }, 'node monitor pass failed'))
      .finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<void> {
    const now = Date.now();
    const nodes = await this.store.listNodes();
    const touched = new Set<PodId>();
    for (const { node, since } of nodesGoneSilent(nodes, now, this.options.nodeTimeoutMs, this.startedAt)) {
      const marked = await this.store.setNodeState(node.id, { notReadySince: since });
      const at = nodes.indexOf(node);
      nodes[at] = marked;
      this.options.logger?.warn({ node: node.name, lastSeenAt: node.lastSeenAt }, 'node is NOT_READY: its agent is not answering');
      for (const i of await this.store.listInstances({ nodeId: node.id })) touched.add(i.podId);
    }
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const gone = this.first ? null : [...this.known].filter((id) => !byId.has(id));
    this.known = new Set(byId.keys());
    const lost = nodes.filter((n) => n.notReadySince).map((n) => n.id);
    const instances = [];
    for (const id of lost) instances.push(...(await this.store.listInstances({ nodeId: id })));
    if (gone === null || gone.length > 0) {
      // At start, and when a node went from the store: what names a node that is no more.
      const all = gone === null ? await this.store.listInstances({}) : (await Promise.all(gone.map((id) => this.store.listInstances({ nodeId: id })))).flat();
      instances.push(...all.filter((i) => i.nodeId && !byId.has(i.nodeId)));
    }
    this.first = false;
    for (const inst of instances) {
      const spec = (await this.store.getPodVersion(inst.podId, inst.specVersion))?.spec;
      if (!spec) continue;
      const pod = await this.store.getPod(inst.podId);
      if (!pod) continue;
      if (pod.pod.desiredStatus === 'TERMINATED') {
        // A terminated pod does not wait for a node that is not answering: the row goes, and the
        // node's agent removes what no assignment claims when it is back.
        await this.pods.forgetInstance(inst.id);
        continue;
      }
      const verdict = decideLost(inst, spec, inst.nodeId ? byId.get(inst.nodeId) : undefined, now, this.options.unreachableAfterMs, await this.pods.networkVolumeHeld(spec));
      if (verdict.action === 'replace') {
        const r = await this.pods.moveInstance(inst.id);
        if (r && 'moved' in r) this.options.logger?.info({ instance: inst.id, replacement: r.moved.id, node: r.moved.nodeId }, 'placed again: its node is not answering');
      } else if (verdict.action === 'forget') {
        await this.pods.forgetInstance(inst.id);
      }
      // Waiting or pending: the pod's message said so when the node was marked (it names the time).
    }
    for (const podId of touched) await this.pods.refreshStatus(podId);
  }
}
