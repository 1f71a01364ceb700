import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { now, type StoreContext } from './context.js';

/*
 * Leases, the servers registry and the keys servers share: what several servers on one database
 * need to agree on who leads (docs/ha.md). Leases are timed by the database's clock and are plain
 * queries, outside the writer lock: a renewal must not queue behind a long write. None of this
 * records a change in the feed.
 */

export interface Lease {
  name: string;
  holder: string | null;
  holderUrl: string | null;
  epoch: number;
  /** Milliseconds left, by the database's clock; 0 or less: expired. */
  remainingMs: number;
}

export interface ServerEntry {
  id: string;
  url: string;
  startedAt: string;
  /** How long ago it last heartbeat, by the database's clock. */
  ageMs: number;
}

/** One slice of the Store. */
export interface LeaseStore {
  /**
   * Takes the lease when it is free, expired or already `holder`'s, for `ttlMs`. A holder that takes
   * it from nobody or from another gets the next epoch; one that still holds it keeps its epoch.
   * Returns the epoch held, or undefined when another server holds it.
   */
  acquireLease(name: string, holder: string, holderUrl: string, ttlMs: number): Promise<number | undefined>;
  /** Extends the lease while it is still `holder`'s at `epoch`; false when it is not (lost: stop leading). */
  renewLease(name: string, holder: string, epoch: number, ttlMs: number): Promise<boolean>;
  /** Gives the lease up at once when it is `holder`'s at `epoch`, and tells the other servers (see `onNotice`). */
  resignLease(name: string, holder: string, epoch: number): Promise<void>;
  readLease(name: string): Promise<Lease | undefined>;
  /** Records that server `id` is up and reachable at `url` (agents dial every server listed). */
  heartbeatServer(id: string, url: string, startedAt: string): Promise<void>;
  /** The servers that heartbeat within `maxAgeMs`, oldest start first. */
  listServers(maxAgeMs: number): Promise<ServerEntry[]>;
  removeServer(id: string): Promise<void>;
  /** The shared key `name`: the one stored, or `make()`'s, stored now if no other server stored one first. */
  clusterKey(name: string, make: () => string): Promise<string>;
  /** Claims a one-time link's nonce: true the first time, false ever after (until it expires, when it is forgotten). */
  claimOnce(nonce: string, expiresAtMs: number): Promise<boolean>;
  /** Sends `payload` (at most 7,900 bytes) to every server's `onNotice` listeners, this one's included; nothing on SQLite. */
  publishNotice(payload: string): Promise<void>;
}

/** PostgreSQL refuses a NOTIFY payload of 8,000 bytes or more. */
export const MAX_NOTICE_BYTES = 7900;

/** The NOTIFY channel of this database and schema: two Berths in two schemas of one database must not hear each other. */
export async function noticeChannel(ctx: Pick<StoreContext, 'db'>): Promise<string> {
  const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(ctx.db);
  return `berth_${createHash('sha256').update(rows[0]?.schema ?? 'public').digest('hex').slice(0, 24)}`;
}

/** `channel`: the store's NOTIFY channel (noticeChannel, read once at open); undefined on SQLite, which has none. */
export function leaseStore(ctx: StoreContext, channel: string | undefined): LeaseStore {
  const clock = () => ctx.dialect.nowMs();
  return {
    async acquireLease(name, holder, holderUrl, ttlMs) {
      const { rows } = await sql<{ epoch: number }>`
        insert into leases (name, holder, holder_url, epoch, expires_at)
        values (${name}, ${holder}, ${holderUrl}, 1, ${clock()} + ${ttlMs})
        on conflict (name) do update set
          epoch = case when leases.holder = excluded.holder and leases.expires_at > ${clock()} then leases.epoch else leases.epoch + 1 end,
          holder = excluded.holder,
          holder_url = excluded.holder_url,
          expires_at = excluded.expires_at
        where leases.holder is null or leases.holder = excluded.holder or leases.expires_at <= ${clock()}
        returning epoch`.execute(ctx.db);
      return rows[0] ? Number(rows[0].epoch) : undefined;
    },

    async renewLease(name, holder, epoch, ttlMs) {
      // No expiry test: the same epoch means nobody took the lease in between.
      const res = await ctx.db
        .updateTable('leases')
        .set({ expires_at: sql<number>`${clock()} + ${ttlMs}` })
        .where('name', '=', name)
        .where('holder', '=', holder)
        .where('epoch', '=', epoch)
        .executeTakeFirst();
      return Number(res.numUpdatedRows) === 1;
    },

    async resignLease(name, holder, epoch) {
      const res = await ctx.db
        .updateTable('leases')
        .set({ holder: null, holder_url: null, expires_at: 0 })
        .where('name', '=', name)
        .where('holder', '=', holder)
        .where('epoch', '=', epoch)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 1 && channel !== undefined) {
        await sql`select pg_notify(${channel}, ${`lease:${name}`})`.execute(ctx.db);
      }
    },

    async readLease(name) {
      const row = await ctx.db
        .selectFrom('leases')
        .select(['name', 'holder', 'holder_url', 'epoch', sql<number>`expires_at - ${clock()}`.as('remaining')])
        .where('name', '=', name)
        .executeTakeFirst();
      if (!row) return undefined;
      return { name: row.name, holder: row.holder, holderUrl: row.holder_url, epoch: Number(row.epoch), remainingMs: Number(row.remaining) };
    },

    async heartbeatServer(id, url, startedAt) {
      await sql`
        insert into servers (id, url, started_at, seen_at) values (${id}, ${url}, ${startedAt}, ${clock()})
        on conflict (id) do update set url = excluded.url, seen_at = excluded.seen_at`.execute(ctx.db);
    },

    async listServers(maxAgeMs) {
      const rows = await ctx.db
        .selectFrom('servers')
        .select(['id', 'url', 'started_at', sql<number>`${clock()} - seen_at`.as('age')])
        .where(sql<boolean>`seen_at >= ${clock()} - ${maxAgeMs}`)
        .orderBy('started_at')
        .orderBy('id')
        .execute();
      return rows.map((r) => ({ id: r.id, url: r.url, startedAt: r.started_at, ageMs: Number(r.age) }));
    },

    async removeServer(id) {
      await ctx.db.deleteFrom('servers').where('id', '=', id).execute();
    },

    async clusterKey(name, make) {
      await ctx.db.insertInto('cluster_keys').values({ name, value: make(), created_at: now() }).onConflict((oc) => oc.column('name').doNothing()).execute();
      const row = await ctx.db.selectFrom('cluster_keys').select('value').where('name', '=', name).executeTakeFirstOrThrow();
      return row.value;
    },

    async publishNotice(payload) {
      if (channel === undefined) return;
      if (Buffer.byteLength(payload) > MAX_NOTICE_BYTES) throw new Error(`a notice of ${Buffer.byteLength(payload)} bytes is over ${MAX_NOTICE_BYTES}`);
      await sql`select pg_notify(${channel}, ${payload})`.execute(ctx.db);
    },

    async claimOnce(nonce, expiresAtMs) {
      await ctx.db.deleteFrom('redeemed_links').where('expires_at', '<', Date.now()).execute();
      const res = await ctx.db.insertInto('redeemed_links').values({ nonce, expires_at: expiresAtMs }).onConflict((oc) => oc.column('nonce').doNothing()).executeTakeFirst();
      return Number(res.numInsertedOrUpdatedRows ?? 0) === 1;
    },
  };
}
