import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { ServerOptions } from '../../src/cli/server.js';
import { startTestServer, type TestServer } from './server.js';

/**
 * A PostgreSQL schema of its own (parallel and earlier runs never see each other's rows or
 * migrations): the URL that selects it, and `drop` to remove it and close the admin connection.
 */
export async function postgresSchema(postgresUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const schema = `berth_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: postgresUrl });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  const url = new URL(postgresUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: url.toString(),
    drop: async () => {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    },
  };
}

/** A test server on one store, and what to do after. */
export interface StoreServer {
  t: TestServer;
  cleanup: () => Promise<void>;
}

/**
 * The stores a server-level test runs on: SQLite always, PostgreSQL when BERTH_TEST_DATABASE_URL
 * names one (a schema of its own per server, dropped after, as test/store.test.ts does).
 */
export function storesToTest(): { name: string; open: (opts?: ServerOptions) => Promise<StoreServer> }[] {
  const out = [
    {
      name: 'SQLite',
      open: async (opts: ServerOptions = {}) => {
        const t = await startTestServer(opts);
        return { t, cleanup: () => t.close() };
      },
    },
  ];
  const postgresUrl = process.env.BERTH_TEST_DATABASE_URL;
  if (postgresUrl) {
    out.push({
      name: 'PostgreSQL',
      open: async (opts: ServerOptions = {}) => {
        const { url, drop } = await postgresSchema(postgresUrl);
        try {
          const t = await startTestServer({ ...opts, databaseUrl: url });
          return {
            t,
            cleanup: async () => {
              await t.close();
              await drop();
            },
          };
        } catch (err) {
          await drop();
          throw err;
        }
      },
    });
  }
  return out;
}
