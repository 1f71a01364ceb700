/** `berth pod ...`: create, look at, change, stop and remove pods. */
import type { PodSummary } from '../../api/views.js';
import type { PodVersion } from '../../model/index.js';
import type { BerthClient } from '../client.js';
import { age, table, UserError, type Output } from '../output.js';
import { defineCommand, defineGroup, type OptionSpecs } from './define.js';
import { podExec, podLogs } from './pod-io.js';
import { POD_OPTIONS, podInputFrom } from './pod-input.js';
import { podDetails, podTable, type NodeView } from './pod-render.js';
import { top } from './pod-top.js';
import { newGenerationSettled, PodProgress, SETTLED, watchPod, type PodView } from './pod-watch.js';

const WAIT_OPTIONS = {
  detach: { kind: 'boolean', flags: '-d, --detach', description: 'return at once instead of waiting for the pod to settle' },
  timeout: { kind: 'number', flags: '--timeout <seconds>', description: 'stop waiting after this long (the pod keeps going); exit code 1' },
} as const satisfies OptionSpecs;

const ID_ARG = [{ name: 'id', description: 'pod id', required: true }] as const;

async function nodeMap(client: BerthClient): Promise<Map<string, NodeView>> {
  try {
    const { nodes } = await client.get<{ nodes: NodeView[] }>('/nodes');
    return new Map(nodes.map((n) => [n.id, n]));
  } catch {
    // Node names only decorate the view; the ids still show.
    return new Map();
  }
}

/**
 * Waits (with progress on stderr) until `done`, prints the pod and returns the exit code: 0 when it
 * settled as wanted, 1 when it ended in ERROR or was terminated underneath us.
 */
async function settle(client: BerthClient, out: Output, pod: PodView, done: (p: PodView) => boolean, timeoutS: number | undefined, wanted: readonly string[]): Promise<{ pod: PodView; code: number }> {
  const progress = new PodProgress(out);
  let settled: PodView;
  try {
    settled = await watchPod(client, pod, { done, onUpdate: (p) => progress.update(p), ...(timeoutS !== undefined ? { timeoutMs: timeoutS * 1000 } : {}) });
  } finally {
    progress.finish();
  }
  const ok = wanted.includes(settled.status);
  if (!ok) out.note(`error: pod ${settled.id} is ${settled.status}${settled.statusMessage ? `: ${settled.statusMessage}` : ''}`);
  return { pod: settled, code: ok ? 0 : 1 };
}

const create = defineCommand({
  name: 'create',
  description: 'Create a pod and wait until it is RUNNING (or stops trying: ERROR, EXITED)',
  args: [{ name: 'command', variadic: true, description: 'the container command, after --' }],
  options: { ...POD_OPTIONS, ...WAIT_OPTIONS },
  examples: [
    'berth pod create --name web --image nginx:1.27 --ports 80/http',
    "berth pod create --image python:3.12 --gpu-count 1 --env MODE=dev -- python -m http.server 8888",
    'berth pod create -f pod.json --detach',
  ],
  async handler({ args, opts, ctx }) {
    const body = await podInputFrom(opts, args.command);
    if (!body.image && !body.templateId && !body.containers) throw new UserError('--image is required (or --template, or -f with "image" or "containers")');
    const client = await ctx.client();
    const pod = await client.post<PodView>('/pods', body);
    if (opts.detach) {
      ctx.out.result(pod, () => `${pod.id}\n`);
      return;
    }
    ctx.out.note(`pod ${pod.id} created; waiting for it to run (Ctrl-C stops waiting, the pod keeps going)`);
    const { pod: settled, code } = await settle(client, ctx.out, pod, (p) => SETTLED.has(p.status), opts.timeout, ['RUNNING', 'EXITED']);
    const nodes = ctx.out.json ? new Map() : await nodeMap(client);
    ctx.out.result(settled, () => podDetails(settled, nodes));
    return code;
  },
});

const list = defineCommand({
  name: 'list',
  aliases: ['ls'],
  description: 'List pods (terminated ones with --all)',
  options: {
    status: { kind: 'list', split: true, flags: '--status <status>', description: 'only these statuses: RUNNING,EXITED (repeatable)' },
    name: { kind: 'string', flags: '--name <name>', description: 'only pods with this name' },
    image: { kind: 'string', flags: '--image <image>', description: 'only pods running this image' },
    all: { kind: 'boolean', flags: '-a, --all', description: 'include terminated pods' },
  },
  examples: ['berth pod list', 'berth pod list --status RUNNING -o json'],
  async handler({ opts, ctx }) {
    const client = await ctx.client();
    const res = await client.get<{ pods: PodSummary[]; next: string | null }>('/pods', {
      status: opts.status.length ? opts.status : undefined,
      name: opts.name,
      image: opts.image,
      includeTerminated: opts.all || undefined,
    });
    if (!ctx.out.json && res.pods.length === 0) {
      ctx.out.note(opts.all ? 'no pods' : 'no pods (--all includes terminated ones)');
      return;
    }
    ctx.out.result(res, () => podTable(res.pods));
  },
});

const get = defineCommand({
  name: 'get',
  aliases: ['show'],
  description: 'Show a pod: status, image, node, ports with their public mapping, volumes, instances',
  args: ID_ARG,
  examples: ['berth pod get 2s56cp0pof1rmt'],
  async handler({ args, ctx }) {
    const client = await ctx.client();
    const pod = await client.get<PodView>(`/pods/${encodeURIComponent(args.id)}`);
    const nodes = ctx.out.json ? new Map() : await nodeMap(client);
    ctx.out.result(pod, () => podDetails(pod, nodes));
  },
});

type Action = 'start' | 'stop' | 'restart' | 'reset';

/** An action, then (unless --detach) a wait until the pod shows its effect. */
function action(name: Action, description: string) {
  return defineCommand({
    name,
    description,
    args: ID_ARG,
    options: {
      ...WAIT_OPTIONS,
      gpuCount: { kind: 'number', integer: true, hidden: name !== 'start', flags: '--gpu-count <n>', description: 'start with fewer GPUs (0: to reach the volume disk while the GPUs are taken)' },
    },
    examples: [`berth pod ${name} 2s56cp0pof1rmt`],
    async handler({ args, opts, ctx }) {
      if (opts.gpuCount !== undefined && name !== 'start') throw new UserError('--gpu-count applies to start only');
      const client = await ctx.client();
      const path = `/pods/${encodeURIComponent(args.id)}`;
      const pod = await client.post<PodView>(`${path}/${name}`, opts.gpuCount !== undefined ? { gpuCount: opts.gpuCount } : {});
      if (opts.detach) {
        ctx.out.result(pod, () => `pod ${pod.id}: ${name} requested (now ${pod.status})\n`);
        return;
      }
      const [done, wanted] =
        name === 'stop'
          ? [(p: PodView) => p.status === 'EXITED' || p.status === 'ERROR' || p.status === 'TERMINATED', ['EXITED']]
          : [newGenerationSettled(), ['RUNNING', 'EXITED']];
      const { pod: settled, code } = await settle(client, ctx.out, pod, done, opts.timeout, wanted);
      ctx.out.result(settled, () => `pod ${settled.id} is ${settled.status}${settled.statusMessage ? `: ${settled.statusMessage}` : ''}\n`);
      return code;
    },
  });
}

const rm = defineCommand({
  name: 'rm',
  aliases: ['terminate'],
  description: 'Terminate a pod: its containers and volume disk are deleted (its versions are kept)',
  args: ID_ARG,
  examples: ['berth pod rm 2s56cp0pof1rmt'],
  async handler({ args, ctx }) {
    const client = await ctx.client();
    const pod = await client.delete<PodView>(`/pods/${encodeURIComponent(args.id)}`);
    ctx.out.result(pod, () => `pod ${pod.id} terminated\n`);
  },
});

const keepAlive = defineCommand({
  name: 'keep-alive',
  description: 'Keep a pod from its idle stop and maximum running time for N hours from now (0: no longer)',
  args: ID_ARG,
  options: { hours: { kind: 'number', flags: '--hours <n>', required: true, description: 'hours from now (fractions allowed; 0 ends an earlier keep-alive)' } },
  examples: ['berth pod keep-alive 2s56cp0pof1rmt --hours 4'],
  async handler({ args, opts, ctx }) {
    const client = await ctx.client();
    const pod = await client.post<PodView>(`/pods/${encodeURIComponent(args.id)}/keep-alive`, { hours: opts.hours });
    ctx.out.result(pod, () => (pod.keepAliveUntil ? `pod ${pod.id} is kept alive until ${pod.keepAliveUntil}${pod.stopsAt ? `; it stops at ${pod.stopsAt} (${pod.stopReason ?? ''})` : ''}\n` : `pod ${pod.id} is no longer kept alive\n`));
  },
});

const { template: _template, ...UPDATE_OPTIONS } = POD_OPTIONS;

const update = defineCommand({
  name: 'update',
  description: 'Change a pod: a new spec version; any change but the name recreates its containers',
  args: [...ID_ARG, { name: 'command', variadic: true, description: 'a new container command, after --' }],
  options: { ...UPDATE_OPTIONS, ...WAIT_OPTIONS },
  examples: ['berth pod update 2s56cp0pof1rmt --env MODE=prod --ports 8888/http,22/tcp', 'berth pod update 2s56cp0pof1rmt -- python serve.py', 'berth pod update 2s56cp0pof1rmt --image nginx:1.27.1 --detach'],
  async handler({ args, opts, ctx }) {
    const { detach, timeout, ...fields } = opts;
    const body = await podInputFrom(fields, args.command);
    if (Object.keys(body).length === 0) throw new UserError('nothing to change: give at least one flag, -f, or a command after --');
    const client = await ctx.client();
    const pod = await client.patch<PodView>(`/pods/${encodeURIComponent(args.id)}`, body);
    if (detach) {
      ctx.out.result(pod, () => `pod ${pod.id} is at spec version ${pod.specVersion} (${pod.status})\n`);
      return;
    }
    const { pod: settled, code } = await settle(client, ctx.out, pod, newGenerationSettled(), timeout, ['RUNNING', 'EXITED']);
    ctx.out.result(settled, () => `pod ${settled.id} is ${settled.status} at spec version ${settled.specVersion}${settled.statusMessage ? `: ${settled.statusMessage}` : ''}\n`);
    return code;
  },
});

const versions = defineCommand({
  name: 'versions',
  description: 'The spec versions of a pod (version 1 and the newest 100), kept after terminate',
  args: ID_ARG,
  examples: ['berth pod versions 2s56cp0pof1rmt'],
  async handler({ args, ctx }) {
    const client = await ctx.client();
    // The server answers a page at a time; the kept versions (at most 101) are read in a few pages.
    const res: { versions: PodVersion[] } = { versions: [] };
    for (let cursor: string | null = ''; cursor !== null; ) {
      const page: { versions: PodVersion[]; next: string | null } = await client.get(`/pods/${encodeURIComponent(args.id)}/versions?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
      res.versions.push(...page.versions);
      cursor = page.next ?? null;
    }
    const now = Date.now();
    ctx.out.result(res, () =>
      table(res.versions, [
        { header: 'VERSION', value: (v) => String(v.version) },
        { header: 'IMAGE', value: (v) => v.spec.containers.map((c) => c.image).join(',') },
        { header: 'COMMAND', value: (v) => v.spec.containers[0] ? [...v.spec.containers[0].entrypoint, ...v.spec.containers[0].command].join(' ') : '' },
        { header: 'PORTS', value: (v) => v.spec.containers.flatMap((c) => c.ports.map((p) => `${p.port}/${p.protocol}`)).join(',') },
        { header: 'GPUS', value: (v) => String(v.spec.gpuCount) },
        { header: 'CREATED', value: (v) => age(v.createdAt, now) },
      ]),
    );
  },
});

export const podCommands = defineGroup({
  name: 'pod',
  aliases: ['pods'],
  description: 'Create and manage pods',
  commands: [
    top,
    create,
    list,
    get,
    action('start', 'Start a stopped pod and wait until it runs'),
    action('stop', 'Stop a pod: its GPUs are released, the container disk is wiped, the volume disk is kept'),
    action('restart', 'Restart the pod\'s containers in place'),
    action('reset', 'Recreate the pod\'s containers: the container disk is wiped, ports are mapped anew'),
    rm,
    update,
    keepAlive,
    versions,
    podLogs,
    podExec,
  ],
});
