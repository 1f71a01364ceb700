import { Migrator } from 'kysely';
import { invalid } from '../model/index.js';
import { connect, type ConnectOptions } from './dialect.js';
import { migrationProvider } from './migrations.js';
import type { StoreLogger } from './changes.js';
import { sqlStore } from './sql-store.js';
import type { Store } from './types.js';

export type { InstancePatch, NodeInput, PodDetail, PodFilter, PodPatch, Store } from './types.js';
export type { StoreLogger } from './changes.js';
export { SQLITE_FILE_NAME } from './dialect.js';
export { withFence, currentFence, type Fence } from './fence.js';
export type { Lease, ServerEntry } from './leases.js';

export interface StoreOptions {
  /**
   * Directory that holds `berth.db` (SQLite); created when missing. Absent or `':memory:'`: an
   * in-memory database that lives as long as the store, for tests.
   * @default undefined
   */
  dataDir?: string;
  /** `postgres://` or `postgresql://` selects PostgreSQL; `dataDir` is then unused. @default undefined */
  databaseUrl?: string;
  /** Hears of migrations run and of change listeners that throw. @default undefined: silent */
  logger?: StoreLogger;
  /** How long a SQLite write waits for another process's lock before failing. @default 5000 */
  busyTimeoutMs?: number;
  /** Connections in the PostgreSQL pool. @default 10 */
  poolSize?: number;
  /** Pod details kept in memory for listPods, checked against each pod's revision; 0: none. @default 20000 */
  podCacheSize?: number;
}

const POSTGRES_URL = /^postgres(ql)?:\/\//;

function compile(opts: StoreOptions): ConnectOptions {
  if (opts.databaseUrl !== undefined && opts.databaseUrl !== '') {
    if (!POSTGRES_URL.test(opts.databaseUrl)) {
      throw invalid([{ path: '/databaseUrl', message: 'must start with postgres:// or postgresql://' }]);
    }
    return { kind: 'postgres', url: opts.databaseUrl, poolSize: opts.poolSize ?? 10 };
  }
  const dataDir = opts.dataDir === undefined || opts.dataDir === ':memory:' ? null : opts.dataDir;
  return { kind: 'sqlite', dataDir, busyTimeoutMs: opts.busyTimeoutMs ?? 5000 };
}

/** Opens the database, brings its schema up to date, and returns the store over it. */
export async function openStore(opts: StoreOptions = {}): Promise<Store> {
  const conn = compile(opts);
  const { db, dialect } = connect(conn, (err) => opts.logger?.error({ err }, 'a PostgreSQL connection was lost; the pool opens another'));
  try {
    const migrator = new Migrator({
      db,
      provider: migrationProvider(dialect),
      migrationTableSchema: await dialect.migrationSchema(db),
    });
    const { error, results } = await migrator.migrateToLatest();
    for (const r of results ?? []) {
      if (r.status !== 'NotExecuted') opts.logger?.info({ migration: r.migrationName, status: r.status }, 'store migration');
    }
    if (error) throw error;
  } catch (err) {
    await db.destroy();
    throw err;
  }
  try {
    return await sqlStore(db, dialect, {
      podCacheSize: opts.podCacheSize ?? 20_000,
      ...(opts.logger ? { logger: opts.logger } : {}),
      ...(conn.kind === 'postgres' ? { listenUrl: conn.url } : {}),
    });
  } catch (err) {
    await db.destroy();
    throw err;
  }
}
