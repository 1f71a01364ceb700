// The change relay between stores on one database (src/store/relay.ts, listen.ts): every store hears
// every committed revision once, in revision order, whichever store wrote it. On PostgreSQL through
// LISTEN/NOTIFY (when BERTH_TEST_DATABASE_URL names one; each run in a schema of its own), on SQLite
// by catching up at the next gap.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { newNodeId, type Change, type NodeId } from '../src/model/index.js';
import { openStore, type Store } from '../src/store/index.js';
import { connect } from '../src/store/dialect.js';
import { noticeChannel } from '../src/store/leases.js';
import { LISTEN_APPLICATION_NAME } from '../src/store/listen.js';
import { postgresSchema } from './support/stores.js';
import { waitFor } from './support/server.js';

/** One write that records one change: a node, its id the change's id. */
async function writeNode(store: Store): Promise<NodeId> {
  const id = newNodeId();
  const at = new Date().toISOString();
  await store.upsertNode({ id, name: `n-${id}`, publicIp: '10.0.0.1', labels: {}, capacity: { cpus: 1, memoryMb: 1024, gpus: [], gpusSimulated: false }, agentVersion: '0', registeredAt: at, lastSeenAt: at });
  return id;
}

/** What a store's listeners hear from now on. */
function hear(store: Store): { heard: Change[]; stop: () => void } {
  const heard: Change[] = [];
  return { heard, stop: store.onChange((c) => heard.push(c)) };
}

const revisions = (changes: readonly Change[]): number[] => changes.map((c) => c.revision);

/** Waits until `heard` holds a change of every id in `ids`. */
async function heardAll(what: string, heard: readonly Change[], ids: readonly string[]): Promise<void> {
  await waitFor(what, async () => (ids.every((id) => heard.some((c) => c.id === id)) ? true : undefined));
}

/** Each revision once, in increasing order. */
function assertOrdered(changes: readonly Change[]): void {
  const revs = revisions(changes);
  for (let i = 1; i < revs.length; i++) assert.ok(revs[i]! > revs[i - 1]!, `revision ${revs[i]} after ${revs[i - 1]}: out of order or twice`);
}

describe('change relay on SQLite', () => {
  it('a store hears another store’s writes on the same file in order, at its next gap', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-feed-'));
    const a = await openStore({ dataDir: dir });
    const b = await openStore({ dataDir: dir });
    try {
      const onA = hear(a);
      const onB = hear(b);
      const written = [await writeNode(a), await writeNode(a), await writeNode(a)];
      assert.deepEqual(onA.heard.map((c) => c.id), written, 'a local write is heard by the time it returns');
      // No LISTEN on SQLite: b's own write follows revisions it has not announced, so it reads them first.
      written.push(await writeNode(b));
      assert.deepEqual(onB.heard.map((c) => c.id), written);
      assertOrdered(onB.heard);
      assert.deepEqual(revisions(onB.heard), revisions(await b.changesSince(0)));
    } finally {
      await a.close();
      await b.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('onNotice never fires', async () => {
    const store = await openStore({});
    const notices: string[] = [];
    store.onNotice((p) => notices.push(p));
    const epoch = await store.acquireLease('leader', 's1', 'http://s1', 3000);
    assert.ok(epoch !== undefined);
    await store.resignLease('leader', 's1', epoch);
    await writeNode(store);
    assert.deepEqual(notices, []);
    await store.close();
  });
});

const postgresUrl = process.env.BERTH_TEST_DATABASE_URL;
if (postgresUrl) {
  describe('change relay on PostgreSQL', () => {
    let url: string;
    let drop: () => Promise<void>;
    let a: Store;
    let b: Store;
    let admin: pg.Client;
    let channel: string;

    /** The backends LISTENing on this schema's channel (a store's dedicated connection each). */
    async function listeners(): Promise<number[]> {
      const { rows } = await admin.query<{ pid: number }>('select pid from pg_stat_activity where application_name = $1 and query = $2 order by pid', [LISTEN_APPLICATION_NAME, `LISTEN "${channel}"`]);
      return rows.map((r) => r.pid);
    }

    before(async () => {
      ({ url, drop } = await postgresSchema(postgresUrl));
      admin = new pg.Client({ connectionString: url });
      await admin.connect();
      a = await openStore({ databaseUrl: url });
      const { db } = connect({ kind: 'postgres', url, poolSize: 1 });
      channel = await noticeChannel({ db });
      await db.destroy();
      b = await openStore({ databaseUrl: url });
    });

    after(async () => {
      await a?.close();
      await b?.close();
      await admin?.end();
      await drop?.();
    });

    it('a write on one store is heard on the other, with its ids in order', async () => {
      const onB = hear(b);
      try {
        const written: string[] = [];
        for (let i = 0; i < 5; i++) written.push(await writeNode(a));
        await heardAll('b to hear a’s writes', onB.heard, written);
        assert.deepEqual(onB.heard.map((c) => c.id), written);
        assertOrdered(onB.heard);
        const feed = await a.changesSince(onB.heard[0]!.revision - 1);
        assert.deepEqual(onB.heard.map((c) => [c.revision, c.kind, c.id, c.nodeId]), feed.map((c) => [c.revision, c.kind, c.id, c.nodeId]));
      } finally {
        onB.stop();
      }
    });

    it('concurrent writes on both stores are heard by both in revision order, each once', async () => {
      const start = await a.revision();
      const onA = hear(a);
      const onB = hear(b);
      try {
        const writes: Promise<NodeId>[] = [];
        for (let i = 0; i < 40; i++) writes.push(writeNode(i % 2 === 0 ? a : b));
        const written = await Promise.all(writes);
        await heardAll('a to hear every write', onA.heard, written);
        await heardAll('b to hear every write', onB.heard, written);
        const feed = revisions(await a.changesSince(start));
        assert.equal(feed.length, 40);
        assert.deepEqual(revisions(onA.heard), feed);
        assert.deepEqual(revisions(onB.heard), feed);
      } finally {
        onA.stop();
        onB.stop();
      }
    });

    it('a rolled-back transaction’s gap in the revisions does not stall anyone', async () => {
      const onA = hear(a);
      const onB = hear(b);
      try {
        await assert.rejects(
          a.transaction(async (tx) => {
            await writeNode(tx);
            await writeNode(tx);
            throw new Error('roll back');
          }),
          /roll back/,
        );
        const id = await writeNode(a);
        assert.deepEqual(onA.heard.map((c) => c.id), [id], 'heard by the time the write returns, after the gap');
        await heardAll('b to hear the write after the gap', onB.heard, [id]);
        assert.deepEqual(onB.heard.map((c) => c.id), [id]);
        // And the other way round: b's next write follows a revision b heard from a.
        const fromB = await writeNode(b);
        await heardAll('a to hear b', onA.heard, [fromB]);
        assert.deepEqual(onA.heard.map((c) => c.id), [id, fromB]);
      } finally {
        onA.stop();
        onB.stop();
      }
    });

    it('a store whose LISTEN connection is killed reconnects and misses nothing', async () => {
      const before = await listeners();
      assert.equal(before.length, 2, 'each store has one LISTEN connection');
      const start = await a.revision();
      const onB = hear(b);
      try {
        const written: string[] = [];
        for (let i = 0; i < 10; i++) written.push(await writeNode(a));
        // Kill both LISTEN connections while a writes on: b's (and a's own) notices are lost.
        const writing = (async () => {
          for (let i = 0; i < 20; i++) written.push(await writeNode(a));
        })();
        await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where pid = any($1::int[])', [before]);
        await writing;
        for (let i = 0; i < 10; i++) written.push(await writeNode(a));
        await heardAll('b to hear every write', onB.heard, written);
        assert.deepEqual(revisions(onB.heard), revisions(await a.changesSince(start)));
        // Reconnected, not just polled: two new LISTEN connections, and b hears the next write through one.
        await waitFor('both stores to LISTEN again', async () => {
          const now = await listeners();
          return now.length === 2 && now.every((pid) => !before.includes(pid)) ? now : undefined;
        });
        const next = await writeNode(a);
        await heardAll('b to hear a write after reconnecting', onB.heard, [next]);
      } finally {
        onB.stop();
      }
    });

    it('onNotice hears a lease resigned on another store', async () => {
      const notices: string[] = [];
      const stop = b.onNotice((p) => notices.push(p));
      try {
        const epoch = await a.acquireLease('leader', 'server-a', 'http://a', 3000);
        assert.ok(epoch !== undefined);
        await a.resignLease('leader', 'server-a', epoch);
        await waitFor('b to hear the resign', async () => (notices.includes('lease:leader') ? true : undefined));
        assert.ok(!notices.some((p) => p.startsWith('rev:')), 'revisions go to change listeners, not notice listeners');
      } finally {
        stop();
      }
    });

    it('stores in two schemas do not hear each other', async () => {
      const other = await postgresSchema(postgresUrl);
      const c = await openStore({ databaseUrl: other.url });
      try {
        const onC = hear(c);
        const onB = hear(b);
        const cNotices: string[] = [];
        c.onNotice((p) => cNotices.push(p));
        const fromA = await writeNode(a);
        const epoch = await a.acquireLease('leader', 'server-a', 'http://a', 3000);
        await a.resignLease('leader', 'server-a', epoch!);
        await heardAll('b to hear a', onB.heard, [fromA]);
        // Notices reach a listener in commit order: had c shared a's channel, a's resign would come
        // before c's own.
        const epochC = await c.acquireLease('own', 'server-c', 'http://c', 3000);
        await c.resignLease('own', 'server-c', epochC!);
        await waitFor('c to hear its own resign', async () => (cNotices.includes('lease:own') ? true : undefined));
        assert.deepEqual(cNotices, ['lease:own']);
        const fromC = await writeNode(c);
        assert.deepEqual(onC.heard.map((x) => x.id), [fromC]);
        assert.ok(!onB.heard.some((x) => x.id === fromC));
      } finally {
        await c.close();
        await other.drop();
      }
    });
  });
} else if (process.env.BERTH_TEST_REQUIRE_POSTGRES === '1') {
  describe('change relay on PostgreSQL', () => {
    it('has a database to run on', () => {
      assert.fail('BERTH_TEST_REQUIRE_POSTGRES=1 but BERTH_TEST_DATABASE_URL is not set');
    });
  });
} else {
  describe('change relay on PostgreSQL', { skip: 'set BERTH_TEST_DATABASE_URL to run the relay tests on PostgreSQL' }, () => {});
}
