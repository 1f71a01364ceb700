/** The GPUs' figures for the usage samples: one nvidia-smi per node per interval, or simulated. */
import type { Gpu, GpuUsage } from '../model/index.js';
import { execFileOffThread } from '../runtime/host-worker.js';

export const GPU_QUERY = ['--query-gpu=index,uuid,name,utilization.gpu,memory.used,memory.total,power.draw,temperature.gpu', '--format=csv,noheader,nounits'];

/** A figure nvidia-smi printed, or null for `[N/A]`, `[Not Supported]` and the like. */
const figure = (s: string | undefined): number | null => {
  const n = Number(s);
  return s === undefined || s === '' || !Number.isFinite(n) ? null : n;
};

/** Parses the output of `nvidia-smi` with GPU_QUERY, by UUID. */
export function parseGpuUsage(csv: string): Map<string, GpuUsage> {
  const out = new Map<string, GpuUsage>();
  for (const line of csv.split('\n')) {
    const f = line.split(',').map((s) => s.trim());
    const [index, uuid, name, util, used, total, power, temp] = f;
    if (!uuid?.startsWith('GPU-')) continue;
    out.set(uuid, {
      uuid,
      index: Number(index),
      name: name ?? '',
      utilizationPercent: figure(util),
      memoryUsedMb: figure(used),
      memoryTotalMb: figure(total),
      powerWatts: figure(power),
      temperatureC: figure(temp),
      simulated: false,
    });
  }
  return out;
}

/** A declared GPU's sample: no figure is measured, so none is given; the declared memory size is the only number. */
export function simulatedGpuUsage(g: Gpu): GpuUsage {
  return { uuid: g.uuid, index: g.index, name: g.name, utilizationPercent: null, memoryUsedMb: null, memoryTotalMb: g.memoryMb || null, powerWatts: null, temperatureC: null, simulated: true };
}

/** Every GPU's figures now, from one nvidia-smi (argv, no shell). */
export async function queryGpuUsage(timeoutMs: number): Promise<Map<string, GpuUsage>> {
  const { stdout } = await execFileOffThread('nvidia-smi', GPU_QUERY, { timeoutMs });
  return parseGpuUsage(stdout);
}
