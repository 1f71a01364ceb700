// bench: marathon-pod — a 3-container Marathon pod with a shared ephemeral volume, POST → STABLE, vs a docker CLI script doing the same (target: median ratio ≤ 1.0)
/**
 * Multi-container pod start: from the moment the client sends POST /marathon/v2/pods to the moment
 * GET /marathon/v2/pods/<id>::status answers `"status": "STABLE"` (every instance running and its
 * health checks passing). The pod: an ephemeral volume `shared` mounted at /shared in each of three
 * containers on one network namespace (`container/bridge`, an infra container holding it), two of them
 * serving HTTP on a published endpoint with a health check, the third a worker without one. Berth runs
 * all-in-one (API, control plane, local agent) in a child process, as `berth server` starts it.
 *
 * Baseline, in the same run on the same daemon: the shell script a user would write for the same pod,
 * run as a shell runs it, one docker command after the other, timed until the last returns (then every
 * container is running):
 *
 *   docker volume create V
 *   docker run -d --name P-infra --hostname P -p 0.0.0.0::8080 -p 0.0.0.0::8081 localhost/berth-infra:<hash>
 *   docker run -d --name P-web    --network container:P-infra -v V:/shared --cpus 0.25 --memory 64m IMAGE sh -c '…httpd…'
 *   docker run -d --name P-api    --network container:P-infra -v V:/shared --cpus 0.25 --memory 64m IMAGE httpd …
 *   docker run -d --name P-worker --network container:P-infra -v V:/shared --cpus 0.25 --memory 64m IMAGE sh -c '…'
 *
 * with the same images, commands and CPU/memory limits Berth gives each container, and the same infra
 * image: Berth's own (built from the node's catatonit, src/agent/infra-image.ts), made before the
 * first run so that neither side builds it in a timed run. It waits for no health check (a script has none); Berth's figure includes
 * its health checks passing.
 *
 * Runs alternate (baseline then Berth, then Berth then baseline, ...) after warm-up pairs; each pod,
 * container and volume is removed between runs, outside the timed part. Berth's time is split with the
 * native event stream (/api/v1/events): placed on the node, STARTING (the agent creating containers),
 * running, healthy, STABLE; after each run Docker's own Created/StartedAt of the pod's containers show
 * when each was created and started.
 *
 *   npm run bench -- marathon-pod [--pairs 15] [--warmup 2] [--api marathon|native]
 *
 * `--api native` drives the same pod through POST /api/v1/pods (timed until the pod view shows every
 * instance running and healthy), for comparing the two layers; the default is the Marathon API.
 */

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import pino from 'pino';
import { LocalInfraImage } from '../src/agent/infra-image.js';
import { DockerRuntime } from '../src/runtime/docker.js';
import { ensureTestImage } from '../test/support/images.js';
import { apiClient, dockerCliCost, fmt, gone, intArg, log, median, msSince, openEvents, quantile, sleep, startChild, summary, verdict, type ChildServer } from './common.js';

const run = promisify(execFile);
const TARGET_RATIO = 1.0;

const PAIRS = intArg('--pairs', 15);
const WARMUP = intArg('--warmup', 2);
const API: 'marathon' | 'native' = process.argv.includes('--api') ? (process.argv[process.argv.indexOf('--api') + 1] === 'native' ? 'native' : 'marathon') : 'marathon';

/** Each app container's share: what Marathon requires a container to state, enforced by Docker on both sides. */
const CPUS = 0.25;
const MEM_MB = 64;

/** The three containers, the same on both sides. web and api answer HTTP; worker has no health check. */
interface App {
  name: string;
  command: string[];
  port: number | null;
  health: 'http' | 'tcp' | null;
}
const APPS: App[] = [
  // Serves a page it writes into the shared volume.
  { name: 'web', command: ['sh', '-c', 'echo ok > /shared/index.html && exec httpd -f -p 8080 -h /shared'], port: 8080, health: 'http' },
  { name: 'api', command: ['httpd', '-f', '-p', '8081', '-h', '/shared'], port: 8081, health: 'tcp' },
  { name: 'worker', command: ['sh', '-c', 'while :; do date > /shared/now; sleep 1; done'], port: null, health: null },
];

/** As Marathon's pod health check, tightened so the verdict comes with the first probe. */
const HEALTH_TIMING = { gracePeriodSeconds: 30, intervalSeconds: 2, timeoutSeconds: 1, maxConsecutiveFailures: 3, delaySeconds: 0 };

function marathonPod(id: string, image: string): Record<string, unknown> {
  return {
    id,
    scaling: { kind: 'fixed', instances: 1 },
    volumes: [{ name: 'shared' }],
    networks: [{ mode: 'container/bridge' }],
    containers: APPS.map((a) => ({
      name: a.name,
      image: { kind: 'DOCKER', id: image },
      exec: { command: { argv: a.command } },
      resources: { cpus: CPUS, mem: MEM_MB },
      volumeMounts: [{ name: 'shared', mountPath: '/shared' }],
      ...(a.port !== null ? { endpoints: [{ name: a.name, containerPort: a.port, hostPort: 0, protocol: ['http'] }] } : {}),
      ...(a.health === 'http' ? { healthCheck: { http: { endpoint: a.name, path: '/', scheme: 'HTTP' }, ...HEALTH_TIMING } } : {}),
      ...(a.health === 'tcp' ? { healthCheck: { tcp: { endpoint: a.name }, ...HEALTH_TIMING } } : {}),
    })),
  };
}

function nativePod(name: string, image: string): Record<string, unknown> {
  return {
    name,
    volumeGb: 0,
    startSsh: false,
    volumes: [{ name: 'shared', kind: 'ephemeral' }],
    network: { mode: 'bridge' },
    containers: APPS.map((a) => ({
      name: a.name,
      image,
      command: a.command,
      resources: { cpus: CPUS, memoryMb: MEM_MB },
      volumeMounts: [{ name: 'shared', mountPath: '/shared' }],
      ...(a.port !== null ? { endpoints: [{ name: a.name, containerPort: a.port, hostPort: 0, protocols: ['http'] }] } : {}),
      ...(a.health === 'http' ? { healthCheck: { kind: 'http', endpoint: a.name, path: '/', ...HEALTH_TIMING } } : {}),
      ...(a.health === 'tcp' ? { healthCheck: { kind: 'tcp', endpoint: a.name, ...HEALTH_TIMING } } : {}),
    })),
  };
}

/** The parts of the native pod view (GET /api/v1/pods/:id, the event stream) this bench reads. */
interface PodView {
  id: string;
  name: string;
  status: string;
  statusMessage: string | null;
  marathonId: string | null;
  instances: { nodeId: string | null; state: string; healthy: boolean | null; message: string | null }[];
}

/** Moments of one Berth run, from the native event stream, in ms after the POST was sent. */
interface Phases {
  placed?: number;
  starting?: number;
  running?: number;
  healthy?: number;
}

interface BerthRun {
  total: number;
  post: number;
  phases: Phases;
  /** Per container (infra first when there is one): ms after the POST that Docker created and started it. */
  containers: { name: string; created: number; started: number }[];
  /** STABLE was first seen by the slow safety poll rather than right after an event. */
  byPoll: boolean;
}

/**
 * Follows the native event stream: remembers, per pod, when it first saw each phase, and wakes whoever
 * waits on that pod. Pods are found by their Marathon path id, or else by name (known before the POST
 * answers, so no early event is missed).
 */
class PodWatch {
  private readonly byKey = new Map<string, { start: bigint; phases: Phases; events: number; podId?: string; last?: PodView; wake?: () => void }>();

  track(key: string, start: bigint): void {
    this.byKey.set(key, { start, phases: {}, events: 0 });
  }

  onPod(v: PodView): void {
    const e = this.byKey.get(v.marathonId ?? v.name);
    if (!e) return;
    const at = msSince(e.start);
    e.podId = v.id;
    e.last = v;
    e.events++;
    const insts = v.instances;
    if (e.phases.placed === undefined && insts.length > 0 && insts.every((i) => i.nodeId)) e.phases.placed = at;
    if (e.phases.starting === undefined && (v.status === 'STARTING' || insts.some((i) => i.state === 'creating'))) e.phases.starting = at;
    if (e.phases.running === undefined && insts.length > 0 && insts.every((i) => i.state === 'running')) e.phases.running = at;
    if (e.phases.healthy === undefined && insts.length > 0 && insts.every((i) => i.state === 'running' && i.healthy === true)) e.phases.healthy = at;
    e.wake?.();
  }

  get(key: string) {
    return this.byKey.get(key);
  }

  /** Resolves at the next event for `key`, or after `ms`. */
  next(key: string, ms: number): Promise<void> {
    const e = this.byKey.get(key);
    if (!e) return sleep(ms);
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        if (e!.wake === done) delete e!.wake;
        resolve();
      }
      e.wake = done;
    });
  }

  forget(key: string): void {
    this.byKey.delete(key);
  }
}


/**
 * Docker's own creation and start moments of a pod's containers, in ms after `wallStartMs`; and a check
 * that Berth asked Docker for what the baseline script asks (else the comparison would be unfair).
 */
async function containerTimes(docker: Docker, podId: string, wallStartMs: number): Promise<BerthRun['containers']> {
  const list = await docker.listContainers({ all: true, filters: { label: [`berth.pod=${podId}`] } });
  const inspected = await Promise.all(list.map((c) => docker.getContainer(c.Id).inspect()));
  const infra = inspected.find((i) => i.Config.Labels['berth.role'] === 'infra');
  const apps = inspected.filter((i) => i !== infra);
  const volumes = new Set(apps.map((i) => i.Mounts.find((m) => m.Destination === '/shared')?.Name));
  const bindings = Object.values(infra?.HostConfig.PortBindings ?? {}).flat().length;
  const problems = [
    ...(infra ? [] : ['no infra container']),
    ...(bindings === APPS.filter((a) => a.port !== null).length ? [] : [`infra publishes ${bindings} ports`]),
    ...(apps.length === APPS.length ? [] : [`${apps.length} app containers`]),
    ...(volumes.size === 1 ? [] : ['the containers do not share one volume at /shared']),
    ...apps.flatMap((i) => {
      const shared = i.Mounts.some((m) => m.Destination === '/shared' && m.Type === 'volume');
      return [
        ...(i.HostConfig.NetworkMode === `container:${infra?.Id}` ? [] : [`${i.Name} network ${i.HostConfig.NetworkMode}`]),
        ...(shared ? [] : [`${i.Name} has no volume at /shared`]),
        ...(i.HostConfig.NanoCpus === CPUS * 1e9 && i.HostConfig.Memory === MEM_MB * 2 ** 20 ? [] : [`${i.Name} limits ${i.HostConfig.NanoCpus} ns cpu, ${i.HostConfig.Memory} bytes`]),
      ];
    }),
  ];
  if (problems.length) throw new Error(`pod ${podId} is not the pod the baseline script makes: ${problems.join('; ')}`);
  return inspected
    .map((i) => ({ name: i === infra ? 'infra' : (i.Config.Labels['berth.container'] ?? i.Name), created: Date.parse(i.Created) - wallStartMs, started: Date.parse(i.State.StartedAt) - wallStartMs }))
    .sort((a, b) => a.created - b.created);
}

async function main(): Promise<void> {
  const docker = new Docker();
  const image = await ensureTestImage(docker);
  const infraImage = await new LocalInfraImage(await DockerRuntime.create(), pino({ level: 'silent' })).ensure();
  const work = await mkdtemp(join(tmpdir(), 'berth-bench-mpod-'));
  let server: ChildServer | undefined;
  let events: { close: () => void } | undefined;
  /** Berth pods not yet deleted, by their key in the watch (Marathon id or native name). */
  const berthLeft = new Set<string>();
  /** The baseline's containers and volume while they exist, for clean-up after a failure. */
  let baselineLeft: { names: string[]; volume: string } | undefined;
  const watch = new PodWatch();
  try {
    server = await startChild('berth-server', ['--data-dir', join(work, 'data')]);
    const key = (await readFile(join(work, 'data', 'admin.key'), 'utf8')).trim();
    const api = apiClient(server.url, key);
    events = await openEvents(`${server.url}/api/v1/events`, key, (e) => {
      if (e.event === 'pod') watch.onPod(JSON.parse(e.data) as PodView);
    });
    const nodes = await api<{ nodes?: { id: string }[] } | { id: string }[]>('GET', '/api/v1/nodes');
    const nodeList = Array.isArray(nodes.body) ? nodes.body : (nodes.body.nodes ?? []);
    const nodeId = nodeList[0]?.id;
    if (!nodeId) throw new Error(`no node registered: ${JSON.stringify(nodes.body)}`);
    if (API === 'marathon') {
      const probe = await api('GET', '/marathon/v2/pods');
      if (probe.status !== 200) throw new Error(`GET /marathon/v2/pods answered ${probe.status}; run with --api native where the Marathon API is not there`);
    }
    log(`berth server ${server.url} (pid ${server.pid}), all-in-one, node ${nodeId}; ${API} API; image ${image}`);

    /** True when the pod is STABLE as the API in use reports it. */
    const stable = async (key: string): Promise<boolean> => {
      if (API === 'marathon') {
        const s = await api<{ status?: string }>('GET', `/marathon/v2/pods${key}::status`);
        return s.status === 200 && s.body.status === 'STABLE';
      }
      const podId = watch.get(key)?.podId;
      if (!podId) return false;
      const v = await api<PodView>('GET', `/api/v1/pods/${podId}`);
      return v.status === 200 && v.body.status === 'RUNNING' && v.body.instances.length > 0 && v.body.instances.every((i) => i.state === 'running' && i.healthy === true);
    };

    let seq = 0;
    const berthOnce = async (): Promise<BerthRun> => {
      const n = ++seq;
      const wallStart = Date.now();
      const start = process.hrtime.bigint();
      let runKey: string;
      let posted: number;
      if (API === 'marathon') {
        runKey = `/bench/pod-${n}`;
        watch.track(runKey, start);
        berthLeft.add(runKey);
        const res = await api('POST', '/marathon/v2/pods', marathonPod(runKey, image));
        posted = msSince(start);
        if (res.status !== 201) throw new Error(`POST /marathon/v2/pods answered ${res.status}: ${JSON.stringify(res.body)}`);
      } else {
        runKey = `bench-${n}`;
        watch.track(runKey, start);
        const res = await api<{ id: string }>('POST', '/api/v1/pods', nativePod(runKey, image));
        posted = msSince(start);
        if (res.status !== 201) throw new Error(`POST /api/v1/pods answered ${res.status}: ${JSON.stringify(res.body)}`);
        watch.get(runKey)!.podId = res.body.id;
        berthLeft.add(runKey);
      }
      // Asks after each event for the pod, and every 50 ms in case STABLE follows a change the stream does not show.
      const entry = watch.get(runKey)!;
      let checkedAt = -1;
      let byPoll = false;
      const deadline = Date.now() + 60_000;
      for (;;) {
        const events = entry.events;
        if (await stable(runKey)) {
          byPoll = events === checkedAt;
          break;
        }
        checkedAt = events;
        if (Date.now() > deadline) throw new Error(`${runKey} not STABLE within 60 s; last view: ${JSON.stringify(entry.last ?? null)}`);
        if (entry.last?.status === 'ERROR' || entry.last?.instances.some((i) => i.state === 'failed')) throw new Error(`${runKey} failed: ${JSON.stringify(entry.last)}`);
        if (entry.events === events) await watch.next(runKey, 50);
      }
      const total = msSince(start);
      const podId = entry.podId;
      if (!podId) throw new Error(`${runKey}: STABLE without an event naming its pod`);
      // Outside the timing: Docker's own record of the containers, then removal.
      const containers = await containerTimes(docker, podId, wallStart);
      await removeBerth(runKey, podId);
      berthLeft.delete(runKey);
      watch.forget(runKey);
      return { total, post: posted, phases: entry.phases, containers, byPoll };
    };

    const removeBerth = async (runKey: string, podId: string | undefined): Promise<void> => {
      if (API === 'marathon') {
        const d = await api('DELETE', `/marathon/v2/pods${runKey}?force=true`);
        if (d.status !== 200 && d.status !== 202 && d.status !== 404) throw new Error(`DELETE ${runKey} answered ${d.status}: ${JSON.stringify(d.body)}`);
      } else {
        const t = await api('POST', `/api/v1/pods/${podId}/terminate`, {});
        if (t.status !== 200) throw new Error(`terminate ${runKey} answered ${t.status}: ${JSON.stringify(t.body)}`);
      }
      if (podId) await gone(docker, `berth.pod=${podId}`);
      // Anything else of this node's (an ephemeral volume labelled by instance, say).
      await gone(docker, `berth.node=${nodeId}`);
    };

    const baselineOnce = async (): Promise<{ total: number; steps: number[] }> => {
      const id = randomBytes(6).toString('hex');
      const p = `berth-bench-${id}`;
      const volume = `${p}-shared`;
      const infra = `${p}-infra`;
      const limits = ['--cpus', String(CPUS), '--memory', `${MEM_MB}m`];
      const script: string[][] = [
        ['volume', 'create', volume],
        ['run', '-d', '--name', infra, '--hostname', id, ...APPS.flatMap((a) => (a.port !== null ? ['-p', `0.0.0.0::${a.port}`] : [])), infraImage],
        ...APPS.map((a) => ['run', '-d', '--name', `${p}-${a.name}`, '--network', `container:${infra}`, '-v', `${volume}:/shared`, ...limits, image, ...a.command]),
      ];
      baselineLeft = { names: [infra, ...APPS.map((a) => `${p}-${a.name}`)], volume };
      const steps: number[] = [];
      const start = process.hrtime.bigint();
      for (const argv of script) {
        await run('docker', argv);
        steps.push(msSince(start));
      }
      const total = msSince(start);
      // Clean-up, not timed.
      await run('docker', ['rm', '-f', '-v', ...baselineLeft.names]);
      await run('docker', ['volume', 'rm', volume]);
      baselineLeft = undefined;
      return { total, steps };
    };

    const base: number[] = [];
    const baseSteps: number[][] = [];
    const berth: BerthRun[] = [];
    for (let i = 0; i < WARMUP + PAIRS; i++) {
      const warm = i < WARMUP;
      let d: { total: number; steps: number[] };
      let b: BerthRun;
      if (i % 2 === 0) {
        d = await baselineOnce();
        b = await berthOnce();
      } else {
        b = await berthOnce();
        d = await baselineOnce();
      }
      const tag = warm ? `warm-up ${i + 1}` : `pair ${i - WARMUP + 1}`;
      const ph = b.phases;
      const at = (v: number | undefined): string => (v === undefined ? '-' : v.toFixed(0));
      const cs = b.containers.map((c) => `${c.name} ${c.created.toFixed(0)}/${c.started.toFixed(0)}`).join(', ');
      log(`${tag.padEnd(10)} script ${fmt(d.total).padStart(9)} (steps end at ${d.steps.map((x) => x.toFixed(0)).join(' ')}) | berth ${fmt(b.total).padStart(9)} ratio ${(b.total / d.total).toFixed(2)} | POST ${b.post.toFixed(0)} placed ${at(ph.placed)} STARTING ${at(ph.starting)} running ${at(ph.running)} healthy ${at(ph.healthy)}${b.byPoll ? ' (STABLE by poll)' : ''} | created/started ${cs}`);
      if (!warm) {
        base.push(d.total);
        baseSteps.push(d.steps);
        berth.push(b);
      }
    }

    // Fixed cost of one docker CLI call (process start, config, one API round trip), for reading the baseline: the script makes five.
    const cli = await dockerCliCost();

    const totals = berth.map((b) => b.total);
    const ratios = berth.map((b, i) => b.total / base[i]!);
    const phase = (k: keyof Phases): string => {
      const xs = berth.flatMap((b) => (b.phases[k] === undefined ? [] : [b.phases[k]!]));
      return xs.length ? `median ${fmt(median(xs))}` : 'not seen';
    };
    const names = berth[0]?.containers.map((c) => c.name) ?? [];
    const perContainer = names.map((n) => {
      const created = berth.flatMap((b) => b.containers.filter((c) => c.name === n).map((c) => c.created));
      const started = berth.flatMap((b) => b.containers.filter((c) => c.name === n).map((c) => c.started));
      return `${n} ${median(created).toFixed(0)}/${median(started).toFixed(0)}`;
    });
    summary('marathon-pod', [
      ['runs', `${PAIRS} pairs after ${WARMUP} warm-up pairs, interleaved; ${API} API; 3 containers of ${image} (web: http check, api: tcp check, worker: none) sharing volume "shared", infra ${infraImage}`],
      ['per pair (script/berth ms)', base.map((d, i) => `${d.toFixed(0)}/${totals[i]!.toFixed(0)}`).join(' ')],
      ['docker CLI script', `median ${fmt(median(base))}  p90 ${fmt(quantile(base, 0.9))}  min ${fmt(Math.min(...base))}  max ${fmt(Math.max(...base))}`],
      ['  steps end at (ms, medians)', ['volume create', 'infra', ...APPS.map((a) => a.name)].map((n, k) => `${n} ${median(baseSteps.map((x) => x[k]!)).toFixed(0)}`).join(', ')],
      ['berth POST → STABLE', `median ${fmt(median(totals))}  p90 ${fmt(quantile(totals, 0.9))}  min ${fmt(Math.min(...totals))}  max ${fmt(Math.max(...totals))}`],
      ['  POST answered', `median ${fmt(median(berth.map((b) => b.post)))}`],
      ['  placed on the node', phase('placed')],
      ['  STARTING (agent creating)', phase('starting')],
      ['  all containers running', phase('running')],
      ['  health checks passed', phase('healthy')],
      ['  STABLE first seen by the 50 ms poll', `${berth.filter((b) => b.byPoll).length} of ${berth.length} runs (else right after an event)`],
      ['  docker created/started (ms after POST)', perContainer.join(', ')],
      ['docker CLI fixed cost', `median ${fmt(median(cli))} per call (docker version); the script makes ${APPS.length + 2}`],
      ['ratio of medians berth/script', `${(median(totals) / median(base)).toFixed(2)}`],
      [`median of per-pair ratios (target ≤ ${TARGET_RATIO})`, `${median(ratios).toFixed(2)}  ${verdict(median(ratios), TARGET_RATIO)}`],
    ]);
  } finally {
    events?.close();
    if (baselineLeft) {
      await run('docker', ['rm', '-f', '-v', ...baselineLeft.names]).catch(() => undefined);
      await run('docker', ['volume', 'rm', baselineLeft.volume]).catch(() => undefined);
    }
    if (server && berthLeft.size) {
      const key = (await readFile(join(work, 'data', 'admin.key'), 'utf8')).trim();
      const api = apiClient(server.url, key);
      for (const k of berthLeft) {
        if (API === 'marathon') await api('DELETE', `/marathon/v2/pods${k}?force=true`).catch(() => undefined);
        const podId = watch.get(k)?.podId;
        if (API === 'native' && podId) await api('POST', `/api/v1/pods/${podId}/terminate`, {}).catch(() => undefined);
        if (podId) await gone(docker, `berth.pod=${podId}`).catch(() => undefined);
      }
    }
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
