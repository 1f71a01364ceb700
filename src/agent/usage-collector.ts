/**
 * The agent's usage sampler: at each interval, the figures of every running container of this
 * node (one container list, then each one's figures, 16 at a time: runtime/stats.ts) and one
 * nvidia-smi for the GPUs, sent as one batch on the channel's usage path — never as an instance
 * report, which would move the pod's revision every few seconds.
 */
import type { Logger } from 'pino';
import type { AgentChannel } from '../control/agent-protocol.js';
import type { ContainerUsage, Gpu, GpuUsage, InstanceId, NodeId, UsageReport } from '../model/index.js';
import type { ContainerInfo, ContainerStats, Runtime } from '../runtime/types.js';
import { queryGpuUsage, simulatedGpuUsage } from './gpu-usage.js';
import { isInfra, LABELS } from './labels.js';

/** Containers measured at once; the event loop runs between groups. */
const STATS_AT_ONCE = 16;

export interface UsageCollectorOptions {
  runtime: Pick<Runtime, 'listContainers' | 'containerStats'>;
  channel: Pick<AgentChannel, 'reportUsage'>;
  nodeId: NodeId;
  log: Logger;
  intervalMs: number;
  /** The GPUs assigned to an instance, from its assignment. */
  gpusOf(id: InstanceId): Gpu[];
  gpusSimulated: boolean;
  /** Reads the GPUs' figures; replaced in tests. @default one nvidia-smi */
  queryGpus?: () => Promise<Map<string, GpuUsage>>;
}

export class UsageCollector {
  /** Each container's last CPU total, for the cores used over the interval. */
  private readonly prev = new Map<string, { cpuSeconds: number; atMs: number }>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private gpuWarned = false;
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly opts: UsageCollectorOptions) {}

  start(): void {
    const tick = (): void => {
      if (this.closed) return;
      this.running = this.collectAndSend()
        .catch((err: unknown) => this.opts.log.warn({ err }, 'measuring usage failed'))
        .finally(() => {
          // The next sample an interval after this one ended: a slow daemon never piles up collections.
          if (!this.closed) this.timer = setTimeout(tick, this.opts.intervalMs).unref();
        });
    };
    this.timer = setTimeout(tick, Math.min(1000, this.opts.intervalMs)).unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  async collectAndSend(): Promise<void> {
    const samples = await this.collect();
    await this.opts.channel.reportUsage?.(this.opts.nodeId, samples);
  }

  /** One sample of every running instance on the node. */
  async collect(): Promise<UsageReport[]> {
    const { runtime, nodeId } = this.opts;
    const list = await runtime.listContainers({ [LABELS.node]: nodeId });
    const byInstance = new Map<InstanceId, ContainerInfo[]>();
    for (const c of list) {
      const id = c.labels[LABELS.instance] as InstanceId | undefined;
      if (!id || c.state !== 'running' || isInfra(c)) continue;
      const arr = byInstance.get(id) ?? [];
      arr.push(c);
      byInstance.set(id, arr);
    }
    const containers = [...byInstance.values()].flat();
    const stats: (ContainerStats | undefined)[] = [];
    for (let i = 0; i < containers.length; i += STATS_AT_ONCE) {
      // Between groups the event loop runs. The reads themselves are in the host worker's thread
      // (runtime/host-worker.ts); 200 at once still put every answer, or Docker's stats where
      // the files cannot be read, on the loop in one turn.
      if (i > 0) await new Promise((resolve) => setImmediate(resolve));
      stats.push(...(await Promise.all(containers.slice(i, i + STATS_AT_ONCE).map((c) => runtime.containerStats(c.id).catch(() => undefined)))));
    }
    const statsOf = new Map(containers.map((c, i) => [c.id, stats[i]]));
    for (const id of [...this.prev.keys()]) if (!statsOf.has(id)) this.prev.delete(id);

    const gpus = await this.gpuFigures(byInstance.keys());
    const at = new Date().toISOString();
    const out: UsageReport[] = [];
    for (const [instanceId, cs] of byInstance) {
      const usage: ContainerUsage[] = [];
      for (const c of cs.sort((a, b) => (a.labels[LABELS.container] ?? a.name).localeCompare(b.labels[LABELS.container] ?? b.name))) {
        const s = statsOf.get(c.id);
        if (s) usage.push(this.containerUsage(c, s));
      }
      const assigned = this.opts.gpusOf(instanceId);
      out.push({
        instanceId,
        usage: {
          at,
          containers: usage,
          gpus: assigned.map((g) => (this.opts.gpusSimulated ? simulatedGpuUsage(g) : (gpus.get(g.uuid) ?? unmeasured(g)))),
        },
      });
    }
    return out;
  }

  private containerUsage(c: ContainerInfo, s: ContainerStats): ContainerUsage {
    const atMs = Date.parse(s.at);
    const prev = this.prev.get(c.id);
    this.prev.set(c.id, { cpuSeconds: s.cpuSeconds, atMs });
    const elapsed = prev ? (atMs - prev.atMs) / 1000 : 0;
    return {
      name: c.labels[LABELS.container] ?? c.name,
      cpuSeconds: s.cpuSeconds,
      // The first sample of a container has no earlier total to compare with: 0 until the next.
      cpuCores: prev && elapsed > 0 ? Math.max(0, (s.cpuSeconds - prev.cpuSeconds) / elapsed) : 0,
      memoryBytes: s.memoryWorkingSetBytes,
      memoryLimitBytes: s.memoryLimitBytes,
      networkRxBytes: s.networkRxBytes,
      networkTxBytes: s.networkTxBytes,
      diskReadBytes: s.diskReadBytes,
      diskWriteBytes: s.diskWriteBytes,
    };
  }

  /** One nvidia-smi for the node, and only when a running instance holds a real GPU. */
  private async gpuFigures(instances: Iterable<InstanceId>): Promise<Map<string, GpuUsage>> {
    if (this.opts.gpusSimulated) return new Map();
    let any = false;
    for (const id of instances) if (this.opts.gpusOf(id).length) any = true;
    if (!any) return new Map();
    try {
      return await (this.opts.queryGpus ?? (() => queryGpuUsage(Math.max(2000, this.opts.intervalMs / 2))))();
    } catch (err) {
      if (!this.gpuWarned) this.opts.log.warn({ err }, 'nvidia-smi failed: the GPUs\' figures are unknown');
      this.gpuWarned = true;
      return new Map();
    }
  }
}

/** A real GPU nvidia-smi did not answer for: its figures are unknown, not zero. */
const unmeasured = (g: Gpu): GpuUsage => ({ uuid: g.uuid, index: g.index, name: g.name, utilizationPercent: null, memoryUsedMb: null, memoryTotalMb: g.memoryMb || null, powerWatts: null, temperatureC: null, simulated: false });
