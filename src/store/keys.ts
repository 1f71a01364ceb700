import { notFound, type ApiKey, type ApiKeyId, type OwnerId, type SshKey, type SshKeyId } from '../model/index.js';
import { unique, type StoreContext } from './context.js';
import { apiKeyFromRow, apiKeyToRow, sshKeyFromRow, sshKeyToRow } from './rows.js';

/** The public keys the SSH gateway lets an owner in with. */
export interface SshKeyStore {
  createSshKey(k: SshKey): Promise<SshKey>;
  listSshKeys(owner: OwnerId): Promise<SshKey[]>;
  deleteSshKey(id: SshKeyId): Promise<void>;
}

/** API keys, kept as hashes: a request's key is found by its hash. */
export interface ApiKeyStore {
  createApiKey(k: ApiKey): Promise<ApiKey>;
  findApiKeyByHash(hash: string): Promise<ApiKey | undefined>;
  listApiKeys(owner?: OwnerId): Promise<ApiKey[]>;
  deleteApiKey(id: ApiKeyId): Promise<void>;
  touchApiKey(id: ApiKeyId, at: string): Promise<void>;
}

export function sshKeyStore(ctx: StoreContext): SshKeyStore {
  return {
    async createSshKey(k) {
      await unique(ctx, () => ctx.db.insertInto('ssh_keys').values(sshKeyToRow(k)).execute(), `SSH key ${k.id} already exists`);
      return k;
    },

    async listSshKeys(owner) {
      const rows = await ctx.db.selectFrom('ssh_keys').selectAll().where('owner', '=', owner).orderBy('created_at').orderBy('id').execute();
      return rows.map(sshKeyFromRow);
    },

    async deleteSshKey(id) {
      const result = await ctx.db.deleteFrom('ssh_keys').where('id', '=', id).executeTakeFirst();
      if (result.numDeletedRows === 0n) throw notFound('SSH key', id);
    },
  };
}

export function apiKeyStore(ctx: StoreContext): ApiKeyStore {
  return {
    async createApiKey(k) {
      await unique(ctx, () => ctx.db.insertInto('api_keys').values(apiKeyToRow(k)).execute(), `API key ${k.id} already exists`);
      return k;
    },

    async findApiKeyByHash(hash) {
      const row = await ctx.db.selectFrom('api_keys').selectAll().where('hash', '=', hash).executeTakeFirst();
      return row && apiKeyFromRow(row);
    },

    async listApiKeys(owner) {
      let q = ctx.db.selectFrom('api_keys').selectAll();
      if (owner !== undefined) q = q.where('owner', '=', owner);
      return (await q.orderBy('created_at').orderBy('id').execute()).map(apiKeyFromRow);
    },

    async deleteApiKey(id) {
      const result = await ctx.db.deleteFrom('api_keys').where('id', '=', id).executeTakeFirst();
      if (result.numDeletedRows === 0n) throw notFound('API key', id);
    },

    async touchApiKey(id, at) {
      const result = await ctx.db.updateTable('api_keys').set({ last_used_at: at }).where('id', '=', id).executeTakeFirst();
      if (result.numUpdatedRows === 0n) throw notFound('API key', id);
    },
  };
}
