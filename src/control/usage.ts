import type { InstanceId, InstanceUsage, NodeId, PodId, UsageReport, UsageSample } from '../model/index.js';
import type { Store } from '../store/types.js';

export interface UsageServiceOptions {
  /** How long the history keeps samples. @default 24 h */
  retentionMs?: number;
  /** How often samples older than the retention are deleted. @default 10 min */
  pruneEveryMs?: number;
  logger?: { warn(obj: object, msg: string): void };
}

/** A sample another server relayed is dropped when its node's batches stop naming it this long. */
const STALE_REMOTE_MS = 60_000;

interface Latest {
  podId: PodId;
  nodeId: NodeId;
  usage: InstanceUsage;
}

/**
 * What running instances use: the latest sample of each in memory (for views, the idle policy and
 * the metrics endpoint) and one a minute written to the store's history. Samples take their own
 * path from the agents (AgentChannel.reportUsage), never the instance's observation: a sample every
 * few seconds must not move pod revisions or wake watchers of pods.
 */
export class UsageService {
  private readonly latest = new Map<InstanceId, Latest>();
  private readonly byPod = new Map<PodId, Set<InstanceId>>();
  private readonly byNode = new Map<NodeId, Set<InstanceId>>();
  /** The minute last written per instance: the history keeps one sample a minute. */
  private readonly written = new Map<InstanceId, string>();
  private readonly retentionMs: number;
  private readonly pruner: NodeJS.Timeout;
  /** Batches received, by node: the agents' report counter of the metrics endpoint. */
  reports = 0;
  private readonly recorded = new Set<(nodeId: NodeId, samples: Array<[InstanceId, PodId, InstanceUsage]>) => void>();

  constructor(
    private readonly store: Store,
    private readonly opts: UsageServiceOptions = {},
  ) {
    this.retentionMs = opts.retentionMs ?? 24 * 3600_000;
    this.pruner = setInterval(() => void this.prune().catch((err: unknown) => opts.logger?.warn({ err }, 'pruning the usage history failed')), opts.pruneEveryMs ?? 10 * 60_000);
    this.pruner.unref();
  }

  close(): void {
    clearInterval(this.pruner);
  }

  /**
   * Takes a node's batch: the latest sample of each instance it names, which replaces the node's
   * previous batch (an instance it no longer names has stopped running there). Samples of instances
   * not assigned to the node are ignored.
   */
  async record(nodeId: NodeId, reports: UsageReport[]): Promise<void> {
    this.reports++;
    const keep = new Set<InstanceId>();
    const history: UsageSample[] = [];
    for (const { instanceId, usage } of reports) {
      let podId = this.latest.get(instanceId)?.nodeId === nodeId ? this.latest.get(instanceId)?.podId : undefined;
      if (!podId) {
        const inst = await this.store.getInstance(instanceId);
        if (!inst || inst.nodeId !== nodeId) continue;
        podId = inst.podId;
      }
      keep.add(instanceId);
      this.set(instanceId, { podId, nodeId, usage });
      const minute = usage.at.slice(0, 16);
      if (this.written.get(instanceId) !== minute) {
        this.written.set(instanceId, minute);
        history.push({ podId, instanceId, nodeId, usage });
      }
    }
    for (const id of [...(this.byNode.get(nodeId) ?? [])]) if (!keep.has(id)) this.drop(id);
    if (history.length) await this.store.putUsageSamples(history);
    if (this.recorded.size > 0) {
      const samples = [...keep].map((id) => [id, this.latest.get(id)!.podId, this.latest.get(id)!.usage] as [InstanceId, PodId, InstanceUsage]);
      for (const l of this.recorded) l(nodeId, samples);
    }
  }

  /** Hears each batch taken here (the cluster bus tells the other servers). */
  onRecorded(listener: (nodeId: NodeId, samples: Array<[InstanceId, PodId, InstanceUsage]>) => void): () => void {
    this.recorded.add(listener);
    return () => this.recorded.delete(listener);
  }

  /**
   * Takes samples another server received (cluster-bus.ts): the latest only, the history is that
   * server's to write. The node's instances not heard of for a minute have stopped running there.
   */
  ingest(nodeId: NodeId, samples: Array<[InstanceId, PodId, InstanceUsage]>, now = Date.now()): void {
    for (const [instanceId, podId, usage] of samples) this.set(instanceId, { podId, nodeId, usage });
    for (const id of [...(this.byNode.get(nodeId) ?? [])]) {
      const at = Date.parse(this.latest.get(id)?.usage.at ?? '');
      if (!(now - at < STALE_REMOTE_MS)) this.drop(id);
    }
  }

  /** The latest sample of each of the pod's running instances; empty when none was measured. */
  async latestUsage(podId: PodId): Promise<Array<{ instanceId: InstanceId; usage: InstanceUsage }>> {
    return this.latestOf(podId);
  }

  /** As latestUsage, without a promise: for views rendered in one pass. */
  latestOf(podId: PodId): Array<{ instanceId: InstanceId; usage: InstanceUsage }> {
    const ids = this.byPod.get(podId);
    if (!ids) return [];
    return [...ids].sort().flatMap((instanceId) => {
      const l = this.latest.get(instanceId);
      return l ? [{ instanceId, usage: l.usage }] : [];
    });
  }

  /** Every instance's latest sample: what the metrics endpoint exports. */
  all(): IterableIterator<[InstanceId, Latest]> {
    return this.latest.entries();
  }

  /** The pod's history since `since` (ISO), one sample per instance per minute, oldest first. */
  history(podId: PodId, since: string): Promise<UsageSample[]> {
    return this.store.listUsageSamples(podId, since);
  }

  /** Deletes history older than the retention; returns how many samples went. */
  prune(now = Date.now()): Promise<number> {
    return this.store.pruneUsageSamples(new Date(now - this.retentionMs).toISOString());
  }

  private set(id: InstanceId, l: Latest): void {
    const prev = this.latest.get(id);
    if (prev && (prev.podId !== l.podId || prev.nodeId !== l.nodeId)) this.drop(id);
    this.latest.set(id, l);
    index(this.byPod, l.podId, id);
    index(this.byNode, l.nodeId, id);
  }

  private drop(id: InstanceId): void {
    const l = this.latest.get(id);
    if (!l) return;
    this.latest.delete(id);
    this.written.delete(id);
    unindex(this.byPod, l.podId, id);
    unindex(this.byNode, l.nodeId, id);
  }
}

function index<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(value);
}

function unindex<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(value);
  if (set.size === 0) map.delete(key);
}
