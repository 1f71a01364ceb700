import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cgroupStats, parseBlkio, parseIoStat, parseNetDev, parseProcCgroup } from './cgroup-stats.js';

const GiB = 2 ** 30;
const ID = 'a'.repeat(64);
const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     500       5    0    0    0     0          0         0      500       5    0    0    0     0       0          0
  eth0:    1016      12    0    0    0     0          0         0      210       3    0    0    0     0       0          0
  eth1:       4       1    0    0    0     0          0         0        6       1    0    0    0     0       0          0
`;

describe('cgroupStats', () => {
  let root: string;
  const put = async (path: string, text: string): Promise<void> => {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  };
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'berth-cgroup-'));
    // Process 10: cgroup v1 (a hierarchy per controller, cpu and cpuacct mounted together), as Docker 20.10 on Debian 12 here.
    await put('proc/10/cgroup', ['9:name=systemd:/docker/' + ID, '7:blkio:/docker/' + ID, '4:memory:/docker/' + ID, '2:cpu,cpuacct:/docker/' + ID, '0::/docker/' + ID].join('\n') + '\n');
    await put('proc/10/net/dev', NET_DEV);
    await put(`cg/memory/docker/${ID}/memory.usage_in_bytes`, '100000000\n');
    await put(`cg/memory/docker/${ID}/memory.stat`, 'cache 40000000\ninactive_file 1\ntotal_inactive_file 30000000\n');
    await put(`cg/memory/docker/${ID}/memory.limit_in_bytes`, '9223372036854771712\n');
    await put(`cg/cpu,cpuacct/docker/${ID}/cpuacct.usage`, '1265931605\n');
    await put(`cg/blkio/docker/${ID}/blkio.io_service_bytes_recursive`, 'Total 0\n');
    await put(`cg/blkio/docker/${ID}/blkio.throttle.io_service_bytes_recursive`, '8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\n8:16 Write 1\nTotal 12289\n');
    // Process 20: cgroup v2 only, under systemd's driver.
    await put('proc/20/cgroup', `0::/system.slice/docker-${ID}.scope\n`);
    await put('proc/20/net/dev', NET_DEV);
    const v2 = `cg/system.slice/docker-${ID}.scope`;
    await put(`${v2}/cpu.stat`, 'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n');
    await put(`${v2}/memory.current`, '5000\n');
    await put(`${v2}/memory.stat`, 'anon 3000\nfile 2000\ninactive_file 1000\n');
    await put(`${v2}/memory.max`, `${GiB}\n`);
    await put(`${v2}/io.stat`, '8:0 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n8:16 rbytes=10 wbytes=20 rios=1 wios=1\n');
  });
  after(async () => rm(root, { recursive: true, force: true }));

  const paths = () => ({ cgroupRoot: join(root, 'cg'), procRoot: join(root, 'proc') });

  it('reads cgroup v1 as Docker does: working set less total_inactive_file, the throttle file when CFQ says nothing, no limit as null', async () => {
    const s = await cgroupStats(10, ID, 16 * GiB, paths());
    assert.ok(s);
    assert.deepEqual({ ...s, at: 'x' }, { at: 'x', cpuSeconds: 1.265931605, memoryWorkingSetBytes: 70_000_000, memoryLimitBytes: null, networkRxBytes: 1020, networkTxBytes: 216, diskReadBytes: 4096, diskWriteBytes: 8193 });
  });

  it('reads cgroup v2 from the one directory, a real limit kept', async () => {
    const s = await cgroupStats(20, ID, 16 * GiB, paths());
    assert.ok(s);
    assert.deepEqual({ ...s, at: 'x' }, { at: 'x', cpuSeconds: 2.5, memoryWorkingSetBytes: 4000, memoryLimitBytes: GiB, networkRxBytes: 1020, networkTxBytes: 216, diskReadBytes: 11, diskWriteBytes: 22 });
  });

  it('answers undefined, for Docker to be asked, when the pid is not the container\'s or cannot be read', async () => {
    assert.equal(await cgroupStats(10, 'b'.repeat(64), 16 * GiB, paths()), undefined, 'a reused pid');
    assert.equal(await cgroupStats(30, ID, 16 * GiB, paths()), undefined, 'no such process here');
    assert.equal(await cgroupStats(0, ID, 16 * GiB, paths()), undefined, 'not running');
  });

  it('parses the files one by one', () => {
    assert.deepEqual(parseProcCgroup('2:cpu,cpuacct:/a\n0::/b\n'), new Map([['cpu', '/a'], ['cpuacct', '/a'], ['', '/b']]));
    assert.deepEqual(parseBlkio('8:0 Read 1\n8:0 Write 2\nTotal 3\n'), { read: 1, write: 2, any: true });
    assert.deepEqual(parseBlkio('Total 0\n'), { read: 0, write: 0, any: false });
    assert.deepEqual(parseIoStat('8:0 rbytes=5 wbytes=6\n'), { read: 5, write: 6 });
    assert.deepEqual(parseNetDev(NET_DEV), { rx: 1020, tx: 216 });
  });
});
