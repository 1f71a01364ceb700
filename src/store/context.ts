import type { Kysely } from 'kysely';
import { BerthError, type Change, type NodeId } from '../model/index.js';
import { appendChange } from './changes.js';
import type { SqlDialect } from './dialect.js';
import { checkFence } from './fence.js';
import type { PodDetailCache } from './pod-cache.js';
import type { ChangeRelay } from './relay.js';
import type { Database } from './schema.js';

/** What a write sees: the transaction, and the way to append to the change feed within it. */
export interface Writer {
  db: Kysely<Database>;
  /** Appends one change and returns its revision; it is announced when the transaction commits. */
  record(kind: Change['kind'], id: string, nodeId: NodeId | null): Promise<number>;
}

/** What every entity module of the store works on: the same object for all of them, per transaction. */
export interface StoreContext {
  /** The database, or the open transaction: reads on it see the transaction's own writes. */
  readonly db: Kysely<Database>;
  readonly dialect: SqlDialect;
  /**
   * Null in a transaction: its reads see revisions that may roll back, and SQLite hands a
   * rolled-back revision out again, so they must neither fill nor trust the cache.
   */
  readonly cache: PodDetailCache | null;
  /** Runs a write in a transaction (the open one, if any) and announces its changes after commit. */
  write<T>(work: (w: Writer) => Promise<T>): Promise<T>;
}

/**
 * The store's context outside a transaction, or inside one (then `pending` holds the changes recorded
 * so far, announced when the outermost transaction commits and dropped if it rolls back).
 */
export class SqlContext implements StoreContext {
  /** The context of a whole database; the relay and the cache are shared by its transactions' contexts. */
  static root(db: Kysely<Database>, dialect: SqlDialect, relay: ChangeRelay, cache: PodDetailCache | null): SqlContext {
    return new SqlContext(db, dialect, relay, null, cache);
  }

  private constructor(
    readonly db: Kysely<Database>,
    readonly dialect: SqlDialect,
    readonly relay: ChangeRelay,
    private readonly pending: Change[] | null,
    readonly cache: PodDetailCache | null,
  ) {}

  get inTransaction(): boolean {
    return this.pending !== null;
  }

  /**
   * Runs `fn` on a context bound to a new transaction that first takes the writer lock (on
   * PostgreSQL, so revisions commit in order; see SqlDialect.lockWriters). A transaction that
   * recorded changes ends by notifying the other servers of its newest revision (PostgreSQL), and its
   * changes are announced to this process's listeners once it has committed, in revision order with
   * every other server's (relay.ts): the returned promise settles after they were heard. Callers
   * join an open transaction instead (see `write`).
   */
  async transaction<T>(fn: (tx: SqlContext) => Promise<T>): Promise<T> {
    if (this.pending) throw new Error('a transaction context opens no second transaction: join this one');
    const pending: Change[] = [];
    let result: T;
    try {
      result = await this.db.transaction().execute(async (trx) => {
        await this.dialect.lockWriters(trx);
        await checkFence(trx, this.dialect);
        const out = await fn(new SqlContext(trx, this.dialect, this.relay, pending, null));
        const newest = pending.at(-1);
        if (newest) await this.relay.notifyInside(trx, newest.revision);
        return out;
      });
    } catch (err) {
      this.relay.rolledBack(pending);
      throw err;
    }
    const heard = this.relay.committed(pending);
    if (heard) await heard;
    return result;
  }

  async write<T>(work: (w: Writer) => Promise<T>): Promise<T> {
    if (this.pending) return work(this.writer(this.pending));
    return this.transaction((tx) => tx.write(work));
  }

  private writer(pending: Change[]): Writer {
    return {
      db: this.db,
      record: async (kind, id, nodeId) => {
        const change = await appendChange(this.db, kind, id, nodeId);
        pending.push(change);
        return change.revision;
      },
    };
  }
}

/** Runs an insert or update, turning a unique-constraint refusal into a CONFLICT the API can show. */
export async function unique<T>(ctx: StoreContext, run: () => Promise<T>, conflict: string): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (ctx.dialect.isUniqueViolation(err)) throw new BerthError('CONFLICT', conflict, { cause: err });
    throw err;
  }
}

export const now = (): string => new Date().toISOString();
