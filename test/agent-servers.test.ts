/**
 * Agents connect to every server (docs/cluster.md, "Several servers"): two servers on one
 * PostgreSQL, a real `berth agent` process given only the first. It learns the second from
 * `GET /api/v1/agent/servers`, holds a node channel to each (exec through either server), and when
 * the first server stops its calls go on against the second: a pod created through the second runs.
 *
 * Each server heartbeats its own advertised URL into the servers registry (leadership.ts), which
 * the route reads.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';
import { postgresSchema } from './support/stores.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const postgresUrl = process.env.BERTH_TEST_DATABASE_URL;

describe('an agent connects to every server, and its calls move when one stops', { skip: postgresUrl ? false : 'needs BERTH_TEST_DATABASE_URL (two servers share one PostgreSQL)' }, () => {
  let dir: string;
  let drop: (() => Promise<void>) | undefined;
  let a: TestServer | undefined;
  let b: TestServer | undefined;
  let aClosed = false;
  let agent: ChildProcess | undefined;
  let firstPod: string;
  let nodeId: string;


  const exec = async (t: TestServer, podId: string): Promise<string | undefined> => {
    const r = await t.api<{ exitCode: number; stdout: string }>('POST', `/api/v1/pods/${podId}/exec`, { command: ['echo', 'through-the-channel'] });
    return r.status === 200 && r.body.stdout === 'through-the-channel\n' ? r.body.stdout : undefined;
  };
  const running = async (t: TestServer, podId: string): Promise<string | undefined> => {
    const p = (await t.api<{ status: string; nodeId: string }>('GET', `/api/v1/pods/${podId}`)).body;
    return p.status === 'RUNNING' ? p.nodeId : undefined;
  };

  before(async () => {
    await ensureTestImage();
    dir = await mkdtemp(join(tmpdir(), 'berth-agent-servers-'));
    const pg = await postgresSchema(postgresUrl!);
    drop = pg.drop;
    const common = { agent: false, proxy: false, ssh: false, databaseUrl: pg.url } as const;
    a = await startTestServer({ ...common, dataDir: join(dir, 'a') });
    // The admin key is in the shared database: the second server makes none, and is used with the first's.
    await mkdir(join(dir, 'b'), { recursive: true });
    await copyFile(join(dir, 'a', 'admin.key'), join(dir, 'b', 'admin.key'));
    b = await startTestServer({ ...common, dataDir: join(dir, 'b') });

    agent = spawn(process.execPath, [MAIN, 'agent', '--server', a.url, '--data-dir', join(dir, 'agent'), '--name', 'follows-servers', '--metrics-interval', '0', '--log-level', process.env.BERTH_TEST_LOG ?? 'warn'], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, BERTH_TOKEN: await a.joinToken() },
    });
    const created = await a.api<{ id: string }>('POST', '/api/v1/pods', { image: TEST_IMAGE, volumeGb: 0, command: ['sleep', '3600'] });
    assert.equal(created.status, 201);
    firstPod = created.body.id;
    nodeId = await waitFor('the pod to run on the agent', () => running(a!, firstPod), 90_000);
  });

  after(async () => {
    try {
      if (b) await b.close();
      if (a && !aClosed) await a.close();
    } finally {
      if (agent && agent.exitCode === null && agent.signalCode === null) {
        const exited = new Promise((r) => agent!.once('exit', r));
        agent.kill('SIGTERM');
        await exited;
      }
      await drop?.();
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  });

  it('lists the servers to agents only, and holds a node channel to each: exec works through either server', async () => {
    const { credential } = JSON.parse(await readFile(join(dir, 'agent', 'agent', 'credential.json'), 'utf8')) as { credential: string };
    const listed = await fetch(`${b!.url}/api/v1/agent/servers`, { headers: { authorization: `Bearer ${credential}` } });
    assert.equal(listed.status, 200);
    assert.deepEqual(((await listed.json()) as { servers: { id: string; url: string }[] }).servers.map((s) => s.url), [a!.url, b!.url]);
    assert.equal((await b!.api('GET', '/api/v1/agent/servers')).status, 403, 'an API key is not a node credential');

    await waitFor('exec through the server the agent joined', () => exec(a!, firstPod), 30_000);
    // The second server was never given to the agent: it learned it, and dialed it.
    await waitFor('exec through the other server', () => exec(b!, firstPod), 30_000);
  });

  it('goes on against the other server when the one it joined stops: a new pod runs, and the old one is still reached', async () => {
    aClosed = true;
    await a!.server.close();

    const created = await b!.api<{ id: string }>('POST', '/api/v1/pods', { image: TEST_IMAGE, volumeGb: 0, command: ['sleep', '3600'] });
    assert.equal(created.status, 201);
    // Running: the agent's watch was asked again of the second server, which told it of the pod, and its report went there.
    assert.equal(await waitFor('the new pod to run', () => running(b!, created.body.id), 90_000), nodeId);
    await waitFor('exec in the new pod through the second server', () => exec(b!, created.body.id), 30_000);
    assert.equal(await exec(b!, firstPod), 'through-the-channel\n', 'the pod placed through the first server is reached through the second');
  });
});
