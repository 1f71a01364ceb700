// The agent on the real Docker daemon, fed one assignment through an in-memory channel: what only
// the agent sees, such as secret values (the control plane's side is tested in test/secrets.test.ts).
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { ensureTestImage, TEST_IMAGE } from '../../test/support/images.js';
import type { AgentChannel, Assignment, InstanceReport, WatchResult } from '../control/agent-protocol.js';
import { BerthError, type InstanceObservation, type NodeId, type PodInput } from '../model/index.js';
import { DockerRuntime } from '../runtime/docker.js';
import { Agent } from './agent.js';
import { testAssignment } from '../../test/support/assignment.js';

const SECRET = 'hunter2-very-secret';

/** Hands the agent a fixed set of assignments and keeps what it reports. */
class FakeChannel implements AgentChannel {
  readonly observed = new Map<string, InstanceObservation>();
  private assignments: Assignment[] = [];
  private networkVolumes: string[] = [];
  private revision = 1;
  private wake: (() => void) | undefined;
  readonly nodeId = `node-${Math.random().toString(36).slice(2, 10)}` as NodeId;

  set(assignments: Assignment[], networkVolumes: string[] = []): void {
    this.assignments = assignments;
    this.networkVolumes = networkVolumes;
    this.revision++;
    this.wake?.();
  }
  async register(): Promise<{ nodeId: NodeId }> {
    return { nodeId: this.nodeId };
  }
  async watch(_node: NodeId, since: number, waitMs: number, signal?: AbortSignal): Promise<WatchResult> {
    if (since === this.revision) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
        signal?.addEventListener('abort', () => resolve(), { once: true });
      });
    }
    return { revision: this.revision, assignments: this.assignments, networkVolumes: this.networkVolumes };
  }
  async report(_node: NodeId, reports: InstanceReport[]): Promise<void> {
    for (const r of reports) this.observed.set(r.instanceId, r.observation);
  }
}

function assignment(podId: string, input: PodInput, secrets: Record<string, string>, goal: Assignment['goal'] = 'running'): Assignment {
  return testAssignment(input, { podId, secrets, goal });
}

const until = async <T>(what: string, check: () => T | undefined, ms = 20_000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe('agent on the real Docker daemon', () => {
  let agent: Agent;
  let runtime: DockerRuntime;
  let dataDir: string;
  const channel = new FakeChannel();
  const logs: string[] = [];

  before(async () => {
    await ensureTestImage();
    runtime = await DockerRuntime.create();
    dataDir = await mkdtemp(join(tmpdir(), 'berth-agent-test-'));
    const sink = new PassThrough();
    sink.on('data', (b: Buffer) => logs.push(b.toString('utf8')));
    agent = await Agent.create({ channel, runtime, logger: pino({ level: 'trace' }, sink), dataDir, stopTimeoutSeconds: 1 });
  });
  after(async () => {
    // No assignment left: the agent removes what it ran.
    channel.set([]);
    const end = Date.now() + 20_000;
    while (Date.now() < end && (await runtime.listContainers({ 'berth.node': channel.nodeId })).length > 0) await new Promise((r) => setTimeout(r, 100));
    await agent?.close();
    for (const c of await runtime.listContainers({ 'berth.node': channel.nodeId })) await runtime.removeContainer(c.id);
    await rm(dataDir, { recursive: true, force: true });
  });

  it('puts secret values in env and in files readable by the container user only, and never logs them', async () => {
    const podId = `sec${Date.now().toString(36)}`;
    const a = assignment(
      podId,
      {
        secrets: { db: 'prod/db-password' },
        volumes: [{ name: 'cred', kind: 'secret', secret: 'db' }],
        containers: [
          { name: 'app', image: TEST_IMAGE, command: ['sleep', '3600'], user: '1000', secretEnv: { DB_PASSWORD: 'db' }, volumeMounts: [{ name: 'cred', mountPath: '/run/secrets/db/password' }] },
          { name: 'root', image: TEST_IMAGE, command: ['sleep', '3600'], volumeMounts: [{ name: 'cred', mountPath: '/etc/db-password' }] },
        ],
      },
      { db: SECRET },
    );
    channel.set([a]);
    await until('running', () => (channel.observed.get(a.instanceId)?.state === 'running' ? true : undefined));

    const app = await agent.access.exec(a.instanceId, 'app', ['sh', '-c', 'echo "$DB_PASSWORD"; cat /run/secrets/db/password; echo; stat -c "%a %u" /run/secrets/db/password; id -u'], 10_000);
    assert.equal(app.exitCode, 0, app.stderr);
    assert.deepEqual(app.stdout.trim().split('\n'), [SECRET, SECRET, '400 1000', '1000']);
    const root = await agent.access.exec(a.instanceId, 'root', ['sh', '-c', 'cat /etc/db-password; echo; stat -c "%a %u" /etc/db-password; echo "[$DB_PASSWORD]"'], 10_000);
    assert.deepEqual(root.stdout.trim().split('\n'), [SECRET, '400 0', '[]'], 'secret env goes only to the container that asks for it');

    assert.ok(logs.length > 0, 'the agent logged at trace level');
    assert.ok(!logs.some((l) => l.includes(SECRET)), 'no log line holds the secret');
    assert.ok(!JSON.stringify([...channel.observed.values()]).includes(SECRET), 'no report holds the secret');
  });

  it('gives each container its own limits, user, tty, stop grace and labels, and bind-mounts host volumes', async () => {
    const hostDir = await mkdtemp(join(tmpdir(), 'berth-host-volume-'));
    await writeFile(join(hostDir, 'greeting'), 'from the node\n');
    // Readable by the container's user 1000, as mkdtemp makes it the owner's only.
    await chmod(hostDir, 0o755);
    try {
      const podId = `opts${Date.now().toString(36)}`;
      const a = assignment(
        podId,
        {
          vcpuCount: 1,
          memoryGb: 0.5,
          volumes: [{ name: 'node-dir', kind: 'host', hostPath: hostDir }],
          containers: [
            {
              name: 'tuned',
              image: TEST_IMAGE,
              command: ['sleep', '3600'],
              resources: { cpus: 0.25, memoryMb: 64 },
              user: '1000:1000',
              tty: true,
              killGracePeriodSeconds: 3,
              labels: { team: 'core' },
              volumeMounts: [{ name: 'node-dir', mountPath: '/mnt/node', readOnly: true }],
            },
            { name: 'plain', image: TEST_IMAGE, command: ['sleep', '3600'] },
          ],
        },
        {},
      );
      channel.set([a]);
      await until('running', () => (channel.observed.get(a.instanceId)?.state === 'running' ? true : undefined));
      const list = await runtime.listContainers({ 'berth.instance': a.instanceId });
      const byName = (n: string) => list.find((c) => c.labels['berth.container'] === n)!;
      const tuned = await runtime.docker.getContainer(byName('tuned').id).inspect();
      assert.equal(tuned.HostConfig.NanoCpus, 0.25e9);
      assert.equal(tuned.HostConfig.Memory, 64 * 2 ** 20);
      assert.equal(tuned.Config.User, '1000:1000');
      assert.equal(tuned.Config.Tty, true);
      assert.equal((tuned.Config as { StopTimeout?: number }).StopTimeout, 3);
      assert.equal(tuned.Config.Labels.team, 'core');
      const plain = await runtime.docker.getContainer(byName('plain').id).inspect();
      assert.equal(plain.HostConfig.NanoCpus, 1e9, "the pod's limits where the container sets none");
      assert.equal(plain.HostConfig.Memory, 0.5 * 2 ** 30);

      const read = await agent.access.exec(a.instanceId, 'tuned', ['sh', '-c', 'cat /mnt/node/greeting; touch /mnt/node/x 2>/dev/null && echo writable || echo read-only'], 10_000);
      assert.deepEqual(read.stdout.trim().split('\n'), ['from the node', 'read-only']);
      channel.set([{ ...a, goal: 'removed' }]);
      await until('removed', () => (channel.observed.get(a.instanceId)?.state === 'removed' ? true : undefined));
    } finally {
      await rm(hostDir, { recursive: true, force: true });
    }
  });

  it('leaves no volume behind when a network volume is deleted while its pod starts and goes', async () => {
    // The pod goes and its network volume is deleted at once, at points across the start: the
    // volume must not be removed between its creation and the container's (Docker would make it
    // again, without labels, and nothing would ever collect it).
    for (const delayMs of [0, 5, 20, 60, 150]) {
      const podId = `nvrace${delayMs}${Date.now().toString(36)}`;
      const volume = `berth-nv-${podId}`;
      const a = { ...assignment(podId, { image: TEST_IMAGE, command: ['sleep', '3600'] }, {}), networkVolume: volume };
      channel.set([a], [volume]);
      await new Promise((r) => setTimeout(r, delayMs));
      channel.set([], []);
      // Nothing left, and still nothing a moment later: the agent may not have started when first looked.
      const end = Date.now() + 30_000;
      let clearSince: number | undefined;
      for (;;) {
        const containers = await runtime.listContainers({ 'berth.instance': a.instanceId });
        const volumes = (await runtime.docker.listVolumes({ filters: { name: [volume] } })).Volumes ?? [];
        if (containers.length === 0 && volumes.length === 0) {
          clearSince ??= Date.now();
          if (Date.now() - clearSince > 1_500) break;
        } else clearSince = undefined;
        if (Date.now() > end) {
          for (const v of volumes) await runtime.removeVolume(v.Name);
          process.stderr.write(logs.join('').split('\n').filter((l) => l.includes(podId)).join('\n') + '\n');
          assert.fail(`${delayMs} ms in: left behind ${containers.length} containers and volumes ${JSON.stringify(volumes.map((v) => ({ name: v.Name, labels: v.Labels })))}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });

  it('refuses to start a pod whose secret value did not arrive, saying which', async () => {
    const podId = `nosec${Date.now().toString(36)}`;
    const a = assignment(podId, { secrets: { db: 'prod/db' }, containers: [{ name: 'app', image: TEST_IMAGE, command: ['sleep', '3600'], secretEnv: { DB: 'db' } }] }, {});
    channel.set([a]);
    const obs = await until('failed', () => {
      const o = channel.observed.get(a.instanceId);
      return o?.state === 'failed' ? o : undefined;
    });
    assert.match(obs.message ?? '', /secret db/);
    assert.deepEqual(await runtime.listContainers({ 'berth.instance': a.instanceId }), []);
  });
});

describe('agent when Docker fails to remove a container', () => {
  let agent: Agent;
  let runtime: DockerRuntime;
  let dataDir: string;
  const channel = new FakeChannel();
  // Removes of the pod's containers fail (as a hung call does once its deadline passes) until cleared.
  let failing = true;
  const killed: string[] = [];

  before(async () => {
    await ensureTestImage();
    runtime = await DockerRuntime.create();
    dataDir = await mkdtemp(join(tmpdir(), 'berth-agent-test-'));
    const faulty = Object.assign(Object.create(runtime) as DockerRuntime, {
      removeContainer: async (id: string) => {
        if (failing) throw new BerthError('RUNTIME', `remove container ${id}: Docker did not answer in 60 s`);
        return runtime.removeContainer(id);
      },
      killContainer: async (id: string) => {
        killed.push(id);
      },
    });
    agent = await Agent.create({ channel, runtime: faulty, logger: pino({ level: 'silent' }), dataDir, stopTimeoutSeconds: 1 });
  });
  after(async () => {
    failing = false;
    channel.set([]);
    const end = Date.now() + 20_000;
    while (Date.now() < end && (await runtime.listContainers({ 'berth.node': channel.nodeId })).length > 0) await new Promise((r) => setTimeout(r, 100));
    await agent?.close();
    for (const c of await runtime.listContainers({ 'berth.node': channel.nodeId })) await runtime.removeContainer(c.id);
    await rm(dataDir, { recursive: true, force: true });
  });

  it('kills, tries again, reports what it could not do, goes on with other pods, and reports removed only once removed', async () => {
    const a = assignment(`stuck${Date.now().toString(36)}`, { image: TEST_IMAGE, command: ['sleep', '3600'] }, {});
    channel.set([a]);
    await until('running', () => (channel.observed.get(a.instanceId)?.state === 'running' ? true : undefined));
    const b = assignment(`other${Date.now().toString(36)}`, { image: TEST_IMAGE, command: ['sleep', '3600'] }, {});
    channel.set([{ ...a, goal: 'removed' }, b]);
    const stuck = await until('the failure reported', () => {
      const o = channel.observed.get(a.instanceId);
      return o?.state === 'failed' ? o : undefined;
    });
    assert.match(stuck.message ?? '', /could not remove container main .* after killing it: .*did not answer/);
    assert.equal(killed.length > 0, true, 'the container was killed before the second remove');
    // The other pod is not held up by the one whose removal fails.
    await until('the other pod running', () => (channel.observed.get(b.instanceId)?.state === 'running' ? true : undefined));
    assert.notEqual(channel.observed.get(a.instanceId)?.state, 'removed');
    failing = false;
    await until('removed once Docker removes it', () => (channel.observed.get(a.instanceId)?.state === 'removed' ? true : undefined), 30_000);
    assert.deepEqual(await runtime.listContainers({ 'berth.instance': a.instanceId }), []);
    channel.set([{ ...b, goal: 'removed' }]);
    await until('the other removed', () => (channel.observed.get(b.instanceId)?.state === 'removed' ? true : undefined));
  });
});
