import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { freePort } from '../src/agent/ports.js';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

const run = promisify(execFile);
const docker = new Docker();


interface PodView {
  id: string;
  status: string;
  statusMessage: string | null;
}

describe('private registries', () => {
  let t: TestServer;
  let registry: ChildProcess | undefined;
  let dir = '';
  let image = '';

  before(async () => {
    await ensureTestImage();
    dir = await mkdtemp(join(tmpdir(), 'berth-registry-'));
    const port = await freePort('127.0.0.1');
    // Debian's docker-registry (distribution), with htpasswd (bcrypt) auth, on loopback only.
    const { stdout } = await run('htpasswd', ['-Bbn', 'berth', 's3cret']);
    await writeFile(join(dir, 'htpasswd'), stdout);
    await writeFile(
      join(dir, 'config.yml'),
      [
        'version: 0.1',
        'log: {level: error}',
        `storage: {filesystem: {rootdirectory: ${join(dir, 'data')}}}`,
        `http: {addr: "127.0.0.1:${port}"}`,
        `auth: {htpasswd: {realm: berth-test, path: ${join(dir, 'htpasswd')}}}`,
      ].join('\n'),
    );
    registry = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
    await waitFor('registry up', async () => ((await fetch(`http://127.0.0.1:${port}/v2/`).catch(() => undefined))?.status === 401 ? true : undefined));

    image = `127.0.0.1:${port}/berth/private:1`;
    await docker.getImage(TEST_IMAGE).tag({ repo: `127.0.0.1:${port}/berth/private`, tag: '1' });
    const stream = await docker.getImage(image).push({ authconfig: { username: 'berth', password: 's3cret', serveraddress: `127.0.0.1:${port}` } });
    await new Promise<void>((resolve, reject) =>
      docker.modem.followProgress(stream, (err: Error | null, out: { error?: string }[]) => {
        const failed = out?.find((o) => o.error);
        if (err || failed) reject(err ?? new Error(failed!.error));
        else resolve();
      }),
    );
    // Only the registry has it under this name now, so the agent must pull it.
    await docker.getImage(image).remove();
    t = await startTestServer();
  });

  after(async () => {
    await t?.close();
    await docker.getImage(image).remove().catch(() => undefined);
    registry?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('pulls with stored credentials, and says why when it has none', async () => {
    const denied = await t.api<PodView>('POST', '/api/v1/pods', { image, command: ['sleep', '3600'], volumeGb: 0 });
    assert.equal(denied.status, 201);
    const failed = await waitFor('pull refused', async () => {
      const p = (await t.api<PodView>('GET', `/api/v1/pods/${denied.body.id}`)).body;
      return p.status === 'ERROR' ? p : undefined;
    });
    assert.match(failed.statusMessage ?? '', /no basic auth credentials|unauthorized|authentication required/i);
    await t.api('POST', `/api/v1/pods/${denied.body.id}/terminate`);

    const auth = await t.api<{ id: string; password?: string }>('POST', '/api/v1/registry-auths', { name: 'local', username: 'berth', password: 's3cret' });
    assert.equal(auth.status, 201);
    assert.equal(auth.body.password, undefined, 'the password is never returned');
    const listed = JSON.stringify((await t.api('GET', '/api/v1/registry-auths')).body);
    assert.ok(!listed.includes('s3cret'));

    const ok = await t.api<PodView>('POST', '/api/v1/pods', { image, command: ['sleep', '3600'], volumeGb: 0, registryAuthId: auth.body.id });
    await waitFor('pulled and running', async () => {
      const p = (await t.api<PodView>('GET', `/api/v1/pods/${ok.body.id}`)).body;
      return p.status === 'RUNNING' ? p : undefined;
    });
  });
});
