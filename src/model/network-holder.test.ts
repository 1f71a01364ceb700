import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePodSpec } from './spec-compile.js';
import { specToInput } from './spec-input.js';
import { holdsNetworkApart, normalizeSpec, type PodSpec } from './spec.js';

describe('networkHolder: where an instance holds its network', () => {
  it('holds it apart for several containers, not for one, by default', () => {
    const one = compilePodSpec({ image: 'busybox' });
    const two = compilePodSpec({ containers: [{ name: 'a', image: 'busybox' }, { name: 'b', image: 'busybox' }] });
    assert.equal(one.networkHolder, undefined, 'the default is left out of the spec');
    assert.equal(holdsNetworkApart(one), false);
    assert.equal(holdsNetworkApart(two), true);
  });

  it('holds it apart for one container when the spec says always', () => {
    const spec = compilePodSpec({ image: 'busybox', networkHolder: 'always' });
    assert.equal(spec.networkHolder, 'always');
    assert.equal(holdsNetworkApart(spec), true);
  });

  it('refuses a value it does not know', () => {
    assert.throws(() => compilePodSpec({ image: 'busybox', networkHolder: 'sometimes' as never }), (e: Error & { problems?: { path: string }[] }) => {
      assert.deepEqual(e.problems?.map((p) => p.path), ['/networkHolder']);
      return true;
    });
  });

  it('reads a Marathon pod stored before the field as holding its network apart, and no other', () => {
    const stored = (spec: PodSpec): PodSpec => {
      const { networkHolder: _n, ...rest } = spec;
      return JSON.parse(JSON.stringify(rest)) as PodSpec;
    };
    const marathon = normalizeSpec(stored(compilePodSpec({ image: 'busybox', marathon: { id: '/web' } })));
    assert.equal(marathon.networkHolder, 'always');
    assert.equal(holdsNetworkApart(marathon), true);
    const native = normalizeSpec(stored(compilePodSpec({ image: 'busybox' })));
    assert.equal(native.networkHolder, undefined);
    assert.equal(holdsNetworkApart(native), false);
    const several = normalizeSpec(stored(compilePodSpec({ containers: [{ name: 'a', image: 'x' }, { name: 'b', image: 'x' }] })));
    assert.equal(holdsNetworkApart(several), true);
  });

  it('reads a spec written with the field as it was written', () => {
    const spec = compilePodSpec({ image: 'busybox', marathon: { id: '/web' }, networkHolder: 'multi-container' });
    const back = normalizeSpec(JSON.parse(JSON.stringify(spec)) as PodSpec);
    assert.equal(back.networkHolder, 'multi-container');
    assert.equal(JSON.stringify(back), JSON.stringify(spec), 'same fields, same order');
  });

  it('is carried into the input an update merges over', () => {
    const spec = compilePodSpec({ image: 'busybox', networkHolder: 'always' });
    const changed = compilePodSpec({ ...specToInput(spec), image: 'nginx' });
    assert.equal(changed.networkHolder, 'always');
    assert.equal(holdsNetworkApart(changed), true);
  });
});
