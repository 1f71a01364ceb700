import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { Agent } from '../agent/agent.js';
import { HttpAgentChannel } from '../agent/http-channel.js';
import { NodeChannelSet } from '../agent/channel-set.js';
import { credentialPath, readCredential, readKnownServers, writeCredential, writeKnownServers } from '../agent/node-credential-file.js';
import { parseServers } from '../agent/server-list.js';
import { ServerFollower } from '../agent/server-follow.js';
import { DockerRuntime } from '../runtime/docker.js';
import { BerthError, parseJoinToken } from '../model/index.js';
import { defaultDataDir } from './server.js';

export interface AgentProcessOptions {
  /**
   * The server's URL, e.g. http://10.0.0.1:7700, or several servers of one cluster (each entry may
   * be comma-separated too), tried in order; absent: the ones this machine joined and last heard of.
   */
  server?: string | readonly string[];
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
  /** How often the agent asks for the cluster's servers. @default 10_000 */
  serverRefreshMs?: number;
}

/** A joined agent: its pods' runner, its calls to the servers, and the node channels it serves their access over (one per server). */
export interface RunningAgent {
  id: Agent['id'];
  agent: Agent;
  http: HttpAgentChannel;
  channel: NodeChannelSet;
  /** Asks the servers for the server list now (it does every `serverRefreshMs` anyway). */
  refreshServers(): Promise<void>;
  close(): Promise<void>;
}

/** The servers given, as origins; a URL that is not one is the user's mistake, named. */
function givenServers(server: string | readonly string[] | undefined): string[] {
  if (server === undefined) return [];
  try {
    return parseServers(typeof server === 'string' ? [server] : server);
  } catch (err) {
    throw new BerthError('VALIDATION', `--server: ${(err as Error).message}`);
  }
}

/** The origins among `urls`, each once; a stored one that no longer parses is left out. */
function knownOrigins(urls: readonly string[]): string[] {
  const parsed = urls.flatMap((u) => {
    try {
      return parseServers([u]);
    } catch {
      return [];
    }
  });
  return [...new Set(parsed)];
}

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
  const given = givenServers(options.server);
  const stored = await readCredential(agentDir);
  const common = { logger: logger.child({ part: 'servers' }), ...(options.onRevoked ? { onRevoked: options.onRevoked } : {}) };
  let channel: HttpAgentChannel;
  if (stored) {
    // The servers of the cluster it joined: those given at the join, and those it last heard of.
    const joined = knownOrigins([stored.server, ...(stored.servers ?? []), ...(await readKnownServers(agentDir))]);
    if (given.length && !given.some((g) => joined.includes(g))) {
      throw new BerthError('CONFLICT', `this machine joined ${stored.server} as node ${stored.nodeId} (${credentialPath(agentDir)}); to join ${given.join(', ')} instead, remove that file (and the node on the old server: berth node rm ${stored.nodeId})`);
    }
    if (options.token) note(`this machine joined ${stored.server} as node ${stored.nodeId} already: its credential (${credentialPath(agentDir)}) is used and the join token is not (remove the file to join again)`);
    channel = new HttpAgentChannel({ server: [...given, ...joined], credential: stored.credential, fingerprint: stored.fingerprint, ...common });
  } else {
    if (!given.length || !options.token) throw new BerthError('VALIDATION', 'this machine has not joined a server yet: give --server and --token (a join token: `berth token create` on the server)');
    const { fingerprint } = parseJoinToken(options.token);
    const plain = given.find((s) => new URL(s).protocol !== 'https:');
    if (fingerprint && plain) throw new BerthError('VALIDATION', `the join token pins the server's TLS certificate: give the server as https://, not ${plain}`);
    channel = new HttpAgentChannel({
      server: given,
      token: options.token,
      fingerprint,
      onJoined: async ({ nodeId, credential, server }) => {
        const path = await writeCredential(agentDir, { server, servers: given, nodeId, credential, fingerprint, joinedAt: new Date().toISOString() });
        note(`joined ${server} as node ${nodeId}; its credential is in ${path}`);
      },
      ...common,
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
  // Registered: the credential is known (made by the join, or stored), and the node channels dial
  // with it, one to each server the cluster lists (the credential and the pin hold on every one).
  const auth = channel.auth;
  const channels = new NodeChannelSet({ token: auth.credential ?? '', fingerprint: auth.fingerprint, nodeId: agent.id, access: agent.access, logger: logger.child({ part: 'node-channel' }) });
  const follower = new ServerFollower({
    list: channel.servers,
    fetch: (signal) => channel.listServers(signal),
    channels,
    logger: logger.child({ part: 'servers' }),
    onChange: (known) => writeKnownServers(agentDir, known),
    ...(options.serverRefreshMs !== undefined ? { intervalMs: options.serverRefreshMs } : {}),
  });
  await follower.start();
  return {
    id: agent.id,
    agent,
    http: channel,
    channel: channels,
    refreshServers: () => follower.refresh(),
    async close() {
      await follower.close();
      await channels.close();
      await agent.close();
      await channel.close();
    },
  };
}
