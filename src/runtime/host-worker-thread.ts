/** The host worker's thread (host-worker.ts): one job at a time per message, answered by sequence number. */
import { execFile } from 'node:child_process';
import { parentPort } from 'node:worker_threads';
import { promisify } from 'node:util';
import { cgroupStats } from './cgroup-stats.js';
import type { HostAnswer, HostJob } from './host-worker.js';

const run = promisify(execFile);

async function answer(job: HostJob): Promise<unknown> {
  if (job.kind === 'cgroup') return cgroupStats(job.pid, job.containerId, job.hostMemoryBytes);
  const { stdout, stderr } = await run(job.file, job.args, { ...(job.timeoutMs !== undefined ? { timeout: job.timeoutMs } : {}), encoding: 'utf8' });
  return { stdout, stderr };
}

parentPort!.on('message', (msg: { seq: number; job: HostJob }) => {
  answer(msg.job).then(
    (result) => parentPort!.postMessage({ seq: msg.seq, ok: true, result } satisfies HostAnswer),
    (err: unknown) => {
      const e = err as NodeJS.ErrnoException & { code?: number | string };
      parentPort!.postMessage({ seq: msg.seq, ok: false, error: { message: e.message ?? String(err), ...(e.code !== undefined ? { code: e.code } : {}) } } satisfies HostAnswer);
    },
  );
});
