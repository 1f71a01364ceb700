import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import type { InstanceId, NodeId, UsageReport } from '../model/index.js';
import type { ContainerInfo, ContainerStats } from '../runtime/types.js';
import { parseGpuUsage } from './gpu-usage.js';
import { LABELS } from './labels.js';
import { UsageCollector } from './usage-collector.js';

const node = 'node1' as NodeId;
const container = (id: string, instance: string, name: string, extra: Record<string, string> = {}, state: ContainerInfo['state'] = 'running'): ContainerInfo => ({
  id,
  name: `berth-${id}`,
  labels: { [LABELS.instance]: instance, [LABELS.container]: name, [LABELS.node]: node, ...extra },
  state,
  exitCode: null,
  startedAt: null,
  finishedAt: null,
  ports: {},
  error: null,
});
const stats = (at: string, cpuSeconds: number): ContainerStats => ({ at, cpuSeconds, memoryWorkingSetBytes: 5 << 20, memoryLimitBytes: null, networkRxBytes: 10, networkTxBytes: 20, diskReadBytes: 0, diskWriteBytes: 0 });

describe('UsageCollector', () => {
  it('samples running app containers (not the infra one, not stopped ones), CPU cores from two totals, one nvidia-smi for real GPUs', async () => {
    let t = 0;
    const cpu: Record<string, number> = { a: 10, b: 1 };
    const queried: number[] = [];
    const sent: UsageReport[][] = [];
    const c = new UsageCollector({
      runtime: {
        listContainers: async () => [
          container('a', 'p1-0', 'main'),
          container('infra', 'p1-0', 'x', { [LABELS.role]: 'infra' }),
          container('b', 'p2-0', 'main'),
          container('c', 'p3-0', 'main', {}, 'exited'),
        ],
        containerStats: async (id) => stats(new Date(Date.UTC(2026, 0, 1) + t * 1000).toISOString(), cpu[id] ?? 0),
      },
      channel: { reportUsage: async (_n, s) => void sent.push(s) },
      nodeId: node,
      log: pino({ level: 'silent' }),
      intervalMs: 10_000,
      gpusOf: (id) => (id === 'p2-0' ? [{ index: 0, uuid: 'GPU-1', name: 'NVIDIA H100', memoryMb: 81559 }] : []),
      gpusSimulated: false,
      queryGpus: async () => {
        queried.push(t);
        return parseGpuUsage('0, GPU-1, NVIDIA H100, 87, 40000, 81559, 301.5, 64\n');
      },
    });
    const first = await c.collect();
    assert.deepEqual(first.map((r) => r.instanceId).sort(), ['p1-0', 'p2-0'] as InstanceId[]);
    assert.equal(first.find((r) => r.instanceId === 'p1-0')!.usage.containers[0]!.cpuCores, 0, 'no earlier total yet');
    t = 10;
    cpu.a = 15;
    await c.collectAndSend();
    const second = sent[0]!;
    const p1 = second.find((r) => r.instanceId === 'p1-0')!.usage;
    assert.equal(p1.containers.length, 1);
    assert.equal(p1.containers[0]!.cpuCores, 0.5);
    assert.equal(p1.containers[0]!.cpuSeconds, 15);
    assert.deepEqual(second.find((r) => r.instanceId === 'p2-0')!.usage.gpus, [
      { uuid: 'GPU-1', index: 0, name: 'NVIDIA H100', utilizationPercent: 87, memoryUsedMb: 40000, memoryTotalMb: 81559, powerWatts: 301.5, temperatureC: 64, simulated: false },
    ]);
    assert.equal(queried.length, 2, 'one nvidia-smi per collection, not per instance');
  });

  it('marks a declared inventory\'s GPUs simulated, with no figures, and runs no nvidia-smi', async () => {
    const c = new UsageCollector({
      runtime: { listContainers: async () => [container('a', 'p1-0', 'main')], containerStats: async () => stats(new Date().toISOString(), 1) },
      channel: {},
      nodeId: node,
      log: pino({ level: 'silent' }),
      intervalMs: 10_000,
      gpusOf: () => [{ index: 3, uuid: 'GPU-sim', name: 'Simulated GPU', memoryMb: 24000 }],
      gpusSimulated: true,
      queryGpus: async () => assert.fail('nvidia-smi must not run for a declared inventory'),
    });
    const [r] = await c.collect();
    assert.deepEqual(r!.usage.gpus, [{ uuid: 'GPU-sim', index: 3, name: 'Simulated GPU', utilizationPercent: null, memoryUsedMb: null, memoryTotalMb: 24000, powerWatts: null, temperatureC: null, simulated: true }]);
  });
});

describe('parseGpuUsage', () => {
  it('reads nvidia-smi\'s CSV; [N/A] and [Not Supported] are unknown, not zero', () => {
    const m = parseGpuUsage('0, GPU-a, NVIDIA GeForce RTX 4090, 3, 512, 24564, [N/A], 41\n1, GPU-b, Tesla T4, [Not Supported], 0, 15360, 27.9, [N/A]\nnot a gpu line\n');
    assert.equal(m.size, 2);
    assert.equal(m.get('GPU-a')!.powerWatts, null);
    assert.equal(m.get('GPU-a')!.utilizationPercent, 3);
    assert.equal(m.get('GPU-b')!.utilizationPercent, null);
    assert.equal(m.get('GPU-b')!.temperatureC, null);
    assert.equal(m.get('GPU-b')!.index, 1);
  });
});
