// bench: burst — 200 pods created at once on one node: the pod list's p99 during the burst vs idle (target ≤ 5×), and all RUNNING vs docker run -d 8 at a time (target ≤ 1.2×)
/**
 * A burst: `--pods` (200) pods created at once through POST /api/v1/pods on an all-in-one `berth
 * server` (its agent on this host's Docker daemon), each the test image running `sleep`, with no
 * volume disk and no port (the baseline's container has neither).
 *
 * Two figures, each against a baseline of the same run:
 * - The API under the burst: a client lists GET /api/v1/pods back to back from the first POST until
 *   every pod is RUNNING; its p99 against the p99 of the same list when the server is idle, measured
 *   after the burst with the 200 pods RUNNING (the longest list the burst ever answers).
 * - All RUNNING: from the first POST until a list shows every pod RUNNING, against the docker CLI
 *   starting the same 200 containers (same image and command) 8 at a time, `docker run -d` as argv
 *   through execFile, until the last returns (each returns once its container runs). The baseline
 *   runs first, and its containers are removed before Berth's burst.
 *
 *   npm run bench -- burst [--pods 200] [--parallel 8] [--idle 200]
 */

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { ensureTestImage } from '../test/support/images.js';
import { apiClient, gone, intArg, log, msSince, pool, quantile, sleep, startChild, summary, verdict, type ChildServer } from './common.js';

const run = promisify(execFile);
const PODS = intArg('--pods', 200);
const PARALLEL = intArg('--parallel', 8);
const IDLE = intArg('--idle', 200);
const COMMAND = ['sleep', '86400'];
const LIST_RATIO = 5;
const START_RATIO = 1.2;

interface PodView {
  id: string;
  status: string;
}

async function dockerBaseline(image: string): Promise<number> {
  const tag = `berth-bench-burst=${randomBytes(4).toString('hex')}`;
  const names = Array.from({ length: PODS }, (_, i) => `berth-bench-burst-${process.pid}-${i}`);
  const start = process.hrtime.bigint();
  try {
    await pool(names, PARALLEL, async (name) => {
      await run('docker', ['run', '-d', '--name', name, '--label', tag, image, ...COMMAND]);
    });
    return msSince(start);
  } finally {
    await pool(names, PARALLEL, async (name) => {
      await run('docker', ['rm', '-f', name]).catch(() => undefined);
    });
  }
}

async function main(): Promise<void> {
  const docker = new Docker();
  const image = await ensureTestImage(docker);
  const work = await mkdtemp(join(tmpdir(), 'berth-bench-burst-'));
  let server: ChildServer | undefined;
  const created: string[] = [];
  try {
    log(`baseline: docker run -d ${PODS} containers, ${PARALLEL} at a time`);
    const dockerMs = await dockerBaseline(image);
    log(`baseline took ${(dockerMs / 1000).toFixed(1)} s`);

    server = await startChild('berth-server', ['--data-dir', join(work, 'data')]);
    const key = (await readFile(join(work, 'data', 'admin.key'), 'utf8')).trim();
    const api = apiClient(server.url, key);
    log(`berth server ${server.url} (pid ${server.pid})`);

    // The burst, with a client listing pods back to back until every pod is RUNNING.
    const during: number[] = [];
    const postMs: number[] = [];
    const start = process.hrtime.bigint();
    let allRunning: number | undefined;
    /** Set once every POST has been answered: the lister stops only after. */
    const posted: { at?: number } = {};
    const lister = (async () => {
      for (;;) {
        const res = await api<{ pods?: PodView[] } | PodView[]>('GET', '/api/v1/pods');
        during.push(res.ms);
        const pods = Array.isArray(res.body) ? res.body : (res.body.pods ?? []);
        if (posted.at !== undefined && pods.length >= PODS && pods.every((p) => p.status === 'RUNNING')) {
          allRunning = msSince(start);
          return;
        }
        if (msSince(start) > 600_000) throw new Error(`not all pods RUNNING after 600 s: ${pods.filter((p) => p.status === 'RUNNING').length} of ${pods.length}`);
      }
    })();
    await Promise.all(
      Array.from({ length: PODS }, async (_, i) => {
        const res = await api<{ id: string }>('POST', '/api/v1/pods', { name: `burst-${i}`, image, command: COMMAND, volumeGb: 0 });
        if (res.status !== 201) throw new Error(`POST /api/v1/pods answered ${res.status}: ${JSON.stringify(res.body)}`);
        created.push(res.body.id);
        postMs.push(res.ms);
      }),
    );
    const answered = (posted.at = msSince(start));
    log(`all ${PODS} answered in ${(answered / 1000).toFixed(2)} s`);
    await lister;
    log(`all RUNNING after ${(allRunning! / 1000).toFixed(1)} s; ${during.length} lists meanwhile`);

    // Idle: the same list, the same 200 pods, nothing else going on.
    await sleep(2000);
    const idle: number[] = [];
    for (let i = 0; i < IDLE; i++) idle.push((await api('GET', '/api/v1/pods')).ms);

    const p99During = quantile(during, 0.99);
    const p99Idle = quantile(idle, 0.99);
    const listRatio = p99During / p99Idle;
    const startRatio = allRunning! / dockerMs;
    summary('burst', [
      ['burst', `${PODS} pods (${image}, ${COMMAND.join(' ')}, no volume disk) POSTed at once to an all-in-one server`],
      ['POSTs answered', `all in ${(answered / 1000).toFixed(2)} s; each p50 ${quantile(postMs, 0.5).toFixed(0)} ms p99 ${quantile(postMs, 0.99).toFixed(0)} ms`],
      ['GET /api/v1/pods during the burst', `p50 ${quantile(during, 0.5).toFixed(1)} ms  p99 ${p99During.toFixed(1)} ms  max ${Math.max(...during).toFixed(0)} ms (${during.length} lists)`],
      ['GET /api/v1/pods idle, 200 pods', `p50 ${quantile(idle, 0.5).toFixed(1)} ms  p99 ${p99Idle.toFixed(1)} ms (${idle.length} lists)`],
      [`list p99 burst/idle (target ≤ ${LIST_RATIO})`, `${listRatio.toFixed(2)}  ${verdict(listRatio, LIST_RATIO)}`],
      ['all RUNNING (berth)', `${(allRunning! / 1000).toFixed(1)} s after the first POST`],
      [`docker run -d, ${PARALLEL} at a time`, `${(dockerMs / 1000).toFixed(1)} s for ${PODS} containers`],
      [`all RUNNING berth/docker (target ≤ ${START_RATIO})`, `${startRatio.toFixed(2)}  ${verdict(startRatio, START_RATIO)}`],
    ]);
  } finally {
    if (server && created.length) {
      const key = (await readFile(join(work, 'data', 'admin.key'), 'utf8')).trim();
      const api = apiClient(server.url, key);
      await pool(created, 16, async (id) => {
        await api('POST', `/api/v1/pods/${id}/terminate`, {}).catch(() => undefined);
      });
      await pool(created, 16, async (id) => {
        await gone(docker, `berth.pod=${id}`, 120_000).catch(() => undefined);
      });
    }
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
