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

/** Another server's open sessions count this long after its last word on them (it repeats them every second). */
const REMOTE_OPEN_MS = 5000;

export class ActivityTracker implements ActivitySink {
  private readonly pods = new Map<string, PodActivity>();
  /** Pods used here since the last `takeShared`. */
  private readonly changed = new Set<string>();
  /** Sessions open on other servers, per server: what each said last, and when. */
  private readonly remoteOpen = new Map<string, { at: number; pods: Map<string, Partial<Record<ActivitySignal, number>>> }>();

  constructor(private readonly clock: () => number = Date.now) {}

  touch(podId: string, signal: ActivitySignal, at = this.clock()): void {
    const last = this.entry(podId).last;
    if ((last[signal] ?? 0) < at) last[signal] = at;
    this.changed.add(podId);
  }

  open(podId: string, signal: ActivitySignal): () => void {
    const e = this.entry(podId);
    e.open[signal] = (e.open[signal] ?? 0) + 1;
    e.last[signal] = this.clock();
    this.changed.add(podId);
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      e.open[signal] = Math.max(0, (e.open[signal] ?? 1) - 1);
      e.last[signal] = this.clock();
      this.changed.add(podId);
    };
  }

  /**
   * What another server should hear (cluster-bus.ts): each pod used here since the last call, with
   * its last uses, and each pod with a session open here, with the sessions open.
   */
  takeShared(): Array<[string, Partial<Record<ActivitySignal, number>>, Partial<Record<ActivitySignal, number>>]> {
    const out: Array<[string, Partial<Record<ActivitySignal, number>>, Partial<Record<ActivitySignal, number>>]> = [];
    for (const [podId, e] of this.pods) {
      const open = Object.fromEntries(Object.entries(e.open).filter(([, n]) => n > 0)) as Partial<Record<ActivitySignal, number>>;
      if (this.changed.has(podId) || Object.keys(open).length > 0) out.push([podId, this.changed.has(podId) ? e.last : {}, open]);
    }
    this.changed.clear();
    return out;
  }

  /** Takes what server `from` said (`takeShared` there): its uses count as uses here, its open sessions as open until it stops saying so. */
  merge(from: string, pods: ReturnType<ActivityTracker['takeShared']>, now = this.clock()): void {
    const open = new Map<string, Partial<Record<ActivitySignal, number>>>();
    for (const [podId, last, opened] of pods) {
      const e = this.entry(podId);
      for (const [signal, at] of Object.entries(last) as Array<[ActivitySignal, number]>) if ((e.last[signal] ?? 0) < at) e.last[signal] = at;
      if (Object.keys(opened).length > 0) open.set(podId, opened);
    }
    this.remoteOpen.set(from, { at: now, pods: open });
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

  /** The first of `signals` with a session open now, here or on another server, or null. */
  openSession(podId: string, signals: readonly ActivitySignal[]): ActivitySignal | null {
    const e = this.pods.get(podId);
    const here = e ? signals.find((s) => (e.open[s] ?? 0) > 0) : undefined;
    if (here) return here;
    const now = this.clock();
    for (const [from, r] of this.remoteOpen) {
      if (now - r.at > REMOTE_OPEN_MS) {
        this.remoteOpen.delete(from);
        continue;
      }
      const opened = r.pods.get(podId);
      const there = opened ? signals.find((s) => (opened[s] ?? 0) > 0) : undefined;
      if (there) return there;
    }
    return null;
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
