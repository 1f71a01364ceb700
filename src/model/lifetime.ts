/**
 * A pod's lifetime policies: stop it when idle, stop it after a maximum running time, terminate it
 * after it has been stopped for long enough. Each is optional and none is on unless the pod, its
 * template or the server's default says so; nothing is deleted without `terminateAfterStoppedSeconds`.
 * Durations are seconds, as every duration of the API (`intervalSeconds`, `killGracePeriodSeconds`),
 * fractions allowed; the CLI takes `30m`, `8h`, `7d`.
 */
import type { Problem } from './errors.js';

/**
 * What counts as use of a pod. `gpu`: a GPU of the pod at or above the threshold in the latest
 * sample (simulated or missing figures never count as busy); `ssh`: an SSH gateway connection
 * (shells, commands, SFTP, forwards) while it is open; `terminal`: a web terminal while it is open,
 * and each command run through the API; `proxy`: each HTTP request or WebSocket routed by the
 * proxy; `port-forward`: an API tunnel (`berth port-forward`) while it is open.
 */
export const ACTIVITY_SIGNALS = ['gpu', 'ssh', 'terminal', 'proxy', 'port-forward'] as const;
export type ActivitySignal = (typeof ACTIVITY_SIGNALS)[number];

export interface IdleStopPolicy {
  /** Stop after this long with no use on any of `signals`. */
  idleSeconds: number;
  /** The `gpu` signal: a GPU at or above this utilization (percent) is busy. @default 5 */
  gpuThresholdPercent: number;
  /** The signals that count as use. @default all of ACTIVITY_SIGNALS */
  signals: ActivitySignal[];
}

/** The compiled policies of a pod (`spec.lifetime`); absent from a spec when none is on. */
export interface LifetimePolicy {
  idleStop: IdleStopPolicy | null;
  /** Stop after running this long (since the pod last became RUNNING). */
  maxRuntimeSeconds: number | null;
  /** Terminate (volume disk deleted) after being stopped this long. */
  terminateAfterStoppedSeconds: number | null;
}

/** The input form: every field optional; `null` turns a policy off over a template's or the server's. */
export interface LifetimeInput {
  idleStop?: Partial<IdleStopPolicy> | null;
  maxRuntimeSeconds?: number | null;
  terminateAfterStoppedSeconds?: number | null;
}

export const LIFETIME_DEFAULTS = {
  gpuThresholdPercent: 5,
  signals: [...ACTIVITY_SIGNALS] as ActivitySignal[],
};

const DAY = 86_400;
const LIMITS = { idleSeconds: 30 * DAY, maxRuntimeSeconds: 365 * DAY, terminateAfterStoppedSeconds: 3650 * DAY };

/**
 * Policies merged per policy: `over`'s win where given, an idle stop's fields merge one by one, and
 * `null` (the whole of `over`, or one policy) turns off what is under it. Used for template →
 * request, server default → request and pod → PATCH.
 */
export function mergeLifetime(under: LifetimeInput | null | undefined, over: LifetimeInput | null | undefined): LifetimeInput | null | undefined {
  if (over === undefined) return under;
  if (over === null || typeof over !== 'object' || Array.isArray(over)) return over;
  const base = under ?? {};
  const out: LifetimeInput = { ...base };
  if (over.idleStop !== undefined) {
    out.idleStop = over.idleStop === null || base.idleStop === null || base.idleStop === undefined || typeof over.idleStop !== 'object' ? over.idleStop : { ...base.idleStop, ...withoutUndefined(over.idleStop) };
  }
  if (over.maxRuntimeSeconds !== undefined) out.maxRuntimeSeconds = over.maxRuntimeSeconds;
  if (over.terminateAfterStoppedSeconds !== undefined) out.terminateAfterStoppedSeconds = over.terminateAfterStoppedSeconds;
  return out;
}

const withoutUndefined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks the input at `path` (`/lifetime`), adding a problem per field; the policies, or undefined
 * when none is on (a spec then reads as one written before lifetimes were).
 */
export function compileLifetime(v: unknown, problems: Problem[], path = '/lifetime'): LifetimePolicy | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isRecord(v)) {
    problems.push({ path, message: 'must be an object with idleStop, maxRuntimeSeconds or terminateAfterStoppedSeconds' });
    return undefined;
  }
  for (const k of Object.keys(v)) {
    if (!['idleStop', 'maxRuntimeSeconds', 'terminateAfterStoppedSeconds'].includes(k)) problems.push({ path: `${path}/${k}`, message: 'is not a lifetime policy: idleStop, maxRuntimeSeconds or terminateAfterStoppedSeconds' });
  }
  const seconds = (key: keyof typeof LIMITS, x: unknown, at: string): number | null => {
    if (x === undefined || x === null) return null;
    if (typeof x !== 'number' || !Number.isFinite(x)) problems.push({ path: at, message: 'must be a number of seconds (fractions allowed)' });
    else if (x <= 0 || x > LIMITS[key]) problems.push({ path: at, message: `must be more than 0 and at most ${LIMITS[key]} (${formatDuration(LIMITS[key])})` });
    else return x;
    return null;
  };
  const idleStop = compileIdleStop(v.idleStop, problems, `${path}/idleStop`, (x, at) => seconds('idleSeconds', x, at));
  const maxRuntimeSeconds = seconds('maxRuntimeSeconds', v.maxRuntimeSeconds, `${path}/maxRuntimeSeconds`);
  const terminateAfterStoppedSeconds = seconds('terminateAfterStoppedSeconds', v.terminateAfterStoppedSeconds, `${path}/terminateAfterStoppedSeconds`);
  if (!idleStop && maxRuntimeSeconds === null && terminateAfterStoppedSeconds === null) return undefined;
  return { idleStop, maxRuntimeSeconds, terminateAfterStoppedSeconds };
}

function compileIdleStop(v: unknown, problems: Problem[], path: string, seconds: (x: unknown, at: string) => number | null): IdleStopPolicy | null {
  if (v === undefined || v === null) return null;
  if (!isRecord(v)) {
    problems.push({ path, message: 'must be an object: {"idleSeconds": 1800, "gpuThresholdPercent": 5, "signals": ["gpu","ssh","terminal","proxy","port-forward"]}' });
    return null;
  }
  for (const k of Object.keys(v)) if (!['idleSeconds', 'gpuThresholdPercent', 'signals'].includes(k)) problems.push({ path: `${path}/${k}`, message: 'is not a field of idleStop: idleSeconds, gpuThresholdPercent or signals' });
  if (v.idleSeconds === undefined || v.idleSeconds === null) problems.push({ path: `${path}/idleSeconds`, message: 'is required: how long without use before the pod is stopped, in seconds' });
  const idleSeconds = seconds(v.idleSeconds, `${path}/idleSeconds`);
  const threshold = v.gpuThresholdPercent ?? LIFETIME_DEFAULTS.gpuThresholdPercent;
  if (typeof threshold !== 'number' || !Number.isFinite(threshold) || threshold <= 0 || threshold > 100) problems.push({ path: `${path}/gpuThresholdPercent`, message: 'must be a percentage above 0 and at most 100' });
  const signals = v.signals ?? LIFETIME_DEFAULTS.signals;
  let ok = true;
  if (!Array.isArray(signals) || signals.length === 0) {
    problems.push({ path: `${path}/signals`, message: `must list at least one of ${ACTIVITY_SIGNALS.join(', ')}` });
    ok = false;
  } else {
    signals.forEach((s: unknown, i) => {
      if (!ACTIVITY_SIGNALS.includes(s as ActivitySignal)) problems.push({ path: `${path}/signals(${i})`, message: `must be one of ${ACTIVITY_SIGNALS.join(', ')}` });
      else if (signals.indexOf(s) !== i) problems.push({ path: `${path}/signals(${i})`, message: `${String(s)} is listed twice` });
      else return;
      ok = false;
    });
  }
  if (idleSeconds === null || !ok) return null;
  // Kept in the catalogue's order, so equal policies compare equal whatever order they were given in.
  return { idleSeconds, gpuThresholdPercent: threshold as number, signals: ACTIVITY_SIGNALS.filter((s) => (signals as string[]).includes(s)) };
}

/** `30 min`, `8 h`, `7 d`, `90 s`: the largest unit that divides the duration, else seconds. */
export function formatDuration(seconds: number): string {
  if (seconds >= DAY && seconds % DAY === 0) return `${seconds / DAY} d`;
  if (seconds >= 3600 && seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60} min`;
  return `${Math.round(seconds * 1000) / 1000} s`;
}

const SIGNAL_WORDS: Record<Exclude<ActivitySignal, 'gpu'>, string> = { ssh: 'SSH', terminal: 'terminal', proxy: 'proxy', 'port-forward': 'port-forward' };

/** The idle condition in words: `GPU under 5% and no SSH, terminal or proxy activity for 30 min`. */
export function describeIdle(p: IdleStopPolicy): string {
  const others = p.signals.filter((s): s is Exclude<ActivitySignal, 'gpu'> => s !== 'gpu').map((s) => SIGNAL_WORDS[s]);
  const list = others.length <= 1 ? others.join('') : `${others.slice(0, -1).join(', ')} or ${others[others.length - 1]}`;
  const parts: string[] = [];
  if (p.signals.includes('gpu')) parts.push(`GPU under ${p.gpuThresholdPercent}%`);
  if (list) parts.push(`no ${list} activity`);
  return `${parts.join(' and ')} for ${formatDuration(p.idleSeconds)}`;
}

/** The policies back in input form (for an update to merge over). */
export const lifetimeToInput = (p: LifetimePolicy): LifetimeInput => ({
  idleStop: p.idleStop ? { ...p.idleStop, signals: [...p.idleStop.signals] } : null,
  maxRuntimeSeconds: p.maxRuntimeSeconds,
  terminateAfterStoppedSeconds: p.terminateAfterStoppedSeconds,
});
