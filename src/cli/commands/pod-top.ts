/** `berth pod top`: what my running pods use now, refreshed until Ctrl-C (or once). */
import type { PodUsageSummary } from '../../model/index.js';
import { bytes, table } from '../output.js';
import { defineCommand } from './define.js';

interface TopRow {
  id: string;
  name: string;
  owner: string;
  status: string;
  gpuCount: number;
  usage: (PodUsageSummary & { instances: unknown[] }) | null;
}

const pct = (n: number | null): string => (n === null ? '-' : `${Math.round(n)}%`);

/** `3% (simulated)`, `87% 40.0 GB/80.0 GB 301 W`: each GPU of the pod. */
export function gpuColumn(u: PodUsageSummary | null, gpuCount: number): string {
  if (!u || u.gpus.length === 0) return gpuCount ? '?' : '-';
  return u.gpus
    .map((g) => {
      if (g.simulated) return 'simulated';
      const mem = g.memoryUsedMb !== null && g.memoryTotalMb ? ` ${bytes(g.memoryUsedMb * 2 ** 20)}/${bytes(g.memoryTotalMb * 2 ** 20)}` : '';
      return `${pct(g.utilizationPercent)}${mem}${g.powerWatts !== null ? ` ${Math.round(g.powerWatts)} W` : ''}`;
    })
    .join(', ');
}

/** The table of `berth pod top`. */
export function topTable(rows: readonly TopRow[]): string {
  return table(rows, [
    { header: 'ID', value: (r) => r.id },
    { header: 'NAME', value: (r) => r.name },
    { header: 'CPU', value: (r) => (r.usage ? r.usage.cpuCores.toFixed(2) : '-') },
    { header: 'MEMORY', value: (r) => (r.usage ? `${bytes(r.usage.memoryBytes)}${r.usage.memoryLimitBytes ? ` / ${bytes(r.usage.memoryLimitBytes)}` : ''}` : '-') },
    { header: 'NET RX/TX', value: (r) => (r.usage ? `${bytes(r.usage.networkRxBytes)} / ${bytes(r.usage.networkTxBytes)}` : '-') },
    { header: 'GPU', value: (r) => gpuColumn(r.usage, r.gpuCount) },
    { header: 'SAMPLED', value: (r) => (r.usage ? `${Math.max(0, Math.round((Date.now() - Date.parse(r.usage.at)) / 1000))}s ago` : 'not yet') },
  ]);
}

export const top = defineCommand({
  name: 'top',
  description: 'Show what your running pods use (CPU cores, memory, network, GPUs), refreshed until Ctrl-C',
  options: {
    once: { kind: 'boolean', flags: '--once', description: 'print once and exit' },
    interval: { kind: 'number', flags: '--interval <seconds>', default: 2, description: 'seconds between refreshes' },
  },
  examples: ['berth pod top', 'berth pod top --once -o json'],
  async handler({ opts, ctx }) {
    const client = await ctx.client();
    const tty = process.stdout.isTTY === true;
    for (;;) {
      const res = await client.get<{ pods: TopRow[] }>('/usage');
      const text = res.pods.length ? topTable(res.pods) : 'no running pods\n';
      // A terminal gets the table in place; a pipe gets one table after another.
      ctx.out.result(res, () => (tty && !opts.once ? `\x1b[H\x1b[2J${text}` : text));
      if (opts.once) return;
      await new Promise((r) => setTimeout(r, Math.max(0.5, opts.interval) * 1000));
    }
  },
});
