import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Problem } from './errors.js';
import { compileLifetime, formatDuration, mergeLifetime } from './lifetime.js';
import { compilePodSpec } from './spec-compile.js';
import { mergeTemplate, specToInput } from './spec-input.js';

const compile = (v: unknown): { policy: ReturnType<typeof compileLifetime>; problems: Problem[] } => {
  const problems: Problem[] = [];
  return { policy: compileLifetime(v, problems), problems };
};

describe('compileLifetime', () => {
  it('fills an idle stop with the defaults and keeps the signals in one order', () => {
    assert.deepEqual(compile({ idleStop: { idleSeconds: 1800 } }).policy, {
      idleStop: { idleSeconds: 1800, gpuThresholdPercent: 5, signals: ['gpu', 'ssh', 'terminal', 'proxy', 'port-forward'] },
      maxRuntimeSeconds: null,
      terminateAfterStoppedSeconds: null,
    });
    assert.deepEqual(compile({ idleStop: { idleSeconds: 2.5, signals: ['proxy', 'ssh'] } }).policy?.idleStop?.signals, ['ssh', 'proxy']);
  });

  it('is absent when no policy is on', () => {
    assert.equal(compile(undefined).policy, undefined);
    assert.equal(compile(null).policy, undefined);
    assert.equal(compile({ idleStop: null, maxRuntimeSeconds: null }).policy, undefined);
  });

  it('names every problem with its path', () => {
    const { problems } = compile({ idleStop: { idleSeconds: -1, gpuThresholdPercent: 120, signals: ['gpu', 'jupyter', 'gpu'] }, maxRuntimeSeconds: 'a day', terminateAfterStoppedSeconds: 0, maxRuntime: 5 });
    assert.deepEqual(
      problems.map((p) => p.path),
      ['/lifetime/maxRuntime', '/lifetime/idleStop/idleSeconds', '/lifetime/idleStop/gpuThresholdPercent', '/lifetime/idleStop/signals(1)', '/lifetime/idleStop/signals(2)', '/lifetime/maxRuntimeSeconds', '/lifetime/terminateAfterStoppedSeconds'],
    );
    assert.match(problems.find((p) => p.path === '/lifetime/idleStop/signals(1)')!.message, /must be one of gpu, ssh, terminal, proxy, port-forward/);
    assert.match(problems.find((p) => p.path === '/lifetime/maxRuntimeSeconds')!.message, /number of seconds/);
    assert.deepEqual(compile({ idleStop: {} }).problems.map((p) => p.path), ['/lifetime/idleStop/idleSeconds']);
    assert.deepEqual(compile({ idleStop: { idleSeconds: 60, signals: [] } }).problems.map((p) => p.path), ['/lifetime/idleStop/signals']);
    assert.deepEqual(compile('30m').problems.map((p) => p.path), ['/lifetime']);
  });

  it('comes back through a whole pod spec with the pod problems', () => {
    const spec = compilePodSpec({ image: 'busybox', lifetime: { maxRuntimeSeconds: 3600 } });
    assert.equal(spec.lifetime?.maxRuntimeSeconds, 3600);
    assert.deepEqual(specToInput(spec).lifetime, { idleStop: null, maxRuntimeSeconds: 3600, terminateAfterStoppedSeconds: null });
    assert.equal('lifetime' in compilePodSpec({ image: 'busybox' }), false);
    assert.throws(() => compilePodSpec({ image: 'busybox', gpuCount: -1, lifetime: { maxRuntimeSeconds: -5 } }), (e: { problems: Problem[] }) => e.problems.some((p) => p.path === '/gpuCount') && e.problems.some((p) => p.path === '/lifetime/maxRuntimeSeconds'));
  });
});

describe('mergeLifetime', () => {
  it('merges policy by policy, an idle stop field by field, and null turns off', () => {
    const template = { idleStop: { idleSeconds: 1800, signals: ['ssh' as const] }, terminateAfterStoppedSeconds: 86_400 };
    assert.deepEqual(mergeLifetime(template, { maxRuntimeSeconds: 60 }), { ...template, maxRuntimeSeconds: 60 });
    assert.deepEqual(mergeLifetime(template, { idleStop: { idleSeconds: 60 } })?.idleStop, { idleSeconds: 60, signals: ['ssh'] });
    assert.deepEqual(mergeLifetime(template, { idleStop: null })?.idleStop, null);
    assert.equal(mergeLifetime(template, null), null);
    assert.equal(mergeLifetime(template, undefined), template);
    assert.deepEqual(mergeTemplate({ image: 'a', lifetime: template }, { lifetime: { maxRuntimeSeconds: 5 } }).lifetime, { ...template, maxRuntimeSeconds: 5 });
  });
});

describe('formatDuration', () => {
  it('says the largest whole unit', () => {
    assert.deepEqual([30, 90, 1800, 7200, 5400, 604_800, 2.5].map(formatDuration), ['30 s', '90 s', '30 min', '2 h', '90 min', '7 d', '2.5 s']);
  });
});
