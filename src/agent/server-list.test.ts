// The agent's server list and the failure classes its calls fail over on; failures made by real sockets.
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { fetch as undiciFetch } from 'undici';
import { classify, failsOver, parseServers, ServerList } from './server-list.js';
import { CertificateMismatch } from './server-trust.js';

/** What fetch throws against a TCP server doing `behave` with each connection. */
async function fetchFailure(behave: (socket: import('node:net').Socket) => void): Promise<unknown> {
  const server = createServer(behave);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  try {
    await undiciFetch(`http://127.0.0.1:${port}/`);
    throw new Error('fetch did not fail');
  } catch (err) {
    return err;
  } finally {
    server.close();
  }
}

describe('ServerList', () => {
  it('takes --server values repeated and comma-separated, each once, as origins', () => {
    assert.deepEqual(parseServers(['http://a:7700/, http://b:7700', 'http://a:7700', 'https://c']), ['http://a:7700', 'http://b:7700', 'https://c']);
    assert.throws(() => parseServers(['ftp://a']), /http:\/\/ or https:\/\//);
    assert.throws(() => new ServerList([]), /no server/);
  });

  it('tries the current server first, then the others after it', () => {
    const l = new ServerList(['http://a', 'http://b', 'http://c']);
    assert.deepEqual(l.order(), ['http://a', 'http://b', 'http://c']);
    l.use('http://b');
    assert.deepEqual(l.order(), ['http://b', 'http://c', 'http://a']);
  });

  it('follows the listed servers for channels, keeping the given ones as a fallback for calls', () => {
    const l = new ServerList(['http://127.0.0.1:1']);
    assert.deepEqual(l.channelTargets, ['http://127.0.0.1:1'], 'none listed: the server the calls go to');
    assert.equal(l.update([]), false, 'an empty list (one server, SQLite) keeps what is known');
    assert.equal(l.update([{ id: 'x', url: 'http://a:7700/' }, { id: 'y', url: 'http://b:7700' }, { id: 'old-x', url: 'http://a:7700' }, { id: 'bad', url: 'not a url' }]), true);
    assert.deepEqual(l.channelTargets, ['http://a:7700', 'http://b:7700'], 'one channel per URL: a restarted server listed twice is dialed once');
    assert.deepEqual(l.known, ['http://a:7700', 'http://b:7700', 'http://127.0.0.1:1']);
    assert.equal(l.current, 'http://127.0.0.1:1', 'the calls stay where they work');
    assert.equal(l.update([{ id: 'y', url: 'http://b:7700' }, { id: 'x', url: 'http://a:7700' }]), true, 'another order is a change');
    assert.equal(l.update([{ id: 'y', url: 'http://b:7700' }, { id: 'x', url: 'http://a:7700' }]), false);
    l.use('http://a:7700');
    l.update([{ id: 'y', url: 'http://b:7700' }]);
    assert.equal(l.current, 'http://b:7700', 'a current server no longer known is left');
  });
});

describe('which failures move a call to another server', () => {
  it('a refused connection was never sent: every call moves, a join too', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    await new Promise((r) => server.close(r));
    const err = await undiciFetch(`http://127.0.0.1:${port}/`).then(() => undefined, (e: unknown) => e);
    assert.equal(classify({ error: err }), 'not-sent');
    assert.equal(failsOver('not-sent', false), true);
  });

  it('a connection closed without an answer (a server that died) is lost: idempotent calls move, a join does not', async () => {
    const err = await fetchFailure((s) => s.once('data', () => s.destroy()));
    assert.equal(classify({ error: err }), 'lost');
    assert.equal(failsOver('lost', true), true);
    assert.equal(failsOver('lost', false), false, 'a join may have been done there: not repeated elsewhere');
  });

  it('a reset is lost; our own deadline is lost; a pinned certificate mismatch was never sent', async () => {
    const err = await fetchFailure((s) => s.once('data', () => s.resetAndDestroy()));
    assert.equal(classify({ error: err }), 'lost');
    assert.equal(classify({ error: new Error('aborted'), timedOut: true }), 'lost');
    assert.equal(classify({ error: Object.assign(new Error('fetch failed'), { cause: new CertificateMismatch('aa', 'bb') }) }), 'not-sent');
  });

  it('a 5xx moves; other answers are the call\'s own', () => {
    for (const status of [500, 502, 503, 504]) assert.equal(classify({ status }), 'unavailable');
    for (const status of [400, 401, 403, 404, 409, 429]) assert.equal(classify({ status }), 'final');
    assert.equal(failsOver('unavailable', true, 502), true);
    assert.equal(failsOver('unavailable', false, 503), true, 'a 503 did not serve the join');
    assert.equal(failsOver('unavailable', false, 504), false, 'a 504 may have');
    assert.equal(failsOver('final', true), false);
    assert.equal(classify({ error: new Error('something else') }), 'final');
  });
});
