import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePodSpec, holdsNetworkApart } from '../../model/index.js';
import { toPodInput } from './convert.js';
import { parseDefinition } from './validate.js';

const pod = (containers: unknown[]) => {
  const parsed = parseDefinition({ id: '/layout', containers });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.body));
  return parsed.pod;
};
const container = (name: string) => ({ name, resources: { cpus: 0.1, mem: 32 }, image: { kind: 'DOCKER', id: 'busybox' } });

describe("Marathon's layout", () => {
  it('holds the network of every Marathon pod apart, one container or many', () => {
    for (const containers of [[container('one')], [container('a'), container('b')]]) {
      const spec = compilePodSpec(toPodInput(pod(containers)));
      assert.equal(spec.networkHolder, 'always');
      assert.equal(holdsNetworkApart(spec), true);
    }
  });
});
