import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { cgroupStatsOffThread, execFileOffThread, stopHostWorker } from './host-worker.js';

describe('host worker', () => {
  after(() => stopHostWorker());

  it('forks a program and gives its output', async () => {
    const { stdout } = await execFileOffThread(process.execPath, ['-e', 'process.stdout.write("from the worker")']);
    assert.equal(stdout, 'from the worker');
  });

  it('answers many jobs at once, each its own', async () => {
    const outs = await Promise.all(Array.from({ length: 8 }, (_, i) => execFileOffThread(process.execPath, ['-e', `process.stdout.write("${i}")`])));
    assert.deepEqual(outs.map((o) => o.stdout), ['0', '1', '2', '3', '4', '5', '6', '7']);
  });

  it('rejects as execFile does: the exit code, or ENOENT', async () => {
    await assert.rejects(execFileOffThread(process.execPath, ['-e', 'process.exit(3)']), (err: Error & { code?: unknown }) => err.code === 3);
    await assert.rejects(execFileOffThread('/nonexistent/berth-no-such-program', []), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
  });

  it('kills a program past its timeout', async () => {
    await assert.rejects(execFileOffThread(process.execPath, ['-e', 'setTimeout(() => {}, 10000)'], { timeoutMs: 200 }));
  });

  it("reads no figures for a process whose cgroup is not the container's", async () => {
    assert.equal(await cgroupStatsOffThread(process.pid, 'f'.repeat(64), 2 ** 34), undefined);
    assert.equal(await cgroupStatsOffThread(-1, 'f'.repeat(64), 2 ** 34), undefined);
  });

  it('starts again after it was stopped', async () => {
    await stopHostWorker();
    const { stdout } = await execFileOffThread(process.execPath, ['-e', 'process.stdout.write("again")']);
    assert.equal(stdout, 'again');
  });
});
