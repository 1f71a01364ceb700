import type { Kysely } from 'kysely';
import type { Change, NodeId } from '../model/index.js';
import { changeFromRow } from './rows.js';
import type { Database } from './schema.js';

/*
 * The change feed: every write appends to `changes` in its own transaction, and the revision of that
 * row is the store revision that agents watch and /api/v1/events resumes from. In-process listeners
 * hear of a change only once its transaction has committed (see SqlContext in context.ts), and hear
 * other servers' changes too, all in revision order (relay.ts).
 */

/** Reading the feed and hearing of it; one slice of the Store. */
export interface ChangeFeed {
  revision(): Promise<number>;
  /** The oldest revision the change feed still holds; 0 when it is empty. */
  oldestRevision(): Promise<number>;
  /** Drops all but the newest `keep` changes, so the feed does not grow without end; returns how many went. */
  pruneChanges(keep: number): Promise<number>;
  /** Changes after `since`, oldest first, at most `limit`. */
  changesSince(since: number, limit?: number): Promise<Change[]>;
  /**
   * Hear of each committed change, whichever server wrote it: every revision once, in revision order
   * (see relay.ts). Returns the unsubscribe function.
   */
  onChange(listener: (change: Change) => void): () => void;
  /**
   * Hear of the notices other servers send on this database's channel that are not revisions
   * (`lease:<name>` when a lease is resigned). PostgreSQL only: on SQLite it never fires.
   */
  onNotice(listener: (payload: string) => void): () => void;
}

/** The slice of a pino logger the store uses. */
export interface StoreLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

type Listener = (change: Change) => void;

/** In-process subscribers to committed changes, shared by a store and its transactions. */
export class ChangeListeners {
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

/** Appends one change inside the transaction `trx` and returns it; the relay announces it after commit. */
export async function appendChange(trx: Kysely<Database>, kind: Change['kind'], id: string, nodeId: NodeId | null): Promise<Change> {
  const at = new Date().toISOString();
  const { revision } = await trx
    .insertInto('changes')
    .values({ kind, entity_id: id, node_id: nodeId, at })
    .returning('revision')
    .executeTakeFirstOrThrow();
  return { revision, kind, id, nodeId, at };
}

/** The store revision: the newest committed change's (pruning keeps that row), 0 before the first write. */
export async function latestRevision(db: Kysely<Database>): Promise<number> {
  const row = await db
    .selectFrom('changes')
    .select((eb) => eb.fn.max('revision').as('revision'))
    .executeTakeFirst();
  return row?.revision ?? 0;
}

/** Changes after `since`, oldest first, at most `limit` (absent: all). */
export async function readChanges(db: Kysely<Database>, since: number, limit?: number): Promise<Change[]> {
  let q = db.selectFrom('changes').selectAll().where('revision', '>', since).orderBy('revision');
  if (limit !== undefined) q = q.limit(limit);
  return (await q.execute()).map(changeFromRow);
}

/** The feed over `db` (the database or the open transaction); `relay` is the store's, shared by its transactions. */
export function changeFeed(db: Kysely<Database>, relay: Pick<ChangeFeed, 'onChange' | 'onNotice'>): ChangeFeed {
  const revision = (): Promise<number> => latestRevision(db);
  return {
    revision,

    async oldestRevision() {
      const row = await db
        .selectFrom('changes')
        .select((eb) => eb.fn.min('revision').as('revision'))
        .executeTakeFirst();
      return row?.revision ?? 0;
    },

    async pruneChanges(keep) {
      // The newest row stays whatever `keep` is: revision() reads the feed's maximum.
      const cut = (await revision()) - Math.max(1, keep);
      if (cut <= 0) return 0;
      const res = await db.deleteFrom('changes').where('revision', '<=', cut).executeTakeFirst();
      return Number(res.numDeletedRows);
    },

    changesSince: (since, limit) => readChanges(db, since, limit),

    onChange: (listener) => relay.onChange(listener),
    onNotice: (listener) => relay.onNotice(listener),
  };
}
