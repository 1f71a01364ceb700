/**
 * A remote agent's node channel: it dials the server's API port (a WebSocket, so a node behind NAT
 * or a firewall that lets it dial out is reachable) and serves its `NodeAccess` over it until the
 * socket goes, then dials again. Retries back off from 100 ms to at most 1 s, so the channel is back
 * within about a second of the server; pings find a cut network that would otherwise look open.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket } from 'ws';
import type { NodeAccess } from '../control/agent-protocol.js';
import { CHANNEL_PATH, CHANNEL_SUBPROTOCOL } from '../control/channel-protocol.js';
import { keepAlive, webSocketDuplex } from '../control/channel-wire.js';
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

/** The channel's URL on the server: ws(s)://host:port/api/v1/agent/channel?nodeId=... */
export function channelUrl(server: string, nodeId: NodeId): string {
  const url = new URL(CHANNEL_PATH, server);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('nodeId', nodeId);
  return url.toString();
}

/** An all-zero mask: `ws` then skips masking (RFC 6455's masking guards browser-driven proxies; an agent is none) and the server skips unmasking. */
const zeroMask = (mask: Buffer): void => void mask.fill(0);

export class NodeChannelDialer {
  private ws: WebSocket | undefined;
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

  private open(socket?: Duplex): void {
    const ws = new WebSocket(channelUrl(this.opts.server, this.opts.nodeId), CHANNEL_SUBPROTOCOL, {
      ...(socket ? { createConnection: () => socket as never } : {}),
      headers: { authorization: `Bearer ${this.opts.token}` },
      perMessageDeflate: false,
      maxPayload: 64 * 2 ** 20,
      handshakeTimeout: 10_000,
      generateMask: zeroMask,
    });
    this.ws = ws;
    let opened = false;
    ws.on('error', (err) => this.log.debug({ err: err.message }, 'node channel error'));
    ws.once('open', () => {
      opened = true;
      this.attempt = 0;
      this.isConnected = true;
      // The socket writes as soon as it is handed data: no Nagle delay on a terminal's keystrokes.
      (ws as unknown as { _socket?: { setNoDelay?: (v: boolean) => void } })._socket?.setNoDelay?.(true);
      keepAlive(ws, this.opts.pingMs);
      serveNodeAccess(webSocketDuplex(ws), this.opts.access, this.log);
      this.log.info({ server: this.opts.server }, 'node channel connected');
      for (const w of this.waiters) w();
      this.waiters.clear();
    });
    ws.once('close', (code: number) => {
      this.isConnected = false;
      if (this.ws === ws) this.ws = undefined;
      if (this.stopped) return;
      if (opened) this.log.warn({ code }, 'node channel lost; dialing again');
      this.schedule();
    });
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
    const ws = this.ws;
    if (!ws || ws.readyState === ws.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.terminate();
    });
  }
}
