/**
 * Over quota, a team that says so waits instead of being refused (issue 15): set with the CLI, a
 * create that crosses the quota is accepted and its pod waits unplaced with the quota named, and is
 * placed when another pod of the team stops or goes; RunPod's API still refuses, as RunPod does.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

const run = promisify(execFile);

interface PodView {
  id: string;
  status: string;
  statusMessage: string | null;
}

describe('over quota, queue', () => {
  let t: TestServer;
  let key: string;
  const sleeper = { image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0, vcpuCount: 1 };
  const get = async (id: string): Promise<PodView> => (await t.api<PodView>('GET', `/api/v1/pods/${id}`, undefined, key)).body;
  const until = (id: string, status: string): Promise<PodView> => waitFor(`pod ${id} to be ${status}`, async () => ((await get(id)).status === status ? get(id) : undefined), 90_000);

  before(async () => {
    await ensureTestImage();
    t = await startTestServer({ proxy: false, ssh: false });
    assert.equal((await t.api('POST', '/api/v1/teams', { name: 'green' })).status, 201);
    const made = await t.api<{ key: string }>('POST', '/api/v1/teams/green/members', { user: 'gus', role: 'member', createKey: true });
    key = made.body.key;
    const cli = await run(process.execPath, [join(process.cwd(), 'bin', 'berth.js'), 'team', 'quota', 'set', 'green', 'pods=2,vcpus=1,overQuota=queue'], { env: { ...process.env, BERTH_URL: t.url, BERTH_API_KEY: t.key } });
    assert.match(cli.stdout, /"overQuota":"queue"/);
  });
  after(async () => {
    await t?.close();
  });

  it('accepts a create over quota, keeps it waiting with the reason, and places it when usage falls', async () => {
    const a = await t.api<PodView>('POST', '/api/v1/pods', { ...sleeper, name: 'a' }, key);
    assert.equal(a.status, 201, JSON.stringify(a.body));
    await until(a.body.id, 'RUNNING');

    const b = await t.api<PodView>('POST', '/api/v1/pods', { ...sleeper, name: 'b' }, key);
    assert.equal(b.status, 201, JSON.stringify(b.body));
    assert.match(b.body.statusMessage ?? '', /waiting for quota: quota vcpus of team green would be crossed: 2 asked for in all, 1 allowed/);
    // RunPod refuses what crosses a quota, whatever the team says.
    const runpod = await t.api<{ code?: string }>('POST', '/runpod/v2/pods', { name: 'r', image: TEST_IMAGE, cpu: { id: 'cpu3c', vcpuCount: 2 } }, key);
    assert.equal(runpod.status, 403, JSON.stringify(runpod.body));
    assert.match(JSON.stringify(runpod.body), /quota vcpus of team green would be crossed/);
    // A pod that could never fit a quota's rule is refused, not queued.
    const unreserved = await t.api<{ code?: string }>('POST', '/api/v1/pods', { image: TEST_IMAGE, volumeGb: 0 }, key);
    assert.equal(unreserved.status, 403);
    assert.equal(unreserved.body.code, 'BERTH_ERR_QUOTA_EXCEEDED');
    // Still waiting a few placement passes later.
    await new Promise((r) => setTimeout(r, 1500));
    assert.notEqual((await get(b.body.id)).status, 'RUNNING');

    // Stopping the first gives its vCPU back: the second is placed and runs.
    assert.equal((await t.api('POST', `/api/v1/pods/${a.body.id}/stop`, undefined, key)).status, 200);
    await until(b.body.id, 'RUNNING');

    // A stopped pod still counts as a pod: a third waits for both quotas until the others go.
    const c = await t.api<PodView>('POST', '/api/v1/pods', { ...sleeper, name: 'c' }, key);
    assert.equal(c.status, 201);
    assert.match(c.body.statusMessage ?? '', /quota pods of team green would be crossed: 3 asked for in all, 2 allowed/);
    for (const id of [a.body.id, b.body.id]) assert.equal((await t.api('DELETE', `/api/v1/pods/${id}`, undefined, key)).status, 200);
    await until(c.body.id, 'RUNNING');
    await t.api('DELETE', `/api/v1/pods/${c.body.id}`, undefined, key);
  });
});
