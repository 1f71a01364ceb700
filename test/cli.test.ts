/**
 * The berth CLI as a user runs it: a real server in this process, the real `bin/berth.js` as a child
 * process, assertions on its stdout, stderr and exit code.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PassThrough, type Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { readSse, type BerthClient } from '../src/cli/client.js';
import { newGenerationSettled, PodProgress, watchPod, type PodView } from '../src/cli/commands/pod-watch.js';
import { Output, table, UserError } from '../src/cli/output.js';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

const BIN = fileURLToPath(new URL('../../bin/berth.js', import.meta.url));

/** Runs the CLI with `env` over this process's environment. */
function run(args: string[], env: Record<string, string>, input = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
    });
    child.stdin?.end(input);
  });
}

/** A port nothing listens on: one the OS just handed out and took back. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface PodJson {
  id: string;
  status: string;
  portMappings: Record<string, number>;
  exitCode: number | null;
}

/** `berth server` in a child process on a random port, without an agent, its config under `dir`, its stderr collected. */
function serverChild(dir: string): { child: ChildProcessByStdio<null, null, Readable>; exited: Promise<number | null>; readonly stderr: string } {
  const env = { ...process.env, XDG_CONFIG_HOME: dir, BERTH_URL: '', BERTH_API_KEY: '' };
  const child = spawn(process.execPath, [BIN, 'server', '--data-dir', join(dir, 'data'), '--port', '0', '--host', '127.0.0.1', '--no-agent', '--log-level', 'silent'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    exited,
    get stderr() {
      return stderr;
    },
  };
}

describe('the SSE reader and the table printer', () => {
  it('parses events split across chunks, CRLF, multi-line data, comments and ids', async () => {
    const chunks = [': berth\n\n', 'id: 7\nevent: po', 'd\ndata: {"a":1}\r', '\n\r\n', 'data: one\ndata: two\n\n', 'event: end\ndata: {}\n\n'];
    const body = (async function* () {
      for (const c of chunks) yield new TextEncoder().encode(c);
    })();
    const events = [];
    for await (const e of readSse(body)) events.push(e);
    assert.deepEqual(events, [
      { event: 'pod', data: '{"a":1}', id: '7' },
      { event: 'message', data: 'one\ntwo', id: '7' },
      { event: 'end', data: '{}', id: '7' },
    ]);
  });

  it('aligns columns and leaves the last one unpadded', () => {
    const text = table(
      [
        { a: 'x', b: 'long value', c: 'end' },
        { a: 'longer', b: 'v', c: 'e' },
      ],
      [
        { header: 'A', value: (r) => r.a },
        { header: 'B', value: (r) => r.b },
        { header: 'C', value: (r) => r.c },
      ],
    );
    assert.equal(text, 'A       B           C\nx       long value  end\nlonger  v           e\n');
  });
});

describe('waiting for a pod', () => {
  const view = (status: string, extra: Partial<PodView> = {}): PodView => ({ id: 'p1', status, statusMessage: null, pull: null, instances: [], ...extra }) as unknown as PodView;
  const capture = (): { out: Output; text: () => string } => {
    const stderr = new PassThrough();
    const chunks: string[] = [];
    stderr.on('data', (c: Buffer) => chunks.push(c.toString()));
    return { out: new Output('table', { stdout: new PassThrough(), stderr }), text: () => chunks.join('') };
  };

  it('shows each status change once and pull progress, without a terminal', () => {
    const { out, text } = capture();
    const progress = new PodProgress(out);
    progress.update(view('PROVISIONING'));
    progress.update(view('PROVISIONING', { statusMessage: 'pulling img', pull: { image: 'img', current: 0, total: 2_000_000 } }));
    progress.update(view('PROVISIONING', { statusMessage: 'pulling img 50%', pull: { image: 'img', current: 1_000_000, total: 2_000_000 } }));
    progress.update(view('STARTING', { statusMessage: 'creating containers' }));
    progress.update(view('RUNNING'));
    progress.update(view('RUNNING'));
    progress.finish();
    assert.equal(text(), 'PROVISIONING\npulling img: 0% (0 B of 2.0 MB)\nSTARTING: creating containers\nRUNNING\n');
  });

  it('polls when the event stream is not there', async () => {
    const seen = ['PROVISIONING', 'STARTING', 'RUNNING'];
    let gets = 0;
    const client = {
      stream: async () => {
        throw new UserError('no events here');
      },
      get: async () => view(seen[Math.min(gets++, seen.length - 1)]!),
    } as unknown as BerthClient;
    const statuses: string[] = [];
    const settled = await watchPod(client, view('PROVISIONING'), { done: (p) => p.status === 'RUNNING', onUpdate: (p) => statuses.push(p.status) });
    assert.equal(settled.status, 'RUNNING');
    assert.deepEqual(statuses, ['PROVISIONING', 'PROVISIONING', 'STARTING', 'RUNNING']);
  });

  it('leaves out an event older than the pod it already read (it showed statuses twice)', async () => {
    const events = [
      { event: 'pod', data: JSON.stringify(view('PROVISIONING', { revision: 2 })) },
      { event: 'pod', data: JSON.stringify(view('STARTING', { revision: 3 })) },
      { event: 'pod', data: JSON.stringify(view('RUNNING', { revision: 4 })) },
    ];
    const client = {
      stream: async () => (async function* () { yield* events; })(),
      get: async () => view('STARTING', { revision: 3 }),
    } as unknown as BerthClient;
    const statuses: string[] = [];
    await watchPod(client, view('PROVISIONING', { revision: 1 }), { done: (p) => p.status === 'RUNNING', onUpdate: (p) => statuses.push(p.status) });
    assert.deepEqual(statuses, ['PROVISIONING', 'STARTING', 'STARTING', 'RUNNING']);
  });

  it('after a reset or an update, waits for the instances to run the new generation, not for the status alone', () => {
    const instance = (extra: Record<string, unknown>) => ({ goal: 'running', nodeId: 'n1', state: 'running', specVersion: 2, resetGeneration: 1, restartGeneration: 0, observedSpecVersion: 2, observedResetGeneration: 1, observedRestartGeneration: 0, ...extra });
    const at = (status: string, ...instances: Record<string, unknown>[]) => view(status, { instances } as unknown as Partial<PodView>);
    let done = newGenerationSettled();
    assert.equal(done(at('RUNNING', instance({ observedResetGeneration: 0 }))), false, 'the agent has not seen the reset');
    assert.equal(done(at('RUNNING', instance({ state: 'creating' }))), false, 'the status is not recomputed yet');
    assert.equal(done(at('STARTING', instance({ state: 'creating' }))), false);
    assert.equal(done(at('RUNNING', instance({}))), true);
    done = newGenerationSettled();
    assert.equal(done(at('ERROR', instance({ state: 'failed', observedSpecVersion: null, specVersion: 3 }))), false, 'a failure from before the update');
    assert.equal(done(at('PROVISIONING', instance({ state: 'pulling', observedSpecVersion: null, specVersion: 3 }))), false);
    assert.equal(done(at('ERROR', instance({ state: 'failed', observedSpecVersion: null, specVersion: 3 }))), true, 'the new version failed to launch');
    assert.equal(newGenerationSettled()(at('EXITED', instance({ goal: 'stopped', state: 'stopped', observedSpecVersion: null, specVersion: 3 }))), true, 'a stopped pod has nothing to wait for');
  });

  it('gives up after --timeout with a message that the pod keeps going', async () => {
    const client = { stream: async () => new Promise(() => undefined), get: async () => view('PROVISIONING') } as unknown as BerthClient;
    await assert.rejects(watchPod(client, view('PROVISIONING'), { done: () => false, timeoutMs: 300 }), /did not settle within 0.3 s; it keeps going/);
  });
});

describe('berth server', () => {
  it('says plainly that Docker is missing, and exits 1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-cli-server-'));
    try {
      const r = await run(['server', '--data-dir', join(dir, 'data'), '--port', '0'], { DOCKER_HOST: 'unix:///nonexistent/docker.sock', XDG_CONFIG_HOME: dir });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^error: Cannot reach the Docker daemon at \/nonexistent\/docker\.sock: .*\n$/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('on first start writes the admin key, saves a CLI config for itself, and stops on SIGTERM', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-cli-server-'));
    const server = serverChild(dir);
    const { child, exited } = server;
    try {
      await waitFor('the config to be saved', async () => (server.stderr.includes('Saved') ? true : undefined), 30_000);
      const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(server.stderr)?.[1];
      assert.ok(url, server.stderr);
      assert.match(server.stderr, new RegExp(`admin API key was written to ${join(dir, 'data', 'admin.key')}`));
      assert.match(server.stderr, /export BERTH_API_KEY=\$\(cat .*admin\.key\)/);
      const config = JSON.parse(await readFile(join(dir, 'berth', 'config.json'), 'utf8')) as { url: string; apiKey: string };
      assert.equal(config.url, url);
      assert.equal(config.apiKey, (await readFile(join(dir, 'data', 'admin.key'), 'utf8')).trim());
      const who = await run(['whoami'], { XDG_CONFIG_HOME: dir, BERTH_URL: '', BERTH_API_KEY: '' });
      assert.match(who.stdout, /^admin \(admin\) at /, who.stderr);
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
      assert.match(server.stderr, /SIGTERM: shutting down[\s\S]*Berth stopped\n$/);
      await rm(dir, { recursive: true, force: true });
    }
  });
  it('names the port that is taken, whose it is, and the flag and variable that move it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-cli-server-'));
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    const server = (args: string[], env: Record<string, string> = {}) =>
      run(['server', '--data-dir', join(dir, 'data'), '--port', '0', '--host', '127.0.0.1', '--no-agent', '--log-level', 'silent', ...args], { XDG_CONFIG_HOME: dir, ...env });
    try {
      const ssh = await server(['--ssh-port', String(port)]);
      assert.equal(ssh.code, 1, ssh.stderr);
      assert.equal(ssh.stderr, `error: 127.0.0.1:${port}, the port of the SSH gateway, is already in use: is another Berth running? Pick another with --ssh-port (or BERTH_SSH_PORT), or run without the SSH gateway: --no-ssh\n`);
      const proxy = await server([], { BERTH_PROXY_PORT: String(port) });
      assert.equal(proxy.code, 1, proxy.stderr);
      assert.equal(proxy.stderr, `error: 127.0.0.1:${port}, the port of the HTTP proxy, is already in use: is another Berth running? Pick another with --proxy-port (or BERTH_PROXY_PORT), or run without the HTTP proxy: --no-proxy\n`);
      const api = await run(['server', '--data-dir', join(dir, 'data'), '--port', String(port), '--host', '127.0.0.1', '--no-agent', '--no-proxy', '--no-ssh', '--log-level', 'silent'], { XDG_CONFIG_HOME: dir });
      assert.equal(api.code, 1, api.stderr);
      assert.equal(api.stderr, `error: 127.0.0.1:${port}, the port of the API, is already in use: is another Berth running? Pick another with --port (or BERTH_PORT)\n`);
      const twice = await server(['--ssh-port', '7781', '--proxy-port', '7781']);
      assert.deepEqual(twice, { code: 1, stdout: '', stderr: 'error: --proxy-port and --ssh-port are both 7781: the HTTP proxy and the SSH gateway each need a port of their own\n' });
    } finally {
      await new Promise((resolve) => taken.close(resolve));
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('leaves a CLI config for another server as it is, and says how to switch it to this one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-cli-server-'));
    const configFile = join(dir, 'berth', 'config.json');
    const other = `${JSON.stringify({ url: 'http://gpu-box:7700', apiKey: 'berth_elsewhere' }, null, 2)}\n`;
    await mkdir(join(dir, 'berth'));
    await writeFile(configFile, other);
    const server = serverChild(dir);
    const { child, exited } = server;
    try {
      await waitFor('the note on the CLI config', async () => (/To use this server with berth, run:\n.*\n/.test(server.stderr) ? true : undefined), 30_000);
      const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(server.stderr)?.[1];
      assert.ok(url, server.stderr);
      const keyFile = join(dir, 'data', 'admin.key');
      assert.ok(
        server.stderr.includes(`The berth CLI config ${configFile} is for another server (http://gpu-box:7700); it was left as it is. To use this server with berth, run:\n  berth login --url ${url} --api-key "$(cat ${keyFile})"\n`),
        server.stderr,
      );
      assert.doesNotMatch(server.stderr, /^Saved /m);
      assert.equal(await readFile(configFile, 'utf8'), other);
      // The command it gives works as written.
      const login = await run(['login', '--url', url, '--api-key', (await readFile(keyFile, 'utf8')).trim()], { XDG_CONFIG_HOME: dir, BERTH_URL: '', BERTH_API_KEY: '' });
      assert.equal(login.code, 0, login.stderr);
      assert.equal((JSON.parse(await readFile(configFile, 'utf8')) as { url: string }).url, url);
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('berth CLI against a real server', { concurrency: true }, () => {
  let t: TestServer;
  let home: string;
  before(async () => {
    await ensureTestImage();
    t = await startTestServer();
    home = await mkdtemp(join(tmpdir(), 'berth-cli-'));
  });
  after(async () => {
    await t?.close();
    if (home) await rm(home, { recursive: true, force: true });
  });

  /** Runs `berth args...` with the test server and key in the environment (unless `env` says otherwise; '' unsets). */
  const berth = (args: string[], opts: { env?: Record<string, string>; input?: string; configHome?: string } = {}): Promise<Run> =>
    run(args, { BERTH_URL: t.url, BERTH_API_KEY: t.key, XDG_CONFIG_HOME: opts.configHome ?? join(home, 'none'), ...opts.env }, opts.input);
  const ok = async (args: string[], opts?: Parameters<typeof berth>[1]): Promise<string> => {
    const r = await berth(args, opts);
    assert.equal(r.code, 0, `berth ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
    return r.stdout;
  };
  const json = async <T>(args: string[], opts?: Parameters<typeof berth>[1]): Promise<T> => JSON.parse(await ok(['-o', 'json', ...args], opts)) as T;

  it('creates a pod and waits for RUNNING, lists it, execs in it, stops it twice, removes it', async () => {
    const created = await berth(['pod', 'create', '--name', 'cli-web', '--image', TEST_IMAGE, '--ports', '8080/http', '--volume-gb', '0', '--', 'httpd', '-f', '-p', '8080']);
    assert.equal(created.code, 0, created.stderr);
    const id = /^ID:\s+([0-9a-z]{14})$/m.exec(created.stdout)?.[1];
    assert.ok(id, `the pod's id is shown:\n${created.stdout}`);
    assert.match(created.stdout, /^Status:\s+RUNNING$/m);
    assert.match(created.stdout, /^Ports:\s+8080\/http -> 127\.0\.0\.1:\d+$/m);
    assert.match(created.stderr, /created; waiting/);
    assert.match(created.stderr, /^RUNNING$/m, 'progress names the statuses');

    const listed = await ok(['pod', 'list']);
    const row = listed.split('\n').find((l) => l.startsWith(id));
    assert.ok(row, `pod list shows ${id}:\n${listed}`);
    assert.match(row, /cli-web\s+RUNNING\s+berth-test\/busybox:1\s+0\s+8080->127\.0\.0\.1:\d+\s+\d+s$/);
    assert.match(listed, /^ID\s+NAME\s+STATUS\s+IMAGE\s+GPUS\s+PORTS\s+AGE$/m);

    const asJson = await json<{ pods: PodJson[] }>(['pod', 'list']);
    const pod = asJson.pods.find((p) => p.id === id);
    assert.equal(pod?.status, 'RUNNING');
    assert.ok(pod.portMappings['8080']);
    assert.equal((await json<PodJson>(['pod', 'get', id])).id, id);

    const hello = await berth(['pod', 'exec', id, '--', 'sh', '-c', 'echo to-out; echo to-err >&2']);
    assert.deepEqual(hello, { code: 0, stdout: 'to-out\n', stderr: 'to-err\n' });
    const failing = await berth(['pod', 'exec', id, '--', 'sh', '-c', 'exit 3']);
    assert.equal(failing.code, 3, "exec exits with the command's code");
    // httpd serves nothing, so wget exits 1 on its 404: the answer, and the code, come through.
    const page = await berth(['pod', 'exec', id, '--', 'wget', '-qO-', 'http://127.0.0.1:8080/']);
    assert.equal(page.code, 1);
    assert.match(page.stderr, /404 Not Found/);

    const stopped = await berth(['pod', 'stop', id]);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.equal(stopped.stdout, `pod ${id} is EXITED\n`);
    const again = await berth(['pod', 'stop', id]);
    assert.equal(again.code, 1);
    assert.equal(again.stdout, '');
    assert.equal(again.stderr, `error: cannot stop pod ${id} while it is EXITED; allowed: start, reset, terminate\nallowed actions: start, reset, terminate\n`);

    const removed = await berth(['pod', 'rm', id]);
    assert.deepEqual(removed, { code: 0, stdout: `pod ${id} terminated\n`, stderr: '' });
    assert.doesNotMatch(await ok(['pod', 'list']), new RegExp(id));
    assert.match(await ok(['pod', 'list', '--all']), new RegExp(`^${id}\\s+cli-web\\s+TERMINATED`, 'm'));
  });

  it('reset and update wait for the new containers: an exec right after each one runs', async () => {
    const { id } = await json<PodJson>(['pod', 'create', '--name', 'cli-gen', '--image', TEST_IMAGE, '--volume-gb', '0', '--env', 'MODE=one', '--', 'sleep', '3600']);
    try {
      const reset = await berth(['pod', 'reset', id]);
      assert.equal(reset.code, 0, reset.stderr);
      assert.equal(reset.stdout, `pod ${id} is RUNNING\n`);
      const afterReset = await berth(['pod', 'exec', id, '--', 'sh', '-c', 'echo $MODE']);
      assert.deepEqual(afterReset, { code: 0, stdout: 'one\n', stderr: '' });

      const updated = await berth(['pod', 'update', id, '--env', 'MODE=two']);
      assert.equal(updated.code, 0, updated.stderr);
      assert.equal(updated.stdout, `pod ${id} is RUNNING at spec version 2\n`);
      const afterUpdate = await berth(['pod', 'exec', id, '--', 'sh', '-c', 'echo $MODE']);
      assert.deepEqual(afterUpdate, { code: 0, stdout: 'two\n', stderr: '' });
    } finally {
      await ok(['pod', 'rm', id]);
    }
  });

  it('start shows each status once', async () => {
    const { id } = await json<PodJson>(['pod', 'create', '--name', 'cli-start', '--image', TEST_IMAGE, '--volume-gb', '0', '--', 'sleep', '3600']);
    try {
      await ok(['pod', 'stop', id]);
      const started = await berth(['pod', 'start', id]);
      assert.equal(started.code, 0, started.stderr);
      assert.equal(started.stdout, `pod ${id} is RUNNING\n`);
      const lines = started.stderr.split('\n').filter(Boolean);
      assert.deepEqual(lines, [...new Set(lines)], `no line twice:\n${started.stderr}`);
      assert.equal(lines.filter((l) => l.startsWith('RUNNING')).length, 1, started.stderr);
    } finally {
      await ok(['pod', 'rm', id]);
    }
  });

  it('prints logs: stdout to stdout, stderr to stderr, with timestamps or as JSON lines', async () => {
    const created = await json<PodJson>(['pod', 'create', '--image', TEST_IMAGE, '--restart', 'never', '--volume-gb', '0', '--', 'sh', '-c', 'echo line-one; echo line-two >&2; echo line-three']);
    assert.ok(['RUNNING', 'EXITED'].includes(created.status), 'create waits until the pod has started');
    const { id } = created;
    try {
      await waitFor('the pod to exit', async () => ((await t.api<PodJson>('GET', `/api/v1/pods/${id}`)).body.status === 'EXITED' ? true : undefined));
      const logs = await berth(['pod', 'logs', id]);
      assert.deepEqual(logs, { code: 0, stdout: 'line-one\nline-three\n', stderr: 'line-two\n' });
      // Docker keeps stdout's and stderr's order each, not the order between them.
      const stamped = await ok(['pod', 'logs', id, '--timestamps']);
      assert.match(stamped, /^\d{4}-\d\d-\d\dT\S+Z line-one\n\d{4}-\d\d-\d\dT\S+Z line-three\n$/);
      const tail = await berth(['pod', 'logs', id, '--tail', '1']);
      assert.equal((tail.stdout + tail.stderr).split('\n').filter(Boolean).length, 1, '--tail 1 prints one line');
      const lines = (await ok(['pod', 'logs', id, '-o', 'json'])).trim().split('\n').map((l) => JSON.parse(l) as { stream: string; time: string; text: string });
      assert.deepEqual(lines.filter((l) => l.stream === 'stdout').map((l) => l.text), ['line-one', 'line-three']);
      assert.deepEqual(lines.filter((l) => l.stream === 'stderr').map((l) => l.text), ['line-two']);
      assert.ok(lines.every((l) => !Number.isNaN(Date.parse(l.time))));
      const versions = await ok(['pod', 'versions', id]);
      assert.match(versions, /^1\s+berth-test\/busybox:1\s+sh -c echo line-one/m);
    } finally {
      await ok(['pod', 'rm', id]);
    }
  });

  it('shows every problem of a bad request with its path, and creates nothing', async () => {
    const bad = await berth(['pod', 'create', '--image', TEST_IMAGE, '--ports', 'x/tcp,99999/http', '--gpu-count', '-1']);
    assert.equal(bad.code, 1);
    assert.equal(bad.stdout, '');
    assert.match(bad.stderr, /^error: Invalid request$/m);
    assert.match(bad.stderr, /^ {2}\/ports\(0\): "x\/tcp" is not a port/m);
    assert.match(bad.stderr, /^ {2}\/ports\(1\): port 99999 is out of range/m);
    assert.match(bad.stderr, /^ {2}\/gpuCount: /m);
    assert.doesNotMatch(bad.stderr, /at .*\.js:\d+/, 'no stack');

    const env = await berth(['pod', 'create', '--image', TEST_IMAGE, '--env', 'NOVALUE']);
    assert.deepEqual(env, { code: 1, stdout: '', stderr: 'error: --env NOVALUE: expected KEY=VALUE\n' });
    const noImage = await berth(['pod', 'create']);
    assert.equal(noImage.code, 1);
    assert.match(noImage.stderr, /--image is required/);
    const unknown = await berth(['pod', 'create', '--imag', 'x']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown option '--imag'/);
    const missing = await berth(['pod', 'get', 'nosuchpod0000']);
    assert.deepEqual(missing, { code: 1, stdout: '', stderr: 'error: pod nosuchpod0000 not found\n' });
  });

  it("says why it cannot talk to the server: a wrong key in the server's words, no key, no server", async () => {
    const wrong = await berth(['pod', 'list'], { env: { BERTH_API_KEY: 'berth_wrong' } });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^error: the API key is not valid\n/);
    assert.match(wrong.stderr, /came from BERTH_API_KEY/);
    const flag = await berth(['--api-key', 'berth_wrong', 'pod', 'list']);
    assert.match(flag.stderr, /came from --api-key/);

    const none = await berth(['pod', 'list'], { env: { BERTH_API_KEY: '' } });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /^error: no API key for http:\/\/127\.0\.0\.1:\d+\n/);

    const port = await closedPort();
    const down = await berth(['pod', 'list', '--url', `http://127.0.0.1:${port}`]);
    assert.equal(down.code, 1);
    assert.match(down.stderr, new RegExp(`^error: cannot reach Berth at http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  });

  it('logs in: saves URL and key (0600) in $XDG_CONFIG_HOME/berth/config.json, then needs no env', async () => {
    const configHome = join(home, 'login');
    const noEnv = { BERTH_URL: '', BERTH_API_KEY: '' };
    const refused = await berth(['login', '--url', t.url, '--api-key', 'berth_wrong'], { configHome, env: noEnv });
    assert.equal(refused.code, 1, 'a key the server refuses is not saved');
    await assert.rejects(stat(join(configHome, 'berth', 'config.json')));

    const login = await ok(['login', '--url', t.url], { configHome, env: noEnv, input: `${t.key}\n` });
    assert.match(login, /^Logged in to http:\/\/127\.0\.0\.1:\d+ as admin \(admin\)/);
    const path = join(configHome, 'berth', 'config.json');
    assert.deepEqual(JSON.parse(await readFile(path, 'utf8')), { url: t.url, apiKey: t.key });
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.match(await ok(['whoami'], { configHome, env: noEnv }), new RegExp(`^admin \\(admin\\) at ${t.url} \\(key from ${path}\\)`));
    assert.match(await ok(['node', 'list'], { configHome, env: noEnv }), /^ID\s+NAME\s+STATUS\s+CPUS\s+MEMORY\s+GPUS.*\n\S+\s+\S+\s+READY\s+\d+\/\d+/);
    await ok(['logout'], { configHome, env: noEnv });
    assert.equal((await berth(['whoami'], { configHome, env: noEnv })).code, 1);
  });

  it('network volumes: create, list, get, resize, rm', async () => {
    const v = await json<{ id: string; sizeGb: number; name: string }>(['volume', 'create', '--name', 'cli-vol', '--size-gb', '5']);
    assert.equal(v.sizeGb, 5);
    assert.match(await ok(['volume', 'list']), new RegExp(`^${v.id}\\s+cli-vol\\s+5 GB\\s+`, 'm'));
    assert.match(await ok(['volume', 'get', v.id]), /^Size:\s+5 GB$/m);
    const shrink = await berth(['volume', 'resize', v.id, '--size-gb', '1']);
    assert.equal(shrink.code, 1);
    assert.match(shrink.stderr, /^ {2}\/sizeGb: a network volume can only grow/m);
    assert.equal((await json<{ sizeGb: number }>(['volume', 'resize', v.id, '--size-gb', '8'])).sizeGb, 8);
    assert.equal(await ok(['volume', 'rm', v.id]), `network volume ${v.id} deleted\n`);
    assert.equal((await berth(['volume', 'get', v.id])).code, 1);
  });

  it('templates: create from flags and from a file, list, get, use, rm', async () => {
    const tpl = await json<{ id: string; pod: { image: string; ports: string[]; env: Record<string, string>; command: string[] } }>([
      'template', 'create', '--name', 'cli-tpl', '--image', TEST_IMAGE, '--ports', '8080/http', '--env', 'A=1', '--volume-gb', '0', '--', 'sleep', '300',
    ]);
    assert.deepEqual(tpl.pod, { image: TEST_IMAGE, ports: ['8080/http'], env: { A: '1' }, volumeGb: 0, command: ['sleep', '300'] });
    const file = join(home, 'tpl.json');
    await writeFile(file, JSON.stringify({ image: TEST_IMAGE, ports: 'nope' }));
    const bad = await berth(['template', 'create', '--name', 'bad', '-f', file]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^ {2}\/pod\/ports\(0\): "nope" is not a port/m);
    assert.match(await ok(['template', 'list']), new RegExp(`^${tpl.id}\\s+cli-tpl\\s+berth-test/busybox:1\\s+8080/http`, 'm'));
    assert.match(await ok(['template', 'get', tpl.id]), /"sleep",\n\s+"300"/);

    // A pod from the template, with a flag over one of its fields; --detach returns at once.
    const pod = await json<PodJson & { spec: { containers: { env: Record<string, string> }[] } }>(['pod', 'create', '--template', tpl.id, '--env', 'B=2', '--detach']);
    assert.deepEqual(pod.spec.containers[0]?.env, { A: '1', B: '2' });
    await ok(['pod', 'rm', pod.id]);
    assert.equal(await ok(['template', 'rm', tpl.id]), `template ${tpl.id} deleted\n`);
  });

  it('ssh keys: add a .pub file or stdin, refuse a duplicate, list, rm by fingerprint', async () => {
    const pub = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0kIrNy8Hd8v4AUzEhDOy4tAYyV5AS1PZ1HGVp0iEXF cli@test';
    const file = join(home, 'id.pub');
    await writeFile(file, `${pub}\n`);
    const added = await json<{ id: string; name: string; fingerprint: string }>(['ssh-key', 'add', file]);
    assert.equal(added.name, 'cli@test');
    const dup = await berth(['ssh-key', 'add', '--name', 'again', '-'], { input: pub });
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /already registered/);
    assert.match(await ok(['ssh-key', 'list']), new RegExp(`^${added.id}\\s+cli@test\\s+\\S+\\s+SHA256:`, 'm'));
    await ok(['ssh-key', 'rm', added.fingerprint]);
    assert.doesNotMatch(await ok(['ssh-key', 'list']), /cli@test/);
    const notKey = await berth(['ssh-key', 'add', '-'], { input: 'not a key' });
    assert.equal(notKey.code, 1);
    assert.match(notKey.stderr, /\/publicKey: is not an OpenSSH public key/);
  });

  it('API keys: the secret is printed once on stdout, works, is listed by prefix, and is revoked', async () => {
    const created = await berth(['key', 'create', '--name', 'cli-key', '--owner', 'alice']);
    assert.equal(created.code, 0, created.stderr);
    const secret = created.stdout.trim();
    assert.match(secret, /^\S{16,}$/);
    assert.match(created.stderr, /shown only now/);
    assert.match(await ok(['whoami'], { env: { BERTH_API_KEY: secret } }), /^alice at /);
    const list = await ok(['key', 'list']);
    const row = list.split('\n').find((l) => /\scli-key\s/.test(l));
    assert.ok(row, list);
    assert.match(row, /cli-key\s+alice\s+no\s+/);
    const id = row.split(/\s+/)[0]!;
    // alice may not make admin keys.
    const escalate = await berth(['key', 'create', '--name', 'x', '--admin'], { env: { BERTH_API_KEY: secret } });
    assert.equal(escalate.code, 1);
    await ok(['key', 'rm', id]);
    assert.equal((await berth(['whoami'], { env: { BERTH_API_KEY: secret } })).code, 1);
  });

  it('registry credentials: the password comes from stdin and never comes back', async () => {
    const added = await json<{ id: string; username: string }>(['registry', 'add', '--name', 'cli-reg', '--username', 'bob', '--password-stdin'], { input: 's3cret\n' });
    assert.equal(added.username, 'bob');
    const list = await ok(['registry', 'list', '-o', 'json']);
    assert.ok(list.includes(added.id));
    assert.ok(!list.includes('s3cret'));
    const noPassword = await berth(['registry', 'add', '--name', 'x', '--username', 'y']);
    assert.equal(noPassword.code, 1);
    assert.match(noPassword.stderr, /--password-stdin/);
    await ok(['registry', 'rm', added.id]);
  });
});
