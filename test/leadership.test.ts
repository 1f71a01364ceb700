// Leadership on one PostgreSQL, in process: one leader, writes forwarded to it, the fence, a clean
// hand-over. (test/ha.test.ts runs real server processes with agents on machines of their own.)
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { startServer, type RunningServer } from '../src/cli/server.js';
import { openStore, withFence } from '../src/store/index.js';
import { BerthError } from '../src/model/index.js';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';
import { postgresSchema } from './support/stores.js';

const postgresUrl = process.env.BERTH_TEST_DATABASE_URL;
const isKind = (kind: string) => (err: unknown) => err instanceof BerthError && err.kind === kind;

interface Cluster {
  self: { id: string; leader: boolean };
  leader: { id: string; url: string; epoch: number } | null;
  servers: Array<{ id: string; url: string; leader: boolean }>;
}

describe('one server on SQLite', () => {
  it('leads alone, at epoch 0', async () => {
    const t = await startTestServer({ agent: false, proxy: false, ssh: false });
    try {
      const c = await t.api<Cluster>('GET', '/api/v1/cluster');
      assert.equal(c.status, 200);
      assert.equal(c.body.self.leader, true);
      assert.equal(c.body.leader?.epoch, 0);
      assert.deepEqual(c.body.servers.map((s) => s.leader), [true]);
      // One server names itself as Marathon's leader, as it was reached.
      assert.equal((await t.api<{ leader: string }>('GET', '/marathon/v2/leader')).body.leader, new URL(t.url).host);
    } finally {
      await t.close();
    }
  });
});

describe('several servers on one PostgreSQL', { skip: postgresUrl ? false : 'set BERTH_TEST_DATABASE_URL to run on PostgreSQL' }, () => {
  let drop: () => Promise<void>;
  let url: string;
  let a: TestServer;
  let b: RunningServer;
  let bDir: string;
  const call = async <T,>(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(base + path, { method, headers: { authorization: `Bearer ${a.key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  };

  before(async () => {
    ({ url, drop } = await postgresSchema(postgresUrl!));
    a = await startTestServer({ databaseUrl: url, agent: false, proxy: false, ssh: false });
    bDir = await mkdtemp(join(tmpdir(), 'berth-test-b-'));
    b = await startServer({ port: 0, host: '127.0.0.1', dataDir: bDir, databaseUrl: url, agent: false, proxy: false, ssh: false, logger: pino({ level: process.env.BERTH_TEST_LOG ?? 'silent' }) });
  });
  after(async () => {
    await b?.close();
    await a?.server.close();
    await rm(bDir, { recursive: true, force: true });
    await rm(a.dataDir, { recursive: true, force: true });
    await drop?.();
  });

  it('has one leader, which every server names, and lists every server', async () => {
    const fromA = await call<Cluster>(a.url, 'GET', '/api/v1/cluster');
    const fromB = await waitFor('b to list both servers', async () => {
      const c = await call<Cluster>(b.url, 'GET', '/api/v1/cluster');
      return c.body.servers.length === 2 ? c : undefined;
    });
    assert.equal(fromA.body.self.leader, true, 'the first server leads');
    assert.equal(fromB.body.self.leader, false);
    assert.equal(fromB.body.leader?.id, fromA.body.self.id);
    assert.deepEqual(fromB.body.servers.map((s) => s.leader).sort(), [false, true]);
    // Marathon's clients ask any server who leads.
    const marathon = await call<{ leader: string }>(b.url, 'GET', '/marathon/v2/leader');
    assert.equal(marathon.status, 200);
    assert.equal(marathon.body.leader, new URL(a.url).host);
  });

  it("forwards a follower's writes to the leader, with the caller's key; reads are its own", async () => {
    const made = await call<{ id: string; name: string }>(b.url, 'POST', '/api/v1/pods', { name: 'through-b', image: 'example.invalid/none:1', volumeGb: 0 });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const seen = await call<{ name: string }>(a.url, 'GET', `/api/v1/pods/${made.body.id}`);
    assert.equal(seen.body.name, 'through-b');
    // A key the leader does not know is refused there, as it would be here.
    const refused = await fetch(`${b.url}/api/v1/pods`, { method: 'POST', headers: { authorization: 'Bearer bk_nope', 'content-type': 'application/json' }, body: '{}' });
    assert.equal(refused.status, 401);
    // The audit log is the leader's: one entry for the create.
    const audit = await call<{ entries: Array<{ action: string; objectId: string }> }>(a.url, 'GET', '/api/v1/audit');
    assert.equal(audit.body.entries.filter((e) => e.objectId === made.body.id).length, 1, JSON.stringify(audit.body.entries));
    // A write already forwarded once is never forwarded again by a server that does not lead.
    const looped = await call<{ code: string }>(b.url, 'POST', '/api/v1/pods', { name: 'x', image: 'example.invalid/none:1' }, { 'x-berth-forwarded-by': 'srv_other' });
    assert.equal(looped.status, 503);
    assert.equal(looped.body.code, 'BERTH_ERR_NOT_LEADER');
  });

  it("refuses a write fenced by a lease another server took, even when the writer still thinks it leads", async () => {
    const store = await openStore({ databaseUrl: url });
    try {
      assert.ok((await store.acquireLease('fence-test', 'old', 'http://old', 200)) !== undefined);
      await withFence({ lease: 'fence-test', holder: 'old', epoch: 1 }, () => store.transaction(async () => undefined));
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await store.acquireLease('fence-test', 'new', 'http://new', 5000), 2);
      await assert.rejects(withFence({ lease: 'fence-test', holder: 'old', epoch: 1 }, () => store.transaction(async () => undefined)), isKind('NOT_LEADER'));
      await withFence({ lease: 'fence-test', holder: 'new', epoch: 2 }, () => store.transaction(async () => undefined));
    } finally {
      await store.close();
    }
  });

  it('hands over at once when the leader stops cleanly', async () => {
    await a.server.close();
    const c = await waitFor('b to lead', async () => {
      const r = await call<Cluster>(b.url, 'GET', '/api/v1/cluster');
      return r.body.self.leader ? r : undefined;
    });
    assert.equal(c.body.leader?.epoch, 2);
    const made = await call<{ id: string }>(b.url, 'POST', '/api/v1/pods', { name: 'after-handover', image: 'example.invalid/none:1', volumeGb: 0 });
    assert.equal(made.status, 201, JSON.stringify(made.body));
  });
});

describe("a server's own agent, with several servers", { skip: postgresUrl ? false : 'set BERTH_TEST_DATABASE_URL to run on PostgreSQL' }, () => {
  it("is reached through another server: its agent holds a node channel to each of the others", async () => {
    await ensureTestImage();
    const { url, drop } = await postgresSchema(postgresUrl!);
    const a = await startTestServer({ databaseUrl: url, proxy: false, ssh: false });
    const bDir = await mkdtemp(join(tmpdir(), 'berth-test-b-'));
    const b = await startServer({ port: 0, host: '127.0.0.1', dataDir: bDir, databaseUrl: url, agent: false, proxy: false, ssh: false, logger: pino({ level: process.env.BERTH_TEST_LOG ?? 'silent' }) });
    try {
      const made = await a.api<{ id: string }>('POST', '/api/v1/pods', { name: 'on-a', image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0 });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      const exec = async () => {
        const r = await fetch(`${b.url}/api/v1/pods/${made.body.id}/exec`, { method: 'POST', headers: { authorization: `Bearer ${a.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ command: ['echo', 'via-b'] }) });
        const body = (await r.json()) as { stdout?: string };
        return r.status === 200 && body.stdout === 'via-b\n' ? body.stdout : undefined;
      };
      assert.equal(await waitFor('exec through the server without the agent', exec, 60_000), 'via-b\n');
    } finally {
      await b.close();
      await a.close();
      await rm(bDir, { recursive: true, force: true });
      await drop();
    }
  });
});
