import { sql, type Kysely } from 'kysely';
import type { Change } from '../model/index.js';
import { ChangeListeners, type StoreLogger } from './changes.js';
import type { Database } from './schema.js';

/*
 * The ordered announcer: in-process listeners hear every committed revision once, in revision order,
 * whichever server wrote it. It keeps `last`, the newest revision announced (at start: the feed's
 * newest). A local commit that follows `last` directly is announced at once, synchronously, as
 * before there were several servers. Anything else — another server's write (heard of through
 * LISTEN/NOTIFY, see listen.ts, or the poll), or a gap a rolled-back transaction left in the
 * PostgreSQL sequence — is a catch-up: read the feed after `last`, announce, advance `last` to the
 * newest read. Reading everything after `last` is complete because writers hold one advisory lock
 * until they commit (SqlDialect.lockWriters): once a revision is visible, no smaller one is still in
 * flight. Catch-ups never overlap; one asked for during another runs after it.
 */

/** Changes read per query while catching up. */
const BATCH = 1000;

export interface RelayOptions {
  /** Committed changes after `since`, oldest first, at most `limit` (the feed's changesSince). */
  read(since: number, limit: number): Promise<Change[]>;
  /** The newest revision when the store opened: listeners hear what commits after it. */
  start: number;
  /** The NOTIFY channel write transactions announce their newest revision on; absent on SQLite. */
  channel?: string;
  /** How often to catch up whatever was heard or not (the safety net for lost notices); absent: never. */
  pollMs?: number;
  logger?: StoreLogger;
}

export class ChangeRelay {
  readonly listeners: ChangeListeners;
  /** The NOTIFY channel, on PostgreSQL. */
  readonly channel: string | undefined;
  private readonly notices = new Set<(payload: string) => void>();
  /** Newest revisions of local transactions committing now: their own notices need no catch-up. */
  private readonly local = new Set<number>();
  private last: number;
  /** A catch-up is wanted that has not started reading yet. */
  private requested = false;
  /** The catch-up loop while it runs. */
  private draining: Promise<void> | null = null;
  private failing = false;
  private closed = false;
  private readonly poll: NodeJS.Timeout | undefined;

  constructor(private readonly opts: RelayOptions) {
    this.listeners = new ChangeListeners(opts.logger);
    this.channel = opts.channel;
    this.last = opts.start;
    if (opts.pollMs !== undefined) {
      this.poll = setInterval(() => void this.catchUp(), opts.pollMs);
      this.poll.unref();
    }
  }

  /** The newest revision announced. */
  get announced(): number {
    return this.last;
  }

  onChange(listener: (change: Change) => void): () => void {
    return this.listeners.add(listener);
  }

  onNotice(listener: (payload: string) => void): () => void {
    this.notices.add(listener);
    return () => this.notices.delete(listener);
  }

  /** In a write transaction about to commit with `newest` as its newest revision: tells the other servers (on PostgreSQL). */
  async notifyInside(trx: Kysely<Database>, newest: number): Promise<void> {
    if (this.channel === undefined) return;
    this.local.add(newest);
    await sql`select pg_notify(${this.channel}, ${`rev:${newest}`})`.execute(trx);
  }

  /** A local transaction that recorded `changes` rolled back (or its commit failed). */
  rolledBack(changes: readonly Change[]): void {
    const newest = changes.at(-1);
    if (newest) this.local.delete(newest.revision);
  }

  /**
   * A local transaction committed `changes`. Announced at once when they follow the last revision
   * announced and no catch-up is under way; otherwise the returned promise settles once a catch-up
   * has announced them (and everything before them), so the writer's caller has been heard either way.
   */
  committed(changes: readonly Change[]): Promise<void> | undefined {
    const first = changes[0];
    const newest = changes.at(-1);
    if (!first || !newest) return undefined;
    this.local.delete(newest.revision);
    if (newest.revision <= this.last) return undefined;
    if (first.revision === this.last + 1 && !this.draining) {
      this.last = newest.revision;
      this.listeners.announce(changes);
      return undefined;
    }
    return this.catchUp();
  }

  /**
   * A payload on the channel: `rev:<n>` (a write committed up to revision n: caught up unless already
   * heard) or anything else (`lease:<name>`), which goes to the notice listeners.
   */
  notice(payload: string): void {
    if (payload.startsWith('rev:')) {
      const revision = Number(payload.slice(4));
      // A local commit's own notice: that commit announces it (or catches up) itself.
      if (this.local.has(revision)) return;
      if (!Number.isFinite(revision) || revision > this.last) void this.catchUp();
      return;
    }
    for (const listener of [...this.notices]) {
      try {
        listener(payload);
      } catch (err) {
        this.opts.logger?.error({ err, payload }, 'a notice listener failed');
      }
    }
  }

  /**
   * Reads and announces everything committed after the last revision announced. Settles once a read
   * that started after this call has finished (never rejects: a failed read is logged, and the next
   * notice or poll tries again).
   */
  catchUp(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.requested = true;
    this.draining ??= this.drain();
    return this.draining;
  }

  /** Stops polling and waits for a catch-up under way; nothing is announced after. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.poll) clearInterval(this.poll);
    await this.draining;
  }

  private async drain(): Promise<void> {
    try {
      while (this.requested && !this.closed) {
        this.requested = false;
        await this.readAll();
      }
    } finally {
      // No await between the loop's last test and here: a catchUp() that found the loop running
      // either set `requested` in time for another round or comes after this and starts a new loop.
      this.draining = null;
    }
  }

  private async readAll(): Promise<void> {
    try {
      for (;;) {
        const batch = await this.opts.read(this.last, BATCH);
        if (this.closed) return;
        const fresh = batch.filter((c) => c.revision > this.last);
        const newest = fresh.at(-1);
        if (newest) {
          this.last = newest.revision;
          this.listeners.announce(fresh);
        }
        if (batch.length < BATCH) break;
      }
      if (this.failing) {
        this.failing = false;
        this.opts.logger?.info({ revision: this.last }, 'change feed caught up again');
      }
    } catch (err) {
      // Logged once per outage; the poll and the next notice keep trying.
      if (!this.failing) this.opts.logger?.error({ err, revision: this.last }, 'reading the change feed failed; will retry');
      this.failing = true;
    }
  }
}
