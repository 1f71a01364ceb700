import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startServer, type RunningServer, type ServerOptions } from '../../src/cli/server.js';


export interface TestServer {
  server: RunningServer;
  url: string;
  key: string;
  dataDir: string;
  /** fetch against the API with the admin key; JSON in and out. */
  api: <T = unknown>(method: string, path: string, body?: unknown, key?: string) => Promise<{ status: number; body: T; headers: Headers }>;
  /** A new join token (`berth token create`), for `berth agent --token`: what an operator hands a machine. */
  joinToken: (body?: { maxUses?: number; labels?: Record<string, string>; description?: string }) => Promise<string>;
  close: () => Promise<void>;
}

/**
 * An all-in-one Berth on a random port with its own data dir; close() terminates what it started.
 * Multi-container pods get Berth's own infra image, built by the agent as it would be for a user.
 */
export async function startTestServer(opts: ServerOptions = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'berth-test-')));
  const server = await startServer({
    port: 0,
    host: '127.0.0.1',
    logger: pino({ level: process.env.BERTH_TEST_LOG ?? 'silent' }),
    stopTimeoutSeconds: 1,
    ...opts,
    dataDir,
  });
  const key = (await readFile(join(dataDir, 'admin.key'), 'utf8')).trim();
  const api = async <T,>(method: string, path: string, body?: unknown, k = key) => {
    const res = await fetch(server.url + path, {
      method,
      headers: { authorization: `Bearer ${k}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T, headers: res.headers };
  };
  return {
    server,
    url: server.url,
    key,
    dataDir,
    api,
    async joinToken(body = {}) {
      const made = await api<{ token: string }>('POST', '/api/v1/tokens', { description: 'test', ...body });
      if (made.status !== 201) throw new Error(`no join token: ${made.status} ${JSON.stringify(made.body)}`);
      return made.body.token;
    },
    async close() {
      // Terminate every pod this server knows, wait for the agent to clean up, then stop.
      const list = await api<{ pods: { id: string }[] }>('GET', '/api/v1/pods');
      for (const p of list.body?.pods ?? []) await api('POST', `/api/v1/pods/${p.id}/terminate`);
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && (await server.store.listInstances({})).length > 0) await new Promise((r) => setTimeout(r, 100));
      await server.close();
      if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls until `check` returns a value that is not undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}
