/**
 * The lifetime controller: carries out the pods' idle-stop, maximum-running-time and
 * terminate-after-stopped policies. It keeps the pods that have a policy in memory, refreshed from
 * the store's change feed (only the pods that changed are read again), and sweeps them every couple
 * of seconds: the decision is `decideLifetime`, the action the same `PodService.act` as the owner's,
 * with the reason kept as the pod's status message and told to listeners (the event streams).
 */
import { BerthError, invalid, type InstanceUsage, type PodAction, type PodId } from '../model/index.js';
import type { PodDetail, Store } from '../store/types.js';
import { ActivityTracker } from './activity.js';
import type { Caller } from './caller.js';
import { decideLifetime, gpuBusy, type LifetimePolicyName, type LifetimeVerdict } from './lifetime-decide.js';
import type { PodService } from './pods.js';

export interface LifetimeControllerOptions {
  /** How often the pods with a policy are judged. @default 2000 */
  sweepMs?: number;
  /** The latest GPU samples (the `gpu` signal; the usage service's `latestOf`); absent: GPU figures are unknown, never busy. */
  usage?: { latestOf(podId: PodId): ReadonlyArray<{ usage: InstanceUsage }> };
  logger?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  clock?: () => number;
}

/** A policy acted on a pod. */
export interface LifetimeEvent {
  podId: PodId;
  owner: string;
  action: 'stop' | 'terminate';
  policy: LifetimePolicyName;
  /** The status message the pod now has: `stopped by the idle policy: …`. */
  message: string;
  at: string;
}

/** What every view of a pod shows about its lifetime (ISO times). */
export interface LifetimeView {
  stopsAt: string | null;
  stopReason: string | null;
  idleSince: string | null;
  terminatesAt: string | null;
  terminateReason: string | null;
  keepAliveUntil: string | null;
}

/** The most a keep-alive may ask for at once. */
export const MAX_KEEP_ALIVE_HOURS = 24 * 365;
/** A policy whose action failed (a node gone, a status that forbids it) is tried again after this long. */
const RETRY_MS = 60_000;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const ms = (t: string | null): number | null => (t === null ? null : Date.parse(t));

/** A pod's times parsed once per read of it (a detail never changes), not once per sweep. */
interface Times {
  lastStartedAt: number | null;
  lastStoppedAt: number | null;
  keepAliveUntil: number | null;
}
const times = new WeakMap<PodDetail, Times>();
function timesOf(d: PodDetail): Times {
  let t = times.get(d);
  if (!t) times.set(d, (t = { lastStartedAt: ms(d.pod.lastStartedAt), lastStoppedAt: ms(d.pod.lastStoppedAt), keepAliveUntil: ms(d.pod.keepAliveUntil) }));
  return t;
}
const podIdOf = (instanceId: string): PodId => instanceId.replace(/-\d+$/, '') as PodId;

export class LifetimeController {
  readonly activity: ActivityTracker;
  /** Pods with a lifetime policy, not terminated: all a sweep looks at. */
  private readonly watched = new Map<PodId, PodDetail>();
  private readonly dirty = new Set<PodId>();
  private readonly retryAt = new Map<PodId, number>();
  private readonly listeners = new Set<(e: LifetimeEvent) => void>();
  private readonly watchingSince: number;
  private readonly clock: () => number;
  private unwatch: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private loaded = false;

  constructor(
    private readonly store: Store,
    private readonly pods: PodService,
    private readonly opts: LifetimeControllerOptions = {},
  ) {
    this.clock = opts.clock ?? Date.now;
    this.activity = new ActivityTracker(this.clock);
    this.watchingSince = this.clock();
  }

  /**
   * Follows the change feed and sweeps; the first sweep reads every pod once (2 s for 10,000 on
   * SQLite: not something a server's start should wait for), the later ones only those that changed.
   */
  async start(): Promise<void> {
    // Started again (a server that leads again): what changed meanwhile is read anew.
    this.loaded = false;
    this.unwatch = this.store.onChange((c) => {
      if (c.kind === 'pod') this.dirty.add(c.id as PodId);
      else if (c.kind === 'instance') this.dirty.add(podIdOf(c.id));
    });
    this.timer = setInterval(() => void this.sweep(), this.opts.sweepMs ?? 2000);
    this.timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.unwatch?.();
    await this.sweeping;
  }

  /** Tells this server's listeners (the event streams) of `e`: one of this controller's, or the leader's, relayed (cluster-bus.ts). */
  relay(e: LifetimeEvent): void {
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch (err) {
        this.opts.logger?.warn({ err }, 'a lifetime event listener failed');
      }
    }
  }

  onEvent(fn: (e: LifetimeEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** When the pod will stop or be terminated, and why, as of now. */
  view(d: PodDetail): LifetimeView {
    const keepAliveUntil = d.pod.keepAliveUntil;
    if (!d.spec.lifetime || d.pod.desiredStatus === 'TERMINATED') return { stopsAt: null, stopReason: null, idleSince: null, terminatesAt: null, terminateReason: null, keepAliveUntil };
    const v = this.verdict(d, this.clock());
    return { stopsAt: iso(v.stopsAt), stopReason: v.stopReason, idleSince: iso(v.idleSince), terminatesAt: iso(v.terminatesAt), terminateReason: v.terminateReason, keepAliveUntil };
  }

  /** Keeps the pod from the idle stop and the maximum running time for `hours` from now (0: no longer). */
  async keepAlive(caller: Caller, id: string, hours: unknown): Promise<PodDetail> {
    if (typeof hours !== 'number' || !Number.isFinite(hours) || hours < 0 || hours > MAX_KEEP_ALIVE_HOURS) {
      throw invalid([{ path: '/hours', message: `must be a number of hours from 0 (no keep-alive) to ${MAX_KEEP_ALIVE_HOURS}; fractions allowed` }]);
    }
    const d = await this.pods.get(caller, id);
    if (d.pod.desiredStatus === 'TERMINATED') throw new BerthError('ACTION_NOT_ALLOWED', `pod ${id} is terminated`, { extra: { podStatus: d.pod.status, allowedActions: [] } });
    await this.store.updatePod(d.pod.id, { keepAliveUntil: hours === 0 ? null : iso(this.clock() + hours * 3_600_000) });
    return (await this.store.getPod(d.pod.id))!;
  }

  /** One pass: the changed pods read again, then every watched pod judged. */
  sweep(): Promise<void> {
    this.sweeping ??= this.pass()
      .catch((err: unknown) => this.opts.logger?.warn({ err }, 'lifetime sweep failed'))
      .finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  private async pass(): Promise<void> {
    if (!this.loaded) {
      this.dirty.clear();
      for (const d of await this.store.listPods({})) this.keep(d);
      this.loaded = true;
    } else if (this.dirty.size > 0) {
      const ids = [...this.dirty];
      this.dirty.clear();
      const found = new Set<PodId>();
      for (const d of await this.store.listPods({ ids, includeTerminated: true })) {
        found.add(d.pod.id);
        this.keep(d);
      }
      for (const id of ids) if (!found.has(id)) this.drop(id);
    }
    const now = this.clock();
    for (const d of [...this.watched.values()]) {
      const v = this.verdict(d, now);
      if (!v.act || (this.retryAt.get(d.pod.id) ?? 0) > now) continue;
      await this.carryOut(d, v.act.action, v.act.policy, v.act.note);
    }
  }

  private verdict(d: PodDetail, now: number): LifetimeVerdict {
    const policy = d.spec.lifetime!;
    const signals = policy.idleStop?.signals ?? [];
    if (policy.idleStop && signals.includes('gpu') && this.opts.usage) {
      const g = gpuBusy(this.opts.usage.latestOf(d.pod.id), policy.idleStop.gpuThresholdPercent);
      if (g.at !== null) this.activity.touch(d.pod.id, 'gpu', g.at);
    }
    const t = timesOf(d);
    return decideLifetime({
      policy,
      desiredStatus: d.pod.desiredStatus,
      status: d.pod.status,
      lastStartedAt: t.lastStartedAt,
      lastStoppedAt: t.lastStoppedAt,
      keepAliveUntil: t.keepAliveUntil,
      lastUseAt: this.activity.lastUse(d.pod.id, signals),
      openSession: this.activity.openSession(d.pod.id, signals),
      watchingSince: this.watchingSince,
      now,
    });
  }

  private async carryOut(d: PodDetail, action: PodAction & ('stop' | 'terminate'), policy: LifetimePolicyName, note: string): Promise<void> {
    const caller: Caller = { owner: d.pod.owner, admin: true };
    try {
      const after = await this.pods.act(caller, d.pod.id, action, {}, note);
      this.keep(after);
      this.retryAt.delete(d.pod.id);
      this.opts.logger?.info({ pod: d.pod.id, action, policy }, note);
      const e: LifetimeEvent = { podId: d.pod.id, owner: d.pod.owner, action, policy, message: note, at: new Date(this.clock()).toISOString() };
      this.relay(e);
    } catch (err) {
      // Read again before the next try: the pod may have moved on (stopped by its owner meanwhile).
      this.retryAt.set(d.pod.id, this.clock() + RETRY_MS);
      this.dirty.add(d.pod.id);
      this.opts.logger?.warn({ err, pod: d.pod.id, action, policy }, 'a lifetime policy could not act');
    }
  }

  private keep(d: PodDetail): void {
    if (d.pod.desiredStatus === 'TERMINATED') return this.drop(d.pod.id);
    // Uses of a pod without a policy are still tracked: one given a policy later is judged on them.
    if (d.spec.lifetime) this.watched.set(d.pod.id, d);
    else this.watched.delete(d.pod.id);
  }

  /** A terminated or deleted pod: nothing of it is kept. */
  private drop(id: PodId): void {
    this.watched.delete(id);
    this.retryAt.delete(id);
    this.activity.forget(id);
  }
}
