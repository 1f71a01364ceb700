/**
 * Host work kept off the event loop: reading containers' cgroup files and forking programs
 * (iptables, nvidia-smi). Both block the calling thread: a fork until the child has exec'd, a
 * cgroup read likely on the kernel's cgroup locks, which container start-up takes. On a machine
 * busy starting containers each took 50–120 ms of the server's main thread at a time, the API's
 * requests waiting behind (docs/benchmarks.md, burst). So one worker thread does them, started on
 * first need; the event loop only posts a job and takes its answer.
 */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ContainerStats } from './types.js';

/** What the worker does: host-worker-thread.ts. */
export type HostJob =
  | { kind: 'cgroup'; pid: number; containerId: string; hostMemoryBytes: number }
  | { kind: 'exec'; file: string; args: string[]; timeoutMs?: number };

export interface HostAnswer {
  seq: number;
  ok: boolean;
  result?: unknown;
  /** A failure's message, and an exec's exit code when it ran and failed. */
  error?: { message: string; code?: number | string };
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

/** One worker thread and the jobs it has out. */
class HostWorker {
  private readonly worker = new Worker(fileURLToPath(new URL('./host-worker-thread.js', import.meta.url)));
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private dead: Error | undefined;

  constructor(onGone: (w: HostWorker) => void) {
    // Held open only while a job is out: an idle worker never keeps the process alive.
    this.worker.unref();
    this.worker.on('message', (answer: HostAnswer) => {
      const p = this.pending.get(answer.seq);
      if (!p) return;
      this.pending.delete(answer.seq);
      if (this.pending.size === 0) this.worker.unref();
      if (answer.ok) p.resolve(answer.result);
      else p.reject(Object.assign(new Error(answer.error?.message ?? 'host job failed'), answer.error?.code !== undefined ? { code: answer.error.code } : {}));
    });
    const gone = (err: Error): void => {
      this.dead ??= err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      onGone(this);
    };
    this.worker.on('error', gone);
    this.worker.on('exit', (code) => gone(new Error(`the host worker exited (code ${code})`)));
  }

  post<T>(job: HostJob): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    const id = ++this.seq;
    if (this.pending.size === 0) this.worker.ref();
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ seq: id, job });
    });
  }

  async terminate(): Promise<void> {
    await this.worker.terminate();
  }
}

let current: HostWorker | undefined;

function post<T>(job: HostJob): Promise<T> {
  current ??= new HostWorker((w) => {
    if (current === w) current = undefined;
  });
  return current.post<T>(job);
}

/** cgroup-stats.ts' cgroupStats, in the worker: undefined where the files cannot be read here. */
export function cgroupStatsOffThread(pid: number, containerId: string, hostMemoryBytes: number): Promise<ContainerStats | undefined> {
  return post<ContainerStats | undefined>({ kind: 'cgroup', pid, containerId, hostMemoryBytes });
}

/** execFile, forked from the worker: its output, or a rejection (with `code`: the exit code, or ENOENT) as execFile's. */
export function execFileOffThread(file: string, args: readonly string[], opts: { timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string }> {
  return post<{ stdout: string; stderr: string }>({ kind: 'exec', file, args: [...args], ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) });
}

/** Ends the worker (tests; a process that ends needs nothing: the worker never holds it open). */
export async function stopHostWorker(): Promise<void> {
  const w = current;
  current = undefined;
  await w?.terminate();
}
