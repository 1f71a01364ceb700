/**
 * The HTTP proxy end to end: a real pod (busybox httpd with CGI scripts, a WebSocket echo in sh)
 * reached through `Host: {podId}-{port}.localhost` with real HTTP and WebSocket clients, through
 * worker processes and in the server process; the workers' life with the server's.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pino from 'pino';
import WebSocket from 'ws';
import { ProxyTokens } from '../src/control/access.js';
import { KeyService } from '../src/control/keys.js';
import { ProxyServer } from '../src/proxy/proxy.js';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { podServersCommand } from './support/pod-servers.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

const BIN = fileURLToPath(new URL('../../bin/berth.js', import.meta.url));

/** One request to the proxy with the given Host; collects the answer. */
function call(port: number, host: string, path: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer; tls?: boolean } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const make = opts.tls ? httpsRequest : request;
    const req = make({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: { host, ...opts.headers }, rejectUnauthorized: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const field = (body: Buffer, name: string): string | undefined => new RegExp(`^${name}=(.*)$`, 'm').exec(body.toString())?.[1];

/** A pod running the test servers (pod-servers.ts) with `ports`, once its 8080 answers through the proxy. */
async function servingPod(t: TestServer, ports: string[]): Promise<string> {
  const created = await t.api<{ id: string }>('POST', '/api/v1/pods', { name: 'proxied', image: TEST_IMAGE, ports, volumeGb: 0, command: podServersCommand() });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const podId = created.body.id;
  const proxyPort = t.server.proxy!.port;
  await waitFor('the pod to serve through the proxy', async () => ((await call(proxyPort, `${podId}-8080.localhost:${proxyPort}`, '/').catch(() => undefined))?.status === 200 ? true : undefined), 60_000);
  return podId;
}

/**
 * Every behaviour both ways the proxy runs: in worker processes (the default: one per CPU; two
 * here, whatever the machine) and in the server process (`--proxy-workers 0`).
 */
for (const mode of [
  { name: 'worker processes', workers: 2 },
  { name: 'in the server process', workers: 0 },
]) describe(`HTTP proxy (${mode.name})`, { concurrency: true }, () => {
  let t: TestServer;
  let proxyPort: number;
  let podId: string;
  const host = (port: number, id = podId): string => `${id}-${port}.localhost:${proxyPort}`;

  before(async () => {
    await ensureTestImage();
    t = await startTestServer({ proxyWorkers: mode.workers });
    assert.equal(t.server.proxy!.workerPids().length, mode.workers);
    proxyPort = t.server.proxy!.port;
    podId = await servingPod(t, ['8080/http', '9000/http', '8081/http:private', '22/tcp']);
  });
  after(() => t?.close());

  it('relays a request and its body, and says who asked with X-Forwarded-*', async () => {
    const body = Buffer.alloc(3 * 2 ** 20, 7);
    const r = await call(proxyPort, host(8080), '/cgi-bin/echo?x=1', { method: 'POST', body, headers: { 'content-type': 'application/octet-stream', 'x-forwarded-for': '203.0.113.9' } });
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(field(r.body, 'method'), 'POST');
    assert.equal(field(r.body, 'uri'), '/cgi-bin/echo?x=1');
    assert.equal(field(r.body, 'xff'), '203.0.113.9, 127.0.0.1');
    assert.equal(field(r.body, 'xfproto'), 'http');
    assert.equal(field(r.body, 'xfhost'), host(8080));
    assert.equal(field(r.body, 'md5'), createHash('md5').update(body).digest('hex'));
  });

  it('streams a large upload and a large download through', async () => {
    const up = Buffer.alloc(64 * 2 ** 20, 1);
    const r = await call(proxyPort, host(8080), '/cgi-bin/echo', { method: 'POST', body: up });
    assert.equal(r.status, 200, r.body.toString().slice(0, 200));
    assert.equal(field(r.body, 'md5'), createHash('md5').update(up).digest('hex'));
    const size = 100 * 2 ** 20;
    const down = await call(proxyPort, host(8080), `/cgi-bin/big?${size}`);
    assert.equal(down.status, 200);
    assert.equal(down.body.length, size);
  });

  it('keeps a connection alive across requests', async () => {
    const { Agent } = await import('node:http');
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: proxyPort, path: '/', agent, headers: { host: host(8080) } }, (res) => {
          sockets.add(res.socket);
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
        req.end();
      });
    }
    agent.destroy();
    assert.equal(sockets.size, 1);
  });

  it('passes WebSocket upgrades through: an echo', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${proxyPort}/`, { headers: { host: host(9000) } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
    });
    const echoed: string[] = [];
    for (const text of ['hello pod', 'second message']) {
      const got = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString())));
      ws.send(text);
      echoed.push(await got);
    }
    assert.deepEqual(echoed, ['hello pod', 'second message']);
    ws.close();
  });

  it('balances over running instances, and {podId}-{n}-{port} reaches instance n', async () => {
    const cgi = "printf 'Content-Type: text/plain\\r\\n\\r\\n'; hostname -i";
    const created = await t.api<{ id: string }>('POST', '/api/v1/pods', {
      image: TEST_IMAGE,
      ports: '8080/http',
      volumeGb: 0,
      instances: 2,
      command: ['sh', '-c', `mkdir -p /www/cgi-bin && printf '#!/bin/sh\\n%s\\n' "${cgi}" > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 8080 -h /www`],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    const ips = await waitFor('both instances to serve', async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const r = await call(proxyPort, host(8080, id), '/cgi-bin/ip');
        if (r.status !== 200) return undefined;
        seen.add(r.body.toString().trim());
      }
      return seen.size === 2 ? seen : undefined;
    }, 60_000);
    const one = await call(proxyPort, `${id}-1-8080.localhost:${proxyPort}`, '/cgi-bin/ip');
    const again = await call(proxyPort, `${id}-1-8080.localhost:${proxyPort}`, '/cgi-bin/ip');
    assert.ok(ips.has(one.body.toString().trim()));
    assert.equal(one.body.toString(), again.body.toString(), 'the same instance each time');
    const none = await call(proxyPort, `${id}-5-8080.localhost:${proxyPort}`, '/');
    assert.equal(none.status, 503);
  });

  it('answers 404 naming what is missing', async () => {
    const unknownPod = await call(proxyPort, `zzzzzzzzzzzzzz-8080.localhost:${proxyPort}`, '/');
    assert.equal(unknownPod.status, 404);
    assert.match(unknownPod.body.toString(), /pod zzzzzzzzzzzzzz not found/);
    const unknownPort = await call(proxyPort, host(7777), '/');
    assert.equal(unknownPort.status, 404);
    assert.match(unknownPort.body.toString(), /does not expose port 7777 \(it exposes 8080\/http, 9000\/http, 8081\/http, 22\/tcp\)/);
    const tcp = await call(proxyPort, host(22), '/');
    assert.equal(tcp.status, 404);
    assert.match(tcp.body.toString(), /exposed as tcp, not http/);
    const notPod = await call(proxyPort, `example.com:${proxyPort}`, '/');
    assert.equal(notPod.status, 404);
    assert.equal(notPod.headers['x-berth-error'], 'BERTH_ERR_NOT_FOUND');
  });

  it('answers 503 with the status of a pod that is not running', async () => {
    const created = await t.api<{ id: string }>('POST', '/api/v1/pods', { image: TEST_IMAGE, ports: '8080/http', volumeGb: 0, restartPolicy: 'never', command: ['true'] });
    const id = created.body.id;
    await waitFor('the pod to exit', async () => ((await t.api<{ status: string }>('GET', `/api/v1/pods/${id}`)).body.status === 'EXITED' ? true : undefined), 30_000);
    const r = await waitFor('the proxy to see it', async () => {
      const a = await call(proxyPort, host(8080, id), '/');
      return a.status === 503 ? a : undefined;
    });
    assert.match(r.body.toString(), new RegExp(`pod ${id} is EXITED`));
    const json = await call(proxyPort, host(8080, id), '/', { headers: { accept: 'application/json' } });
    assert.equal((JSON.parse(json.body.toString()) as { code: string }).code, 'BERTH_ERR_POD_NOT_RUNNING');
  });

  it('answers 502 with what to check when nothing answers on a pod port: nothing listens, or a server closes at once', async () => {
    const created = await t.api<{ id: string }>('POST', '/api/v1/pods', {
      image: TEST_IMAGE,
      ports: '8080/http,7000/http,7001/http',
      volumeGb: 0,
      // 7000: nothing listens; 7001: a listener that takes each connection and closes it.
      command: ['sh', '-c', 'mkdir -p /www && echo up > /www/index.html && (nc -ll -p 7001 -e true &) && exec httpd -f -p 8080 -h /www'],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    await waitFor('the pod to serve', async () => ((await call(proxyPort, host(8080, id), '/').catch(() => undefined))?.status === 200 ? true : undefined), 60_000);
    for (const port of [7000, 7001]) {
      // Docker's port forwarding takes the connection and drops it, or nothing takes it at all: the same hint either way.
      const hint = new RegExp(`^nothing answers on port ${port} of pod ${id}: is the server in the pod listening on 0\\.0\\.0\\.0:${port}\\? \\(the connection was (refused|reset|closed before an answer)\\)\n$`);
      const fast = await call(proxyPort, host(port, id), '/');
      assert.equal(fast.status, 502, `port ${port}: ${fast.body.toString()}`);
      assert.match(fast.body.toString(), hint);
      const full = await call(proxyPort, host(port, id), '/', { method: 'POST', headers: { 'transfer-encoding': 'chunked' }, body: Buffer.from('x') });
      assert.equal(full.status, 502, `port ${port}, full path: ${full.body.toString()}`);
      assert.match(full.body.toString(), hint);
    }
  });

  it('refuses a private port without the owner\'s key and serves it with the key or a one-time link', async () => {
    const none = await call(proxyPort, host(8081), '/cgi-bin/echo');
    assert.equal(none.status, 401);
    assert.match(none.body.toString(), /private/);
    const other = await t.api<{ key: string }>('POST', '/api/v1/keys', { name: 'someone else', owner: 'someone-else' });
    const wrong = await call(proxyPort, host(8081), '/cgi-bin/echo', { headers: { authorization: `Bearer ${other.body.key}` } });
    assert.equal(wrong.status, 401);
    const ok = await call(proxyPort, host(8081), '/cgi-bin/echo', { headers: { authorization: `Bearer ${t.key}` } });
    assert.equal(ok.status, 200);
    assert.equal(field(ok.body, 'authorization'), '', 'the Berth key is not passed on to the pod');

    const link = await t.api<{ url: string }>('POST', `/api/v1/pods/${podId}/proxy-link`, { port: 8081, path: '/cgi-bin/echo' });
    assert.equal(link.status, 200, JSON.stringify(link.body));
    const url = new URL(link.body.url);
    assert.equal(url.host, host(8081));
    const landed = await call(proxyPort, url.host, url.pathname + url.search);
    assert.equal(landed.status, 302);
    assert.equal(landed.headers.location, '/cgi-bin/echo');
    const cookie = String(landed.headers['set-cookie']).split(';')[0]!;
    const withCookie = await call(proxyPort, host(8081), '/cgi-bin/echo', { headers: { cookie: `${cookie}; theme=dark` } });
    assert.equal(withCookie.status, 200);
    assert.equal(field(withCookie.body, 'cookie'), 'theme=dark', 'the session cookie is not passed on to the pod');
    const again = await call(proxyPort, url.host, url.pathname + url.search);
    assert.equal(again.status, 401, 'a link works once');
    const elsewhere = await call(proxyPort, host(8080), '/cgi-bin/echo', { headers: { cookie } });
    assert.equal(elsewhere.status, 200, 'public ports need nothing');
  });

  it('shows the URLs, TCP address and ssh command in the pod view', async () => {
    const pod = await waitFor('the TCP mapping', async () => {
      const p = (await t.api<{ connection: { http: { port: number; url: string; private: boolean }[]; tcp: { port: number; address: string | null }[]; ssh: { command: string } } }>('GET', `/api/v1/pods/${podId}`)).body;
      return p.connection.tcp[0]?.address ? p : undefined;
    });
    assert.deepEqual(pod.connection.http.map((h) => [h.port, h.url, h.private]), [
      [8080, `http://${podId}-8080.localhost:${proxyPort}/`, false],
      [9000, `http://${podId}-9000.localhost:${proxyPort}/`, false],
      [8081, `http://${podId}-8081.localhost:${proxyPort}/`, true],
    ]);
    assert.match(pod.connection.tcp[0]!.address!, /^127\.0\.0\.1:\d+$/);
    assert.equal(pod.connection.ssh.command, `ssh -p ${t.server.ssh!.port} ${podId}@localhost`);
  });

  // Two minutes: run once, through the workers.
  if (mode.workers > 0) it('keeps an event stream open past 120 s (no idle cap)', { timeout: 200_000 }, async () => {
    const events: string[] = [];
    const started = Date.now();
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: proxyPort, path: '/cgi-bin/sse?130', headers: { host: host(8080), accept: 'text/event-stream' } }, (res) => {
        assert.equal(res.statusCode, 200);
        assert.match(String(res.headers['content-type']), /text\/event-stream/);
        let buf = '';
        res.on('data', (c: Buffer) => {
          buf += c.toString();
          for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
            events.push(buf.slice(0, i));
            buf = buf.slice(i + 2);
          }
        });
        res.on('end', resolve);
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    const seconds = (Date.now() - started) / 1000;
    assert.ok(seconds > 120, `the stream lasted ${seconds} s`);
    assert.equal(events[0], 'data: tick 0', 'the first event arrived as it was sent');
    assert.equal(events[events.length - 1], 'event: done\ndata: bye');
    assert.equal(events.length, 66);
  });
});

/** Pids of `pid`'s child processes running the proxy worker, from /proc. */
async function workerChildren(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid !== pid) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes('proxy/worker.js')) out.push(Number(name));
  }
  return out;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('proxy worker processes', () => {
  let t: TestServer;
  let proxyPort: number;
  let podId: string;
  const lines: { level: number; msg: string; worker?: number; [k: string]: unknown }[] = [];
  const host = (port: number, p = proxyPort): string => `${podId}-${port}.localhost:${p}`;

  before(async () => {
    await ensureTestImage();
    // The server's logger keeps its lines here: the workers' lines must come through it.
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as (typeof lines)[number]);
        done();
      },
    });
    t = await startTestServer({ proxyWorkers: 2, logger: pino({ level: 'debug' }, sink) });
    proxyPort = t.server.proxy!.port;
    podId = await servingPod(t, ['8080/http', '8081/http:private', '7000/http']);
  });
  after(() => t?.close());

  it('are the server\'s children, and one that dies is replaced with the routes it needs', async () => {
    const pids = t.server.proxy!.workerPids();
    assert.equal(pids.length, 2);
    assert.deepEqual((await workerChildren(process.pid)).sort(), [...pids].sort());
    process.kill(pids[0]!, 'SIGKILL');
    const now = await waitFor('a new worker', async () => {
      const p = t.server.proxy!.workerPids();
      return p.length === 2 && !p.includes(pids[0]!) ? p : undefined;
    });
    assert.ok(now.includes(pids[1]!), 'the other worker was left alone');
    // Connections go round-robin over both: the new worker got the pod's route with its snapshot.
    for (let i = 0; i < 10; i++) {
      const r = await call(proxyPort, host(8080), '/cgi-bin/echo');
      assert.equal(r.status, 200, r.body.toString());
    }
    assert.ok(lines.some((l) => l.msg === 'proxy worker exited; starting another' && l.signal === 'SIGKILL'));
  });

  it('log through the server\'s logger', async () => {
    const r = await call(proxyPort, host(7000), '/');
    assert.equal(r.status, 502);
    // Docker's port forwarding takes the connection and drops it, or nothing takes it at all: the hint either way.
    assert.match(r.body.toString(), new RegExp(`nothing answers on port 7000 of pod ${podId}: is the server in the pod listening on 0\\.0\\.0\\.0:7000\\?`));
    const line = await waitFor('the worker\'s log line', async () => lines.find((l) => l.msg === 'upstream failed' && typeof l.worker === 'number'));
    assert.equal(line.level, 20, 'debug');
  });

  it('end TLS, and ask the server about private ports', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-proxy-tls-'));
    let tlsProxy: ProxyServer | undefined;
    try {
      await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
      // A second proxy on the same store, as `berth server --tls-cert ... --tls-key ...` runs it.
      tlsProxy = await ProxyServer.start({
        store: t.server.store,
        keys: new KeyService(t.server.store),
        tokens: await ProxyTokens.open(t.dataDir),
        logger: pino({ level: 'silent' }),
        port: 0,
        host: '127.0.0.1',
        tls: { cert: await readFile(join(dir, 'cert.pem')), key: await readFile(join(dir, 'key.pem')) },
        workers: 2,
      });
      const port = tlsProxy.port;
      const ok = await call(port, host(8080, port), '/cgi-bin/echo', { tls: true });
      assert.equal(ok.status, 200);
      assert.equal(field(ok.body, 'xfproto'), 'https');
      const denied = await call(port, host(8081, port), '/cgi-bin/echo', { tls: true });
      assert.equal(denied.status, 401);
      const allowed = await call(port, host(8081, port), '/cgi-bin/echo', { tls: true, headers: { authorization: `Bearer ${t.key}` } });
      assert.equal(allowed.status, 200);
      const link = await t.api<{ url: string }>('POST', `/api/v1/pods/${podId}/proxy-link`, { port: 8081, path: '/cgi-bin/echo' });
      const url = new URL(link.body.url);
      const landed = await call(port, host(8081, port), url.pathname + url.search, { tls: true });
      assert.equal(landed.status, 302);
      assert.match(String(landed.headers['set-cookie']), /; Secure/);
      const cookie = String(landed.headers['set-cookie']).split(';')[0]!;
      assert.equal((await call(port, host(8081, port), '/cgi-bin/echo', { tls: true, headers: { cookie } })).status, 200);
      const workers = tlsProxy.workerPids();
      await tlsProxy.close();
      tlsProxy = undefined;
      for (const pid of workers) assert.equal(alive(pid), false, `worker ${pid} ended with close()`);
    } finally {
      await tlsProxy?.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('proxy workers and a server that dies', () => {
  it('end with it: `berth server --proxy-workers 3`, then SIGKILL', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-proxy-orphans-'));
    const env = { ...process.env, XDG_CONFIG_HOME: dir, BERTH_URL: '', BERTH_API_KEY: '' };
    const child = spawn(process.execPath, [BIN, 'server', '--data-dir', join(dir, 'data'), '--port', '0', '--host', '127.0.0.1', '--no-agent', '--proxy-workers', '3', '--log-level', 'silent'], { env, stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      const workers = await waitFor('three workers', async () => {
        const w = await workerChildren(child.pid!);
        return w.length === 3 ? w : undefined;
      }, 30_000);
      child.kill('SIGKILL');
      await exited;
      await waitFor('the workers to end', async () => (workers.every((pid) => !alive(pid)) ? true : undefined), 10_000);
    } finally {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});
