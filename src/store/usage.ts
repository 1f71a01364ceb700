import type { InstanceId, InstanceUsage, NodeId, PodId, PodStatus, UsageSample } from '../model/index.js';
import type { StoreContext } from './context.js';

/**
 * The usage history: one sample per instance per minute (a later sample of the same minute replaces
 * the earlier), kept until pruned. No change is recorded and no revision moves: samples arrive every
 * few seconds for every running instance, and watchers of pods must not hear of them.
 */
export interface UsageStore {
  putUsageSamples(samples: UsageSample[]): Promise<void>;
  /** The pod's samples taken at or after `since` (ISO), oldest first. */
  listUsageSamples(podId: PodId, since: string): Promise<UsageSample[]>;
  /** Deletes samples taken before `before` (ISO); returns how many. */
  pruneUsageSamples(before: string): Promise<number>;
  /** Pods by status, terminated ones included: one grouped count, for the metrics endpoint. */
  countPodsByStatus(): Promise<Partial<Record<PodStatus, number>>>;
}

/** The minute a sample is kept under: `2026-12-05T16:48`. */
export const usageMinute = (at: string): string => at.slice(0, 16);

export function usageStore(ctx: StoreContext): UsageStore {
  return {
    async putUsageSamples(samples) {
      // One row per (instance, minute): the last sample of a batch for a minute wins, as the upsert would.
      const rows = new Map<string, { instance_id: InstanceId; minute: string; pod_id: PodId; node_id: NodeId | null; at: string; sample: string }>();
      for (const s of samples) {
        const minute = usageMinute(s.usage.at);
        rows.set(`${s.instanceId}\0${minute}`, { instance_id: s.instanceId, minute, pod_id: s.podId, node_id: s.nodeId, at: s.usage.at, sample: JSON.stringify(s.usage) });
      }
      if (rows.size === 0) return;
      await ctx.db
        .insertInto('usage_samples')
        .values([...rows.values()])
        .onConflict((oc) => oc.columns(['instance_id', 'minute']).doUpdateSet((eb) => ({ at: eb.ref('excluded.at'), sample: eb.ref('excluded.sample'), node_id: eb.ref('excluded.node_id') })))
        .execute();
    },

    async listUsageSamples(podId, since) {
      const rows = await ctx.db
        .selectFrom('usage_samples')
        .select(['pod_id', 'instance_id', 'node_id', 'sample'])
        .where('pod_id', '=', podId)
        .where('minute', '>=', usageMinute(since))
        .orderBy('minute')
        .orderBy('instance_id')
        .execute();
      return rows
        .map((r) => ({ podId: r.pod_id, instanceId: r.instance_id, nodeId: r.node_id, usage: JSON.parse(r.sample) as InstanceUsage }))
        .filter((s) => s.usage.at >= since);
    },

    async pruneUsageSamples(before) {
      const res = await ctx.db.deleteFrom('usage_samples').where('at', '<', before).executeTakeFirst();
      return Number(res.numDeletedRows);
    },

    async countPodsByStatus() {
      const rows = await ctx.db
        .selectFrom('pods')
        .select((eb) => ['status', eb.fn.countAll<number>().as('n')])
        .groupBy('status')
        .execute();
      return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
    },
  };
}
