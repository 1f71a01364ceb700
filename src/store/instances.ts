import { notFound, type Instance, type InstanceId, type NodeId, type PodId } from '../model/index.js';
import { unique, type StoreContext } from './context.js';
import { bumpPod, requirePod } from './pods.js';
import { instanceFromRow, instancePatchToRow, instanceToRow, podPatchToRow } from './rows.js';
import type { InstancePatch, PodPatch } from './types.js';

/**
 * Instances: placements of a pod's spec on nodes. Each change is recorded with the instance's node
 * (so an agent watches only its own) and moves the pod's revision along (see pods.ts).
 */
export interface InstanceStore {
  getInstance(id: InstanceId): Promise<Instance | undefined>;
  /** `ids`: only these (one IN list: up to ten thousand or so, within both databases' bind limits). */
  listInstances(filter: { podId?: PodId; nodeId?: NodeId; ids?: readonly InstanceId[] }): Promise<Instance[]>;
  /** The ids of a node's instances, in listInstances' order: a watch's partial answer needs no more of the unchanged ones. */
  listInstanceIds(filter: { nodeId: NodeId }): Promise<InstanceId[]>;
  insertInstance(instance: Omit<Instance, 'revision'>): Promise<Instance>;
  updateInstance(id: InstanceId, patch: InstancePatch): Promise<Instance>;
  deleteInstance(id: InstanceId): Promise<void>;
  /**
   * A placement pass's batch in one transaction: waiting instances given a node and GPUs, and their
   * pods' new statuses. The same changes as updateInstance and updatePod would record, in fewer
   * statements: the pass knows each instance's pod and that it had no node.
   */
  placeInstances(placements: readonly InstancePlacement[], pods: readonly { id: PodId; patch: PodPatch }[]): Promise<void>;
}

export interface InstancePlacement {
  id: InstanceId;
  podId: PodId;
  nodeId: NodeId;
  gpuUuids: string[];
}

export function instanceStore(ctx: StoreContext): InstanceStore {
  return {
    async getInstance(id) {
      const row = await ctx.db.selectFrom('instances').selectAll().where('id', '=', id).executeTakeFirst();
      return row && instanceFromRow(row);
    },

    async listInstances(filter) {
      if (filter.ids?.length === 0) return [];
      let q = ctx.db.selectFrom('instances').selectAll();
      if (filter.podId !== undefined) q = q.where('pod_id', '=', filter.podId);
      if (filter.nodeId !== undefined) q = q.where('node_id', '=', filter.nodeId);
      if (filter.ids !== undefined) q = q.where('id', 'in', filter.ids);
      const rows = await q.orderBy('pod_id').orderBy('ordinal').execute();
      return rows.map(instanceFromRow);
    },

    async listInstanceIds(filter) {
      const rows = await ctx.db.selectFrom('instances').select('id').where('node_id', '=', filter.nodeId).orderBy('pod_id').orderBy('ordinal').execute();
      return rows.map((r) => r.id as InstanceId);
    },

    insertInstance: (instance) =>
      ctx.write(async ({ db, record }) => {
        await requirePod(db, instance.podId);
        const revision = await record('instance', instance.id, instance.nodeId);
        const row: Instance = { ...instance, revision };
        await unique(ctx, () => db.insertInto('instances').values(instanceToRow(row)).execute(), `instance ${instance.id} already exists`);
        await bumpPod(db, instance.podId, revision);
        return row;
      }),

    updateInstance: (id, patch) =>
      ctx.write(async ({ db, record }) => {
        const current = await db.selectFrom('instances').select(['pod_id', 'node_id']).where('id', '=', id).executeTakeFirst();
        if (!current) throw notFound('instance', id);
        const nodeId = patch.nodeId === undefined ? current.node_id : patch.nodeId;
        // Moved off a node: that node's agent must hear of it too, to stop what it runs.
        if (current.node_id !== null && current.node_id !== nodeId) await record('instance', id, current.node_id);
        const revision = await record('instance', id, nodeId);
        const row = await db
          .updateTable('instances')
          .set({ ...instancePatchToRow(patch), revision })
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirstOrThrow();
        await bumpPod(db, current.pod_id, revision);
        return instanceFromRow(row);
      }),

    placeInstances: (placements, pods) =>
      ctx.write(async ({ db, record }) => {
        // A pod whose status is written below gets a newer revision there; the others are bumped here.
        const patched = new Set(pods.map((p) => p.id));
        for (const p of placements) {
          const revision = await record('instance', p.id, p.nodeId);
          const result = await db.updateTable('instances').set({ node_id: p.nodeId, gpu_uuids: JSON.stringify(p.gpuUuids), revision }).where('id', '=', p.id).executeTakeFirst();
          if (result.numUpdatedRows === 0n) throw notFound('instance', p.id);
          if (!patched.has(p.podId)) await bumpPod(db, p.podId, revision);
        }
        const at = new Date().toISOString();
        for (const { id, patch } of pods) {
          const revision = await record('pod', id, null);
          const result = await db.updateTable('pods').set({ ...podPatchToRow(patch), updated_at: at, revision }).where('id', '=', id).executeTakeFirst();
          if (result.numUpdatedRows === 0n) throw notFound('pod', id);
        }
      }),

    async deleteInstance(id) {
      await ctx.write(async ({ db, record }) => {
        const current = await db.selectFrom('instances').select(['pod_id', 'node_id']).where('id', '=', id).executeTakeFirst();
        if (!current) throw notFound('instance', id);
        const revision = await record('instance', id, current.node_id);
        await db.deleteFrom('instances').where('id', '=', id).execute();
        await bumpPod(db, current.pod_id, revision);
      });
    },
  };
}
