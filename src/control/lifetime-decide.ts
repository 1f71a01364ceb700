/**
 * The lifetime policies' decision, pure: from a pod's policies, its times and what the activity
 * tracker and the latest GPU samples say, when it will stop or be terminated and why, and whether
 * that is now. The controller (lifetimes.ts) gathers the facts and carries the verdict out.
 */
import { describeIdle, formatDuration, type ActivitySignal, type DesiredStatus, type IdleStopPolicy, type InstanceUsage, type LifetimePolicy, type PodStatus } from '../model/index.js';

export interface LifetimeFacts {
  policy: LifetimePolicy;
  desiredStatus: DesiredStatus;
  status: PodStatus;
  /** When the pod last became RUNNING (ms); null: it has not yet. */
  lastStartedAt: number | null;
  /** When it was last stopped (ms). */
  lastStoppedAt: number | null;
  keepAliveUntil: number | null;
  /** The last use on the idle policy's signals, a busy GPU's sample included (ms); null: none seen. */
  lastUseAt: number | null;
  /** A selected signal with a session open now: the pod is in use. */
  openSession: ActivitySignal | null;
  /** Since when uses are known (the controller's start): a pod counts as used then. */
  watchingSince: number;
  now: number;
}

export type LifetimePolicyName = 'idle' | 'max-runtime' | 'terminate-after-stopped';

export interface LifetimeVerdict {
  /** When a policy will stop the pod if nothing changes (a keep-alive included); null: none will. */
  stopsAt: number | null;
  /** Which policy, and its condition in words. */
  stopPolicy: LifetimePolicyName | null;
  stopReason: string | null;
  /** Since when the pod is idle by the idle policy's signals; null without one, or while a session is open. */
  idleSince: number | null;
  terminatesAt: number | null;
  terminateReason: string | null;
  /** What to do now, if anything: the reason is the status message and the event's text. */
  act: { action: 'stop' | 'terminate'; policy: LifetimePolicyName; note: string } | null;
}

const POLICY_WORDS: Record<LifetimePolicyName, string> = { idle: 'the idle policy', 'max-runtime': 'the maximum running time', 'terminate-after-stopped': 'the terminate-after-stopped policy' };

/** `stopped by the idle policy: GPU under 5% and no SSH … for 30 min`: the status message and event text. */
export const policyNote = (action: 'stop' | 'terminate', policy: LifetimePolicyName, reason: string): string => `${action === 'stop' ? 'stopped' : 'terminated'} by ${POLICY_WORDS[policy]}: ${reason}`;

/** The words of a policy, made once per spec read rather than once per sweep of every pod. */
const idleWords = new WeakMap<IdleStopPolicy, string>();
function idleReason(p: IdleStopPolicy): string {
  let w = idleWords.get(p);
  if (w === undefined) idleWords.set(p, (w = describeIdle(p)));
  return w;
}

export function decideLifetime(f: LifetimeFacts): LifetimeVerdict {
  const v: LifetimeVerdict = { stopsAt: null, stopPolicy: null, stopReason: null, idleSince: null, terminatesAt: null, terminateReason: null, act: null };
  const { policy } = f;
  // The running clocks tick only while the pod runs as asked: a pull or a wait for a GPU costs nothing.
  if (f.desiredStatus === 'RUNNING' && f.status === 'RUNNING' && f.lastStartedAt !== null) {
    const candidates: { at: number; policy: LifetimePolicyName; reason: string }[] = [];
    if (policy.maxRuntimeSeconds !== null) {
      candidates.push({ at: f.lastStartedAt + policy.maxRuntimeSeconds * 1000, policy: 'max-runtime', reason: `ran for ${formatDuration(policy.maxRuntimeSeconds)}` });
    }
    if (policy.idleStop && f.openSession === null) {
      v.idleSince = Math.max(f.lastStartedAt, f.watchingSince, f.lastUseAt ?? 0);
      candidates.push({ at: v.idleSince + policy.idleStop.idleSeconds * 1000, policy: 'idle', reason: idleReason(policy.idleStop) });
    }
    const first = candidates.sort((a, b) => a.at - b.at)[0];
    if (first) {
      v.stopsAt = Math.max(first.at, f.keepAliveUntil ?? 0);
      v.stopPolicy = first.policy;
      v.stopReason = first.reason;
      if (v.stopsAt <= f.now) v.act = { action: 'stop', policy: first.policy, note: policyNote('stop', first.policy, first.reason) };
    }
  }
  if (f.desiredStatus === 'EXITED' && policy.terminateAfterStoppedSeconds !== null && f.lastStoppedAt !== null) {
    v.terminatesAt = f.lastStoppedAt + policy.terminateAfterStoppedSeconds * 1000;
    v.terminateReason = `stopped for ${formatDuration(policy.terminateAfterStoppedSeconds)}`;
    if (v.terminatesAt <= f.now) v.act = { action: 'terminate', policy: 'terminate-after-stopped', note: policyNote('terminate', 'terminate-after-stopped', v.terminateReason) };
  }
  return v;
}

/**
 * Whether the latest samples show a GPU of the pod at or above `thresholdPercent`. Simulated figures
 * and unknown utilization never count as busy: a declared inventory has no real load to report, and
 * a pod whose node reports no figures is judged by its other signals alone.
 */
export function gpuBusy(samples: readonly { usage: InstanceUsage }[], thresholdPercent: number): { busy: boolean; at: number | null } {
  let at: number | null = null;
  for (const { usage } of samples) {
    for (const g of usage.gpus) {
      if (g.simulated || g.utilizationPercent === null || g.utilizationPercent < thresholdPercent) continue;
      const t = Date.parse(usage.at);
      if (Number.isFinite(t) && (at === null || t > at)) at = t;
    }
  }
  return { busy: at !== null, at };
}
