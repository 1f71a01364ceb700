/**
 * Teams on a real server: three users in two teams. Every cross-team read, write, action, exec, log
 * and id reference is refused over the native, RunPod and Marathon APIs; a viewer reads but cannot
 * write, exec or register an SSH key; the operator's per-team policy grant; quotas refuse the create
 * that would cross them; the audit log records it all and only a team's owners read it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'node:http';
import Docker from 'dockerode';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

interface Problem {
  code?: string;
  detail?: string;
}

/** A WebSocket upgrade to the API: the status it was answered with (and the problem's code), or 0 when closed with no answer. */
function upgrade(url: string, path: string, key: string): Promise<{ status: number; code?: string }> {
  return new Promise((resolve) => {
    const u = new URL(path, url);
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-protocol': `berth.terminal, bearer.${key}` } });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: (JSON.parse(body || '{}') as { code?: string }).code }));
    });
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      resolve({ status: 101 });
    });
    req.on('error', () => resolve({ status: 0 }));
    req.end();
  });
}

const sleeper = (extra: Record<string, unknown> = {}) => ({ name: 'sleeper', image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0, ...extra });

describe('teams, roles, quotas and the audit log', () => {
  let t: TestServer;
  const key: Record<'ann' | 'vic' | 'bo', string> = { ann: '', vic: '', bo: '' };
  let podId: string;
  let templateId: string;
  let authId: string;

  before(async () => {
    await ensureTestImage(new Docker());
    t = await startTestServer({ proxy: false, ssh: false });
    for (const team of ['red', 'blue']) assert.equal((await t.api('POST', '/api/v1/teams', { name: team })).status, 201);
    for (const [team, user, role] of [['red', 'ann', 'owner'], ['red', 'vic', 'viewer'], ['blue', 'bo', 'member']] as const) {
      const made = await t.api<{ key: string }>('POST', `/api/v1/teams/${team}/members`, { user, role, createKey: true });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      key[user] = made.body.key;
    }
    const pod = await t.api<{ id: string }>('POST', '/api/v1/pods', sleeper(), key.ann);
    assert.equal(pod.status, 201, JSON.stringify(pod.body));
    podId = pod.body.id;
    templateId = (await t.api<{ id: string }>('POST', '/api/v1/templates', { name: 'tpl', pod: { image: TEST_IMAGE } }, key.ann)).body.id;
    authId = (await t.api<{ id: string }>('POST', '/api/v1/registry-auths', { name: 'reg', username: 'u', password: 'p' }, key.ann)).body.id;
    await waitFor('the pod to run', async () => ((await t.api<{ status: string }>('GET', `/api/v1/pods/${podId}`, undefined, key.ann)).body.status === 'RUNNING' ? true : undefined), 60_000);
  });
  after(async () => {
    await t?.close();
  });

  it('refuses every cross-team read, write, action, exec, log and reference, over the three APIs', async () => {
    const cases: [string, string, string, unknown?][] = [
      ['native get', 'GET', `/api/v1/pods/${podId}`],
      ['native versions', 'GET', `/api/v1/pods/${podId}/versions`],
      ['native update', 'PATCH', `/api/v1/pods/${podId}`, { name: 'mine' }],
      ['native stop', 'POST', `/api/v1/pods/${podId}/stop`],
      ['native terminate', 'DELETE', `/api/v1/pods/${podId}`],
      ['native exec', 'POST', `/api/v1/pods/${podId}/exec`, { command: ['id'] }],
      ['native logs', 'GET', `/api/v1/pods/${podId}/logs`],
      ['native terminal', 'GET', `/api/v1/pods/${podId}/terminal`],
      ['native port-forward', 'GET', `/api/v1/pods/${podId}/ports/22/tunnel`],
      ['native template', 'GET', `/api/v1/templates/${templateId}`],
      ['native registry credentials', 'GET', `/api/v1/registry-auths/${authId}`],
      ['runpod v2 get', 'GET', `/runpod/v2/pods/${podId}`],
      ['runpod v2 stop', 'POST', `/runpod/v2/pods/${podId}/action`, { action: 'stop' }],
      ['runpod v1 update', 'POST', `/runpod/v1/pods/${podId}/update`, { name: 'mine' }],
      ['runpod v1 get', 'GET', `/runpod/v1/pods/${podId}`],
      ['marathon get', 'GET', `/marathon/v2/pods/${podId}`],
      ['marathon delete', 'DELETE', `/marathon/v2/pods/${podId}`],
      ['team', 'GET', '/api/v1/teams/red'],
    ];
    for (const [what, method, path, body] of cases) {
      const res = await t.api<Problem>(method, path, body, key.bo);
      assert.ok([403, 404].includes(res.status), `${what}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    // Ids of another team named in a pod or a template: not found, nothing stored.
    const refs: [string, unknown][] = [
      ['/api/v1/pods', sleeper({ templateId })],
      ['/api/v1/pods', sleeper({ registryAuthId: authId })],
      ['/api/v1/templates', { name: 'stolen', pod: { image: TEST_IMAGE, registryAuthId: authId } }],
      ['/api/v1/templates', { name: 'stolen', pod: { image: TEST_IMAGE, templateId } }],
    ];
    for (const [path, body] of refs) {
      const res = await t.api<{ problems?: { path: string }[] }>('POST', path, body, key.bo);
      assert.equal(res.status, 400, `${path} ${JSON.stringify(body)}: ${res.status}`);
    }
    assert.equal((await t.api<{ templates: unknown[] }>('GET', '/api/v1/templates', undefined, key.bo)).body.templates.length, 0);
    const list = await t.api<{ pods: unknown[] }>('GET', '/api/v1/pods', undefined, key.bo);
    assert.equal(list.body.pods.length, 0);
    assert.equal((await t.api<{ status: string }>('GET', `/api/v1/pods/${podId}`, undefined, key.ann)).body.status, 'RUNNING');
  });

  it("carries nothing of another team's pods in event streams", async () => {
    const read = async (k: string): Promise<string> => {
      const ac = new AbortController();
      const res = await fetch(`${t.url}/api/v1/events?since=0`, { headers: { authorization: `Bearer ${k}` }, signal: ac.signal });
      assert.equal(res.status, 200);
      let text = '';
      const reader = res.body!.getReader();
      const stop = setTimeout(() => ac.abort(), 1500);
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          text += Buffer.from(value).toString();
        }
      } catch {
        // aborted: what came in 1.5 s is what we look at
      } finally {
        clearTimeout(stop);
      }
      return text;
    };
    assert.ok((await read(key.ann)).includes(podId), 'the owner sees its pod');
    assert.ok(!(await read(key.bo)).includes(podId), "another team's stream carried the pod");
  });

  it('lets a viewer read, not write, exec or register an SSH key', async () => {
    assert.equal((await t.api('GET', `/api/v1/pods/${podId}`, undefined, key.vic)).status, 200);
    const refused: [string, string, unknown?][] = [
      ['POST', `/api/v1/pods/${podId}/exec`, { command: ['id'] }],
      ['GET', `/api/v1/pods/${podId}/terminal`],
      ['POST', `/api/v1/pods/${podId}/stop`],
      ['POST', '/api/v1/pods', sleeper()],
      ['POST', '/api/v1/ssh-keys', { name: 'k', publicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEl0dGVzdGtleWZvcnZpZXdlcnNvbmx5MTIzNDU2Nzg5MA vic' }],
      ['POST', `/runpod/v2/pods/${podId}/action`, { action: 'stop' }],
    ];
    for (const [method, path, body] of refused) {
      const res = await t.api<Problem>(method, path, body, key.vic);
      assert.equal(res.status, 403, `${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    // Refused upgrades are answered with a problem, not closed.
    assert.deepEqual(await upgrade(t.url, `/api/v1/pods/${podId}/terminal`, key.vic), { status: 403, code: 'BERTH_ERR_FORBIDDEN' });
    assert.deepEqual(await upgrade(t.url, `/api/v1/pods/${podId}/ports/8080/tunnel`, key.vic), { status: 403, code: 'BERTH_ERR_FORBIDDEN' });
    assert.deepEqual(await upgrade(t.url, `/api/v1/pods/${podId}/terminal`, key.bo), { status: 404, code: 'BERTH_ERR_POD_NOT_FOUND' });
    assert.deepEqual(await upgrade(t.url, `/api/v1/pods/${podId}/terminal`, 'berth_nope'), { status: 401, code: 'BERTH_ERR_UNAUTHORIZED' });
    const exec = await t.api<{ exitCode: number }>('POST', `/api/v1/pods/${podId}/exec`, { command: ['true'] }, key.ann);
    assert.equal(exec.status, 200);
  });

  it('grants a team what the operator sets for it, and only the operator sets it', async () => {
    const hostNet = sleeper({ network: { mode: 'host' }, instances: 0 });
    assert.equal((await t.api<Problem>('POST', '/api/v1/pods', hostNet, key.ann)).body.code, 'BERTH_ERR_POLICY_DENIED');
    assert.equal((await t.api('PUT', '/api/v1/teams/red/policy', { grants: 'host-network' }, key.ann)).status, 403, 'a team owner cannot grant itself');
    assert.equal((await t.api('PUT', '/api/v1/teams/red/policy', { grants: 'host-network' })).status, 200);
    const made = await t.api<{ id: string }>('POST', '/api/v1/pods', hostNet, key.ann);
    assert.equal(made.status, 201);
    assert.equal((await t.api('POST', '/api/v1/pods', hostNet, key.bo)).status, 403, 'blue was not granted');
    await t.api('DELETE', `/api/v1/pods/${made.body.id}`, undefined, key.ann);
  });

  it('refuses the create that would cross a quota, naming it', async () => {
    assert.equal((await t.api('PUT', '/api/v1/teams/blue/quota', { pods: 1, vcpus: 2 })).status, 200);
    const first = await t.api<{ id: string }>('POST', '/api/v1/pods', sleeper({ vcpuCount: 1 }), key.bo);
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const second = await t.api<Problem>('POST', '/api/v1/pods', sleeper({ vcpuCount: 1, instances: 0 }), key.bo);
    assert.equal(second.status, 403);
    assert.equal(second.body.code, 'BERTH_ERR_QUOTA_EXCEEDED');
    assert.match(second.body.detail ?? '', /quota pods of team blue/);
    const bigger = await t.api<Problem>('PATCH', `/api/v1/pods/${first.body.id}`, { vcpuCount: 3 }, key.bo);
    assert.equal(bigger.status, 403);
    assert.match(bigger.body.detail ?? '', /quota vcpus/);
    const marathon = await t.api('POST', '/marathon/v2/pods', { id: '/q/one', containers: [{ name: 'm', image: { kind: 'DOCKER', id: TEST_IMAGE }, resources: { cpus: 0.1, mem: 32 } }], scaling: { kind: 'fixed', instances: 0 } }, key.bo);
    assert.equal(marathon.status, 403, JSON.stringify(marathon.body));
  });

  it('records who did what in the audit log, for the team owners only', async () => {
    const log = await t.api<{ entries: { action: string; user: string | null; objectId: string; detail: Record<string, unknown> }[] }>('GET', '/api/v1/audit', undefined, key.ann);
    assert.equal(log.status, 200);
    const actions = log.body.entries.map((e) => `${e.user ?? '-'} ${e.action} ${e.objectId}`);
    assert.ok(actions.includes(`ann POST /api/v1/pods ${podId}`), actions.join('\n'));
    assert.ok(log.body.entries.some((e) => e.action === 'POST /api/v1/pods/:id/exec' && e.user === 'ann' && JSON.stringify(e.detail.command) === '["true"]'));
    assert.ok(log.body.entries.some((e) => e.action === 'PUT /api/v1/teams/:name/policy' && e.user === null), 'the operator\'s grant is in the team\'s log');
    assert.ok(log.body.entries.some((e) => e.action === 'POST /api/v1/teams/:name/members' && e.detail.user === 'vic'));
    assert.equal((await t.api('GET', '/api/v1/audit', undefined, key.vic)).status, 403);
    assert.equal((await t.api('GET', '/api/v1/audit', undefined, key.bo)).status, 403);
    assert.equal((await t.api('GET', '/api/v1/audit?team=red', undefined, key.bo)).status, 403);
    // The operator (the admin key, of no team) acting on red's pod: in red's log, where its owners see it.
    assert.equal((await t.api('PATCH', `/api/v1/pods/${podId}`, { name: 'renamed-by-the-operator' })).status, 200);
    const red = await t.api<{ entries: { action: string; user: string | null; objectId: string; keyId: string | null }[] }>('GET', '/api/v1/audit', undefined, key.ann);
    const byOperator = red.body.entries.find((e) => e.action === 'PATCH /api/v1/pods/:id' && e.objectId === podId && e.user === null);
    assert.ok(byOperator?.keyId, 'the admin key\'s change to the team\'s pod, with its key id');
    const all = await t.api<{ entries: { team: string }[] }>('GET', '/api/v1/audit');
    assert.ok(new Set(all.body.entries.map((e) => e.team)).has('blue'));
  });

  it('stops a removed member\'s key at once', async () => {
    assert.equal((await t.api('DELETE', '/api/v1/teams/red/members/vic', undefined, key.ann)).status, 204);
    assert.equal((await t.api('GET', '/api/v1/pods', undefined, key.vic)).status, 401);
  });
});
