import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatJoinToken, joinTokenIdOf, joinTokenRefusal, parseJoinToken } from './join.js';

describe('join tokens', () => {
  const fp = 'AB:CD:' + 'ef:'.repeat(29) + '01';
  const hex = 'abcd' + 'ef'.repeat(29) + '01';

  it('carry the server certificate fingerprint when it has TLS, as k3s secure tokens do', () => {
    assert.equal(formatJoinToken('bjt_abc123.s3cr3t', undefined), 'bjt_abc123.s3cr3t');
    const pinned = formatJoinToken('bjt_abc123.s3cr3t', fp);
    assert.equal(pinned, `B10${hex}::bjt_abc123.s3cr3t`);
    assert.deepEqual(parseJoinToken(pinned), { secret: 'bjt_abc123.s3cr3t', fingerprint: hex });
    assert.deepEqual(parseJoinToken(' bjt_abc123.s3cr3t\n'), { secret: 'bjt_abc123.s3cr3t', fingerprint: null });
    assert.deepEqual(parseJoinToken('B10short::bjt_x.y'), { secret: 'B10short::bjt_x.y', fingerprint: null }, 'not a fingerprint: not pinned, and the server refuses it');
  });

  it('name their id', () => {
    assert.equal(joinTokenIdOf('bjt_abc123.s3cr3t-_x'), 'abc123');
    assert.equal(joinTokenIdOf('berth_abc'), undefined);
  });

  it('say why they are refused: revoked before expired before used up', () => {
    const now = Date.parse('2030-01-01T00:00:00Z');
    const live = { expiresAt: '2030-01-02T00:00:00.000Z', revokedAt: null, maxUses: 2, uses: 1 };
    assert.equal(joinTokenRefusal(live, now), null);
    assert.equal(joinTokenRefusal({ ...live, expiresAt: null, maxUses: null, uses: 99 }, now), null);
    assert.equal(joinTokenRefusal({ ...live, uses: 2 }, now), 'used-up');
    assert.equal(joinTokenRefusal({ ...live, uses: 2, expiresAt: '2030-01-01T00:00:00.000Z' }, now), 'expired');
    assert.equal(joinTokenRefusal({ ...live, uses: 2, expiresAt: '2029-01-01T00:00:00.000Z', revokedAt: '2029-06-01T00:00:00.000Z' }, now), 'revoked');
  });
});
