/**
 * A remote agent's node channel: it dials the server's API port (one more HTTP route, so a node
 * behind NAT or a firewall that lets it dial out is reachable), upgrades the connection and serves
 * its `NodeAccess` over HTTP/2 on it until the socket goes, then dials again. Retries back off from
 * 100 ms to at most 1 s, so the channel is back within about a second of the server; HTTP/2 PINGs
 * find a cut network that would otherwise look open.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { NodeAccess } from '../control/agent-protocol.js';
import { CHANNEL_PATH } from '../control/channel-protocol.js';
import { dialUpgrade, keepAlive } from '../control/channel-wire.js';
import type { NodeId } from '../model/index.js';
import { serveNodeAccess } from './channel-serve.js';
import { connectPinned } from './server-trust.js';

export interface NodeChannelOptions {
  /** The server's URL, e.g. http://10.0.0.1:7700. */
  server: string;
  /** What the agent authenticates with on the agent routes: its node credential. */
  token: string;
  /** The server certificate's SHA-256 the join token pinned: the TLS connection is checked against it before the upgrade is sent. */
  fingerprint?: string | null;
  nodeId: NodeId;
  access: NodeAccess;
  logger: Logger;
  /** @default 100 */
  minRetryMs?: number;
  /** @default 1000 */
  maxRetryMs?: number;
  /** @default 5000 */
  pingMs?: number;
}

/** The channel's URL on the server: http(s)://host:port/api/v1/agent/channel?nodeId=... */
export function channelUrl(server: string, nodeId: NodeId): string {
  const url = new URL(CHANNEL_PATH, server);
  url.searchParams.set('nodeId', nodeId);
  return url.toString();
}

export class NodeChannelDialer {
  private socket: Socket | undefined;
  private retry: NodeJS.Timeout | undefined;
  private attempt = 0;
  private stopped = false;
  private isConnected = false;
  private readonly waiters = new Set<() => void>();
  private readonly opts: Required<Omit<NodeChannelOptions, 'fingerprint'>> & Pick<NodeChannelOptions, 'fingerprint'>;

  private constructor(options: NodeChannelOptions) {
    this.opts = { minRetryMs: 100, maxRetryMs: 1000, pingMs: 5000, ...options };
  }

  static start(options: NodeChannelOptions): NodeChannelDialer {
    const d = new NodeChannelDialer(options);
    d.dial();
    return d;
  }

  get connected(): boolean {
    return this.isConnected;
  }

  /** Resolves once the channel is (again) up. */
  whenConnected(): Promise<void> {
    if (this.isConnected) return Promise.resolve();
    return new Promise((resolve) => this.waiters.add(resolve));
  }

  private get log(): Logger {
    return this.opts.logger;
  }

  private dial(): void {
    if (this.stopped) return;
    if (!this.opts.fingerprint) return this.open();
    // A pinned server: the handshake is checked before the upgrade (and its credential) is sent.
    const url = new URL(this.opts.server);
    connectPinned(url.hostname, Number(url.port || 443), this.opts.fingerprint).then(
      (socket) => (this.stopped ? socket.destroy() : this.open(socket)),
      (err: Error) => {
        this.log.warn({ err: err.message }, 'node channel: cannot reach the server');
        this.schedule();
      },
    );
  }

  private open(pinned?: Duplex): void {
    dialUpgrade(channelUrl(this.opts.server, this.opts.nodeId), { authorization: `Bearer ${this.opts.token}`, ...(pinned ? { socket: pinned } : {}) }).then(
      (socket) => this.serve(socket),
      (err: Error) => {
        pinned?.destroy();
        this.log.debug({ err: err.message }, 'node channel: the upgrade failed');
        this.schedule();
      },
    );
  }

  private serve(socket: Socket): void {
    if (this.stopped) return void socket.destroy();
    this.socket = socket;
    const served = serveNodeAccess(socket, this.opts.access, this.log);
    let opened = false;
    void served.session.then((session) => {
      keepAlive(session, socket, this.opts.pingMs);
      // Up once the server's HTTP/2 settings came: both ends speak HTTP/2 on the socket.
      session.once('remoteSettings', () => {
        if (session.destroyed) return;
        opened = true;
        this.attempt = 0;
        this.isConnected = true;
        this.log.info({ server: this.opts.server }, 'node channel connected');
        for (const w of this.waiters) w();
        this.waiters.clear();
      });
    });
    let gone = false;
    const closed = (): void => {
      if (gone) return;
      gone = true;
      this.isConnected = false;
      if (this.socket === socket) this.socket = undefined;
      if (!socket.destroyed) socket.destroy();
      if (this.stopped) return;
      if (opened) this.log.warn({ server: this.opts.server }, 'node channel lost; dialing again');
      this.schedule();
    };
    void served.closed.then(closed);
    socket.once('close', closed);
  }

  private schedule(): void {
    const base = Math.min(this.opts.maxRetryMs, this.opts.minRetryMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 16);
    // A little jitter: agents that lost one server together do not dial it back in one instant.
    const delay = Math.round(base * (0.8 + Math.random() * 0.2));
    this.retry = setTimeout(() => this.dial(), delay);
  }

  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    const socket = this.socket;
    if (!socket || socket.destroyed) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.destroy();
    });
  }
}
