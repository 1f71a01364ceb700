import pg from 'pg';
import type { StoreLogger } from './changes.js';

/*
 * One dedicated PostgreSQL connection per store, outside the pool, that LISTENs on the store's
 * channel (leases.ts's noticeChannel) and hands each payload on. When the connection fails or ends
 * it reconnects with a growing delay, and says so once it listens again: notices sent while it was
 * away are lost, so the owner catches up from the feed then (relay.ts).
 */

export interface NoticeListenerOptions {
  url: string;
  channel: string;
  /** Each payload sent on the channel (by any server, this one included). */
  onNotice(payload: string): void;
  /** Each time LISTEN is in place again after a lost connection (not the first time). */
  onRelisten(): void;
  logger?: StoreLogger;
  /** First delay before reconnecting, doubled up to `maxDelayMs`. @default 100 */
  minDelayMs?: number;
  /** @default 2000 */
  maxDelayMs?: number;
}

/** How the connection shows in pg_stat_activity. */
export const LISTEN_APPLICATION_NAME = 'berth-listen';

export class NoticeListener {
  private client: pg.Client | null = null;
  private retry: NodeJS.Timeout | undefined;
  private delayMs: number;
  /** A connection was lost (or the first one failed) and LISTEN is not in place again yet. */
  private away = false;
  private closed = false;
  private readonly minDelayMs: number;
  private readonly maxDelayMs: number;

  /** Listening before it returns when the database answers; otherwise it keeps trying in the background. */
  static async start(opts: NoticeListenerOptions): Promise<NoticeListener> {
    const listener = new NoticeListener(opts);
    await listener.connect();
    return listener;
  }

  private constructor(private readonly opts: NoticeListenerOptions) {
    this.minDelayMs = opts.minDelayMs ?? 100;
    this.maxDelayMs = opts.maxDelayMs ?? 2000;
    this.delayMs = this.minDelayMs;
  }

  /** Ends the connection and stops reconnecting. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.opts.url,
      application_name: LISTEN_APPLICATION_NAME,
      // A database that does not answer is a failed try, not a store that never opens.
      connectionTimeoutMillis: 5000,
      // An idle connection whose peer vanished (a partition, a host gone) is noticed and replaced.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, undefined));
    client.on('notification', (msg) => {
      if (msg.channel === this.opts.channel && msg.payload !== undefined) this.opts.onNotice(msg.payload);
    });
    this.client = client;
    try {
      await client.connect();
      // A quoted identifier: the channel is `berth_` and hex digits, nothing to escape.
      await client.query(`LISTEN "${this.opts.channel}"`);
    } catch (err) {
      this.lost(client, err);
      return;
    }
    if (this.closed || this.client !== client) return;
    this.delayMs = this.minDelayMs;
    if (this.away) {
      this.away = false;
      this.opts.logger?.info({ channel: this.opts.channel }, 'listening for changes again');
      this.opts.onRelisten();
    }
  }

  /** The connection `client` failed or ended: unless closing, try again after the current delay. */
  private lost(client: pg.Client, err: unknown): void {
    if (this.client !== client) return;
    this.client = null;
    void client.end().catch(() => undefined);
    if (this.closed) return;
    // Logged once per outage; every retry after is quiet until one succeeds.
    if (!this.away) this.opts.logger?.error({ err }, 'the LISTEN connection to PostgreSQL was lost; reconnecting');
    this.away = true;
    this.retry = setTimeout(() => void this.connect(), this.delayMs);
    this.retry.unref();
    this.delayMs = Math.min(this.maxDelayMs, this.delayMs * 2);
  }
}
