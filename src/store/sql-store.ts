import type { ExpressionBuilder, Kysely, SqlBool, Expression } from 'kysely';
import {
  BerthError,
  invalid,
  notFound,
  type ApiKey,
  type ApiKeyId,
  type Change,
  type Deployment,
  type DeploymentAction,
  type Instance,
  type InstanceId,
  type NetworkVolume,
  type NetworkVolumeId,
  type Node,
  type NodeId,
  type OwnerId,
  type Pod,
  type PodId,
  type PodSpec,
  type PodVersion,
  type RegistryAuth,
  type RegistryAuthId,
  type Secret,
  type SshKey,
  type SshKeyId,
  type Template,
  type TemplateId,
} from '../model/index.js';
import type { SqlDialect } from './dialect.js';
import {
  apiKeyFromRow,
  apiKeyToRow,
  changeFromRow,
  instanceFromRow,
  instancePatchToRow,
  instanceToRow,
  networkVolumeFromRow,
  networkVolumeToRow,
  nodeFromRow,
  nodeToRow,
  podFromRow,
  podPatchToRow,
  podToRow,
  podVersionFromRow,
  podVersionToRow,
  registryAuthFromRow,
  secretFromRow,
  registryAuthToRow,
  specFromText,
  sshKeyFromRow,
  sshKeyToRow,
  templateFromRow,
  templateToRow,
} from './rows.js';
import { PodDetailCache } from './pod-cache.js';
import type { Database, PodsTable } from './schema.js';
import type { InstancePatch, NodeInput, PodDetail, PodFilter, PodPatch, Store } from './types.js';

/** The slice of a pino logger the store uses. */
export interface StoreLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

type Listener = (change: Change) => void;

/** In-process subscribers to committed changes, shared by a store and its transactions. */
class ChangeListeners {
  private readonly listeners = new Set<Listener>();
  constructor(private readonly logger: StoreLogger | undefined) {}

  add(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A listener that throws must not stop the others hearing, nor fail a write that has committed. */
  announce(changes: readonly Change[]): void {
    for (const change of changes) {
      for (const listener of [...this.listeners]) {
        try {
          listener(change);
        } catch (err) {
          this.logger?.error({ err, revision: change.revision }, 'a change listener failed');
        }
      }
    }
  }
}

/** What a write sees: the transaction, and the way to append to the change feed within it. */
interface Writer {
  db: Kysely<Database>;
  /** Appends one change and returns its revision; it is announced when the transaction commits. */
  record(kind: Change['kind'], id: string, nodeId: NodeId | null): Promise<number>;
}

/** What the pod filters see: the pods table as `p`. */
type PodScope = ExpressionBuilder<Database & { p: PodsTable }, 'p'>;

/** Bind parameters per `IN (...)` list: well below SQLite's 32,766 and PostgreSQL's 65,535. */
const IN_LIST_CHUNK = 5000;

const now = (): string => new Date().toISOString();

/**
 * The Store over Kysely, for SQLite and PostgreSQL alike. A store made by `transaction()` shares
 * the listeners and runs every call in that transaction; its changes wait in `pending` for the commit.
 *
 * Invariant, which PodDetailCache relies on: every write to a pod row, its current version or its
 * instances records a change and sets pods.revision to the newest revision that write recorded.
 */
export class SqlStore implements Store {
  readonly dialect: 'sqlite' | 'postgres';

  /**
   * A store over a migrated database; it owns `db` and destroys it on close. `podCacheSize` pod
   * details are kept for listPods (0: none).
   */
  static over(db: Kysely<Database>, sql: SqlDialect, opts: { logger?: StoreLogger; podCacheSize: number }): SqlStore {
    const cache = opts.podCacheSize > 0 ? new PodDetailCache(opts.podCacheSize) : null;
    return new SqlStore(db, sql, new ChangeListeners(opts.logger), null, cache);
  }

  private constructor(
    private readonly db: Kysely<Database>,
    private readonly sql: SqlDialect,
    private readonly listeners: ChangeListeners,
    /** The changes recorded so far in the open transaction; null outside one. */
    private readonly pending: Change[] | null,
    /**
     * Null in a transaction: its reads see revisions that may roll back, and SQLite hands a
     * rolled-back revision out again, so they must neither fill nor trust the cache.
     */
    private readonly cache: PodDetailCache | null,
  ) {
    this.dialect = sql.name;
  }

  async close(): Promise<void> {
    if (this.pending) throw new Error('close the store, not one of its transactions');
    await this.db.destroy();
  }

  /**
   * Nested calls join the outer transaction. Inside `fn`, use only `tx`: on SQLite the transaction
   * holds the one connection, so a call on the outer store would wait for it forever.
   */
  async transaction<T>(fn: (tx: Store) => Promise<T>): Promise<T> {
    if (this.pending) return fn(this);
    const pending: Change[] = [];
    const result = await this.db.transaction().execute(async (trx) => {
      await this.sql.lockWriters(trx);
      return fn(new SqlStore(trx, this.sql, this.listeners, pending, null));
    });
    this.listeners.announce(pending);
    return result;
  }

  /** Runs a write in a transaction (the open one, if any) and announces its changes after commit. */
  private async write<T>(work: (w: Writer) => Promise<T>): Promise<T> {
    if (this.pending) return work(this.writer(this.db, this.pending));
    const pending: Change[] = [];
    const result = await this.db.transaction().execute(async (trx) => {
      await this.sql.lockWriters(trx);
      return work(this.writer(trx, pending));
    });
    this.listeners.announce(pending);
    return result;
  }

  private writer(db: Kysely<Database>, pending: Change[]): Writer {
    return {
      db,
      record: async (kind, id, nodeId) => {
        const at = now();
        const { revision } = await db
          .insertInto('changes')
          .values({ kind, entity_id: id, node_id: nodeId, at })
          .returning('revision')
          .executeTakeFirstOrThrow();
        pending.push({ revision, kind, id, nodeId, at });
        return revision;
      },
    };
  }

  /** Runs an insert or update, turning a unique-constraint refusal into a CONFLICT the API can show. */
  private async unique<T>(run: () => Promise<T>, conflict: string): Promise<T> {
    try {
      return await run();
    } catch (err) {
      if (this.sql.isUniqueViolation(err)) throw new BerthError('CONFLICT', conflict, { cause: err });
      throw err;
    }
  }

  async revision(): Promise<number> {
    const row = await this.db
      .selectFrom('changes')
      .select((eb) => eb.fn.max('revision').as('revision'))
      .executeTakeFirst();
    return row?.revision ?? 0;
  }

  async oldestRevision(): Promise<number> {
    const row = await this.db
      .selectFrom('changes')
      .select((eb) => eb.fn.min('revision').as('revision'))
      .executeTakeFirst();
    return row?.revision ?? 0;
  }

  async pruneChanges(keep: number): Promise<number> {
    // The newest row stays whatever `keep` is: revision() reads the feed's maximum.
    const cut = (await this.revision()) - Math.max(1, keep);
    if (cut <= 0) return 0;
    const res = await this.db.deleteFrom('changes').where('revision', '<=', cut).executeTakeFirst();
    return Number(res.numDeletedRows);
  }

  async changesSince(since: number, limit?: number): Promise<Change[]> {
    let q = this.db.selectFrom('changes').selectAll().where('revision', '>', since).orderBy('revision');
    if (limit !== undefined) q = q.limit(limit);
    return (await q.execute()).map(changeFromRow);
  }

  onChange(listener: (change: Change) => void): () => void {
    return this.listeners.add(listener);
  }

  // ---- Pods

  async createPod(
    pod: Omit<Pod, 'revision' | 'specVersion'>,
    spec: PodSpec,
    instances: Omit<Instance, 'revision' | 'specVersion'>[],
  ): Promise<PodDetail> {
    return this.write(async ({ db, record }) => {
      // The pod's revision is that of the last change to it or its instances: the last recorded here.
      let revision = await record('pod', pod.id, null);
      const created: Instance[] = [];
      for (const i of instances) {
        revision = await record('instance', i.id, i.nodeId);
        created.push({ ...i, specVersion: 1, revision });
      }
      const row: Pod = { ...pod, specVersion: 1, revision };
      await this.unique(() => db.insertInto('pods').values(podToRow(row)).execute(), `pod ${pod.id} already exists`);
      // Version 1 carries the pod's creation time, which also places a deleted pod's id as a cursor.
      await db
        .insertInto('pod_versions')
        .values(podVersionToRow(pod.id, 1, spec, pod.createdAt))
        .execute();
      if (created.length > 0) {
        await this.unique(
          () => db.insertInto('instances').values(created.map(instanceToRow)).execute(),
          `an instance of pod ${pod.id} already exists`,
        );
      }
      return { pod: row, spec, instances: created };
    });
  }

  async getPod(id: PodId): Promise<PodDetail | undefined> {
    const [detail] = await this.loadDetails([id]);
    return detail;
  }

  /**
   * The API's hot path. One query finds the pods that match, in order, with their revisions; the
   * details come from the cache where the revision still matches, and the rest from one query for
   * the pods joined with their current versions plus one for their instances (per chunk of ids).
   */
  async listPods(filter: PodFilter): Promise<PodDetail[]> {
    if (filter.ids?.length === 0 || filter.limit === 0) return [];
    const cursor = filter.after === undefined ? undefined : await this.cursorOf(filter.after);
    let q = this.db
      .selectFrom('pods as p')
      .select(['p.id', 'p.revision'])
      .where((eb) => this.podFilter(eb, filter, cursor))
      .orderBy('p.created_at')
      .orderBy('p.id');
    if (filter.limit !== undefined) q = q.limit(filter.limit);
    const keys = await q.execute();

    const found = new Map<PodId, PodDetail>();
    const missing: PodId[] = [];
    for (const { id, revision } of keys) {
      const cached = this.cache?.get(id, revision);
      if (cached) found.set(id, cached);
      else missing.push(id);
    }
    for (const chunk of chunks(missing, IN_LIST_CHUNK)) {
      for (const detail of await this.loadDetails(chunk)) found.set(detail.pod.id, this.cache ? this.cache.put(detail) : detail);
    }
    // A pod deleted between the two reads is left out; one updated in between comes in its newer state.
    const details: PodDetail[] = [];
    for (const { id } of keys) {
      const detail = found.get(id);
      if (detail) details.push(detail);
    }
    return details;
  }

  /** All pods that match, regardless of `limit` and `after`: the total a paged list reports. */
  async countPods(filter: PodFilter): Promise<number> {
    if (filter.ids?.length === 0) return 0;
    const row = await this.db
      .selectFrom('pods as p')
      .where((eb) => this.podFilter(eb, filter, undefined))
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** The pods (at most IN_LIST_CHUNK ids) with their current specs and instances, in no set order. */
  private async loadDetails(ids: PodId[]): Promise<PodDetail[]> {
    const rows = await this.db
      .selectFrom('pods as p')
      .innerJoin('pod_versions as v', (join) => join.onRef('v.pod_id', '=', 'p.id').onRef('v.version', '=', 'p.spec_version'))
      .selectAll('p')
      .select('v.spec')
      .where('p.id', 'in', ids)
      .execute();
    if (rows.length === 0) return [];
    const byPod = new Map<PodId, Instance[]>();
    for (const row of rows) byPod.set(row.id, []);
    const instances = await this.db
      .selectFrom('instances')
      .selectAll()
      .where('pod_id', 'in', rows.map((r) => r.id))
      .orderBy('pod_id')
      .orderBy('ordinal')
      .execute();
    for (const r of instances) byPod.get(r.pod_id)?.push(instanceFromRow(r));
    return rows.map((row) => ({ pod: podFromRow(row), spec: specFromText(row.spec), instances: byPod.get(row.id) ?? [] }));
  }

  /**
   * Where a pod stands in list order. Read from version 1, which outlives the pod, so a client paging
   * through the list does not lose its place when the pod it stopped at is deleted.
   */
  private async cursorOf(after: PodId): Promise<{ createdAt: string; id: PodId }> {
    const row = await this.db
      .selectFrom('pod_versions')
      .select('created_at')
      .where('pod_id', '=', after)
      .where('version', '=', 1)
      .executeTakeFirst();
    if (!row) throw invalid([{ path: '/after', message: `no pod ${after} to continue after` }]);
    return { createdAt: row.created_at, id: after };
  }

  private podFilter(eb: PodScope, f: PodFilter, cursor: { createdAt: string; id: PodId } | undefined): Expression<SqlBool> {
    const where: Expression<SqlBool>[] = [];
    if (f.owner !== undefined) where.push(eb('p.owner', '=', f.owner));
    if (f.ids !== undefined) where.push(eb('p.id', 'in', f.ids));
    if (f.status !== undefined && f.status.length > 0) where.push(eb('p.status', 'in', f.status));
    if (!f.includeTerminated && !f.status?.includes('TERMINATED')) where.push(eb('p.status', '!=', 'TERMINATED'));
    if (f.name !== undefined) where.push(eb('p.name', '=', f.name));
    if (f.nodeId !== undefined) where.push(eb('p.node_id', '=', f.nodeId));
    // Filters on the pod's current version (builders are immutable: each filter adds to a copy).
    const current = eb.selectFrom('pod_versions as v').select('v.version').whereRef('v.pod_id', '=', 'p.id').whereRef('v.version', '=', 'p.spec_version');
    if (f.image !== undefined) {
      const image = f.image;
      where.push(eb.exists(current.where((ev) => this.sql.imagesInclude(ev.ref('v.images'), image))));
    }
    if (f.marathonPath !== undefined) where.push(eb.exists(current.where('v.marathon_path', '=', f.marathonPath)));
    if (cursor) {
      where.push(
        eb.or([
          eb('p.created_at', '>', cursor.createdAt),
          eb.and([eb('p.created_at', '=', cursor.createdAt), eb('p.id', '>', cursor.id)]),
        ]),
      );
    }
    return eb.and(where);
  }

  async updatePod(id: PodId, patch: PodPatch): Promise<Pod> {
    return this.write(async ({ db, record }) => {
      await this.requirePod(db, id);
      const revision = await record('pod', id, null);
      const row = await db
        .updateTable('pods')
        .set({ ...podPatchToRow(patch), updated_at: now(), revision })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
      return podFromRow(row);
    });
  }

  async addPodVersion(id: PodId, spec: PodSpec): Promise<number> {
    return this.write(async ({ db, record }) => {
      await this.requirePod(db, id);
      const latest = await db
        .selectFrom('pod_versions')
        .select((eb) => eb.fn.max('version').as('version'))
        .where('pod_id', '=', id)
        .executeTakeFirst();
      const version = (latest?.version ?? 0) + 1;
      const revision = await record('pod', id, null);
      const at = now();
      await db.insertInto('pod_versions').values(podVersionToRow(id, version, spec, at)).execute();
      await db.updateTable('pods').set({ spec_version: version, updated_at: at, revision }).where('id', '=', id).execute();
      return version;
    });
  }

  async getPodVersion(id: PodId, version: number): Promise<PodVersion | undefined> {
    const row = await this.db
      .selectFrom('pod_versions')
      .selectAll()
      .where('pod_id', '=', id)
      .where('version', '=', version)
      .executeTakeFirst();
    return row && podVersionFromRow(row);
  }

  async listPodVersions(id: PodId): Promise<PodVersion[]> {
    const rows = await this.db.selectFrom('pod_versions').selectAll().where('pod_id', '=', id).orderBy('version').execute();
    return rows.map(podVersionFromRow);
  }

  /** Each instance's removal is announced to its node, so the agent there stops it. */
  async deletePod(id: PodId): Promise<void> {
    await this.write(async ({ db, record }) => {
      await this.requirePod(db, id);
      const instances = await db.selectFrom('instances').select(['id', 'node_id']).where('pod_id', '=', id).orderBy('ordinal').execute();
      await record('pod', id, null);
      for (const i of instances) await record('instance', i.id, i.node_id);
      await db.deleteFrom('instances').where('pod_id', '=', id).execute();
      await db.deleteFrom('pods').where('id', '=', id).execute();
      this.cache?.forget(id);
    });
  }

  /** Under the writer lock (see SqlDialect.lockWriters) nothing can remove the row between check and write. */
  private async requirePod(db: Kysely<Database>, id: PodId): Promise<void> {
    const row = await db.selectFrom('pods').select('id').where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound('pod', id);
  }

  /** The pod's revision follows its instances' changes, so one number says whether any of it moved. */
  private async bumpPod(db: Kysely<Database>, id: PodId, revision: number): Promise<void> {
    await db.updateTable('pods').set({ revision }).where('id', '=', id).execute();
  }

  // ---- Instances

  async getInstance(id: InstanceId): Promise<Instance | undefined> {
    const row = await this.db.selectFrom('instances').selectAll().where('id', '=', id).executeTakeFirst();
    return row && instanceFromRow(row);
  }

  async listInstances(filter: { podId?: PodId; nodeId?: NodeId }): Promise<Instance[]> {
    let q = this.db.selectFrom('instances').selectAll();
    if (filter.podId !== undefined) q = q.where('pod_id', '=', filter.podId);
    if (filter.nodeId !== undefined) q = q.where('node_id', '=', filter.nodeId);
    const rows = await q.orderBy('pod_id').orderBy('ordinal').execute();
    return rows.map(instanceFromRow);
  }

  async insertInstance(instance: Omit<Instance, 'revision'>): Promise<Instance> {
    return this.write(async ({ db, record }) => {
      await this.requirePod(db, instance.podId);
      const revision = await record('instance', instance.id, instance.nodeId);
      const row: Instance = { ...instance, revision };
      await this.unique(() => db.insertInto('instances').values(instanceToRow(row)).execute(), `instance ${instance.id} already exists`);
      await this.bumpPod(db, instance.podId, revision);
      return row;
    });
  }

  async updateInstance(id: InstanceId, patch: InstancePatch): Promise<Instance> {
    return this.write(async ({ db, record }) => {
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
      await this.bumpPod(db, current.pod_id, revision);
      return instanceFromRow(row);
    });
  }

  async deleteInstance(id: InstanceId): Promise<void> {
    await this.write(async ({ db, record }) => {
      const current = await db.selectFrom('instances').select(['pod_id', 'node_id']).where('id', '=', id).executeTakeFirst();
      if (!current) throw notFound('instance', id);
      const revision = await record('instance', id, current.node_id);
      await db.deleteFrom('instances').where('id', '=', id).execute();
      await this.bumpPod(db, current.pod_id, revision);
    });
  }

  // ---- Nodes

  /** A node that registers again keeps its first `registeredAt`. */
  async upsertNode(node: NodeInput): Promise<Node> {
    return this.write(async ({ db, record }) => {
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
    });
  }

  async getNode(id: NodeId): Promise<Node | undefined> {
    const row = await this.db.selectFrom('nodes').selectAll().where('id', '=', id).executeTakeFirst();
    return row && nodeFromRow(row);
  }

  async listNodes(): Promise<Node[]> {
    const rows = await this.db.selectFrom('nodes').selectAll().orderBy('name').orderBy('id').execute();
    return rows.map(nodeFromRow);
  }

  /**
   * A heartbeat: no change is recorded, or every agent's beat would wake every watcher and grow the
   * feed without end. Node loss is found by time (lastSeenAt), which no change could announce anyway.
   */
  async touchNode(id: NodeId, at: string): Promise<void> {
    const result = await this.db.updateTable('nodes').set({ last_seen_at: at }).where('id', '=', id).executeTakeFirst();
    if (result.numUpdatedRows === 0n) throw notFound('node', id);
  }

  // ---- Network volumes

  async createNetworkVolume(v: NetworkVolume): Promise<NetworkVolume> {
    await this.unique(() => this.db.insertInto('network_volumes').values(networkVolumeToRow(v)).execute(), `network volume ${v.id} already exists`);
    return v;
  }

  async getNetworkVolume(id: NetworkVolumeId): Promise<NetworkVolume | undefined> {
    const row = await this.db.selectFrom('network_volumes').selectAll().where('id', '=', id).executeTakeFirst();
    return row && networkVolumeFromRow(row);
  }

  async listNetworkVolumes(owner?: OwnerId): Promise<NetworkVolume[]> {
    let q = this.db.selectFrom('network_volumes').selectAll();
    if (owner !== undefined) q = q.where('owner', '=', owner);
    return (await q.orderBy('created_at').orderBy('id').execute()).map(networkVolumeFromRow);
  }

  async updateNetworkVolume(id: NetworkVolumeId, patch: Partial<Pick<NetworkVolume, 'name' | 'sizeGb'>>): Promise<NetworkVolume> {
    const set: { name?: string; size_gb?: number } = {};
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.sizeGb !== undefined) set.size_gb = patch.sizeGb;
    // An empty patch still answers with the volume (or not-found), like any other update.
    const row =
      Object.keys(set).length === 0
        ? await this.db.selectFrom('network_volumes').selectAll().where('id', '=', id).executeTakeFirst()
        : await this.db.updateTable('network_volumes').set(set).where('id', '=', id).returningAll().executeTakeFirst();
    if (!row) throw notFound('network volume', id);
    return networkVolumeFromRow(row);
  }

  async deleteNetworkVolume(id: NetworkVolumeId): Promise<void> {
    const result = await this.db.deleteFrom('network_volumes').where('id', '=', id).executeTakeFirst();
    if (result.numDeletedRows === 0n) throw notFound('network volume', id);
  }

  // ---- Templates

  // Template ids are 10 random base-36 characters, so a unique violation is the (owner, name) pair.
  private templateConflict = (name: string): string => `a template named ${name} already exists`;

  async createTemplate(t: Template): Promise<Template> {
    await this.unique(() => this.db.insertInto('templates').values(templateToRow(t)).execute(), this.templateConflict(t.name));
    return t;
  }

  async getTemplate(id: TemplateId): Promise<Template | undefined> {
    const row = await this.db.selectFrom('templates').selectAll().where('id', '=', id).executeTakeFirst();
    return row && templateFromRow(row);
  }

  async listTemplates(owner?: OwnerId): Promise<Template[]> {
    let q = this.db.selectFrom('templates').selectAll();
    if (owner !== undefined) q = q.where('owner', '=', owner);
    return (await q.orderBy('created_at').orderBy('id').execute()).map(templateFromRow);
  }

  async updateTemplate(id: TemplateId, patch: Partial<Pick<Template, 'name' | 'pod' | 'readme' | 'updatedAt'>>): Promise<Template> {
    const set: { name?: string; pod?: string; readme?: string; updated_at?: string } = {};
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.pod !== undefined) set.pod = JSON.stringify(patch.pod);
    if (patch.readme !== undefined) set.readme = patch.readme;
    if (patch.updatedAt !== undefined) set.updated_at = patch.updatedAt;
    const row =
      Object.keys(set).length === 0
        ? await this.db.selectFrom('templates').selectAll().where('id', '=', id).executeTakeFirst()
        : await this.unique(
            () => this.db.updateTable('templates').set(set).where('id', '=', id).returningAll().executeTakeFirst(),
            this.templateConflict(patch.name ?? ''),
          );
    if (!row) throw notFound('template', id);
    return templateFromRow(row);
  }

  async deleteTemplate(id: TemplateId): Promise<void> {
    const result = await this.db.deleteFrom('templates').where('id', '=', id).executeTakeFirst();
    if (result.numDeletedRows === 0n) throw notFound('template', id);
  }

  // ---- Registry credentials

  async createRegistryAuth(r: RegistryAuth): Promise<RegistryAuth> {
    await this.unique(() => this.db.insertInto('registry_auths').values(registryAuthToRow(r)).execute(), `registry auth ${r.id} already exists`);
    return r;
  }

  async getRegistryAuth(id: RegistryAuthId): Promise<RegistryAuth | undefined> {
    const row = await this.db.selectFrom('registry_auths').selectAll().where('id', '=', id).executeTakeFirst();
    return row && registryAuthFromRow(row);
  }

  async listRegistryAuths(owner?: OwnerId): Promise<RegistryAuth[]> {
    let q = this.db.selectFrom('registry_auths').selectAll();
    if (owner !== undefined) q = q.where('owner', '=', owner);
    return (await q.orderBy('created_at').orderBy('id').execute()).map(registryAuthFromRow);
  }

  async deleteRegistryAuth(id: RegistryAuthId): Promise<void> {
    const result = await this.db.deleteFrom('registry_auths').where('id', '=', id).executeTakeFirst();
    if (result.numDeletedRows === 0n) throw notFound('registry auth', id);
  }

  // ---- Secrets

  async putSecret(secret: Secret): Promise<Secret> {
    const row = { owner: secret.owner, name: secret.name, value_sealed: secret.valueSealed, created_at: secret.createdAt, updated_at: secret.updatedAt };
    await this.db
      .insertInto('secrets')
      .values(row)
      .onConflict((oc) => oc.columns(['owner', 'name']).doUpdateSet({ value_sealed: row.value_sealed, updated_at: row.updated_at }))
      .execute();
    return (await this.getSecret(secret.owner, secret.name))!;
  }

  async getSecret(owner: OwnerId, name: string): Promise<Secret | undefined> {
    const row = await this.db.selectFrom('secrets').selectAll().where('owner', '=', owner).where('name', '=', name).executeTakeFirst();
    return row && secretFromRow(row);
  }

  async listSecrets(owner?: OwnerId): Promise<Secret[]> {
    let q = this.db.selectFrom('secrets').selectAll();
    if (owner !== undefined) q = q.where('owner', '=', owner);
    return (await q.orderBy('owner').orderBy('name').execute()).map(secretFromRow);
  }

  async deleteSecret(owner: OwnerId, name: string): Promise<void> {
    const result = await this.db.deleteFrom('secrets').where('owner', '=', owner).where('name', '=', name).executeTakeFirst();
    if (result.numDeletedRows === 0n) throw notFound('secret', name);
  }

  // ---- Deployments

  async putDeployment(d: Deployment): Promise<void> {
    const row = { id: d.id, pod_id: d.podId, path: d.path, action: d.action, version: d.version, to_version: d.toVersion, from_version: d.fromVersion, started_at: d.startedAt };
    await this.db
      .insertInto('deployments')
      .values(row)
      .onConflict((oc) => oc.column('id').doUpdateSet({ action: row.action, version: row.version, to_version: row.to_version, from_version: row.from_version }))
      .execute();
  }

  async deleteDeployment(id: string): Promise<void> {
    await this.db.deleteFrom('deployments').where('id', '=', id).execute();
  }

  async listDeployments(): Promise<Deployment[]> {
    const rows = await this.db.selectFrom('deployments').selectAll().orderBy('started_at').orderBy('id').execute();
    return rows.map((r) => ({
      id: r.id,
      podId: r.pod_id,
      path: r.path,
      action: r.action as DeploymentAction,
      version: r.version,
      toVersion: Number(r.to_version),
      fromVersion: r.from_version === null ? null : Number(r.from_version),
      startedAt: r.started_at,
    }));
  }

  // ---- SSH keys

  async createSshKey(k: SshKey): Promise<SshKey> {
    await this.unique(() => this.db.insertInto('ssh_keys').values(sshKeyToRow(k)).execute(), `SSH key ${k.id} already exists`);
    return k;
  }

  async listSshKeys(owner: OwnerId): Promise<SshKey[]> {
    const rows = await this.db.selectFrom('ssh_keys').selectAll().where('owner', '=', owner).orderBy('created_at').orderBy('id').execute();
    return rows.map(sshKeyFromRow);
  }

  async deleteSshKey(id: SshKeyId): Promise<void> {
    const result = await this.db.deleteFrom('ssh_keys').where('id', '=', id).executeTakeFirst();
    if (result.numDeletedRows === 0n) throw notFound('SSH key', id);
  }

  // ---- API keys

  async createApiKey(k: ApiKey): Promise<ApiKey> {
    await this.unique(() => this.db.insertInto('api_keys').values(apiKeyToRow(k)).execute(), `API key ${k.id} already exists`);
    return k;
  }

  async findApiKeyByHash(hash: string): Promise<ApiKey | undefined> {
    const row = await this.db.selectFrom('api_keys').selectAll().where('hash', '=', hash).executeTakeFirst();
    return row && apiKeyFromRow(row);
  }

  async listApiKeys(owner?: OwnerId): Promise<ApiKey[]> {
    let q = this.db.selectFrom('api_keys').selectAll();
    if (owner !== undefined) q = q.where('owner', '=', owner);
    return (await q.orderBy('created_at').orderBy('id').execute()).map(apiKeyFromRow);
  }

  async deleteApiKey(id: ApiKeyId): Promise<void> {
    const result = await this.db.deleteFrom('api_keys').where('id', '=', id).executeTakeFirst();
    if (result.numDeletedRows === 0n) throw notFound('API key', id);
  }

  async touchApiKey(id: ApiKeyId, at: string): Promise<void> {
    const result = await this.db.updateTable('api_keys').set({ last_used_at: at }).where('id', '=', id).executeTakeFirst();
    if (result.numUpdatedRows === 0n) throw notFound('API key', id);
  }
}

function* chunks<T>(items: T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}
