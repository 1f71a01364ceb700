import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BerthError, ERRORS, invalid } from './errors.js';
import { answerStatus, problemDocument } from './problem.js';

describe('problemDocument', () => {
  it('berth: the catalogue title, code, retryable and every problem, extra members first', () => {
    const err = new BerthError('ACTION_NOT_ALLOWED', 'pod p is EXITED', { extra: { allowedActions: ['start'] } });
    const { status, body } = problemDocument(err, 'berth', { instance: '/api/v1/pods/p/stop' });
    assert.equal(status, 409);
    assert.deepEqual(Object.entries(body), [
      ['allowedActions', ['start']],
      ['type', 'https://berth.dev/errors/BERTH_ERR_ACTION_NOT_ALLOWED'],
      ['title', 'Action not allowed in the current status'],
      ['status', 409],
      ['code', 'BERTH_ERR_ACTION_NOT_ALLOWED'],
      ['detail', 'pod p is EXITED'],
      ['instance', '/api/v1/pods/p/stop'],
      ['retryable', false],
    ]);
    const bad = problemDocument(invalid([{ path: '/name', message: 'is required' }]), 'berth', { instance: '/x' });
    assert.deepEqual(bad.body.problems, [{ path: '/name', message: 'is required' }]);
  });

  it('keeps the status a Fastify client error had, and never writes it as a member', () => {
    const err = new BerthError('VALIDATION', 'body too large', { extra: { httpStatus: 413 } });
    assert.equal(answerStatus(err), 413);
    for (const shape of ['berth', 'runpod', 'proxy'] as const) {
      const { status, body } = problemDocument(err, shape);
      assert.equal(status, 413);
      assert.equal(body.status, 413);
      assert.equal('httpStatus' in body, false);
    }
  });

  it('runpod: the reason phrase as title, errors as lines, no allowedActions, an asked-for status', () => {
    const err = invalid([
      { path: '/action', message: 'must be one of start, stop' },
      { path: '/gpu', message: 'is required' },
    ]);
    const { status, body } = problemDocument(err, 'runpod', { status: 422, instance: '/runpod/v2/pods' });
    assert.equal(status, 422);
    assert.equal(
      JSON.stringify(body),
      '{"type":"https://berth.dev/errors/BERTH_ERR_VALIDATION","title":"Unprocessable Entity","status":422,"detail":"/action: must be one of start, stop; /gpu: is required","errors":["/action: must be one of start, stop","/gpu: is required"],"code":"BERTH_ERR_VALIDATION","instance":"/runpod/v2/pods"}',
    );
    const conflict = problemDocument(new BerthError('ACTION_NOT_ALLOWED', 'no', { extra: { allowedActions: [], podStatus: 'EXITED' } }), 'runpod', { instance: '/i' });
    assert.equal(conflict.body.title, 'Conflict');
    assert.equal(conflict.body.podStatus, 'EXITED');
    assert.equal('allowedActions' in conflict.body, false);
  });

  it('proxy: about:blank, the message as title and detail, the code and status from the catalogue', () => {
    const { status, body } = problemDocument(new BerthError('POD_NOT_RUNNING', 'pod p is EXITED'), 'proxy');
    assert.equal(status, 503);
    assert.equal(JSON.stringify(body), '{"type":"about:blank","title":"pod p is EXITED","status":503,"code":"BERTH_ERR_POD_NOT_RUNNING","detail":"pod p is EXITED"}');
  });

  it('has a status and a title for every code in the catalogue', () => {
    for (const kind of Object.keys(ERRORS) as (keyof typeof ERRORS)[]) {
      const { status, body } = problemDocument(new BerthError(kind), 'berth');
      assert.equal(status, ERRORS[kind].status);
      assert.equal(body.title, ERRORS[kind].title);
      assert.equal(body.code, `BERTH_ERR_${kind}`);
    }
  });
});
