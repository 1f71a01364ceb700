import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import ssh2 from 'ssh2';
import { newHostKeyPair } from './gateway.js';

describe('gateway host key', () => {
  it('is always one ssh2 reads back (its generator makes a malformed one about once in 256)', () => {
    for (let i = 0; i < 1500; i++) {
      const pair = newHostKeyPair();
      assert.ok(!(ssh2.utils.parseKey(pair.private) instanceof Error), pair.private);
      assert.ok(!(ssh2.utils.parseKey(pair.public) instanceof Error), pair.public);
    }
  });
});
