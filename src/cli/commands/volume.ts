/** `berth volume ...`: network volumes, named storage that outlives pods. */
import type { NetworkVolume } from '../../model/index.js';
import { age, details, table } from '../output.js';
import { defineCommand, defineGroup } from './define.js';

const ID_ARG = [{ name: 'id', description: 'network volume id', required: true }] as const;

/** As the API shows it: where its data lives (docs/cluster.md). Older servers say nothing of it. */
type VolumeView = NetworkVolume & { storage?: 'nfs' | 'node'; nodeName?: string | null };

/** Where the volume's data lives: every node of its data center, or one node. */
function storageOf(v: VolumeView): string {
  if (v.storage === 'nfs') return `shared (NFS), on every node of ${v.dataCenterId}`;
  if (v.storage !== 'node') return '-';
  return v.nodeId ? `on node ${v.nodeName ?? v.nodeId}; its pods run there only` : "on one node: the node of the first pod that uses it";
}

const nodeColumn = (v: VolumeView): string => (v.storage === 'nfs' ? '(nfs)' : v.nodeId ? (v.nodeName ?? v.nodeId) : '-');

const volumeDetails = (v: VolumeView): string =>
  details([
    ['ID', v.id],
    ['Name', v.name],
    ['Size', `${v.sizeGb} GB`],
    ['Data center', v.dataCenterId],
    ['Storage', storageOf(v)],
    ['Created', `${v.createdAt} (${age(v.createdAt)} ago)`],
  ]);

const create = defineCommand({
  name: 'create',
  description: 'Create a network volume; attach it with `berth pod create --network-volume <id>`',
  options: {
    name: { kind: 'string', required: true, flags: '--name <name>', description: 'volume name' },
    sizeGb: { kind: 'number', integer: true, required: true, flags: '--size-gb <n>', description: 'size in GB' },
    dataCenter: { kind: 'string', flags: '--data-center <id>', description: "the node group whose nodes can attach it (default: the first, or --node's)" },
    node: { kind: 'string', flags: '--node <name|id>', description: 'the node that holds it, where its data center has no shared storage (default: the node of the first pod that uses it)' },
  },
  examples: ['berth volume create --name datasets --size-gb 100', 'berth volume create --name scratch --size-gb 500 --node gpu-2'],
  async handler({ opts, ctx }) {
    const client = await ctx.client();
    const v = await client.post<VolumeView>('/network-volumes', {
      name: opts.name,
      sizeGb: opts.sizeGb,
      ...(opts.dataCenter !== undefined ? { dataCenterId: opts.dataCenter } : {}),
      ...(opts.node !== undefined ? { nodeId: opts.node } : {}),
    });
    ctx.out.result(v, () => volumeDetails(v));
  },
});

const list = defineCommand({
  name: 'list',
  aliases: ['ls'],
  description: 'List network volumes',
  examples: ['berth volume list'],
  async handler({ ctx }) {
    const client = await ctx.client();
    const res = await client.get<{ networkVolumes: VolumeView[] }>('/network-volumes');
    const now = Date.now();
    ctx.out.result(res, () =>
      table(res.networkVolumes, [
        { header: 'ID', value: (v) => v.id },
        { header: 'NAME', value: (v) => v.name },
        { header: 'SIZE', value: (v) => `${v.sizeGb} GB` },
        { header: 'DATA CENTER', value: (v) => v.dataCenterId },
        { header: 'NODE', value: nodeColumn },
        { header: 'AGE', value: (v) => age(v.createdAt, now) },
      ]),
    );
  },
});

const get = defineCommand({
  name: 'get',
  description: 'Show a network volume',
  args: ID_ARG,
  examples: ['berth volume get 8k2m4n6p0q'],
  async handler({ args, ctx }) {
    const client = await ctx.client();
    const v = await client.get<VolumeView>(`/network-volumes/${encodeURIComponent(args.id)}`);
    ctx.out.result(v, () => volumeDetails(v));
  },
});

const resize = defineCommand({
  name: 'resize',
  description: 'Grow a network volume (it cannot shrink)',
  args: ID_ARG,
  options: { sizeGb: { kind: 'number', integer: true, required: true, flags: '--size-gb <n>', description: 'the new size in GB' } },
  examples: ['berth volume resize 8k2m4n6p0q --size-gb 200'],
  async handler({ args, opts, ctx }) {
    const client = await ctx.client();
    const v = await client.patch<VolumeView>(`/network-volumes/${encodeURIComponent(args.id)}`, { sizeGb: opts.sizeGb });
    ctx.out.result(v, () => volumeDetails(v));
  },
});

const rm = defineCommand({
  name: 'rm',
  aliases: ['delete'],
  description: 'Delete a network volume and its data (no pod may be using it)',
  args: ID_ARG,
  examples: ['berth volume rm 8k2m4n6p0q'],
  async handler({ args, ctx }) {
    const client = await ctx.client();
    await client.delete(`/network-volumes/${encodeURIComponent(args.id)}`);
    ctx.out.result({ id: args.id, deleted: true }, () => `network volume ${args.id} deleted\n`);
  },
});

export const volumeCommands = defineGroup({
  name: 'volume',
  aliases: ['volumes'],
  description: 'Network volumes: storage that outlives pods',
  commands: [create, list, get, resize, rm],
});
