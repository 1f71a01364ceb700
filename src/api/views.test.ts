import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Node } from '../model/index.js';
import type { PodDetail } from '../store/types.js';
import { PodViewCache } from './views.js';

/** Only what the cache and the render below read of a detail. */
const detail = (id: string, name: string, revision: number): PodDetail => ({ pod: { id, name, revision } }) as unknown as PodDetail;

describe('PodViewCache.list', () => {
  const nodes = new Map<string, Node>();

  it('answers the JSON a join of the views would, multi-byte names included', () => {
    const cache = new PodViewCache((d) => ({ id: d.pod.id, name: d.pod.name }));
    const pods = [detail('a', 'plain', 1), detail('b', 'Grüße, 世界 🚀', 1), detail('c', 'quote " and \\', 2)];
    const { body } = cache.list(pods, nodes, 'n1', 'c');
    assert.deepEqual(JSON.parse(body.toString('utf8')), { pods: pods.map((d) => ({ id: d.pod.id, name: d.pod.name })), next: 'c' });
    assert.deepEqual(JSON.parse(cache.list([], nodes, 'n1', null).body.toString('utf8')), { pods: [], next: null });
  });

  it('renders a pod again only when its revision or the nodes changed', () => {
    let renders = 0;
    const cache = new PodViewCache((d) => (renders++, { id: d.pod.id, name: d.pod.name }));
    cache.list([detail('a', 'one', 1), detail('b', 'two', 1)], nodes, 'n1', null);
    cache.list([detail('a', 'one', 1), detail('b', 'two', 1)], nodes, 'n1', null);
    assert.equal(renders, 2);
    const { body } = cache.list([detail('a', 'one', 1), detail('b', 'renamed', 2)], nodes, 'n1', null);
    assert.equal(renders, 3);
    assert.equal((JSON.parse(body.toString()) as { pods: { name: string }[] }).pods[1]!.name, 'renamed');
    cache.list([detail('a', 'one', 1)], nodes, 'n2', null);
    assert.equal(renders, 4);
  });

  it('fills a large answer into the buffer of one already written, and only then', () => {
    const cache = new PodViewCache((d) => ({ id: d.pod.id, name: d.pod.name, pad: 'x'.repeat(600) }));
    const many = (n: number, tag: string) => Array.from({ length: n }, (_, i) => detail(`${tag}-${i}`, `${tag}${i}`, 1));
    const first = cache.list(many(3000, 'a'), nodes, 'n1', null);
    const kept = Buffer.from(first.body);
    // Not yet written: the next answer gets a buffer of its own.
    const second = cache.list(many(2000, 'b'), nodes, 'n1', null);
    assert.ok(first.body.equals(kept));
    first.written();
    second.written();
    const third = cache.list(many(2500, 'c'), nodes, 'n1', null);
    assert.equal(third.body.buffer, first.body.buffer);
    const parsed = JSON.parse(third.body.toString('utf8')) as { pods: { name: string }[]; next: null };
    assert.equal(parsed.pods.length, 2500);
    assert.equal(parsed.pods[2499]!.name, 'c2499');
  });

  it('answers the same large list again without copying, and a changed one anew, never into a buffer being written', () => {
    let renders = 0;
    const cache = new PodViewCache((d) => (renders++, { id: d.pod.id, name: d.pod.name, pad: 'x'.repeat(600) }));
    const pods = Array.from({ length: 3000 }, (_, i) => detail(`p-${i}`, `p${i}`, 1));
    const first = cache.list(pods, nodes, 'n1', null);
    const again = cache.list([...pods], nodes, 'n1', null);
    assert.equal(again.body, first.body);
    assert.equal(renders, 3000);
    first.written();
    again.written();
    // Another cursor, other nodes, or one pod at another revision: not the same answer.
    assert.notEqual(cache.list(pods, nodes, 'n1', 'p-2999').body.buffer, first.body.buffer);
    const changed = [...pods];
    changed[5] = detail('p-5', 'renamed', 2);
    const third = cache.list(changed, nodes, 'n1', null);
    assert.equal((JSON.parse(third.body.toString('utf8')) as { pods: { name: string }[] }).pods[5]!.name, 'renamed');
    // While the answer for `changed` is being written, later answers are not written into it.
    const kept = Buffer.from(third.body);
    const other = cache.list(changed, nodes, 'n2', null);
    const another = cache.list(pods, nodes, 'n1', null);
    assert.ok(third.body.equals(kept));
    assert.notEqual(another.body.buffer, third.body.buffer);
    other.written();
    third.written();
    another.written();
  });
});
