// The agent's HTTP calls across several servers: real HTTP servers on loopback, each behaving as a
// Berth server does when it is gone (refused, dying mid-watch, silent, 503), and the calls that move.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { certificateFingerprint } from '../control/index.js';
import type { NodeId } from '../model/index.js';
import { HttpAgentChannel } from './http-channel.js';

const NODE = 'n1' as NodeId;
type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

/** A self-signed certificate and its key, as `berth server --tls-cert/--tls-key` takes them. */
async function selfSigned(): Promise<{ cert: Buffer; key: Buffer }> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-pin-'));
  try {
    await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=berth-test']);
    return { cert: await readFile(join(dir, 'cert.pem')), key: await readFile(join(dir, 'key.pem')) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** An HTTPS server answering every request with 204, and what it saw. */
async function httpsServer(tls: { cert: Buffer; key: Buffer }): Promise<{ url: string; seen: string[]; close: () => Promise<void> }> {
  const seen: string[] = [];
  const s = createHttpsServer(tls, (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    res.writeHead(204).end();
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { url: `https://127.0.0.1:${(s.address() as AddressInfo).port}`, seen, close: () => new Promise((r) => { s.closeAllConnections(); s.close(() => r()); }) };
}

/** An HTTP server that records each request's method and path and hands it to `handle`. */
async function server(handle: Handler): Promise<{ url: string; seen: string[]; close: () => Promise<void> }> {
  const seen: string[] = [];
  const s: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url}`);
      handle(req, res, body);
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  return { url, seen, close: () => new Promise((r) => { s.closeAllConnections(); s.close(() => r()); }) };
}

const json = (res: ServerResponse, status: number, v: unknown): void => {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(v));
};
const WATCH = { revision: 7, assignments: [], networkVolumes: [] };

/** A port nothing listens on. */
async function deadUrl(): Promise<string> {
  const s = await server(() => undefined);
  await s.close();
  return s.url;
}

describe('HttpAgentChannel across several servers', () => {
  const open: Array<{ close: () => Promise<void> }> = [];
  after(async () => {
    for (const s of open) await s.close();
  });
  const up = async (h: Handler) => {
    const s = await server(h);
    open.push(s);
    return s;
  };

  it('moves a call off a server that refuses connections, and stays on the one that answered', async () => {
    const b = await up((_q, res) => res.writeHead(204).end());
    const dead = await deadUrl();
    const ch = new HttpAgentChannel({ server: [dead, b.url], credential: 'bnc_x' });
    await ch.report(NODE, []);
    await ch.reportUsage(NODE, []);
    assert.deepEqual(b.seen, ['POST /api/v1/agent/report', 'POST /api/v1/agent/usage']);
    assert.equal(ch.servers.current, b.url);
    await ch.close();
  });

  it('re-issues a watch in flight on a server that dies, with the same revision, on the next server', async () => {
    // The watch is held; then the server dies under it.
    const a: Awaited<ReturnType<typeof up>> = await up(() => setTimeout(() => void a.close(), 100));
    const b = await up((_q, res) => json(res, 200, WATCH));
    const ch = new HttpAgentChannel({ server: [a.url, b.url], credential: 'bnc_x' });
    const got = await ch.watch(NODE, 5, 20_000);
    assert.deepEqual(got, WATCH);
    assert.deepEqual(a.seen, ['GET /api/v1/agent/watch?since=5&waitMs=20000']);
    assert.deepEqual(b.seen, ['GET /api/v1/agent/watch?since=5&waitMs=20000']);
    await ch.close();
  });

  it('moves on a 5xx; a 400 is the call\'s own and does not move', async () => {
    let status = 503;
    const a = await up((_q, res) => json(res, status, { detail: 'not now' }));
    const b = await up((_q, res) => res.writeHead(204).end());
    for (const s of [500, 502, 503, 504]) {
      status = s;
      const ch = new HttpAgentChannel({ server: [a.url, b.url], credential: 'bnc_x' });
      await ch.report(NODE, []);
      assert.equal(ch.servers.current, b.url, `after a ${s}`);
    }
    status = 400;
    const ch = new HttpAgentChannel({ server: [a.url, b.url], credential: 'bnc_x' });
    await assert.rejects(ch.report(NODE, []), /answered 400: not now/);
    assert.equal(ch.servers.current, a.url);
  });

  it('gives up on a silent server after the call deadline and asks the next', async () => {
    const a = await up(() => undefined);
    const b = await up((_q, res) => res.writeHead(204).end());
    const ch = new HttpAgentChannel({ server: [a.url, b.url], credential: 'bnc_x', callTimeoutMs: 300 });
    await ch.report(NODE, []);
    assert.equal(b.seen.length, 1);
    // The next call starts where the last one ended: the silent server is not waited on again.
    await ch.report(NODE, []);
    assert.equal(a.seen.length, 1);
    await ch.close();
  });

  it('fails when every server is gone, with the first server\'s reason, and tries each once', async () => {
    const a = await deadUrl();
    const b = await up((_q, res) => json(res, 503, { detail: 'draining' }));
    const ch = new HttpAgentChannel({ server: [a, b.url], credential: 'bnc_x' });
    await assert.rejects(ch.report(NODE, []), (err: Error) => err.message.includes(`cannot reach ${a}`));
    assert.equal(b.seen.length, 1);
  });

  it('moves a join only when it surely was not done: refused yes, a connection lost after sending no', async () => {
    const joined = { nodeId: 'n9', credential: 'bnc_new' };
    const b = await up((_q, res) => json(res, 201, joined));
    const reg = { name: 'm', publicIp: '127.0.0.1', labels: {}, capacity: { cpus: 1, memoryMb: 1, gpus: [], gpusSimulated: false }, agentVersion: 't' };
    const seen: string[] = [];
    const ch = new HttpAgentChannel({ server: [await deadUrl(), b.url], token: 'bjt_x.y', onJoined: async (j) => void seen.push(`${j.nodeId} at ${j.server}`) });
    assert.deepEqual(await ch.register(reg), { nodeId: 'n9' });
    assert.deepEqual(seen, [`n9 at ${b.url}`], 'the server that made the node is the one kept');

    const dying = await up((req) => req.socket.destroy());
    const c = await up((_q, res) => json(res, 201, joined));
    const lost = new HttpAgentChannel({ server: [dying.url, c.url], token: 'bjt_x.y' });
    await assert.rejects(lost.register(reg), /cannot reach/);
    assert.equal(c.seen.length, 0, 'not joined twice');
  });

  it("pins the join token's certificate on every server: the cluster's shared certificate passes, another is refused", async () => {
    const shared = await selfSigned();
    const a = await httpsServer(shared);
    const b = await httpsServer(shared);
    open.push(b);
    const ch = new HttpAgentChannel({ server: [a.url, b.url], credential: 'bnc_x', fingerprint: certificateFingerprint(shared.cert) });
    await ch.report(NODE, []);
    await a.close();
    await ch.report(NODE, []);
    assert.deepEqual([a.seen.length, b.seen.length], [1, 1], 'the second server, with the same certificate, took the call');
    await ch.close();

    const other = await httpsServer(await selfSigned());
    open.push(other);
    const pinned = new HttpAgentChannel({ server: [other.url, b.url], credential: 'bnc_x', fingerprint: certificateFingerprint(shared.cert) });
    await pinned.report(NODE, []);
    assert.equal(other.seen.length, 0, 'nothing was sent to the server with another certificate');
    assert.equal(b.seen.length, 2);
    await pinned.close();
    const alone = new HttpAgentChannel({ server: other.url, credential: 'bnc_x', fingerprint: certificateFingerprint(shared.cert) });
    await assert.rejects(alone.report(NODE, []), /not the one the join token pinned/);
    await alone.close();
  });

  it('lists the servers: malformed entries left out, an older server without the route lists none', async () => {
    const a = await up((_q, res) => json(res, 200, { servers: [{ id: 's1', url: 'http://x:1' }, { id: 2, url: 'http://y:1' }, 'z', { id: 's3', url: 'http://z:1' }] }));
    const ch = new HttpAgentChannel({ server: a.url, credential: 'bnc_x' });
    assert.deepEqual(await ch.listServers(), [{ id: 's1', url: 'http://x:1' }, { id: 's3', url: 'http://z:1' }]);
    const old = await up((_q, res) => json(res, 404, { detail: 'no such route' }));
    assert.deepEqual(await new HttpAgentChannel({ server: old.url, credential: 'bnc_x' }).listServers(), []);
  });
});
