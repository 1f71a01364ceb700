import { httpPorts, proxyUrl, sshCommand, type AccessEndpoints } from '../control/access.js';
import type { LifetimeView } from '../control/lifetimes.js';
import { allowedActions, formatPort, podPorts, type Instance, type Node, type PodSpec } from '../model/index.js';
import type { PodDetail } from '../store/types.js';

/** The native API's view of a pod: the spec's common fields flat, for single-container pods, plus the full spec and instances. */
export function podView(d: PodDetail, nodes: Map<string, Node>, endpoints?: AccessEndpoints, lifetime?: LifetimeView) {
  const { pod, spec } = d;
  const main = spec.containers[0];
  const first = d.instances[0];
  const node = pod.nodeId ? nodes.get(pod.nodeId) : undefined;
  const portMappings = first?.observed?.state === 'running' ? first.observed.ports : {};
  return {
    id: pod.id,
    name: pod.name,
    owner: pod.owner,
    status: pod.status,
    desiredStatus: pod.desiredStatus,
    statusMessage: pod.statusMessage,
    allowedActions: allowedActions(pod.status),
    specVersion: pod.specVersion,
    /** The Marathon path id, for pods defined through /marathon/v2. */
    marathonId: spec.marathon?.id ?? null,
    /** The store revision of the pod's last change: resume `/api/v1/events?since=` from it. */
    revision: pod.revision,
    image: main?.image ?? null,
    ports: spec.containers.flatMap((c) => c.ports.map(formatPort)),
    gpuCount: spec.gpuCount,
    /** The type of the GPUs attached to the first instance, else the preferred type asked for; null: any, or none. */
    gpuType: gpuTypeOf(first, node, spec),
    nodeId: pod.nodeId,
    publicIp: node?.publicIp ?? null,
    portMappings,
    /** How to reach the pod: proxy URLs, TCP addresses and the ssh command. */
    connection: connectionView(d, node?.publicIp ?? null, portMappings, endpoints),
    pull: first?.observed?.pull ?? null,
    exitCode: first?.observed?.exitCode ?? null,
    lastLogLines: first?.observed?.lastLogLines ?? [],
    restartCount: first?.observed?.restartCount ?? 0,
    /** Launches in a row that failed before a container ran (pull errors, a taken host port); not restarts. */
    launchFailures: first?.observed?.launchFailures ?? 0,
    createdAt: pod.createdAt,
    updatedAt: pod.updatedAt,
    lastStartedAt: pod.lastStartedAt,
    terminatedAt: pod.terminatedAt,
    ...lifetimeFields(d, lifetime),
    spec,
    instances: d.instances.map((i) => instanceView(i, nodes, spec)),
  };
}

export type PodView = ReturnType<typeof podView>;

function gpuTypeOf(first: Instance | undefined, node: Node | undefined, spec: PodSpec): string | null {
  if (spec.gpuCount === 0) return null;
  const attached = first && node ? node.capacity.gpus.find((g) => first.gpuUuids.includes(g.uuid)) : undefined;
  return attached?.name ?? spec.gpuTypeIds[0] ?? null;
}

/**
 * The lifetime policies and when they act: `stopsAt` (an idle stop or the maximum running time,
 * a keep-alive included) and why, `terminatesAt` and why, and since when the pod is idle.
 */
export function lifetimeFields(d: PodDetail, l: LifetimeView | undefined) {
  return {
    lifetime: d.spec.lifetime ?? null,
    keepAliveUntil: d.pod.keepAliveUntil,
    stopsAt: l?.stopsAt ?? null,
    stopReason: l?.stopReason ?? null,
    idleSince: l?.idleSince ?? null,
    terminatesAt: l?.terminatesAt ?? null,
    terminateReason: l?.terminateReason ?? null,
  };
}

/**
 * Connection details, so nobody has to assemble them (RunPod users' complaint): each http port's
 * proxy URL, each tcp port's `publicIp:externalPort` (null until the pod runs), and the exact ssh
 * command, per container when there are several.
 */
export function connectionView(d: PodDetail, publicIp: string | null, portMappings: Record<string, number>, endpoints?: AccessEndpoints) {
  const ports = podPorts(d.spec);
  const proxy = endpoints?.proxy;
  const ssh = endpoints?.ssh;
  return {
    http: proxy ? httpPorts(d.spec).map((p) => ({ port: p.port, url: proxyUrl(proxy, d.pod.id, p.port), private: p.private })) : [],
    tcp: ports
      .filter((p) => p.protocol === 'tcp')
      .map((p) => {
        const externalPort = portMappings[String(p.port)] ?? null;
        return { port: p.port, publicIp, externalPort, address: externalPort !== null && publicIp ? `${publicIp}:${externalPort}` : null };
      }),
    ssh: ssh
      ? {
          host: ssh.host,
          port: ssh.port,
          user: d.pod.id as string,
          command: sshCommand(ssh, d.pod.id),
          ...(ssh.hostKey ? { hostKey: ssh.hostKey } : {}),
          ...(d.spec.containers.length > 1 ? { containers: Object.fromEntries(d.spec.containers.map((c) => [c.name, sshCommand(ssh, d.pod.id, c.name)])) } : {}),
        }
      : null,
  };
}

/**
 * A list item: the view without the full spec, the instances and the connection details (URLs,
 * addresses, the ssh command and host key: a third of a view by themselves), so lists of thousands
 * of pods stay quick to send; `?view=full` or `GET /pods/{id}` give the rest.
 */
export function podSummary(d: PodDetail, nodes: Map<string, Node>, lifetime?: LifetimeView) {
  const { spec: _spec, instances: _instances, connection: _connection, ...summary } = podView(d, nodes, undefined, lifetime);
  return { ...summary, containers: d.spec.containers.map((c) => ({ name: c.name, image: c.image })), instanceCount: d.instances.length };
}

function healthOf(i: Instance, spec: PodSpec): boolean | null {
  const checked = spec.containers.filter((c) => c.healthCheck).map((c) => c.name);
  if (checked.length === 0 || i.observed?.state !== 'running') return null;
  const verdicts = i.observed.containers.filter((c) => checked.includes(c.name)).map((c) => c.healthy ?? null);
  if (verdicts.some((v) => v === false)) return false;
  return verdicts.length === checked.length && verdicts.every((v) => v === true) ? true : null;
}

function instanceView(i: Instance, nodes: Map<string, Node>, spec: PodSpec) {
  const node = i.nodeId ? nodes.get(i.nodeId) : undefined;
  const gpus = node?.capacity.gpus.filter((g) => i.gpuUuids.includes(g.uuid)) ?? [];
  return {
    id: i.id,
    nodeId: i.nodeId,
    specVersion: i.specVersion,
    goal: i.goal,
    resetGeneration: i.resetGeneration,
    restartGeneration: i.restartGeneration,
    observedSpecVersion: i.observed?.observedSpecVersion ?? null,
    observedResetGeneration: i.observed?.observedResetGeneration ?? null,
    observedRestartGeneration: i.observed?.observedRestartGeneration ?? null,
    /** `unknown` while the instance's node is not answering: what it last said may be stale. */
    state: node?.notReadySince ? ('unknown' as const) : (i.observed?.state ?? 'pending'),
    /** Since when its node is not answering (NOT_READY); null while it answers. */
    unknownSince: node?.notReadySince ?? null,
    message: i.observed?.message ?? null,
    ports: i.observed?.state === 'running' ? i.observed.ports : {},
    /** Endpoint name → allocated host port. */
    endpoints: i.observed?.state === 'running' ? (i.observed.endpoints ?? {}) : {},
    /** Health over the containers that have a check: false when any fails, null before a verdict or without checks. */
    healthy: healthOf(i, spec),
    gpus: gpus.map((g) => ({ ...g, simulated: node?.capacity.gpusSimulated ?? false })),
    containers: i.observed?.containers ?? spec.containers.map((c) => ({ name: c.name, containerId: null, state: 'pending', exitCode: null, startedAt: null, finishedAt: null })),
    startedAt: i.observed?.startedAt ?? null,
    restartCount: i.observed?.restartCount ?? 0,
    launchFailures: i.observed?.launchFailures ?? 0,
    disk: i.observed?.disk ?? null,
  };
}

export type PodSummary = ReturnType<typeof podSummary>;

/**
 * Serialized pod views by pod id, as UTF-8 bytes, valid while the pod's revision and the nodes are
 * unchanged. A list of 10,000 pods is then one copy of cached bytes: no view builds, no stringify,
 * and no 6 MB string for Node to measure and encode again on every answer (that took longer than
 * joining it); the same list asked again is the same bytes, not even copied.
 */
export class PodViewCache {
  private readonly entries = new Map<string, { revision: number; nodesKey: string; variant: string; bytes: Buffer }>();

  constructor(
    private readonly render: (d: PodDetail, nodes: Map<string, Node>) => unknown,
    private readonly max = 50_000,
    /** What else a view depends on that moves without a revision (a pod's idle clock); '' for most pods. */
    private readonly variant: (d: PodDetail) => string = () => '',
  ) {}

  bytes(d: PodDetail, nodes: Map<string, Node>, nodesKey: string): Buffer {
    const hit = this.entries.get(d.pod.id);
    const variant = this.variant(d);
    if (hit && hit.revision === d.pod.revision && hit.nodesKey === nodesKey && hit.variant === variant) return hit.bytes;
    const bytes = Buffer.from(JSON.stringify(this.render(d, nodes)));
    if (this.entries.size >= this.max) this.entries.clear();
    this.entries.set(d.pod.id, { revision: d.pod.revision, nodesKey, variant, bytes });
    return bytes;
  }

  /**
   * Answer buffers of 1 MiB or more whose response has been written, kept for the next answer: a
   * fresh 6 MB buffer costs about 5 ms in page faults before a byte is copied, filling a used one
   * 0.3 ms (10,000 pods; the copying itself is cheap).
   */
  private readonly spare: Buffer[] = [];

  /**
   * `{"pods":[...],"next":...}`, the list answer, in one buffer; call `written` once the response
   * has been written (not before: the buffer is filled again for a later answer).
   */
  list(pods: readonly PodDetail[], nodes: Map<string, Node>, nodesKey: string, next: string | null): { body: Buffer; written: () => void } {
    const last = this.last;
    if (last && last.nodesKey === nodesKey && last.next === next && samePods(last.pods, pods)) {
      last.serving++;
      return { body: last.body, written: once(() => this.release(last)) };
    }
    const items = pods.map((d) => this.bytes(d, nodes, nodesKey));
    const head = Buffer.from('{"pods":[');
    const tail = Buffer.from(`],"next":${JSON.stringify(next)}}`);
    let size = head.length + tail.length + Math.max(0, items.length - 1);
    for (const b of items) size += b.length;
    const kept = size < SPARE_MIN ? -1 : this.spare.findIndex((b) => b.length >= size);
    const whole = kept >= 0 ? this.spare.splice(kept, 1)[0]! : Buffer.allocUnsafe(size < SPARE_MIN ? size : Math.ceil(size * 1.25));
    const out = whole.subarray(0, size);
    // TypedArray#set: Buffer#copy makes a view of the source per call, a cost for 10,000 small items.
    out.set(head, 0);
    let at = head.length;
    for (let i = 0; i < items.length; i++) {
      if (i > 0) out[at++] = 0x2c; // ','
      out.set(items[i]!, at);
      at += items[i]!.length;
    }
    out.set(tail, at);
    if (size < SPARE_MIN) return { body: out, written: () => undefined };
    const answer: LargeAnswer = { pods: pods.slice(), nodesKey, next, body: out, whole, serving: 1, current: true, recycled: false };
    if (this.last) {
      this.last.current = false;
      this.recycle(this.last);
    }
    this.last = answer;
    return { body: out, written: once(() => this.release(answer)) };
  }

  /**
   * The last large answer (a whole list), answered again as it is while the same details (the
   * same objects: the store's cached details, one per pod revision), nodes and cursor are asked
   * for: no lookups of 10,000 views and no copy of their bytes.
   */
  private last: LargeAnswer | undefined;

  private release(a: LargeAnswer): void {
    a.serving--;
    this.recycle(a);
  }

  /** An answer's buffer goes back to the spares once it is neither the last answer nor being written. */
  private recycle(a: LargeAnswer): void {
    if (a.current || a.serving > 0 || a.recycled) return;
    a.recycled = true;
    if (this.spare.length < 2) this.spare.push(a.whole);
  }
}

interface LargeAnswer {
  pods: readonly PodDetail[];
  nodesKey: string;
  next: string | null;
  body: Buffer;
  /** The buffer `body` is the front of. */
  whole: Buffer;
  /** Responses with `body` not yet written. */
  serving: number;
  current: boolean;
  recycled: boolean;
}

function samePods(a: readonly PodDetail[], b: readonly PodDetail[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function once(f: () => void): () => void {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      f();
    }
  };
}

/** Answers smaller than this are not worth keeping a buffer for. */
const SPARE_MIN = 2 ** 20;

/** Changes whenever any node's record does (its public address or GPUs show in pod views). */
export const nodesKeyOf = (nodes: Node[]): string => nodes.map((n) => `${n.id}:${n.revision}`).join(',');
