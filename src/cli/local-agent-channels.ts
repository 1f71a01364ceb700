import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Agent } from '../agent/agent.js';
import { NodeChannelSet } from '../agent/channel-set.js';
import { SERVER_SEEN_WITHIN_MS } from '../control/leadership.js';
import type { NodeCredentialService } from '../control/node-credentials.js';
import type { Store } from '../store/types.js';

/** How often the server's own agent looks again for the other servers. */
const FOLLOW_EVERY_MS = 10_000;

/**
 * Several servers: a server's own agent speaks to its server in process, but the other servers must
 * reach its node's pods too (an SSH session or a proxied request may land on any of them). So it
 * holds a node channel to each of the others, as a joined machine's agent does (agent/channel-set.ts),
 * with a node credential of its own, kept in the agent's data dir (0600) and issued on first need.
 */
export class LocalAgentChannels {
  private constructor(
    private readonly channels: NodeChannelSet,
    private readonly timer: NodeJS.Timeout,
  ) {}

  static async start(opts: { store: Store; agent: Agent; selfId: string; credentials: NodeCredentialService; dataDir: string; fingerprint: string | null; logger: Logger }): Promise<LocalAgentChannels> {
    const token = await credentialOf(opts);
    const channels = new NodeChannelSet({ nodeId: opts.agent.id, access: opts.agent.access, token, fingerprint: opts.fingerprint, logger: opts.logger });
    const follow = async (): Promise<void> => {
      const others = (await opts.store.listServers(SERVER_SEEN_WITHIN_MS)).filter((s) => s.id !== opts.selfId).map((s) => s.url);
      await channels.sync(others);
    };
    await follow().catch((err: unknown) => opts.logger.warn({ err }, 'finding the other servers failed'));
    const timer = setInterval(() => void follow().catch((err: unknown) => opts.logger.warn({ err }, 'finding the other servers failed')), FOLLOW_EVERY_MS);
    timer.unref();
    return new LocalAgentChannels(channels, timer);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.channels.close();
  }
}

/** The node credential kept in the agent's data dir, when it still stands for the node; else a new one. */
async function credentialOf(opts: { agent: Agent; credentials: NodeCredentialService; dataDir: string }): Promise<string> {
  const path = join(opts.dataDir, 'local-credential');
  const kept = (await readFile(path, 'utf8').catch(() => '')).trim();
  if (kept && (await opts.credentials.authenticate(kept)) === opts.agent.id) return kept;
  const issued = await opts.credentials.issue(opts.agent.id, null);
  await writeFile(path, issued + '\n', { mode: 0o600 });
  return issued;
}
