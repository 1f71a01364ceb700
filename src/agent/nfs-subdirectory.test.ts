import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { NodeId } from '../model/index.js';
import { DockerRuntime } from '../runtime/docker.js';
import { LocalInfraImage } from './infra-image.js';
import { exportRootOf, exportRootVolumeName, NfsSubdirectories } from './nfs-subdirectory.js';

describe("an NFS volume's export root", () => {
  it('is the device without its last part; the last part is the subdirectory', () => {
    assert.deepEqual(exportRootOf({ type: 'nfs', o: 'addr=10.0.0.5,rw', device: ':/srv/berth/abc123' }), {
      root: { type: 'nfs', o: 'addr=10.0.0.5,rw', device: ':/srv/berth' },
      subdirectory: 'abc123',
    });
    assert.deepEqual(exportRootOf({ type: 'nfs', o: 'addr=nas', device: ':/abc123' })?.root.device, ':/');
    assert.equal(exportRootOf({ type: 'none', o: 'bind', device: '/x/y' }), undefined, 'only NFS');
    assert.equal(exportRootOf({ type: 'nfs', o: 'addr=nas', device: ':/srv/..' }), undefined);
    assert.notEqual(exportRootVolumeName({ o: 'addr=a', device: ':/x' }), exportRootVolumeName({ o: 'addr=b', device: ':/x' }));
  });
});

/*
 * The same steps as on an NFS export, with a host directory bind-mounted through Docker's local
 * driver standing in for the export (this machine's kernel has no NFS client).
 */
describe('making a volume directory on an export', () => {
  let dir: string;
  let runtime: DockerRuntime;
  let root: Record<string, string>;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-export-'));
    runtime = await DockerRuntime.create();
    root = { type: 'none', o: 'bind', device: dir };
  });
  after(async () => {
    await runtime.removeVolume(exportRootVolumeName(root)).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it("makes it with the node's infra image, once, and leaves no container behind", async () => {
    const log = pino({ level: 'silent' });
    const infra = new LocalInfraImage(runtime, log);
    const nodeId = `nfs-test-${process.pid}` as NodeId;
    const nfs = new NfsSubdirectories(runtime, log, nodeId, () => infra.ensure());
    await nfs.ensureUnder(root, 'vol0000001');
    assert.ok((await stat(join(dir, 'vol0000001'))).isDirectory());
    await nfs.ensureUnder(root, 'vol0000001');
    assert.deepEqual(await runtime.listContainers({ 'berth.node': nodeId }), []);
  });
});
