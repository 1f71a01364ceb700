/**
 * How the proxy reaches a node's pods, as the operator sets it (`berth server --node-connect`):
 * straight to the node's published ports, or through the node's NodeAccess — the stream channel
 * its agent dialled, which needs no inbound connection to the node.
 */
import type { NodeId } from '../model/index.js';
import type { Via } from './routes.js';

/**
 * - `auto`: the server's own node (its agent runs in the server's process) directly, every other
 *   node through its channel: a node behind NAT or a firewall works without a word from anyone.
 * - `direct`: every node at its public address and published port (the operator says the nodes are
 *   reachable from the server): the fastest path.
 * - `channel`: every node through its channel, the server's own too.
 */
export type NodeConnect = 'auto' | 'direct' | 'channel';

export const NODE_CONNECT_MODES: readonly NodeConnect[] = ['auto', 'direct', 'channel'];

/** The way to a node's pods under `mode`, given the node of the server's own agent, if any. */
export function viaOf(mode: NodeConnect, nodeId: NodeId, localNode: NodeId | undefined): Via {
  if (mode === 'auto') return nodeId === localNode ? 'direct' : 'channel';
  return mode;
}
