// DockerRuntime against a fake daemon on a Unix socket: the stream handling that a real daemon
// rarely exercises (a dropped event stream, errors inside a pull stream). test/runtime.test.ts
// covers the real one.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BerthError } from '../model/errors.js';
import { DockerRuntime } from './docker.js';
import type { PullProgressEvent, RuntimeEvent } from './types.js';

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void;

const dir = mkdtempSync(join(tmpdir(), 'berth-fake-docker-'));
const socketPath = join(dir, 'docker.sock');
let handler: Handler = (_req, res) => res.writeHead(404).end();
let server: Server;

before(async () => {
  server = createServer((req, res) => handler(req, res, new URL(req.url ?? '/', 'http://docker')));
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

function event(id: string, action: string, timeNano: bigint, attrs: Record<string, string> = {}): string {
  // timeNano written as a bare integer, as Docker does; it is beyond 2^53.
  return `{"Type":"container","Action":"${action}","Actor":{"ID":"${id}","Attributes":${JSON.stringify({ 'berth.pod': 'p1', ...attrs })}},"time":${timeNano / 1_000_000_000n},"timeNano":${timeNano}}\n`;
}

describe('DockerRuntime against a fake daemon', () => {
  it('reports an unreachable daemon plainly', async () => {
    const rt = await DockerRuntime.create({ socketPath: join(dir, 'nothing.sock') });
    await assert.rejects(rt.ping(), (err: unknown) => {
      assert.ok(err instanceof BerthError);
      assert.equal(err.kind, 'RUNTIME');
      assert.equal(err.message, `Cannot reach the Docker daemon at ${join(dir, 'nothing.sock')}: no such socket. Is Docker (or Podman's Docker-compatible socket) running?`);
      return true;
    });
  });

  it('reconnects a dropped event stream from the last event, without repeats', async () => {
    const t0 = 1714557600123456789n;
    const requests: URL[] = [];
    handler = (_req, res, url) => {
      requests.push(url);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      if (requests.length === 1) {
        const a = event('c1', 'start', t0);
        // One object split across writes, then two in one write, then the stream ends.
        res.write(a.slice(0, 20));
        setTimeout(() => {
          res.write(a.slice(20) + event('c1', 'die', t0 + 5n, { exitCode: '7' }) + event('c1', 'exec_start: sh -c true', t0 + 5n));
          setTimeout(() => res.end(), 20);
        }, 20);
      } else {
        // A `since` replay includes the events at that exact time again.
        res.write(event('c1', 'die', t0 + 5n, { exitCode: '7' }) + event('c1', 'exec_start: sh -c true', t0 + 5n) + event('c1', 'destroy', t0 + 9n));
      }
    };
    const rt = await DockerRuntime.create({ socketPath });
    const ac = new AbortController();
    const seen: RuntimeEvent[] = [];
    const done = new Promise<void>((resolve) => {
      rt.watchEvents('berth.pod', (e) => {
        seen.push(e);
        if (e.action === 'destroy') resolve();
      }, ac.signal);
    });
    await done;
    ac.abort();
    assert.deepEqual(seen.map((e) => [e.action, e.containerId, e.exitCode]), [
      ['start', 'c1', null],
      ['die', 'c1', 7],
      ['exec_start: sh -c true', 'c1', null],
      ['destroy', 'c1', null],
    ]);
    assert.equal(seen[0]?.labels['berth.pod'], 'p1');
    assert.equal(requests.length, 2);
    assert.deepEqual(JSON.parse(requests[0]?.searchParams.get('filters') ?? ''), { type: ['container'], label: ['berth.pod'] });
    assert.equal(requests[0]?.searchParams.get('since'), null);
    assert.equal(requests[1]?.searchParams.get('since'), '1714557600.123456794');
  });

  it('stops watching on abort', async () => {
    let closed!: () => void;
    const connectionClosed = new Promise<void>((resolve) => (closed = resolve));
    let connections = 0;
    handler = (req, res) => {
      connections++;
      res.writeHead(200);
      res.flushHeaders();
      req.socket.once('close', () => closed());
    };
    const rt = await DockerRuntime.create({ socketPath });
    const ac = new AbortController();
    rt.watchEvents('x', () => undefined, ac.signal);
    while (connections === 0) await new Promise((r) => setTimeout(r, 10));
    ac.abort();
    await connectionClosed;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(connections, 1);
  });

  it('sums pull progress, sends credentials and surfaces an error from inside the stream', async () => {
    let auth: unknown;
    handler = (req, res, url) => {
      assert.equal(url.pathname, '/images/create');
      assert.equal(url.searchParams.get('fromImage'), 'registry.example:5000/team/app');
      assert.equal(url.searchParams.get('tag'), '2');
      auth = JSON.parse(Buffer.from(String(req.headers['x-registry-auth']), 'base64url').toString());
      res.writeHead(200);
      const lines = [
        { status: 'Pulling from team/app', id: '2' },
        { status: 'Pulling fs layer', id: 'l1' },
        { status: 'Pulling fs layer', id: 'l2' },
        { status: 'Downloading', id: 'l1', progressDetail: { current: 50, total: 100 } },
        { status: 'Downloading', id: 'l2', progressDetail: { current: 10, total: 300 } },
        { status: 'Download complete', id: 'l1' },
        { errorDetail: { message: 'unauthorized: authentication required' }, error: 'unauthorized: authentication required' },
      ];
      res.end(lines.map((l) => JSON.stringify(l)).join('\r\n') + '\r\n');
    };
    const rt = await DockerRuntime.create({ socketPath });
    const progress: PullProgressEvent[] = [];
    await assert.rejects(
      rt.pullImage('registry.example:5000/team/app:2', { username: 'u', password: 'p', serveraddress: 'registry.example:5000' }, (p) => progress.push(p)),
      (err: unknown) => err instanceof BerthError && err.kind === 'RUNTIME' && err.message === "image registry.example:5000/team/app:2 is not on this node and registry registry.example:5000 does not give it (unauthorized: authentication required); check the name and tag, or the pod's registry login",
    );
    assert.deepEqual(auth, { username: 'u', password: 'p', serveraddress: 'registry.example:5000' });
    // The first message is reported at once; the throttle holds the rest back.
    assert.deepEqual(progress, [{ current: 0, total: 0, status: 'Pulling from team/app' }]);

    handler = (_req, res) => {
      res.writeHead(200);
      for (const l of [
        { status: 'Downloading', id: 'l1', progressDetail: { current: 50, total: 100 } },
        { status: 'Downloading', id: 'l2', progressDetail: { current: 10, total: 300 } },
        { status: 'Pull complete', id: 'l1' },
        { status: 'Pull complete', id: 'l2' },
        { status: 'Status: Downloaded newer image for team/app:2' },
      ]) res.write(JSON.stringify(l) + '\n');
      res.end();
    };
    const ok: PullProgressEvent[] = [];
    await rt.pullImage('team/app:2', null, (p) => ok.push(p));
    assert.deepEqual(ok.at(0), { current: 50, total: 100, status: 'Downloading' });
    assert.deepEqual(ok.at(-1), { current: 400, total: 400, status: 'Status: Downloaded newer image for team/app:2' });
  });
});
