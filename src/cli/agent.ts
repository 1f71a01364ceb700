import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { Agent } from '../agent/agent.js';
import { HttpAgentChannel } from '../agent/http-channel.js';
import { NodeChannelDialer } from '../agent/channel-dial.js';
import { credentialPath, readCredential, writeCredential } from '../agent/node-credential-file.js';
import { DockerRuntime } from '../runtime/docker.js';
import { BerthError, parseJoinToken } from '../model/index.js';
import { defaultDataDir } from './server.js';

export interface AgentProcessOptions {
  /** The server's URL, e.g. http://10.0.0.1:7700; absent: the one this machine joined. */
  server?: string;
  /** A join token of that server (`berth token create`); needed only to join, not once a credential is stored. */
  token?: string;
  /** @default the server's default data dir; the agent keeps its credential and node id in `<dataDir>/agent`. */
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
  /** What the user should read (a token given needlessly). @default logged */
  note?: (message: string) => void;
  /** Called once when the server refuses the node's credential (the node was removed): stop the agent. */
  onRevoked?: (err: BerthError) => void;
}

/** A joined agent: its pods' runner, and the node channel it serves their access over. */
export interface RunningAgent {
  id: Agent['id'];
  agent: Agent;
  channel: NodeChannelDialer;
  close(): Promise<void>;
}

/** Whether two server URLs name the same server (`http://h:7700/` and `http://h:7700`). */
const sameServer = (a: string, b: string): boolean => new URL(a).origin === new URL(b).origin;

/**
 * `berth agent`: joins this machine to a server — the first time with a join token, which it
 * exchanges for a credential of its node, kept in `<dataDir>/agent/credential.json` (0600); after,
 * with that credential — and runs its pods on the local Docker daemon, serving their access over the
 * node channel it dials.
 */
export async function startAgent(options: AgentProcessOptions): Promise<RunningAgent> {
  const logger = options.logger ?? pino({ level: options.logLevel ?? 'info' });
  const note = options.note ?? ((m: string) => logger.info(m));
  const agentDir = join(options.dataDir ?? defaultDataDir(), 'agent');
  const stored = await readCredential(agentDir);
  let channel: HttpAgentChannel;
  if (stored) {
    if (options.server && !sameServer(options.server, stored.server)) {
      throw new BerthError('CONFLICT', `this machine joined ${stored.server} as node ${stored.nodeId} (${credentialPath(agentDir)}); to join ${options.server} instead, remove that file (and the node on the old server: berth node rm ${stored.nodeId})`);
    }
    if (options.token) note(`this machine joined ${stored.server} as node ${stored.nodeId} already: its credential (${credentialPath(agentDir)}) is used and the join token is not (remove the file to join again)`);
    channel = new HttpAgentChannel({ server: stored.server, credential: stored.credential, fingerprint: stored.fingerprint, ...(options.onRevoked ? { onRevoked: options.onRevoked } : {}) });
  } else {
    if (!options.server || !options.token) throw new BerthError('VALIDATION', 'this machine has not joined a server yet: give --server and --token (a join token: `berth token create` on the server)');
    const server = options.server;
    const { fingerprint } = parseJoinToken(options.token);
    if (fingerprint && new URL(server).protocol !== 'https:') throw new BerthError('VALIDATION', `the join token pins the server's TLS certificate: give the server as https://, not ${server}`);
    channel = new HttpAgentChannel({
      server,
      token: options.token,
      fingerprint,
      onJoined: async ({ nodeId, credential }) => {
        const path = await writeCredential(agentDir, { server, nodeId, credential, fingerprint, joinedAt: new Date().toISOString() });
        note(`joined ${server} as node ${nodeId}; its credential is in ${path}`);
      },
      ...(options.onRevoked ? { onRevoked: options.onRevoked } : {}),
    });
  }
  const runtime = await DockerRuntime.create();
  let agent: Agent;
  try {
    agent = await Agent.create({
      channel,
      runtime,
      logger,
      dataDir: agentDir,
      ...(options.name ? { name: options.name } : {}),
      ...(options.publicIp ? { publicIp: options.publicIp } : {}),
      ...(options.bindAddress ? { bindAddress: options.bindAddress } : {}),
      ...(options.gpuInventory ? { gpuInventoryPath: options.gpuInventory } : {}),
      ...(options.infraImage ? { infraImage: options.infraImage } : {}),
      ...(options.catatonitPath ? { catatonitPath: options.catatonitPath } : {}),
      ...(options.labels ? { labels: options.labels } : {}),
      ...(options.usageIntervalMs !== undefined ? { usageIntervalMs: options.usageIntervalMs } : {}),
    });
  } catch (err) {
    await channel.close();
    if (stored && err instanceof BerthError && err.kind === 'UNAUTHORIZED') {
      throw new BerthError('UNAUTHORIZED', `${err.message} — this machine's credential (${credentialPath(agentDir)}) is no longer valid: remove that file and join again with a new token`, { cause: err });
    }
    throw err;
  }
  // Registered: the credential is known (made by the join, or stored), and the node channel dials with it.
  const auth = channel.auth;
  const dialer = NodeChannelDialer.start({ server: auth.server, token: auth.credential ?? '', fingerprint: auth.fingerprint, nodeId: agent.id, access: agent.access, logger: logger.child({ part: 'node-channel' }) });
  return {
    id: agent.id,
    agent,
    channel: dialer,
    async close() {
      await dialer.close();
      await agent.close();
    },
  };
}
