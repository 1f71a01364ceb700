// Pod networks on the real Docker daemon: a burst of launches of one team makes its network once.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import type { NodeId } from '../model/index.js';
import { DockerRuntime } from '../runtime/docker.js';
import { PodNetworks } from './pod-network.js';

describe('pod networks', () => {
  const name = `berth-t-test-${randomBytes(4).toString('hex')}`;
  let runtime: DockerRuntime | undefined;
  after(async () => runtime?.removeNetwork(name));

  it('makes a network once for launches that join it at the same moment, and each may go on', async () => {
    runtime = await DockerRuntime.create();
    const ensureNetwork = runtime.ensureNetwork.bind(runtime);
    let makes = 0;
    runtime.ensureNetwork = (n, opts) => {
      makes++;
      return ensureNetwork(n, opts);
    };
    const networks = new PodNetworks(runtime, pino({ level: 'silent' }), `node-${randomBytes(3).toString('hex')}` as NodeId, false);
    const dones = await Promise.all(Array.from({ length: 8 }, () => networks.join(name)));
    assert.equal(makes, 1, 'one make for the eight');
    assert.deepEqual((await runtime.listNetworks({ 'berth.kind': 'pod-network' })).filter((n) => n.name === name).length, 1);
    for (const done of dones) done();
    await networks.join(name).then((done) => done());
    assert.equal(makes, 2, 'a later launch looks again (the network may have been removed since)');
  });
});
