import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Gpu } from '../model/index.js';

const run = promisify(execFile);

export interface GpuInventory {
  gpus: Gpu[];
  simulated: boolean;
  /** Why discovery found none, for the node view and logs. */
  note: string | null;
}

/** Parses `nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits`. */
export function parseNvidiaSmi(csv: string): Gpu[] {
  return csv
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => {
      const [index, uuid, name, memory] = line.split(',').map((s) => s.trim());
      return { index: Number(index), uuid: uuid ?? '', name: name ?? '', memoryMb: Number(memory) };
    })
    .filter((g) => Number.isInteger(g.index) && g.uuid.startsWith('GPU-'));
}

/**
 * The GPUs of this machine: a declared inventory file when one is given (for machines without GPUs
 * and for tests; marked simulated), else what nvidia-smi reports, else none.
 */
export async function discoverGpus(inventoryPath?: string): Promise<GpuInventory> {
  if (inventoryPath) {
    const doc = JSON.parse(await readFile(inventoryPath, 'utf8')) as { gpus?: Partial<Gpu>[] };
    const gpus = (doc.gpus ?? []).map((g, i) => ({
      index: g.index ?? i,
      uuid: g.uuid ?? `GPU-simulated-${i}`,
      name: g.name ?? 'Simulated GPU',
      memoryMb: g.memoryMb ?? 0,
    }));
    return { gpus, simulated: true, note: `declared in ${inventoryPath}` };
  }
  try {
    const { stdout } = await run('nvidia-smi', ['--query-gpu=index,uuid,name,memory.total', '--format=csv,noheader,nounits'], { timeout: 10_000 });
    return { gpus: parseNvidiaSmi(stdout), simulated: false, note: null };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { gpus: [], simulated: false, note: err.code === 'ENOENT' ? 'nvidia-smi not found: no NVIDIA GPUs' : `nvidia-smi failed: ${err.message}` };
  }
}
