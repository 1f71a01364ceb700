/**
 * The HTTP proxy end to end: a real pod (busybox httpd with CGI scripts, a WebSocket echo in sh)
 * reached through `Host: {podId}-{port}.localhost` with real HTTP and WebSocket clients.
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

/** One request to the proxy with the given Host; collects the answer. */
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

const field = (body: Buffer, name: string): string | undefined => new RegExp(`^${name}=(.*)$`, 'm').exec(body.toString())?.[1];

describe('HTTP proxy', { concurrency: true }, () => {
  let t: TestServer;
  let proxyPort: number;
  let podId: string;
  const host = (port: number, id = podId): string => `${id}-${port}.localhost:${proxyPort}`;

  before(async () => {
    await ensureTestImage();
    t = await startTestServer();
    proxyPort = t.server.proxy!.port;
    const created = await t.api<{ id: string }>('POST', '/api/v1/pods', {
      name: 'proxied',
      image: TEST_IMAGE,
      ports: ['8080/http', '9000/http', '8081/http:private', '22/tcp'],
      volumeGb: 0,
      command: podServersCommand(),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    podId = created.body.id;
    await waitFor('the pod to serve through the proxy', async () => ((await call(proxyPort, host(8080), '/').catch(() => undefined))?.status === 200 ? true : undefined), 60_000);
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

  it('keeps an event stream open past 120 s (no idle cap)', { timeout: 200_000 }, async () => {
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
