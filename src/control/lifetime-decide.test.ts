import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { InstanceUsage, LifetimePolicy } from '../model/index.js';
import { decideLifetime, gpuBusy, type LifetimeFacts } from './lifetime-decide.js';

const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const MIN = 60_000;
const IDLE: LifetimePolicy = { idleStop: { idleSeconds: 1800, gpuThresholdPercent: 5, signals: ['gpu', 'ssh', 'terminal', 'proxy'] }, maxRuntimeSeconds: null, terminateAfterStoppedSeconds: null };

function facts(over: Partial<LifetimeFacts> = {}): LifetimeFacts {
  return {
    policy: IDLE,
    desiredStatus: 'RUNNING',
    status: 'RUNNING',
    lastStartedAt: T0,
    lastStoppedAt: null,
    keepAliveUntil: null,
    lastUseAt: null,
    openSession: null,
    watchingSince: T0,
    now: T0,
    ...over,
  };
}

describe('decideLifetime', () => {
  it('stops a pod idle for the idle time, and says why', () => {
    assert.equal(decideLifetime(facts({ now: T0 + 29 * MIN })).act, null);
    const v = decideLifetime(facts({ now: T0 + 30 * MIN }));
    assert.equal(v.stopsAt, T0 + 30 * MIN);
    assert.equal(v.stopPolicy, 'idle');
    assert.equal(v.stopReason, 'GPU under 5% and no SSH, terminal or proxy activity for 30 min');
    assert.deepEqual(v.act, { action: 'stop', policy: 'idle', note: 'stopped by the idle policy: GPU under 5% and no SSH, terminal or proxy activity for 30 min' });
  });

  it('counts idle time from the last use, the start, or the controller coming up, whichever is latest', () => {
    assert.equal(decideLifetime(facts({ lastUseAt: T0 + 10 * MIN, now: T0 + 35 * MIN })).stopsAt, T0 + 40 * MIN);
    assert.equal(decideLifetime(facts({ lastStartedAt: T0 - 90 * MIN, watchingSince: T0, now: T0 + 5 * MIN })).stopsAt, T0 + 30 * MIN);
    assert.equal(decideLifetime(facts({ lastStartedAt: T0 + 20 * MIN, lastUseAt: T0, now: T0 + 35 * MIN })).idleSince, T0 + 20 * MIN);
  });

  it('never stops a pod with a session open on a selected signal', () => {
    const v = decideLifetime(facts({ openSession: 'ssh', now: T0 + 600 * MIN }));
    assert.equal(v.act, null);
    assert.equal(v.stopsAt, null);
    assert.equal(v.idleSince, null);
  });

  it('stops after the maximum running time, busy or not, and keeps the earlier of two policies', () => {
    const policy: LifetimePolicy = { ...IDLE, maxRuntimeSeconds: 3600 };
    const busy = decideLifetime(facts({ policy, openSession: 'ssh', now: T0 + 60 * MIN }));
    assert.deepEqual(busy.act, { action: 'stop', policy: 'max-runtime', note: 'stopped by the maximum running time: ran for 1 h' });
    assert.equal(decideLifetime(facts({ policy, now: T0 })).stopPolicy, 'idle');
    assert.equal(decideLifetime(facts({ policy, lastUseAt: T0 + 50 * MIN, now: T0 + 55 * MIN })).stopPolicy, 'max-runtime');
  });

  it('waits for a keep-alive', () => {
    const v = decideLifetime(facts({ keepAliveUntil: T0 + 120 * MIN, now: T0 + 60 * MIN }));
    assert.equal(v.act, null);
    assert.equal(v.stopsAt, T0 + 120 * MIN);
    assert.equal(decideLifetime(facts({ keepAliveUntil: T0 + 120 * MIN, now: T0 + 120 * MIN })).act?.action, 'stop');
    // A keep-alive in the past changes nothing.
    assert.equal(decideLifetime(facts({ keepAliveUntil: T0 - MIN, now: T0 + 30 * MIN })).act?.action, 'stop');
  });

  it('leaves pods alone that do not run as asked: starting, exited on their own, not yet started', () => {
    for (const over of [{ status: 'STARTING' as const }, { status: 'PROVISIONING' as const }, { status: 'ERROR' as const }, { lastStartedAt: null }, { desiredStatus: 'EXITED' as const, status: 'EXITED' as const }]) {
      const v = decideLifetime(facts({ ...over, now: T0 + 1000 * MIN }));
      assert.equal(v.act, null, JSON.stringify(over));
      assert.equal(v.stopsAt, null);
    }
  });

  it('terminates a pod stopped for the given time, and nothing else', () => {
    const policy: LifetimePolicy = { idleStop: null, maxRuntimeSeconds: null, terminateAfterStoppedSeconds: 7 * 86_400 };
    const stopped = { policy, desiredStatus: 'EXITED' as const, status: 'EXITED' as const, lastStoppedAt: T0 };
    assert.equal(decideLifetime(facts({ ...stopped, now: T0 + 6 * 86_400_000 })).act, null);
    assert.equal(decideLifetime(facts({ ...stopped, now: T0 })).terminatesAt, T0 + 7 * 86_400_000);
    assert.deepEqual(decideLifetime(facts({ ...stopped, now: T0 + 7 * 86_400_000 })).act, { action: 'terminate', policy: 'terminate-after-stopped', note: 'terminated by the terminate-after-stopped policy: stopped for 7 d' });
    // Running: the terminate clock does not tick, nor without a stop time.
    assert.equal(decideLifetime(facts({ policy, now: T0 + 99 * 86_400_000 })).terminatesAt, null);
    assert.equal(decideLifetime(facts({ ...stopped, lastStoppedAt: null, now: T0 + 99 * 86_400_000 })).act, null);
  });

  it('describes an idle stop on fewer signals', () => {
    const policy: LifetimePolicy = { idleStop: { idleSeconds: 90, gpuThresholdPercent: 10, signals: ['ssh'] }, maxRuntimeSeconds: null, terminateAfterStoppedSeconds: null };
    assert.equal(decideLifetime(facts({ policy })).stopReason, 'no SSH activity for 90 s');
    assert.equal(decideLifetime(facts({ policy: { ...policy, idleStop: { ...policy.idleStop!, signals: ['gpu'] } } })).stopReason, 'GPU under 10% for 90 s');
  });
});

describe('gpuBusy', () => {
  const sample = (util: number | null, simulated = false, at = '2030-01-01T00:05:00.000Z'): { usage: InstanceUsage } => ({
    usage: { at, containers: [], gpus: [{ uuid: 'GPU-1', index: 0, name: 'H100', utilizationPercent: util, memoryUsedMb: null, memoryTotalMb: null, powerWatts: null, temperatureC: null, simulated }] },
  });

  it('is busy at or above the threshold, at the time of the sample', () => {
    assert.deepEqual(gpuBusy([sample(5)], 5), { busy: true, at: Date.parse('2030-01-01T00:05:00.000Z') });
    assert.deepEqual(gpuBusy([sample(4.9)], 5), { busy: false, at: null });
  });

  it('never counts simulated or unknown figures, nor a pod without samples, as busy', () => {
    assert.equal(gpuBusy([sample(100, true)], 5).busy, false);
    assert.equal(gpuBusy([sample(null)], 5).busy, false);
    assert.equal(gpuBusy([], 5).busy, false);
  });
});
