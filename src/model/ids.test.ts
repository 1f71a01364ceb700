import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  POD_ID_PATTERN,
  instanceIdOf,
  isPodId,
  newApiKeyId,
  newNetworkVolumeId,
  newNodeId,
  newPodId,
  newRegistryAuthId,
  newSshKeyId,
  newTemplateId,
  randomBase36,
  type PodId,
} from './ids.js';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

describe('pod ids', () => {
  it('are 14 lowercase base-36 characters, usable as a host label', () => {
    for (let i = 0; i < 1000; i++) {
      const id = newPodId();
      assert.match(id, /^[0-9a-z]{14}$/);
      assert.ok(isPodId(id));
      assert.ok(POD_ID_PATTERN.test(`${id}`));
    }
  });

  it('do not repeat', () => {
    const ids = new Set(Array.from({ length: 10_000 }, () => newPodId()));
    assert.equal(ids.size, 10_000);
  });

  it('isPodId refuses anything else', () => {
    for (const s of ['', '2s56cp0pof1rm', '2s56cp0pof1rmtx', '2S56CP0POF1RMT', '2s56cp0pof1rm-', ' 2s56cp0pof1rmt', '2s56cp0pof1rmt\n']) assert.equal(isPodId(s), false, JSON.stringify(s));
    assert.equal(isPodId('2s56cp0pof1rmt'), true);
  });
});

describe('randomBase36', () => {
  it('gives exactly the length asked for', () => {
    for (const n of [0, 1, 7, 14, 100, 1000]) {
      const s = randomBase36(n);
      assert.equal(s.length, n);
      assert.match(s, /^[0-9a-z]*$/);
    }
  });

  it('uses the 36 characters uniformly (chi-squared)', () => {
    // 10,000 draws per character. Without rejection sampling `byte % 36` favours 0-3 by 8/7 and
    // the statistic lands near 700; uniform draws give about 35 (df 35), above 100 with p ≈ 4e-8.
    const text = randomBase36(36 * 10_000);
    const counts = new Map<string, number>();
    for (const ch of text) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    assert.deepEqual([...counts.keys()].sort().join(''), ALPHABET);
    const expected = text.length / 36;
    let chi2 = 0;
    for (const n of counts.values()) chi2 += (n - expected) ** 2 / expected;
    assert.ok(chi2 < 100, `chi-squared ${chi2.toFixed(1)} is too far from uniform`);
  });

  it('spreads each position, not just the whole string', () => {
    const firsts = new Set(Array.from({ length: 2000 }, () => newPodId()[0]));
    const lasts = new Set(Array.from({ length: 2000 }, () => newPodId()[13]));
    assert.equal(firsts.size, 36);
    assert.equal(lasts.size, 36);
  });
});

describe('other ids', () => {
  it('have their documented lengths', () => {
    const lengths: [string, () => string, number][] = [
      ['node', newNodeId, 12],
      ['network volume', newNetworkVolumeId, 10],
      ['template', newTemplateId, 10],
      ['registry auth', newRegistryAuthId, 16],
      ['ssh key', newSshKeyId, 10],
      ['api key', newApiKeyId, 10],
    ];
    for (const [what, make, length] of lengths) assert.match(make(), new RegExp(`^[0-9a-z]{${length}}$`), what);
  });
});

describe('instanceIdOf', () => {
  it('reads {podId}-{ordinal}', () => {
    const pod = '2s56cp0pof1rmt' as PodId;
    assert.equal(instanceIdOf(pod, 0), '2s56cp0pof1rmt-0');
    assert.equal(instanceIdOf(pod, 12), '2s56cp0pof1rmt-12');
  });

  it('gives back the pod id when the ordinal suffix is cut off', () => {
    const pod = newPodId();
    // The events route and the change feed recover the pod id this way.
    assert.equal(instanceIdOf(pod, 3).replace(/-\d+$/, ''), pod);
  });
});
