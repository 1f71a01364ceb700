/**
 * The server's end of node channels: a WebSocket a remote agent opened (agent-routes.ts) becomes
 * an HTTP/2 client session to it and a `RemoteNodeAccess` in the `AgentService`, for as long as the
 * socket lives. A node has at most one: a new channel (the agent came back) replaces the old one.
 */
import { connect, type ClientHttp2Session } from 'node:http2';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import type { AgentService } from '../control/agents.js';
import { CHANNEL_SETTINGS, MAX_SEND_HEADER_BLOCK, MAX_SESSION_MEMORY_MB, SESSION_WINDOW } from '../control/channel-protocol.js';
import { keepAlive, webSocketDuplex } from '../control/channel-wire.js';
import type { NodeId } from '../model/index.js';
import { RemoteNodeAccess } from './channel-remote-access.js';

export interface NodeChannelsOptions {
  /** How often each channel is pinged; one silent for two intervals is closed. @default 5000 */
  pingMs?: number;
}

export class NodeChannels {
  private readonly open = new Map<NodeId, WebSocket>();
  private readonly pingMs: number;

  constructor(
    private readonly agents: AgentService,
    private readonly log: Logger,
    opts: NodeChannelsOptions = {},
  ) {
    this.pingMs = opts.pingMs ?? 5000;
  }

  /** Whether the node has a channel now. */
  has(nodeId: NodeId): boolean {
    return this.open.has(nodeId);
  }

  accept(ws: WebSocket, nodeId: NodeId): void {
    const previous = this.open.get(nodeId);
    this.open.set(nodeId, ws);
    previous?.terminate();
    (ws as unknown as { _socket?: { setNoDelay?: (v: boolean) => void } })._socket?.setNoDelay?.(true);
    keepAlive(ws, this.pingMs);
    const duplex = webSocketDuplex(ws);
    const session: ClientHttp2Session = connect('http://node.invalid', { createConnection: () => duplex, settings: CHANNEL_SETTINGS, maxSessionMemory: MAX_SESSION_MEMORY_MB, maxSendHeaderBlockLength: MAX_SEND_HEADER_BLOCK });
    session.once('connect', () => session.setLocalWindowSize(SESSION_WINDOW));
    session.on('error', (err) => this.log.debug({ err, nodeId }, 'node channel session error'));
    const access = new RemoteNodeAccess(session, nodeId);
    this.agents.setNodeAccess(nodeId, access);
    this.log.info({ nodeId }, 'node channel open');
    let gone = false;
    const drop = (): void => {
      if (gone) return;
      gone = true;
      this.agents.dropNodeAccess(nodeId, access);
      if (this.open.get(nodeId) === ws) this.open.delete(nodeId);
      if (!session.destroyed) session.destroy();
      ws.terminate();
      this.log.info({ nodeId }, 'node channel closed');
    };
    ws.once('close', drop);
    session.once('close', drop);
  }

  /** Closes every channel (the server is stopping); agents dial again. */
  close(): void {
    for (const ws of this.open.values()) ws.terminate();
    this.open.clear();
  }
}
