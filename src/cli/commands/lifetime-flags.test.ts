import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lifetimeFrom, lifetimeRows, parseDuration } from './lifetime-flags.js';

describe('parseDuration', () => {
  it('takes a number with its unit, and off', () => {
    assert.deepEqual(['90s', '30m', '30min', '1.5h', '7d', 'off', 'none', '0'].map((t) => parseDuration('--x', t)), [90, 1800, 1800, 5400, 604_800, null, null, null]);
    assert.throws(() => parseDuration('--max-runtime', '8'), /--max-runtime 8: give a duration with its unit \(90s, 30m, 8h, 7d\), or off/);
    assert.throws(() => parseDuration('--x', '2 weeks'), /give a duration/);
  });
});

describe('lifetimeFrom', () => {
  it('makes the flags into the API body, only what was given', () => {
    assert.equal(lifetimeFrom({}), undefined);
    assert.deepEqual(lifetimeFrom({ idleStop: '30m', idleSignals: ['ssh', 'proxy'], maxRuntime: 'off' }), { idleStop: { idleSeconds: 1800, signals: ['ssh', 'proxy'] }, maxRuntimeSeconds: null });
    // A threshold alone changes the pod's idle stop (merged by the server).
    assert.deepEqual(lifetimeFrom({ idleGpuThreshold: 10 }), { idleStop: { gpuThresholdPercent: 10 } });
    assert.throws(() => lifetimeFrom({ idleStop: 'off', idleGpuThreshold: 10 }, '--default-'), /--default-idle-gpu-threshold and --default-idle-signals go with an idle stop/);
  });
});

describe('lifetimeRows', () => {
  it('says the policies and when the pod stops', () => {
    const now = Date.parse('2030-01-01T00:00:00.000Z');
    const rows = Object.fromEntries(
      lifetimeRows(
        {
          lifetime: { idleStop: { idleSeconds: 1800, gpuThresholdPercent: 5, signals: ['gpu', 'ssh'] }, maxRuntimeSeconds: 43_200, terminateAfterStoppedSeconds: null },
          keepAliveUntil: '2029-12-31T00:00:00.000Z',
          stopsAt: '2030-01-01T00:25:00.000Z',
          stopReason: 'GPU under 5% and no SSH activity for 30 min',
          idleSince: '2029-12-31T23:55:00.000Z',
          terminatesAt: null,
          terminateReason: null,
        },
        now,
      ),
    );
    assert.equal(rows.Lifetime, 'idle stop: GPU under 5% and no SSH activity for 30 min; max runtime 12 h');
    assert.equal(rows.Stops, '2030-01-01T00:25:00.000Z (in 25 min): GPU under 5% and no SSH activity for 30 min');
    assert.equal(rows.Terminates, undefined);
    // A keep-alive in the past is not shown.
    assert.equal(rows['Kept alive until'], undefined);
  });
});
