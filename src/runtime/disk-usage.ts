/** The node's disk use from one `system df`: each container's writable layer and each volume. */

import { fail, type Daemon } from './daemon.js';
import type { DiskUsageReport } from './types.js';

export async function diskUsage(daemon: Daemon): Promise<DiskUsageReport> {
  let df: unknown;
  try {
    df = await daemon.docker.df();
  } catch (err) {
    throw fail(daemon, err, 'disk usage');
  }
  const report: DiskUsageReport = { containers: {}, volumes: {} };
  if (typeof df !== 'object' || df === null) return report;
  if ('Containers' in df && Array.isArray(df.Containers)) {
    for (const c of df.Containers as unknown[]) {
      if (typeof c !== 'object' || c === null || !('Id' in c) || typeof c.Id !== 'string') continue;
      const size = 'SizeRw' in c && typeof c.SizeRw === 'number' ? c.SizeRw : 0;
      report.containers[c.Id] = Math.max(0, size);
    }
  }
  if ('Volumes' in df && Array.isArray(df.Volumes)) {
    for (const v of df.Volumes as unknown[]) {
      if (typeof v !== 'object' || v === null || !('Name' in v) || typeof v.Name !== 'string') continue;
      const usage = 'UsageData' in v && typeof v.UsageData === 'object' && v.UsageData !== null ? v.UsageData : {};
      const size = 'Size' in usage && typeof usage.Size === 'number' ? usage.Size : -1;
      // -1: the daemon did not measure it (e.g. a non-local driver).
      if (size >= 0) report.volumes[v.Name] = size;
    }
  }
  return report;
}
