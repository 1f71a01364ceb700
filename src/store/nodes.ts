import { notFound, type Node, type NodeId } from '../model/index.js';
import type { StoreContext } from './context.js';
import { nodeFromRow, nodeToRow } from './rows.js';
import type { NodeInput } from './types.js';

/** The machines agents run on, as they registered and when they were last heard from. */
export interface NodeStore {
  /** A node that registers again keeps its first `registeredAt`. */
  upsertNode(node: NodeInput): Promise<Node>;
  getNode(id: NodeId): Promise<Node | undefined>;
  listNodes(): Promise<Node[]>;
  /** A heartbeat: sets `lastSeenAt` and records no change. */
  touchNode(id: NodeId, at: string): Promise<void>;
  /** Cordons or uncordons the node, or sets since when it is NOT_READY (null: READY); a recorded change, so views and placement see it. */
  setNodeState(id: NodeId, patch: { cordoned?: boolean; notReadySince?: string | null }): Promise<Node>;
}

export function nodeStore(ctx: StoreContext): NodeStore {
  return {
    upsertNode: (node) =>
      ctx.write(async ({ db, record }) => {
        // nodeId on a node's own changes lets an agent watch its record with the same filter.
        const revision = await record('node', node.id, node.id);
        // A registration says nothing of the cordon unless it sets it: an agent's restart keeps its node cordoned.
        const { id: _id, registered_at: _registeredAt, cordoned, ...rest } = nodeToRow({ ...node, revision });
        const update = node.cordoned === undefined ? rest : { ...rest, cordoned };
        const row = await db
          .insertInto('nodes')
          .values(nodeToRow({ ...node, revision }))
          .onConflict((oc) => oc.column('id').doUpdateSet(update))
          .returningAll()
          .executeTakeFirstOrThrow();
        return nodeFromRow(row);
      }),

    async getNode(id) {
      const row = await ctx.db.selectFrom('nodes').selectAll().where('id', '=', id).executeTakeFirst();
      return row && nodeFromRow(row);
    },

    async listNodes() {
      const rows = await ctx.db.selectFrom('nodes').selectAll().orderBy('name').orderBy('id').execute();
      return rows.map(nodeFromRow);
    },

    // No change is recorded, or every agent's beat would wake every watcher and grow the feed
    // without end. Node loss is found by time (lastSeenAt), which no change could announce anyway.
    async touchNode(id, at) {
      const result = await ctx.db.updateTable('nodes').set({ last_seen_at: at }).where('id', '=', id).executeTakeFirst();
      if (result.numUpdatedRows === 0n) throw notFound('node', id);
    },

    setNodeState: (id, patch) =>
      ctx.write(async ({ db, record }) => {
        const revision = await record('node', id, id);
        const row = await db
          .updateTable('nodes')
          .set({
            revision,
            ...(patch.cordoned !== undefined ? { cordoned: patch.cordoned ? 1 : 0 } : {}),
            ...(patch.notReadySince !== undefined ? { not_ready_since: patch.notReadySince } : {}),
          })
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirst();
        if (!row) throw notFound('node', id);
        return nodeFromRow(row);
      }),
  };
}
