/**
 * One instance's restarts and their backoff, as Marathon: the delay is `initial × factor^n` seconds,
 * capped, where n counts the restarts of containers that ran and the launches that failed before
 * any did. The two are counted apart (RunPod's and Marathon's restart count is only the first).
 */
import { backoffSeconds, type BackoffPolicy } from '../model/index.js';

/** A container that ran this long before dying starts its backoff afresh. */
export const BACKOFF_RESET_MS = 60_000;

export type RetryKind = 'restart' | 'launch';

export class RestartTracker {
  /** Restarts of containers that ran: Marathon's and RunPod's restart count. */
  restarts = 0;
  /** Launches in a row that failed before any container ran (a pull, a taken host port): retried, not restarts. */
  launchFailures = 0;
  /** The backoff ran out: the next pass restarts the exited containers. */
  restartDue = false;
  private lastStartMs = 0;
  private timer: NodeJS.Timeout | null = null;

  /** `onDue` queues the instance's next pass, which does the restart. */
  constructor(
    private readonly onDue: () => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** A retry is scheduled and has not come due. */
  get waiting(): boolean {
    return this.timer !== null;
  }

  delaySeconds(policy: BackoffPolicy): number {
    // A failed pull backs off as a crash does: the registry is not asked again every second.
    return backoffSeconds(policy, this.restarts + this.launchFailures);
  }

  /** Containers were started (or restarted in place) now. */
  started(): void {
    this.lastStartMs = this.now();
  }

  /** Every container of a launch was created and started. */
  launched(): void {
    this.launchFailures = 0;
    this.started();
  }

  /** An exit not seen before. */
  exitSeen(): void {
    if (this.lastStartMs && this.now() - this.lastStartMs > BACKOFF_RESET_MS) this.restarts = 0;
  }

  /**
   * After the delay the next pass of the instance's queue restarts it (or launches it again after a
   * failed launch): never beside another pass.
   */
  retryAfter(delayS: number, kind: RetryKind): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      if (kind === 'restart') this.restarts++;
      else this.launchFailures++;
      this.restartDue = true;
      this.onDue();
    }, delayS * 1000);
  }

  /** Drops a scheduled or due retry: what it was for has been replaced or acted on. */
  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.restartDue = false;
  }

  /** The instance was stopped: its next start counts from nothing. */
  reset(): void {
    this.clear();
    this.restarts = 0;
    this.launchFailures = 0;
  }

  /** The agent is closing: no retry may fire after it. */
  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}
