/** `berth node list`: the machines pods run on, with capacity and what is allocated. */
import { age, table } from '../output.js';
import { defineCommand, defineGroup } from './define.js';
import type { NodeView } from './pod-render.js';

const gb = (mb: number): string => `${Number((mb / 1024).toFixed(1))}`;

const list = defineCommand({
  name: 'list',
  aliases: ['ls'],
  description: 'List nodes: status, CPUs, memory and GPUs allocated of the total',
  examples: ['berth node list'],
  async handler({ ctx }) {
    const client = await ctx.client();
    const res = await client.get<{ nodes: NodeView[] }>('/nodes');
    const now = Date.now();
    ctx.out.result(res, () =>
      table(res.nodes, [
        { header: 'ID', value: (n) => n.id },
        { header: 'NAME', value: (n) => n.name },
        { header: 'STATUS', value: (n) => n.status },
        { header: 'CPUS', value: (n) => `${n.allocated.cpus}/${n.capacity.cpus}` },
        { header: 'MEMORY', value: (n) => `${gb(n.allocated.memoryMb)}/${gb(n.capacity.memoryMb)} GB` },
        { header: 'GPUS', value: (n) => `${n.gpus.filter((g) => g.inUse).length}/${n.gpus.length}${n.gpus.length && n.capacity.gpusSimulated ? ' (simulated)' : ''}` },
        { header: 'GPU TYPES', value: (n) => [...new Set(n.gpus.map((g) => g.name))].join(', ') || '-' },
        { header: 'INSTANCES', value: (n) => String(n.instances) },
        { header: 'PUBLIC IP', value: (n) => n.publicIp },
        { header: 'SEEN', value: (n) => `${age(n.lastSeenAt, now)} ago` },
      ]),
    );
  },
});

export const nodeCommands = defineGroup({
  name: 'node',
  aliases: ['nodes'],
  description: 'The machines pods run on',
  commands: [list],
});
