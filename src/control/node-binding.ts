/**
 * Which pods may leave their node. One rule, used by the node monitor (a lost node), drain and the
 * views: extend it here and every caller follows.
 */
import type { PodSpec } from '../model/index.js';

/**
 * Why an instance of the spec cannot be moved off its node, or null when it can: what it keeps
 * lives on the node's own disk and would be missing anywhere else. `networkVolumeHeld`: the pod's
 * network volume is held by its node (no shared storage in its data center; `volumeHeldByNode` in
 * volume-backing.ts, which `PodService.networkVolumeHeld` asks).
 */
export function boundToNode(spec: PodSpec, networkVolumeHeld = false): string | null {
  if (spec.volumeGb > 0 && !spec.networkVolumeId) return `its volume disk (${spec.volumeGb} GB at ${spec.volumeMountPath}) lives on the node`;
  if (spec.networkVolumeId && networkVolumeHeld) return `its network volume ${spec.networkVolumeId} lives on the node (its data center has no shared storage)`;
  const persistent = spec.volumes.filter((v) => v.kind === 'persistent').map((v) => v.name);
  if (persistent.length > 0) return `its persistent volume${persistent.length === 1 ? '' : 's'} ${persistent.join(', ')} live${persistent.length === 1 ? 's' : ''} on the node`;
  return null;
}

/** How long an instance on a NOT_READY node waits before it is replaced elsewhere. @default 60 s for pods without a Marathon unreachable strategy */
export const DEFAULT_UNREACHABLE_AFTER_MS = 60_000;

/**
 * Milliseconds after its node became NOT_READY that an instance of the spec is replaced elsewhere,
 * or null when it never is (Marathon's `unreachableStrategy: "disabled"`). Marathon pods say it in
 * `scheduling.unreachableStrategy.inactiveAfterSeconds`; others get `defaultMs`.
 */
export function unreachableAfterMs(spec: PodSpec, defaultMs = DEFAULT_UNREACHABLE_AFTER_MS): number | null {
  const scheduling = spec.marathon?.definition?.scheduling as { unreachableStrategy?: unknown } | undefined;
  const strategy = scheduling?.unreachableStrategy;
  if (strategy === 'disabled') return null;
  if (strategy && typeof strategy === 'object' && typeof (strategy as { inactiveAfterSeconds?: unknown }).inactiveAfterSeconds === 'number') {
    return (strategy as { inactiveAfterSeconds: number }).inactiveAfterSeconds * 1000;
  }
  return defaultMs;
}
