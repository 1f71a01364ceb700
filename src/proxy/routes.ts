/**
 * The proxy's route table: every pod's ports and the upstreams that serve them, in memory, kept
 * current from the store's change feed. A request costs one map lookup, never a store query.
 * The server process keeps the table (RouteTable); proxy workers keep a copy (RouteView) fed with
 * a snapshot and then every change, as RouteData over IPC.
 */
import type { Logger } from 'pino';
import { httpPorts } from '../control/access.js';
import { podPorts, type Instance, type InstanceId, type Node, type NodeId, type OwnerId, type PodId, type PodStatus, type PortProtocol } from '../model/index.js';
import type { PodDetail, Store } from '../store/types.js';
import { viaOf, type NodeConnect } from './reach.js';

/**
 * How the proxy reaches an instance: `direct` dials the node's published port; `channel` asks the
 * node's NodeAccess for a connection to the pod's port inside its network namespace (channel.ts).
 */
export type Via = 'direct' | 'channel';

export interface Upstream {
  instanceId: InstanceId;
  /**
   * The key of the connection pool: `http://host:port` (direct), `http://{instanceId}.channel:{podPort}`
   * (channel: one pool per instance and pod port, whatever the node).
   */
  origin: string;
  via: Via;
  /** The node's public address (direct); the node's id (channel). */
  host: string;
  /** The node's published port (direct); the pod's own port (channel). */
  port: number;
}

export interface PortRoute {
  port: number;
  protocol: PortProtocol;
  private: boolean;
  /** Running instances serving the port, in ordinal order. */
  upstreams: Upstream[];
  /** Round-robin position. */
  next: number;
}

export interface PodRoute {
  podId: PodId;
  owner: OwnerId;
  status: PodStatus;
  statusMessage: string | null;
  ports: Map<number, PortRoute>;
}

/** A PodRoute as plain data, for IPC: the round-robin positions stay with each copy. */
export interface RouteData {
  podId: PodId;
  owner: OwnerId;
  status: PodStatus;
  statusMessage: string | null;
  ports: { port: number; protocol: PortProtocol; private: boolean; upstreams: Upstream[] }[];
}

export function routeData(r: PodRoute): RouteData {
  return {
    podId: r.podId,
    owner: r.owner,
    status: r.status,
    statusMessage: r.statusMessage,
    ports: [...r.ports.values()].map((p) => ({ port: p.port, protocol: p.protocol, private: p.private, upstreams: p.upstreams })),
  };
}

/** A PodRoute from its data, keeping the round-robin positions of the route it replaces. */
function fromData(d: RouteData, old: PodRoute | undefined): PodRoute {
  const ports = new Map<number, PortRoute>();
  for (const p of d.ports) ports.set(p.port, { ...p, next: old?.ports.get(p.port)?.next ?? 0 });
  return { podId: d.podId, owner: d.owner, status: d.status, statusMessage: d.statusMessage, ports };
}

function originsOf(routes: Iterable<PodRoute>): Set<string> {
  const out = new Set<string>();
  for (const r of routes) for (const p of r.ports.values()) for (const u of p.upstreams) out.add(u.origin);
  return out;
}

/** The node's port for a pod port of a running instance: an endpoint's by its name, else the port's. */
function publishedPort(i: Instance, port: number, endpoint: string | null): number | undefined {
  const o = i.observed;
  if (o?.state !== 'running') return undefined;
  return (endpoint !== null ? o.endpoints?.[endpoint] : undefined) ?? o.ports[String(port)];
}

/** Called with a pod's new route, or undefined when it is gone. */
export type RouteListener = (podId: PodId, route: PodRoute | undefined) => void;

/** A proxy worker's copy of the server's route table. */
export class RouteView {
  private readonly pods = new Map<string, PodRoute>();

  get(podId: string): PodRoute | undefined {
    return this.pods.get(podId);
  }

  reset(all: RouteData[]): void {
    const old = new Map(this.pods);
    this.pods.clear();
    for (const d of all) this.pods.set(d.podId, fromData(d, old.get(d.podId)));
  }

  set(podId: string, d: RouteData | null): void {
    if (d) this.pods.set(podId, fromData(d, this.pods.get(podId)));
    else this.pods.delete(podId);
  }

  origins(): Set<string> {
    return originsOf(this.pods.values());
  }
}

/** Changes of other server processes (PostgreSQL HA) arrive only through the store: look that often. */
const CATCH_UP_MS = 2_000;

export class RouteTable {
  private readonly pods = new Map<PodId, PodRoute>();
  private readonly details = new Map<PodId, PodDetail>();
  private nodes = new Map<NodeId, Node>();
  private readonly dirty = new Set<PodId>();
  private nodesDirty = false;
  private flushing: Promise<void> | undefined;
  private seen = 0;
  private readonly unsubscribe: () => void;
  private readonly timer: NodeJS.Timeout;
  private readonly listeners = new Set<RouteListener>();
  /** The node whose agent runs in this process (`auto` reaches it directly). */
  private localNode: NodeId | undefined;
  /** Called after each rebuild with the origins still in use, so idle pools can close. */
  onOrigins: ((origins: Set<string>) => void) | undefined;

  private constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly connect: NodeConnect,
  ) {
    this.unsubscribe = store.onChange((c) => {
      this.seen = Math.max(this.seen, c.revision);
      this.mark(c.kind, c.id);
    });
    this.timer = setInterval(() => void this.catchUp(), CATCH_UP_MS);
    this.timer.unref();
  }

  static async create(store: Store, log: Logger, connect: NodeConnect = 'direct', localNode?: NodeId): Promise<RouteTable> {
    const t = new RouteTable(store, log, connect);
    t.localNode = localNode;
    t.seen = await store.revision();
    t.nodes = new Map((await store.listNodes()).map((n) => [n.id, n]));
    for (const d of await store.listPods({})) t.put(d);
    return t;
  }

  close(): void {
    this.unsubscribe();
    clearInterval(this.timer);
  }

  get(podId: string): PodRoute | undefined {
    return this.pods.get(podId as PodId);
  }

  /** Every route now, as data (a worker's first copy). */
  snapshot(): RouteData[] {
    return [...this.pods.values()].map(routeData);
  }

  /** Hears every change to a route from now on; returns the unsubscribe. */
  watch(listener: RouteListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(podId: PodId, route: PodRoute | undefined): void {
    for (const l of this.listeners) {
      try {
        l(podId, route);
      } catch (err) {
        this.log.warn({ err }, 'a route listener failed');
      }
    }
  }

  /** Names the node whose agent runs in this process (known once it registered): its routes are rebuilt. */
  setLocalNode(nodeId: NodeId | undefined): void {
    if (this.localNode === nodeId) return;
    this.localNode = nodeId;
    this.mark('node', nodeId ?? '');
  }

  /** Resolves once every change heard so far is in the table (tests and the benchmark wait on it). */
  async settled(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private mark(kind: 'pod' | 'instance' | 'node', id: string): void {
    if (kind === 'node') this.nodesDirty = true;
    else this.dirty.add((kind === 'instance' ? id.replace(/-\d+$/, '') : id) as PodId);
    // Coalesce a burst of changes (a report touches instance and pod) into one read per pod.
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flush());
  }

  private async flush(): Promise<void> {
    try {
      while (this.dirty.size > 0 || this.nodesDirty) {
        if (this.nodesDirty) {
          this.nodesDirty = false;
          this.nodes = new Map((await this.store.listNodes()).map((n) => [n.id, n]));
          for (const d of this.details.values()) this.put(d);
        }
        const ids = [...this.dirty];
        this.dirty.clear();
        for (const id of ids) {
          const d = await this.store.getPod(id);
          if (!d || d.pod.status === 'TERMINATED') this.drop(id);
          else this.put(d);
        }
      }
      this.onOrigins?.(this.origins());
    } catch (err) {
      this.log.warn({ err }, 'proxy route refresh failed; the next change or catch-up retries');
    } finally {
      this.flushing = undefined;
    }
  }

  private async catchUp(): Promise<void> {
    try {
      const rev = await this.store.revision();
      if (rev <= this.seen) return;
      for (let since = this.seen; since < rev; ) {
        const page = await this.store.changesSince(since, 1000);
        if (page.length === 0) break;
        for (const c of page) this.mark(c.kind, c.id);
        since = page[page.length - 1]!.revision;
      }
      this.seen = rev;
    } catch (err) {
      this.log.debug({ err }, 'proxy route catch-up failed');
    }
  }

  private drop(id: PodId): void {
    this.details.delete(id);
    if (this.pods.delete(id)) this.changed(id, undefined);
  }

  private put(d: PodDetail): void {
    this.details.set(d.pod.id, d);
    const old = this.pods.get(d.pod.id);
    const ports = new Map<number, PortRoute>();
    const instances = [...d.instances].sort((a, b) => a.ordinal - b.ordinal);
    // The http ports (RunPod's `8888/http` and Marathon's http endpoints) are served; tcp ports are known, to say so.
    const served = httpPorts(d.spec);
    const tcp = podPorts(d.spec).filter((p) => p.protocol === 'tcp' && !served.some((h) => h.port === p.port));
    for (const p of [...served.map((h) => ({ ...h, protocol: 'http' as const })), ...tcp.map((t) => ({ port: t.port, protocol: 'tcp' as const, private: false, endpoint: null }))]) {
      const upstreams: Upstream[] = [];
      for (const i of instances) {
        const hostPort = publishedPort(i, p.port, p.endpoint);
        const node = i.nodeId ? this.nodes.get(i.nodeId) : undefined;
        if (!hostPort || !node) continue;
        if (viaOf(this.connect, node.id, this.localNode) === 'channel') {
          // The pod's own port, in its network namespace: the node needs no inbound connection.
          upstreams.push({ instanceId: i.id, origin: `http://${i.id}.channel:${p.port}`, via: 'channel', host: node.id, port: p.port });
          continue;
        }
        const host = node.publicIp === '0.0.0.0' || node.publicIp === '' ? '127.0.0.1' : node.publicIp;
        upstreams.push({ instanceId: i.id, origin: `http://${host.includes(':') ? `[${host}]` : host}:${hostPort}`, via: 'direct', host, port: hostPort });
      }
      ports.set(p.port, { port: p.port, protocol: p.protocol, private: p.private, upstreams, next: old?.ports.get(p.port)?.next ?? 0 });
    }
    const route: PodRoute = { podId: d.pod.id, owner: d.pod.owner, status: d.pod.status, statusMessage: d.pod.statusMessage, ports };
    this.pods.set(d.pod.id, route);
    this.changed(d.pod.id, route);
  }

  private origins(): Set<string> {
    return originsOf(this.pods.values());
  }
}
