import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { statsFromDocker } from './stats.js';

const GiB = 2 ** 30;

describe('statsFromDocker', () => {
  it('reads cgroup v1: working set is usage less total_inactive_file; the host memory as limit means none', () => {
    const s = statsFromDocker(
      {
        read: '2026-12-05T16:50:06.486859204Z',
        cpu_stats: { cpu_usage: { total_usage: 1_265_931_605 } },
        memory_stats: { usage: 100_000_000, limit: 16 * GiB, stats: { total_inactive_file: 30_000_000, inactive_file: 1 } },
        networks: { eth0: { rx_bytes: 736, tx_bytes: 10 }, eth1: { rx_bytes: 4, tx_bytes: 0 } },
        blkio_stats: { io_service_bytes_recursive: [{ op: 'Read', value: 4096 }, { op: 'Write', value: 8192 }, { op: 'Total', value: 12288 }] },
      },
      16 * GiB,
    );
    assert.deepEqual(s, { at: '2026-12-05T16:50:06.486Z', cpuSeconds: 1.265931605, memoryWorkingSetBytes: 70_000_000, memoryLimitBytes: null, networkRxBytes: 740, networkTxBytes: 10, diskReadBytes: 4096, diskWriteBytes: 8192 });
  });

  it('reads cgroup v2 (inactive_file, lower-case ops) and a real limit', () => {
    const s = statsFromDocker({ memory_stats: { usage: 5000, limit: GiB, stats: { inactive_file: 1000 } }, blkio_stats: { io_service_bytes_recursive: [{ op: 'read', value: 1 }, { op: 'write', value: 2 }] } }, 16 * GiB);
    assert.equal(s.memoryWorkingSetBytes, 4000);
    assert.equal(s.memoryLimitBytes, GiB);
    assert.equal(s.diskReadBytes, 1);
    assert.equal(s.diskWriteBytes, 2);
    assert.equal(s.cpuSeconds, 0);
  });
});
