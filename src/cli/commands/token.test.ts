import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tokenInput } from './token.js';

describe('berth token create flags', () => {
  it('make the API body: only what was given, the ttl in seconds, 0 for never', () => {
    assert.deepEqual(tokenInput({ label: [] }), {});
    assert.deepEqual(tokenInput({ ttl: '1h', uses: 1, label: ['berth.io/datacenter=eu-1', 'rack=r1'], description: 'gpu box' }), {
      ttlSeconds: 3600,
      maxUses: 1,
      labels: { 'berth.io/datacenter': 'eu-1', rack: 'r1' },
      description: 'gpu box',
    });
    assert.deepEqual(tokenInput({ ttl: '0', label: [] }), { ttlSeconds: 0 });
    assert.deepEqual(tokenInput({ ttl: '90s', label: [] }), { ttlSeconds: 90 });
  });

  it('refuse what the server would, naming the flag', () => {
    assert.throws(() => tokenInput({ ttl: '24', label: [] }), /--ttl 24: give a duration with its unit/);
    assert.throws(() => tokenInput({ uses: 0, label: [] }), /--uses is how many machines/);
    assert.throws(() => tokenInput({ uses: 1.5, label: [] }), /--uses/);
    assert.throws(() => tokenInput({ label: ['nolabel'] }), /--label nolabel: expected KEY=VALUE/);
  });
});
