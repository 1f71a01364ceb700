/** `berth volume ...`: network volumes, named storage that outlives pods. */
import type { NetworkVolume } from '../../model/index.js';
import { age, details, table } from '../output.js';
import { defineCommand, defineGroup } from './define.js';

const ID_ARG = [{ name: 'id', description: 'network volume id', required: true }] as const;

const volumeDetails = (v: NetworkVolume): string =>
  details([
    ['ID', v.id],
    ['Name', v.name],
    ['Size', `${v.sizeGb} GB`],
    ['Data center', v.dataCenterId],
    ['Created', `${v.createdAt} (${age(v.createdAt)} ago)`],
  ]);

const create = defineCommand({
  name: 'create',
  description: 'Create a network volume; attach it with `berth pod create --network-volume <id>`',
  options: {
    name: { kind: 'string', required: true, flags: '--name <name>', description: 'volume name' },
    sizeGb: { kind: 'number', integer: true, required: true, flags: '--size-gb <n>', description: 'size in GB' },
    dataCenter: { kind: 'string', flags: '--data-center <id>', description: 'the node group whose nodes can attach it (default: the first)' },
  },
  examples: ['berth volume create --name datasets --size-gb 100'],
  async handler({ opts, ctx }) {
    const client = await ctx.client();
    const v = await client.post<NetworkVolume>('/network-volumes', { name: opts.name, sizeGb: opts.sizeGb, ...(opts.dataCenter !== undefined ? { dataCenterId: opts.dataCenter } : {}) });
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
    const res = await client.get<{ networkVolumes: NetworkVolume[] }>('/network-volumes');
    const now = Date.now();
    ctx.out.result(res, () =>
      table(res.networkVolumes, [
        { header: 'ID', value: (v) => v.id },
        { header: 'NAME', value: (v) => v.name },
        { header: 'SIZE', value: (v) => `${v.sizeGb} GB` },
        { header: 'DATA CENTER', value: (v) => v.dataCenterId },
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
    const v = await client.get<NetworkVolume>(`/network-volumes/${encodeURIComponent(args.id)}`);
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
    const v = await client.patch<NetworkVolume>(`/network-volumes/${encodeURIComponent(args.id)}`, { sizeGb: opts.sizeGb });
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
