import { randomBytes } from 'node:crypto';
import { BerthError } from '../model/index.js';
import { withFence, type Store } from '../store/index.js';

/*
 * Who leads. Every server serves; one leads: it alone places, steps deployments, handles lost nodes,
 * judges lifetimes and takes the API's writes (followers forward them, api/forward.ts). On SQLite
 * there is one server and it always leads (`SoloLeadership`). On PostgreSQL the servers race for the
 * lease row `leader` (`LeaseLeadership`), timed by the database's clock: the holder renews it every
 * `ttl / 3`; the others try to take it every `ttl / 6`, and at once when a leader resigns (its
 * NOTIFY). Each take from another holder moves the epoch, and the leader's work runs fenced by it
 * (store/fence.ts), so a leader that was paused past its lease cannot write once it wakes.
 */

export interface LeaderInfo {
  id: string;
  url: string;
  epoch: number;
}

/** What the control plane and the API ask of leadership. */
export interface Leadership {
  /** This server's id (random per start) and the URL it is reached at. */
  readonly id: string;
  readonly url: string;
  /** Whether this server leads now (and its lease has not run out by its own reckoning). */
  leads(): boolean;
  /** The leader as last seen: this server when it leads; undefined while nobody does. */
  leader(): LeaderInfo | undefined;
  /** Runs leader-only work fenced by this server's lease; NOT_LEADER when it does not lead. */
  lead<T>(fn: () => Promise<T>): Promise<T>;
  /** Hears each change of `leads()`. */
  onChange(listener: (leading: boolean) => void): () => void;
  /** Waits up to `ms` for a leader to be known; undefined when none is. */
  waitForLeader(ms: number): Promise<LeaderInfo | undefined>;
}

/** One server on SQLite: always the leader, epoch 0, nothing to fence. */
export class SoloLeadership implements Leadership {
  readonly id = serverId();
  constructor(public url = '') {}
  leads(): boolean {
    return true;
  }
  leader(): LeaderInfo {
    return { id: this.id, url: this.url, epoch: 0 };
  }
  lead<T>(fn: () => Promise<T>): Promise<T> {
    return fn();
  }
  onChange(): () => void {
    return () => undefined;
  }
  async waitForLeader(): Promise<LeaderInfo> {
    return this.leader();
  }
}

export const LEADER_LEASE = 'leader';
/** A server counts as up while it heartbeat within this (each does every round, at most every second). */
export const SERVER_SEEN_WITHIN_MS = 10_000;
export const DEFAULT_LEASE_TTL_MS = 3000;

export interface LeaseLeadershipOptions {
  /** How long a lease lasts without renewal: a killed leader is replaced within about this. @default 3000 */
  ttlMs?: number;
  logger?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

/** Several servers on PostgreSQL: the lease row decides. */
export class LeaseLeadership implements Leadership {
  readonly id = serverId();
  url = '';
  private readonly ttlMs: number;
  private epoch: number | undefined;
  /** performance.now() past which this server no longer counts on its lease (renewal sent + ttl, less a margin). */
  private validUntil = 0;
  private seen: LeaderInfo | undefined;
  private readonly listeners = new Set<(leading: boolean) => void>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private readonly startedAt = new Date().toISOString();
  private unnotice: (() => void) | undefined;

  constructor(
    private readonly store: Store,
    private readonly options: LeaseLeadershipOptions = {},
  ) {
    this.ttlMs = Math.max(300, options.ttlMs ?? DEFAULT_LEASE_TTL_MS);
  }

  /** Starts heartbeating and racing for the lease at `url`; resolves after the first try. */
  async start(url: string): Promise<void> {
    this.url = url;
    this.unnotice = this.store.onNotice((payload) => {
      if (payload === `lease:${LEADER_LEASE}`) void this.tick();
    });
    await this.tick();
    this.schedule();
  }

  leads(): boolean {
    if (this.epoch === undefined) return false;
    if (performance.now() < this.validUntil) return true;
    // Past its lease by its own clock (the process was paused, or the database is slow): find out now.
    if (!this.ticking) void this.tick();
    return false;
  }

  leader(): LeaderInfo | undefined {
    if (this.leads()) return { id: this.id, url: this.url, epoch: this.epoch! };
    // Not itself while it cannot vouch for its lease: the next round says who leads.
    return this.seen?.id === this.id ? undefined : this.seen;
  }

  lead<T>(fn: () => Promise<T>): Promise<T> {
    if (!this.leads()) return Promise.reject(this.notLeader());
    return withFence({ lease: LEADER_LEASE, holder: this.id, epoch: this.epoch! }, fn);
  }

  onChange(listener: (leading: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async waitForLeader(ms: number): Promise<LeaderInfo | undefined> {
    const deadline = performance.now() + ms;
    for (;;) {
      const known = this.leader();
      if (known || performance.now() >= deadline || this.closed) return known;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops racing; a leader resigns at once (its NOTIFY wakes the others), and the server leaves the registry. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.unnotice?.();
    await this.ticking;
    const epoch = this.epoch;
    if (epoch !== undefined) {
      this.setEpoch(undefined);
      await this.store.resignLease(LEADER_LEASE, this.id, epoch).catch((err: unknown) => this.options.logger?.warn({ err }, 'resigning the lease failed: the next leader waits for it to run out'));
    }
    await this.store.removeServer(this.id).catch(() => undefined);
  }

  private notLeader(): BerthError {
    return new BerthError('NOT_LEADER', this.seen ? `this server does not lead; the leader is ${this.seen.url}` : 'no server leads at the moment; try again in a few seconds', { extra: { leader: this.seen?.url ?? null } });
  }

  private schedule(): void {
    if (this.closed) return;
    const every = this.epoch !== undefined ? this.ttlMs / 3 : this.ttlMs / 6;
    this.timer = setTimeout(() => void this.tick().finally(() => this.schedule()), every);
    this.timer.unref();
  }

  /** One round; rounds never overlap, and one asked for during another runs after it. */
  private tick(): Promise<void> {
    if (this.ticking) {
      this.again = true;
      return this.ticking;
    }
    this.ticking = (async () => {
      do {
        this.again = false;
        await this.round().catch((err: unknown) => this.options.logger?.warn({ err }, 'leader election round failed'));
      } while (this.again && !this.closed);
    })().finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async round(): Promise<void> {
    if (this.closed) return;
    // Counted from before the call: the database's clock started the lease no earlier than this.
    const sent = performance.now();
    try {
      await this.store.heartbeatServer(this.id, this.url, this.startedAt);
      if (this.epoch !== undefined) {
        if (await this.store.renewLease(LEADER_LEASE, this.id, this.epoch, this.ttlMs)) {
          this.validUntil = sent + this.ttlMs * 0.9;
          return;
        }
        this.options.logger?.warn({ epoch: this.epoch }, 'lost the leader lease: following');
        this.setEpoch(undefined);
      }
      const epoch = await this.store.acquireLease(LEADER_LEASE, this.id, this.url, this.ttlMs);
      if (epoch !== undefined) {
        this.validUntil = sent + this.ttlMs * 0.9;
        this.options.logger?.info({ epoch }, 'leading');
        this.setEpoch(epoch);
        return;
      }
      const lease = await this.store.readLease(LEADER_LEASE);
      this.seen = lease?.holder && lease.holderUrl && lease.remainingMs > 0 ? { id: lease.holder, url: lease.holderUrl, epoch: lease.epoch } : undefined;
    } catch (err) {
      // The database is away: a leader whose lease runs out by its own clock stops leading (the fence
      // would refuse its writes anyway); a follower forgets a leader it cannot confirm.
      if (this.epoch !== undefined && performance.now() >= this.validUntil) this.setEpoch(undefined);
      if (this.epoch === undefined) this.seen = undefined;
      throw err;
    }
  }

  private setEpoch(epoch: number | undefined): void {
    const was = this.epoch !== undefined;
    this.epoch = epoch;
    if (epoch !== undefined) this.seen = { id: this.id, url: this.url, epoch };
    else if (this.seen?.id === this.id) this.seen = undefined;
    if (was !== (epoch !== undefined)) {
      for (const l of [...this.listeners]) {
        try {
          l(epoch !== undefined);
        } catch (err) {
          this.options.logger?.warn({ err }, 'a leadership listener failed');
        }
      }
    }
  }
}

function serverId(): string {
  return `srv_${randomBytes(6).toString('hex')}`;
}
