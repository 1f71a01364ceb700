import type { Expression, ExpressionBuilder, Kysely, SqlBool } from 'kysely';
import { invalid, notFound, type Instance, type Pod, type PodId, type PodSpec, type PodVersion } from '../model/index.js';
import { latestRevision } from './changes.js';
import { now, unique, type StoreContext } from './context.js';
import {
  instanceFromRow,
  instanceToRow,
  podFromRow,
  podPatchToRow,
  podToRow,
  podVersionFromRow,
  podVersionToRow,
  specFromText,
} from './rows.js';
import type { Database, PodsTable } from './schema.js';
import type { PodDetail, PodFilter, PodPatch } from './types.js';

/*
 * Pods, their spec versions, and the listing query the API's hot path runs.
 *
 * Invariant, which PodDetailCache relies on: every write to a pod row, its current version or its
 * instances records a change and sets pods.revision to the newest revision that write recorded
 * (instances.ts keeps it with `bumpPod`).
 */

/** Pods and their versions. Version 1 is written with the pod; versions are kept after terminate. */
export interface PodStore {
  /** The lifetime fields start empty. */
  createPod(pod: Omit<Pod, 'revision' | 'specVersion' | 'keepAliveUntil' | 'lastStoppedAt' | 'lifetimeNote'>, spec: PodSpec, instances: Omit<Instance, 'revision' | 'specVersion'>[]): Promise<PodDetail>;
  getPod(id: PodId): Promise<PodDetail | undefined>;
  listPods(filter: PodFilter): Promise<PodDetail[]>;
  /** All pods that match, regardless of `limit` and `after`: the total a paged list reports. */
  countPods(filter: PodFilter): Promise<number>;
  updatePod(id: PodId, patch: PodPatch): Promise<Pod>;
  /**
   * Writes the next version and makes it current; returns its number. Versions older than the
   * newest `keep` are deleted in the same transaction, all but version 1 (which dates the pod).
   * @default keep 100
   */
  addPodVersion(id: PodId, spec: PodSpec, keep?: number): Promise<number>;
  getPodVersion(id: PodId, version: number): Promise<PodVersion | undefined>;
  /** Oldest first; `after` a version number, at most `limit` of them. */
  listPodVersions(id: PodId, page?: { after?: number; limit?: number }): Promise<PodVersion[]>;
  /** Removes the pod row and its instances; versions stay. Each instance's removal is announced to its node. */
  deletePod(id: PodId): Promise<void>;
}

/** What the pod filters see: the pods table as `p`. */
type PodScope = ExpressionBuilder<Database & { p: PodsTable }, 'p'>;

type Cursor = { createdAt: string; id: PodId };

/** Spec versions kept per pod besides version 1, unless the pod service says otherwise. */
export const SPEC_VERSIONS_KEPT = 100;

/** Bind parameters per `IN (...)` list: well below SQLite's 32,766 and PostgreSQL's 65,535. */
const IN_LIST_CHUNK = 5000;

export function podStore(ctx: StoreContext): PodStore {
  // Reads use ctx.db; writes use the writer's db, which is the transaction they record in.
  return {
    createPod: (pod, spec, instances) =>
      ctx.write(async ({ db, record }) => {
        // The pod's revision is that of the last change to it or its instances: the last recorded here.
        let revision = await record('pod', pod.id, null);
        const created: Instance[] = [];
        for (const i of instances) {
          revision = await record('instance', i.id, i.nodeId);
          created.push({ ...i, specVersion: 1, revision });
        }
        const row: Pod = { keepAliveUntil: null, lastStoppedAt: null, lifetimeNote: null, ...pod, specVersion: 1, revision };
        await unique(ctx, () => db.insertInto('pods').values(podToRow(row)).execute(), `pod ${pod.id} already exists`);
        // Version 1 carries the pod's creation time, which also places a deleted pod's id as a cursor.
        await db
          .insertInto('pod_versions')
          .values(podVersionToRow(pod.id, 1, spec, pod.createdAt))
          .execute();
        if (created.length > 0) {
          await unique(
            ctx,
            () => db.insertInto('instances').values(created.map(instanceToRow)).execute(),
            `an instance of pod ${pod.id} already exists`,
          );
        }
        return { pod: row, spec, instances: created };
      }),

    async getPod(id) {
      const [detail] = await loadDetails(ctx.db, [id]);
      return detail;
    },

    listPods: (filter) => listPods(ctx, filter),

    async countPods(filter) {
      if (filter.ids?.length === 0) return 0;
      const row = await ctx.db
        .selectFrom('pods as p')
        .where((eb) => podFilter(ctx, eb, filter, undefined))
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },

    updatePod: (id, patch) =>
      ctx.write(async ({ db, record }) => {
        await requirePod(db, id);
        const revision = await record('pod', id, null);
        const row = await db
          .updateTable('pods')
          .set({ ...podPatchToRow(patch), updated_at: now(), revision })
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirstOrThrow();
        return podFromRow(row);
      }),

    addPodVersion: (id, spec, keep = SPEC_VERSIONS_KEPT) =>
      ctx.write(async ({ db, record }) => {
        await requirePod(db, id);
        const latest = await db
          .selectFrom('pod_versions')
          .select((eb) => eb.fn.max('version').as('version'))
          .where('pod_id', '=', id)
          .executeTakeFirst();
        const version = (latest?.version ?? 0) + 1;
        const revision = await record('pod', id, null);
        const at = now();
        await db.insertInto('pod_versions').values(podVersionToRow(id, version, spec, at)).execute();
        // Bounded history (issue 15): one pod's updates must not grow the store, nor its reads, without end.
        await db
          .deleteFrom('pod_versions')
          .where('pod_id', '=', id)
          .where('version', '>', 1)
          .where('version', '<=', version - Math.max(1, keep))
          .execute();
        await db.updateTable('pods').set({ spec_version: version, updated_at: at, revision }).where('id', '=', id).execute();
        return version;
      }),

    async getPodVersion(id, version) {
      const row = await ctx.db
        .selectFrom('pod_versions')
        .selectAll()
        .where('pod_id', '=', id)
        .where('version', '=', version)
        .executeTakeFirst();
      return row && podVersionFromRow(row);
    },

    async listPodVersions(id, page = {}) {
      let q = ctx.db.selectFrom('pod_versions').selectAll().where('pod_id', '=', id);
      if (page.after !== undefined) q = q.where('version', '>', page.after);
      if (page.limit !== undefined) q = q.limit(page.limit);
      const rows = await q.orderBy('version').execute();
      return rows.map(podVersionFromRow);
    },

    async deletePod(id) {
      await ctx.write(async ({ db, record }) => {
        await requirePod(db, id);
        const instances = await db.selectFrom('instances').select(['id', 'node_id']).where('pod_id', '=', id).orderBy('ordinal').execute();
        await record('pod', id, null);
        for (const i of instances) await record('instance', i.id, i.node_id);
        await db.deleteFrom('instances').where('pod_id', '=', id).execute();
        await db.deleteFrom('pods').where('id', '=', id).execute();
        ctx.cache?.forget(id);
      });
    },
  };
}

/** Under the writer lock (see SqlDialect.lockWriters) nothing can remove the row between check and write. */
export async function requirePod(db: Kysely<Database>, id: PodId): Promise<void> {
  const row = await db.selectFrom('pods').select('id').where('id', '=', id).executeTakeFirst();
  if (!row) throw notFound('pod', id);
}

/** The pod's revision follows its instances' changes, so one number says whether any of it moved. */
export async function bumpPod(db: Kysely<Database>, id: PodId, revision: number): Promise<void> {
  await db.updateTable('pods').set({ revision }).where('id', '=', id).execute();
}

/**
 * The API's hot path. While the store revision is the one a list with the same filter was read at,
 * that list is the answer (one indexed query: the ids and revisions of 10,000 pods and the loops
 * over them were about half the server's time per list). Otherwise one query finds the pods that
 * match, in order, with their revisions; the details come from the cache where the revision still
 * matches, and the rest from one query for the pods joined with their current versions plus one
 * for their instances (per chunk of ids).
 */
async function listPods(ctx: StoreContext, filter: PodFilter): Promise<PodDetail[]> {
  if (filter.ids?.length === 0 || filter.limit === 0) return [];
  const { db, cache } = ctx;
  // Lists by id are the callers' own lookups, not worth a key of their ids.
  const key = cache && filter.ids === undefined ? listKey(filter) : undefined;
  // Read before the pods (see PodDetailCache.putList): what they read is of this revision or newer.
  const revision = key === undefined ? 0 : await latestRevision(db);
  if (key !== undefined) {
    const kept = cache?.list(key, revision);
    if (kept) return kept;
  }
  const cursor = filter.after === undefined ? undefined : await cursorOf(db, filter.after);
  let q = db
    .selectFrom('pods as p')
    .select(['p.id', 'p.revision'])
    .where((eb) => podFilter(ctx, eb, filter, cursor))
    .orderBy('p.created_at')
    .orderBy('p.id');
  if (filter.limit !== undefined) q = q.limit(filter.limit);
  const keys = await q.execute();

  const found = new Map<PodId, PodDetail>();
  const missing: PodId[] = [];
  for (const { id, revision } of keys) {
    const cached = cache?.get(id, revision);
    if (cached) found.set(id, cached);
    else missing.push(id);
  }
  for (const chunk of chunks(missing, IN_LIST_CHUNK)) {
    for (const detail of await loadDetails(db, chunk)) found.set(detail.pod.id, cache ? cache.put(detail) : detail);
  }
  // A pod deleted between the two reads is left out; one updated in between comes in its newer state.
  const details: PodDetail[] = [];
  for (const { id } of keys) {
    const detail = found.get(id);
    if (detail) details.push(detail);
  }
  if (key !== undefined) cache?.putList(key, revision, details);
  return details;
}

/** Every field the filter gives, by name in sorted order, so that a field added to PodFilter is part of the key too. */
function listKey(f: PodFilter): string {
  const fields = Object.entries(f).filter(([, v]) => v !== undefined);
  fields.sort(([a], [b]) => (a < b ? -1 : 1));
  return JSON.stringify(fields);
}

/** The pods (at most IN_LIST_CHUNK ids) with their current specs and instances, in no set order. */
async function loadDetails(db: Kysely<Database>, ids: PodId[]): Promise<PodDetail[]> {
  const rows = await db
    .selectFrom('pods as p')
    .innerJoin('pod_versions as v', (join) => join.onRef('v.pod_id', '=', 'p.id').onRef('v.version', '=', 'p.spec_version'))
    .selectAll('p')
    .select('v.spec')
    .where('p.id', 'in', ids)
    .execute();
  if (rows.length === 0) return [];
  const byPod = new Map<PodId, Instance[]>();
  for (const row of rows) byPod.set(row.id, []);
  const instances = await db
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
async function cursorOf(db: Kysely<Database>, after: PodId): Promise<Cursor> {
  const row = await db
    .selectFrom('pod_versions')
    .select('created_at')
    .where('pod_id', '=', after)
    .where('version', '=', 1)
    .executeTakeFirst();
  if (!row) throw invalid([{ path: '/after', message: `no pod ${after} to continue after` }]);
  return { createdAt: row.created_at, id: after };
}

function podFilter(ctx: StoreContext, eb: PodScope, f: PodFilter, cursor: Cursor | undefined): Expression<SqlBool> {
  const where: Expression<SqlBool>[] = [];
  if (f.owner !== undefined) where.push(eb('p.owner', '=', f.owner));
  if (f.ids !== undefined) where.push(eb('p.id', 'in', f.ids));
  if (f.status !== undefined && f.status.length > 0) where.push(eb('p.status', 'in', f.status));
  // A pod being terminated leaves the lists at once (as RunPod's does), though it says TERMINATED only once its node removed it.
  if (!f.includeTerminated && !f.status?.includes('TERMINATED')) where.push(eb('p.desired_status', '!=', 'TERMINATED'));
  if (f.name !== undefined) where.push(eb('p.name', '=', f.name));
  if (f.nodeId !== undefined) where.push(eb('p.node_id', '=', f.nodeId));
  // Filters on the pod's current version (builders are immutable: each filter adds to a copy).
  const current = eb.selectFrom('pod_versions as v').select('v.version').whereRef('v.pod_id', '=', 'p.id').whereRef('v.version', '=', 'p.spec_version');
  if (f.image !== undefined) {
    const image = f.image;
    where.push(eb.exists(current.where((ev) => ctx.dialect.imagesInclude(ev.ref('v.images'), image))));
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

function* chunks<T>(items: T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}
