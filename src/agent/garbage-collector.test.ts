// The collector on the real Docker daemon: network volumes' copies on the node, looked for only when something changed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { NodeId } from '../model/index.js';
import { DockerRuntime } from '../runtime/docker.js';
import { GarbageCollector } from './garbage-collector.js';
import { LABELS } from './labels.js';

describe('garbage collector: network volumes', () => {
  const nodeId = `node-gc-${randomBytes(4).toString('hex')}` as NodeId;
  const kept = `berth-nv-gc-${randomBytes(4).toString('hex')}`;
  const deleted = `berth-nv-gc-${randomBytes(4).toString('hex')}`;
  let runtime: DockerRuntime;
  let lists = 0;

  before(async () => {
    runtime = await DockerRuntime.create();
    const labels = { [LABELS.managed]: '1', [LABELS.node]: nodeId, 'berth.kind': 'network-volume' };
    await runtime.ensureVolume(kept, labels);
    await runtime.ensureVolume(deleted, labels);
  });
  after(async () => {
    for (const v of [kept, deleted]) await runtime.removeVolume(v).catch(() => undefined);
  });

  it("asks Docker once per change of the store's network volumes, not once per watch answer, and removes a deleted one's copy", async () => {
    const gc = new GarbageCollector(runtime, pino({ level: 'silent' }), nodeId, () => true);
    const listVolumes = runtime.listVolumes.bind(runtime);
    runtime.listVolumes = (filter) => {
      lists++;
      return listVolumes(filter);
    };
    const names = async () => (await listVolumes({ [LABELS.node]: nodeId })).map((v) => v.name).sort();

    await gc.dropNetworkVolumes([kept, deleted]);
    assert.equal(lists, 1, 'the first answer is looked at');
    for (let i = 0; i < 5; i++) await gc.dropNetworkVolumes([deleted, kept]);
    assert.equal(lists, 1, 'the same volumes again (in any order): nothing asked of Docker');
    assert.deepEqual(await names(), [kept, deleted].sort());

    await gc.dropNetworkVolumes([kept]);
    assert.equal(lists, 2, 'one was deleted: looked at again');
    assert.deepEqual(await names(), [kept]);
    await gc.dropNetworkVolumes([kept]);
    assert.equal(lists, 2);
  });
});
