import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Docker from 'dockerode';
import { freePort } from '../src/agent/ports.js';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { waitFor } from './support/server.js';

const BIN = new URL('../../bin/berth.js', import.meta.url).pathname;
const docker = new Docker();


function serve(dataDir: string, port: number): ChildProcess {
  const child = spawn(process.execPath, [BIN, 'server', '--data-dir', dataDir, '--port', String(port), '--host', '127.0.0.1', '--log-level', 'warn'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    // Keep the CLI config the first start writes out of the user's home.
    env: { ...process.env, XDG_CONFIG_HOME: join(dataDir, 'config') },
  });
  child.stderr!.on('data', (d: Buffer) => process.stderr.write(`[berth server] ${d.toString()}`));
  return child;
}

describe('a server killed with SIGKILL', () => {
  const children: ChildProcess[] = [];
  const ids: string[] = [];
  let dataDir = '';
  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    for (const id of ids) {
      for (const c of await docker.listContainers({ all: true, filters: { label: [`berth.pod=${id}`] } })) await docker.getContainer(c.Id).remove({ force: true });
    }
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('re-adopts running pods on restart without restarting them or starting duplicates', async () => {
    await ensureTestImage();
    dataDir = await mkdtemp(join(tmpdir(), 'berth-readopt-'));
    const port = await freePort('127.0.0.1');
    const url = `http://127.0.0.1:${port}`;
    let child = serve(dataDir, port);
    children.push(child);
    const key = await waitFor('admin key', async () => (await readFile(join(dataDir, 'admin.key'), 'utf8').catch(() => '')).trim() || undefined);
    const api = async <T,>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
      const res = await fetch(url + path, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
      return { status: res.status, body: (await res.json()) as T };
    };
    await waitFor('server up', async () => ((await fetch(`${url}/healthz`).catch(() => undefined))?.ok ? true : undefined));

    for (let i = 0; i < 2; i++) {
      const r = await api<{ id: string }>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0 });
      assert.equal(r.status, 201);
      ids.push(r.body.id);
    }
    const running = async () => {
      for (const id of ids) if ((await api<{ status: string }>('GET', `/api/v1/pods/${id}`)).body.status !== 'RUNNING') return undefined;
      return true;
    };
    await waitFor('pods running', running);
    const before = await docker.listContainers({ filters: { label: ids.map((id) => `berth.pod=${id}`).slice(0, 1) } });
    const containersBefore = new Map<string, string>();
    for (const id of ids) {
      const [c] = await docker.listContainers({ all: true, filters: { label: [`berth.pod=${id}`] } });
      assert.ok(c);
      containersBefore.set(id, `${c.Id}@${(await docker.getContainer(c.Id).inspect()).State.StartedAt}`);
    }
    assert.ok(before.length > 0);

    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    child = serve(dataDir, port);
    children.push(child);
    await waitFor('server back', async () => ((await fetch(`${url}/healthz`).catch(() => undefined))?.ok ? true : undefined));
    await waitFor('pods running after restart', running);
    // Give the agent a moment to act if it (wrongly) wanted to.
    await new Promise((r) => setTimeout(r, 1500));
    for (const id of ids) {
      const list = await docker.listContainers({ all: true, filters: { label: [`berth.pod=${id}`] } });
      assert.equal(list.length, 1, `pod ${id} has exactly one container`);
      const c = list[0]!;
      const now = `${c.Id}@${(await docker.getContainer(c.Id).inspect()).State.StartedAt}`;
      assert.equal(now, containersBefore.get(id), `pod ${id} kept its container and was not restarted`);
    }
    for (const id of ids) await api('POST', `/api/v1/pods/${id}/terminate`);
    await waitFor('cleaned up', async () => ((await docker.listContainers({ all: true, filters: { label: ids.map((id) => `berth.pod=${id}`) } })).length === 0 ? true : undefined));
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  });
});
