import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { discoverGpus, parseNvidiaSmi } from './gpus.js';

/** What `nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits` prints on an 8-GPU box. */
const SMI_8 = [
  '0, GPU-5b2c1f3e-8a7d-4e61-9c0b-2f4a6d8e1c3a, NVIDIA H100 80GB HBM3, 81559',
  '1, GPU-6c3d2a4f-9b8e-4f72-8d1c-3a5b7e9f2d4b, NVIDIA H100 80GB HBM3, 81559',
  '2, GPU-7d4e3b5a-8c9f-4a83-9e2d-4b6c8f0a3e5c, NVIDIA H100 80GB HBM3, 81559',
  '3, GPU-8e5f4c6b-9d0a-4b94-8f3e-5c7d9a1b4f6d, NVIDIA H100 80GB HBM3, 81559',
  '4, GPU-9f6a5d7c-8e1b-4ca5-9a4f-6d8e0b2c5a7e, NVIDIA GeForce RTX 4090, 24564',
  '5, GPU-0a7b6e8d-9f2c-4db6-8b5a-7e9f1c3d6b8f, NVIDIA GeForce RTX 4090, 24564',
  '6, GPU-1b8c7f9e-8a3d-4ec7-9c6b-8f0a2d4e7c9a, NVIDIA RTX A6000, 49140',
  '7, GPU-2c9d8a0f-9b4e-4fd8-8d7c-9a1b3e5f8d0b, NVIDIA A100-SXM4-80GB, 81920',
].join('\n');

describe('parseNvidiaSmi', () => {
  it('reads every GPU with its index, UUID, name and memory', () => {
    const gpus = parseNvidiaSmi(SMI_8 + '\n');
    assert.equal(gpus.length, 8);
    assert.deepEqual(gpus[0], { index: 0, uuid: 'GPU-5b2c1f3e-8a7d-4e61-9c0b-2f4a6d8e1c3a', name: 'NVIDIA H100 80GB HBM3', memoryMb: 81559 });
    assert.deepEqual(gpus[4], { index: 4, uuid: 'GPU-9f6a5d7c-8e1b-4ca5-9a4f-6d8e0b2c5a7e', name: 'NVIDIA GeForce RTX 4090', memoryMb: 24564 });
    assert.deepEqual(gpus.map((g) => g.index), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.equal(gpus[7]!.name, 'NVIDIA A100-SXM4-80GB');
  });

  it('skips blank lines and CRLF line ends', () => {
    const text = '\n\n' + SMI_8.split('\n').slice(0, 2).join('\r\n\r\n') + '\r\n   \n';
    assert.deepEqual(parseNvidiaSmi(text).map((g) => g.index), [0, 1]);
  });

  it('ignores lines that are not a GPU: notices, headers, bad indices, missing UUIDs', () => {
    const text = [
      'index, uuid, name, memory.total [MiB]',
      SMI_8.split('\n')[0],
      'No devices were found',
      'x, GPU-aaaa, Broken, 100',
      '1.5, GPU-bbbb, Broken, 100',
      '2, MIG-cccc, Not a GPU UUID, 100',
      '3',
      SMI_8.split('\n')[7],
    ].join('\n');
    assert.deepEqual(parseNvidiaSmi(text).map((g) => g.uuid), ['GPU-5b2c1f3e-8a7d-4e61-9c0b-2f4a6d8e1c3a', 'GPU-2c9d8a0f-9b4e-4fd8-8d7c-9a1b3e5f8d0b']);
  });

  it('finds no GPUs in empty output', () => {
    assert.deepEqual(parseNvidiaSmi(''), []);
    assert.deepEqual(parseNvidiaSmi('\n\n'), []);
  });
});

describe('discoverGpus', () => {
  let dir: string;
  let savedPath: string | undefined;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-gpus-'));
    savedPath = process.env.PATH;
  });
  after(async () => {
    process.env.PATH = savedPath;
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs discovery with PATH holding only `bin` (a fresh dir, empty unless `smi` is given). */
  async function withPath(name: string, smi?: string) {
    const bin = join(dir, name);
    await mkdir(bin);
    if (smi !== undefined) {
      await writeFile(join(bin, 'nvidia-smi'), smi);
      await chmod(join(bin, 'nvidia-smi'), 0o755);
    }
    process.env.PATH = bin;
    try {
      return await discoverGpus();
    } finally {
      process.env.PATH = savedPath;
    }
  }

  it('reads a declared inventory, filling in what it leaves out, and marks it simulated', async () => {
    const path = join(dir, 'inventory.json');
    await writeFile(path, JSON.stringify({ gpus: [{ name: 'NVIDIA H100 80GB HBM3', memoryMb: 81559 }, { uuid: 'GPU-fixed', index: 5 }, {}] }));
    const inv = await discoverGpus(path);
    assert.equal(inv.simulated, true);
    assert.equal(inv.note, `declared in ${path}`);
    assert.deepEqual(inv.gpus, [
      { index: 0, uuid: 'GPU-simulated-0', name: 'NVIDIA H100 80GB HBM3', memoryMb: 81559 },
      { index: 5, uuid: 'GPU-fixed', name: 'Simulated GPU', memoryMb: 0 },
      { index: 2, uuid: 'GPU-simulated-2', name: 'Simulated GPU', memoryMb: 0 },
    ]);
  });

  it('takes an inventory with no gpus as none, still simulated', async () => {
    const path = join(dir, 'empty.json');
    await writeFile(path, '{}');
    assert.deepEqual(await discoverGpus(path), { gpus: [], simulated: true, note: `declared in ${path}` });
  });

  it('prefers the inventory over nvidia-smi', async () => {
    const path = join(dir, 'one.json');
    await writeFile(path, JSON.stringify({ gpus: [{ name: 'Declared' }] }));
    const bin = join(dir, 'smi-present');
    await mkdir(bin);
    await writeFile(join(bin, 'nvidia-smi'), `#!/bin/sh\nprintf '%s\\n' '${SMI_8.split('\n')[0]}'\n`);
    await chmod(join(bin, 'nvidia-smi'), 0o755);
    process.env.PATH = bin;
    try {
      const inv = await discoverGpus(path);
      assert.deepEqual(inv.gpus.map((g) => g.name), ['Declared']);
      assert.equal(inv.simulated, true);
    } finally {
      process.env.PATH = savedPath;
    }
  });

  it('refuses an inventory that is not JSON', async () => {
    const path = join(dir, 'bad.json');
    await writeFile(path, 'gpus: 1');
    await assert.rejects(discoverGpus(path), SyntaxError);
  });

  it('finds none, with a note, when nvidia-smi is not on PATH', async () => {
    assert.deepEqual(await withPath('empty-bin'), { gpus: [], simulated: false, note: 'nvidia-smi not found: no NVIDIA GPUs' });
  });

  it('reads real GPUs from nvidia-smi, not simulated', async () => {
    // printf is a shell builtin: PATH holds nothing else.
    const script = `#!/bin/sh\nprintf '%s\\n' ${[...SMI_8.split('\n'), ''].map((l) => `'${l}'`).join(' ')}\n`;
    const inv = await withPath('fake-smi', script);
    assert.equal(inv.simulated, false);
    assert.equal(inv.note, null);
    assert.equal(inv.gpus.length, 8);
    assert.equal(inv.gpus[6]!.name, 'NVIDIA RTX A6000');
  });

  it('finds none, saying why, when nvidia-smi fails (driver not loaded)', async () => {
    const script = "#!/bin/sh\necho 'NVIDIA-SMI has failed because it couldn'\\''t communicate with the NVIDIA driver.' >&2\nexit 9\n";
    const inv = await withPath('failing-smi', script);
    assert.equal(inv.simulated, false);
    assert.deepEqual(inv.gpus, []);
    assert.match(inv.note ?? '', /^nvidia-smi failed: /);
    assert.match(inv.note ?? '', /couldn't communicate with the NVIDIA driver/);
  });
});
