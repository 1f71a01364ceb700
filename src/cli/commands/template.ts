/** `berth template ...`: saved pod settings to create pods from. */
import type { PodInput, Template } from '../../model/index.js';
import { age, details, table, UserError } from '../output.js';
import { defineCommand, defineGroup } from './define.js';
import { readText } from './input.js';
import { POD_FIELD_OPTIONS, podInputFrom } from './pod-input.js';

const ID_ARG = [{ name: 'id', description: 'template id', required: true }] as const;

const templateDetails = (t: Template): string =>
  details([
    ['ID', t.id],
    ['Name', t.name],
    ['Image', t.pod.image ?? (t.pod.containers ? t.pod.containers.map((c) => c.image).join(', ') : '(given at create)')],
    ['Created', `${t.createdAt} (${age(t.createdAt)} ago)`],
    ['Updated', t.updatedAt !== t.createdAt ? `${t.updatedAt} (${age(t.updatedAt)} ago)` : undefined],
  ]) +
  `Pod:\n${JSON.stringify(t.pod, null, 2).replace(/^/gm, '  ')}\n` +
  (t.readme ? `Readme:\n${t.readme.replace(/^/gm, '  ')}\n` : '');

const create = defineCommand({
  name: 'create',
  description: 'Save pod settings as a template; `berth pod create --template <id>` starts from it',
  args: [{ name: 'command', variadic: true, description: 'the container command, after --' }],
  options: {
    name: { kind: 'string', required: true, flags: '--name <name>', description: 'template name' },
    ...POD_FIELD_OPTIONS,
    podName: { kind: 'string', flags: '--pod-name <name>', description: 'the name pods made from it get' },
    file: { kind: 'string', flags: '-f, --file <path>', description: 'the pod fields as JSON (- for stdin); flags override them' },
    readme: { kind: 'string', flags: '--readme <file>', description: 'a readme (Markdown) shown with the template' },
  },
  examples: ['berth template create --name jupyter --image jupyter/base-notebook --ports 8888/http --volume-gb 50', 'berth template create --name trainer -f pod.json'],
  async handler({ args, opts, ctx }) {
    const pod: PodInput = await podInputFrom({ ...opts, name: opts.podName }, args.command);
    if (Object.keys(pod).length === 0) throw new UserError('a template needs pod settings: -f pod.json or flags such as --image');
    const readme = opts.readme !== undefined ? await readText(opts.readme) : undefined;
    const client = await ctx.client();
    const t = await client.post<Template>('/templates', { name: opts.name, pod, ...(readme !== undefined ? { readme } : {}) });
    ctx.out.result(t, () => templateDetails(t));
  },
});

const list = defineCommand({
  name: 'list',
  aliases: ['ls'],
  description: 'List templates',
  examples: ['berth template list'],
  async handler({ ctx }) {
    const client = await ctx.client();
    const res = await client.get<{ templates: Template[] }>('/templates');
    const now = Date.now();
    ctx.out.result(res, () =>
      table(res.templates, [
        { header: 'ID', value: (t) => t.id },
        { header: 'NAME', value: (t) => t.name },
        { header: 'IMAGE', value: (t) => t.pod.image ?? '' },
        { header: 'PORTS', value: (t) => (Array.isArray(t.pod.ports) ? t.pod.ports.join(',') : (t.pod.ports ?? '')) },
        { header: 'GPUS', value: (t) => String(t.pod.gpuCount ?? 0) },
        { header: 'AGE', value: (t) => age(t.createdAt, now) },
      ]),
    );
  },
});

const get = defineCommand({
  name: 'get',
  description: 'Show a template and the pod fields it sets',
  args: ID_ARG,
  examples: ['berth template get 4f8a1c2b3d'],
  async handler({ args, ctx }) {
    const client = await ctx.client();
    const t = await client.get<Template>(`/templates/${encodeURIComponent(args.id)}`);
    ctx.out.result(t, () => templateDetails(t));
  },
});

const rm = defineCommand({
  name: 'rm',
  aliases: ['delete'],
  description: 'Delete a template (pods made from it keep running)',
  args: ID_ARG,
  examples: ['berth template rm 4f8a1c2b3d'],
  async handler({ args, ctx }) {
    const client = await ctx.client();
    await client.delete(`/templates/${encodeURIComponent(args.id)}`);
    ctx.out.result({ id: args.id, deleted: true }, () => `template ${args.id} deleted\n`);
  },
});

export const templateCommands = defineGroup({
  name: 'template',
  aliases: ['templates'],
  description: 'Templates: saved pod settings',
  commands: [create, list, get, rm],
});
