// LocalNodeAccess.readFile over a fake runtime: which way a file comes out of a container.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import type { InstanceId, NodeId } from '../model/index.js';
import { singleFileTar } from '../runtime/tar.js';
import type { ContainerInfo, Runtime } from '../runtime/types.js';
import { LABELS } from './labels.js';
import { LocalNodeAccess } from './node-access.js';

const INSTANCE = 'pod0000000001-0' as InstanceId;
const NODE = 'node1' as NodeId;

function fakeRuntime(state: ContainerInfo['state'], direct: boolean) {
  const calls: string[] = [];
  const container: ContainerInfo = { id: 'c1', name: 'c1', labels: { [LABELS.instance]: INSTANCE, [LABELS.node]: NODE, [LABELS.container]: 'main' }, state, exitCode: null, startedAt: null, finishedAt: null, ports: {}, error: null };
  const runtime = {
    listContainers: () => Promise.resolve([container]),
    openExec: () => Promise.reject(new Error('unused')),
    containerAddress: () => Promise.resolve(undefined),
    containerGateway: () => Promise.resolve(undefined),
    putArchive: () => Promise.resolve(),
    statPath: () => Promise.reject(new Error('unused')),
    openFile: (_id: string, path: string) => {
      calls.push(`openFile ${path}`);
      return Promise.resolve(direct ? { size: 6, mode: 0o100644, mtimeMs: 0, content: Readable.from([Buffer.from('direct')]) } : undefined);
    },
    getArchive: (_id: string, path: string) => {
      calls.push(`getArchive ${path}`);
      return Promise.resolve(singleFileTar('f', 7, 0o644, 0, Readable.from([Buffer.from('archive')])));
    },
  } as unknown as Runtime;
  return { access: new LocalNodeAccess(runtime, NODE, () => undefined), calls };
}

async function text(r: Readable): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts).toString();
}

describe('LocalNodeAccess.readFile', () => {
  it('reads a running container\'s file on the node, without the archive API', async () => {
    const { access, calls } = fakeRuntime('running', true);
    const f = await access.readFile(INSTANCE, undefined, '/f');
    assert.equal(f.size, 6);
    assert.equal(await text(f.content), 'direct');
    assert.deepEqual(calls, ['openFile /f']);
  });

  it('falls back to the archive API where the node cannot read it, and for a stopped container', async () => {
    const cannot = fakeRuntime('running', false);
    assert.equal(await text((await cannot.access.readFile(INSTANCE, undefined, '/f')).content), 'archive');
    assert.deepEqual(cannot.calls, ['openFile /f', 'getArchive /f']);
    const stopped = fakeRuntime('exited', true);
    assert.equal(await text((await stopped.access.readFile(INSTANCE, undefined, '/f')).content), 'archive');
    assert.deepEqual(stopped.calls, ['getArchive /f']);
  });

  it('closes the file when the reader gives up', async () => {
    const { access } = fakeRuntime('running', true);
    const abort = new AbortController();
    const f = await access.readFile(INSTANCE, undefined, '/f', abort.signal);
    abort.abort();
    assert.ok(f.content.destroyed);
  });
});
