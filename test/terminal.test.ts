/**
 * The web terminal: a WebSocket to a shell with a PTY, authenticated, with resize, as the console
 * uses it; and the TCP tunnel `berth port-forward` rides on.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ensurePauseImage, ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

/** Opens a WebSocket; resolves once open, or rejects with the HTTP status of a refused upgrade. */
function open(url: string, opts: WebSocket.ClientOptions, protocols?: string[]): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = protocols ? new WebSocket(url, protocols, opts) : new WebSocket(url, opts);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        // ws leaves a refused upgrade's connection to the caller to end.
        req.destroy();
        reject(Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), { status: res.statusCode, body }));
      });
    });
    ws.once('error', reject);
  });
}

/** Collects terminal output until `pattern` shows up in it. */
function until(ws: WebSocket, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no ${pattern} in ${JSON.stringify(text)}`)), timeoutMs);
    const onMessage = (data: Buffer, binary: boolean): void => {
      if (!binary) return;
      text += data.toString();
      if (pattern.test(text)) {
        clearTimeout(timer);
        ws.off('message', onMessage);
        resolve(text);
      }
    };
    ws.on('message', onMessage);
  });
}

describe('web terminal', { concurrency: true }, () => {
  let t: TestServer;
  let podId: string;
  let ws: string;

  before(async () => {
    await ensureTestImage();
    t = await startTestServer();
    ws = t.url.replace(/^http/, 'ws');
    const created = await t.api<{ id: string }>('POST', '/api/v1/pods', { image: TEST_IMAGE, volumeGb: 0, ports: '8080/http', command: ['sh', '-c', 'mkdir -p /www && echo tunnelled > /www/index.html && exec httpd -f -p 8080 -h /www'] });
    podId = created.body.id;
    await waitFor('the pod to run', async () => ((await t.api<{ status: string }>('GET', `/api/v1/pods/${podId}`)).body.status === 'RUNNING' ? true : undefined), 60_000);
  });
  after(() => t?.close());

  it('opens a shell with a PTY that follows resizes, and reports the exit', async () => {
    const sock = await open(`${ws}/api/v1/pods/${podId}/terminal?cols=100&rows=30`, { headers: { authorization: `Bearer ${t.key}` } });
    sock.send(Buffer.from('stty size\n'), { binary: true });
    await until(sock, /30 100/);
    sock.send(JSON.stringify({ type: 'resize', cols: 132, rows: 43 }));
    await new Promise((r) => setTimeout(r, 200));
    sock.send(Buffer.from('stty size; tty\n'), { binary: true });
    await until(sock, /43 132[\s\S]*\/dev\/pts\//);
    const exit = new Promise<unknown>((resolve) => sock.on('message', (d: Buffer, binary: boolean) => !binary && resolve(JSON.parse(d.toString()))));
    const closed = new Promise<number>((resolve) => sock.once('close', (code) => resolve(code)));
    sock.send(JSON.stringify({ type: 'input', data: 'exit 3\n' }));
    assert.deepEqual(await exit, { type: 'exit', exitCode: 3 });
    assert.equal(await closed, 1000);
  });

  it('takes the key as a bearer.<key> subprotocol, as a browser must send it', async () => {
    const sock = await open(`${ws}/api/v1/pods/${podId}/terminal`, {}, ['berth.terminal', `bearer.${t.key}`]);
    assert.equal(sock.protocol, 'berth.terminal');
    sock.send(Buffer.from('echo via-$((6*7))\n'), { binary: true });
    await until(sock, /via-42/);
    sock.close();
  });

  it('refuses without a key, for a stranger, and for a pod that does not run', async () => {
    await assert.rejects(open(`${ws}/api/v1/pods/${podId}/terminal`, {}), (e: { status?: number }) => e.status === 401);
    const other = await t.api<{ key: string }>('POST', '/api/v1/keys', { name: 'stranger', owner: 'stranger' });
    await assert.rejects(open(`${ws}/api/v1/pods/${podId}/terminal`, { headers: { authorization: `Bearer ${other.body.key}` } }), (e: { status?: number }) => e.status === 404);
    const stopped = await t.api<{ id: string }>('POST', '/api/v1/pods', { image: TEST_IMAGE, volumeGb: 0, restartPolicy: 'never', command: ['true'] });
    await waitFor('it to exit', async () => ((await t.api<{ status: string }>('GET', `/api/v1/pods/${stopped.body.id}`)).body.status === 'EXITED' ? true : undefined), 30_000);
    await assert.rejects(open(`${ws}/api/v1/pods/${stopped.body.id}/terminal`, { headers: { authorization: `Bearer ${t.key}` } }), (e: { status?: number; body?: string }) => e.status === 409 && /EXITED/.test(e.body ?? ''));
    // An image without /bin/sh has no shell to open: said plainly, not an OCI error in the terminal.
    const bare = await t.api<{ id: string }>('POST', '/api/v1/pods', { image: await ensurePauseImage(), volumeGb: 0 });
    await waitFor('it to run', async () => ((await t.api<{ status: string }>('GET', `/api/v1/pods/${bare.body.id}`)).body.status === 'RUNNING' ? true : undefined), 30_000);
    await assert.rejects(open(`${ws}/api/v1/pods/${bare.body.id}/terminal`, { headers: { authorization: `Bearer ${t.key}` } }), (e: { status?: number; body?: string }) => e.status === 400 && /no \/bin\/sh/.test(e.body ?? ''));
  });

  it('berth port-forward serves a local port from one in the pod', async () => {
    const { spawn } = await import('node:child_process');
    const { createServer } = await import('node:net');
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const local = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    const child = spawn(process.execPath, ['bin/berth.js', 'port-forward', podId, `${local}:8080`], { env: { ...process.env, BERTH_URL: t.url, BERTH_API_KEY: t.key }, stdio: 'ignore' });
    try {
      const body = await waitFor('the forward', async () => {
        const res = await fetch(`http://127.0.0.1:${local}/`, { signal: AbortSignal.timeout(5000) });
        return res.ok ? res.text() : undefined;
      });
      assert.equal(body, 'tunnelled\n');
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('tunnels a TCP connection to a port inside the pod (berth port-forward)', async () => {
    const sock = await open(`${ws}/api/v1/pods/${podId}/ports/8080/tunnel`, { headers: { authorization: `Bearer ${t.key}` } });
    let got = '';
    const done = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    sock.on('message', (d: Buffer) => (got += d.toString()));
    sock.send(Buffer.from('GET / HTTP/1.0\r\n\r\n'));
    await done;
    assert.match(got, /^HTTP\/1\.[01] 200/);
    assert.match(got, /tunnelled/);
    await assert.rejects(open(`${ws}/api/v1/pods/${podId}/ports/9999/tunnel`, { headers: { authorization: `Bearer ${t.key}` } }), (e: { status?: number; body?: string }) => e.status === 409 && /nothing listens on port 9999/.test(e.body ?? ''));
  });
});
