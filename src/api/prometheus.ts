/**
 * `GET /metrics`: the server in Prometheus's text format (prom-client), for admin keys and the
 * operator's `--metrics-token`. A registry per server (tests run several in one process). Every
 * figure is read at scrape time from counters the parts keep anyway, the latest usage samples in
 * memory and one grouped count of pods that is taken again only when the store has changed: a
 * scrape never reads the pods themselves.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { NODE_STALE_MS } from '../control/index.js';
import { BerthError, POD_STATUSES, type PodStatus } from '../model/index.js';
import type { ApiDeps } from './server.js';

/** The proxy's totals, its workers' included (ProxyServer.counts). */
export interface ProxyCountsSource {
  counts(): { connections: number; requests: number; upgrades: number; bytesReceived: number; bytesSent: number; upstreamErrors: number };
  workerPids(): number[];
}

/** The SSH gateway's totals (SshGateway.stats). */
export interface SshStatsSource {
  stats(): { connections: number; open: number; sessions: number; logins: number; bytesReceived: number; bytesSent: number };
}

export interface MetricsOptions {
  /** A bearer token that may scrape besides admin keys. @default none */
  token?: string;
  proxy?: ProxyCountsSource;
  ssh?: SshStatsSource;
}

const DCGM_LABELS = ['gpu', 'UUID', 'modelName', 'Hostname', 'pod', 'berth_instance', 'node', 'simulated'] as const;
const CONTAINER_LABELS = ['pod', 'berth_instance', 'container', 'node'] as const;

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** A counter that shows a total kept elsewhere. */
function total(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'method' | 'route' | 'status'>;
  private readonly latency: Histogram<'method' | 'route' | 'status'>;
  private readonly tokenDigest: Buffer | undefined;
  private fillUsage: (() => Promise<void>) | undefined;
  /** Pods by status, taken again only when the store's revision moved. */
  private podCounts: { revision: number; counts: Partial<Record<PodStatus, number>> } | undefined;

  constructor(
    private readonly deps: ApiDeps,
    opts: MetricsOptions = {},
  ) {
    const r = this.registry;
    this.tokenDigest = opts.token ? digest(opts.token) : undefined;
    collectDefaultMetrics({ register: r, prefix: 'berth_' });
    // It measures the lag by waiting a turn of the event loop inside the scrape, which a busy server
    // makes every scrape wait for; the lag percentiles (nodejs_eventloop_lag_p50/p90/p99) stay.
    r.removeSingleMetric('berth_nodejs_eventloop_lag_seconds');

    this.requests = new Counter({ name: 'berth_http_requests_total', help: 'API requests answered, by method, route template and status', labelNames: ['method', 'route', 'status'], registers: [r] });
    this.latency = new Histogram({
      name: 'berth_http_request_duration_seconds',
      help: 'API request latency, by method, route template and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [r],
    });

    // Control plane.
    const pods = deps.pods;
    const podGauge: Gauge<'status'> = new Gauge({
      name: 'berth_pods',
      help: 'Pods by status (terminated ones included: their history is kept)',
      labelNames: ['status'],
      registers: [r],
      collect: async () => {
        const counts = await this.countPods();
        for (const s of POD_STATUSES) podGauge.set({ status: s }, counts[s] ?? 0);
      },
    });
    total(r, 'berth_placements_total', 'Placement decisions that found a node', () => pods.placements.placed);
    total(r, 'berth_placements_unplaced_total', 'Placement decisions that found no node (the pod waits)', () => pods.placements.unplaced);
    const placement = new Histogram({ name: 'berth_placement_duration_seconds', help: 'Time one placement decision took', buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5], registers: [r] });
    pods.placements.observe = (seconds) => placement.observe(seconds);
    new Gauge({ name: 'berth_placement_queue_length', help: 'Pods with an instance waiting for a node', registers: [r], collect() { this.set(pods.waitingCount); } });
    new Gauge({ name: 'berth_deployments', help: 'Marathon deployments in progress', registers: [r], collect() { this.set(deps.deployments.deployments().length); } });

    // Agents.
    new Gauge({
      name: 'berth_nodes',
      help: 'Registered nodes, by whether their agent was heard from in the last 90 s',
      labelNames: ['ready'],
      registers: [r],
      collect: async function (this: Gauge<'ready'>) {
        const now = Date.now();
        const nodes = await deps.store.listNodes();
        const ready = nodes.filter((n) => !n.notReadySince && now - Date.parse(n.lastSeenAt) <= NODE_STALE_MS).length;
        this.set({ ready: 'true' }, ready);
        this.set({ ready: 'false' }, nodes.length - ready);
      },
    });
    total(r, 'berth_agent_watches_total', 'Watch calls of agents (each one is a heartbeat)', () => deps.agents.counts.watches);
    total(r, 'berth_agent_reports_total', 'Instance reports of agents', () => deps.agents.counts.reports);
    total(r, 'berth_agent_usage_reports_total', 'Usage batches of agents', () => deps.usage?.reports ?? 0);

    // Proxy, its worker processes included.
    const proxy = opts.proxy;
    if (proxy) {
      total(r, 'berth_proxy_connections_total', 'Client connections the HTTP proxy accepted', () => proxy.counts().connections);
      total(r, 'berth_proxy_requests_total', 'HTTP requests the proxy took (WebSocket upgrades included)', () => proxy.counts().requests);
      total(r, 'berth_proxy_upgrades_total', 'WebSocket and other upgrades the proxy took', () => proxy.counts().upgrades);
      total(r, 'berth_proxy_received_bytes_total', 'Bytes read from proxy clients (counted when a connection closes)', () => proxy.counts().bytesReceived);
      total(r, 'berth_proxy_sent_bytes_total', 'Bytes written to proxy clients (counted when a connection closes)', () => proxy.counts().bytesSent);
      total(r, 'berth_proxy_upstream_errors_total', "Requests answered 502/504: the pod's port failed or did not answer", () => proxy.counts().upstreamErrors);
      new Gauge({ name: 'berth_proxy_workers', help: 'Proxy worker processes running (0: the proxy runs in the server process)', registers: [r], collect() { this.set(proxy.workerPids().length); } });
    }

    // SSH gateway.
    const ssh = opts.ssh;
    if (ssh) {
      total(r, 'berth_ssh_connections_total', 'Connections the SSH gateway accepted', () => ssh.stats().connections);
      new Gauge({ name: 'berth_ssh_connections_open', help: 'SSH connections open now', registers: [r], collect() { this.set(ssh.stats().open); } });
      total(r, 'berth_ssh_logins_total', 'SSH logins accepted', () => ssh.stats().logins);
      total(r, 'berth_ssh_sessions_total', 'SSH sessions opened (shells, commands, SFTP)', () => ssh.stats().sessions);
      total(r, 'berth_ssh_received_bytes_total', 'Bytes read from SSH clients', () => ssh.stats().bytesReceived);
      total(r, 'berth_ssh_sent_bytes_total', 'Bytes written to SSH clients', () => ssh.stats().bytesSent);
    }

    this.usageMetrics();
  }

  /** cAdvisor's and DCGM's names for what pods use, from the latest samples in memory. */
  private usageMetrics(): void {
    const r = this.registry;
    const usage = this.deps.usage;
    if (!usage) return;
    const store = this.deps.store;
    type C = (typeof CONTAINER_LABELS)[number];
    const cpu = new Counter<C>({ name: 'container_cpu_usage_seconds_total', help: 'CPU time the container used, in seconds', labelNames: CONTAINER_LABELS, registers: [r] });
    const cores = new Gauge<C>({ name: 'berth_container_cpu_cores', help: 'Cores the container used over the last sampling interval', labelNames: CONTAINER_LABELS, registers: [r] });
    const mem = new Gauge<C>({ name: 'container_memory_working_set_bytes', help: 'Memory in use less inactive file cache', labelNames: CONTAINER_LABELS, registers: [r] });
    const limit = new Gauge<C>({ name: 'container_spec_memory_limit_bytes', help: "The container's memory limit (absent: none)", labelNames: CONTAINER_LABELS, registers: [r] });
    const rx = new Counter<C>({ name: 'container_network_receive_bytes_total', help: "Bytes received on the pod's network namespace (container=\"POD\")", labelNames: CONTAINER_LABELS, registers: [r] });
    const tx = new Counter<C>({ name: 'container_network_transmit_bytes_total', help: "Bytes sent on the pod's network namespace (container=\"POD\")", labelNames: CONTAINER_LABELS, registers: [r] });
    const reads = new Counter<C>({ name: 'container_fs_reads_bytes_total', help: 'Bytes the container read from block devices', labelNames: CONTAINER_LABELS, registers: [r] });
    const writes = new Counter<C>({ name: 'container_fs_writes_bytes_total', help: 'Bytes the container wrote to block devices', labelNames: CONTAINER_LABELS, registers: [r] });
    type G = (typeof DCGM_LABELS)[number];
    const gpuMetric = (name: string, help: string) => new Gauge<G>({ name, help, labelNames: DCGM_LABELS, registers: [r] });
    const util = gpuMetric('DCGM_FI_DEV_GPU_UTIL', 'GPU utilization (%); NaN where not measured (simulated GPUs)');
    const fbUsed = gpuMetric('DCGM_FI_DEV_FB_USED', 'GPU framebuffer memory used (MiB)');
    const fbFree = gpuMetric('DCGM_FI_DEV_FB_FREE', 'GPU framebuffer memory free (MiB)');
    const power = gpuMetric('DCGM_FI_DEV_POWER_USAGE', 'GPU power draw (W)');
    const temp = gpuMetric('DCGM_FI_DEV_GPU_TEMP', 'GPU temperature (°C)');
    const all = [cpu, cores, mem, limit, rx, tx, reads, writes, util, fbUsed, fbFree, power, temp];

    // Filled as a whole before each scrape (render): prom-client collects the metrics concurrently,
    // so one metric's collect cannot fill the others in time.
    this.fillUsage = async (): Promise<void> => {
      for (const m of all) m.reset();
      const nodes = new Map((await store.listNodes()).map((n) => [n.id as string, n.name]));
      const value = (n: number | null): number => (n === null ? NaN : n);
      for (const [instanceId, l] of usage.all()) {
        const node = nodes.get(l.nodeId) ?? l.nodeId;
        const base = { pod: l.podId, berth_instance: instanceId, node };
        let netRx = 0;
        let netTx = 0;
        for (const c of l.usage.containers) {
          const labels = { ...base, container: c.name };
          cpu.inc(labels, c.cpuSeconds);
          cores.set(labels, c.cpuCores);
          mem.set(labels, c.memoryBytes);
          if (c.memoryLimitBytes !== null) limit.set(labels, c.memoryLimitBytes);
          reads.inc(labels, c.diskReadBytes);
          writes.inc(labels, c.diskWriteBytes);
          netRx = Math.max(netRx, c.networkRxBytes);
          netTx = Math.max(netTx, c.networkTxBytes);
        }
        if (l.usage.containers.length) {
          rx.inc({ ...base, container: 'POD' }, netRx);
          tx.inc({ ...base, container: 'POD' }, netTx);
        }
        for (const g of l.usage.gpus) {
          const labels = { gpu: String(g.index), UUID: g.uuid, modelName: g.name, Hostname: node, ...base, ...(g.simulated ? { simulated: 'true' } : {}) };
          util.set(labels, value(g.utilizationPercent));
          fbUsed.set(labels, value(g.memoryUsedMb));
          fbFree.set(labels, g.memoryTotalMb !== null && g.memoryUsedMb !== null ? g.memoryTotalMb - g.memoryUsedMb : NaN);
          power.set(labels, value(g.powerWatts));
          temp.set(labels, value(g.temperatureC));
        }
      }
    };
  }

  /** Counts every API request by its route template (never the raw URL: ids would explode the series). */
  hook(app: FastifyInstance): void {
    app.addHook('onResponse', async (req, reply) => {
      const labels = { method: req.method, route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) };
      this.requests.inc(labels);
      this.latency.observe(labels, reply.elapsedTime / 1000);
    });
  }

  /** `GET /metrics`: admin keys and the metrics token; any other key is refused. */
  async serve(req: FastifyRequest, reply: FastifyReply, bearer: string | undefined): Promise<void> {
    if (!bearer) throw new BerthError('UNAUTHORIZED', 'send an admin API key or the metrics token as "Authorization: Bearer <key>"');
    const isToken = this.tokenDigest !== undefined && timingSafeEqual(digest(bearer), this.tokenDigest);
    if (!isToken) {
      const caller = await this.deps.keys.authenticate(bearer);
      if (!caller) throw new BerthError('UNAUTHORIZED', 'the API key is not valid');
      if (!caller.admin) throw new BerthError('FORBIDDEN', 'the metrics are for admin keys and the metrics token (--metrics-token)');
    }
    await reply.type(this.registry.contentType).send(await this.render());
  }

  /** The whole exposition, as a scrape gets it. */
  async render(): Promise<string> {
    await this.fillUsage?.();
    return this.registry.metrics();
  }

  private async countPods(): Promise<Partial<Record<PodStatus, number>>> {
    const revision = await this.deps.store.revision();
    if (this.podCounts?.revision !== revision) this.podCounts = { revision, counts: await this.deps.store.countPodsByStatus() };
    return this.podCounts.counts;
  }
}
