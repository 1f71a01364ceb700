/**
 * What a running instance uses, as the agent measures it: each container's CPU, memory, network
 * and disk from the runtime's stats, and each GPU placed for the instance from nvidia-smi (or
 * marked simulated where the node's GPUs are a declared inventory). The agent sends the samples of
 * its running instances as one batch per interval on a path of their own, never in an instance's
 * observation (a sample every few seconds must not move revisions); the server keeps the latest in
 * memory and one a minute in the store (control/usage.ts).
 */
import type { InstanceId, NodeId, PodId } from './ids.js';
import type { Timestamp } from './records.js';

export interface ContainerUsage {
  name: string;
  /** CPU time used since the container started, in seconds (cAdvisor's container_cpu_usage_seconds_total). */
  cpuSeconds: number;
  /** CPU used over the last interval, in cores (1.0 = one core busy). */
  cpuCores: number;
  /** Memory in use less inactive file cache (the working set, as cAdvisor and kubectl top count it). */
  memoryBytes: number;
  /** The container's memory limit; null when it has none. */
  memoryLimitBytes: number | null;
  networkRxBytes: number;
  networkTxBytes: number;
  diskReadBytes: number;
  diskWriteBytes: number;
}

export interface GpuUsage {
  uuid: string;
  index: number;
  /** The GPU's model name, e.g. "NVIDIA H100 80GB HBM3". */
  name: string;
  /** Percent of time a kernel ran over the last sample period; null where unknown. */
  utilizationPercent: number | null;
  memoryUsedMb: number | null;
  memoryTotalMb: number | null;
  powerWatts: number | null;
  temperatureC: number | null;
  /** True when the node's GPUs are a declared inventory: the figures are not from real hardware. */
  simulated: boolean;
}

export interface InstanceUsage {
  /** When the sample was taken. */
  at: Timestamp;
  containers: ContainerUsage[];
  gpus: GpuUsage[];
}

/** One instance's sample as an agent reports it (a batch per node per interval). */
export interface UsageReport {
  instanceId: InstanceId;
  usage: InstanceUsage;
}

/** One stored sample of an instance: the history keeps one a minute. */
export interface UsageSample {
  podId: PodId;
  instanceId: InstanceId;
  nodeId: NodeId | null;
  usage: InstanceUsage;
}

/** A pod's latest usage in one line: what its views and `berth pod top` show. */
export interface PodUsageSummary {
  /** The oldest of the instances' latest samples. */
  at: Timestamp;
  cpuCores: number;
  memoryBytes: number;
  /** The sum of the containers' limits; null when any container has none. */
  memoryLimitBytes: number | null;
  networkRxBytes: number;
  networkTxBytes: number;
  gpus: GpuUsage[];
}

/** Sums the instances' containers; containers sharing a network namespace report its figures once. */
export function summarizeUsage(latest: ReadonlyArray<{ usage: InstanceUsage }>): PodUsageSummary | null {
  if (latest.length === 0) return null;
  const s: PodUsageSummary = { at: latest[0]!.usage.at, cpuCores: 0, memoryBytes: 0, memoryLimitBytes: 0, networkRxBytes: 0, networkTxBytes: 0, gpus: [] };
  for (const { usage } of latest) {
    if (usage.at < s.at) s.at = usage.at;
    let rx = 0;
    let tx = 0;
    for (const c of usage.containers) {
      s.cpuCores += c.cpuCores;
      s.memoryBytes += c.memoryBytes;
      s.memoryLimitBytes = s.memoryLimitBytes === null || c.memoryLimitBytes === null ? null : s.memoryLimitBytes + c.memoryLimitBytes;
      // An instance's containers share one namespace (or there is one container): its figures, once.
      rx = Math.max(rx, c.networkRxBytes);
      tx = Math.max(tx, c.networkTxBytes);
    }
    s.networkRxBytes += rx;
    s.networkTxBytes += tx;
    s.gpus.push(...usage.gpus);
  }
  if (latest.every((l) => l.usage.containers.length === 0)) s.memoryLimitBytes = null;
  return s;
}
