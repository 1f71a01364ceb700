/**
 * The server's end of node channels: a connection a remote agent upgraded (agent-routes.ts) becomes
 * an HTTP/2 client session on that very socket and a `RemoteNodeAccess` in the `AgentService`, for
 * as long as the socket lives. A node has at most one: a new channel (the agent came back) replaces
 * the old one.
 */
import { connect, type ClientHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { AgentService } from '../control/agents.js';
import { CHANNEL_SETTINGS, MAX_SEND_HEADER_BLOCK, MAX_SESSION_MEMORY_MB, SESSION_WINDOW } from '../control/channel-protocol.js';
import { acceptUpgrade, keepAlive } from '../control/channel-wire.js';
import type { NodeId } from '../model/index.js';
import { RemoteNodeAccess } from './channel-remote-access.js';

export interface NodeChannelsOptions {
  /** How often each channel is pinged; one silent for two intervals is closed. @default 5000 */
  pingMs?: number;
}

export class NodeChannels {
  private readonly open = new Map<NodeId, Duplex>();
  private readonly pingMs: number;

  constructor(
    private readonly agents: Pick<AgentService, 'setNodeAccess' | 'dropNodeAccess'>,
    private readonly log: Logger,
    opts: NodeChannelsOptions = {},
  ) {
    this.pingMs = opts.pingMs ?? 5000;
  }

  /** Whether the node has a channel now. */
  has(nodeId: NodeId): boolean {
    return this.open.has(nodeId);
  }

  /**
   * Answers the node's authenticated upgrade request (101) on `raw` and runs HTTP/2 on it. `head`:
   * what the HTTP server read past the request, already the agent's first HTTP/2 bytes.
   */
  accept(raw: Duplex, head: Buffer | undefined, nodeId: NodeId): void {
    acceptUpgrade(raw, head).then(
      (socket) => this.serve(socket, nodeId),
      (err: Error) => {
        this.log.debug({ err, nodeId }, 'node channel: the upgrade failed');
        raw.destroy();
      },
    );
  }

  private serve(socket: Socket, nodeId: NodeId): void {
    const previous = this.open.get(nodeId);
    this.open.set(nodeId, socket);
    previous?.destroy();
    const session: ClientHttp2Session = connect('http://node.invalid', { createConnection: () => socket, settings: CHANNEL_SETTINGS, maxSessionMemory: MAX_SESSION_MEMORY_MB, maxSendHeaderBlockLength: MAX_SEND_HEADER_BLOCK });
    session.once('connect', () => session.setLocalWindowSize(SESSION_WINDOW));
    session.on('error', (err) => this.log.debug({ err, nodeId }, 'node channel session error'));
    keepAlive(session, socket, this.pingMs);
    const access = new RemoteNodeAccess(session, nodeId);
    this.agents.setNodeAccess(nodeId, access);
    this.log.info({ nodeId }, 'node channel open');
    let gone = false;
    const drop = (): void => {
      if (gone) return;
      gone = true;
      this.agents.dropNodeAccess(nodeId, access);
      if (this.open.get(nodeId) === socket) this.open.delete(nodeId);
      if (!session.destroyed) session.destroy();
      socket.destroy();
      this.log.info({ nodeId }, 'node channel closed');
    };
    socket.once('close', drop);
    session.once('close', drop);
  }

  /** Closes every channel (the server is stopping); agents dial again. */
  close(): void {
    for (const socket of this.open.values()) socket.destroy();
    this.open.clear();
  }
}
