/**
 * One node channel to every server of the cluster (k3s' agents keep a tunnel to every server): each
 * server can then reach this node's pods itself, with no second hop through another server. `sync`
 * takes the servers to hold channels to; each channel reconnects on its own (channel-dial.ts), and
 * one to a server no longer listed is closed.
 */
import type { Logger } from 'pino';
import type { NodeAccess } from '../control/agent-protocol.js';
import type { NodeId } from '../model/index.js';
import { NodeChannelDialer, type NodeChannelOptions } from './channel-dial.js';
import { serverOrigin } from './server-list.js';

export type ChannelSetOptions = Omit<NodeChannelOptions, 'server'> & { nodeId: NodeId; access: NodeAccess; logger: Logger };

export class NodeChannelSet {
  /** By server origin: one channel per server, whatever URL spelling names it. */
  private readonly dialers = new Map<string, NodeChannelDialer>();
  private closed = false;

  constructor(private readonly opts: ChannelSetOptions) {}

  /** The servers a channel is held to (connected or dialing). */
  get servers(): string[] {
    return [...this.dialers.keys()];
  }

  /** The servers whose channel is up now. */
  get connectedServers(): string[] {
    return [...this.dialers].filter(([, d]) => d.connected).map(([s]) => s);
  }

  /** Whether a channel to some server is up. */
  get connected(): boolean {
    return this.connectedServers.length > 0;
  }

  /** The channel to `server`, if one is held. */
  dialer(server: string): NodeChannelDialer | undefined {
    return this.dialers.get(serverOrigin(server));
  }

  /** Resolves once a channel is up (any server's). */
  whenConnected(): Promise<void> {
    return Promise.race([...this.dialers.values()].map((d) => d.whenConnected()));
  }

  /** Holds a channel to each of `servers` and to no other; returns what it opened and closed. */
  async sync(servers: readonly string[]): Promise<{ opened: string[]; closed: string[] }> {
    if (this.closed) return { opened: [], closed: [] };
    const wanted = new Set(servers.map(serverOrigin));
    const opened: string[] = [];
    const gone: NodeChannelDialer[] = [];
    const closed: string[] = [];
    for (const [server, d] of this.dialers) {
      if (wanted.has(server)) continue;
      this.dialers.delete(server);
      gone.push(d);
      closed.push(server);
    }
    for (const server of wanted) {
      if (this.dialers.has(server)) continue;
      this.dialers.set(server, NodeChannelDialer.start({ ...this.opts, server, logger: this.opts.logger.child({ server }) }));
      opened.push(server);
    }
    await Promise.all(gone.map((d) => d.close()));
    if (opened.length || closed.length) this.opts.logger.info({ servers: [...wanted], opened, closed }, 'node channels follow the servers');
    return { opened, closed };
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.dialers.values()];
    this.dialers.clear();
    await Promise.all(all.map((d) => d.close()));
  }
}
