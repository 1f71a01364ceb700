/**
 * What a running instance uses, as the agent measures it: each container's CPU, memory, network
 * and disk from the runtime's stats, and each GPU placed for the instance from nvidia-smi (or
 * marked simulated where the node's GPUs are a declared inventory). The agent reports the latest
 * sample with the instance; the store keeps a short history of them.
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
