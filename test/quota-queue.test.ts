/**
 * Over quota, a team that says so waits instead of being refused (issue 15): set with the CLI, a
 * create that crosses the quota is accepted and its pod waits unplaced with the quota named, and is
 * placed when another pod of the team stops or goes; RunPod's API still refuses, as RunPod does.
 * A start of a stopped pod waits the same way, stopped on its node, and starts there by itself with
 * its volume disk once the quota lets it; a stop cancels the wait; a team that refuses answers 403.
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
  desiredStatus: string;
  nodeId: string | null;
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

  it('keeps a start over quota waiting, stopped on its node, and starts it there with its volume disk once usage falls', async () => {
    assert.equal((await t.api('POST', '/api/v1/teams', { name: 'teal' })).status, 201);
    const teal = (await t.api<{ key: string }>('POST', '/api/v1/teams/teal/members', { user: 'tia', role: 'member', createKey: true })).body.key;
    const quota = async (body: object): Promise<void> => assert.equal((await t.api('PUT', '/api/v1/teams/teal/quota', body)).status, 200);
    const view = async (id: string): Promise<PodView> => (await t.api<PodView>('GET', `/api/v1/pods/${id}`, undefined, teal)).body;
    const status = (id: string, want: string): Promise<PodView> => waitFor(`pod ${id} to be ${want}`, async () => ((await view(id)).status === want ? view(id) : undefined), 90_000);
    const act = (id: string, action: string) => t.api<PodView & { code?: string; detail?: string }>('POST', `/api/v1/pods/${id}/${action}`, undefined, teal);
    const exec = async (id: string, script: string) => (await t.api<{ exitCode: number; stdout: string }>('POST', `/api/v1/pods/${id}/exec`, { command: ['sh', '-c', script] }, teal)).body;
    await quota({ vcpus: 1, overQuota: 'queue' });
    const reason = /waiting for quota: quota vcpus of team teal would be crossed: 2 asked for in all, 1 allowed/;

    // B runs first, writes to its volume disk and stops; A then takes the team's one vCPU.
    const b = await t.api<PodView>('POST', '/api/v1/pods', { ...sleeper, name: 'b', volumeGb: 1 }, teal);
    assert.equal(b.status, 201, JSON.stringify(b.body));
    const bNode = (await status(b.body.id, 'RUNNING')).nodeId;
    assert.equal((await exec(b.body.id, 'echo kept-across-the-wait > /workspace/kept')).exitCode, 0);
    assert.equal((await act(b.body.id, 'stop')).status, 200);
    await status(b.body.id, 'EXITED');
    const a = await t.api<PodView>('POST', '/api/v1/pods', { ...sleeper, name: 'a' }, teal);
    assert.equal(a.status, 201, JSON.stringify(a.body));
    await status(a.body.id, 'RUNNING');

    // Starting B crosses the vCPU quota: accepted, and it waits with the quota named.
    const started = await act(b.body.id, 'start');
    assert.equal(started.status, 200, JSON.stringify(started.body));
    assert.equal(started.body.desiredStatus, 'RUNNING');
    assert.equal(started.body.status, 'PROVISIONING');
    assert.match(started.body.statusMessage ?? '', reason);
    // Marathon's queue shows it as it shows a queued create.
    const queue = await t.api<{ queue: { count: number; message?: string }[] }>('GET', '/marathon/v2/queue', undefined, teal);
    assert.ok(queue.body.queue.some((e) => e.count === 1 && reason.test(e.message ?? '')), JSON.stringify(queue.body));
    // Still waiting a few placement passes later.
    await new Promise((r) => setTimeout(r, 1500));
    assert.match((await view(b.body.id)).statusMessage ?? '', reason);
    assert.equal((await view(b.body.id)).status, 'PROVISIONING');

    // A stop cancels the wait; a second start waits again.
    assert.equal((await act(b.body.id, 'stop')).status, 200);
    assert.equal((await status(b.body.id, 'EXITED')).desiredStatus, 'EXITED');
    assert.equal((await act(b.body.id, 'start')).status, 200);
    assert.match((await view(b.body.id)).statusMessage ?? '', reason);

    // A stops: B starts by itself, on its own node, with what its volume disk held.
    assert.equal((await act(a.body.id, 'stop')).status, 200);
    const running = await status(b.body.id, 'RUNNING');
    assert.equal(running.nodeId, bNode);
    assert.equal((await exec(b.body.id, 'cat /workspace/kept')).stdout.trim(), 'kept-across-the-wait');

    // A team that refuses: starting A now is 403, naming the quota.
    await quota({ vcpus: 1 });
    const refused = await act(a.body.id, 'start');
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    assert.equal(refused.body.code, 'BERTH_ERR_QUOTA_EXCEEDED');
    assert.match(refused.body.detail ?? '', /quota vcpus of team teal would be crossed: 2 asked for in all, 1 allowed/);
    assert.equal((await view(a.body.id)).status, 'EXITED');

    // Queueing again, through RunPod's API too: the start waits, and a terminate ends it.
    await quota({ vcpus: 1, overQuota: 'queue' });
    const viaRunpod = await t.api<{ status: string }>('POST', `/runpod/v2/pods/${a.body.id}/action`, { action: 'start' }, teal);
    assert.equal(viaRunpod.status, 200, JSON.stringify(viaRunpod.body));
    assert.equal(viaRunpod.body.status, 'PROVISIONING');
    assert.match((await view(a.body.id)).statusMessage ?? '', reason);
    assert.equal((await t.api('DELETE', `/api/v1/pods/${a.body.id}`, undefined, teal)).status, 200);
    await status(a.body.id, 'TERMINATED');
    assert.equal((await view(b.body.id)).status, 'RUNNING');
    await t.api('DELETE', `/api/v1/pods/${b.body.id}`, undefined, teal);
  });
});
