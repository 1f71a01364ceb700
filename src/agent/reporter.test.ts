import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import type { AgentChannel, Assignment, InstanceReport } from '../control/agent-protocol.js';
import { type InstanceId, type InstanceObservation, type NodeId, type PodInput } from '../model/index.js';
import type { ContainerInfo } from '../runtime/types.js';
import { LABELS } from './labels.js';
import { observationOf, Reporter, type InstanceFacts } from './reporter.js';
import { testAssignment } from '../../test/support/assignment.js';

const ID = 'pod1-0' as InstanceId;

function assignment(input: PodInput): Assignment {
  return testAssignment(input, { instanceId: ID, specVersion: 2, resetGeneration: 1, restartGeneration: 3 });
}

const facts: InstanceFacts = { pull: null, lastLogLines: ['boom'], restartCount: 2, launchFailures: 1, restartGenerationDone: null, disk: null, verdict: () => undefined };

function container(labels: Record<string, string>, more: Partial<ContainerInfo> = {}): ContainerInfo {
  return { id: Object.values(labels).join('-'), name: 'n', labels, state: 'running', exitCode: null, startedAt: '2024-01-01T00:00:00Z', finishedAt: null, ports: {}, error: null, ...more };
}

/** Keeps what is reported; `hold` makes the next report wait until released. */
class Channel implements AgentChannel {
  readonly reports: InstanceReport[] = [];
  fail = false;
  private holding: Promise<void> | undefined;
  private release_: (() => void) | undefined;
  hold(): void {
    this.holding = new Promise<void>((r) => (this.release_ = r));
  }
  release(): void {
    this.release_?.();
  }
  async register(): Promise<{ nodeId: NodeId }> {
    return { nodeId: 'n' as NodeId };
  }
  async watch(): Promise<never> {
    throw new Error('not used');
  }
  async report(_node: NodeId, reports: InstanceReport[]): Promise<void> {
    const wait = this.holding;
    this.holding = undefined;
    await wait;
    if (this.fail) throw new Error('server away');
    this.reports.push(...reports);
  }
}

const observation = (state: InstanceObservation['state'], message: string | null = null): InstanceObservation => observationOf(assignment({ image: 'x' }), state, [], null, message, facts);

describe('observationOf', () => {
  it("reports the app containers in the spec's order, the ports the holder publishes and the endpoints it recorded", () => {
    const a = assignment({ containers: [{ name: 'web', image: 'x', endpoints: [{ name: 'http', containerPort: 80, hostPort: 0 }], healthCheck: { kind: 'tcp', endpoint: 'http' } }, { name: 'side', image: 'x' }] });
    const infra = container({ [LABELS.role]: 'infra', [LABELS.endpoints]: '{"http":41000}' }, { ports: { '80': 41000 } });
    const side = container({ [LABELS.container]: 'side' }, { state: 'exited', exitCode: 2, startedAt: null });
    const web = container({ [LABELS.container]: 'web' });
    const o = observationOf(a, 'running', [side, web, infra], null, 'ignored while running', { ...facts, verdict: (id) => (id === web.id ? { healthy: true, failures: 0 } : undefined) });
    assert.deepEqual(
      o.containers.map((c) => [c.name, c.state, c.healthy]),
      [
        ['web', 'running', true],
        ['side', 'failed', undefined],
      ],
    );
    assert.deepEqual(o.ports, { '80': 41000 });
    assert.deepEqual(o.endpoints, { http: 41000 });
    assert.equal(o.message, null);
    assert.equal(o.startedAt, web.startedAt);
    assert.deepEqual([o.observedSpecVersion, o.observedResetGeneration, o.observedRestartGeneration], [2, 1, 3]);
    assert.deepEqual([o.restartCount, o.launchFailures], [2, 1]);
    assert.deepEqual(o.lastLogLines, [], 'the last lines go with an exit only');
  });

  it('gives the last log lines and the message with an exit, and no spec version when nothing runs', () => {
    const o = observation('failed', 'exited with code 1');
    assert.deepEqual(o.lastLogLines, ['boom']);
    assert.equal(o.message, 'exited with code 1');
    assert.equal(o.observedSpecVersion, null);
  });

  it("takes host networking's ports from the launch's record: Docker publishes none", () => {
    const a = assignment({ image: 'x', ports: ['8080/http'], network: { mode: 'host' } });
    const o = observationOf(a, 'running', [container({ [LABELS.container]: 'main', [LABELS.ports]: '{"8080":8080}' })], null, null, facts);
    assert.deepEqual(o.ports, { '8080': 8080 });
  });
});

describe('Reporter', () => {
  it('sends a report only when it differs from the last one by more than its time', async () => {
    const channel = new Channel();
    const r = new Reporter(channel, 'n' as NodeId, pino({ level: 'silent' }), ID);
    await r.send(observation('pulling', 'pulling x'));
    await r.send({ ...observation('pulling', 'pulling x'), updatedAt: 'later' });
    await r.send(observation('running'));
    assert.deepEqual(
      channel.reports.map((x) => [x.instanceId, x.observation.state]),
      [
        [ID, 'pulling'],
        [ID, 'running'],
      ],
    );
  });

  it('sends in order: a slow report lands before the next', async () => {
    const channel = new Channel();
    const r = new Reporter(channel, 'n' as NodeId, pino({ level: 'silent' }), ID);
    channel.hold();
    const first = r.send(observation('pulling', 'pulling x: 10%'));
    const second = r.send(observation('running'));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(channel.reports.length, 0);
    channel.release();
    await Promise.all([first, second]);
    assert.deepEqual(
      channel.reports.map((x) => x.observation.state),
      ['pulling', 'running'],
    );
  });

  it('sends the same report again after one failed', async () => {
    const channel = new Channel();
    const r = new Reporter(channel, 'n' as NodeId, pino({ level: 'silent' }), ID);
    channel.fail = true;
    await r.send(observation('running'));
    channel.fail = false;
    await r.send(observation('running'));
    assert.equal(channel.reports.length, 1);
  });
});
