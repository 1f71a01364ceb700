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

const rm = defineCommand({
  name: 'rm',
  aliases: ['delete', 'remove'],
  description: "Remove a node and revoke its credential: its agent is refused from then on (admin key)",
  args: [{ name: 'id', description: 'node id', required: true }],
  options: {
    force: { kind: 'boolean', flags: '--force', description: 'remove it even with instances on it: their pods are placed on other nodes (containers left on that machine are not stopped)' },
  },
  examples: ['berth node rm 4k2m9x7q1z3p', 'berth node rm 4k2m9x7q1z3p --force'],
  async handler({ args, opts, ctx }) {
    const client = await ctx.client();
    const res = await client.request<{ id: string; removed: boolean; unplaced: number }>('DELETE', `/nodes/${encodeURIComponent(args.id)}`, opts.force ? { query: { force: 'true' } } : {});
    ctx.out.result(res, () => `node ${args.id} removed and its credential revoked${res.unplaced ? `; ${res.unplaced} instance(s) taken off it are placed again elsewhere` : ''}\n`);
  },
});

export const nodeCommands = defineGroup({
  name: 'node',
  aliases: ['nodes'],
  description: 'The machines pods run on',
  commands: [list, rm],
});
