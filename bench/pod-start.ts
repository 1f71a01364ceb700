// bench: pod-start — create request → RUNNING as the API reports it, vs `docker run -d` of the same container (target: median ratio ≤ 1.15)
/**
 * Pod start time: from the moment the client sends POST /api/v1/pods to the moment the API's event
 * stream (GET /api/v1/events) says the pod is RUNNING. Berth runs all-in-one (API, control plane,
 * local agent) in its own process, started as `berth server` starts it; this process is the client.
 *
 * Baseline, in the same run on the same daemon: the docker CLI run as a user would run it
 * (`execFile('docker', ['run', '-d', ...])`), timed until it returns, when the container is running.
 * It does the same work Berth asks of Docker: the same image and command, one port published on
 * 0.0.0.0 at a host port chosen for it, a named volume created and mounted at /workspace, the same
 * number of environment variables and labels, a host name, no restart policy. The image is on the
 * machine beforehand for both (no pull).
 *
 * For reading the figures, each round also times the same container made through the Engine API
 * (dockerode create + start, as Berth's agent does it): a stricter reference without the CLI's own
 * start-up, printed but not the target.
 *
 * Runs alternate (baseline then Berth, then Berth then baseline, ...) after warm-up pairs; each
 * container, pod and volume is removed between runs, outside the timed part.
 *
 *   npm run bench -- pod-start [--pairs 15] [--warmup 2]
 */

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { ensureTestImage } from '../test/support/images.js';
import { apiClient, dockerCliCost, gone, intArg, fmt, log, median, msSince, openEvents, quantile, startChild, summary, verdict, type ChildServer } from './common.js';

const run = promisify(execFile);
const TARGET_RATIO = 1.15;

const PAIRS = intArg('--pairs', 15);
const WARMUP = intArg('--warmup', 2);

const COMMAND = ['httpd', '-f', '-p', '8080'];

interface PodEvent {
  id: string;
  status: string;
  statusMessage: string | null;
}

/** When the client saw each pod reach each status, from the event stream. */
class StatusWatch {
  private readonly seen = new Map<string, Map<string, bigint>>();
  private readonly waiters = new Set<() => void>();

  onPod(p: PodEvent): void {
    let m = this.seen.get(p.id);
    if (!m) this.seen.set(p.id, (m = new Map()));
    if (!m.has(p.status)) m.set(p.status, process.hrtime.bigint());
    if (p.status === 'ERROR') m.set(`message:${p.statusMessage ?? ''}`, 0n);
    for (const w of this.waiters) w();
  }

  at(id: string, status: string): bigint | undefined {
    return this.seen.get(id)?.get(status);
  }

  /** The moment `id` was first seen with `status`; throws on ERROR or after `timeoutMs`. */
  async wait(id: string, status: string, timeoutMs = 60_000): Promise<bigint> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const t = this.at(id, status);
      if (t !== undefined) return t;
      const m = this.seen.get(id);
      if (status !== 'TERMINATED' && m?.has('ERROR')) {
        const msg = [...m.keys()].find((k) => k.startsWith('message:'))?.slice(8);
        throw new Error(`pod ${id} went to ERROR: ${msg}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`pod ${id} did not reach ${status} within ${timeoutMs} ms (seen: ${[...(m?.keys() ?? [])].join(', ')})`);
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.waiters.add(done);
      });
    }
  }

  forget(id: string): void {
    this.seen.delete(id);
  }
}


interface BerthRun {
  total: number;
  /** POST answered (201). */
  post: number;
  /** STARTING seen: the agent reported it is creating containers. */
  starting: number | undefined;
}

async function main(): Promise<void> {
  const docker = new Docker();
  const image = await ensureTestImage(docker);
  const work = await mkdtemp(join(tmpdir(), 'berth-bench-start-'));
  let server: ChildServer | undefined;
  let events: { close: () => void } | undefined;
  const berthPods: string[] = [];
  /** The baseline's container and volume while they exist, for clean-up after a failure. */
  let baselineLeft: { name: string; volume: string } | undefined;
  const watch = new StatusWatch();
  try {
    server = await startChild('berth-server', ['--data-dir', join(work, 'data')]);
    const key = (await readFile(join(work, 'data', 'admin.key'), 'utf8')).trim();
    const api = apiClient(server.url, key);
    events = await openEvents(`${server.url}/api/v1/events`, key, (e) => {
      if (e.event === 'pod') watch.onPod(JSON.parse(e.data) as PodEvent);
    });
    log(`berth server ${server.url} (pid ${server.pid}), all-in-one; image ${image}`);

    const podBody = { name: 'bench', image, command: COMMAND, ports: ['8080/http'] };

    const berthOnce = async (): Promise<BerthRun> => {
      const start = process.hrtime.bigint();
      const res = await api<{ id: string }>('POST', '/api/v1/pods', podBody);
      const posted = msSince(start);
      if (res.status !== 201) throw new Error(`POST /api/v1/pods answered ${res.status}: ${JSON.stringify(res.body)}`);
      const id = res.body.id;
      berthPods.push(id);
      const running = await watch.wait(id, 'RUNNING');
      const startingAt = watch.at(id, 'STARTING');
      const out: BerthRun = { total: Number(running - start) / 1e6, post: posted, starting: startingAt === undefined ? undefined : Number(startingAt - start) / 1e6 };
      // Clean-up, not timed: terminate and wait until the agent removed the container and volume disk.
      const t = await api('POST', `/api/v1/pods/${id}/terminate`, {});
      if (t.status !== 200) throw new Error(`terminate ${id} answered ${t.status}: ${JSON.stringify(t.body)}`);
      await gone(docker, `berth.pod=${id}`);
      watch.forget(id);
      berthPods.splice(berthPods.indexOf(id), 1);
      return out;
    };

    // The environment Berth gives this pod: 7 values under BERTH_* and RUNPOD_* names, and the public IP under both.
    const env = Object.entries({ POD_ID: 'x', POD_HOSTNAME: 'x', DC_ID: 'local', GPU_COUNT: '0', CPU_COUNT: '2', MEM_GB: '7', VOLUME_ID: '', PUBLIC_IP: '127.0.0.1' }).flatMap(([k, v]) => [`BERTH_${k}=${v}`, `RUNPOD_${k}=${v}`]);
    const dockerOnce = async (): Promise<number> => {
      const id = randomBytes(7).toString('hex');
      const name = `berth-bench-${id}`;
      const volume = `berth-bench-vol-${id}`;
      const labels = ['managed', 'pod', 'instance', 'node', 'version', 'reset', 'container'].map((l) => `bench.${l}=${id}`);
      const argv = [
        'run', '-d',
        '--name', name,
        '--hostname', id,
        '--restart', 'no',
        '-p', '0.0.0.0::8080',
        '--mount', `type=volume,src=${volume},dst=/workspace`,
        ...env.flatMap((e) => ['-e', e.replace(/=x$/, `=${id}`)]),
        ...labels.flatMap((l) => ['--label', l]),
        image, ...COMMAND,
      ];
      baselineLeft = { name, volume };
      const start = process.hrtime.bigint();
      await run('docker', argv);
      const ms = msSince(start);
      // Clean-up, not timed.
      await run('docker', ['rm', '-f', '-v', name]);
      await run('docker', ['volume', 'rm', volume]);
      baselineLeft = undefined;
      return ms;
    };

    // A stricter reference, not the target's baseline: the same container made through the Engine API
    // (dockerode, as Berth's agent talks to Docker), create then start, without the CLI's process start.
    const engineOnce = async (): Promise<number> => {
      const id = randomBytes(7).toString('hex');
      const name = `berth-bench-${id}`;
      const volume = `berth-bench-vol-${id}`;
      baselineLeft = { name, volume };
      const start = process.hrtime.bigint();
      const c = await docker.createContainer({
        name,
        Hostname: id,
        Image: image,
        Cmd: COMMAND,
        Env: env.map((e) => e.replace(/=x$/, `=${id}`)),
        Labels: Object.fromEntries(['managed', 'pod', 'instance', 'node', 'version', 'reset', 'container'].map((l) => [`bench.${l}`, id])),
        ExposedPorts: { '8080/tcp': {} },
        HostConfig: {
          PortBindings: { '8080/tcp': [{ HostIp: '0.0.0.0', HostPort: '' }] },
          Mounts: [{ Type: 'volume', Source: volume, Target: '/workspace', ReadOnly: false }],
          RestartPolicy: { Name: 'no' },
        },
      });
      await c.start();
      const ms = msSince(start);
      await c.remove({ force: true, v: true });
      await docker.getVolume(volume).remove();
      baselineLeft = undefined;
      return ms;
    };

    const docker_: number[] = [];
    const engine: number[] = [];
    const berth: BerthRun[] = [];
    for (let i = 0; i < WARMUP + PAIRS; i++) {
      const warm = i < WARMUP;
      let d: number;
      let b: BerthRun;
      if (i % 2 === 0) {
        d = await dockerOnce();
        b = await berthOnce();
      } else {
        b = await berthOnce();
        d = await dockerOnce();
      }
      const e = await engineOnce();
      const tag = warm ? `warm-up ${i + 1}` : `pair ${i - WARMUP + 1}`;
      log(`${tag.padEnd(10)} docker run -d ${fmt(d).padStart(9)} | berth ${fmt(b.total).padStart(9)} (POST ${fmt(b.post)}, STARTING at ${b.starting === undefined ? '-' : fmt(b.starting)})  ratio ${(b.total / d).toFixed(2)} | engine API ${fmt(e)}`);
      if (!warm) {
        docker_.push(d);
        berth.push(b);
        engine.push(e);
      }
    }

    // Fixed cost of the docker CLI itself (process start, config, one API round trip), for reading the baseline.
    const cli = await dockerCliCost();

    const totals = berth.map((b) => b.total);
    const ratios = berth.map((b, i) => b.total / docker_[i]!);
    const ratioOfMedians = median(totals) / median(docker_);
    const perRun = docker_.map((d, i) => `${d.toFixed(0)}/${totals[i]!.toFixed(0)}`).join(' ');
    summary('pod-start', [
      ['runs', `${PAIRS} pairs after ${WARMUP} warm-up pairs, interleaved; image ${image}, ${COMMAND.join(' ')}`],
      ['per pair (docker/berth ms)', perRun],
      ['docker run -d', `median ${fmt(median(docker_))}  p90 ${fmt(quantile(docker_, 0.9))}  min ${fmt(Math.min(...docker_))}  max ${fmt(Math.max(...docker_))}`],
      ['berth create → RUNNING', `median ${fmt(median(totals))}  p90 ${fmt(quantile(totals, 0.9))}  min ${fmt(Math.min(...totals))}  max ${fmt(Math.max(...totals))}`],
      ['  of which POST answered', `median ${fmt(median(berth.map((b) => b.post)))}`],
      ['  of which STARTING seen', `median ${fmt(median(berth.flatMap((b) => (b.starting === undefined ? [] : [b.starting]))))}`],
      ['docker CLI fixed cost', `median ${fmt(median(cli))} (docker version: process start + one API call; part of the baseline)`],
      ['reference: Engine API create+start', `median ${fmt(median(engine))}; berth/engine per-run median ${median(berth.map((b, i) => b.total / engine[i]!)).toFixed(2)} (informational, not the target)`],
      ['ratio of medians berth/docker', `${ratioOfMedians.toFixed(2)}`],
      [`median of per-pair ratios (target ≤ ${TARGET_RATIO})`, `${median(ratios).toFixed(2)}  ${verdict(median(ratios), TARGET_RATIO)}`],
    ]);
  } finally {
    events?.close();
    if (baselineLeft) {
      await run('docker', ['rm', '-f', '-v', baselineLeft.name]).catch(() => undefined);
      await run('docker', ['volume', 'rm', baselineLeft.volume]).catch(() => undefined);
    }
    if (server && berthPods.length) {
      const key = (await readFile(join(work, 'data', 'admin.key'), 'utf8')).trim();
      const api = apiClient(server.url, key);
      for (const id of berthPods) {
        await api('POST', `/api/v1/pods/${id}/terminate`, {}).catch(() => undefined);
        await gone(docker, `berth.pod=${id}`).catch(() => undefined);
      }
    }
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
