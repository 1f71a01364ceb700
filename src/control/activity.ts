/**
 * Who is using which pod, as the idle policy sees it: the SSH gateway, the web terminal, API exec
 * and tunnels, and the proxy (its workers batch what they routed, one message per second) tell the
 * tracker; the lifetime controller asks it. In memory only: a server that starts knows no activity
 * from before it started, and counts every pod as used at its start (lifetimes.ts).
 */
import type { ActivitySignal } from '../model/index.js';

/** What the access paths call: cheap, synchronous, never throws. */
export interface ActivitySink {
  /** One use at this moment (a proxied request, an exec), or at `at` (ms; a GPU sample's time). */
  touch(podId: string, signal: ActivitySignal, at?: number): void;
  /** A session opens; the pod counts as used until the returned function is called (once is enough; more are ignored). */
  open(podId: string, signal: ActivitySignal): () => void;
}

interface PodActivity {
  /** The last use per signal (ms), a closed session's close included. */
  last: Partial<Record<ActivitySignal, number>>;
  /** Sessions open now per signal. */
  open: Partial<Record<ActivitySignal, number>>;
}

export class ActivityTracker implements ActivitySink {
  private readonly pods = new Map<string, PodActivity>();

  constructor(private readonly clock: () => number = Date.now) {}

  touch(podId: string, signal: ActivitySignal, at = this.clock()): void {
    const last = this.entry(podId).last;
    if ((last[signal] ?? 0) < at) last[signal] = at;
  }

  open(podId: string, signal: ActivitySignal): () => void {
    const e = this.entry(podId);
    e.open[signal] = (e.open[signal] ?? 0) + 1;
    e.last[signal] = this.clock();
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      e.open[signal] = Math.max(0, (e.open[signal] ?? 1) - 1);
      e.last[signal] = this.clock();
    };
  }

  /** The last use (ms) on any of `signals`, or null when none was seen. */
  lastUse(podId: string, signals: readonly ActivitySignal[]): number | null {
    const e = this.pods.get(podId);
    if (!e) return null;
    let last: number | null = null;
    for (const s of signals) {
      const t = e.last[s];
      if (t !== undefined && (last === null || t > last)) last = t;
    }
    return last;
  }

  /** The first of `signals` with a session open now, or null. */
  openSession(podId: string, signals: readonly ActivitySignal[]): ActivitySignal | null {
    const e = this.pods.get(podId);
    if (!e) return null;
    return signals.find((s) => (e.open[s] ?? 0) > 0) ?? null;
  }

  /** Drops a terminated pod's record (an open session keeps its own reference and stays harmless). */
  forget(podId: string): void {
    this.pods.delete(podId);
  }

  private entry(podId: string): PodActivity {
    let e = this.pods.get(podId);
    if (!e) this.pods.set(podId, (e = { last: {}, open: {} }));
    return e;
  }
}
