/**
 * Keeps the agent's view of the cluster's servers current: every 10 s (and right after the agent
 * registers) it asks `GET /api/v1/agent/servers`, updates the server list its calls fail over on,
 * and has the node channels follow it: one to each listed server, none to a server gone from the list.
 */
import type { Logger } from 'pino';
import type { ListedServer, ServerList } from './server-list.js';

export interface ServerFollowerOptions {
  list: ServerList;
  /** The cluster's servers, as one of them answers (HttpAgentChannel.listServers). */
  fetch: (signal: AbortSignal) => Promise<ListedServer[]>;
  /** What holds a node channel to each server (NodeChannelSet). */
  channels: { sync(servers: readonly string[]): Promise<unknown> };
  logger: Logger;
  /** Called with every known server when the listed ones change: the agent keeps them for its next start. */
  onChange?: (known: string[]) => Promise<void>;
  /** @default 10_000 */
  intervalMs?: number;
}

export class ServerFollower {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly abort = new AbortController();

  constructor(private readonly opts: ServerFollowerOptions) {}

  /** A first refresh now, then one every interval. */
  async start(): Promise<void> {
    await this.refresh();
    if (this.abort.signal.aborted) return;
    this.timer = setInterval(() => void this.refresh(), this.opts.intervalMs ?? 10_000);
    this.timer.unref();
  }

  /** Asks for the servers and has the channels follow; one refresh at a time (a second call joins the one running). */
  refresh(): Promise<void> {
    this.running ??= this.once().finally(() => (this.running = undefined));
    return this.running;
  }

  private async once(): Promise<void> {
    const { list, logger } = this.opts;
    try {
      const listed = await this.opts.fetch(this.abort.signal);
      if (list.update(listed)) {
        logger.info({ servers: list.known }, 'the cluster lists its servers');
        await this.opts.onChange?.(list.known).catch((err: unknown) => logger.warn({ err }, 'cannot keep the server list'));
      }
    } catch (err) {
      // Every server gone for now: the channels keep dialing the last list; the next refresh asks again.
      if (!this.abort.signal.aborted) logger.warn({ err: (err as Error).message }, 'cannot ask the servers for the server list');
    }
    if (this.abort.signal.aborted) return;
    await this.opts.channels.sync(list.channelTargets);
  }

  async close(): Promise<void> {
    this.abort.abort();
    clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }
}
