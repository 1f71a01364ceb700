/**
 * The secret store end to end: set through the API and the CLI, used by a real pod as an env var and
 * a file, and never answered by any route nor written to the log.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { Sealer } from '../src/control/sealer.js';
import type { OwnerId } from '../src/model/index.js';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

const BIN = fileURLToPath(new URL('../../bin/berth.js', import.meta.url));

interface Meta {
  name: string;
  createdAt: string;
  updatedAt: string;
}
interface Problem {
  code: string;
  detail: string;
  problems?: { path: string; message: string }[];
}
interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CLI as a child process with `env` over this process's environment, `input` on its stdin. */
function run(args: string[], env: Record<string, string>, input = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
    });
    child.stdin?.end(input);
  });
}

/** Reads a server-sent event stream for `ms`, then closes it; resolves to all its text. */
async function sseText(url: string, key: string, ms: number): Promise<string> {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${key}` }, signal: ac.signal });
  assert.equal(res.status, 200);
  const timer = setTimeout(() => ac.abort(), ms);
  let text = '';
  try {
    for await (const chunk of res.body!) text += Buffer.from(chunk).toString('utf8');
  } catch {
    // Aborted: that is how the read ends.
  } finally {
    clearTimeout(timer);
  }
  return text;
}

describe('the secret store', () => {
  let t: TestServer;
  let home: string;
  const logs: string[] = [];
  // Every log line at the most verbose level, to show the value is never written there.
  const logSink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(chunk.toString('utf8'));
      done();
    },
  });
  const value = `s3cr3t-${randomBytes(12).toString('hex')}`;

  before(async () => {
    await ensureTestImage();
    t = await startTestServer({ logger: pino({ level: 'trace' }, logSink) });
    home = await mkdtemp(join(tmpdir(), 'berth-secrets-'));
  });
  after(async () => {
    await t?.close();
    if (home) await rm(home, { recursive: true, force: true });
  });

  /** The value the store holds for the admin's secret `name`, opened with the server's own key. */
  const stored = async (name: string): Promise<string | undefined> => {
    const who = await t.api<{ owner: string }>('GET', '/api/v1/whoami');
    const s = await t.server.store.getSecret(who.body.owner as OwnerId, name);
    return s && (await Sealer.open(t.dataDir)).open(s.valueSealed);
  };

  it('creates (201) and replaces (200) a secret; no answer holds the value', async () => {
    const first = await t.api<Meta>('PUT', '/api/v1/secrets/db/password', { value: 'first' });
    assert.equal(first.status, 201);
    assert.deepEqual(Object.keys(first.body).sort(), ['createdAt', 'name', 'updatedAt']);
    assert.equal(first.body.name, 'db/password');
    assert.equal(first.body.createdAt, first.body.updatedAt);

    const second = await t.api<Meta>('PUT', '/api/v1/secrets/db/password', { value });
    assert.equal(second.status, 200);
    assert.equal(second.body.createdAt, first.body.createdAt, 'replacing keeps the creation time');
    assert.ok(second.body.updatedAt >= first.body.updatedAt);
    assert.equal(await stored('db/password'), value);

    const one = await t.api<Meta>('GET', '/api/v1/secrets/db/password');
    assert.equal(one.status, 200);
    assert.deepEqual(one.body, second.body);
    // An escaped slash names the same secret.
    assert.deepEqual((await t.api<Meta>('GET', '/api/v1/secrets/db%2Fpassword')).body, second.body);

    const list = await t.api<{ secrets: Meta[] }>('GET', '/api/v1/secrets');
    assert.deepEqual(
      list.body.secrets.map((s) => s.name),
      ['db/password'],
    );
    const sealed = (await t.server.store.listSecrets())[0]!.valueSealed;
    for (const text of [JSON.stringify(first.body), JSON.stringify(second.body), JSON.stringify(one.body), JSON.stringify(list.body)]) {
      assert.ok(!text.includes(value) && !text.includes('first') && !text.includes(sealed), `no value in ${text}`);
    }
  });

  it('refuses bad names and values, saying where, without echoing the value', async () => {
    const bad = async (path: string, body: unknown): Promise<Problem> => {
      const r = await t.api<Problem>('PUT', `/api/v1/secrets/${path}`, body);
      assert.equal(r.status, 400, `PUT ${path}: ${JSON.stringify(r.body)}`);
      return r.body;
    };
    for (const name of ['a//b', 'a/', 'sp%20ace', 'a/..', `${'x'.repeat(256)}`, 'semi;colon']) {
      const p = await bad(name, { value: 'v' });
      assert.deepEqual(
        p.problems?.map((q) => q.path),
        ['/name'],
        name,
      );
    }
    assert.equal((await t.api<Meta>('PUT', `/api/v1/secrets/${'x'.repeat(255)}`, { value: 'v' })).status, 201, '255 characters are fine');
    await t.api('DELETE', `/api/v1/secrets/${'x'.repeat(255)}`);

    const big = 'B'.repeat(64 * 1024 + 1);
    const tooBig = await bad('big', { value: big });
    assert.deepEqual(
      tooBig.problems?.map((q) => q.path),
      ['/value'],
    );
    assert.ok(!JSON.stringify(tooBig).includes('BBBBBBBB'), 'the value is not echoed');
    assert.equal((await t.api('PUT', '/api/v1/secrets/big', { value: 'B'.repeat(64 * 1024) })).status, 201, '64 KiB exactly is fine');
    assert.equal((await t.api('DELETE', '/api/v1/secrets/big')).status, 204);

    const missing = await bad('novalue', {});
    assert.ok(missing.problems?.some((q) => q.path.includes('value')), JSON.stringify(missing));
    assert.equal((await t.api('GET', '/api/v1/secrets/novalue')).status, 404);
  });

  it("keeps each owner's secrets to that owner", async () => {
    const made = await t.api<{ key: string }>('POST', '/api/v1/keys', { name: 'other', owner: 'someone-else' });
    const other = made.body.key;
    assert.deepEqual((await t.api<{ secrets: Meta[] }>('GET', '/api/v1/secrets', undefined, other)).body.secrets, []);
    assert.equal((await t.api('GET', '/api/v1/secrets/db/password', undefined, other)).status, 404);
    assert.equal((await t.api('DELETE', '/api/v1/secrets/db/password', undefined, other)).status, 404);
    // The same name is theirs to use, with a value of their own.
    assert.equal((await t.api('PUT', '/api/v1/secrets/db/password', { value: 'theirs' }, other)).status, 201);
    assert.equal(await stored('db/password'), value, "the admin's value is untouched");
    assert.equal((await t.api('DELETE', '/api/v1/secrets/db/password', undefined, other)).status, 204);
    assert.equal((await t.api('GET', '/api/v1/secrets/db/password')).status, 200);
  });

  it('describes the routes in the OpenAPI document', async () => {
    const doc = await t.api<{ paths: Record<string, Record<string, { summary?: string }>> }>('GET', '/api/v1/openapi.json');
    const paths = Object.keys(doc.body.paths).filter((p) => p.startsWith('/api/v1/secrets'));
    assert.ok(paths.length >= 2, paths.join(', '));
    const methods = paths.flatMap((p) => Object.keys(doc.body.paths[p]!));
    for (const m of ['get', 'put', 'delete']) assert.ok(methods.includes(m), `${m} in ${methods.join(', ')}`);
  });

  it('hands the value to a pod as an env var and a file, and no API answer or log line holds it', async () => {
    await t.api('PUT', '/api/v1/secrets/db/password', { value });
    const created = await t.api<{ id: string }>('POST', '/api/v1/pods', {
      name: 'uses-secret',
      volumeGb: 0,
      secrets: { db: 'db/password' },
      volumes: [{ name: 'dbfile', kind: 'secret', secret: 'db' }],
      containers: [{ name: 'main', image: TEST_IMAGE, command: ['sleep', '3600'], secretEnv: { DB_PASSWORD: 'db' }, volumeMounts: [{ name: 'dbfile', mountPath: '/run/secrets/db' }] }],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    await waitFor(
      `pod ${id} RUNNING`,
      async () => ((await t.api<{ status: string }>('GET', `/api/v1/pods/${id}`)).body.status === 'RUNNING' ? true : undefined),
      60_000,
    );
    const exec = async (command: string[]) => (await t.api<{ exitCode: number; stdout: string; stderr: string }>('POST', `/api/v1/pods/${id}/exec`, { command })).body;
    // The test image's busybox has no printenv applet: the shell prints the variable.
    const env = await exec(['sh', '-c', 'echo "$DB_PASSWORD"']);
    assert.deepEqual([env.exitCode, env.stdout], [0, `${value}\n`], JSON.stringify(env));
    const file = await exec(['cat', '/run/secrets/db']);
    assert.deepEqual([file.exitCode, file.stdout], [0, value], JSON.stringify(file));

    const answers = [
      await t.api('GET', `/api/v1/pods/${id}`),
      await t.api('GET', '/api/v1/pods'),
      await t.api('GET', '/api/v1/pods?view=full'),
      await t.api('GET', `/api/v1/pods/${id}/versions`),
      await t.api('GET', '/api/v1/secrets'),
      await t.api('GET', '/api/v1/secrets/db/password'),
    ].map((r) => JSON.stringify(r.body));
    answers.push(await sseText(`${t.url}/api/v1/events?since=0`, t.key, 1500));
    for (const text of answers) assert.ok(!text.includes(value), `the value leaked into ${text.slice(0, 300)}`);
    assert.ok(answers[0]!.includes('db/password'), 'the pod names the secret it uses');
    assert.ok(!logs.join('').includes(value), 'the value is not in the log');
  });

  it('berth secret set / list / rm', async () => {
    const env = { BERTH_URL: t.url, BERTH_API_KEY: t.key, XDG_CONFIG_HOME: join(home, 'none') };
    const ok = async (args: string[], input = ''): Promise<string> => {
      const r = await run(args, env, input);
      assert.equal(r.code, 0, `berth ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
      return r.stdout;
    };

    // Piped: stdin less its trailing newline.
    assert.equal(await ok(['secret', 'set', 'cli/token'], 'from-stdin\n'), 'secret cli/token created\n');
    assert.equal(await stored('cli/token'), 'from-stdin');
    assert.equal(await ok(['secret', 'set', 'cli/token', '--value', 'from-flag']), 'secret cli/token updated\n');
    assert.equal(await stored('cli/token'), 'from-flag');
    const file = join(home, 'cert.pem');
    await writeFile(file, 'line one\nline two\n');
    assert.equal(await ok(['secret', 'set', 'cli/token', '--from-file', file]), 'secret cli/token updated\n');
    assert.equal(await stored('cli/token'), 'line one\nline two\n', "a file's bytes, exactly");

    const both = await run(['secret', 'set', 'cli/x', '--value', 'a', '--from-file', file], env);
    assert.equal(both.code, 1);
    assert.match(both.stderr, /^error: give the value with --value or --from-file, not both$/m);
    const empty = await run(['secret', 'set', 'cli/x'], env, '');
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /^error: the value is empty/m);
    const badName = await run(['secret', 'set', 'no spaces'], env, 'v');
    assert.equal(badName.code, 1);
    assert.match(badName.stderr, /\/name: must be 1-255 characters/);

    const listed = await ok(['secret', 'list']);
    assert.match(listed, /^NAME\s+CREATED\s+UPDATED$/m);
    assert.match(listed, /^cli\/token\s+\d+s\s+\d+s$/m);
    const asJson = JSON.parse(await ok(['-o', 'json', 'secret', 'list'])) as { secrets: Meta[] };
    assert.ok(asJson.secrets.some((s) => s.name === 'cli/token'));
    assert.ok(!JSON.stringify(asJson).includes('line one'));

    assert.equal(await ok(['secret', 'rm', 'cli/token']), 'secret cli/token deleted\n');
    const again = await run(['secret', 'rm', 'cli/token'], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^error: secret cli\/token not found$/m);
  });
});
