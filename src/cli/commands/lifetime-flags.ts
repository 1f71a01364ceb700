/**
 * The lifetime policy flags of `pod create`, `pod update` and `template create`, and the server's
 * defaults (`berth server --default-idle-stop ...`): durations as people write them (`90s`, `30m`,
 * `8h`, `7d`), made into the API's seconds. The ranges and signal names are the server's to check.
 * Also the lines `pod get` shows about them.
 */
import type { PodView } from '../../api/views.js';
import { describeIdle, formatDuration, type LifetimeInput } from '../../model/index.js';
import { UserError } from '../output.js';
import type { OptionSpecs } from './define.js';

export const LIFETIME_OPTIONS = {
  idleStop: { kind: 'string', flags: '--idle-stop <duration>', description: 'stop the pod after this long unused: no GPU load, SSH, terminal or proxy use (30m, 2h; off: none)' },
  idleGpuThreshold: { kind: 'number', flags: '--idle-gpu-threshold <percent>', description: 'for --idle-stop, a GPU at or above this utilization is in use (default 5)' },
  idleSignals: { kind: 'list', split: true, flags: '--idle-signals <signals>', description: 'for --idle-stop, what counts as use: gpu,ssh,terminal,proxy,port-forward (default all)' },
  maxRuntime: { kind: 'string', flags: '--max-runtime <duration>', description: 'stop the pod after running this long (8h; off: none)' },
  terminateAfterStopped: { kind: 'string', flags: '--terminate-after-stopped <duration>', description: 'terminate the pod, volume disk and all, once stopped this long (7d; off: none)' },
} as const satisfies OptionSpecs;

export interface LifetimeFlags {
  idleStop?: string | undefined;
  idleGpuThreshold?: number | undefined;
  idleSignals?: string[] | undefined;
  maxRuntime?: string | undefined;
  terminateAfterStopped?: string | undefined;
}

const UNITS: Record<string, number> = { s: 1, m: 60, min: 60, h: 3600, d: 86_400 };

/** `90s`, `30m`, `1.5h`, `7d` in seconds; `off` (or `none`, `0`) is null: the policy turned off. */
export function parseDuration(flag: string, text: string): number | null {
  const t = text.trim().toLowerCase();
  if (t === 'off' || t === 'none' || t === '0') return null;
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|min|h|d)$/.exec(t);
  if (!m) throw new UserError(`${flag} ${text}: give a duration with its unit (90s, 30m, 8h, 7d), or off`);
  return Number(m[1]) * UNITS[m[2]!]!;
}

/** The policies the flags set, for the request body; undefined when no flag was given. */
export function lifetimeFrom(flags: LifetimeFlags, prefix = '--'): LifetimeInput | undefined {
  const out: LifetimeInput = {};
  if (flags.idleStop !== undefined) {
    const idleSeconds = parseDuration(`${prefix}idle-stop`, flags.idleStop);
    out.idleStop = idleSeconds === null ? null : { idleSeconds };
  }
  if (flags.idleGpuThreshold !== undefined || flags.idleSignals?.length) {
    if (out.idleStop === null) throw new UserError(`${prefix}idle-gpu-threshold and ${prefix}idle-signals go with an idle stop, not with ${prefix}idle-stop off`);
    out.idleStop = {
      ...out.idleStop,
      ...(flags.idleGpuThreshold !== undefined ? { gpuThresholdPercent: flags.idleGpuThreshold } : {}),
      ...(flags.idleSignals?.length ? { signals: flags.idleSignals as NonNullable<LifetimeInput['idleStop']>['signals'] } : {}),
    };
  }
  if (flags.maxRuntime !== undefined) out.maxRuntimeSeconds = parseDuration(`${prefix}max-runtime`, flags.maxRuntime);
  if (flags.terminateAfterStopped !== undefined) out.terminateAfterStoppedSeconds = parseDuration(`${prefix}terminate-after-stopped`, flags.terminateAfterStopped);
  return Object.keys(out).length ? out : undefined;
}

/** A time to come, as `pod get` shows it: `2030-01-01T10:00:00Z (in 25 min)`. */
function until(iso: string, now: number): string {
  const s = Math.max(0, Math.round((Date.parse(iso) - now) / 1000));
  const words = s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : s < 172_800 ? `${Math.round(s / 360) / 10} h` : `${Math.round(s / 8640) / 10} d`;
  return `${iso} (in ${words})`;
}

/** `pod get`'s lines on the lifetime policies, when the pod has any or a keep-alive. */
export function lifetimeRows(pod: Pick<PodView, 'lifetime' | 'keepAliveUntil' | 'stopsAt' | 'stopReason' | 'terminatesAt' | 'terminateReason' | 'idleSince'>, now = Date.now()): [string, string | undefined][] {
  const l = pod.lifetime;
  const policies = l
    ? [
        ...(l.idleStop ? [`idle stop: ${describeIdle(l.idleStop)}`] : []),
        ...(l.maxRuntimeSeconds !== null ? [`max runtime ${formatDuration(l.maxRuntimeSeconds)}`] : []),
        ...(l.terminateAfterStoppedSeconds !== null ? [`terminate after stopped ${formatDuration(l.terminateAfterStoppedSeconds)}`] : []),
      ]
    : [];
  const keepAlive = pod.keepAliveUntil && Date.parse(pod.keepAliveUntil) > now ? until(pod.keepAliveUntil, now) : undefined;
  return [
    ['Lifetime', policies.length ? policies.join('; ') : undefined],
    ['Idle since', pod.idleSince ?? undefined],
    ['Stops', pod.stopsAt ? `${until(pod.stopsAt, now)}: ${pod.stopReason ?? ''}` : undefined],
    ['Terminates', pod.terminatesAt ? `${until(pod.terminatesAt, now)}: ${pod.terminateReason ?? ''}` : undefined],
    ['Kept alive until', keepAlive],
  ];
}
