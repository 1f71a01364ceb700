import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { BACKOFF_RESET_MS, RestartTracker } from './restarts.js';

const MARATHON = { initialSeconds: 1, factor: 1.15, maxSeconds: 300 };

describe('RestartTracker', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
  afterEach(() => mock.timers.reset());

  it("backs off initial × factor^n, n counting restarts and failed launches, capped at the maximum", () => {
    const t = new RestartTracker(() => undefined);
    assert.equal(t.delaySeconds(MARATHON), 1);
    t.restarts = 2;
    assert.equal(t.delaySeconds(MARATHON), 1.15 ** 2);
    t.launchFailures = 3;
    assert.equal(t.delaySeconds(MARATHON), 1.15 ** 5);
    t.restarts = 100;
    assert.equal(t.delaySeconds(MARATHON), 300);
  });

  it('counts a restart or a failed launch when the delay has passed, marks the restart due and wakes the instance', () => {
    let woken = 0;
    const t = new RestartTracker(() => woken++);
    t.retryAfter(2, 'restart');
    assert.ok(t.waiting);
    mock.timers.tick(1_999);
    assert.equal(woken, 0);
    assert.equal(t.restarts, 0);
    mock.timers.tick(1);
    assert.deepEqual([woken, t.restarts, t.launchFailures, t.restartDue, t.waiting], [1, 1, 0, true, false]);

    t.restartDue = false;
    t.retryAfter(1, 'launch');
    mock.timers.tick(1_000);
    assert.deepEqual([woken, t.restarts, t.launchFailures, t.restartDue], [2, 1, 1, true]);
  });

  it('drops a scheduled retry when cleared; reset also forgets the counts', () => {
    let woken = 0;
    const t = new RestartTracker(() => woken++);
    t.restarts = 3;
    t.launchFailures = 2;
    t.retryAfter(1, 'restart');
    t.clear();
    mock.timers.tick(5_000);
    assert.deepEqual([woken, t.restarts, t.restartDue, t.waiting], [0, 3, false, false]);
    t.restartDue = true;
    t.reset();
    assert.deepEqual([t.restarts, t.launchFailures, t.restartDue], [0, 0, false]);
  });

  it('starts the backoff afresh after an exit of containers that ran more than a minute, not before', () => {
    let now = 1_000_000;
    const t = new RestartTracker(() => undefined, () => now);
    t.exitSeen();
    t.restarts = 4;
    t.exitSeen();
    assert.equal(t.restarts, 4, 'never started: nothing to judge by');
    t.started();
    now += BACKOFF_RESET_MS;
    t.exitSeen();
    assert.equal(t.restarts, 4, 'a minute exactly is not more than a minute');
    now += 1;
    t.exitSeen();
    assert.equal(t.restarts, 0);
  });

  it('launched() forgets failed launches and starts the clock', () => {
    let now = 0;
    const t = new RestartTracker(() => undefined, () => now);
    t.launchFailures = 5;
    t.restarts = 2;
    now = 10;
    t.launched();
    assert.equal(t.launchFailures, 0);
    now += BACKOFF_RESET_MS + 1;
    t.exitSeen();
    assert.equal(t.restarts, 0);
  });
});
