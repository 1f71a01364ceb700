import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Assignment } from '../control/agent-protocol.js';
import { type PodInput } from '../model/index.js';
import type { ContainerInfo, ContainerRunState } from '../runtime/types.js';
import { decide, type LocalFacts } from './decide.js';
import { LABELS } from './labels.js';
import { testAssignment } from '../../test/support/assignment.js';

function assignment(input: PodInput, more: Partial<Assignment> = {}): Assignment {
  return testAssignment(input, { specVersion: 2, ...more });
}

let ids = 0;
/** A container as Docker lists it: of version 2, reset 0 unless told; `infra` names the infra container. */
function container(name: string, state: ContainerRunState = 'running', generation: { version?: number; reset?: number } = {}): ContainerInfo {
  const role: Record<string, string> = name === 'infra' ? { [LABELS.role]: 'infra' } : { [LABELS.container]: name };
  return {
    id: `c${++ids}`,
    name: `berth-pod1-0-${name}`,
    labels: { [LABELS.instance]: 'pod1-0', [LABELS.version]: String(generation.version ?? 2), [LABELS.reset]: String(generation.reset ?? 0), ...role },
    state,
    exitCode: state === 'exited' ? 1 : null,
    startedAt: '2024-01-01T00:00:00Z',
    finishedAt: null,
    ports: {},
    error: null,
  };
}

const fresh: LocalFacts = { restartGenerationDone: null, unhealthy: false, restartDue: false };
const single = assignment({ image: 'x' });
const pair = assignment({ containers: [{ name: 'web', image: 'x' }, { name: 'side', image: 'x' }] });

describe('decide', () => {
  it('forgets an instance no assignment claims; stops or removes by the goal, whatever runs', () => {
    assert.equal(decide(undefined, [container('main')], fresh).action, 'forget');
    assert.equal(decide({ ...single, goal: 'stopped' }, [container('main')], fresh).action, 'stop');
    assert.equal(decide({ ...single, goal: 'removed' }, [], fresh).action, 'remove');
  });

  it('launches when nothing runs, and replaces what is incomplete', () => {
    assert.deepEqual(decide(single, [], fresh), { action: 'launch', stale: [], current: [], restartGenerationDone: null });
    const web = container('web');
    const d = decide(pair, [web], fresh);
    assert.equal(d.action, 'replace');
    assert.equal(d.cause, 'incomplete');
    assert.equal(d.restartGenerationDone, null, 'the launch that follows says which restart it did');
    // Two app containers and no infra container: a Marathon layout needs its infra container.
    assert.equal(decide(pair, [container('web'), container('side')], fresh).cause, 'incomplete');
  });

  it("sets apart the containers of another version or reset generation, and replaces the instance when they were all it had", () => {
    const old = container('main', 'running', { version: 1 });
    const reset = container('main', 'running', { reset: 3 });
    const d = decide(single, [old, reset], fresh);
    assert.deepEqual(d.stale, [old, reset]);
    assert.deepEqual(d.current, []);
    assert.equal(d.action, 'replace');
  });

  it('puts the infra container first, then the spec’s order, and observes a complete instance', () => {
    const side = container('side');
    const infra = container('infra');
    const web = container('web');
    const old = container('web', 'running', { version: 1 });
    const d = decide(pair, [side, old, web, infra], fresh);
    assert.equal(d.action, 'observe');
    assert.deepEqual(d.current, [infra, web, side]);
    assert.deepEqual(d.stale, [old]);
  });

  it('takes the restart generation last done from the node’s report when it has none of its own', () => {
    const d = decide({ ...single, restartGeneration: 4, observedRestartGeneration: 4 }, [container('main')], fresh);
    assert.deepEqual([d.action, d.restartGenerationDone], ['observe', 4]);
    const asked = decide({ ...single, restartGeneration: 5, observedRestartGeneration: 4 }, [container('main')], fresh);
    assert.deepEqual([asked.action, asked.restartGenerationDone], ['restart-in-place', 5], 'a restart asked for while the agent was away');
    const mine = decide({ ...single, restartGeneration: 5, observedRestartGeneration: 4 }, [container('main')], { ...fresh, restartGenerationDone: 5 });
    assert.equal(mine.action, 'observe');
    const none = decide({ ...single, restartGeneration: 2 }, [container('main')], fresh);
    assert.deepEqual([none.action, none.restartGenerationDone], ['observe', 2], 'a first look takes the current generation as done');
  });

  it('restarts in place on a new restart generation, but replaces the instance when its infra container is down', () => {
    const a = { ...pair, restartGeneration: 1 };
    const facts = { ...fresh, restartGenerationDone: 0 };
    assert.equal(decide(a, [container('infra'), container('web'), container('side', 'exited')], facts).action, 'restart-in-place');
    const d = decide(a, [container('infra', 'exited'), container('web'), container('side')], facts);
    assert.deepEqual([d.action, d.cause, d.restartGenerationDone], ['replace', 'restart', 1]);
  });

  it('stops the running containers of an instance a health check condemned; replaces it once the backoff runs out', () => {
    const facts = { ...fresh, unhealthy: true };
    assert.equal(decide(single, [container('main')], facts).action, 'stop-unhealthy');
    assert.equal(decide(single, [container('main', 'exited')], facts).action, 'observe', 'stopped: the exit is handled as any other');
    const d = decide(single, [container('main', 'exited')], { ...facts, restartDue: true });
    assert.deepEqual([d.action, d.cause], ['replace', 'backoff']);
  });

  it('when the backoff runs out, restarts a single container in place and replaces a pod with an infra container', () => {
    const due = { ...fresh, restartDue: true };
    assert.equal(decide(single, [container('main', 'exited')], due).action, 'restart-exited');
    const d = decide(pair, [container('infra'), container('web', 'exited'), container('side')], due);
    assert.deepEqual([d.action, d.cause], ['replace', 'backoff']);
    const marathon = assignment({ image: 'x', marathon: { id: '/one' } });
    assert.equal(decide(marathon, [container('infra'), container('main', 'exited')], due).action, 'replace', 'a Marathon pod of one container has an infra container too');
  });
});
