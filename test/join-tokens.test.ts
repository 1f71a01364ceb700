/**
 * Joining machines: join tokens (made, listed, revoked, refused when expired, used up or revoked),
 * the node credential an agent gets for one, the node authorizer on the agent endpoints, `node rm`,
 * and a TLS server's certificate pinned by the token. Real servers, a real agent on Docker, the real
 * CLI where a user would meet the refusal.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Agent as Dispatcher, fetch as undiciFetch } from 'undici';
import type { RunningAgent } from '../src/cli/agent.js';
import { NodeChannelDialer } from '../src/agent/channel-dial.js';
import { HttpAgentChannel } from '../src/agent/http-channel.js';
import { startAgent } from '../src/cli/agent.js';
import type { NodeAccess } from '../src/control/agent-protocol.js';
import { certificateFingerprint } from '../src/control/join-tokens.js';
import type { BerthError } from '../src/model/index.js';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

const BIN = fileURLToPath(new URL('../../bin/berth.js', import.meta.url));
const silent = pino({ level: 'silent' });

interface TokenView {
  id: string;
  token?: string;
  status: string;
  uses: number;
  maxUses: number | null;
  labels: Record<string, string>;
  expiresAt: string | null;
}
interface Problem {
  detail: string;
  reason?: string;
}

const registration = (name: string) => ({ name, publicIp: '10.9.9.9', labels: { own: 'yes' }, capacity: { cpus: 4, memoryMb: 8192, gpus: [], gpusSimulated: false }, agentVersion: 'test' });

/** A call to an agent endpoint with whatever credential (or key) is given. */
async function agentCall<T = Problem>(t: TestServer, method: string, path: string, secret: string | undefined, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${t.url}/api/v1/agent/${path}`, {
    method,
    headers: { ...(secret ? { authorization: `Bearer ${secret}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

async function makeToken(t: TestServer, body: Record<string, unknown> = {}): Promise<TokenView & { token: string }> {
  const res = await t.api<TokenView & { token: string }>('POST', '/api/v1/tokens', body);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body;
}

const join_ = (t: TestServer, token: string, name: string) => agentCall<{ nodeId: string; credential: string } & Problem>(t, 'POST', 'join', undefined, { token, registration: registration(name) });

/** Runs the berth CLI; resolves with its exit code and output. */
function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
    });
  });
}

describe('join tokens', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ agent: false });
  });
  after(async () => {
    await t?.close();
  });

  it('are made by admin keys, shown once, listed without their secret and revoked', async () => {
    const made = await makeToken(t, { description: 'gpu boxes', labels: { 'berth.io/datacenter': 'eu-1' }, maxUses: 3 });
    assert.match(made.token, /^bjt_[0-9a-z]+\.[A-Za-z0-9_-]{20,}$/);
    assert.equal(made.status, 'active');
    assert.ok(made.expiresAt && Math.abs(Date.parse(made.expiresAt) - Date.now() - 86_400_000) < 120_000, 'expires in 24 hours by default');
    const listed = (await t.api<{ tokens: (TokenView & { hash?: string })[] }>('GET', '/api/v1/tokens')).body.tokens.find((x) => x.id === made.id)!;
    assert.equal(listed.token, undefined, 'the token is shown only when made');
    assert.equal(listed.hash, undefined);
    assert.deepEqual([listed.uses, listed.maxUses, listed.labels], [0, 3, { 'berth.io/datacenter': 'eu-1' }]);

    const user = (await t.api<{ key: string }>('POST', '/api/v1/keys', { name: 'not-an-operator' })).body.key;
    assert.equal((await t.api('POST', '/api/v1/tokens', {}, user)).status, 403, 'an operator tool: admin keys only');
    assert.equal((await t.api('GET', '/api/v1/tokens', undefined, user)).status, 403);
    assert.equal((await t.api('POST', '/api/v1/tokens', { maxUses: 0 })).status, 400);
    assert.equal((await t.api('POST', '/api/v1/tokens', { ttlSeconds: -1 })).status, 400);

    assert.equal((await t.api('DELETE', `/api/v1/tokens/${made.id}`)).status, 204);
    assert.equal((await t.api<{ tokens: TokenView[] }>('GET', '/api/v1/tokens')).body.tokens.find((x) => x.id === made.id)?.status, 'revoked');
    assert.equal((await t.api('DELETE', '/api/v1/tokens/nosuch')).status, 404);
  });

  it('through the CLI: berth token create prints the token once, ls lists it, rm revokes it', async () => {
    const env = { BERTH_URL: t.url, BERTH_API_KEY: t.key, XDG_CONFIG_HOME: join(tmpdir(), 'berth-no-config') };
    const made = await cli(['token', 'create', '--ttl', '1h', '--uses', '2', '--label', 'rack=r1', '--description', 'from the cli'], env);
    assert.equal(made.code, 0, made.stderr);
    const token = made.stdout.trim();
    assert.match(token, /^bjt_([0-9a-z]+)\./);
    assert.match(made.stderr, /2 joins, until .*berth agent --server/s);
    const id = /^bjt_([0-9a-z]+)\./.exec(token)![1]!;
    const ls = await cli(['token', 'ls'], env);
    assert.equal(ls.code, 0, ls.stderr);
    const row = ls.stdout.split('\n').find((l) => l.startsWith(id))!;
    assert.match(row, /from the cli\s+rack=r1\s+0\/2\s+active\s+in \d+m/);
    assert.ok(!ls.stdout.includes(token.split('.')[1]!), 'the secret is not listed');
    assert.equal((await cli(['token', 'create', '--ttl', 'soon'], env)).code, 1);
    const revoked = await cli(['token', 'rm', id], env);
    assert.deepEqual([revoked.code, revoked.stdout], [0, `join token ${id} revoked\n`]);
    assert.match((await cli(['token', 'ls', '-o', 'json'], env)).stdout, /"status": ?"revoked"/);
  });

  it('refuse an expired, a used-up and a revoked token, saying which', async () => {
    const once = await makeToken(t, { maxUses: 1 });
    const first = await join_(t, once.token, 'first');
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.match(first.body.credential, /^bnc_/);
    const second = await join_(t, once.token, 'second');
    assert.equal(second.status, 401);
    assert.equal(second.body.reason, 'used-up');
    assert.match(second.body.detail, /used up \(1 of 1 joins\)/);

    const revoked = await makeToken(t);
    await t.api('DELETE', `/api/v1/tokens/${revoked.id}`);
    const r = await join_(t, revoked.token, 'third');
    assert.deepEqual([r.status, r.body.reason], [401, 'revoked']);
    assert.match(r.body.detail, /was revoked/);

    const short = await makeToken(t, { ttlSeconds: 1 });
    await new Promise((res) => setTimeout(res, 1500));
    const e = await join_(t, short.token, 'fourth');
    assert.deepEqual([e.status, e.body.reason], [401, 'expired']);
    assert.match(e.body.detail, /expired at/);

    const unknown = await join_(t, 'bjt_abcdef.nothingofthesort', 'fifth');
    assert.deepEqual([unknown.status, unknown.body.reason], [401, 'unknown']);
    const adminKey = await join_(t, t.key, 'fifth');
    assert.deepEqual([adminKey.status, adminKey.body.reason], [401, 'api-key'], 'an admin key is no join token');
    assert.equal((await t.api<{ nodes: { name: string }[] }>('GET', '/api/v1/nodes')).body.nodes.filter((n) => ['second', 'third', 'fourth', 'fifth'].includes(n.name)).length, 0, 'no refused join made a node');

    // The agent as a user runs it: it prints why and exits non-zero, no retrying.
    const dataDir = await mkdtemp(join(tmpdir(), 'berth-join-'));
    try {
      const run = await cli(['agent', '--server', t.url, '--data-dir', dataDir], { BERTH_TOKEN: short.token });
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, /join token [0-9a-z]+ expired at/);
      await assert.rejects(stat(join(dataDir, 'agent', 'credential.json')), 'no credential is kept');
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('the node authorizer', () => {
  let t: TestServer;
  let a: { nodeId: string; credential: string };
  let b: { nodeId: string; credential: string };
  before(async () => {
    t = await startTestServer({ agent: false });
    const token = (await makeToken(t, { maxUses: 2, labels: { pool: 'test' } })).token;
    a = (await join_(t, token, 'node-a')).body;
    b = (await join_(t, token, 'node-b')).body;
  });
  after(async () => {
    await t?.close();
  });

  it('puts the token labels on the node that joins with it', async () => {
    const nodes = (await t.api<{ nodes: { id: string; labels: Record<string, string> }[] }>('GET', '/api/v1/nodes')).body.nodes;
    assert.equal(nodes.find((n) => n.id === a.nodeId)?.labels.pool, 'test');
    assert.equal(nodes.find((n) => n.id === a.nodeId)?.labels.own, 'yes');
  });

  it("gives a node its own assignments and secrets only, and never another node's", async () => {
    assert.equal((await t.api('PUT', '/api/v1/secrets/db-pw', { value: 's3cret' })).status, 201);
    const made = await t.api<{ id: string }>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0, secrets: { pw: 'db-pw' } });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const pod = made.body;
    const inst = await waitFor('placed', async () => (await t.server.store.listInstances({})).find((i) => i.podId === pod.id && i.nodeId));
    const [mine, other] = inst.nodeId === a.nodeId ? [a, b] : [b, a];

    type Watch = { assignments: { instanceId: string; secrets: Record<string, string> }[] };
    const own = await agentCall<Watch>(t, 'GET', 'watch?since=0', mine.credential);
    assert.equal(own.status, 200);
    assert.deepEqual(own.body.assignments.map((x) => [x.instanceId, x.secrets]), [[inst.id, { pw: 's3cret' }]]);
    const theirs = await agentCall<Watch>(t, 'GET', 'watch?since=0', other.credential);
    assert.deepEqual(theirs.body.assignments, [], "the other node sees neither the pod nor its secret");
    const asking = await agentCall(t, 'GET', `watch?since=0&nodeId=${mine.nodeId}`, other.credential);
    assert.equal(asking.status, 403, "a node asking for another's assignments is refused");
    assert.equal(asking.body.reason, 'other-node');

    const observation = { state: 'running', message: null, exitCode: null, ports: {}, containers: [], updatedAt: new Date().toISOString() };
    assert.equal((await agentCall(t, 'POST', 'report', other.credential, { nodeId: mine.nodeId, reports: [{ instanceId: inst.id, observation }] })).status, 403, "reporting as another node is refused");
    assert.equal((await agentCall(t, 'POST', 'usage', other.credential, { nodeId: mine.nodeId, samples: [] })).status, 403);
    assert.equal((await agentCall(t, 'POST', 'register', other.credential, { ...registration('x'), nodeId: mine.nodeId })).status, 403);
    // Its own report naming another node's instance: ignored (it may have been moved off since its last watch).
    assert.equal((await agentCall(t, 'POST', 'report', other.credential, { reports: [{ instanceId: inst.id, observation }] })).status, 204);
    assert.equal((await t.server.store.getInstance(inst.id))?.observed, null, "another node's report changed nothing");
    assert.equal((await agentCall(t, 'POST', 'report', mine.credential, { reports: [{ instanceId: inst.id, observation }] })).status, 204);
    assert.equal((await t.server.store.getInstance(inst.id))?.observed?.state, 'running');
  });

  it('refuses API keys, admin keys included, on every agent endpoint, and node credentials everywhere else', async () => {
    const calls: [string, string, unknown][] = [
      ['POST', 'register', registration('x')],
      ['GET', 'watch?since=0', undefined],
      ['POST', 'report', { reports: [] }],
      ['POST', 'usage', { samples: [] }],
    ];
    for (const [method, path, body] of calls) {
      const admin = await agentCall(t, method, path, t.key, body);
      assert.equal(admin.status, 403, `admin key on ${path}`);
      assert.match(admin.body.detail, /API keys, admin keys included, are refused/);
      assert.equal((await agentCall(t, method, path, undefined, body)).status, 401, `nothing on ${path}`);
      assert.equal((await agentCall(t, method, path, 'bnc_forged', body)).status, 401, `a forged credential on ${path}`);
    }
    for (const [method, path] of [['GET', '/api/v1/pods'], ['GET', '/api/v1/nodes'], ['POST', '/api/v1/tokens'], ['GET', '/runpod/v1/pods'], ['GET', '/marathon/v2/apps']]) {
      const res = await t.api<Problem & { message?: string }>(method!, path!, method === 'POST' ? {} : undefined, a.credential);
      assert.equal(res.status, 403, `a node credential on ${path}`);
      assert.match(res.body.detail ?? res.body.message ?? '', /not an API key/, 'in the problem form of the API asked');
    }
  });

  it('node rm revokes the credential and forgets the node; refused while it has instances unless forced', async () => {
    const busy = (await t.server.store.listInstances({})).find((i) => i.nodeId)!.nodeId!;
    const idle = busy === a.nodeId ? b : a;
    const refused = await t.api<Problem>('DELETE', `/api/v1/nodes/${busy}`);
    assert.equal(refused.status, 409);
    assert.match(refused.body.detail, /still has 1 instance.*--force/);
    const env = { BERTH_URL: t.url, BERTH_API_KEY: t.key, XDG_CONFIG_HOME: join(tmpdir(), 'berth-no-config') };
    const busyCli = await cli(['node', 'rm', busy], env);
    assert.equal(busyCli.code, 1);
    assert.match(busyCli.stderr, /still has 1 instance/);
    const idleCli = await cli(['node', 'rm', idle.nodeId], env);
    assert.deepEqual([idleCli.code, idleCli.stdout], [0, `node ${idle.nodeId} removed and its credential revoked\n`], idleCli.stderr);
    const gone = await agentCall(t, 'GET', 'watch?since=0', idle.credential);
    assert.deepEqual([gone.status, gone.body.reason], [401, 'revoked']);
    const forced = await t.api<{ unplaced: number }>('DELETE', `/api/v1/nodes/${busy}?force=true`);
    assert.deepEqual([forced.status, forced.body.unplaced], [200, 1]);
    assert.equal((await t.api<{ nodes: unknown[] }>('GET', '/api/v1/nodes')).body.nodes.length, 0);
    assert.equal((await t.server.store.listInstances({})).find((i) => i.nodeId), undefined, 'its instance waits for another node');
    assert.equal((await t.api('DELETE', `/api/v1/nodes/${busy}`)).status, 404);
  });
});

describe('an agent that joins with a token', () => {
  let t: TestServer;
  let agent: RunningAgent | undefined;
  let dir = '';
  before(async () => {
    await ensureTestImage();
    t = await startTestServer({ agent: false });
    dir = await mkdtemp(join(tmpdir(), 'berth-agent-'));
  });
  after(async () => {
    await t?.close();
    await agent?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('keeps its credential (0600), runs a pod, starts again without the token, and stops when its node is removed', async () => {
    const { token } = await makeToken(t, { maxUses: 1, labels: { 'berth.io/datacenter': 'eu-1' } });
    agent = await startAgent({ server: t.url, token, dataDir: dir, name: 'joined', logger: silent });
    const file = join(dir, 'agent', 'credential.json');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const stored = JSON.parse(await readFile(file, 'utf8')) as { server: string; nodeId: string; credential: string };
    assert.deepEqual([stored.server, stored.nodeId], [t.url, agent.id]);
    assert.match(stored.credential, /^bnc_/);
    const node = (await t.api<{ nodes: { id: string; labels: Record<string, string> }[] }>('GET', '/api/v1/nodes')).body.nodes[0]!;
    assert.deepEqual([node.id, node.labels['berth.io/datacenter']], [agent.id, 'eu-1']);

    const pod = (await t.api<{ id: string }>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0 })).body;
    await waitFor('running on the joined node', async () => ((await t.api<{ status: string }>('GET', `/api/v1/pods/${pod.id}`)).body.status === 'RUNNING' ? true : undefined), 60_000);
    await t.api('POST', `/api/v1/pods/${pod.id}/terminate`);
    await waitFor('terminated', async () => ((await t.server.store.listInstances({})).length === 0 ? true : undefined), 60_000);

    // Restarted: the stored credential, not the (now used-up) token; a token given again is said to be unused.
    await agent.close();
    agent = undefined;
    const notes: string[] = [];
    let revoked: BerthError | undefined;
    agent = await startAgent({ server: t.url, token, dataDir: dir, name: 'joined', logger: silent, note: (m) => notes.push(m), onRevoked: (err) => (revoked = err) });
    assert.equal(agent.id, stored.nodeId, 'the same node');
    assert.match(notes.join('\n'), /the join token is not/);

    assert.equal((await t.api('DELETE', `/api/v1/nodes/${agent.id}`)).status, 200);
    const err = await waitFor('the agent told its node was removed', async () => revoked, 60_000);
    assert.equal(err.status, 401);
    assert.match(err.message, /node credential is not valid/);
    await agent.close();
    agent = undefined;
    // A later start says what to do instead of retrying.
    await assert.rejects(startAgent({ dataDir: dir, logger: silent }), /remove that file and join again with a new token/);
  });

  it('as the berth agent process: stops with a message and exit code 1 when its node is removed', async () => {
    const { token } = await makeToken(t, { maxUses: 1 });
    const own = await mkdtemp(join(tmpdir(), 'berth-agent-cli-'));
    const child = spawn(process.execPath, [BIN, 'agent', '--server', t.url, '--data-dir', own, '--name', 'cli-agent', '--log-level', 'warn'], { env: { ...process.env, BERTH_TOKEN: token }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor('the agent process running', async () => (stderr.includes('running as node') ? true : undefined), 60_000);
      const node = (await t.api<{ nodes: { id: string; name: string }[] }>('GET', '/api/v1/nodes')).body.nodes.find((n) => n.name === 'cli-agent')!;
      assert.equal((await t.api('DELETE', `/api/v1/nodes/${node.id}`)).status, 200);
      const code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 90_000))]);
      assert.equal(code, 1, stderr);
      assert.match(stderr, /the node was removed \(berth node rm\)/);
      assert.match(stderr, /credential\.json and start with a new join token/);
    } finally {
      child.kill('SIGKILL');
      await rm(own, { recursive: true, force: true });
    }
  });
});

describe('a TLS server', () => {
  let t: TestServer;
  let dir = '';
  let cert: Buffer;
  let trusting: Dispatcher;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-tls-'));
    // A self-signed certificate, as an operator without a CA makes one.
    await new Promise<void>((resolve, reject) =>
      execFile('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=berth-test'], (err) => (err ? reject(err) : resolve())),
    );
    cert = await readFile(join(dir, 'cert.pem'));
    t = await startTestServer({ agent: false, tlsCert: join(dir, 'cert.pem'), tlsKey: join(dir, 'key.pem') });
    trusting = new Dispatcher({ connect: { ca: cert, checkServerIdentity: () => undefined } });
  });
  after(async () => {
    await trusting?.close();
    // Its own close: the helper's `api` (global fetch) does not trust the self-signed certificate.
    await t?.server.close();
    if (t) await rm(t.dataDir, { recursive: true, force: true });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const makePinned = async (body: Record<string, unknown> = {}): Promise<{ id: string; token: string }> => {
    const res = await undiciFetch(`${t.url}/api/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' }, body: JSON.stringify(body), dispatcher: trusting });
    assert.equal(res.status, 201);
    return (await res.json()) as { id: string; token: string };
  };

  it("pins the server's certificate in the token, and the agent checks it before sending anything", async () => {
    assert.match(t.url, /^https:/);
    const { id, token } = await makePinned({ maxUses: 5 });
    const fingerprint = certificateFingerprint(cert);
    assert.ok(token.startsWith(`B10${fingerprint}::bjt_`), token);

    // The pinned self-signed certificate is trusted without a CA.
    const channel = new HttpAgentChannel({ server: t.url, token, fingerprint });
    const { nodeId } = await channel.register(registration('pinned'));
    assert.ok(nodeId);
    assert.equal((await channel.watch(nodeId, 0, 0)).assignments.length, 0, 'its calls after the join go over the pinned connection too');
    // The node channel too: upgraded on the pinned TLS connection, HTTP/2 then on that TLS socket
    // (connected = the server's HTTP/2 settings came back over it).
    const node = NodeChannelDialer.start({ server: t.url, token: channel.auth.credential ?? '', fingerprint, nodeId, access: {} as NodeAccess, logger: silent });
    try {
      await node.whenConnected();
      assert.ok(node.connected);
    } finally {
      await node.close();
    }
    await channel.close();

    // A server presenting another certificate is refused before the token is sent: no use is taken.
    const wrong = 'ab'.repeat(32);
    const impostor = new HttpAgentChannel({ server: t.url, token: `B10${wrong}::${token.split('::')[1]}`, fingerprint: wrong });
    await assert.rejects(impostor.register(registration('impostor')), /not the one the join token pinned/);
    await impostor.close();
    const listed = (await (await undiciFetch(`${t.url}/api/v1/tokens`, { headers: { authorization: `Bearer ${t.key}` }, dispatcher: trusting })).json()) as { tokens: TokenView[] };
    assert.equal(listed.tokens.find((x) => x.id === id)?.uses, 1, 'only the pinned join used the token');

    // A pinned token with an http:// URL is a mistake the agent names.
    await assert.rejects(startAgent({ server: t.url.replace('https:', 'http:'), token, dataDir: dir, logger: silent }), /give the server as https:\/\//);
  });
});
