/**
 * The proxy engine against real HTTP servers on loopback (no Docker): the fast path's framing
 * (lengths, chunked, to-the-close, HEAD, 1xx, 204/304), keep-alive both ways, pipelining, uploads
 * and downloads with backpressure, the pod's failures, and the hand-off to the full path (private
 * ports, routing errors, chunked uploads, Expect, HTTP/1.0, WebSockets), in plain HTTP and TLS.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, createServer as createHttpServer, request, type IncomingMessage, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import pino from 'pino';
import WebSocket, { WebSocketServer } from 'ws';
import { ProxyTokens } from '../control/access.js';
import type { OwnerId, PodId, InstanceId, PodStatus } from '../model/index.js';
import { ProxyEngine, socketHandle } from './engine.js';
import { LocalAccess } from './gate.js';
import type { PodRoute } from './routes.js';

const POD = 'aaaaaaaaaaaaaa';
const RAW_POD = 'bbbbbbbbbbbbbb';
const DEAD_POD = 'cccccccccccccc';
/** Pods of their own for the tests that count connections. */
const QUIET_POD = 'dddddddddddddd';
const BRIEF_POD = 'eeeeeeeeeeeeee';
const FLAKY_POD = 'ffffffffffffff';

function route(podId: string, ports: { port: number; upstreamPorts: number[]; private?: boolean }[], status: PodStatus = 'RUNNING'): PodRoute {
  return {
    podId: podId as PodId,
    owner: 'someone' as OwnerId,
    status,
    statusMessage: null,
    ports: new Map(
      ports.map((p) => [
        p.port,
        {
          port: p.port,
          protocol: 'http' as const,
          private: p.private === true,
          next: 0,
          upstreams: p.upstreamPorts.map((up, i) => ({ instanceId: `${podId}-${i}` as InstanceId, origin: `http://127.0.0.1:${up}`, via: 'direct' as const, host: '127.0.0.1', port: up })),
        },
      ]),
    ),
  };
}

const portOf = (s: Server | NetServer): number => (s.address() as AddressInfo).port;
const listen = async <S extends Server | NetServer>(s: S): Promise<S> => {
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return s;
};

interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
  socket: unknown;
}

function call(port: number, host: string, path: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer | string[]; agent?: Agent; tls?: boolean } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const make = opts.tls ? httpsRequest : request;
    const req = make({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: { host, ...opts.headers }, agent: opts.agent, rejectUnauthorized: false }, (res) => {
      const parts: Buffer[] = [];
      const socket = res.socket;
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts), socket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (Array.isArray(opts.body)) {
      // Sent as chunks of unknown total length: a chunked upload.
      for (const part of opts.body) req.write(part);
      req.end();
    } else req.end(opts.body);
  });
}

/** Writes raw bytes and collects what comes back until `done` says so or the connection closes. */
function rawCall(port: number, data: string, done: (text: string) => boolean, opts: { tls?: boolean } = {}): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s: Socket = opts.tls ? tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }) : netConnect({ host: '127.0.0.1', port });
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no complete answer; got ${JSON.stringify(text)}`)), 10_000);
    s.write(data);
    s.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      if (done(text)) {
        clearTimeout(timer);
        s.destroy();
        resolve({ text, closed: false });
      }
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    s.on('error', reject);
  });
}

const BIG_BLOCK = 61 * 1024;
/** The bytes of /big at an offset (a multiple of BIG_BLOCK): every block differs, so a mix-up shows. */
const bigBlock = (offset: number): Buffer => Buffer.alloc(BIG_BLOCK, (offset / BIG_BLOCK) % 251);
function bigMd5(total: number): string {
  const h = createHash('md5');
  for (let at = 0; at < total; at += BIG_BLOCK) h.update(bigBlock(at).subarray(0, Math.min(BIG_BLOCK, total - at)));
  return h.digest('hex');
}

/** The pod: a Node HTTP server with one behaviour per path. */
function podApp(): Server {
  return createHttpServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    switch (url.pathname) {
      case '/headers':
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ headers: req.headers, rawHeaders: req.rawHeaders, method: req.method, url: req.url, remotePort: req.socket.remotePort }));
        return;
      case '/chunked':
        res.write('one,');
        setTimeout(() => res.write('two,'), 20);
        setTimeout(() => res.end('three'), 40);
        return;
      case '/echo': {
        const hash = createHash('md5');
        let n = 0;
        req.on('data', (c: Buffer) => {
          n += c.length;
          hash.update(c);
        });
        req.on('end', () => res.end(JSON.stringify({ bytes: n, md5: hash.digest('hex'), te: req.headers['transfer-encoding'] ?? null })));
        return;
      }
      case '/big': {
        const total = Number(url.searchParams.get('n'));
        let sent = 0;
        res.setHeader('content-length', total);
        const pump = (): void => {
          while (sent < total) {
            const part = bigBlock(sent).subarray(0, Math.min(BIG_BLOCK, total - sent));
            sent += part.length;
            if (!res.write(part)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('close', () => (sent = total));
        pump();
        return;
      }
      case '/status':
        res.statusCode = Number(url.searchParams.get('code'));
        res.end();
        return;
      case '/never':
        return; // no answer at all
      default:
        res.setHeader('content-type', 'text/plain');
        res.end('hello from the pod\n');
    }
  });
}

/** A pod that speaks raw HTTP, for answers Node's server would not send. */
function rawPod(stats = { kills: 0, connections: 0 }): NetServer {
  const answers: Record<string, (s: Socket) => void> = {
    '/flaky': (s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'),
    '/brief': (s) => {
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      setTimeout(() => s.end(), 100); // a pod that drops idle connections quickly
    },
    '/to-close': (s) => s.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the pod closes'),
    '/http10': (s) => s.end('HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok'),
    '/early': (s) => s.write('HTTP/1.1 103 Early Hints\r\nlink: </style.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nafter'),
    '/split': (s) => {
      s.write('HTTP/1.1 200 OK\r\ncontent-');
      setTimeout(() => s.write('length: 5\r\n'), 20);
      setTimeout(() => s.write('\r\nsp'), 40);
      setTimeout(() => s.write('lit'), 60);
    },
    '/garbage': (s) => s.write('this is not http\r\n\r\n'),
    '/conflict': (s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello'),
    '/bad-chunks': (s) => s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n'),
  };
  return createNetServer((s) => {
    let buf = '';
    let served = 0;
    stats.connections++;
    s.on('error', () => undefined);
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const path = buf.slice(0, end).split(' ')[1] ?? '/';
        buf = buf.slice(end + 4);
        if (path === '/flaky' && served++ > 0) {
          // As if it had closed the idle connection just as the request went out.
          stats.kills++;
          return void s.destroy();
        }
        (answers[path] ?? ((sock: Socket) => sock.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n')))(s);
      }
    });
  });
}

/**
 * Connections reach the engine as sockets (a proxy in the server process) or as bare handles (what
 * the server passes a worker); every test runs both ways.
 */
for (const mode of ['sockets', 'handles'] as const) describe(`proxy engine (connections as ${mode})`, { concurrency: true }, () => {
  const log = pino({ level: 'silent' });
  const access = new LocalAccess(ProxyTokens.ephemeral(), { authenticate: async () => undefined });
  let app: Server;
  let quiet: Server;
  let brief: NetServer;
  let flaky: NetServer;
  const briefStats = { kills: 0, connections: 0 };
  const flakyStats = { kills: 0, connections: 0 };
  let raw: NetServer;
  let ws: WebSocketServer;
  let wsServer: Server;
  let refusedPort: number;
  /** Pods whose port takes the connection and gives nothing back: one resets it once the request is in, one closes it at once (as Docker's port forwarding does when nothing listens in the pod). */
  let resetter: NetServer;
  let closer: NetServer;
  const routes = new Map<string, PodRoute>();
  const engines: ProxyEngine[] = [];
  const fronts: NetServer[] = [];
  let plain: number;
  let idle: number;
  let tlsPort: number;
  let certDir: string;

  async function front(opts: { idleTimeoutMs?: number; tls?: { cert: Buffer; key: Buffer } } = {}): Promise<number> {
    const engine = new ProxyEngine({ routes: { get: (id) => routes.get(id) }, access, logger: log, ...opts });
    engines.push(engine);
    const server = await listen(
      mode === 'sockets'
        ? createNetServer((s) => engine.accept(s))
        : // As the server does for a worker: nothing read, the handle taken from under the socket.
          createNetServer({ pauseOnConnect: true }, (s) => engine.acceptHandle(socketHandle(s)!)),
    );
    fronts.push(server);
    return portOf(server);
  }

  before(async () => {
    app = await listen(podApp());
    quiet = await listen(podApp());
    brief = await listen(rawPod(briefStats));
    flaky = await listen(rawPod(flakyStats));
    raw = await listen(rawPod());
    wsServer = await listen(createHttpServer());
    ws = new WebSocketServer({ server: wsServer });
    ws.on('connection', (sock, req) => {
      sock.send(`xff=${String(req.headers['x-forwarded-for'])}`);
      sock.on('message', (d: Buffer) => sock.send(`echo:${d.toString()}`));
    });
    resetter = await listen(
      createNetServer((s) => {
        s.on('error', () => undefined);
        s.once('data', () => s.resetAndDestroy());
      }),
    );
    closer = await listen(
      createNetServer((s) => {
        s.on('error', () => undefined);
        s.end();
      }),
    );
    const gone = await listen(createNetServer());
    refusedPort = portOf(gone);
    await new Promise<void>((resolve) => gone.close(() => resolve()));
    routes.set(POD, route(POD, [
      { port: 8080, upstreamPorts: [portOf(app)] },
      { port: 8081, upstreamPorts: [portOf(app)], private: true },
      { port: 9000, upstreamPorts: [portOf(wsServer)] },
      { port: 9999, upstreamPorts: [refusedPort] },
      { port: 9998, upstreamPorts: [portOf(resetter)] },
      { port: 9997, upstreamPorts: [portOf(closer)] },
    ]));
    routes.set(QUIET_POD, route(QUIET_POD, [{ port: 8080, upstreamPorts: [portOf(quiet)] }]));
    routes.set(BRIEF_POD, route(BRIEF_POD, [{ port: 8080, upstreamPorts: [portOf(brief)] }]));
    routes.set(FLAKY_POD, route(FLAKY_POD, [{ port: 8080, upstreamPorts: [portOf(flaky)] }]));
    routes.set(RAW_POD, route(RAW_POD, [{ port: 8080, upstreamPorts: [portOf(raw)] }]));
    routes.set(DEAD_POD, route(DEAD_POD, [{ port: 8080, upstreamPorts: [] }], 'EXITED'));
    plain = await front();
    idle = await front({ idleTimeoutMs: 300 });
    certDir = await mkdtemp(join(tmpdir(), 'berth-proxy-tls-'));
    await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem')]);
    tlsPort = await front({ tls: { cert: await readFile(join(certDir, 'cert.pem')), key: await readFile(join(certDir, 'key.pem')) } });
  });

  after(async () => {
    for (const e of engines) await e.close();
    for (const s of [...fronts, app, quiet, brief, flaky, raw, wsServer, resetter, closer]) s.close();
    ws.close();
    for (const s of [app, quiet]) s.closeAllConnections();
    await rm(certDir, { recursive: true, force: true });
  });

  const host = (pod = POD, port = 8080): string => `${pod}-${port}.localhost`;

  it('relays a request with X-Forwarded-*, keeping both connections alive', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const seen: { headers: Record<string, string>; rawHeaders: string[]; remotePort: number }[] = [];
    const sockets = new Set<unknown>();
    for (let i = 0; i < 3; i++) {
      const r = await call(plain, host(QUIET_POD), '/headers?i=1', { agent, headers: { 'x-forwarded-for': '203.0.113.9', 'keep-alive': 'timeout=5', 'x-custom': 'kept' } });
      assert.equal(r.status, 200);
      sockets.add(r.socket);
      seen.push(JSON.parse(r.body.toString()) as (typeof seen)[number]);
    }
    agent.destroy();
    assert.equal(sockets.size, 1, 'one client connection');
    assert.equal(new Set(seen.map((s) => s.remotePort)).size, 1, 'one connection to the pod');
    const h = seen[0]!.headers;
    assert.equal(h.host, host(QUIET_POD));
    assert.equal(h['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h['x-forwarded-host'], host(QUIET_POD));
    assert.equal(h['x-custom'], 'kept');
    assert.equal(h['keep-alive'], undefined);
    assert.equal(seen[0]!.rawHeaders.filter((n, i) => i % 2 === 0 && n.toLowerCase() === 'x-forwarded-for').length, 1);
  });

  it('passes a chunked response through as it comes, then serves the next request', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const r = await call(plain, host(), '/chunked', { agent });
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    assert.equal(r.body.toString(), 'one,two,three');
    const again = await call(plain, host(), '/', { agent });
    assert.equal(again.body.toString(), 'hello from the pod\n');
    assert.equal(again.socket, r.socket);
    agent.destroy();
  });

  it('streams an upload and a download with backpressure', async () => {
    const up = Buffer.alloc(8 * 2 ** 20, 3);
    const r = await call(plain, host(), '/echo', { method: 'POST', body: up });
    assert.deepEqual(JSON.parse(r.body.toString()), { bytes: up.length, md5: createHash('md5').update(up).digest('hex'), te: null });
    const size = 40 * 2 ** 20 + 7;
    const down = await call(plain, host(), `/big?n=${size}`);
    assert.equal(down.body.length, size);
    assert.equal(createHash('md5').update(down.body).digest('hex'), bigMd5(size));
    // A client that stops reading: the proxy's writes back up, the pod is paused, nothing is mixed up.
    const slow = await new Promise<Buffer>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: plain, path: `/big?n=${size}`, headers: { host: host() } }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.once('data', () => {
          res.pause();
          setTimeout(() => res.resume(), 500);
        });
        res.on('end', () => resolve(Buffer.concat(parts)));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(createHash('md5').update(slow).digest('hex'), bigMd5(size));
  });

  it('frames HEAD, 204 and 304 without a body and keeps the connection', async () => {
    // Raw: Node's own client drops a connection after any HEAD.
    const ask = (line: string, close = false): string => `${line} HTTP/1.1\r\nHost: ${host()}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;
    const { text, closed } = await rawCall(plain, ask('HEAD /') + ask('GET /status?code=204') + ask('GET /status?code=304') + ask('GET /', true), () => false);
    assert.ok(closed);
    const heads = text.split(/(?=HTTP\/1\.1 )/);
    assert.deepEqual(heads.map((h) => h.slice(9, 12)), ['200', '204', '304', '200']);
    for (const h of heads.slice(0, 3)) assert.ok(h.endsWith('\r\n\r\n'), `no body: ${JSON.stringify(h)}`);
    assert.match(heads[0]!, /connection: keep-alive\r\n/);
    assert.ok(heads[3]!.endsWith('\r\n\r\nhello from the pod\n'));
  });

  it('reads a repeated head once, yet frames each answer by its own request (a HEAD between GETs)', async () => {
    const ask = (line: string, close = false): string => `${line} HTTP/1.1\r\nHost: ${host()}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;
    // The pod answers HEAD / with the very head it gives GET /: only the method tells them apart.
    const { text, closed } = await rawCall(plain, ask('GET /') + ask('GET /') + ask('HEAD /') + ask('GET /') + ask('GET /headers', true), () => false);
    assert.ok(closed);
    const answers = text.split(/(?=HTTP\/1\.1 )/);
    assert.equal(answers.length, 5, text);
    for (const i of [0, 1, 3]) assert.ok(answers[i]!.endsWith('\r\n\r\nhello from the pod\n'), answers[i]);
    assert.ok(answers[2]!.endsWith('\r\n\r\n'), `HEAD: no body: ${JSON.stringify(answers[2])}`);
    const seen = JSON.parse(answers[4]!.slice(answers[4]!.indexOf('\r\n\r\n') + 4)) as { headers: Record<string, string>; url: string };
    assert.equal(seen.url, '/headers');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  });

  it('answers pipelined requests in order', async () => {
    const one = `GET / HTTP/1.1\r\nHost: ${host()}\r\n\r\n`;
    const two = `GET /status?code=204 HTTP/1.1\r\nHost: ${host()}\r\n\r\n`;
    const three = `GET /chunked HTTP/1.1\r\nHost: ${host()}\r\nConnection: close\r\n\r\n`;
    const { text, closed } = await rawCall(plain, one + two + three, () => false);
    assert.ok(closed, 'Connection: close ends the connection');
    const statuses = [...text.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => m[1]);
    assert.deepEqual(statuses, ['200', '204', '200']);
    assert.match(text, /hello from the pod\n/);
    assert.match(text, /connection: close\r\n/);
    assert.match(text, /one,\r\n/);
  });

  it('relays bodies that run to the close, HTTP/1.0 answers, 1xx and heads in pieces', async () => {
    const toClose = await rawCall(plain, `GET /to-close HTTP/1.1\r\nHost: ${host(RAW_POD)}\r\n\r\n`, () => false);
    assert.ok(toClose.closed);
    assert.match(toClose.text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(toClose.text, /connection: close\r\n\r\nuntil the pod closes$/);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const old = await call(plain, host(RAW_POD), '/http10', { agent });
    assert.equal(old.body.toString(), 'ok');
    const early = await call(plain, host(RAW_POD), '/early', { agent });
    assert.equal(early.status, 200);
    assert.equal(early.body.toString(), 'after');
    const split = await call(plain, host(RAW_POD), '/split', { agent });
    assert.equal(split.body.toString(), 'split');
    assert.equal(split.socket, old.socket, 'the client connection survives all of them');
    agent.destroy();
  });

  it('answers 502 saying why when the pod fails', async () => {
    const refused = await call(plain, host(POD, 9999), '/');
    assert.equal(refused.status, 502);
    assert.equal(refused.headers['x-berth-error'], 'BERTH_ERR_UPSTREAM_FAILED');
    assert.match(refused.body.toString(), new RegExp(`nothing answers on port 9999 of pod ${POD}: is the server in the pod listening on 0.0.0.0:9999\\? \\(the connection was refused\\)`));
    const json = await call(plain, host(POD, 9999), '/', { headers: { accept: 'application/json' } });
    assert.equal((JSON.parse(json.body.toString()) as { code: string }).code, 'BERTH_ERR_UPSTREAM_FAILED');
    assert.equal(json.headers['content-type'], 'application/problem+json');
    const garbage = await call(plain, host(RAW_POD), '/garbage');
    assert.equal(garbage.status, 502);
    assert.match(garbage.body.toString(), /not an HTTP\/1\.x status line/);
    const conflict = await call(plain, host(RAW_POD), '/conflict');
    assert.equal(conflict.status, 502);
    assert.match(conflict.body.toString(), /conflicting Content-Length/);
    const badChunks = await call(plain, host(RAW_POD), '/bad-chunks');
    assert.equal(badChunks.status, 502);
    assert.match(badChunks.body.toString(), /malformed chunked body/);
  });

  it('gives the listening hint whether the connection was refused, reset or closed, on the fast path, the full path and upgrades', async () => {
    const hint = (port: number) => new RegExp(`^nothing answers on port ${port} of pod ${POD}: is the server in the pod listening on 0\\.0\\.0\\.0:${port}\\? \\(the connection was (refused|reset|closed before an answer)\\)\n$`);
    /** A WebSocket upgrade's answer when it is not an upgrade. */
    const upgrade = (port: number) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const sock = new WebSocket(`ws://127.0.0.1:${plain}/`, { headers: { host: host(POD, port) } });
        sock.once('open', () => reject(new Error('the upgrade went through')));
        sock.once('error', reject);
        sock.once('unexpected-response', (_req, res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
      });
    for (const port of [9999, 9998, 9997]) {
      const fast = await call(plain, host(POD, port), '/');
      assert.equal(fast.status, 502, `fast path, port ${port}`);
      assert.match(fast.body.toString(), hint(port), `fast path, port ${port}`);
      const full = await call(plain, host(POD, port), '/echo', { method: 'POST', body: ['a', 'b'] });
      assert.equal(full.status, 502, `full path, port ${port}`);
      assert.match(full.body.toString(), hint(port), `full path, port ${port}`);
      const up = await upgrade(port);
      assert.equal(up.status, 502, `upgrade, port ${port}`);
      assert.match(up.body, hint(port), `upgrade, port ${port}`);
    }
    assert.match((await call(plain, host(POD, 9998), '/')).body.toString(), /\(the connection was reset\)/);
    assert.match((await call(plain, host(POD, 9997), '/')).body.toString(), /\(the connection was closed before an answer\)/);
  });

  it('reconnects when the pod closed an idle pooled connection', async () => {
    // A client connection of its own: one the global agent kept from another test may have been
    // handed to the full path, which keeps it, and the resend under test is the fast path's.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    assert.equal((await call(plain, host(BRIEF_POD), '/brief', { agent })).body.toString(), 'ok');
    await new Promise((r) => setTimeout(r, 300)); // the pod has closed that connection by now
    assert.equal((await call(plain, host(BRIEF_POD), '/brief', { agent })).body.toString(), 'ok');
    assert.equal(briefStats.connections, 2);
    // Closed just as a request went out on it: a request without a body is sent again on a new connection.
    assert.equal((await call(plain, host(FLAKY_POD), '/flaky', { agent })).body.toString(), 'ok');
    assert.equal((await call(plain, host(FLAKY_POD), '/flaky', { agent })).body.toString(), 'ok');
    assert.equal(flakyStats.kills, 1);
    // A POST is not sent twice: the pod may have acted on it.
    const post = await call(plain, host(FLAKY_POD), '/flaky', { method: 'POST', agent });
    assert.equal(post.status, 502);
    assert.equal(flakyStats.kills, 2);
    agent.destroy();
  });

  it('hands routing errors, private ports, chunked uploads, Expect and HTTP/1.0 to the full path', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const missing = await call(plain, host('zzzzzzzzzzzzzz'), '/', { agent });
    assert.equal(missing.status, 404);
    assert.match(missing.body.toString(), /pod zzzzzzzzzzzzzz not found/);
    const dead = await call(plain, host(DEAD_POD), '/', { agent });
    assert.equal(dead.status, 503);
    assert.match(dead.body.toString(), new RegExp(`pod ${DEAD_POD} is EXITED`));
    const privatePort = await call(plain, host(POD, 8081), '/', { agent });
    assert.equal(privatePort.status, 401);
    const chunks = ['a'.repeat(1000), 'b'.repeat(70_000), 'c'];
    const chunked = await call(plain, host(), '/echo', { method: 'POST', body: chunks, agent });
    const all = Buffer.from(chunks.join(''));
    assert.deepEqual(JSON.parse(chunked.body.toString()), { bytes: all.length, md5: createHash('md5').update(all).digest('hex'), te: 'chunked' });
    const expect = await call(plain, host(), '/echo', { method: 'POST', body: Buffer.from('abc'), headers: { expect: '100-continue' }, agent });
    assert.equal((JSON.parse(expect.body.toString()) as { bytes: number }).bytes, 3);
    const afterwards = await call(plain, host(), '/', { agent });
    assert.equal(afterwards.body.toString(), 'hello from the pod\n', 'the full path keeps serving the connection');
    assert.equal(afterwards.socket, missing.socket);
    agent.destroy();
    const old = await rawCall(plain, `GET / HTTP/1.0\r\nHost: ${host()}\r\n\r\n`, () => false);
    assert.match(old.text, /^HTTP\/1\.1 200 OK\r\n[\s\S]*hello from the pod\n$/);
  });

  it('passes WebSocket upgrades through', async () => {
    const sock = new WebSocket(`ws://127.0.0.1:${plain}/`, { headers: { host: host(POD, 9000) } });
    const messages: string[] = [];
    const got = (n: number): Promise<void> =>
      new Promise((resolve, reject) => {
        const check = (): void => void (messages.length >= n && resolve());
        sock.on('message', (d: Buffer) => {
          messages.push(d.toString());
          check();
        });
        sock.once('error', reject);
      });
    const two = got(2);
    await new Promise<void>((resolve, reject) => {
      sock.once('open', () => resolve());
      sock.once('error', reject);
    });
    sock.send('hi');
    await two;
    assert.deepEqual(messages, ['xff=127.0.0.1', 'echo:hi']);
    sock.close();
  });

  it('closes the pod connection when the client goes away mid-response', async () => {
    const closed = new Promise<void>((resolve) => {
      app.once('request', (req: IncomingMessage) => req.socket.once('close', () => resolve()));
    });
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: plain, path: `/big?n=${2 ** 30}`, headers: { host: host() } }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.once('error', reject);
      req.end();
    });
    await closed;
  });

  it('with an idle limit, answers 504 for a pod that does not answer', async () => {
    const r = await call(idle, host(), '/never');
    assert.equal(r.status, 504);
    assert.equal(r.headers['x-berth-error'], 'BERTH_ERR_UPSTREAM_TIMEOUT');
    assert.match(r.body.toString(), new RegExp(`port 8080 of pod ${POD} did not answer in time`));
  });

  it('ends TLS itself, on the fast path and the full path', async () => {
    const agent = new (await import('node:https')).Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
    const ok = await call(tlsPort, host(), '/headers', { tls: true, agent: agent as unknown as Agent });
    assert.equal(ok.status, 200);
    assert.equal((JSON.parse(ok.body.toString()) as { headers: Record<string, string> }).headers['x-forwarded-proto'], 'https');
    const missing = await call(tlsPort, host('zzzzzzzzzzzzzz'), '/', { tls: true, agent: agent as unknown as Agent });
    assert.equal(missing.status, 404);
    const chunked = await call(tlsPort, host(), '/echo', { tls: true, method: 'POST', body: ['x', 'y'], agent: agent as unknown as Agent });
    assert.equal((JSON.parse(chunked.body.toString()) as { bytes: number }).bytes, 2);
    const again = await call(tlsPort, host(), '/', { tls: true, agent: agent as unknown as Agent });
    assert.equal(again.body.toString(), 'hello from the pod\n');
    assert.equal(again.socket, ok.socket);
    agent.destroy();
    const pipelined = await rawCall(tlsPort, `GET / HTTP/1.1\r\nHost: ${host()}\r\n\r\nGET / HTTP/1.1\r\nHost: ${host()}\r\nConnection: close\r\n\r\n`, () => false, { tls: true });
    assert.equal([...pipelined.text.matchAll(/hello from the pod/g)].length, 2);
  });
});
