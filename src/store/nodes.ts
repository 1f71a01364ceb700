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
}

export function nodeStore(ctx: StoreContext): NodeStore {
  return {
    upsertNode: (node) =>
      ctx.write(async ({ db, record }) => {
        // nodeId on a node's own changes lets an agent watch its record with the same filter.
        const revision = await record('node', node.id, node.id);
        const { id: _id, registered_at: _registeredAt, ...update } = nodeToRow({ ...node, revision });
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
  };
}
