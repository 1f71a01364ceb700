/** Shared pieces of the RunPod-compatibility tests. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { ensureTestImage } from './images.js';
import { waitFor, type TestServer } from './server.js';

/**
 * The test image with a CMD that keeps running: RunPod clients that cannot set a start command
 * (the v1 MCP tools have no such argument) still get a pod that stays RUNNING.
 */
export const SLEEPER_IMAGE = 'berth-test/sleeper:1';

export async function ensureSleeperImage(docker: Docker = new Docker()): Promise<string> {
  const base = await ensureTestImage(docker);
  const dir = await mkdtemp(join(tmpdir(), 'berth-sleeper-'));
  try {
    await writeFile(join(dir, 'Dockerfile'), `FROM ${base}\nCMD ["sh", "-c", "echo sleeper up; exec sleep 3600"]\n`);
    const stream = await docker.buildImage({ context: dir, src: ['Dockerfile'] }, { t: SLEEPER_IMAGE, rm: true, forcerm: true });
    await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve())));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return SLEEPER_IMAGE;
}

/** Waits until the native view of the pod has `status`; every API shares this one status. */
export function nativeStatus(t: TestServer, id: string, status: string, timeoutMs = 30_000) {
  return waitFor(
    `pod ${id} ${status}`,
    async () => {
      const r = await t.api<{ status: string }>('GET', `/api/v1/pods/${id}`);
      return r.body.status === status ? r.body : undefined;
    },
    timeoutMs,
  );
}

/** Docker containers of a pod, by Berth's label. */
export const containersOf = async (podId: string, docker: Docker = new Docker()) => docker.listContainers({ all: true, filters: { label: [`berth.pod=${podId}`] } });
