/**
 * The health checks of one instance's running containers: which containers are checked and where,
 * and the verdict that condemns the instance. The checks themselves run in health.ts.
 */
import type { Logger } from 'pino';
import type { Assignment } from '../control/agent-protocol.js';
import type { EndpointSpec, InstanceId } from '../model/index.js';
import type { ContainerInfo, Runtime } from '../runtime/types.js';
import { HealthMonitor, type HealthAddress, type HealthTarget, type HealthVerdict } from './health.js';
import { isInfra, jsonLabel, LABELS, specOf } from './labels.js';
import { interactiveRuntime } from './node-access.js';
import { listenPort } from './pod-env.js';

export class HealthWatch {
  /** Why a failed health check condemned the instance; cleared by the next launch. */
  unhealthy: string | null = null;
  /** The running containers' health checks; null when none run. */
  private monitor: HealthMonitor | null = null;
  /** The containers (id@start) the monitor checks: other containers get a new one. */
  private key = '';

  /** `wake` queues a pass of the instance: a verdict changed, or the instance is condemned. */
  constructor(
    private readonly runtime: Runtime,
    private readonly log: Logger,
    private readonly instanceId: InstanceId,
    private readonly wake: () => void,
  ) {}

  /** Starts health checks for the running containers that declare one, unless they already run for these containers. */
  watch(a: Assignment, containers: ContainerInfo[]): void {
    const targets = containers.flatMap((c): HealthTarget[] => {
      const spec = isInfra(c) ? undefined : specOf(a.spec, c);
      if (!spec?.healthCheck) return [];
      const endpoint = spec.endpoints.find((e) => e.name === spec.healthCheck?.endpoint);
      return [{ container: spec.name, containerId: c.id, check: spec.healthCheck, ...(endpoint ? { address: this.addressOf(a, containers, endpoint) } : {}) }];
    });
    if (targets.length === 0) return this.drop();
    const key = containers.map((c) => `${c.id}@${c.startedAt}`).join(',');
    if (this.monitor && this.key === key) return;
    this.monitor?.stop();
    const started = containers.map((c) => (c.startedAt ? Date.parse(c.startedAt) : NaN)).filter((t) => !Number.isNaN(t));
    const monitor: HealthMonitor = new HealthMonitor({
      targets,
      exec: (id, argv, timeoutMs) => this.runtime.exec(id, argv, { timeoutMs }),
      startedAtMs: started.length ? Math.max(...started) : Date.now(),
      onChange: () => {
        if (this.monitor === monitor) this.wake();
      },
      onUnhealthy: (container, failures) => {
        if (this.monitor !== monitor) return;
        this.unhealthy = `container ${container} failed ${failures} health check${failures === 1 ? '' : 's'} in a row; replacing the instance`;
        this.log.info({ instance: this.instanceId, container }, this.unhealthy);
        this.wake();
      },
    });
    this.monitor = monitor;
    this.key = key;
  }

  /** The checks stop; the last verdicts stay in the reports, and the same containers running again keep this monitor. */
  pause(): void {
    this.monitor?.stop();
  }

  /** No checks and no verdicts: the containers they were for are gone or restarted. */
  drop(): void {
    this.monitor?.stop();
    this.monitor = null;
    this.key = '';
  }

  /** As drop, and the instance is no longer condemned. */
  reset(): void {
    this.drop();
    this.unhealthy = null;
  }

  verdict(containerId: string): HealthVerdict | undefined {
    return this.monitor?.verdict(containerId);
  }

  /**
   * Where a check reaches an endpoint: the instance's address and the port the container listens on,
   * or the node's loopback and the host port with host networking.
   */
  private addressOf(a: Assignment, containers: ContainerInfo[], e: EndpointSpec): () => Promise<HealthAddress> {
    const holder = containers.find(isInfra) ?? containers[0];
    const hostPorts = jsonLabel(holder, LABELS.endpoints);
    const mode = a.spec.network.mode;
    let ip: string | undefined;
    return async () => {
      const port = listenPort(e, mode, hostPorts[e.name]);
      if (port === undefined) throw new Error(`endpoint ${e.name} has no port`);
      if (mode === 'host') return { host: '127.0.0.1', port: hostPorts[e.name] ?? port };
      ip ??= holder ? await interactiveRuntime(this.runtime).containerAddress(holder.id) : undefined;
      if (!ip) throw new Error('the instance has no address yet');
      return { host: ip, port };
    };
  }
}
