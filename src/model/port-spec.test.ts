import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatPort, parsePort } from './port-spec.js';
import { compilePodSpec } from './spec-compile.js';
import { specToInput } from './spec-input.js';

describe('private http ports', () => {
  it('parses 8888/http:private and leaves public ports as they were', () => {
    assert.deepEqual(parsePort('8888/http:private'), { port: 8888, protocol: 'http', private: true });
    assert.deepEqual(parsePort('8888/http:public'), { port: 8888, protocol: 'http' });
    assert.deepEqual(parsePort('8888/http'), { port: 8888, protocol: 'http' });
    assert.deepEqual(parsePort(' 22/tcp '), { port: 22, protocol: 'tcp' });
  });

  it('refuses a private TCP port and unknown suffixes', () => {
    assert.match(String(parsePort('22/tcp:private')), /only http ports can be private/);
    assert.equal(typeof parsePort('8888/http:secret'), 'string');
    assert.equal(typeof parsePort('8888/http:'), 'string');
  });

  it('formats back to what it parsed, so specs round-trip through the friendly form', () => {
    for (const text of ['8888/http:private', '8000/http', '22/tcp']) {
      const p = parsePort(text);
      assert.notEqual(typeof p, 'string');
      assert.equal(formatPort(p as Exclude<typeof p, string>), text);
    }
    const spec = compilePodSpec({ image: 'x', ports: '8888/http:private,8000/http,22/tcp' });
    assert.deepEqual(spec.containers[0]!.ports, [
      { port: 8888, protocol: 'http', private: true },
      { port: 8000, protocol: 'http' },
      { port: 22, protocol: 'tcp' },
    ]);
    assert.deepEqual(compilePodSpec(specToInput(spec)), spec);
  });

  it('names the port in a list that has a bad one', () => {
    assert.throws(() => compilePodSpec({ image: 'x', ports: ['8888/http', '22/tcp:private'] }), (e: Error & { problems?: { path: string }[] }) => e.problems?.[0]?.path === '/ports(1)');
  });
});
