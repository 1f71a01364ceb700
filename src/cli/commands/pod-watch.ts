/**
 * Waiting for a pod to settle after create or an action, with progress on stderr. Follows the
 * server's pod events (SSE) and falls back to polling the pod every 250 ms when the stream is not
 * available or breaks.
 */
import type { PodView } from '../../api/views.js';
import type { BerthClient } from '../client.js';
import { bytes, UserError, type Output } from '../output.js';

export type { PodView };

const POLL_MS = 250;

export interface WatchOptions {
  /** True once the wait is over. */
  done: (pod: PodView) => boolean;
  /** Give up after this long; absent: wait as long as it takes. */
  timeoutMs?: number;
  onUpdate?: (pod: PodView) => void;
}

/** Resolves to the first view of the pod that `done` accepts. */
export async function watchPod(client: BerthClient, initial: PodView, opts: WatchOptions): Promise<PodView> {
  opts.onUpdate?.(initial);
  if (opts.done(initial)) return initial;
  const ac = new AbortController();
  const timer = opts.timeoutMs !== undefined ? setTimeout(() => ac.abort(new UserError(`pod ${initial.id} did not settle within ${opts.timeoutMs! / 1000} s; it keeps going (see \`berth pod get ${initial.id}\`)`)), opts.timeoutMs) : undefined;
  let revision = initial.revision;
  const seen = (pod: PodView): boolean => {
    // An event's view is read when the server sends it, which can be after our own read of the pod
    // was answered: a view older than one already seen is stale (it showed statuses twice).
    if (typeof pod.revision === 'number' && typeof revision === 'number' && pod.revision < revision) return false;
    revision = pod.revision;
    opts.onUpdate?.(pod);
    return opts.done(pod);
  };
  // The timeout wins even over a request that does not heed the signal.
  const timedOut = new Promise<never>((_, reject) => ac.signal.addEventListener('abort', () => reject(ac.signal.reason), { once: true }));
  timedOut.catch(() => undefined);
  const follow = async (): Promise<PodView> => (await followEvents(client, initial.id, seen, ac.signal)) ?? (await poll(client, initial.id, seen, ac.signal));
  try {
    return await Promise.race([follow(), timedOut]);
  } catch (err) {
    if (ac.signal.aborted && ac.signal.reason instanceof UserError) throw ac.signal.reason;
    throw err;
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}

/** The settled pod, or undefined when the event stream could not be used (then the caller polls). */
async function followEvents(client: BerthClient, id: string, seen: (p: PodView) => boolean, outer: AbortSignal): Promise<PodView | undefined> {
  const ac = new AbortController();
  const stop = (): void => ac.abort(outer.reason);
  outer.addEventListener('abort', stop, { once: true });
  try {
    let events: AsyncGenerator<{ event: string; data: string }>;
    try {
      events = await client.stream('/events', {}, ac.signal);
    } catch (err) {
      if (outer.aborted) throw err;
      return undefined;
    }
    // The server subscribes before it answers, so a read now misses nothing between create and here.
    const now = await client.get<PodView>(`/pods/${id}`, undefined, ac.signal);
    if (seen(now)) return now;
    for await (const e of events) {
      if (e.event !== 'pod') continue;
      let pod: PodView;
      try {
        pod = JSON.parse(e.data) as PodView;
      } catch {
        continue;
      }
      if (pod.id === id && seen(pod)) return pod;
    }
    if (outer.aborted) throw outer.reason;
    return undefined;
  } catch (err) {
    if (outer.aborted) throw outer.reason;
    // A broken stream is no reason to fail the wait: polling takes over.
    if (err instanceof UserError && !('status' in err)) return undefined;
    throw err;
  } finally {
    outer.removeEventListener('abort', stop);
    ac.abort();
  }
}

async function poll(client: BerthClient, id: string, seen: (p: PodView) => boolean, signal: AbortSignal): Promise<PodView> {
  for (;;) {
    if (signal.aborted) throw signal.reason;
    const pod = await client.get<PodView>(`/pods/${id}`, undefined, signal);
    if (seen(pod)) return pod;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** The statuses a wait for "running" ends at: it runs, or it will not without help. */
export const SETTLED = new Set(['RUNNING', 'EXITED', 'ERROR', 'TERMINATED']);

/** Instance states an agent leaves alone until told otherwise (or until its restart policy acts). */
const SETTLED_INSTANCE = new Set(['running', 'exited', 'failed']);

/**
 * The wait after start, restart, reset and update: done once the pod's status has settled, every
 * placed instance that should run reports the spec version and the reset and restart generations it
 * was last given, in a settled state, and the status agrees with those reports. The status alone
 * does not say it: it is recomputed after each report, so a view right after a reset can still say
 * RUNNING while the new containers are being created (and `pod exec` then finds it STARTING).
 */
export function newGenerationSettled(): (pod: PodView) => boolean {
  // An instance whose launch failed before any container existed reports no spec version; it counts
  // once the pod has been seen on its way (else an ERROR from before an update would end the wait).
  let moved = false;
  return (p) => {
    const placed = p.instances.filter((i) => i.goal === 'running' && i.nodeId !== null);
    moved ||= !SETTLED.has(p.status) || placed.some((i) => !SETTLED_INSTANCE.has(i.state));
    if (p.status === 'TERMINATED') return true;
    if (!SETTLED.has(p.status)) return false;
    const current = placed.every(
      (i) =>
        SETTLED_INSTANCE.has(i.state) &&
        i.observedResetGeneration === i.resetGeneration &&
        i.observedRestartGeneration === i.restartGeneration &&
        (i.observedSpecVersion === i.specVersion || (i.observedSpecVersion === null && moved)),
    );
    const agrees = p.instances.length === 0 || (p.status === 'RUNNING') === p.instances.some((i) => i.state === 'running');
    return current && agrees;
  };
}

/**
 * Status changes and pull progress on stderr: one line per change, and on a terminal one
 * rewritten progress line while an image is pulled.
 */
export class PodProgress {
  private status: string | undefined;
  private message: string | null | undefined;
  private pullLine = false;
  private lastPullNote = 0;

  constructor(private readonly out: Output) {}

  update(pod: PodView): void {
    const pull = pod.pull;
    const changed = pod.status !== this.status || (pod.statusMessage !== this.message && !pull);
    if (changed) {
      this.clearPullLine();
      this.out.note(`${pod.status}${pod.statusMessage ? `: ${pod.statusMessage}` : ''}`);
      this.status = pod.status;
      this.message = pod.statusMessage;
    }
    if (pull && pull.total > 0) this.showPull(pull);
    else this.clearPullLine();
  }

  finish(): void {
    this.clearPullLine();
  }

  private showPull(pull: { image: string; current: number; total: number }): void {
    const pct = Math.min(100, Math.floor((pull.current / pull.total) * 100));
    const text = `pulling ${pull.image}: ${pct}% (${bytes(pull.current)} of ${bytes(pull.total)})`;
    if (this.out.stderrIsTty) {
      this.out.streams.stderr.write(`\r\x1b[K${text}`);
      this.pullLine = true;
    } else if (Date.now() - this.lastPullNote >= 2000) {
      this.lastPullNote = Date.now();
      this.out.note(text);
    }
  }

  private clearPullLine(): void {
    if (!this.pullLine) return;
    this.out.streams.stderr.write('\r\x1b[K');
    this.pullLine = false;
  }
}
