// DockerRuntime against the machine's real Docker daemon, with a busybox image built locally.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { BerthError } from '../src/model/errors.js';
import { cgroupStats } from '../src/runtime/cgroup-stats.js';
import { DockerRuntime } from '../src/runtime/docker.js';
import { statsFromDocker } from '../src/runtime/stats.js';
import type { ContainerPlan, LogLine, RuntimeEvent } from '../src/runtime/types.js';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';

const RUN_ID = randomBytes(4).toString('hex');
const LABEL = 'berth.test';
const labels = { [LABEL]: RUN_ID };
let rt: DockerRuntime;

function plan(suffix: string, over: Partial<ContainerPlan> = {}): ContainerPlan {
  return {
    name: `berth-test-${RUN_ID}-${suffix}`,
    image: TEST_IMAGE,
    entrypoint: [],
    command: ['sleep', '30'],
    env: {},
    labels,
    ports: [],
    mounts: [],
    cpus: null,
    memoryBytes: null,
    diskBytes: null,
    gpuUuids: [],
    gpusSimulated: false,
    ...over,
  };
}

async function run(suffix: string, over: Partial<ContainerPlan> = {}): Promise<string> {
  const { id } = await rt.createContainer(plan(suffix, over));
  await rt.startContainer(id);
  return id;
}

async function collect(lines: AsyncIterable<LogLine>): Promise<LogLine[]> {
  const out: LogLine[] = [];
  for await (const l of lines) out.push(l);
  return out;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function isKind(kind: BerthError['kind'], pattern?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof BerthError, `expected a BerthError, got ${String(err)}`);
    assert.equal(err.kind, kind, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  };
}

before(async () => {
  rt = await DockerRuntime.create();
  await rt.ping();
  await ensureTestImage(rt.docker);
});

after(async () => {
  // Whatever the tests left, pass or fail.
  for (const c of await rt.listContainers(labels)) await rt.removeContainer(c.id);
  for (const v of await rt.listVolumes(labels)) await rt.removeVolume(v.name);
});

describe('DockerRuntime on the real daemon', { concurrency: true }, () => {
  it('pings and knows its images', async () => {
    const v = await rt.ping();
    assert.match(v.apiVersion, /^\d+\.\d+$/);
    assert.equal(await rt.imageExists(TEST_IMAGE), true);
    assert.equal(await rt.imageExists(`berth-test/absent-${RUN_ID}:1`), false);
  });

  it('serves HTTP on a published random port, with env, volume, limits and exec', async () => {
    const volume = `berth-test-${RUN_ID}-www`;
    await rt.ensureVolume(volume, labels);
    const id = await run('http', {
      entrypoint: ['sh', '-c'],
      command: ['echo "hello $GREETING" > /www/index.html && exec httpd -f -p 8080 -h /www'],
      env: { GREETING: 'from berth', EMPTY: '' },
      ports: [{ containerPort: 8080, hostPort: 0, hostIp: '127.0.0.1' }],
      mounts: [{ source: volume, target: '/www', readOnly: false }],
      cpus: 0.5,
      memoryBytes: 64 * 1024 * 1024,
    });
    const info = await rt.inspectContainer(id);
    assert.equal(info?.state, 'running');
    assert.equal(info?.name, `berth-test-${RUN_ID}-http`);
    assert.equal(info?.labels[LABEL], RUN_ID);
    assert.equal(info?.exitCode, null);
    assert.ok(info?.startedAt && !Number.isNaN(Date.parse(info.startedAt)));
    assert.equal(info?.finishedAt, null);
    const port = info?.ports['8080'];
    assert.ok(port && port > 0, `published port: ${JSON.stringify(info?.ports)}`);

    const body = await waitFor('httpd', async () => {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      return res.ok ? res.text() : undefined;
    });
    assert.equal(body, 'hello from berth\n');

    const raw = await rt.docker.getContainer(id).inspect();
    assert.equal(raw.HostConfig.NanoCpus, 500_000_000);
    assert.equal(raw.HostConfig.Memory, 64 * 1024 * 1024);
    assert.equal(raw.HostConfig.RestartPolicy?.Name, 'no');

    const listed = (await rt.listContainers(labels)).find((c) => c.id === id);
    assert.equal(listed?.state, 'running');
    assert.equal(listed?.name, `berth-test-${RUN_ID}-http`);
    assert.equal(listed?.ports['8080'], port);
    assert.equal(listed?.labels[LABEL], RUN_ID);

    const r = await rt.exec(id, ['sh', '-c', 'echo "$GREETING"; echo "[$EMPTY]"; echo oops >&2; exit 3']);
    assert.deepEqual(r, { exitCode: 3, stdout: 'from berth\n[]\n', stderr: 'oops\n' });
    assert.deepEqual(await rt.exec(id, ['sh', '-c', 'echo $EXTRA'], { env: ['EXTRA=given'] }), { exitCode: 0, stdout: 'given\n', stderr: '' });
    await assert.rejects(rt.exec(id, ['sleep', '5'], { timeoutMs: 200 }), isKind('RUNTIME', /timed out after 200 ms/));

    const usage = await rt.diskUsage();
    assert.equal(typeof usage.containers[id], 'number');
    assert.equal(typeof usage.volumes[volume], 'number');

    await rt.stopContainer(id, 1);
    await rt.stopContainer(id, 1);
    await rt.removeContainer(id);
  });

  it('caps the container disk where the storage driver can, and says so where it cannot', async () => {
    const first = await rt.createContainer(plan('disk1', { diskBytes: 256 * 1024 * 1024 }));
    const second = await rt.createContainer(plan('disk2', { diskBytes: 256 * 1024 * 1024 }));
    assert.equal(second.diskEnforced, first.diskEnforced);
    assert.equal(rt.diskQuota, first.diskEnforced);
    const raw = await rt.docker.getContainer(first.id).inspect();
    if (first.diskEnforced) assert.equal(raw.HostConfig.StorageOpt?.size, String(256 * 1024 * 1024));
    else assert.ok(!raw.HostConfig.StorageOpt?.size, 'the refused cap is left off');
    assert.equal((await rt.createContainer(plan('nodisk'))).diskEnforced, true);
  });

  it('reports start and die with the exit code through events, and reads logs', async () => {
    const ac = new AbortController();
    const events: RuntimeEvent[] = [];
    const name = `berth-test-${RUN_ID}-events`;
    rt.watchEvents(LABEL, (e) => {
      if (e.labels.name === name) events.push(e);
    }, ac.signal);
    try {
      // The watch connects asynchronously; a container started before it would be missed.
      await sleep(200);
      const id = await run('events', { command: ['sh', '-c', 'echo one; echo two >&2; echo three; sleep 0.3; exit 7'] });
      const die = await waitFor('die event', async () => events.find((e) => e.action === 'die'));
      assert.equal(die.containerId, id);
      assert.equal(die.exitCode, 7);
      assert.equal(die.labels[LABEL], RUN_ID);
      assert.ok(die.timeNano > 0);
      const actions = events.map((e) => e.action);
      assert.ok(actions.indexOf('create') < actions.indexOf('start') && actions.indexOf('start') < actions.indexOf('die'), actions.join(','));

      const info = await rt.inspectContainer(id);
      assert.equal(info?.state, 'exited');
      assert.equal(info?.exitCode, 7);
      assert.ok(info?.finishedAt && Date.parse(info.finishedAt) >= Date.parse(info.startedAt ?? ''));
      const listed = (await rt.listContainers({ [LABEL]: '' })).find((c) => c.id === id);
      assert.equal(listed?.exitCode, 7);

      const all = await collect(rt.logs(id, {}));
      assert.deepEqual(all.map((l) => [l.stream, l.text]).sort(), [['stderr', 'two'], ['stdout', 'one'], ['stdout', 'three']]);
      for (const l of all) assert.ok(!Number.isNaN(Date.parse(l.time)), l.time);
      const tail = await collect(rt.logs(id, { tail: 1 }));
      assert.equal(tail.length, 1);
      const later = await collect(rt.logs(id, { since: new Date(Date.now() + 60_000).toISOString() }));
      assert.deepEqual(later, []);

      await rt.removeContainer(id);
      await waitFor('destroy event', async () => events.find((e) => e.action === 'destroy'));
    } finally {
      ac.abort();
    }
  });

  it('follows logs until the container stops, or until aborted', async () => {
    const id = await run('follow', { command: ['sh', '-c', 'for i in 1 2 3; do echo line $i; sleep 0.2; done'] });
    const followed = await collect(rt.logs(id, { follow: true }));
    assert.deepEqual(followed.map((l) => l.text), ['line 1', 'line 2', 'line 3']);

    const forever = await run('forever', { command: ['sh', '-c', 'echo started; exec sleep 30'] });
    const ac = new AbortController();
    const seen: LogLine[] = [];
    const started = Date.now();
    for await (const l of rt.logs(forever, { follow: true }, ac.signal)) {
      seen.push(l);
      ac.abort();
    }
    assert.deepEqual(seen.map((l) => l.text), ['started']);
    assert.ok(Date.now() - started < 5_000);

    // Leaving the loop early closes the stream too.
    for await (const l of rt.logs(forever, { follow: true })) {
      assert.equal(l.text, 'started');
      break;
    }
    await rt.restartContainer(forever, 0);
    assert.equal((await rt.inspectContainer(forever))?.state, 'running');
    await rt.removeContainer(forever);
  });

  it('refuses a taken name with CONFLICT and an absent image with NOT_FOUND', async () => {
    await rt.createContainer(plan('dup'));
    await assert.rejects(rt.createContainer(plan('dup')), isKind('CONFLICT', /already in use/));
    await assert.rejects(rt.createContainer(plan('noimage', { image: `berth-test/absent-${RUN_ID}:1` })), isKind('NOT_FOUND', /pull it first/));
  });

  it('tells a path\'s type, mode, size and link target without running anything in the container', async () => {
    const id = await run('stat', { command: ['sleep', '3600'] });
    const dir = await rt.statPath(id, '/tmp');
    assert.equal(dir.mode, 0o041777, 'a directory with the sticky bit');
    const bin = await rt.statPath(id, '/bin/busybox');
    assert.equal(bin.mode & 0o170000, 0o100000);
    assert.ok(bin.size > 100_000);
    assert.ok(Math.abs(Date.now() - bin.mtimeMs) < 10 * 365 * 86_400_000);
    const link = await rt.statPath(id, '/bin/sh');
    assert.equal(link.mode & 0o170000, 0o120000);
    assert.equal(link.linkTarget, '/bin/busybox');
    await assert.rejects(rt.statPath(id, '/no/such/path'), isKind('NOT_FOUND'));
  });

  it('reads a running container\'s file on the node, its links resolved inside the container, never the host\'s or another container\'s', async () => {
    // Root on the node reads through /proc/<pid>/root; anyone else gets undefined (the archive API is used then).
    if (process.getuid?.() !== 0) return;
    const hostDir = await mkdtemp(join(tmpdir(), `berth-escape-${RUN_ID}-`));
    const volume = `berth-test-${RUN_ID}-files`;
    await rt.ensureVolume(volume, labels);
    try {
      await writeFile(join(hostDir, 'secret'), 'host secret\n');
      await writeFile(join(hostDir, 'host-only'), 'host only\n');
      const script = [
        `mkdir -p ${hostDir} /d/e && echo pod-file > ${hostDir}/secret`,
        'ln -s / /escape && ln -s ../../../../../../.. /d/e/up',
        `ln -s ${hostDir}/secret /final && ln -s ${hostDir}/host-only /host-only`,
        'ln -s / /data/out && echo in-volume > /data/file',
        // A device node only where the container may make one (Docker's default capabilities allow it).
        'mkfifo /fifo && { mknod /loopdev b 7 0 || true; }',
        'echo ready > /ready && exec sleep 3600',
      ].join(' && ');
      const id = await run('files', { command: ['sh', '-c', script], mounts: [{ source: volume, target: '/data', readOnly: false }] });
      const other = await run('files-other', { command: ['sh', '-c', `mkdir -p /other-${RUN_ID} && echo other > /other-${RUN_ID}/file && echo ready > /ready && exec sleep 3600`] });
      const read = async (cid: string, path: string): Promise<string> => {
        const f = await rt.openFile(cid, path);
        assert.ok(f, `${path} was read on the node`);
        const parts: Buffer[] = [];
        for await (const c of f.content) parts.push(c as Buffer);
        assert.equal(Buffer.concat(parts).length, f.size);
        return Buffer.concat(parts).toString();
      };
      await waitFor('the containers to be ready', async () => ((await read(id, '/ready').catch(() => '')) && (await read(other, '/ready').catch(() => '')) ? true : undefined));

      assert.equal(await read(id, `${hostDir}/secret`), 'pod-file\n');
      assert.equal(await read(id, `/escape${hostDir}/secret`), 'pod-file\n');
      assert.equal(await read(id, `/d/e/up${hostDir}/secret`), 'pod-file\n');
      assert.equal(await read(id, '/final'), 'pod-file\n');
      assert.equal(await read(id, `/data/out${hostDir}/secret`), 'pod-file\n');
      assert.equal(await read(id, '/data/file'), 'in-volume\n');
      await assert.rejects(rt.openFile(id, '/host-only'), isKind('NOT_FOUND'));
      await assert.rejects(rt.openFile(id, `/escape/proc/1/root${hostDir}/host-only`), isKind('NOT_FOUND'));
      await assert.rejects(rt.openFile(id, `/other-${RUN_ID}/file`), isKind('NOT_FOUND'));
      assert.equal(await read(other, `/other-${RUN_ID}/file`), 'other\n');
      await assert.rejects(rt.openFile(id, '/fifo'), isKind('VALIDATION'));
      if (await rt.statPath(id, '/loopdev').catch(() => undefined)) await assert.rejects(rt.openFile(id, '/loopdev'), isKind('VALIDATION'));
      await assert.rejects(rt.openFile(id, '/d'), isKind('VALIDATION'));
      // The kernel's own files are left to the archive API.
      assert.equal(await rt.openFile(id, '/proc/1/status'), undefined);

      // A stopped container has no process to read through: the archive API's turn.
      await rt.stopContainer(id, 0);
      assert.equal(await rt.openFile(id, '/ready'), undefined);
    } finally {
      for (const c of await rt.listContainers(labels)) if (c.name.endsWith('-files') || c.name.endsWith('-files-other')) await rt.removeContainer(c.id);
      await rt.removeVolume(volume);
      await rm(hostDir, { recursive: true, force: true });
    }
  });

  it("reads a container's figures from its cgroup as Docker's stats API gives them", async () => {
    // 64 MiB of memory limit; a file written, some CPU used, then quiet, so both reads see the same.
    const id = await run('stats', { command: ['sh', '-c', 'dd if=/dev/zero of=/tmp/f bs=1M count=8 2>/dev/null; i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done; sleep 30'], memoryBytes: 64 * 2 ** 20 });
    await sleep(1500);
    const pid = (await rt.docker.getContainer(id).inspect()).State.Pid;
    const direct = await cgroupStats(pid, id, totalmem());
    assert.ok(direct, 'the cgroup is readable here (root, the same pid namespace as the daemon)');
    const docker = statsFromDocker(await rt.docker.getContainer(id).stats({ stream: false, 'one-shot': true } as { stream: false }));
    assert.equal(direct.memoryLimitBytes, 64 * 2 ** 20);
    assert.equal(direct.memoryLimitBytes, docker.memoryLimitBytes);
    assert.ok(direct.cpuSeconds > 0);
    assert.ok(Math.abs(direct.cpuSeconds - docker.cpuSeconds) < 0.05, `cpu ${direct.cpuSeconds} against Docker's ${docker.cpuSeconds}`);
    assert.ok(direct.memoryWorkingSetBytes > 0);
    assert.ok(Math.abs(direct.memoryWorkingSetBytes - docker.memoryWorkingSetBytes) < 2 ** 20, `memory ${direct.memoryWorkingSetBytes} against Docker's ${docker.memoryWorkingSetBytes}`);
    assert.equal(direct.networkRxBytes, docker.networkRxBytes);
    assert.equal(direct.networkTxBytes, docker.networkTxBytes);
    assert.equal(direct.diskWriteBytes, docker.diskWriteBytes);
    assert.equal(await cgroupStats(pid, 'f'.repeat(64), totalmem()), undefined, 'a pid whose cgroup names another container is not read');
    await rt.removeContainer(id);
    assert.equal(await rt.containerStats(id), undefined, 'gone: no figures');
  });

  it('removes containers idempotently', async () => {
    const id = await run('remove');
    await rt.removeContainer(id);
    await rt.removeContainer(id);
    assert.equal(await rt.inspectContainer(id), undefined);
    await assert.rejects(rt.startContainer(id), isKind('NOT_FOUND'));
  });

  it('creates, lists and removes volumes', async () => {
    const name = `berth-test-${RUN_ID}-vol`;
    await rt.ensureVolume(name, { ...labels, 'berth.pod': 'p1' });
    await rt.ensureVolume(name, { ...labels, 'berth.pod': 'p1' });
    const listed = await rt.listVolumes({ [LABEL]: RUN_ID, 'berth.pod': '' });
    assert.deepEqual(listed.filter((v) => v.name === name).map((v) => v.labels['berth.pod']), ['p1']);
    assert.deepEqual(await rt.listVolumes({ [LABEL]: RUN_ID, 'berth.pod': 'other' }), []);
    await rt.removeVolume(name);
    await rt.removeVolume(name);
    assert.ok(!(await rt.listVolumes(labels)).some((v) => v.name === name));
  });

  it('refuses to remove a volume a container holds', async () => {
    const name = `berth-test-${RUN_ID}-held`;
    await rt.ensureVolume(name, labels);
    await rt.createContainer(plan('holder', { mounts: [{ source: name, target: '/data', readOnly: true }] }));
    await assert.rejects(rt.removeVolume(name), isKind('RUNTIME', /in use/));
  });

  it('fails a pull from an unreachable registry with a RUNTIME error', async () => {
    const progress: unknown[] = [];
    await assert.rejects(rt.pullImage('127.0.0.1:1/nope:latest', null, (p) => progress.push(p)), isKind('RUNTIME', /image 127\.0\.0\.1:1\/nope:latest is not on this node and its registry 127\.0\.0\.1:1 cannot be reached \(.*connection refused\)/));
  });
});
