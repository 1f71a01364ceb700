/** What the agent tells the control plane about one instance, and the order it tells it in. */
import type { Logger } from 'pino';
import type { AgentChannel, Assignment, InstanceReport } from '../control/agent-protocol.js';
import type { ContainerObservation, DiskUsage, InstanceId, InstanceObservation, InstanceState, NodeId, PullProgress } from '../model/index.js';
import type { ContainerInfo } from '../runtime/types.js';
import type { HealthVerdict } from './health.js';
import { isInfra, jsonLabel, LABELS, sortContainers, specOf } from './labels.js';

/** What the runner knows of the instance beyond Docker's record. */
export interface InstanceFacts {
  pull: PullProgress | null;
  lastLogLines: string[];
  restartCount: number;
  launchFailures: number;
  restartGenerationDone: number | null;
  disk: DiskUsage | null;
  verdict(containerId: string): HealthVerdict | undefined;
}

/** The instance as observed: `containers` in any order, infra included. */
export function observationOf(
  a: Assignment,
  state: InstanceState,
  containers: ContainerInfo[],
  exitCode: number | null,
  message: string | null,
  facts: InstanceFacts,
): InstanceObservation {
  const sorted = sortContainers(a.spec, containers);
  // The infra container or the sole one: it publishes the ports.
  const holder = sorted[0];
  const apps = sorted.filter((c) => !isInfra(c));
  const hasEndpoints = a.spec.containers.some((c) => c.endpoints.length > 0);
  return {
    state,
    message: state === 'running' ? null : message,
    exitCode,
    // Docker's own account of what it published; with host networking it publishes nothing and the launch's record stands.
    ports: (a.spec.network.mode === 'host' ? jsonLabel(holder, LABELS.ports) : holder?.ports) ?? {},
    ...(hasEndpoints && holder ? { endpoints: jsonLabel(holder, LABELS.endpoints) } : {}),
    containers: apps.map((c): ContainerObservation => {
      const check = specOf(a.spec, c)?.healthCheck;
      const verdict = check ? facts.verdict(c.id) : undefined;
      return {
        name: c.labels[LABELS.container] ?? c.name,
        containerId: c.id,
        state: c.state === 'running' ? 'running' : c.state === 'created' ? 'creating' : (c.exitCode ?? 0) === 0 ? 'exited' : 'failed',
        exitCode: c.exitCode,
        startedAt: c.startedAt,
        finishedAt: c.finishedAt,
        ...(check ? { healthy: verdict?.healthy ?? null, healthFailures: verdict?.failures ?? 0 } : {}),
      };
    }),
    pull: facts.pull,
    lastLogLines: state === 'exited' || state === 'failed' ? facts.lastLogLines : [],
    startedAt: apps.map((c) => c.startedAt).find((t) => t) ?? null,
    restartCount: facts.restartCount,
    launchFailures: facts.launchFailures,
    observedSpecVersion: containers.length ? a.specVersion : null,
    observedResetGeneration: a.resetGeneration,
    observedRestartGeneration: facts.restartGenerationDone ?? a.restartGeneration,
    disk: facts.disk,
    updatedAt: new Date().toISOString(),
  };
}

/** Sends one instance's reports: in order, and each only when it says something the last one did not. */
export class Reporter {
  private lastReported = '';
  /** Reports of one instance go out in order. */
  private sending: Promise<void> = Promise.resolve();

  constructor(
    private readonly channel: AgentChannel,
    private readonly nodeId: NodeId,
    private readonly log: Logger,
    private readonly instanceId: InstanceId,
  ) {}

  async send(observation: InstanceObservation): Promise<void> {
    const key = JSON.stringify({ ...observation, updatedAt: '' });
    if (key === this.lastReported) return;
    this.lastReported = key;
    const report: InstanceReport = { instanceId: this.instanceId, observation };
    // One instance's reports go out one after another, so a slow pull-progress report cannot land after 'running'.
    const sent = this.sending.then(() =>
      this.channel.report(this.nodeId, [report]).catch((e: unknown) => {
        this.lastReported = '';
        this.log.warn({ err: e }, 'report failed');
      }),
    );
    this.sending = sent;
    await sent;
  }
}
