/**
 * One coarse timer for the proxy's idle limits, shared by the fast path's client connections and
 * its pooled connections to pods.
 */

/** Something with idle limits, looked at on each tick of an IdleClock. */
export interface Sweepable {
  sweep(tick: number): void;
}

/**
 * A coarse clock for the fast path's idle limits: one timer for all connections, where a socket
 * timeout is a timer per socket re-armed on every read and write. A connection notes the tick of
 * its last activity (`seen = clock.tick`); each tick, the clock asks every connection to compare.
 * Limits are kept to within a tick: a second, or a quarter of the idle limit when one is set.
 */
export class IdleClock {
  tick = 0;
  readonly periodMs: number;
  private readonly members = new Set<Sweepable>();
  private readonly timer: NodeJS.Timeout;

  constructor(idleMs: number) {
    this.periodMs = idleMs > 0 ? Math.max(10, Math.min(1000, Math.floor(idleMs / 4))) : 1000;
    this.timer = setInterval(() => {
      const tick = ++this.tick;
      for (const m of this.members) m.sweep(tick);
    }, this.periodMs);
    this.timer.unref();
  }

  /** Whole ticks that cover `ms`: idle for more than this many ticks is idle for at least `ms`. */
  ticks(ms: number): number {
    return Math.ceil(ms / this.periodMs);
  }

  add(m: Sweepable): void {
    this.members.add(m);
  }

  delete(m: Sweepable): void {
    this.members.delete(m);
  }

  close(): void {
    clearInterval(this.timer);
    this.members.clear();
  }
}
