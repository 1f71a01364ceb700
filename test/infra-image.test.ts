/**
 * Multi-container pods need no registry: the agent builds its infra image on the node from
 * catatonit the first time a pod needs one. And what a pod that cannot start says: a pull that
 * fails is a launch failure (retried, not a restart) that names the registry it could not reach;
 * a fixed host port another instance holds keeps the pod waiting with that reason.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFile, copyFile, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { CATATONIT_PATHS } from '../src/agent/infra-image.js';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import type { PodView } from './support/pod-view.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

const docker = new Docker();

interface Instance {
  nodeId: string | null;
  message: string | null;
  restartCount: number;
  launchFailures: number;
}
type Pod = Omit<PodView, 'instances'> & { restartCount: number; instances: Instance[] };

const twoContainers = (name: string) => ({
  name,
  volumeGb: 0,
  containers: [
    { name: 'web', image: TEST_IMAGE, command: ['sh', '-c', 'echo hi > /tmp/index.html && exec httpd -f -p 8080 -h /tmp'] },
    { name: 'probe', image: TEST_IMAGE, command: ['sh', '-c', 'until wget -q -O /tmp/got http://localhost:8080/index.html; do sleep 0.2; done; exec sleep 3600'] },
  ],
});

async function listen(): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : 0 };
}

describe('the node builds its own infra image, with no registry', () => {
  let t: TestServer;
  let work: string;
  let tag: string | undefined;
  before(async () => {
    await ensureTestImage();
    work = await mkdtemp(join(tmpdir(), 'berth-infra-'));
  });
  after(async () => {
    await t?.close();
    if (tag) await docker.getImage(tag).remove().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  it('runs a two-container pod on a Docker that has no infra image and no registry', async () => {
    // A catatonit of its own (trailing bytes do not change what it runs): an image named by
    // its inputs that this daemon cannot have yet, whatever ran before.
    const catatonit = join(work, 'catatonit');
    let copied = false;
    for (const p of CATATONIT_PATHS) {
      try {
        await copyFile(p, catatonit);
        copied = true;
        break;
      } catch {
        // not there
      }
    }
    assert.ok(copied, `catatonit is in one of ${CATATONIT_PATHS.join(', ')} (apt-get install catatonit)`);
    await appendFile(catatonit, randomBytes(16));
    const before = new Set((await docker.listImages()).flatMap((i) => i.RepoTags ?? []));

    t = await startTestServer({ catatonitPath: catatonit });
    const created = await t.api<PodView>('POST', '/api/v1/pods', twoContainers('duo'));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    await waitFor('pod RUNNING', async () => ((await t.api<PodView>('GET', `/api/v1/pods/${id}`)).body.status === 'RUNNING' ? true : undefined), 60_000);

    const cs = await docker.listContainers({ all: true, filters: { label: [`berth.pod=${id}`, 'berth.role=infra'] } });
    assert.equal(cs.length, 1);
    tag = cs[0]!.Image;
    assert.match(tag, /^localhost\/berth-infra:[0-9a-f]{12}$/);
    assert.ok(!before.has(tag), 'the image was built for this pod, not found ready');
    const after = (await docker.listImages()).flatMap((i) => i.RepoTags ?? []);
    assert.ok(!after.some((r) => r.startsWith('registry.k8s.io/')), `no pause image was pulled: ${after.join(', ')}`);
    // The containers share the infra container's network: one reached the other on localhost.
    const got = await waitFor('the probe to fetch the page', async () => {
      const probe = await t.api<{ exitCode: number; stdout: string }>('POST', `/api/v1/pods/${id}/exec`, { container: 'probe', command: ['cat', '/tmp/got'] });
      return probe.body.exitCode === 0 && probe.body.stdout.trim() ? probe.body.stdout.trim() : undefined;
    });
    assert.equal(got, 'hi');

    // catatonit as PID 1 stops at once on SIGTERM: a stop does not wait out the grace period.
    const infra = docker.getContainer(cs[0]!.Id);
    const t0 = Date.now();
    await infra.stop({ t: 30 });
    assert.ok(Date.now() - t0 < 10_000, 'the infra container ends on SIGTERM');
    assert.equal((await infra.inspect()).State.ExitCode !== 137, true, 'it exited by itself, not by SIGKILL');
  });
});

describe('what a pod that cannot start says', () => {
  let t: TestServer;
  let outside: { server: Server; port: number } | undefined;
  before(async () => {
    await ensureTestImage();
    t = await startTestServer({ catatonitPath: join(tmpdir(), 'no-such-catatonit') });
  });
  after(async () => {
    outside?.server.close();
    await t?.close();
  });
  const get = async (id: string) => (await t.api<Pod>('GET', `/api/v1/pods/${id}`)).body;

  it('a failed pull names the unreachable registry, and its retries are not restarts', async () => {
    const created = await t.api<PodView>('POST', '/api/v1/pods', { name: 'nopull', image: '127.0.0.1:1/berth-test/nothing:1', volumeGb: 0 });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    const pod = await waitFor(
      'two failed launches',
      async () => {
        const p = await get(id);
        // The second failure: its message counts the attempts.
        return /\(attempt \d+\)/.test(p.instances[0]?.message ?? '') ? p : undefined;
      },
      30_000,
    );
    const obs = pod.instances[0]!;
    assert.match(obs.message ?? '', /image 127\.0\.0\.1:1\/berth-test\/nothing:1 is not on this node and its registry 127\.0\.0\.1:1 cannot be reached/);
    assert.match(obs.message ?? '', /retrying in [\d.]+ s \(attempt \d+\)/);
    assert.ok(obs.launchFailures >= 1, `launch failures counted: ${obs.launchFailures}`);
    assert.equal(obs.restartCount, 0, 'a pull retry is not a restart');
    assert.equal(pod.restartCount, 0);
    assert.match(pod.statusMessage ?? '', /cannot be reached/);
  });

  it('without catatonit or --infra-image, a multi-container pod says how to get one', async () => {
    const created = await t.api<PodView>('POST', '/api/v1/pods', twoContainers('noinfra'));
    const id = created.body.id;
    const pod = await waitFor('the launch failure', async () => {
      const p = await get(id);
      return p.instances[0]?.message ? p : undefined;
    });
    assert.match(pod.instances[0]!.message!, /no catatonit to build its infra image from .*apt-get install catatonit.*--infra-image/);
    assert.equal(pod.instances[0]!.restartCount, 0);
  });

  it('a fixed host port held by another instance keeps the pod waiting, with the reason', async () => {
    const { port } = await listen().then(async (l) => {
      await new Promise((r) => l.server.close(r));
      return l;
    });
    const withPort = (name: string) => ({
      name,
      volumeGb: 0,
      containers: [{ name: 'web', image: TEST_IMAGE, command: ['sleep', '3600'], endpoints: [{ name: 'web', containerPort: 8080, hostPort: port }] }],
    });
    const first = await t.api<PodView>('POST', '/api/v1/pods', withPort('holder'));
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const second = await t.api<PodView>('POST', '/api/v1/pods', withPort('second'));
    assert.equal(second.status, 201, JSON.stringify(second.body));
    const waiting = await get(second.body.id);
    assert.equal(waiting.status, 'PROVISIONING');
    assert.match(waiting.statusMessage ?? '', new RegExp(`host port ${port}/tcp already taken by another instance`));
    assert.equal(waiting.instances[0]?.nodeId ?? null, null, 'not placed');
    // The holder goes: the waiting pod takes the port.
    assert.equal((await t.api('POST', `/api/v1/pods/${first.body.id}/terminate`)).status, 200);
    await waitFor('the second pod placed', async () => ((await get(second.body.id)).instances[0]?.nodeId ? true : undefined), 30_000);
  });

  it('a fixed host port taken by a process outside Berth is reported as such, not as a restart', async () => {
    outside = await listen();
    const created = await t.api<PodView>('POST', '/api/v1/pods', {
      name: 'outside',
      volumeGb: 0,
      containers: [{ name: 'web', image: TEST_IMAGE, command: ['sleep', '3600'], endpoints: [{ name: 'web', containerPort: 8080, hostPort: outside.port }] }],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const pod = await waitFor('the launch failure', async () => {
      const p = await get(created.body.id);
      return p.instances[0]?.message ? p : undefined;
    });
    assert.match(pod.instances[0]!.message!, new RegExp(`host port ${outside.port} of endpoint web is taken on node .* by something outside Berth`));
    assert.equal(pod.instances[0]!.restartCount, 0);
  });
});
