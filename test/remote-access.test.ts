/**
 * Every interactive way into a pod, for a pod on a remote agent: a server with no agent of its own,
 * a real `berth agent` process joined to it, and everything reaching the pod through the node
 * channel that agent dialed (docs/cluster.md). SSH (shell with a PTY, a command, scp both ways,
 * sftp, -L), the web terminal, logs -f, exec, `berth port-forward`; then the agent restarted and
 * the server restarted, and the channel back each time.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { freePort, sha256, spawnRun, wsUntil, type Ran } from './support/clients.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';
import type { RunningServer } from '../src/cli/server.js';

const run = promisify(execFile);
const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/**
 * Joins a `berth agent` process to the server: the one place that says how a machine joins (the
 * token it is given), so a change of credentials changes only this.
 */
function joinAgent(url: string, token: string, dataDir: string, name: string): ChildProcess {
  const child = spawn(process.execPath, [MAIN, 'agent', '--server', url, '--token', token, '--data-dir', dataDir, '--name', name, '--metrics-interval', '0', '--log-level', process.env.BERTH_TEST_LOG ?? 'warn'], { stdio: ['ignore', 'inherit', 'inherit'] });
  return child;
}

async function stopAgent(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

/** A line of output that matches, from a socket's messages. */
describe('a pod on a remote agent, through its node channel', () => {
  let t: TestServer;
  let dir: string;
  let agentDir: string;
  let agent: ChildProcess | undefined;
  let podId: string;
  let nodeId: string;
  let sshPort: number;
  let restarted: RunningServer | undefined;
  const opts = (): string[] => ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-i', join(dir, 'id')];
  const ssh = (args: string[], input?: string): Promise<Ran> => spawnRun('ssh', [...opts(), '-p', String(sshPort), ...args], input);
  const sha = sha256;
  const channelOpen = async (): Promise<true | undefined> => {
    const r = await t.api('POST', `/api/v1/pods/${podId}/exec`, { command: ['true'] });
    return r.status === 200 ? true : undefined;
  };

  before(async () => {
    await ensureTestImage();
    dir = await mkdtemp(join(tmpdir(), 'berth-remote-access-'));
    agentDir = join(dir, 'agent-data');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id')]);
    t = await startTestServer({ agent: false, dataDir: join(dir, 'server-data') });
    sshPort = t.server.ssh!.port;
    assert.equal((await t.api('POST', '/api/v1/ssh-keys', { publicKey: await readFile(join(dir, 'id.pub'), 'utf8') })).status, 201);
    agent = joinAgent(t.url, await t.joinToken(), agentDir, 'remote-one');
    const created = await t.api<{ id: string }>('POST', '/api/v1/pods', {
      image: TEST_IMAGE,
      volumeGb: 0,
      ports: ['8080/http'],
      command: ['sh', '-c', 'mkdir -p /www && echo hello-through-the-channel > /www/index.html && httpd -f -p 8080 -h /www & i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.3; done'],
    });
    assert.equal(created.status, 201);
    podId = created.body.id;
    nodeId = await waitFor(
      'the pod to run on the remote node',
      async () => {
        const p = (await t.api<{ status: string; nodeId: string }>('GET', `/api/v1/pods/${podId}`)).body;
        return p.status === 'RUNNING' ? p.nodeId : undefined;
      },
      90_000,
    );
    await waitFor('the node channel', channelOpen, 30_000);
  });

  after(async () => {
    try {
      if (restarted) {
        // The test server's own close() holds the first server: terminate the pod and stop the second here.
        await t.api('POST', `/api/v1/pods/${podId}/terminate`);
        await waitFor('the pod to be gone', async () => ((await restarted!.store.listInstances({})).length === 0 ? true : undefined), 30_000).catch(() => undefined);
        await restarted.close();
      } else await t?.close();
    } finally {
      await stopAgent(agent);
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  });

  it('runs exec and keeps error codes across the channel', async () => {
    const r = await t.api<{ exitCode: number; stdout: string }>('POST', `/api/v1/pods/${podId}/exec`, { command: ['sh', '-c', 'echo out-$((40+2)); exit 3'] });
    assert.equal(r.status, 200);
    assert.equal(r.body.exitCode, 3);
    assert.equal(r.body.stdout, 'out-42\n');
    const nodes = (await t.api<{ nodes: { id: string; name: string }[] }>('GET', '/api/v1/nodes')).body.nodes;
    assert.deepEqual(nodes.map((n) => n.name), ['remote-one'], 'the server runs no agent of its own');
  });

  it('follows logs: new lines arrive, and the follow ends when the client leaves', async () => {
    const ac = new AbortController();
    const res = await fetch(`${t.url}/api/v1/pods/${podId}/logs?follow=true&tail=1`, { headers: { authorization: `Bearer ${t.key}` }, signal: ac.signal });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    let text = '';
    const ticks = new Set<string>();
    while (ticks.size < 4) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'the follow ended early');
      text += Buffer.from(value).toString();
      for (const m of text.matchAll(/tick (\d+)/g)) ticks.add(m[1]!);
    }
    ac.abort();
    await reader.cancel().catch(() => undefined);
    assert.ok(ticks.size >= 4);
  });

  it('opens an SSH shell with a PTY and runs an ssh command', async () => {
    const shell = await ssh(['-tt', `${podId}@127.0.0.1`], 'tty; echo "term=$TERM"; exit 7\n');
    assert.equal(shell.code, 7, shell.stderr);
    assert.match(shell.stdout, /\/dev\/pts\/\d+/);
    assert.match(shell.stdout, /term=xterm-256color/);
    const cmd = await ssh([`${podId}@127.0.0.1`, '--', 'echo out-$((40+2)); echo err >&2; exit 3']);
    assert.equal(cmd.code, 3, cmd.stderr);
    assert.equal(cmd.stdout, 'out-42\n');
    assert.equal(cmd.stderr, 'err\n');
  });

  it('copies files both ways with scp and sftp, bytes intact', async () => {
    const data = randomBytes(6 * 2 ** 20 + 321);
    const local = join(dir, 'up.bin');
    await writeFile(local, data);
    const up = await spawnRun('scp', [...opts(), '-P', String(sshPort), local, `${podId}@127.0.0.1:/tmp/up.bin`]);
    assert.equal(up.code, 0, up.stderr);
    const inPod = await ssh([`${podId}@127.0.0.1`, 'sha256sum /tmp/up.bin']);
    assert.equal(inPod.stdout.split(' ')[0], sha(data));
    const down = await spawnRun('scp', [...opts(), '-P', String(sshPort), `${podId}@127.0.0.1:/tmp/up.bin`, join(dir, 'down.bin')]);
    assert.equal(down.code, 0, down.stderr);
    assert.equal(sha(await readFile(join(dir, 'down.bin'))), sha(data));

    const batch = join(dir, 'batch');
    await writeFile(batch, [`put ${local} /tmp/sftp.bin`, `get /tmp/sftp.bin ${join(dir, 'sftp-back.bin')}`, 'mkdir /tmp/d', 'rename /tmp/sftp.bin /tmp/d/moved.bin', 'ls /tmp/d', ''].join('\n'));
    const s = await spawnRun('sftp', [...opts(), '-P', String(sshPort), '-b', batch, `${podId}@127.0.0.1`]);
    assert.equal(s.code, 0, s.stderr + s.stdout);
    assert.match(s.stdout, /moved\.bin/);
    assert.equal(sha(await readFile(join(dir, 'sftp-back.bin'))), sha(data));
  });

  it('forwards a local port into the pod with ssh -L', async () => {
    const local = await freePort();
    const child = spawn('ssh', [...opts(), '-p', String(sshPort), '-N', '-L', `${local}:localhost:8080`, `${podId}@127.0.0.1`], { stdio: 'ignore', detached: true });
    try {
      const body = await waitFor('the -L forward', async () => {
        const r = await fetch(`http://127.0.0.1:${local}/`).catch(() => undefined);
        return r?.ok ? r.text() : undefined;
      });
      assert.equal(body, 'hello-through-the-channel\n');
    } finally {
      process.kill(-child.pid!, 'SIGKILL');
    }
  });

  it('forwards a port of the pod back to the client with ssh -R, listening on the node', async () => {
    const web = createServer((sock) => sock.end('HTTP/1.0 200 OK\r\ncontent-length: 16\r\n\r\nfrom-the-client\n'));
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    const webPort = (web.address() as { port: number }).port;
    const remote = 20000 + Math.floor(Math.random() * 20000);
    const child = spawn('ssh', [...opts(), '-p', String(sshPort), '-N', '-o', 'ExitOnForwardFailure=yes', '-R', `${remote}:127.0.0.1:${webPort}`, `${podId}@127.0.0.1`], { stdio: 'ignore', detached: true });
    try {
      const out = await waitFor('the reverse forward', async () => {
        const r = await ssh([`${podId}@127.0.0.1`, `gw=$(ip route | awk '/^default/ {print $3}'); wget -qO- "http://$gw:${remote}/"`]);
        return r.code === 0 ? r.stdout : undefined;
      });
      assert.equal(out, 'from-the-client\n');
      // The listener is the agent's, on the pod's node, not the server's.
      const listening = (await run('ss', ['-Hltnp', `sport = :${remote}`])).stdout;
      assert.match(listening, new RegExp(`pid=${agent!.pid}\\b`), listening);
    } finally {
      process.kill(-child.pid!, 'SIGKILL');
      web.close();
    }
  });

  it('opens the web terminal, resizes it, and runs a command in it', async () => {
    const ws = new WebSocket(`${t.url.replace('http', 'ws')}/api/v1/pods/${podId}/terminal?cols=100&rows=30`, { headers: { authorization: `Bearer ${t.key}` } });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    try {
      const size = wsUntil(ws, /size=40 132/);
      ws.send(JSON.stringify({ type: 'resize', cols: 132, rows: 40 }));
      await new Promise((r) => setTimeout(r, 300));
      ws.send(Buffer.from('echo "size=$(stty size)"\n'));
      await size;
    } finally {
      ws.close();
    }
  });

  it('forwards a port with berth port-forward', async () => {
    const local = await freePort();
    const child = spawn(process.execPath, [MAIN, 'port-forward', podId, `${local}:8080`], { env: { ...process.env, BERTH_URL: t.url, BERTH_API_KEY: t.key }, stdio: 'ignore' });
    try {
      const body = await waitFor('the forward', async () => {
        const r = await fetch(`http://127.0.0.1:${local}/`).catch(() => undefined);
        return r?.ok ? r.text() : undefined;
      });
      assert.equal(body, 'hello-through-the-channel\n');
      // A raw connection that the pod answers and closes: the close crosses back.
      const reply = await new Promise<string>((resolve, reject) => {
        const s = tcpConnect(local, '127.0.0.1', () => s.write('GET / HTTP/1.0\r\n\r\n'));
        let got = '';
        s.on('data', (d) => (got += d.toString()));
        s.on('end', () => resolve(got));
        s.on('error', reject);
      });
      assert.match(reply, /hello-through-the-channel/);
    } finally {
      child.kill();
    }
  });

  it('answers NODE_UNAVAILABLE while the agent is away, and works again once it is back', async () => {
    await stopAgent(agent, 'SIGKILL');
    const away = await waitFor('the channel to close', async () => {
      const r = await t.api<{ code: string }>('POST', `/api/v1/pods/${podId}/exec`, { command: ['true'] });
      return r.status === 503 ? r.body : undefined;
    });
    assert.equal(away.code, 'BERTH_ERR_NODE_UNAVAILABLE');
    agent = joinAgent(t.url, await t.joinToken(), agentDir, 'remote-one');
    await waitFor('the channel back after the agent restarted', channelOpen, 60_000);
    const r = await ssh([`${podId}@127.0.0.1`, 'echo back']);
    assert.equal(r.stdout, 'back\n', r.stderr);
  });

  it('dials the server again after the server restarts', async () => {
    const port = t.server.port;
    await t.server.close();
    // The same data dir and port: the agent's URL still points at it.
    const { startServer } = await import('../src/cli/server.js');
    const pino = (await import('pino')).default;
    const again = await startServer({ port, host: '127.0.0.1', agent: false, dataDir: t.dataDir, logger: pino({ level: 'silent' }), stopTimeoutSeconds: 1 });
    restarted = again;
    await waitFor('the channel back after the server restarted', channelOpen, 30_000);
    const r = await t.api<{ stdout: string }>('POST', `/api/v1/pods/${podId}/exec`, { command: ['echo', 'again'] });
    assert.equal(r.body.stdout, 'again\n');
    assert.ok(nodeId);
  });
});
