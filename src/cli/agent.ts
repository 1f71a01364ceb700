import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { Agent } from '../agent/agent.js';
import { HttpAgentChannel } from '../agent/http-channel.js';
import { NodeChannelDialer } from '../agent/channel-dial.js';
import { DockerRuntime } from '../runtime/docker.js';
import { defaultDataDir } from './server.js';

export interface AgentProcessOptions {
  /** The server's URL, e.g. http://10.0.0.1:7700. */
  server: string;
  /** An admin API key of that server. */
  token: string;
  /** @default the server's default data dir; the agent keeps its node id in `<dataDir>/agent`. */
  dataDir?: string;
  name?: string;
  publicIp?: string;
  bindAddress?: string;
  gpuInventory?: string;
  /** The image of multi-container pods' infra container. @default the node's own, built from catatonit */
  infraImage?: string;
  /** Where catatonit is, for the node's own infra image. @default the usual places */
  catatonitPath?: string;
  labels?: Record<string, string>;
  /** How often pods' usage is measured and sent; 0: never. @default 10_000 */
  usageIntervalMs?: number;
  logLevel?: string;
  logger?: Logger;
}

/** A joined agent: its pods' runner, and the node channel it serves their access over. */
export interface RunningAgent {
  id: Agent['id'];
  agent: Agent;
  channel: NodeChannelDialer;
  close(): Promise<void>;
}

/** `berth agent`: joins this machine to a server; runs its pods on the local Docker daemon and serves their access over the node channel. */
export async function startAgent(options: AgentProcessOptions): Promise<RunningAgent> {
  const logger = options.logger ?? pino({ level: options.logLevel ?? 'info' });
  const runtime = await DockerRuntime.create();
  const agent = await Agent.create({
    channel: new HttpAgentChannel(options.server, options.token),
    runtime,
    logger,
    dataDir: join(options.dataDir ?? defaultDataDir(), 'agent'),
    ...(options.name ? { name: options.name } : {}),
    ...(options.publicIp ? { publicIp: options.publicIp } : {}),
    ...(options.bindAddress ? { bindAddress: options.bindAddress } : {}),
    ...(options.gpuInventory ? { gpuInventoryPath: options.gpuInventory } : {}),
    ...(options.infraImage ? { infraImage: options.infraImage } : {}),
    ...(options.catatonitPath ? { catatonitPath: options.catatonitPath } : {}),
    ...(options.labels ? { labels: options.labels } : {}),
    ...(options.usageIntervalMs !== undefined ? { usageIntervalMs: options.usageIntervalMs } : {}),
  });
  const channel = NodeChannelDialer.start({ server: options.server, token: options.token, nodeId: agent.id, access: agent.access, logger: logger.child({ part: 'node-channel' }) });
  return {
    id: agent.id,
    agent,
    channel,
    async close() {
      await channel.close();
      await agent.close();
    },
  };
}
