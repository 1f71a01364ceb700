// The agent following the cluster's servers: the list its calls use, the channels it holds, what it keeps.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import type { NodeId } from '../model/index.js';
import type { LocalNodeAccess } from './node-access.js';
import { NodeChannelSet } from './channel-set.js';
import { ServerFollower } from './server-follow.js';
import { ServerList, type ListedServer } from './server-list.js';

const log = pino({ level: 'silent' });

describe('ServerFollower', () => {
  it('has the channels follow the listed servers, keeps the list when asking fails, and says when it changed', async () => {
    const list = new ServerList(['http://given:1']);
    let answer: ListedServer[] | Error = [];
    const synced: string[][] = [];
    const kept: string[][] = [];
    const f = new ServerFollower({
      list,
      fetch: () => (answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer)),
      channels: { sync: async (s) => void synced.push([...s]) },
      logger: log,
      onChange: async (known) => void kept.push(known),
      intervalMs: 60_000,
    });
    await f.start();
    assert.deepEqual(synced, [['http://given:1']], 'none listed: a channel to the server given');
    answer = [{ id: 'a', url: 'http://a:1' }, { id: 'b', url: 'http://b:1' }];
    await f.refresh();
    assert.deepEqual(synced.at(-1), ['http://a:1', 'http://b:1']);
    assert.deepEqual(kept, [['http://a:1', 'http://b:1', 'http://given:1']]);
    answer = new Error('every server gone');
    await f.refresh();
    assert.deepEqual(synced.at(-1), ['http://a:1', 'http://b:1'], 'a failed ask keeps the channels');
    answer = [{ id: 'b', url: 'http://b:1' }];
    await Promise.all([f.refresh(), f.refresh()]);
    assert.deepEqual(synced.at(-1), ['http://b:1'], 'a server gone from the list loses its channel');
    assert.equal(kept.length, 2);
    await f.close();
  });
});

describe('NodeChannelSet', () => {
  it('holds one dialer per server, by origin, and closes those no longer wanted', async () => {
    const set = new NodeChannelSet({ token: 't', nodeId: 'n' as NodeId, access: {} as LocalNodeAccess, logger: log, minRetryMs: 50, maxRetryMs: 50 });
    // Nothing listens on these ports: the dialers keep dialing, which is all this looks at.
    assert.deepEqual((await set.sync(['http://127.0.0.1:9/', 'http://127.0.0.1:9', 'http://127.0.0.1:11'])).opened, ['http://127.0.0.1:9', 'http://127.0.0.1:11']);
    const first = set.dialer('http://127.0.0.1:9');
    assert.deepEqual(await set.sync(['http://127.0.0.1:9', 'http://127.0.0.1:13']), { opened: ['http://127.0.0.1:13'], closed: ['http://127.0.0.1:11'] });
    assert.equal(set.dialer('http://127.0.0.1:9'), first, 'a server still listed keeps its channel');
    assert.deepEqual(set.servers, ['http://127.0.0.1:9', 'http://127.0.0.1:13']);
    assert.equal(set.connected, false);
    await set.close();
    assert.deepEqual(set.servers, []);
  });
});
