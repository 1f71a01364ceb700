import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Change, NodeId } from '../model/index.js';
import { ChangeRelay } from './relay.js';

/** A feed in memory: what is committed, read as the store reads it; reads wait while `hold` is set. */
class Feed {
  readonly rows: Change[] = [];
  reads = 0;
  private gate: Promise<void> | null = null;
  private open: () => void = () => undefined;

  commit(...revisions: number[]): Change[] {
    const made = revisions.map((revision) => ({ revision, kind: 'node' as const, id: `n${revision}`, nodeId: null as NodeId | null, at: '' }));
    this.rows.push(...made);
    return made;
  }

  hold(): void {
    this.gate = new Promise((r) => (this.open = r));
  }

  release(): void {
    this.gate = null;
    this.open();
  }

  read = async (since: number, limit: number): Promise<Change[]> => {
    this.reads++;
    const rows = this.rows.filter((c) => c.revision > since).slice(0, limit);
    await this.gate;
    return rows;
  };
}

function relayOver(feed: Feed, start = 0): { relay: ChangeRelay; heard: number[] } {
  const relay = new ChangeRelay({ read: feed.read, start });
  const heard: number[] = [];
  relay.onChange((c) => heard.push(c.revision));
  return { relay, heard };
}

describe('ChangeRelay', () => {
  it('announces a local commit that follows the last revision at once, without reading', () => {
    const feed = new Feed();
    const { relay, heard } = relayOver(feed, 4);
    assert.equal(relay.committed(feed.commit(5, 6)), undefined);
    assert.deepEqual(heard, [5, 6]);
    assert.equal(feed.reads, 0);
  });

  it('reads the gap before a local commit that does not follow, and settles once it was heard', async () => {
    const feed = new Feed();
    const { relay, heard } = relayOver(feed);
    feed.commit(1, 2); // another server's
    // 3 rolled back: a gap.
    const waiting = relay.committed(feed.commit(4));
    assert.ok(waiting);
    assert.deepEqual(heard, []);
    await waiting;
    assert.deepEqual(heard, [1, 2, 4]);
    assert.equal(relay.announced, 4);
  });

  it('hears nothing twice: a local commit a catch-up already announced is left alone', async () => {
    const feed = new Feed();
    const { relay, heard } = relayOver(feed);
    const local = feed.commit(1, 2);
    feed.commit(3);
    relay.notice('rev:3');
    await relay.catchUp();
    assert.equal(relay.committed(local), undefined);
    assert.deepEqual(heard, [1, 2, 3]);
  });

  it('runs a catch-up asked for during another after it, and a local commit meanwhile waits for it', async () => {
    const feed = new Feed();
    const { relay, heard } = relayOver(feed);
    feed.commit(1);
    feed.hold();
    const first = relay.catchUp();
    // While the first read is out: 2 commits here, so it must wait its turn and not jump ahead.
    const local = relay.committed(feed.commit(2));
    assert.ok(local, 'a local commit during a catch-up is not announced out of turn');
    feed.release();
    await first;
    await local;
    assert.deepEqual(heard, [1, 2]);
    assert.equal(feed.reads, 2, 'one read, and one after it for the request made during it');
  });

  it('reads in batches until the feed is exhausted', async () => {
    const feed = new Feed();
    const { relay, heard } = relayOver(feed);
    feed.commit(...Array.from({ length: 2500 }, (_, i) => i + 1));
    await relay.catchUp();
    assert.equal(heard.length, 2500);
    assert.equal(heard.at(-1), 2500);
    assert.equal(feed.reads, 3);
  });

  it('ignores notices of revisions already heard, catches up on newer ones, passes the rest on', async () => {
    const feed = new Feed();
    const { relay } = relayOver(feed, 10);
    const notices: string[] = [];
    relay.onNotice((p) => notices.push(p));
    relay.notice('rev:9');
    relay.notice('rev:10');
    assert.equal(feed.reads, 0);
    relay.notice('lease:leader');
    assert.deepEqual(notices, ['lease:leader']);
    relay.notice('rev:11');
    await relay.catchUp();
    assert.ok(feed.reads > 0);
  });

  it('keeps going after a failed read, and announces nothing once closed', async () => {
    const feed = new Feed();
    let fail = true;
    const relay = new ChangeRelay({ read: async (since, limit) => (fail ? Promise.reject(new Error('database down')) : feed.read(since, limit)), start: 0 });
    const heard: number[] = [];
    relay.onChange((c) => heard.push(c.revision));
    feed.commit(1);
    await relay.catchUp(); // never rejects
    assert.deepEqual(heard, []);
    fail = false;
    await relay.catchUp();
    assert.deepEqual(heard, [1]);
    await relay.close();
    feed.commit(2);
    await relay.catchUp();
    assert.deepEqual(heard, [1]);
  });
});
