/**
 * Pulling an image with progress: Docker's per-layer pull stream summed into one figure, reported at
 * most every 250 ms, and a failed pull worded as `pullFailureMessage` says.
 */

import { BerthError } from '../model/errors.js';
import { daemonMessage, isAbort, isUnreachable, unreachableFrom, type Daemon } from './daemon.js';
import { pullFailureMessage } from './images.js';
import type { PullProgressEvent, RegistryCredentials } from './types.js';

/** How often pull progress is reported at most. */
const PROGRESS_INTERVAL_MS = 250;

interface PulledLayer {
  current: number;
  total: number;
}

/** Sums per-layer byte counts from the pull stream into one figure. */
class PullProgress {
  private readonly layers = new Map<string, PulledLayer>();
  status = '';
  error: string | null = null;

  update(msg: unknown): void {
    if (typeof msg !== 'object' || msg === null) return;
    if ('error' in msg) {
      // Pull failures after the response started arrive in the body, the HTTP status being 200.
      const detail = 'errorDetail' in msg && typeof msg.errorDetail === 'object' && msg.errorDetail !== null && 'message' in msg.errorDetail ? msg.errorDetail.message : undefined;
      this.error ??= String(typeof detail === 'string' && detail ? detail : msg.error);
      return;
    }
    const status = 'status' in msg && typeof msg.status === 'string' ? msg.status : '';
    if (status) this.status = status;
    const id = 'id' in msg && typeof msg.id === 'string' ? msg.id : undefined;
    // Messages without a layer id are the summary lines (`Pulling from`, `Digest:`, `Status:`).
    if (!id || status.startsWith('Pulling from')) return;
    const layer = this.layers.get(id) ?? { current: 0, total: 0 };
    this.layers.set(id, layer);
    const detail = 'progressDetail' in msg && typeof msg.progressDetail === 'object' && msg.progressDetail !== null ? msg.progressDetail : {};
    const current = 'current' in detail && typeof detail.current === 'number' ? detail.current : undefined;
    const total = 'total' in detail && typeof detail.total === 'number' ? detail.total : undefined;
    if (status === 'Downloading' && current !== undefined && total !== undefined && total > 0) {
      layer.current = Math.min(current, total);
      layer.total = total;
    } else if (['Verifying Checksum', 'Download complete', 'Extracting', 'Pull complete', 'Already exists'].includes(status)) {
      layer.current = layer.total;
    }
  }

  snapshot(done: boolean): PullProgressEvent {
    let current = 0;
    let total = 0;
    for (const l of this.layers.values()) {
      current += l.current;
      total += l.total;
    }
    return { current: done ? total : current, total, status: this.status };
  }
}

export async function pullImage(daemon: Daemon, ref: string, auth: RegistryCredentials | null, onProgress: (p: PullProgressEvent) => void, signal?: AbortSignal): Promise<void> {
  let stream: NodeJS.ReadableStream;
  try {
    stream = await daemon.docker.pull(ref, { ...(auth ? { authconfig: auth } : {}), ...(signal ? { abortSignal: signal } : {}) });
  } catch (err) {
    if (isAbort(err)) throw err;
    if (isUnreachable(err)) throw unreachableFrom(daemon, err);
    throw new BerthError('RUNTIME', pullFailureMessage(ref, daemonMessage(err)), { cause: err });
  }
  const progress = new PullProgress();
  let lastReport = 0;
  await new Promise<void>((resolve, reject) => {
    daemon.docker.modem.followProgress(
      stream,
      (err) => {
        if (err) {
          if (isAbort(err) || signal?.aborted) reject(signal?.reason ?? err);
          else reject(new BerthError('RUNTIME', pullFailureMessage(ref, daemonMessage(err)), { cause: err }));
        } else if (signal?.aborted) {
          // An abort can close the body before it errors; the pull did not finish either way.
          reject(signal.reason);
        } else if (progress.error !== null) {
          reject(new BerthError('RUNTIME', pullFailureMessage(ref, progress.error)));
        } else {
          resolve();
        }
      },
      (msg: unknown) => {
        progress.update(msg);
        const now = Date.now();
        if (now - lastReport >= PROGRESS_INTERVAL_MS && progress.error === null) {
          lastReport = now;
          onProgress(progress.snapshot(false));
        }
      },
    );
  });
  onProgress(progress.snapshot(true));
}
