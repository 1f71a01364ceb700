/**
 * The HTTP proxy through a node's NodeAccess (`--node-connect channel`), the way it reaches pods on
 * machines that accept no inbound connection: a real pod, real HTTP and WebSocket clients, through
 * worker processes and in the server process. Here the node is the server's own (its in-process
 * agent's NodeAccess); a remote agent's channel serves the same NodeAccess. And by default (`auto`)
 * the server's own node is still reached directly.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { podServersCommand } from './support/pod-servers.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function call(port: number, host: string, path: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: { host, ...opts.headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function openSocket(host: string): Promise<WebSocket> {
  const ws = new WebSocket(`ws://${host.replace(/^[^:]*/, '127.0.0.1')}/`, { headers: { host } });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
  });
  return ws;
}

const field = (body: Buffer, name: string): string | undefined => new RegExp(`^${name}=(.*)$`, 'm').exec(body.toString())?.[1];

async function servingPod(t: TestServer, ports: string[]): Promise<string> {
  const created = await t.api<{ id: string }>('POST', '/api/v1/pods', { name: 'proxied', image: TEST_IMAGE, ports, volumeGb: 0, command: podServersCommand() });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const podId = created.body.id;
  const proxyPort = t.server.proxy!.port;
  await waitFor('the pod to serve through the proxy', async () => ((await call(proxyPort, `${podId}-8080.localhost:${proxyPort}`, '/').catch(() => undefined))?.status === 200 ? true : undefined), 60_000);
  return podId;
}

for (const mode of [
  { name: 'worker processes', workers: 2 },
  { name: 'in the server process', workers: 0 },
]) describe(`HTTP proxy through the node's channel (${mode.name})`, () => {
  let t: TestServer;
  let proxyPort: number;
  let podId: string;
  const host = (port: number, id = podId): string => `${id}-${port}.localhost:${proxyPort}`;

  before(async () => {
    await ensureTestImage();
    t = await startTestServer({ proxyWorkers: mode.workers, nodeConnect: 'channel' });
    proxyPort = t.server.proxy!.port;
    // 7000: nothing listens there.
    podId = await servingPod(t, ['8080/http', '9000/http', '8081/http:private', '7000/http']);
  });
  after(() => t?.close());

  it('relays requests and bodies through NodeAccess, not the published port', async () => {
    const body = Buffer.alloc(3 * 2 ** 20, 7);
    const r = await call(proxyPort, host(8080), '/cgi-bin/echo?x=1', { method: 'POST', body, headers: { 'x-forwarded-for': '203.0.113.9' } });
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(field(r.body, 'uri'), '/cgi-bin/echo?x=1');
    assert.equal(field(r.body, 'xff'), '203.0.113.9, 127.0.0.1');
    assert.equal(field(r.body, 'md5'), createHash('md5').update(body).digest('hex'));
    // A chunked upload takes the full path (Node's server and undici) through the same channel.
    const chunked = await call(proxyPort, host(8080), '/cgi-bin/echo', { method: 'POST', headers: { 'transfer-encoding': 'chunked' }, body: Buffer.from('hello') });
    assert.equal(chunked.status, 200, chunked.body.toString());
    assert.equal(field(chunked.body, 'method'), 'POST');
  });

  it('streams a large download and an event stream as they come', async () => {
    const size = 50 * 2 ** 20;
    const down = await call(proxyPort, host(8080), `/cgi-bin/big?${size}`);
    assert.equal(down.status, 200);
    assert.equal(down.body.length, size);
    const events: { text: string; at: number }[] = [];
    const started = Date.now();
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: proxyPort, path: '/cgi-bin/sse?5', headers: { host: host(8080), accept: 'text/event-stream' } }, (res) => {
        assert.equal(res.statusCode, 200);
        let buf = '';
        res.on('data', (c: Buffer) => {
          buf += c.toString();
          for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
            events.push({ text: buf.slice(0, i), at: Date.now() - started });
            buf = buf.slice(i + 2);
          }
        });
        res.on('end', resolve);
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    assert.deepEqual(events.map((e) => e.text), ['data: tick 0', 'data: tick 2', 'data: tick 4', 'event: done\ndata: bye']);
    // The first event came before the stream ended (4 s of sleeps in the pod): nothing buffered it.
    assert.ok(events[0]!.at < events[events.length - 1]!.at, 'the first event arrived before the last');
  });

  it('passes WebSocket upgrades through: an echo', async () => {
    const ws = await openSocket(host(9000));
    assert.ok(t.server.proxy!.channelConnections() > 0, 'the connection goes through NodeAccess');
    const echoed: string[] = [];
    for (const text of ['hello pod', 'through the channel']) {
      const got = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString())));
      ws.send(text);
      echoed.push(await got);
    }
    assert.deepEqual(echoed, ['hello pod', 'through the channel']);
    ws.close();
  });

  it('keeps a private port behind the key', async () => {
    const none = await call(proxyPort, host(8081), '/cgi-bin/echo');
    assert.equal(none.status, 401);
    const ok = await call(proxyPort, host(8081), '/cgi-bin/echo', { headers: { authorization: `Bearer ${t.key}` } });
    assert.equal(ok.status, 200, ok.body.toString());
    assert.equal(field(ok.body, 'authorization'), '', 'the Berth key is not passed on to the pod');
  });

  it('answers 502 with what to check when nothing listens, on every path', async () => {
    const hint = new RegExp(`^nothing answers on port 7000 of pod ${podId}: is the server in the pod listening on 0\\.0\\.0\\.0:7000\\? \\(the connection was refused\\)\n$`);
    const fast = await call(proxyPort, host(7000), '/');
    assert.equal(fast.status, 502, fast.body.toString());
    assert.match(fast.body.toString(), hint);
    const full = await call(proxyPort, host(7000), '/', { method: 'POST', headers: { 'transfer-encoding': 'chunked' }, body: Buffer.from('x') });
    assert.equal(full.status, 502, full.body.toString());
    assert.match(full.body.toString(), hint);
    const json = await call(proxyPort, host(7000), '/', { headers: { accept: 'application/json' } });
    assert.equal((JSON.parse(json.body.toString()) as { code: string }).code, 'BERTH_ERR_UPSTREAM_FAILED');
    const ws = new WebSocket(`ws://127.0.0.1:${proxyPort}/`, { headers: { host: host(7000) } });
    const status = await new Promise<number>((resolve, reject) => {
      ws.once('open', () => reject(new Error('the upgrade went through')));
      ws.once('error', () => undefined);
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    });
    assert.equal(status, 502);
  });

  it('closes the pod\'s connections when it stops', async () => {
    const ws = await openSocket(host(9000));
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    assert.ok(t.server.proxy!.channelConnections() > 0);
    const stopped = await t.api('POST', `/api/v1/pods/${podId}/stop`);
    assert.equal(stopped.status, 200, JSON.stringify(stopped.body));
    await closed;
    await waitFor('the channel connections to close', async () => (t.server.proxy!.channelConnections() === 0 ? true : undefined), 30_000);
    const r = await waitFor('the proxy to see the pod stopped', async () => {
      const a = await call(proxyPort, host(8080), '/');
      return a.status === 503 ? a : undefined;
    });
    assert.match(r.body.toString(), /is (EXITED|STOPPED|TERMINATED)|not running/i);
  });
});

describe('HTTP proxy by default (auto)', () => {
  let t: TestServer;

  before(async () => {
    await ensureTestImage();
    t = await startTestServer({ proxyWorkers: 1 });
  });
  after(() => t?.close());

  it("reaches the server's own node at its published port, not through the channel", async () => {
    const podId = await servingPod(t, ['8080/http', '9000/http']);
    const proxyPort = t.server.proxy!.port;
    for (let i = 0; i < 5; i++) assert.equal((await call(proxyPort, `${podId}-8080.localhost:${proxyPort}`, '/')).status, 200);
    // Open while this is asked: a connection through the channel would show.
    const ws = await openSocket(`${podId}-9000.localhost:${proxyPort}`);
    assert.equal(t.server.proxy!.channelConnections(), 0);
    ws.close();
  });
});
