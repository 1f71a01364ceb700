import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { BerthError, compilePodSpec, type PodInput as PodInputT } from '../model/index.js';
import { PodInput } from './native/schemas.js';
import { ajvPath, jsonErrorWithoutText, problemsFromValidation, sendProblem, toBerthError } from './problem.js';

describe('ajvPath', () => {
  it('writes array indices in parentheses', () => {
    assert.equal(ajvPath('/containers/0/name'), '/containers(0)/name');
    assert.equal(ajvPath('/containers/12/ports/3'), '/containers(12)/ports(3)');
    assert.equal(ajvPath('/ports/0'), '/ports(0)');
  });

  it('leaves names and digits inside names alone', () => {
    assert.equal(ajvPath('/gpuCount'), '/gpuCount');
    assert.equal(ajvPath('/env/VAR1'), '/env/VAR1');
    assert.equal(ajvPath('/env/1X'), '/env/1X');
    assert.equal(ajvPath('/containers0/name'), '/containers0/name');
  });

  it('appends the missing property of a required error', () => {
    assert.equal(ajvPath('', 'image'), '/image');
    assert.equal(ajvPath('/containers/1', 'image'), '/containers(1)/image');
  });

  it('gives / for the document itself', () => {
    assert.equal(ajvPath(''), '/');
    assert.equal(ajvPath('', undefined), '/');
  });
});

describe('problemsFromValidation', () => {
  it('words each keyword for people and keeps every issue', () => {
    const problems = problemsFromValidation(
      [
        { instancePath: '', keyword: 'required', params: { missingProperty: 'command' }, message: "must have required property 'command'" },
        { instancePath: '/containers/0', keyword: 'additionalProperties', params: { additionalProperty: 'imag' }, message: 'must NOT have additional properties' },
        { instancePath: '/gpuCount', keyword: 'minimum', params: { limit: 0 }, message: 'must be >= 0' },
        { instancePath: '/ports/1', keyword: 'type', params: {} },
      ],
      'body',
    );
    assert.deepEqual(problems, [
      { path: '/command', message: 'is required' },
      { path: '/containers(0)', message: 'unknown field imag' },
      { path: '/gpuCount', message: 'must be >= 0' },
      { path: '/ports(1)', message: 'is invalid' },
    ]);
  });

  it('prefixes paths outside the body with where they are', () => {
    const problems = problemsFromValidation([{ instancePath: '/limit', keyword: 'minimum', params: {}, message: 'must be >= 1' }], 'querystring');
    assert.deepEqual(problems, [{ path: 'query:/limit', message: 'must be >= 1' }]);
  });

  it('answers nothing for no issues', () => {
    assert.deepEqual(problemsFromValidation([], 'body'), []);
  });
});

describe('toBerthError', () => {
  it('passes our own errors through', () => {
    const e = new BerthError('NO_CAPACITY', 'full');
    assert.equal(toBerthError(e), e);
  });

  it('turns Fastify client errors into ours and anything else into INTERNAL', () => {
    const tooLarge = toBerthError(Object.assign(new Error('Request body is too large'), { statusCode: 413 }));
    assert.equal(tooLarge.code, 'BERTH_ERR_VALIDATION');
    assert.equal(tooLarge.extra.httpStatus, 413);
    assert.equal(toBerthError(Object.assign(new Error('no'), { statusCode: 404 })).kind, 'NOT_FOUND');
    assert.equal(toBerthError(Object.assign(new Error('no'), { statusCode: 401 })).kind, 'UNAUTHORIZED');
    const bug = toBerthError(new TypeError('x is undefined'));
    assert.equal(bug.kind, 'INTERNAL');
    assert.ok(!bug.message.includes('x is undefined'), 'a bug\'s message stays in the log');
    assert.equal(toBerthError(Object.assign(new Error('upstream'), { statusCode: 502 })).kind, 'INTERNAL');
  });
});

/** A server with the API's ajv options and error handler, to see what real schema errors become. */
async function app(): Promise<FastifyInstance> {
  const a = Fastify({ ajv: { customOptions: { allErrors: true, coerceTypes: 'array', removeAdditional: false, useDefaults: true } } });
  a.setErrorHandler((err, req, reply) => sendProblem(req, reply, toBerthError(err)));
  a.post('/pods', { schema: { body: PodInput } }, async () => ({ ok: true }));
  a.post('/compile', { schema: { body: PodInput } }, async (req) => compilePodSpec(req.body as PodInputT).containers[0]!.ports);
  a.get('/list', { schema: { querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 1 } } } } }, async () => ({ ok: true }));
  a.post('/busy', async () => {
    throw new BerthError('ACTION_NOT_ALLOWED', 'cannot start', { extra: { status: 'RUNNING', allowedActions: ['stop'] } });
  });
  a.post('/tiny', { bodyLimit: 10 }, async () => ({ ok: true }));
  await a.ready();
  return a;
}

describe('problem+json answers', () => {
  it('lists every schema problem of a body with our paths', async () => {
    const a = await app();
    const res = await a.inject({ method: 'POST', url: '/pods', payload: { image: 'x', gpuCount: -1, colour: 'red', containers: [{ image: 'y', imag: 'z' }], ports: [1, 2] } });
    assert.equal(res.statusCode, 400);
    assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
    const body = res.json<{ code: string; status: number; retryable: boolean; problems: { path: string; message: string }[]; instance: string }>();
    assert.equal(body.code, 'BERTH_ERR_VALIDATION');
    assert.equal(body.status, 400);
    assert.equal(body.retryable, false);
    assert.equal(body.instance, '/pods');
    const byPath = new Map(body.problems.map((p) => [p.path, p.message]));
    assert.equal(byPath.get('/'), 'unknown field colour');
    assert.equal(byPath.get('/containers(0)'), 'unknown field imag');
    assert.match(byPath.get('/gpuCount') ?? '', />= 0/);
    await a.close();
  });

  it('passes RunPod\'s "8888/http,22/tcp" ports string through the body schema', async () => {
    const a = await app();
    const res = await a.inject({ method: 'POST', url: '/compile', payload: { image: 'x', ports: '8888/http,22/tcp' } });
    await a.close();
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), [
      { port: 8888, protocol: 'http' },
      { port: 22, protocol: 'tcp' },
    ]);
  });

  it('passes a ports list through the body schema', async () => {
    const a = await app();
    const res = await a.inject({ method: 'POST', url: '/compile', payload: { image: 'x', ports: ['8888/http', '22/tcp'] } });
    await a.close();
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json<unknown[]>().length, 2);
  });

  it('prefixes query problems with query:', async () => {
    const a = await app();
    const res = await a.inject({ method: 'GET', url: '/list?limit=0' });
    assert.equal(res.statusCode, 400);
    assert.deepEqual(res.json<{ problems: unknown }>().problems, [{ path: 'query:/limit', message: 'must be >= 1' }]);
    await a.close();
  });

  it('carries extra members such as allowedActions, and our own status over extra.status', async () => {
    const a = await app();
    const res = await a.inject({ method: 'POST', url: '/busy' });
    assert.equal(res.statusCode, 409);
    const body = res.json<Record<string, unknown>>();
    assert.equal(body.code, 'BERTH_ERR_ACTION_NOT_ALLOWED');
    assert.deepEqual(body.allowedActions, ['stop']);
    assert.equal(body.status, 409, 'the pod status in extra does not replace the HTTP status');
    assert.equal('problems' in body, false);
    await a.close();
  });

  it('keeps Fastify\'s own 4xx status for client errors it maps to VALIDATION', async () => {
    const a = await app();
    const res = await a.inject({ method: 'POST', url: '/tiny', payload: { image: 'a long enough body' } });
    assert.equal(res.statusCode, 413);
    const body = res.json<Record<string, unknown>>();
    assert.equal(body.code, 'BERTH_ERR_VALIDATION');
    assert.equal(body.status, 413);
    await a.close();
  });
});

describe('jsonErrorWithoutText', () => {
  it('keeps nothing of the body a JSON error quotes', () => {
    for (const body of ['{"value": hunter2}', '{"value": "hunter2"', 'hunter2', '{"a":1} hunter2']) {
      let message = '';
      try {
        JSON.parse(body);
      } catch (e) {
        message = (e as Error).message;
      }
      assert.ok(message, `${body} is refused`);
      assert.doesNotMatch(jsonErrorWithoutText(message), /hunter2|"/, message);
    }
  });
});
