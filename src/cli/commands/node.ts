/** `berth node list | cordon | uncordon | drain`: the machines pods run on, with capacity and what is allocated. */
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
        { header: 'STATUS', value: (n) => `${n.status}${n.notReadySince ? ` (${age(n.notReadySince, now)})` : ''}${n.cordoned ? ',CORDONED' : ''}` },
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

const cordon = defineCommand({
  name: 'cordon',
  description: 'Take no new instances on a node (admin); what runs there stays',
  args: [{ name: 'node', description: 'node id or name', required: true }],
  examples: ['berth node cordon gpu3'],
  async handler({ args, ctx }) {
    const n = await (await ctx.client()).post<NodeView>(`/nodes/${encodeURIComponent(args.node)}/cordon`);
    ctx.out.result(n, () => `node ${n.name} cordoned: it takes no new instances\n`);
  },
});

const uncordon = defineCommand({
  name: 'uncordon',
  description: 'Let a cordoned node take new instances again (admin)',
  args: [{ name: 'node', description: 'node id or name', required: true }],
  examples: ['berth node uncordon gpu3'],
  async handler({ args, ctx }) {
    const n = await (await ctx.client()).post<NodeView>(`/nodes/${encodeURIComponent(args.node)}/uncordon`);
    ctx.out.result(n, () => `node ${n.name} uncordoned\n`);
  },
});

interface DrainView {
  node: NodeView;
  moved: { podId: string; instanceId: string; replacement: string; to: string | null }[];
  stays: { podId: string; instanceId: string; reason: string }[];
}

const drain = defineCommand({
  name: 'drain',
  description: 'Cordon a node and move every instance that may leave it (admin); says what cannot move and why',
  args: [{ name: 'node', description: 'node id or name', required: true }],
  examples: ['berth node drain gpu3'],
  async handler({ args, ctx }) {
    const r = await (await ctx.client()).post<DrainView>(`/nodes/${encodeURIComponent(args.node)}/drain`);
    ctx.out.result(r, () => {
      const lines = [`node ${r.node.name} cordoned; ${r.moved.length} instance${r.moved.length === 1 ? '' : 's'} moved, ${r.stays.length} stay${r.stays.length === 1 ? 's' : ''}`];
      for (const m of r.moved) lines.push(`  moved  ${m.instanceId} -> ${m.replacement} on ${m.to ?? '(waiting for a node)'}`);
      for (const s of r.stays) lines.push(`  stays  ${s.instanceId}: ${s.reason}`);
      return lines.join('\n') + '\n';
    });
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
  commands: [list, cordon, uncordon, drain, rm],
});
