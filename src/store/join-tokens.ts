import type { Insertable, Selectable } from 'kysely';
import { notFound, type JoinToken, type JoinTokenId, type NodeCredential, type NodeCredentialId, type NodeId } from '../model/index.js';
import { unique, type StoreContext } from './context.js';
import type { JoinTokensTable, NodeCredentialsTable } from './schema.js';

/** Join tokens, kept as hashes (model/join.ts). */
export interface JoinTokenStore {
  createJoinToken(t: JoinToken): Promise<JoinToken>;
  findJoinTokenByHash(hash: string): Promise<JoinToken | undefined>;
  listJoinTokens(): Promise<JoinToken[]>;
  /** Marks the token revoked (kept, so a join with it is told so); NOT_FOUND when there is none. */
  revokeJoinToken(id: JoinTokenId, at: string): Promise<void>;
  /**
   * Takes one use of the token, at once and only while it is live (not revoked, not expired at `at`,
   * uses left): false when it was not. Two joins racing for a token's last use cannot both have it.
   */
  useJoinToken(id: JoinTokenId, at: string): Promise<boolean>;
  /** Forgets tokens revoked or expired before `before`; returns how many. */
  pruneJoinTokens(before: string): Promise<number>;
}

/** Node credentials, kept as hashes; a node's go with it. */
export interface NodeCredentialStore {
  createNodeCredential(c: NodeCredential): Promise<NodeCredential>;
  findNodeCredentialByHash(hash: string): Promise<NodeCredential | undefined>;
  touchNodeCredential(id: NodeCredentialId, at: string): Promise<void>;
  /** Deletes the node's record and its credentials (its agent is refused from then on); NOT_FOUND when there is no such node. */
  deleteNode(id: NodeId): Promise<void>;
}

const tokenFromRow = (r: Selectable<JoinTokensTable>): JoinToken => ({
  id: r.id,
  description: r.description,
  labels: JSON.parse(r.labels) as Record<string, string>,
  hash: r.hash,
  maxUses: r.max_uses === null ? null : Number(r.max_uses),
  uses: Number(r.uses),
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at,
});

const tokenToRow = (t: JoinToken): Insertable<JoinTokensTable> => ({
  id: t.id,
  description: t.description,
  labels: JSON.stringify(t.labels),
  hash: t.hash,
  max_uses: t.maxUses,
  uses: t.uses,
  expires_at: t.expiresAt,
  revoked_at: t.revokedAt,
  created_at: t.createdAt,
  last_used_at: t.lastUsedAt,
});

const credentialFromRow = (r: Selectable<NodeCredentialsTable>): NodeCredential => ({
  id: r.id,
  nodeId: r.node_id,
  hash: r.hash,
  tokenId: r.token_id,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at,
});

export function joinTokenStore(ctx: StoreContext): JoinTokenStore {
  return {
    async createJoinToken(t) {
      await unique(ctx, () => ctx.db.insertInto('join_tokens').values(tokenToRow(t)).execute(), `join token ${t.id} already exists`);
      return t;
    },

    async findJoinTokenByHash(hash) {
      const row = await ctx.db.selectFrom('join_tokens').selectAll().where('hash', '=', hash).executeTakeFirst();
      return row && tokenFromRow(row);
    },

    async listJoinTokens() {
      return (await ctx.db.selectFrom('join_tokens').selectAll().orderBy('created_at').orderBy('id').execute()).map(tokenFromRow);
    },

    async revokeJoinToken(id, at) {
      const result = await ctx.db.updateTable('join_tokens').set({ revoked_at: at }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
      if (result.numUpdatedRows > 0n) return;
      const row = await ctx.db.selectFrom('join_tokens').select('id').where('id', '=', id).executeTakeFirst();
      if (!row) throw notFound('join token', id);
    },

    async useJoinToken(id, at) {
      const result = await ctx.db
        .updateTable('join_tokens')
        .set((eb) => ({ uses: eb('uses', '+', 1), last_used_at: at }))
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', at)]))
        .where((eb) => eb.or([eb('max_uses', 'is', null), eb('uses', '<', eb.ref('max_uses'))]))
        .executeTakeFirst();
      return result.numUpdatedRows > 0n;
    },

    async pruneJoinTokens(before) {
      const result = await ctx.db
        .deleteFrom('join_tokens')
        .where((eb) => eb.or([eb('revoked_at', '<', before), eb('expires_at', '<', before)]))
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}

export function nodeCredentialStore(ctx: StoreContext): NodeCredentialStore {
  return {
    async createNodeCredential(c) {
      await unique(
        ctx,
        () => ctx.db.insertInto('node_credentials').values({ id: c.id, node_id: c.nodeId, hash: c.hash, token_id: c.tokenId, created_at: c.createdAt, last_used_at: c.lastUsedAt }).execute(),
        `node credential ${c.id} already exists`,
      );
      return c;
    },

    async findNodeCredentialByHash(hash) {
      const row = await ctx.db.selectFrom('node_credentials').selectAll().where('hash', '=', hash).executeTakeFirst();
      return row && credentialFromRow(row);
    },

    async touchNodeCredential(id, at) {
      await ctx.db.updateTable('node_credentials').set({ last_used_at: at }).where('id', '=', id).execute();
    },

    deleteNode: (id) =>
      ctx.write(async ({ db, record }) => {
        await db.deleteFrom('node_credentials').where('node_id', '=', id).execute();
        const result = await db.deleteFrom('nodes').where('id', '=', id).executeTakeFirst();
        if (result.numDeletedRows === 0n) throw notFound('node', id);
        await record('node', id, id);
      }),
  };
}
