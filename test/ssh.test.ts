/**
 * The SSH gateway with the real OpenSSH clients (ssh, scp, sftp): a shell, a command's exit status,
 * SFTP and scp both ways, a -L forward, another user's key refused, a stopped pod's message.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

const run = promisify(execFile);

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function spawnRun(cmd: string, args: string[], input?: string, timeoutMs = 60_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    // Its own process group: sftp and scp start ssh, which must go too on a timeout.
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TERM: 'xterm-256color' }, detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}

function spawnEnv(cmd: string, args: string[], env: Record<string, string>): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('SSH gateway', { concurrency: true }, () => {
  let t: TestServer;
  let dir: string;
  let podId: string;
  let sshPort: number;
  const opts = (key: string): string[] => ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-i', key];
  const ssh = (args: string[], input?: string, key = join(dir, 'id_owner')): Promise<Ran> => spawnRun('ssh', [...opts(key), '-p', String(sshPort), ...args], input);

  before(async () => {
    await ensureTestImage();
    dir = await mkdtemp(join(tmpdir(), 'berth-ssh-test-'));
    for (const name of ['id_owner', 'id_other']) await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', join(dir, name)]);
    t = await startTestServer();
    sshPort = t.server.ssh!.port;
    const added = await t.api('POST', '/api/v1/ssh-keys', { publicKey: await readFile(join(dir, 'id_owner.pub'), 'utf8') });
    assert.equal(added.status, 201);
    const other = await t.api<{ key: string }>('POST', '/api/v1/keys', { name: 'other', owner: 'other-user' });
    assert.equal((await t.api('POST', '/api/v1/ssh-keys', { publicKey: await readFile(join(dir, 'id_other.pub'), 'utf8') }, other.body.key)).status, 201);
    const created = await t.api<{ id: string }>('POST', '/api/v1/pods', { image: TEST_IMAGE, ports: ['8080/http'], volumeGb: 0, command: ['sh', '-c', 'mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www'] });
    podId = created.body.id;
    await waitFor('the pod to run', async () => ((await t.api<{ status: string }>('GET', `/api/v1/pods/${podId}`)).body.status === 'RUNNING' ? true : undefined), 60_000);
  });
  after(async () => {
    await t?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs a command and returns its exit status and output', async () => {
    const r = await ssh([`${podId}@127.0.0.1`, '--', 'echo out-$((40+2)); echo err >&2; exit 3']);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, 'out-42\n');
    assert.equal(r.stderr, 'err\n');
    const ok = await ssh([`${podId}@127.0.0.1`, 'hostname']);
    assert.equal(ok.code, 0);
    assert.equal(ok.stdout.trim(), podId);
  });

  it('opens a shell with a PTY', async () => {
    const r = await ssh(['-tt', `${podId}@127.0.0.1`], 'tty; echo "term=$TERM"; exit 7\n');
    assert.equal(r.code, 7, r.stderr);
    assert.match(r.stdout, /\/dev\/pts\/\d+/);
    assert.match(r.stdout, /term=xterm-256color/);
  });

  it('uploads and downloads with sftp and scp', async () => {
    const data = randomBytes(5 * 2 ** 20 + 123);
    const local = join(dir, 'up.bin');
    await writeFile(local, data);
    const batch = join(dir, 'batch');
    await writeFile(batch, [`put ${local} /tmp/up.bin`, `get /tmp/up.bin ${join(dir, 'down.bin')}`, 'mkdir /tmp/newdir', 'ls -l /tmp', 'rename /tmp/up.bin /tmp/newdir/moved.bin', 'ls /tmp/newdir', ''].join('\n'));
    const r = await spawnRun('sftp', [...opts(join(dir, 'id_owner')), '-P', String(sshPort), '-b', batch, `${podId}@127.0.0.1`]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(createHash('sha256').update(await readFile(join(dir, 'down.bin'))).digest('hex'), createHash('sha256').update(data).digest('hex'));
    assert.match(r.stdout, /up\.bin/);
    assert.match(r.stdout, /moved\.bin/);
    const inPod = await ssh([`${podId}@127.0.0.1`, 'sha256sum /tmp/newdir/moved.bin']);
    assert.equal(inPod.stdout.split(' ')[0], createHash('sha256').update(data).digest('hex'));

    const scpUp = await spawnRun('scp', [...opts(join(dir, 'id_owner')), '-P', String(sshPort), local, `${podId}@127.0.0.1:/tmp/scp.bin`]);
    assert.equal(scpUp.code, 0, scpUp.stderr + scpUp.stdout);
    const scpDown = await spawnRun('scp', [...opts(join(dir, 'id_owner')), '-P', String(sshPort), `${podId}@127.0.0.1:/tmp/scp.bin`, join(dir, 'scp-back.bin')]);
    assert.equal(scpDown.code, 0, scpDown.stderr);
    assert.ok((await readFile(join(dir, 'scp-back.bin'))).equals(data));
  });

  it('forwards a local port into the pod (-L)', async () => {
    const port = await freePort();
    const child = spawn('ssh', [...opts(join(dir, 'id_owner')), '-p', String(sshPort), '-N', '-o', 'ExitOnForwardFailure=yes', '-L', `${port}:localhost:8080`, `${podId}@127.0.0.1`], { stdio: 'ignore' });
    try {
      const body = await waitFor('the forward', async () => {
        const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5000) });
        return res.ok ? res.text() : undefined;
      });
      assert.equal(body, 'hello-from-pod\n');
    } finally {
      child.kill();
    }
  });

  it('berth ssh runs ssh with the pod\'s endpoint', async () => {
    const bin = join(process.cwd(), 'bin', 'berth.js');
    const env = { BERTH_URL: t.url, BERTH_API_KEY: t.key };
    const printed = await spawnEnv(process.execPath, [bin, 'ssh', podId, '--print'], env);
    assert.equal(printed.stdout.trim(), `ssh -p ${sshPort} ${podId}@localhost`);
    const r = await spawnEnv(process.execPath, [bin, 'ssh', podId, '-i', join(dir, 'id_owner'), '--ssh-option', 'StrictHostKeyChecking=no', '--ssh-option', 'UserKnownHostsFile=/dev/null', '--ssh-option', 'LogLevel=ERROR', '--', 'echo', 'via-cli;', 'exit', '4'], env);
    assert.equal(r.code, 4, r.stderr);
    assert.equal(r.stdout, 'via-cli\n');
  });

  it('forwards a port of the pod\'s network back to the client (-R), at the node\'s address on that network', async () => {
    const { createServer: createHttp } = await import('node:http');
    const web = createHttp((_req, res) => res.end('from-the-client\n'));
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    const webPort = (web.address() as { port: number }).port;
    const remote = 20000 + Math.floor(Math.random() * 20000);
    const child = spawn('ssh', [...opts(join(dir, 'id_owner')), '-p', String(sshPort), '-N', '-o', 'ExitOnForwardFailure=yes', '-R', `${remote}:127.0.0.1:${webPort}`, `${podId}@127.0.0.1`], { stdio: 'ignore' });
    try {
      const out = await waitFor('the reverse forward', async () => {
        const r = await ssh([`${podId}@127.0.0.1`, `gw=$(ip route | awk '/^default/ {print $3}'); wget -qO- "http://$gw:${remote}/"`]);
        return r.code === 0 ? r.stdout : undefined;
      });
      assert.equal(out, 'from-the-client\n');
    } finally {
      child.kill();
      web.close();
    }
  });

  it("refuses another user's key", async () => {
    const r = await ssh([`${podId}@127.0.0.1`, 'true'], undefined, join(dir, 'id_other'));
    assert.equal(r.code, 255);
    assert.match(r.stderr, /Permission denied/);
  });

  it('says a stopped pod is stopped instead of dropping the connection', async () => {
    const created = await t.api<{ id: string }>('POST', '/api/v1/pods', { image: TEST_IMAGE, volumeGb: 0, command: ['sleep', '600'] });
    const id = created.body.id;
    await waitFor('it to run', async () => ((await t.api<{ status: string }>('GET', `/api/v1/pods/${id}`)).body.status === 'RUNNING' ? true : undefined), 60_000);
    await t.api('POST', `/api/v1/pods/${id}/stop`);
    await waitFor('it to stop', async () => ((await t.api<{ status: string }>('GET', `/api/v1/pods/${id}`)).body.status === 'EXITED' ? true : undefined), 30_000);
    const r = await ssh([`${id}@127.0.0.1`, 'true']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`pod ${id} is EXITED.*berth pod start ${id}`));
  });
});
