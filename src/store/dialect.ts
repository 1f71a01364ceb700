import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { type CreateTableBuilder, type Expression, Kysely, PostgresDialect, type RawBuilder, type SqlBool, SqliteDialect, type SqliteDatabase as SqliteDialectDatabase, sql } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';

/**
 * Everything that differs between SQLite and PostgreSQL lives here; the store and the migrations
 * ask this object instead of testing the dialect's name.
 */
export interface SqlDialect {
  readonly name: 'sqlite' | 'postgres';
  /** Adds the change feed's key, `revision`, which must never hand out a number twice. */
  addRevisionKey(table: CreateTableBuilder<'changes'>): CreateTableBuilder<'changes', 'revision'>;
  /**
   * The schema that holds Kysely's migration tables. PostgreSQL names it: Kysely's check for the
   * table looks in every schema, so another schema's copy (a second Berth in the same database, or a
   * test run beside this one) would otherwise be taken for ours.
   */
  migrationSchema(db: Kysely<Database>): Promise<string | undefined>;
  /**
   * Taken first thing in every write transaction. On PostgreSQL, transactions that allocate
   * revisions could commit out of order (5 before 4) and a watcher reading up to 5 would never see 4;
   * one transaction-scoped advisory lock makes revision order and commit order the same. SQLite has a
   * single writer already.
   */
  lockWriters(trx: Kysely<Database>): Promise<void>;
  /** True when the JSON array of strings `images` holds exactly `image`. */
  imagesInclude(images: Expression<string>, image: string): RawBuilder<SqlBool>;
  /** A unique or primary-key constraint refused the row. */
  isUniqueViolation(err: unknown): boolean;
  /** The database's clock in ms since the epoch: leases are timed by it, never by a server's own clock. */
  nowMs(): RawBuilder<number>;
  /** ` for share` where the database can lock a row for reading (the fence holds the lease row until its write commits). */
  readonly forShare: RawBuilder<unknown>;
}

const errorCode = (err: unknown): string | undefined =>
  err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;

const sqliteDialect: SqlDialect = {
  name: 'sqlite',
  addRevisionKey: (table) => table.addColumn('revision', 'integer', (c) => c.primaryKey().autoIncrement()),
  migrationSchema: async () => undefined,
  lockWriters: async () => undefined,
  imagesInclude: (images, image) => sql<SqlBool>`exists (select 1 from json_each(${images}) where value = ${image})`,
  isUniqueViolation: (err) => {
    const code = errorCode(err);
    return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
  },
  nowMs: () => sql<number>`cast((julianday('now') - 2440587.5) * 86400000 as integer)`,
  // One writer at a time already: nothing can take the lease while a write holds the database.
  forShare: sql``,
};

/** Key of the advisory lock that orders writers; any constant no other Berth lock uses. */
const WRITER_LOCK_KEY = 0x6265727468; // "berth"

const postgresDialect: SqlDialect = {
  name: 'postgres',
  addRevisionKey: (table) => table.addColumn('revision', 'bigserial', (c) => c.primaryKey()),
  migrationSchema: async (db) => {
    const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db);
    const schema = rows[0]?.schema;
    if (!schema) throw new Error('PostgreSQL has no current schema: the search_path names no schema that exists');
    return schema;
  },
  lockWriters: async (trx) => {
    await sql`select pg_advisory_xact_lock(${WRITER_LOCK_KEY})`.execute(trx);
  },
  imagesInclude: (images, image) => sql<SqlBool>`(${images})::jsonb @> jsonb_build_array(${image}::text)`,
  isUniqueViolation: (err) => errorCode(err) === '23505',
  // clock_timestamp, not now(): now() is the transaction's start, and a lease check must see the present.
  nowMs: () => sql<number>`(extract(epoch from clock_timestamp()) * 1000)::bigint`,
  forShare: sql` for share`,
};

/** Compiled connection options: see StoreOptions in index.ts for the defaults. */
export type ConnectOptions =
  | { kind: 'sqlite'; /** null: in memory. */ dataDir: string | null; busyTimeoutMs: number }
  | { kind: 'postgres'; url: string; poolSize: number };

export const SQLITE_FILE_NAME = 'berth.db';

/**
 * Opens the connection (file or pool) and returns Kysely over it with its dialect. `onLost` hears of
 * pooled PostgreSQL connections the database ended (a restart, pg_terminate_backend).
 */
export function connect(opts: ConnectOptions, onLost?: (err: Error) => void): { db: Kysely<Database>; dialect: SqlDialect } {
  if (opts.kind === 'postgres') {
    // bigint (int8) arrives as a string by default; revisions and counts fit in a double for the
    // life of any install. Set on this pool's own parsers, so other pg users in the process keep theirs.
    const types = new pg.TypeOverrides();
    types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));
    const pool = new pg.Pool({ connectionString: opts.url, max: opts.poolSize, types });
    // A connection the database ends must not take the process with it: an idle one the pool drops
    // (its 'error'), one in use between two queries emits 'error' on itself, and the next query on
    // it fails like any failed query (the pool then drops it). The pool opens new ones as needed.
    const lost = (err: Error) => onLost?.(err);
    pool.on('error', lost);
    pool.on('connect', (client) => client.on('error', lost));
    return { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), dialect: postgresDialect };
  }
  if (opts.dataDir !== null) mkdirSync(opts.dataDir, { recursive: true });
  const database = new SqliteDatabase(opts.dataDir === null ? ':memory:' : join(opts.dataDir, SQLITE_FILE_NAME));
  // WAL lets readers run beside the writer; NORMAL is durable across process crashes in WAL mode
  // (only an OS crash may lose the last commits), which is the usual trade for an embedded store.
  database.pragma('journal_mode = WAL');
  database.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs))}`);
  database.pragma('synchronous = NORMAL');
  database.pragma('foreign_keys = ON');
  return { db: new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(database) }) }), dialect: sqliteDialect };
}

/** Prepared statements kept per SQL text; texts with varying IN lists come and go, the rest stay. */
const STATEMENTS_KEPT = 500;

/**
 * Kysely's SQLite driver prepares every query anew; preparing costs more than running most of
 * Berth's queries (a placement pass spent a third of its time there). Statements are reused by
 * their SQL text; one still iterating (busy) is not shared, a fresh one is prepared instead.
 */
function withStatementCache(database: SqliteDatabase.Database): SqliteDialectDatabase {
  const kept = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => database.close(),
    prepare(text: string) {
      const known = kept.get(text);
      if (known && !known.busy) return known;
      const stmt = database.prepare(text);
      if (!known) {
        if (kept.size >= STATEMENTS_KEPT) kept.delete(kept.keys().next().value!);
        kept.set(text, stmt);
      }
      return stmt;
    },
  };
}
