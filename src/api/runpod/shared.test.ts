import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Node, Problem } from '../../model/index.js';
import { checkDataCenters, compileRunpodOptions, cpuReservation, flavorOf, gatewayOf, joinArgs, queryList, splitArgs } from './shared.js';

const node = (dc?: string): Node =>
  ({ id: `n-${dc ?? 'x'}`, name: 'n', publicIp: '10.0.0.1', labels: dc ? { 'berth.io/datacenter': dc } : {}, capacity: { cpus: 4, memoryMb: 8192, gpus: [], gpusSimulated: false } }) as unknown as Node;

describe('RunPod API helpers', () => {
  it('reads query lists in both encodings', () => {
    assert.deepEqual(queryList(['a', 'b']), ['a', 'b']);
    assert.deepEqual(queryList('a,b'), ['a', 'b']);
    assert.deepEqual(queryList(['a,b', 'c']), ['a', 'b', 'c']);
    assert.equal(queryList(''), undefined);
    assert.equal(queryList(undefined), undefined);
  });

  it('splits args as a shell does and joins them back', () => {
    assert.deepEqual(splitArgs(`sh -c 'echo hi; sleep 1' "a b" c\\ d`), ['sh', '-c', 'echo hi; sleep 1', 'a b', 'c d']);
    assert.deepEqual(splitArgs(''), []);
    assert.deepEqual(splitArgs(`''`), ['']);
    for (const argv of [['sh', '-c', "echo 'it''s'"], ['a b', ''], ['python', '-m', 'http.server', '8080']]) assert.deepEqual(splitArgs(joinArgs(argv)), argv);
    assert.throws(() => splitArgs(`echo 'open`), /unterminated/);
  });

  it('sizes CPU pods by flavour and reads the flavour back', () => {
    const r = cpuReservation('cpu5m', 4, '/cpu/id');
    assert.deepEqual(r, { gpuCount: 0, vcpuCount: 4, memoryGb: 32, labels: { runpod_cpu_flavor: 'cpu5m' } });
    assert.equal(flavorOf({ labels: r.labels, vcpuCount: 4, memoryGb: 32 } as never).id, 'cpu5m');
    assert.equal(flavorOf({ labels: {}, vcpuCount: 2, memoryGb: 8 } as never).id, 'cpu3g', 'unlabelled: by memory per vCPU');
    assert.throws(() => cpuReservation('cpu9', 2, '/cpu/id'), /unknown CPU flavour/);
  });

  it('honours data-center lists it can and refuses the others', () => {
    const check = (requested: string[] | undefined, nodes: Node[]) => {
      const problems: Problem[] = [];
      checkDataCenters(requested, nodes, '/dataCenterIds', problems);
      return problems.map((p) => p.message);
    };
    assert.deepEqual(check(undefined, [node()]), []);
    assert.deepEqual(check(['local', 'US-TX-3'], [node()]), [], 'a list that includes every data center');
    assert.deepEqual(check(['local'], []), [], 'no node yet: the default data center');
    assert.match(check(['US-TX-3'], [node()])[0]!, /unknown data center US-TX-3; .*: local/);
    assert.match(check(['eu'], [node('eu'), node('us')])[0]!, /cannot yet restrict placement/);
  });

  it('points ssh.proxy at the configured gateway, else the options, else the API host', () => {
    const opts = compileRunpodOptions({ sshPort: 2200 });
    assert.deepEqual(gatewayOf(undefined, opts, 'berth.example'), { host: 'berth.example', port: 2200 });
    assert.deepEqual(gatewayOf(undefined, compileRunpodOptions({ sshPort: 2200, sshHost: 'ssh.example' }), 'berth.example'), { host: 'ssh.example', port: 2200 });
    assert.deepEqual(gatewayOf({ endpoints: { ssh: { host: 'gw', port: 22 } } } as never, opts, 'berth.example'), { host: 'gw', port: 22 });
  });
});
