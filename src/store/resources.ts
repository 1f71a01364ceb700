import {
  notFound,
  type NetworkVolume,
  type NetworkVolumeId,
  type NodeId,
  type OwnerId,
  type RegistryAuth,
  type RegistryAuthId,
  type Secret,
  type Template,
  type TemplateId,
} from '../model/index.js';
import { unique, type StoreContext } from './context.js';
import {
  networkVolumeFromRow,
  networkVolumeToRow,
  registryAuthFromRow,
  registryAuthToRow,
  secretFromRow,
  secretToRow,
  templateFromRow,
  templateToRow,
} from './rows.js';

/*
 * What an owner keeps beside pods and pods are made from or refer to: network volumes, templates,
 * registry credentials and secrets. Plain rows: no change is recorded for them.
 */

export interface NetworkVolumeStore {
  createNetworkVolume(v: NetworkVolume): Promise<NetworkVolume>;
  getNetworkVolume(id: NetworkVolumeId): Promise<NetworkVolume | undefined>;
  listNetworkVolumes(owner?: OwnerId): Promise<NetworkVolume[]>;
  updateNetworkVolume(id: NetworkVolumeId, patch: Partial<Pick<NetworkVolume, 'name' | 'sizeGb'>>): Promise<NetworkVolume>;
  /** Binds the volume to a node unless it is bound already; answers the volume as stored (bound to the first node that asked). */
  bindNetworkVolume(id: NetworkVolumeId, nodeId: NodeId): Promise<NetworkVolume>;
  deleteNetworkVolume(id: NetworkVolumeId): Promise<void>;
}

/** Templates; the name is unique per owner. */
export interface TemplateStore {
  createTemplate(t: Template): Promise<Template>;
  getTemplate(id: TemplateId): Promise<Template | undefined>;
  listTemplates(owner?: OwnerId): Promise<Template[]>;
  updateTemplate(id: TemplateId, patch: Partial<Pick<Template, 'name' | 'pod' | 'readme' | 'updatedAt'>>): Promise<Template>;
  deleteTemplate(id: TemplateId): Promise<void>;
}

/** Registry credentials; the password stays sealed in the store. */
export interface RegistryAuthStore {
  createRegistryAuth(r: RegistryAuth): Promise<RegistryAuth>;
  getRegistryAuth(id: RegistryAuthId): Promise<RegistryAuth | undefined>;
  listRegistryAuths(owner?: OwnerId): Promise<RegistryAuth[]>;
  deleteRegistryAuth(id: RegistryAuthId): Promise<void>;
}

/** Secrets; the name is unique per owner and values stay sealed in the store. */
export interface SecretStore {
  /** Creates or replaces the owner's secret of that name. */
  putSecret(s: Secret): Promise<Secret>;
  getSecret(owner: OwnerId, name: string): Promise<Secret | undefined>;
  listSecrets(owner?: OwnerId): Promise<Secret[]>;
  deleteSecret(owner: OwnerId, name: string): Promise<void>;
}

export function networkVolumeStore(ctx: StoreContext): NetworkVolumeStore {
  return {
    async createNetworkVolume(v) {
      await unique(ctx, () => ctx.db.insertInto('network_volumes').values(networkVolumeToRow(v)).execute(), `network volume ${v.id} already exists`);
      return v;
    },

    async getNetworkVolume(id) {
      const row = await ctx.db.selectFrom('network_volumes').selectAll().where('id', '=', id).executeTakeFirst();
      return row && networkVolumeFromRow(row);
    },

    async listNetworkVolumes(owner) {
      let q = ctx.db.selectFrom('network_volumes').selectAll();
      if (owner !== undefined) q = q.where('owner', '=', owner);
      return (await q.orderBy('created_at').orderBy('id').execute()).map(networkVolumeFromRow);
    },

    async updateNetworkVolume(id, patch) {
      const set: { name?: string; size_gb?: number } = {};
      if (patch.name !== undefined) set.name = patch.name;
      if (patch.sizeGb !== undefined) set.size_gb = patch.sizeGb;
      // An empty patch still answers with the volume (or not-found), like any other update.
      const row =
        Object.keys(set).length === 0
          ? await ctx.db.selectFrom('network_volumes').selectAll().where('id', '=', id).executeTakeFirst()
          : await ctx.db.updateTable('network_volumes').set(set).where('id', '=', id).returningAll().executeTakeFirst();
      if (!row) throw notFound('network volume', id);
      return networkVolumeFromRow(row);
    },

    async bindNetworkVolume(id, nodeId) {
      await ctx.db.updateTable('network_volumes').set({ node_id: nodeId }).where('id', '=', id).where('node_id', 'is', null).execute();
      const row = await ctx.db.selectFrom('network_volumes').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) throw notFound('network volume', id);
      return networkVolumeFromRow(row);
    },

    async deleteNetworkVolume(id) {
      const result = await ctx.db.deleteFrom('network_volumes').where('id', '=', id).executeTakeFirst();
      if (result.numDeletedRows === 0n) throw notFound('network volume', id);
    },
  };
}

// Template ids are 10 random base-36 characters, so a unique violation is the (owner, name) pair.
const templateConflict = (name: string): string => `a template named ${name} already exists`;

export function templateStore(ctx: StoreContext): TemplateStore {
  return {
    async createTemplate(t) {
      await unique(ctx, () => ctx.db.insertInto('templates').values(templateToRow(t)).execute(), templateConflict(t.name));
      return t;
    },

    async getTemplate(id) {
      const row = await ctx.db.selectFrom('templates').selectAll().where('id', '=', id).executeTakeFirst();
      return row && templateFromRow(row);
    },

    async listTemplates(owner) {
      let q = ctx.db.selectFrom('templates').selectAll();
      if (owner !== undefined) q = q.where('owner', '=', owner);
      return (await q.orderBy('created_at').orderBy('id').execute()).map(templateFromRow);
    },

    async updateTemplate(id, patch) {
      const set: { name?: string; pod?: string; readme?: string; updated_at?: string } = {};
      if (patch.name !== undefined) set.name = patch.name;
      if (patch.pod !== undefined) set.pod = JSON.stringify(patch.pod);
      if (patch.readme !== undefined) set.readme = patch.readme;
      if (patch.updatedAt !== undefined) set.updated_at = patch.updatedAt;
      const row =
        Object.keys(set).length === 0
          ? await ctx.db.selectFrom('templates').selectAll().where('id', '=', id).executeTakeFirst()
          : await unique(
              ctx,
              () => ctx.db.updateTable('templates').set(set).where('id', '=', id).returningAll().executeTakeFirst(),
              templateConflict(patch.name ?? ''),
            );
      if (!row) throw notFound('template', id);
      return templateFromRow(row);
    },

    async deleteTemplate(id) {
      const result = await ctx.db.deleteFrom('templates').where('id', '=', id).executeTakeFirst();
      if (result.numDeletedRows === 0n) throw notFound('template', id);
    },
  };
}

export function registryAuthStore(ctx: StoreContext): RegistryAuthStore {
  return {
    async createRegistryAuth(r) {
      await unique(ctx, () => ctx.db.insertInto('registry_auths').values(registryAuthToRow(r)).execute(), `registry auth ${r.id} already exists`);
      return r;
    },

    async getRegistryAuth(id) {
      const row = await ctx.db.selectFrom('registry_auths').selectAll().where('id', '=', id).executeTakeFirst();
      return row && registryAuthFromRow(row);
    },

    async listRegistryAuths(owner) {
      let q = ctx.db.selectFrom('registry_auths').selectAll();
      if (owner !== undefined) q = q.where('owner', '=', owner);
      return (await q.orderBy('created_at').orderBy('id').execute()).map(registryAuthFromRow);
    },

    async deleteRegistryAuth(id) {
      const result = await ctx.db.deleteFrom('registry_auths').where('id', '=', id).executeTakeFirst();
      if (result.numDeletedRows === 0n) throw notFound('registry auth', id);
    },
  };
}

export function secretStore(ctx: StoreContext): SecretStore {
  return {
    async putSecret(secret) {
      const row = secretToRow(secret);
      // A replaced secret keeps its createdAt: the row returned is the stored one, not `secret`.
      const stored = await ctx.db
        .insertInto('secrets')
        .values(row)
        .onConflict((oc) => oc.columns(['owner', 'name']).doUpdateSet({ value_sealed: row.value_sealed, updated_at: row.updated_at }))
        .returningAll()
        .executeTakeFirstOrThrow();
      return secretFromRow(stored);
    },

    async getSecret(owner, name) {
      const row = await ctx.db.selectFrom('secrets').selectAll().where('owner', '=', owner).where('name', '=', name).executeTakeFirst();
      return row && secretFromRow(row);
    },

    async listSecrets(owner) {
      let q = ctx.db.selectFrom('secrets').selectAll();
      if (owner !== undefined) q = q.where('owner', '=', owner);
      return (await q.orderBy('owner').orderBy('name').execute()).map(secretFromRow);
    },

    async deleteSecret(owner, name) {
      const result = await ctx.db.deleteFrom('secrets').where('owner', '=', owner).where('name', '=', name).executeTakeFirst();
      if (result.numDeletedRows === 0n) throw notFound('secret', name);
    },
  };
}
