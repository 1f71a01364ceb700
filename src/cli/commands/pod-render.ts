/** How pods read in a terminal: the list's columns and the detail block of `pod get`. */
import { age, bytes, details, table } from '../output.js';
import type { PodSummary } from '../../api/views.js';
import type { PodView } from './pod-watch.js';
import { lifetimeRows } from './lifetime-flags.js';
import { gpuColumn } from './pod-top.js';
import type { PodUsageSummary } from '../../model/index.js';

export interface NodeView {
  id: string;
  name: string;
  publicIp: string;
  status: string;
  notReadySince?: string | null;
  cordoned?: boolean;
  labels: Record<string, string>;
  capacity: { cpus: number; memoryMb: number; gpus: unknown[]; gpusSimulated: boolean };
  gpus: { index: number; uuid: string; name: string; memoryMb: number; simulated: boolean; inUse: boolean }[];
  allocated: { cpus: number; memoryMb: number; gpus: number };
  instances: number;
  agentVersion: string;
  lastSeenAt: string;
}

/** `8080->127.0.0.1:32768` for each published port while running; the declared ports otherwise. */
export function portsColumn(pod: PodSummary): string {
  const mapped = Object.entries(pod.portMappings);
  if (mapped.length) return mapped.map(([port, host]) => `${port}->${pod.publicIp ?? '127.0.0.1'}:${host}`).join(',');
  return pod.ports.join(',');
}

export function podTable(pods: readonly PodSummary[]): string {
  const now = Date.now();
  return table(pods, [
    { header: 'ID', value: (p) => p.id },
    { header: 'NAME', value: (p) => p.name },
    { header: 'STATUS', value: (p) => p.status },
    { header: 'IMAGE', value: (p) => p.image ?? `${p.containers.length} containers` },
    { header: 'GPUS', value: (p) => String(p.gpuCount) },
    { header: 'PORTS', value: portsColumn },
    { header: 'AGE', value: (p) => age(p.createdAt, now) },
  ]);
}

const when = (iso: string | null): string | undefined => (iso ? `${iso} (${age(iso)} ago)` : undefined);

/** The whole of one pod for `pod get`, and after create and the actions. */
export function podDetails(pod: PodView, nodes: ReadonlyMap<string, NodeView> = new Map()): string {
  const spec = pod.spec;
  const node = pod.nodeId ? nodes.get(pod.nodeId) : undefined;
  const host = pod.publicIp ?? '127.0.0.1';
  const argv = (c: { entrypoint: string[]; command: string[] }): string => [...c.entrypoint, ...c.command].join(' ') || '(the image\'s)';
  const containers = spec.containers.length === 1 ? [] : spec.containers.map((c) => `${c.name}: ${c.image} ${argv(c)}`);
  const gpus = pod.instances.flatMap((i) => i.gpus);
  const resources = [
    spec.vcpuCount !== null ? `${spec.vcpuCount} vCPU` : 'no CPU limit',
    spec.memoryGb !== null ? `${spec.memoryGb} GB memory` : 'no memory limit',
    `${spec.containerDiskGb} GB container disk`,
  ].join(', ');
  const volumes = [
    ...(spec.networkVolumeId ? [`network volume ${spec.networkVolumeId} at ${mounts(spec, 'network-volume', spec.volumeMountPath)}`] : []),
    ...(!spec.networkVolumeId && spec.volumeGb > 0 ? [`volume disk ${spec.volumeGb} GB at ${mounts(spec, 'volume-disk', spec.volumeMountPath)}`] : []),
    ...spec.volumes.map((v) => `${v.name} (${volumeKind(v, spec)})${spec.containers.some((c) => c.volumeMounts.some((m) => m.name === v.name)) ? ` at ${mounts(spec, v.name)}` : ', not mounted'}`),
  ];
  const ports = [
    ...spec.containers.flatMap((c) => c.ports).map((p) => {
      const hostPort = pod.portMappings[String(p.port)];
      return `${p.port}/${p.protocol}${hostPort ? ` -> ${host}:${hostPort}` : ''}`;
    }),
    ...spec.containers.flatMap((c) => c.endpoints).map((e) => endpointPort(e, pod.instances[0], host)),
  ];
  let text = details([
    ['ID', pod.id],
    ['Name', pod.name],
    ['Status', pod.status + (pod.desiredStatus === 'EXITED' && ['PROVISIONING', 'STARTING', 'RUNNING'].includes(pod.status) ? ' (stopping)' : '')],
    ['Message', pod.statusMessage ?? undefined],
    ['Image', spec.containers.length === 1 ? (pod.image ?? undefined) : undefined],
    ['Command', spec.containers.length === 1 ? argv(spec.containers[0]!) : undefined],
    ['Containers', containers.length ? containers.join('; ') : undefined],
    ['Node', pod.nodeId ? (node ? `${node.name} (${pod.nodeId})` : pod.nodeId) : '-'],
    [
      'GPUs',
      gpus.length
        ? gpus.map((g) => `${g.name}${g.simulated ? ' (simulated)' : ''}`).join(', ')
        : spec.gpuCount
          ? `${spec.gpuCount}${spec.gpuTypeIds.length ? ` × ${spec.gpuTypeIds.join(' | ')}` : ''}`
          : 'none',
    ],
    ['Resources', resources],
    ['Ports', ports.length ? ports.join(', ') : 'none'],
    ...connectionRows(pod),
    ['Volumes', volumes.length ? volumes.join('; ') : 'none'],
    ['Env', Object.keys(spec.containers[0]?.env ?? {}).length ? Object.keys(spec.containers[0]!.env).join(', ') : undefined],
    ['Restart policy', spec.restartPolicy],
    ['Restarts', pod.restartCount ? String(pod.restartCount) : undefined],
    ['Exit code', pod.exitCode !== null ? String(pod.exitCode) : undefined],
    ['Spec version', String(pod.specVersion)],
    ['Allowed actions', pod.allowedActions.join(', ') || 'none'],
    ['Usage', usageLine(pod)],
    ...lifetimeRows(pod),
    ['Created', when(pod.createdAt)],
    ['Started', when(pod.lastStartedAt)],
    ['Terminated', when(pod.terminatedAt)],
  ]);
  if (pod.instances.length) {
    const now = Date.now();
    const instances = table(pod.instances, [
      { header: 'INSTANCE', value: (i) => i.id },
      { header: 'NODE', value: (i) => (i.nodeId ? (nodes.get(i.nodeId)?.name ?? i.nodeId) : '-') },
      { header: 'STATE', value: (i) => i.state },
      { header: 'RESTARTS', value: (i) => String(i.restartCount) },
      { header: 'UP', value: (i) => (i.state === 'running' ? age(i.startedAt, now) : '-') },
      { header: 'DISK', value: (i) => (i.disk?.containerDiskBytes != null ? bytes(i.disk.containerDiskBytes) : '-') },
      { header: 'MESSAGE', value: (i) => i.message ?? '' },
    ]);
    text += `\nInstances:\n${indent(instances)}`;
    if (showContainers(pod)) text += `\nContainers:\n${indent(pod.instances.map((i) => instanceContainers(i, nodes, host)).join('\n'))}`;
  }
  if (pod.lastLogLines.length && pod.status !== 'RUNNING') text += `\nLast log lines:\n${indent(pod.lastLogLines.join('\n') + '\n')}`;
  return text;
}

type InstanceView = PodView['instances'][number];
type ContainerView = InstanceView['containers'][number];
type Spec = PodView['spec'];

/**
 * Where the containers mount a volume: `/data`, or `/a in web, /b in sidecar` when they differ. The
 * volume disk and a network volume go at `fallback` in each container that does not mount them by name.
 */
function mounts(spec: Spec, name: string, fallback?: string): string {
  const each = spec.containers.flatMap((c) => {
    const own = c.volumeMounts.filter((m) => m.name === name).map((m) => `${m.mountPath}${m.readOnly ? ' (read-only)' : ''}`);
    return (own.length ? own : fallback ? [fallback] : []).map((at) => ({ container: c.name, at }));
  });
  if (new Set(each.map((m) => m.at)).size === 1 && each.length === spec.containers.length) return each[0]!.at;
  return each.map((m) => `${m.at} in ${m.container}`).join(', ');
}

/** `ephemeral`, `persistent, 512 MB`, `host /srv/data`, `secret db/password` (the store's name for it). */
function volumeKind(v: Spec['volumes'][number], spec: Spec): string {
  switch (v.kind) {
    case 'ephemeral':
      return 'ephemeral';
    case 'persistent':
      return `persistent, ${v.sizeMb} MB`;
    case 'host':
      return `host ${v.hostPath}`;
    case 'secret':
      return `secret ${spec.secrets[v.secret] ?? v.secret}`;
  }
}

/**
 * An endpoint as the Ports row shows it: `8080/http (endpoint web) -> 127.0.0.1:32768` with the host
 * port the first instance got (as `pod list` shows the first instance's), the declared port otherwise.
 */
function endpointPort(e: Spec['containers'][number]['endpoints'][number], first: InstanceView | undefined, host: string): string {
  const protocols = e.protocols.length ? e.protocols.join('/') : 'tcp';
  const hostPort = first?.endpoints[e.name];
  return `${e.containerPort !== null ? `${e.containerPort}/` : ''}${protocols} (endpoint ${e.name})${hostPort ? ` -> ${host}:${hostPort}` : ''}`;
}

/** Per-container detail is worth its lines when there are several containers or instances, endpoints or health checks. */
function showContainers(pod: PodView): boolean {
  return pod.spec.containers.length > 1 || pod.instances.length > 1 || pod.spec.containers.some((c) => c.endpoints.length > 0 || c.healthCheck !== null);
}

/** healthy / unhealthy, or `-` when the container has no health check or no verdict yet. */
function health(c: ContainerView): string {
  const healthy = 'healthy' in c ? c.healthy : null;
  if (healthy === true) return 'healthy';
  if (healthy === false) return `unhealthy${'healthFailures' in c && c.healthFailures ? ` (${c.healthFailures} failed)` : ''}`;
  return '-';
}

/** One instance's heading (id, node, state), its containers, and its endpoints' host ports. */
function instanceContainers(i: InstanceView, nodes: ReadonlyMap<string, NodeView>, fallbackHost: string): string {
  const node = i.nodeId ? nodes.get(i.nodeId) : undefined;
  const heading = `${i.id} on ${i.nodeId ? (node?.name ?? i.nodeId) : '-'}: ${i.state}${i.message ? ` (${i.message})` : ''}\n`;
  const containers = table(i.containers, [
    { header: 'NAME', value: (c) => c.name },
    { header: 'STATE', value: (c) => c.state + (c.exitCode !== null && c.state !== 'running' ? ` (exit ${c.exitCode})` : '') },
    { header: 'HEALTH', value: health },
    // The agent restarts an instance's containers together (one failing container replaces the instance), so the count is the instance's.
    { header: 'RESTARTS', value: (c) => String('restartCount' in c && typeof c.restartCount === 'number' ? c.restartCount : i.restartCount) },
  ]);
  const host = node?.publicIp ?? fallbackHost;
  const endpoints = Object.entries(i.endpoints).map(([name, port]) => `${name} -> ${host}:${port}`);
  return heading + indent(containers) + (endpoints.length ? indent(`Endpoints: ${endpoints.join(', ')}\n`) : '');
}

/** HTTP URLs, TCP addresses and the ssh command, as the server reports them. */
function connectionRows(pod: PodView): [string, string | undefined][] {
  const c = pod.connection;
  if (!c) return [];
  const http = c.http.map((h) => `${h.url}${h.private ? ' (private: your API key, or a link from POST /pods/{id}/proxy-link)' : ''}`);
  const tcp = c.tcp.map((p) => `${p.address ?? '(when running)'} -> :${p.port}`);
  const ssh = c.ssh ? (c.ssh.containers ? Object.entries(c.ssh.containers).map(([name, cmd]) => `${cmd}   (${name})`) : [c.ssh.command]) : [];
  return [
    ['HTTP', http.length ? http.join(', ') : undefined],
    ['TCP', tcp.length ? tcp.join(', ') : undefined],
    ['SSH', ssh.length ? ssh.join('; ') : undefined],
  ];
}

const indent = (text: string): string =>
  text
    .split('\n')
    .map((l) => (l ? `  ${l}` : l))
    .join('\n');

/** `1.02 cores, 96.3 MB memory, GPU 87%`: the latest sample, for `pod get`; undefined when none was taken. */
function usageLine(pod: PodView & { usage?: PodUsageSummary | null }): string | undefined {
  const u = pod.usage;
  if (!u) return undefined;
  const gpus = u.gpus.length ? `, GPU ${gpuColumn(u, u.gpus.length)}` : '';
  return `${u.cpuCores.toFixed(2)} cores, ${bytes(u.memoryBytes)} memory${u.memoryLimitBytes ? ` of ${bytes(u.memoryLimitBytes)}` : ''}${gpus} (${age(u.at)} ago; berth pod top)`;
}
