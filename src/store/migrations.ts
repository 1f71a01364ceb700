import type { Kysely, Migration, MigrationProvider } from 'kysely';
import type { SqlDialect } from './dialect.js';

/*
 * Migrations live in code, not in files beside the build, so the one binary carries its schema.
 * Names sort in the order they run; a released migration is never edited, only followed by another.
 */

const initial = (dialect: SqlDialect): Migration => ({
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('pods')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('spec_version', 'integer', (c) => c.notNull())
      .addColumn('desired_status', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('status_message', 'text')
      .addColumn('node_id', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('last_started_at', 'text')
      .addColumn('terminated_at', 'text')
      .addColumn('revision', 'bigint', (c) => c.notNull())
      .execute();
    // The list order is (created_at, id); the owner's list is the API's most common query.
    await db.schema.createIndex('pods_created').on('pods').columns(['created_at', 'id']).execute();
    await db.schema.createIndex('pods_owner_created').on('pods').columns(['owner', 'created_at', 'id']).execute();
    await db.schema.createIndex('pods_status').on('pods').column('status').execute();
    await db.schema.createIndex('pods_node').on('pods').column('node_id').execute();

    await db.schema
      .createTable('pod_versions')
      .addColumn('pod_id', 'text', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('spec', 'text', (c) => c.notNull())
      .addColumn('images', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('pod_versions_pk', ['pod_id', 'version'])
      .execute();

    await db.schema
      .createTable('instances')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('pod_id', 'text', (c) => c.notNull().references('pods.id').onDelete('cascade'))
      .addColumn('ordinal', 'integer', (c) => c.notNull())
      .addColumn('node_id', 'text')
      .addColumn('spec_version', 'integer', (c) => c.notNull())
      .addColumn('goal', 'text', (c) => c.notNull())
      .addColumn('reset_generation', 'integer', (c) => c.notNull())
      .addColumn('restart_generation', 'integer', (c) => c.notNull())
      .addColumn('gpu_uuids', 'text', (c) => c.notNull())
      .addColumn('host_ports', 'text', (c) => c.notNull())
      .addColumn('observed', 'text')
      .addColumn('revision', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('instances_pod').on('instances').columns(['pod_id', 'ordinal']).execute();
    await db.schema.createIndex('instances_node').on('instances').column('node_id').execute();

    await db.schema
      .createTable('nodes')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('public_ip', 'text', (c) => c.notNull())
      .addColumn('labels', 'text', (c) => c.notNull())
      .addColumn('capacity', 'text', (c) => c.notNull())
      .addColumn('agent_version', 'text', (c) => c.notNull())
      .addColumn('registered_at', 'text', (c) => c.notNull())
      .addColumn('last_seen_at', 'text', (c) => c.notNull())
      .addColumn('revision', 'bigint', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('network_volumes')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('size_gb', 'integer', (c) => c.notNull())
      .addColumn('data_center_id', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('network_volumes_owner').on('network_volumes').column('owner').execute();

    await db.schema
      .createTable('templates')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('pod', 'text', (c) => c.notNull())
      .addColumn('readme', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('templates_owner_name', ['owner', 'name'])
      .execute();

    await db.schema
      .createTable('registry_auths')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('username', 'text', (c) => c.notNull())
      .addColumn('password_sealed', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('registry_auths_owner').on('registry_auths').column('owner').execute();

    await db.schema
      .createTable('ssh_keys')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('public_key', 'text', (c) => c.notNull())
      .addColumn('fingerprint', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('ssh_keys_owner').on('ssh_keys').column('owner').execute();

    await db.schema
      .createTable('api_keys')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull().unique())
      .addColumn('prefix', 'text', (c) => c.notNull())
      .addColumn('admin', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('last_used_at', 'text')
      .execute();
    await db.schema.createIndex('api_keys_owner').on('api_keys').column('owner').execute();

    // AUTOINCREMENT (SQLite) and a sequence (PostgreSQL) never reuse a number, even after the
    // newest rows are deleted: a watcher's revision must keep meaning the same change.
    await dialect
      .addRevisionKey(db.schema.createTable('changes'))
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('entity_id', 'text', (c) => c.notNull())
      .addColumn('node_id', 'text')
      .addColumn('at', 'text', (c) => c.notNull())
      .execute();
  },
});

const secrets: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('secrets')
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('value_sealed', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('secrets_pk', ['owner', 'name'])
      .execute();
  },
};

const deployments: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('deployments')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('pod_id', 'text', (c) => c.notNull())
      .addColumn('path', 'text', (c) => c.notNull())
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('version', 'text', (c) => c.notNull())
      .addColumn('to_version', 'integer', (c) => c.notNull())
      .addColumn('from_version', 'integer')
      .addColumn('started_at', 'text', (c) => c.notNull())
      .execute();
  },
};

/** Each version's Marathon path id in a column of its own (filled in from the stored specs), indexed. */
const marathonPaths: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable('pod_versions').addColumn('marathon_path', 'text').execute();
    const versions = db as unknown as Kysely<{ pod_versions: { pod_id: string; version: number; spec: string; marathon_path: string | null } }>;
    const rows = await versions.selectFrom('pod_versions').select(['pod_id', 'version', 'spec']).where('spec', 'like', '%"marathon":{%').execute();
    for (const r of rows) {
      const path = (JSON.parse(r.spec) as { marathon?: { id?: string } | null }).marathon?.id;
      if (path) await versions.updateTable('pod_versions').set({ marathon_path: path }).where('pod_id', '=', r.pod_id).where('version', '=', r.version).execute();
    }
    await db.schema.createIndex('pod_versions_marathon_path').on('pod_versions').column('marathon_path').execute();
  },
};

/** The usage history (usage.ts): read by pod and time, pruned by time. */
const usageSamples: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('usage_samples')
      .addColumn('instance_id', 'text', (c) => c.notNull())
      .addColumn('minute', 'text', (c) => c.notNull())
      .addColumn('pod_id', 'text', (c) => c.notNull())
      .addColumn('node_id', 'text')
      .addColumn('at', 'text', (c) => c.notNull())
      .addColumn('sample', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('usage_samples_pk', ['instance_id', 'minute'])
      .execute();
    await db.schema.createIndex('usage_samples_pod').on('usage_samples').columns(['pod_id', 'minute']).execute();
    await db.schema.createIndex('usage_samples_at').on('usage_samples').column('at').execute();
  },
};

/**
 * What the lifetime policies keep per pod: the owner's keep-alive, when it was last stopped (pods
 * stopped before now count from their last change) and what a policy last did.
 */
const podLifetimes: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable('pods').addColumn('keep_alive_until', 'text').execute();
    await db.schema.alterTable('pods').addColumn('last_stopped_at', 'text').execute();
    await db.schema.alterTable('pods').addColumn('lifetime_note', 'text').execute();
    const pods = db as unknown as Kysely<{ pods: { desired_status: string; updated_at: string; last_stopped_at: string | null } }>;
    await pods.updateTable('pods').set((eb) => ({ last_stopped_at: eb.ref('updated_at') })).where('desired_status', '=', 'EXITED').execute();
  },
};

/** Teams (the owners of everything), their members with a role each, and the user a key acts for. */
const teams: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('teams')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('policy', 'text', (c) => c.notNull())
      .addColumn('quota', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('team_members')
      .addColumn('team', 'text', (c) => c.notNull().references('teams.name').onDelete('cascade'))
      .addColumn('user_name', 'text', (c) => c.notNull())
      .addColumn('role', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('team_members_pk', ['team', 'user_name'])
      .execute();
    await db.schema.alterTable('api_keys').addColumn('user_name', 'text').execute();
  },
};

/** The audit log: read by team, newest first. */
const auditLog: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('audit_log')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('at', 'text', (c) => c.notNull())
      .addColumn('team', 'text', (c) => c.notNull())
      .addColumn('user_name', 'text')
      .addColumn('key_id', 'text')
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('object_type', 'text', (c) => c.notNull())
      .addColumn('object_id', 'text', (c) => c.notNull())
      .addColumn('detail', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('audit_log_team_at').on('audit_log').columns(['team', 'at', 'id']).execute();
    await db.schema.createIndex('audit_log_at').on('audit_log').columns(['at', 'id']).execute();
  },
};

/**
 * The user who registered each SSH key: the gateway checks that user's role in the pod's team at
 * every session. Keys from before are filled in from the audit log where it says who registered
 * them (`POST /api/v1/ssh-keys`); the others stay keys of no user, which the gateway refuses for a
 * team with members (docs/security.md).
 */
const sshKeyUsers: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable('ssh_keys').addColumn('user_name', 'text').execute();
    const t = db as unknown as Kysely<{ ssh_keys: { id: string; user_name: string | null }; audit_log: { object_id: string; action: string; user_name: string | null; at: string } }>;
    const known = await t.selectFrom('audit_log').select(['object_id', 'user_name']).where('action', '=', 'POST /api/v1/ssh-keys').where('user_name', 'is not', null).orderBy('at').execute();
    for (const r of known) await t.updateTable('ssh_keys').set({ user_name: r.user_name }).where('id', '=', r.object_id).where('user_name', 'is', null).execute();
  },
};

/**
 * The node that holds a network volume's data where its data center has no shared storage: pods
 * that use it are placed there only (docs/cluster.md). Null until a pod first uses it.
 */
const networkVolumeNode: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable('network_volumes').addColumn('node_id', 'text').execute();
  },
};

/**
 * What a node's lifecycle keeps across a restart: cordoned (takes no new instances) and since when
 * it is NOT_READY (the node monitor's verdict, cleared when its agent calls again).
 */
const nodeLifecycle: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable('nodes').addColumn('cordoned', 'integer', (c) => c.notNull().defaultTo(0)).execute();
    await db.schema.alterTable('nodes').addColumn('not_ready_since', 'text').execute();
  },
};

/** Join tokens and the node credentials agents exchange them for (docs/cluster.md). */
const joinTokens: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('join_tokens')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('description', 'text', (c) => c.notNull())
      .addColumn('labels', 'text', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull().unique())
      .addColumn('max_uses', 'integer')
      .addColumn('uses', 'integer', (c) => c.notNull())
      .addColumn('expires_at', 'text')
      .addColumn('revoked_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('last_used_at', 'text')
      .execute();
    await db.schema
      .createTable('node_credentials')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('node_id', 'text', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull().unique())
      .addColumn('token_id', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('last_used_at', 'text')
      .execute();
    await db.schema.createIndex('node_credentials_node').on('node_credentials').column('node_id').execute();
  },
};

/** Several servers on one PostgreSQL: the leader's lease, the servers agents dial, the keys they share (docs/ha.md). */
const highAvailability: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('leases')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('holder', 'text')
      .addColumn('holder_url', 'text')
      .addColumn('epoch', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('servers')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('url', 'text', (c) => c.notNull())
      .addColumn('started_at', 'text', (c) => c.notNull())
      .addColumn('seen_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('cluster_keys')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('redeemed_links')
      .addColumn('nonce', 'text', (c) => c.primaryKey())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .execute();
  },
};

/** Kysely's Migrator reads the migrations from here. */
export function migrationProvider(dialect: SqlDialect): MigrationProvider {
  return {
    getMigrations: async () => ({
      '0001_initial': initial(dialect),
      '0002_secrets': secrets,
      '0003_deployments': deployments,
      '0004_marathon_paths': marathonPaths,
      '0005_usage_samples': usageSamples,
      '0006_pod_lifetimes': podLifetimes,
      '0007_teams': teams,
      '0008_audit_log': auditLog,
      '0009_ssh_key_users': sshKeyUsers,
      '0010_network_volume_node': networkVolumeNode,
      '0011_node_lifecycle': nodeLifecycle,
      '0012_join_tokens': joinTokens,
      '0013_high_availability': highAvailability,
    }),
  };
}
