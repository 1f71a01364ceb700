/**
 * The HTTP proxy: `Host: {podId}-{port}.{domain}` (or `{instanceId}-{port}.{domain}`) to the
 * published port of a running instance. The server process keeps the route table from the store's
 * change feed and listens; the requests are answered by worker processes, one per CPU by default
 * (workers.ts: a single Node event loop tops out at one core, nginx runs a worker per core), or in
 * this process with `workers: 0`. Either way the same ProxyEngine does the work (engine.ts): plain
 * requests on a fast path over raw sockets, the rest through Node's HTTP server and undici.
 * Nothing is buffered and nothing times out unless configured.
 */
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import type { ProxyTokens } from '../control/access.js';
import type { ActivitySink } from '../control/activity.js';
import type { KeyService } from '../control/keys.js';
import type { Store } from '../store/types.js';
import type { NodeId } from '../model/index.js';
import { ChannelRelay, type NodeAccessOf } from './channel.js';
import { addCounts, proxyCounts, zeroCounts, type ProxyCounts } from './counters.js';
import { ProxyEngine } from './engine.js';
import { LocalAccess } from './gate.js';
import type { NodeConnect } from './reach.js';
import { RouteTable } from './routes.js';
import { WorkerPool } from './workers.js';

export { SESSION_COOKIE } from './engine.js';

export interface ProxyOptions {
  store: Store;
  keys: KeyService;
  tokens: ProxyTokens;
  logger: Logger;
  /** @default 7780; 0 picks a free port */
  port?: number;
  /** @default 0.0.0.0 */
  host?: string;
  /** Pod hosts are `{podId}-{port}.{domain}`. @default localhost */
  domain?: string;
  /** Serve HTTPS with this certificate (a wildcard for `*.{domain}`). */
  tls?: { cert: Buffer; key: Buffer };
  /**
   * Close a stream, WebSocket or upstream that sends nothing for this long; 0: never, unlike
   * RunPod's 100 s cap. @default 0
   */
  idleTimeoutMs?: number;
  /**
   * Worker processes answering requests; 0: this process answers them. @default one per CPU but
   * one, at least one: on a small machine a worker per core competes with the pods it serves (the
   * proxy benchmark's p99 on 2 cores), and the server process needs a share too.
   */
  workers?: number;
  /** Where requests routed to a pod are counted as its use (the idle policy's `proxy` signal). */
  activity?: ActivitySink;
  /** How pods are reached: their node's published ports, or through the node's NodeAccess (reach.ts). @default auto */
  nodeConnect?: NodeConnect;
  /** A node's NodeAccess (the agents' registry); without it every node is reached directly. */
  nodeAccess?: NodeAccessOf;
  /** The node whose agent runs in this process, when known at start (`auto` reaches it directly); later: setLocalNode. */
  localNode?: NodeId;
}

export class ProxyServer {
  port = 0;

  private constructor(
    readonly routes: RouteTable,
    private readonly listener: NetServer,
    private readonly engine: ProxyEngine | undefined,
    private readonly pool: WorkerPool | undefined,
    private readonly relay: ChannelRelay | undefined,
  ) {}

  static async start(opts: ProxyOptions): Promise<ProxyServer> {
    const workers = opts.workers ?? Math.max(1, availableParallelism() - 1);
    if (!Number.isInteger(workers) || workers < 0) throw new Error(`proxy workers must be a whole number, 0 or more (got ${workers})`);
    const connect = opts.nodeAccess ? (opts.nodeConnect ?? 'auto') : 'direct';
    const routes = await RouteTable.create(opts.store, opts.logger, connect, opts.localNode);
    const activity = opts.activity;
    let engine: ProxyEngine | undefined;
    let pool: WorkerPool | undefined;
    let relay: ChannelRelay | undefined;
    let listener: NetServer;
    try {
      if (connect !== 'direct') relay = await ChannelRelay.start(opts.nodeAccess!, opts.logger);
      if (workers === 0) {
        const e = new ProxyEngine({
          routes,
          access: new LocalAccess(opts.tokens, opts.keys),
          logger: opts.logger,
          domain: opts.domain ?? 'localhost',
          idleTimeoutMs: opts.idleTimeoutMs ?? 0,
          ...(opts.tls ? { tls: opts.tls } : {}),
          ...(activity ? { onUse: (podId: string) => activity.touch(podId, 'proxy') } : {}),
          ...(relay ? { relay: relay.address } : {}),
        });
        engine = e;
        routes.onOrigins = (live) => e.keepOrigins(live);
        listener = createNetServer({ noDelay: true }, (socket: Socket) => e.accept(socket));
      } else {
        // Workers remember keys for 30 s themselves; the server answers them fresh each time.
        const p = await WorkerPool.start({
          count: workers,
          routes,
          access: new LocalAccess(opts.tokens, opts.keys, 0),
          logger: opts.logger,
          ...(activity ? { onUse: (podIds: string[]) => podIds.forEach((id) => activity.touch(id, 'proxy')) } : {}),
          settings: {
            domain: opts.domain ?? 'localhost',
            idleTimeoutMs: opts.idleTimeoutMs ?? 0,
            ...(opts.tls ? { tls: { cert: opts.tls.cert.toString('base64'), key: opts.tls.key.toString('base64') } } : {}),
            ...(relay ? { relay: relay.address } : {}),
          },
        });
        pool = p;
        // Nothing is read here: the worker that gets the socket reads the first byte.
        listener = createNetServer({ pauseOnConnect: true, noDelay: true }, (socket: Socket) => p.hand(socket));
      }
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen(opts.port ?? 7780, opts.host ?? '0.0.0.0', () => {
          listener.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      routes.close();
      await engine?.close();
      await pool?.close();
      await relay?.close();
      throw err;
    }
    const proxy = new ProxyServer(routes, listener, engine, pool, relay);
    const addr = listener.address();
    proxy.port = typeof addr === 'object' && addr ? addr.port : (opts.port ?? 7780);
    return proxy;
  }

  /** Requests, bytes and upstream errors of this process's engine and of every worker. */
  counts(): ProxyCounts {
    return addCounts(addCounts(zeroCounts(), proxyCounts), this.pool?.counts() ?? zeroCounts());
  }

  /** Names the node whose agent runs in this process, once it registered (`auto` reaches it directly). */
  setLocalNode(nodeId: NodeId | undefined): void {
    this.routes.setLocalNode(nodeId);
  }

  /** Connections into pods open through the channel relay now (0 without one). */
  channelConnections(): number {
    return this.relay?.open ?? 0;
  }

  /** Process ids of the worker processes (none when the proxy runs in this process). */
  workerPids(): number[] {
    return this.pool?.pids() ?? [];
  }

  async close(): Promise<void> {
    this.routes.close();
    const closed = new Promise<void>((resolve) => this.listener.close(() => resolve()));
    await this.pool?.close();
    await this.engine?.close();
    await this.relay?.close();
    await closed;
  }
}
