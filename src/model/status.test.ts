import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DESIRED_AFTER,
  DESIRED_STATUSES,
  INSTANCE_STATES,
  POD_ACTIONS,
  POD_STATUSES,
  STATUS_TABLE,
  allowedActions,
  canTransition,
  derivePodStatus,
  type DesiredStatus,
  type InstanceState,
  type PodStatus,
} from './status.js';

/** Statuses reachable from `from` by following the table's `next` lists. */
function reachable(from: PodStatus): Set<PodStatus> {
  const seen = new Set<PodStatus>([from]);
  const queue: PodStatus[] = [from];
  for (let s = queue.shift(); s !== undefined; s = queue.shift()) {
    for (const n of STATUS_TABLE[s].next) {
      if (!seen.has(n)) {
        seen.add(n);
        queue.push(n);
      }
    }
  }
  return seen;
}

describe('STATUS_TABLE', () => {
  it('has a rule for exactly the pod statuses', () => {
    assert.deepEqual(Object.keys(STATUS_TABLE).sort(), [...POD_STATUSES].sort());
  });

  it('names only known statuses and actions, without repeats or self-loops', () => {
    for (const s of POD_STATUSES) {
      const { next, actions } = STATUS_TABLE[s];
      for (const n of next) assert.ok(POD_STATUSES.includes(n), `${s} → ${n}`);
      for (const a of actions) assert.ok(POD_ACTIONS.includes(a), `${s}: ${a}`);
      assert.equal(new Set(next).size, next.length, `${s} repeats a next status`);
      assert.equal(new Set(actions).size, actions.length, `${s} repeats an action`);
      assert.ok(!next.includes(s), `${s} lists itself`);
    }
  });

  it('lets TERMINATED do nothing and go nowhere', () => {
    assert.deepEqual(STATUS_TABLE.TERMINATED, { next: [], actions: [] });
    assert.deepEqual(allowedActions('TERMINATED'), []);
    for (const s of POD_STATUSES) assert.equal(canTransition('TERMINATED', s), s === 'TERMINATED', s);
  });

  it('lets every other status be terminated, and reach TERMINATED directly', () => {
    for (const s of POD_STATUSES.filter((s) => s !== 'TERMINATED')) {
      assert.ok(allowedActions(s).includes('terminate'), s);
      assert.ok(canTransition(s, 'TERMINATED'), s);
      assert.ok(reachable(s).has('TERMINATED'), s);
    }
  });

  it('reaches every status from PROVISIONING, where a pod begins', () => {
    assert.deepEqual([...reachable('PROVISIONING')].sort(), [...POD_STATUSES].sort());
  });

  it('allows each action only where the status it leads to can follow', () => {
    for (const s of POD_STATUSES) {
      for (const a of allowedActions(s)) {
        const target: PodStatus = DESIRED_AFTER[a];
        assert.ok(canTransition(s, target), `${a} from ${s} wants ${target}`);
      }
    }
  });

  it('allows start only where the pod is not running, stop only where it may be', () => {
    for (const s of POD_STATUSES) {
      const actions = allowedActions(s);
      if (s === 'RUNNING' || s === 'STARTING' || s === 'PROVISIONING') assert.ok(!actions.includes('start'), `start in ${s}`);
      if (s === 'EXITED') assert.ok(!actions.includes('stop') && !actions.includes('restart'), 'stop or restart in EXITED');
    }
    assert.deepEqual([...allowedActions('EXITED')].sort(), ['reset', 'start', 'terminate']);
    assert.deepEqual([...allowedActions('ERROR')].sort(), [...POD_ACTIONS].sort(), 'ERROR allows every action to recover');
  });

  it('keeps canTransition true for staying put', () => {
    for (const s of POD_STATUSES) assert.ok(canTransition(s, s));
    assert.equal(canTransition('EXITED', 'EXITED'), true);
  });
});

describe('DESIRED_AFTER', () => {
  it('maps every action to the desired status it asks for', () => {
    assert.deepEqual(Object.keys(DESIRED_AFTER).sort(), [...POD_ACTIONS].sort());
    for (const a of POD_ACTIONS) assert.ok(DESIRED_STATUSES.includes(DESIRED_AFTER[a]), a);
    assert.deepEqual(DESIRED_AFTER, { start: 'RUNNING', stop: 'EXITED', restart: 'RUNNING', reset: 'RUNNING', terminate: 'TERMINATED' });
  });
});

describe('derivePodStatus', () => {
  const cases: [DesiredStatus, InstanceState | undefined, number | null | undefined, PodStatus][] = [
    ['RUNNING', undefined, undefined, 'PROVISIONING'],
    ['RUNNING', 'pending', null, 'PROVISIONING'],
    ['RUNNING', 'pulling', null, 'PROVISIONING'],
    ['RUNNING', 'creating', null, 'STARTING'],
    ['RUNNING', 'running', null, 'RUNNING'],
    ['RUNNING', 'exited', 0, 'EXITED'],
    ['RUNNING', 'exited', null, 'EXITED'],
    ['RUNNING', 'exited', undefined, 'EXITED'],
    ['RUNNING', 'exited', 137, 'ERROR'],
    ['RUNNING', 'failed', null, 'ERROR'],
    ['RUNNING', 'failed', 0, 'ERROR'],
    ['RUNNING', 'stopped', null, 'PROVISIONING'],
    ['RUNNING', 'removed', null, 'PROVISIONING'],
    ['EXITED', undefined, undefined, 'EXITED'],
    ['EXITED', 'pending', null, 'EXITED'],
    ['EXITED', 'pulling', null, 'EXITED'],
    ['EXITED', 'creating', null, 'EXITED'],
    ['EXITED', 'running', null, 'RUNNING'],
    ['EXITED', 'stopped', null, 'EXITED'],
    ['EXITED', 'removed', null, 'EXITED'],
    ['EXITED', 'exited', 0, 'EXITED'],
    ['EXITED', 'exited', 1, 'ERROR'],
    ['EXITED', 'failed', null, 'ERROR'],
  ];
  for (const [desired, observed, exitCode, want] of cases) {
    it(`desired ${desired}, instance ${observed ?? 'unreported'}${exitCode != null ? ` (exit ${exitCode})` : ''} → ${want}`, () => {
      assert.equal(derivePodStatus(desired, observed, exitCode), want);
    });
  }

  it('is TERMINATED whatever the instance reports once the user terminated', () => {
    for (const state of [undefined, ...INSTANCE_STATES]) assert.equal(derivePodStatus('TERMINATED', state, 1), 'TERMINATED');
  });

  it('answers a known status for every combination', () => {
    for (const d of DESIRED_STATUSES) for (const s of [undefined, ...INSTANCE_STATES]) assert.ok(POD_STATUSES.includes(derivePodStatus(d, s, 2)), `${d}/${s}`);
  });
});
