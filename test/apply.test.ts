/**
 * `berth apply -f` against the server's Marathon API, and `berth pod get` for pods with several
 * containers and instances, run as a user runs them: the built CLI as a child process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

const BIN = fileURLToPath(new URL('../../bin/berth.js', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface PodView {
  id: string;
  status: string;
  marathonId?: string | null;
  instances: { id: string; state: string; endpoints: Record<string, number>; containers: { name: string; state: string; healthy?: boolean | null }[] }[];
}

function run(args: string[], env: Record<string, string>, input = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 180_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
    });
    child.stdin?.end(input);
  });
}

/** A Marathon pod: one busybox container sleeping, `instances` of it. */
const marathonPod = (id: string, instances: number): Record<string, unknown> => ({
  id,
  scaling: { kind: 'fixed', instances },
  containers: [{ name: 'main', image: { kind: 'DOCKER', id: TEST_IMAGE }, exec: { command: { shell: 'sleep 3600' } }, resources: { cpus: 0.1, mem: 32 } }],
  networks: [{ mode: 'host' }],
});

describe('berth apply and berth pod get', () => {
  let t: TestServer;
  let home: string;
  before(async () => {
    await ensureTestImage();
    home = await mkdtemp(join(tmpdir(), 'berth-apply-'));
    // A directory pods may mount as a host volume.
    t = await startTestServer({ allowHostPaths: [join(home, 'shared')] });
  });
  after(async () => {
    for (const id of ['web', 'volumes', 'missing']) await t?.api('DELETE', `/marathon/v2/pods/apply/${id}`).catch(() => undefined);
    await t?.close();
    if (home) await rm(home, { recursive: true, force: true });
  });

  const berth = (args: string[], input = ''): Promise<Run> => run(args, { BERTH_URL: t.url, BERTH_API_KEY: t.key, XDG_CONFIG_HOME: join(home, 'none') }, input);
  const ok = async (args: string[], input = ''): Promise<Run> => {
    const r = await berth(args, input);
    assert.equal(r.code, 0, `berth ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
    return r;
  };

  it('pod get shows each instance with its containers, their health, and its endpoints', async () => {
    const created = await t.api<PodView>('POST', '/api/v1/pods', {
      name: 'two-by-two',
      volumeGb: 0,
      instances: 2,
      containers: [
        {
          name: 'web',
          image: TEST_IMAGE,
          command: ['httpd', '-f', '-p', '8080', '-h', '/tmp'],
          endpoints: [{ name: 'http', containerPort: 8080, hostPort: 0, protocols: ['http'] }],
          healthCheck: { kind: 'exec', argv: ['true'], intervalSeconds: 2, timeoutSeconds: 1, gracePeriodSeconds: 0, delaySeconds: 0 },
        },
        { name: 'sidecar', image: TEST_IMAGE, command: ['sleep', '3600'] },
      ],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    const pod = await waitFor(
      `pod ${id} running, healthy, with endpoints`,
      async () => {
        const p = (await t.api<PodView>('GET', `/api/v1/pods/${id}`)).body;
        const ready = p.status === 'RUNNING' && p.instances.length === 2 && p.instances.every((i) => i.endpoints.http && i.containers.find((c) => c.name === 'web')?.healthy === true);
        return ready ? p : undefined;
      },
      90_000,
    );

    const { stdout } = await ok(['pod', 'get', id]);
    assert.match(stdout, /^Containers:$/m, stdout);
    for (const inst of pod.instances) {
      assert.match(stdout, new RegExp(`^  ${inst.id} on \\S+: running$`, 'm'), stdout);
      assert.match(stdout, new RegExp(`^    Endpoints: http -> 127\\.0\\.0\\.1:${inst.endpoints.http}$`, 'm'), stdout);
    }
    assert.match(stdout, /^ {4}NAME\s+STATE\s+HEALTH\s+RESTARTS$/m);
    assert.equal(stdout.match(/^ {4}web\s+running\s+healthy\s+0$/gm)?.length, 2, stdout);
    assert.equal(stdout.match(/^ {4}sidecar\s+running\s+-\s+0$/gm)?.length, 2, stdout);
    await t.api('POST', `/api/v1/pods/${id}/terminate`);
  });

  it("pod get shows a Marathon pod's volumes, and its endpoints with their host ports", async () => {
    await mkdir(join(home, 'shared'), { recursive: true });
    assert.equal((await t.api('PUT', '/api/v1/secrets/apply/password', { value: 'hunter2' })).status, 201);
    const file = join(home, 'volumes.json');
    await writeFile(
      file,
      JSON.stringify({
        id: '/apply/volumes',
        containers: [
          {
            name: 'web',
            image: { kind: 'DOCKER', id: TEST_IMAGE },
            exec: { command: { shell: 'httpd -f -p 8080 -h /tmp' } },
            resources: { cpus: 0.1, mem: 32 },
            endpoints: [
              { name: 'site', containerPort: 8080, hostPort: 0, protocol: ['http'] },
              { name: 'admin', containerPort: 9000, hostPort: 0, protocol: ['tcp'] },
            ],
            volumeMounts: [
              { name: 'scratch', mountPath: '/scratch' },
              { name: 'data', mountPath: '/data' },
              { name: 'shared', mountPath: '/shared', readOnly: true },
              { name: 'password', mountPath: '/run/password' },
            ],
          },
          { name: 'sidecar', image: { kind: 'DOCKER', id: TEST_IMAGE }, exec: { command: { shell: 'sleep 3600' } }, resources: { cpus: 0.1, mem: 32 }, volumeMounts: [{ name: 'scratch', mountPath: '/work' }] },
        ],
        volumes: [{ name: 'scratch' }, { name: 'data', persistent: { size: 64 } }, { name: 'shared', host: join(home, 'shared') }, { name: 'password', secret: 'pw' }],
        secrets: { pw: { source: 'apply/password' } },
        networks: [{ mode: 'container/bridge' }],
      }),
    );
    await ok(['apply', '-f', file, '--wait', '--timeout', '120']);
    const { pods } = (await t.api<{ pods: (PodView & { connection: { http: { url: string }[] } })[] }>('GET', '/api/v1/pods?view=full')).body;
    const pod = pods.find((p) => p.marathonId === '/apply/volumes');
    assert.ok(pod, 'the Marathon pod is a native pod too');
    const endpoints = pod.instances[0]!.endpoints;
    assert.ok(endpoints.site && endpoints.admin, JSON.stringify(pod.instances));

    const { stdout } = await ok(['pod', 'get', pod.id]);
    assert.match(
      stdout,
      new RegExp(`^Volumes:\\s+scratch \\(ephemeral\\) at /scratch in web, /work in sidecar; data \\(persistent, 64 MB\\) at /data in web; shared \\(host ${join(home, 'shared')}\\) at /shared \\(read-only\\) in web; password \\(secret apply/password\\) at /run/password in web$`, 'm'),
      stdout,
    );
    assert.match(stdout, new RegExp(`^Ports:\\s+8080/http \\(endpoint site\\) -> 127\\.0\\.0\\.1:${endpoints.site}, 9000/tcp \\(endpoint admin\\) -> 127\\.0\\.0\\.1:${endpoints.admin}$`, 'm'), stdout);
    // The proxy links are the view's: as many as it gives, each shown.
    for (const link of pod.connection.http) assert.ok(stdout.includes(link.url), `${link.url} is shown:\n${stdout}`);
    await t.api('DELETE', '/marathon/v2/pods/apply/volumes');
  });

  it('apply --wait: a pod that cannot start says why when the wait ends', async () => {
    const file = join(home, 'missing.json');
    // Nothing listens on port 1: the pull fails at once, and again at each retry.
    await writeFile(file, JSON.stringify({ ...marathonPod('/apply/missing', 1), containers: [{ name: 'main', image: { kind: 'DOCKER', id: '127.0.0.1:1/berth-test/missing:1' }, resources: { cpus: 0.1, mem: 32 } }] }));
    const r = await berth(['apply', '-f', file, '--wait', '--timeout', '10']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^error: pod \/apply\/missing is not STABLE after 10s \(it is DEGRADED: image 127\.0\.0\.1:1\/berth-test\/missing:1 .*cannot be reached.*\); it keeps deploying$/m, r.stderr);
    await t.api('DELETE', '/marathon/v2/pods/apply/missing');
  });

  it('apply: refuses a bad definition with each path and its errors', async () => {
    const file = join(home, 'bad.json');
    await writeFile(file, JSON.stringify({ id: '/apply/bad', containers: [] }));
    const r = await berth(['apply', '-f', file]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^error: .+$/m);
    assert.match(r.stderr, /^ {2}\/\S*: .+$/m, `each problem on its own line:\n${r.stderr}`);

    await writeFile(file, JSON.stringify({ containers: [] }));
    const noId = await berth(['apply', '-f', file]);
    assert.equal(noId.code, 1);
    assert.match(noId.stderr, /the pod definition needs an "id"/);
  });

  it('apply: creates, then updates from stdin and waits until STABLE', async () => {
    const file = join(home, 'pod.json');
    await writeFile(file, JSON.stringify(marathonPod('/apply/web', 1)));
    const created = await ok(['apply', '-f', file]);
    assert.match(created.stdout, /^pod \/apply\/web created \(deployment \S+\)\n$/);

    // The creation's deployment may still run: without --force Marathon answers 409, which says what to do.
    const refused = await berth(['apply', '-f', file]);
    if (refused.code !== 0) assert.match(refused.stderr, /^error: pod \/apply\/web: .*deployment.*\nwait for it to finish, or pass --force to replace it\n$/s);
    const updated = await ok(['apply', '-f', '-', '--force', '--wait', '--timeout', '120'], JSON.stringify(marathonPod('/apply/web', 2)));
    assert.match(updated.stdout, /^pod \/apply\/web updated \(deployment \S+\)\nSTABLE: 2 of 2 instances stable \(.+\)\n$/);
    assert.match(updated.stderr, /waiting for it to be STABLE/);
    assert.match(updated.stderr, /^STABLE: 2 of 2 instances stable/m, 'progress names the instances');

    const again = JSON.parse((await ok(['-o', 'json', 'apply', '-f', '-'], JSON.stringify(marathonPod('/apply/web', 2)))).stdout) as { id: string; created: boolean; deploymentId: string | null; pod: { id: string } };
    assert.equal(again.id, '/apply/web');
    assert.equal(again.created, false);
    assert.equal(again.pod.id, '/apply/web');

    // The same pod through the native API and `berth pod get`: one block per instance.
    const { pods } = (await t.api<{ pods: PodView[] }>('GET', '/api/v1/pods?view=full')).body;
    const native = pods.find((p) => p.marathonId === '/apply/web');
    assert.ok(native, 'the Marathon pod is a native pod too');
    const shown = await ok(['pod', 'get', native.id]);
    assert.match(shown.stdout, /^Containers:$/m);
    assert.equal(shown.stdout.match(/^ {4}main\s+running\s/gm)?.length, 2, shown.stdout);
  });
});
