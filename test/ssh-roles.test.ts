/**
 * SSH keys belong to the user who registered them (issue 15): with the real OpenSSH client, a
 * member's key opens shells, commands, SFTP and -L forwards; once the member is made a viewer the
 * same key is refused for each, with the reason; a removed user's key is refused; the refusals are
 * in the team's audit log; RunPod's account keys are the user's own.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { freePort, spawnRun, type Ran } from './support/clients.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

const run = promisify(execFile);

describe('SSH keys per user', () => {
  let t: TestServer;
  let dir: string;
  let podId: string;
  const key: Record<'ann' | 'mia' | 'rex', string> = { ann: '', mia: '', rex: '' };
  const opts = (id: string): string[] => ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-i', join(dir, id), '-p', String(t.server.ssh!.port)];
  const ssh = (id: string, args: string[], input?: string): Promise<Ran> => spawnRun('ssh', [...opts(id), ...args], input);
  const sftp = (id: string): Promise<Ran> => spawnRun('sftp', [...opts(id).slice(0, -2), '-P', String(t.server.ssh!.port), '-b', '-', `${podId}@127.0.0.1`], 'ls /\n');
  /** What a -L forward to the pod's web server answers: its body, or the error. */
  const forward = async (id: string): Promise<string> => {
    const port = await freePort();
    const child = spawn('ssh', [...opts(id), '-N', '-o', 'ExitOnForwardFailure=yes', '-L', `${port}:localhost:8080`, `${podId}@127.0.0.1`], { stdio: 'ignore' });
    try {
      return await waitFor('the forward to answer or fail', async () => {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5000) });
          return await res.text();
        } catch (err) {
          // Not listening yet: try again; listening but the channel refused: that is the answer.
          const cause = (err as { cause?: { code?: string } }).cause?.code;
          return cause === 'ECONNREFUSED' ? undefined : `failed: ${cause ?? (err as Error).message}`;
        }
      }, 20_000);
    } finally {
      child.kill();
    }
  };

  before(async () => {
    await ensureTestImage();
    dir = await mkdtemp(join(tmpdir(), 'berth-ssh-roles-'));
    for (const name of ['ann', 'mia', 'rex']) await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', join(dir, name)]);
    t = await startTestServer({ proxy: false });
    assert.equal((await t.api('POST', '/api/v1/teams', { name: 'red' })).status, 201);
    for (const [user, role] of [['ann', 'owner'], ['mia', 'member'], ['rex', 'member']] as const) {
      const made = await t.api<{ key: string }>('POST', '/api/v1/teams/red/members', { user, role, createKey: true });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      key[user] = made.body.key;
      const added = await t.api<{ user: string }>('POST', '/api/v1/ssh-keys', { publicKey: await readFile(join(dir, `${user}.pub`), 'utf8') }, key[user]);
      assert.equal(added.status, 201, JSON.stringify(added.body));
      assert.equal(added.body.user, user);
    }
    const pod = await t.api<{ id: string }>('POST', '/api/v1/pods', { image: TEST_IMAGE, ports: ['8080/http'], volumeGb: 0, command: ['sh', '-c', 'mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www'] }, key.ann);
    assert.equal(pod.status, 201, JSON.stringify(pod.body));
    podId = pod.body.id;
    await waitFor('the pod to run', async () => ((await t.api<{ status: string }>('GET', `/api/v1/pods/${podId}`, undefined, key.ann)).body.status === 'RUNNING' ? true : undefined), 60_000);
  });
  after(async () => {
    await t?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("lets a member's key in, and refuses it for shell, exec, sftp and -L once the member is a viewer", async () => {
    const ok = await ssh('mia', [`${podId}@127.0.0.1`, 'echo in-$((40+2))']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'in-42\n');
    assert.equal((await sftp('mia')).code, 0);
    assert.equal(await forward('mia'), 'hello-from-pod\n');

    assert.equal((await t.api('POST', '/api/v1/teams/red/members', { user: 'mia', role: 'viewer' }, key.ann)).status, 201);
    const reason = /mia is a viewer of team red and cannot use SSH/;
    const exec = await ssh('mia', [`${podId}@127.0.0.1`, 'echo in']);
    assert.equal(exec.code, 1);
    assert.equal(exec.stdout, '');
    assert.match(exec.stderr, reason);
    const shell = await ssh('mia', ['-tt', `${podId}@127.0.0.1`], 'echo in\nexit 0\n');
    assert.equal(shell.code, 1);
    assert.doesNotMatch(shell.stdout, /^in/m);
    assert.match(shell.stdout + shell.stderr, reason);
    const files = await sftp('mia');
    assert.notEqual(files.code, 0);
    assert.match(files.stderr, reason);
    assert.match(await forward('mia'), /^failed/);
    // The owner's own key still works.
    assert.equal((await ssh('ann', [`${podId}@127.0.0.1`, 'true'])).code, 0);
  });

  it("refuses a removed user's key", async () => {
    assert.equal((await ssh('rex', [`${podId}@127.0.0.1`, 'true'])).code, 0);
    assert.equal((await t.api('DELETE', '/api/v1/teams/red/members/rex', undefined, key.ann)).status, 204);
    const r = await ssh('rex', [`${podId}@127.0.0.1`, 'echo in']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /rex is no longer a member of team red/);
  });

  it('refuses a key registered for no user in a team, and records the refusals', async () => {
    const teamKey = await t.api<{ key: string }>('POST', '/api/v1/keys', { name: 'whole-team', owner: 'red' });
    assert.equal(teamKey.status, 201);
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'nobody', '-f', join(dir, 'nobody')]);
    const res = await t.api<{ code: string }>('POST', '/api/v1/ssh-keys', { publicKey: await readFile(join(dir, 'nobody.pub'), 'utf8') }, teamKey.body.key);
    assert.equal(res.status, 403);
    const log = await t.api<{ entries: { action: string; user: string | null; detail: { reason?: string } }[] }>('GET', '/api/v1/audit?limit=200', undefined, key.ann);
    const refused = log.body.entries.filter((e) => e.action === 'ssh.refused');
    assert.ok(refused.some((e) => e.user === 'mia' && /viewer/.test(e.detail.reason ?? '')), JSON.stringify(refused));
    assert.ok(refused.some((e) => e.user === 'rex' && /no longer a member/.test(e.detail.reason ?? '')), JSON.stringify(refused));
    assert.ok(log.body.entries.some((e) => e.action === 'ssh.session' && e.user === 'mia'));
  });

  it("keeps RunPod's account keys to the user's own", async () => {
    const annKey = (await readFile(join(dir, 'ann.pub'), 'utf8')).trim();
    const account = await t.api<{ keys: string[] }>('GET', '/runpod/v2/account/ssh-keys', undefined, key.ann);
    assert.deepEqual(account.body.keys, [annKey]);
    assert.deepEqual((await t.api<{ keys: string[] }>('PUT', '/runpod/v2/account/ssh-keys', { keys: [] }, key.ann)).body, { keys: [] });
    const left = await t.api<{ sshKeys: { user: string | null }[] }>('GET', '/api/v1/ssh-keys', undefined, key.ann);
    assert.deepEqual(left.body.sshKeys.map((k) => k.user), ['mia', 'rex']);
  });
});
