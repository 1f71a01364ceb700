import type { Store } from '../store/types.js';
import type { DeploymentController } from './deployments.js';
import type { LifetimeController } from './lifetimes.js';
import { Mutex } from './mutex.js';
import type { NodeMonitor } from './node-monitor.js';
import type { PodService } from './pods.js';

interface Log {
  warn(obj: object, msg: string): void;
}

export interface LeaderWorkParts {
  store: Store;
  pods: PodService;
  deployments: DeploymentController;
  lifetimes: LifetimeController;
  nodeMonitor: NodeMonitor;
  logger: Log;
  /** Several servers: changes other servers wrote (a node joined, an instance gone) also start a placement pass. */
  multiServer: boolean;
}

/** A slow safety net for pods waiting for resources; joins and frees already start a pass. */
const PLACE_EVERY_MS = 10_000;
/** The change feed serves agents' watches and event-stream resumes; a million changes is days of history. */
const FEED_KEPT = 1_000_000;
const PRUNE_EVERY_MS = 10 * 60_000;
/**
 * A node joining or changing (heard from any server) starts a pass this soon; an instance change
 * (one an agent reported to a follower may have freed resources) at most once in INSTANCE_PASS_MS:
 * the leader places its own creates and starts at once, and a pass reads every instance.
 */
const NODE_PASS_MS = 50;
const INSTANCE_PASS_MS = 1000;

/**
 * What the leader does and a follower does not: the placement passes, the deployments' steps, the
 * node monitor, the lifetime policies and pruning the change feed. `set(true)` starts all of it
 * (and places at once what waits: a new leader's first act); `set(false)` stops it. Transitions run
 * one at a time, in order.
 */
export class LeaderWork {
  private leading = false;
  private readonly turning = new Mutex();
  private timers: NodeJS.Timeout[] = [];
  private unwatch: (() => void) | undefined;
  private soon: NodeJS.Timeout | undefined;
  private soonAt = 0;

  constructor(private readonly parts: LeaderWorkParts) {}

  set(leading: boolean): Promise<void> {
    return this.turning.run(async () => {
      if (leading === this.leading) return;
      this.leading = leading;
      if (leading) await this.start();
      else await this.stop();
    });
  }

  private place = (): void => {
    void this.parts.pods.placeWaiting().catch((err: unknown) => this.parts.logger.warn({ err }, 'placement pass failed'));
  };

  private async start(): Promise<void> {
    const { store, deployments, lifetimes, nodeMonitor, logger } = this.parts;
    this.place();
    await deployments.recover().catch((err: unknown) => logger.warn({ err }, 'taking over the deployments failed'));
    await lifetimes.start();
    nodeMonitor.start();
    const pruning = (): void => void store.pruneChanges(FEED_KEPT).catch((err: unknown) => logger.warn({ err }, 'pruning the change feed failed'));
    this.timers = [setInterval(this.place, PLACE_EVERY_MS), setInterval(pruning, PRUNE_EVERY_MS)];
    for (const t of this.timers) t.unref();
    if (this.parts.multiServer) {
      this.unwatch = store.onChange((c) => {
        if (c.kind !== 'node' && c.kind !== 'instance') return;
        const within = c.kind === 'node' ? NODE_PASS_MS : INSTANCE_PASS_MS;
        if (this.soon && this.soonAt <= performance.now() + within) return;
        clearTimeout(this.soon);
        this.soonAt = performance.now() + within;
        this.soon = setTimeout(() => {
          this.soon = undefined;
          this.place();
        }, within);
      });
    }
  }

  private async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.unwatch?.();
    this.unwatch = undefined;
    clearTimeout(this.soon);
    this.soon = undefined;
    this.parts.deployments.follow();
    await this.parts.lifetimes.close();
    await this.parts.nodeMonitor.close();
  }
}
