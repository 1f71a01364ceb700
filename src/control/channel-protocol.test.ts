import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BerthError } from '../model/index.js';
import { decodeArgs, encodeArgs, errorFromHeaders, errorHeaders, HEADER } from './channel-protocol.js';

describe('the node channel contract', () => {
  it('carries arguments of any size and characters in header pieces nghttp2 accepts', () => {
    for (const args of [{}, { argv: ['echo', 'ünï ✓ "q" \n'] }, { argv: ['x'.repeat(48 * 1024), '✓'.repeat(20_000)] }]) {
      const headers = encodeArgs(args);
      for (const v of Object.values(headers)) {
        assert.ok(v.length <= 16 * 1024);
        assert.match(v, /^[A-Za-z0-9+/=]*$/);
      }
      assert.deepEqual(decodeArgs(headers), args);
    }
    assert.throws(() => encodeArgs({ a: 'x'.repeat(2 * 2 ** 20) }), (e: unknown) => e instanceof BerthError && e.kind === 'VALIDATION');
    assert.throws(() => decodeArgs({}), (e: unknown) => e instanceof BerthError && e.kind === 'VALIDATION');
    assert.throws(() => decodeArgs({ [HEADER.args]: '!!!' }), (e: unknown) => e instanceof BerthError && e.kind === 'VALIDATION');
  });

  it('keeps an error its kind, message and extra members; anything else is a runtime failure', () => {
    const h = errorHeaders(new BerthError('NOT_FOUND', 'no ✓ file', { extra: { path: '/x' } }));
    assert.equal(h[':status'], 404);
    const back = errorFromHeaders(h);
    assert.equal(back.kind, 'NOT_FOUND');
    assert.equal(back.message, 'no ✓ file');
    assert.deepEqual(back.extra, { path: '/x' });
    assert.equal(errorFromHeaders(errorHeaders(new Error('boom'))).kind, 'RUNTIME');
    assert.equal(errorFromHeaders({ ':status': 500, [HEADER.errorKind]: 'NO_SUCH_KIND' }).kind, 'NODE_UNAVAILABLE');
  });
});
