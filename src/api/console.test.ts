import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { isApiPath, isConsoleRequest, loadConsole, registerConsole } from './console.js';

describe('isApiPath', () => {
  it('keeps every API prefix and /healthz to the APIs', () => {
    for (const p of ['/api/v1/pods', '/api', '/runpod/v2/pods', '/marathon/v2/pods', '/service/marathon/v2/pods', '/v2/apps', '/healthz']) assert.ok(isApiPath(p), p);
    for (const p of ['/', '/pods', '/pods/2s56cp0pof1rmt', '/assets/index-abc.js', '/apis', '/healthzz']) assert.ok(!isApiPath(p), p);
  });
});

describe('the console at /', () => {
  let dir: string;
  let app: FastifyInstance;
  const js = 'console.log("berth");\n'.repeat(100);
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-console-'));
    await mkdir(join(dir, 'assets'));
    await writeFile(join(dir, 'index.html'), '<!doctype html><div id="root"></div>');
    await writeFile(join(dir, 'assets', 'index-abc.js'), js);
    app = Fastify();
    // As buildApi wires it: the page at /, the rest from the root not-found handler; an API prefix with a 404 of its own.
    const files = registerConsole(app, await loadConsole(dir));
    app.get('/api/v1/pods', async () => ({ pods: [] }));
    await app.register(
      async (scope) => {
        scope.get('/info', async () => ({ name: 'marathon' }));
        scope.setNotFoundHandler((_req, reply) => reply.code(404).send({ message: 'URI not found' }));
      },
      { prefix: '/marathon/v2' },
    );
    app.setNotFoundHandler((req, reply) => (isConsoleRequest(req) ? files(req, reply) : reply.code(404).send({ code: 'BERTH_ERR_NOT_FOUND' })));
  });
  after(async () => {
    await app.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers index.html at / and at any app route, revalidated each time', async () => {
    for (const url of ['/', '/pods', '/pods/2s56cp0pof1rmt?x=1']) {
      const r = await app.inject({ url });
      assert.equal(r.statusCode, 200, url);
      assert.match(r.headers['content-type'] as string, /^text\/html/);
      assert.equal(r.headers['cache-control'], 'no-cache');
      assert.match(r.body, /id="root"/);
    }
  });

  it('serves hashed assets for a year, gzipped when asked', async () => {
    const r = await app.inject({ url: '/assets/index-abc.js', headers: { 'accept-encoding': 'gzip, br' } });
    assert.equal(r.statusCode, 200);
    assert.match(r.headers['content-type'] as string, /^text\/javascript/);
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.match(r.headers['cache-control'] as string, /immutable/);
    assert.equal(gunzipSync(r.rawPayload).toString(), js);
    const plain = await app.inject({ url: '/assets/index-abc.js' });
    assert.equal(plain.body, js);
  });

  it('answers 404 for a missing asset (never the page as JavaScript), and leaves API paths to the APIs', async () => {
    assert.equal((await app.inject({ url: '/assets/index-old.js' })).statusCode, 404);
    assert.deepEqual((await app.inject({ url: '/api/v1/pods' })).json(), { pods: [] });
    const unknown = await app.inject({ url: '/api/v1/nope' });
    assert.equal(unknown.statusCode, 404);
    assert.deepEqual(unknown.json(), { code: 'BERTH_ERR_NOT_FOUND' });
    // An API with its own not-found answer keeps it.
    assert.deepEqual((await app.inject({ url: '/marathon/v2/nope' })).json(), { message: 'URI not found' });
    assert.equal((await app.inject({ method: 'POST', url: '/pods' })).statusCode, 404);
  });

  it('says the console is not built when there is no build', async () => {
    const bare = Fastify();
    const files = registerConsole(bare, await loadConsole(join(dir, 'nothing-here')));
    bare.setNotFoundHandler((req, reply) => files(req, reply));
    const r = await bare.inject({ url: '/pods' });
    assert.equal(r.statusCode, 503);
    assert.match(r.body, /console is not built/);
    await bare.close();
  });
});
