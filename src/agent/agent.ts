import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect as tcpConnect, type Socket } from 'node:net';
import { cpus, hostname, totalmem } from 'node:os';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { AgentChannel, Assignment, InstanceReport, InteractiveExec, InteractiveExecRequest, NodeAccess } from '../control/agent-protocol.js';
import { BerthError, type ContainerObservation, type DiskUsage, type InstanceId, type InstanceObservation, type InstanceState, type NodeId, type PullProgress } from '../model/index.js';
import { firstFileOfTar, singleFileTar } from '../runtime/tar.js';
import type { ContainerInfo, ContainerPlan, InteractiveRuntime, Runtime } from '../runtime/types.js';
import { discoverGpus, type GpuInventory } from './gpus.js';
import { freePort, portFree } from './ports.js';

export const LABELS = {
  managed: 'berth.managed',
  pod: 'berth.pod',
  instance: 'berth.instance',
  version: 'berth.version',
  reset: 'berth.reset',
  container: 'berth.container',
  node: 'berth.node',
} as const;

export interface AgentOptions {
  channel: AgentChannel;
  runtime: Runtime;
  logger: Logger;
  dataDir: string;
  /** @default os.hostname() */
  name?: string;
  /** The address pods' TCP ports are reached at; BERTH_PUBLIC_IP. @default 127.0.0.1 */
  publicIp?: string;
  /** Where published ports bind on the host. @default 0.0.0.0 */
  bindAddress?: string;
  labels?: Record<string, string>;
  gpuInventoryPath?: string;
  /** How long one watch call waits for a change. @default 25_000 */
  watchWaitMs?: number;
  /** Seconds a container gets between SIGTERM and SIGKILL. @default 10 */
  stopTimeoutSeconds?: number;
}

interface LocalState {
  restarts: number;
  lastStartMs: number;
  restartGenerationDone: number | null;
  backoffTimer: NodeJS.Timeout | null;
  backoffUntil: number;
  pull: PullProgress | null;
  lastReported: string;
  lastLogLines: string[];
  lastExitKey: string | null;
  diskEnforced: boolean;
  message: string | null;
  /** The backoff ran out: the next pass restarts the exited containers. */
  restartDue: boolean;
  /** Reports of one instance go out in order. */
  sending: Promise<void>;
}

/**
 * The node agent: registers, watches its assignments, makes Docker match them and reports what it
 * sees. Level-triggered: every pass compares an assignment with the containers Docker has (found by
 * label), so a restarted agent adopts what is running and never starts a duplicate.
 */
export class Agent implements NodeAccess {
  private nodeId!: NodeId;
  private revision = 0;
  private readonly assignments = new Map<InstanceId, Assignment>();
  private readonly local = new Map<InstanceId, LocalState>();
  private readonly running = new Map<InstanceId, Promise<void>>();
  private readonly again = new Set<InstanceId>();
  private readonly abort = new AbortController();
  private gpus!: GpuInventory;
  private loop: Promise<void> | undefined;
  private diskTimer: NodeJS.Timeout | undefined;
  private lastDisk: Map<string, number> = new Map();

  private constructor(private readonly opts: Required<Omit<AgentOptions, 'gpuInventoryPath' | 'labels'>> & Pick<AgentOptions, 'gpuInventoryPath' | 'labels'>) {}

  static async create(options: AgentOptions): Promise<Agent> {
    const agent = new Agent({
      name: hostname(),
      publicIp: '127.0.0.1',
      bindAddress: '0.0.0.0',
      watchWaitMs: 25_000,
      stopTimeoutSeconds: 10,
      ...options,
    });
    await agent.start();
    return agent;
  }

  get id(): NodeId {
    return this.nodeId;
  }

  private get log(): Logger {
    return this.opts.logger;
  }

  private async start(): Promise<void> {
    const { runtime, channel, dataDir } = this.opts;
    await runtime.ping();
    this.gpus = await discoverGpus(this.opts.gpuInventoryPath);
    if (this.gpus.note) this.log.info({ gpus: this.gpus.gpus.length }, `GPUs: ${this.gpus.note}`);
    await mkdir(dataDir, { recursive: true });
    const idFile = join(dataDir, 'node-id');
    const known = await readFile(idFile, 'utf8').then((s) => s.trim() as NodeId, () => undefined);
    const { nodeId } = await channel.register({
      ...(known ? { nodeId: known } : {}),
      name: this.opts.name,
      publicIp: this.opts.publicIp,
      labels: this.opts.labels ?? {},
      capacity: { cpus: cpus().length, memoryMb: Math.floor(totalmem() / 2 ** 20), gpus: this.gpus.gpus, gpusSimulated: this.gpus.simulated },
      agentVersion: '0.1.0',
    });
    this.nodeId = nodeId;
    if (known !== nodeId) await writeFile(idFile, nodeId + '\n');

    // Only this node's containers: a daemon may be shared (tests run several servers on one).
    runtime.watchEvents(`${LABELS.node}=${nodeId}`, (e) => {
      const id = e.labels[LABELS.instance] as InstanceId | undefined;
      if (!id) return;
      if (e.action === 'die' || e.action === 'start' || e.action === 'destroy' || e.action === 'oom') this.kick(id);
      // Docker sends 'die' a moment before its list shows the container exited: look again shortly.
      if (e.action === 'die') setTimeout(() => this.kick(id), 150).unref();
    }, this.abort.signal);

    // First pass: pick up assignments, then remove containers that no assignment claims.
    const first = await channel.watch(nodeId, 0, 0);
    this.take(first.revision, first.assignments);
    await this.dropNetworkVolumes(first.networkVolumes);
    await this.collectOrphans();
    this.loop = this.watchLoop();
    this.diskTimer = setInterval(() => void this.measureDisk(), 60_000);
    this.diskTimer.unref();
  }

  async close(): Promise<void> {
    this.abort.abort();
    if (this.diskTimer) clearInterval(this.diskTimer);
    for (const s of this.local.values()) if (s.backoffTimer) clearTimeout(s.backoffTimer);
    await this.loop?.catch(() => undefined);
    await Promise.allSettled([...this.running.values()]);
  }

  private async watchLoop(): Promise<void> {
    let failures = 0;
    while (!this.abort.signal.aborted) {
      try {
        const res = await this.opts.channel.watch(this.nodeId, this.revision, this.opts.watchWaitMs, this.abort.signal);
        if (this.abort.signal.aborted) return;
        this.take(res.revision, res.assignments);
        await this.dropNetworkVolumes(res.networkVolumes);
        failures = 0;
      } catch (e) {
        if (this.abort.signal.aborted) return;
        failures++;
        this.log.warn({ err: e }, 'watching assignments failed; retrying');
        await sleep(Math.min(30_000, 500 * 2 ** failures));
      }
    }
  }

  private take(revision: number, assignments: Assignment[]): void {
    this.revision = revision;
    const seen = new Set<InstanceId>();
    for (const a of assignments) {
      seen.add(a.instanceId);
      const prev = this.assignments.get(a.instanceId);
      this.assignments.set(a.instanceId, a);
      if (!prev || JSON.stringify(prev) !== JSON.stringify(a)) this.kick(a.instanceId);
    }
    for (const id of [...this.assignments.keys()]) {
      if (!seen.has(id)) {
        this.assignments.delete(id);
        this.kick(id);
      }
    }
  }

  /** Queues a reconcile of one instance; passes for one instance never overlap. */
  private kick(id: InstanceId): void {
    if (this.abort.signal.aborted) return;
    if (this.running.has(id)) {
      this.again.add(id);
      return;
    }
    const pass = (async () => {
      do {
        this.again.delete(id);
        try {
          await this.reconcile(id);
        } catch (e) {
          // Level-triggered: a later pass sees the same difference and tries again.
          this.log.error({ err: e, instance: id }, 'reconcile failed; trying again in 5 s');
          setTimeout(() => this.kick(id), 5_000).unref();
        }
      } while (this.again.has(id) && !this.abort.signal.aborted);
    })().finally(() => this.running.delete(id));
    this.running.set(id, pass);
  }

  private state(id: InstanceId): LocalState {
    let s = this.local.get(id);
    if (!s) {
      s = {
        restarts: 0,
        lastStartMs: 0,
        restartGenerationDone: null,
        backoffTimer: null,
        backoffUntil: 0,
        pull: null,
        lastReported: '',
        lastLogLines: [],
        lastExitKey: null,
        diskEnforced: true,
        message: null,
        restartDue: false,
        sending: Promise.resolve(),
      };
      this.local.set(id, s);
    }
    return s;
  }

  private async reconcile(id: InstanceId): Promise<void> {
    const { runtime } = this.opts;
    const a = this.assignments.get(id);
    const containers = await runtime.listContainers({ [LABELS.instance]: id, [LABELS.node]: this.nodeId });
    if (!a) {
      // Not ours any more (the pod was deleted while we were away): leave nothing behind.
      for (const c of containers) await runtime.removeContainer(c.id);
      for (const v of await runtime.listVolumes({ [LABELS.instance]: id, [LABELS.node]: this.nodeId, 'berth.kind': 'volume-disk' })) await runtime.removeVolume(v.name);
      this.local.delete(id);
      return;
    }
    const s = this.state(id);
    this.log.debug({ instance: id, goal: a.goal, containers: containers.map((c) => c.state) }, 'reconcile');
    if (a.goal !== 'running') {
      for (const c of containers) await runtime.removeContainer(c.id);
      this.clearBackoff(s);
      s.restarts = 0;
      if (a.goal === 'removed' && a.volumeDisk) await runtime.removeVolume(a.volumeDisk);
      await this.send(a, a.goal === 'removed' ? 'removed' : 'stopped', [], null);
      if (a.goal === 'removed') this.local.delete(id);
      return;
    }

    const order = a.spec.containers.map((c) => c.name);
    // In spec order: the first holds the network namespace and must (re)start before those joining it.
    const current = containers
      .filter((c) => c.labels[LABELS.version] === String(a.specVersion) && c.labels[LABELS.reset] === String(a.resetGeneration))
      .sort((x, y) => order.indexOf(x.labels[LABELS.container] ?? '') - order.indexOf(y.labels[LABELS.container] ?? ''));
    const stale = containers.filter((c) => !current.includes(c));
    for (const c of stale) await runtime.removeContainer(c.id);
    if (current.length !== a.spec.containers.length) {
      for (const c of current) await runtime.removeContainer(c.id);
      await this.launch(a, s);
      return;
    }

    s.restartGenerationDone ??= a.observedRestartGeneration ?? a.restartGeneration;
    if (a.restartGeneration > s.restartGenerationDone) {
      s.restartGenerationDone = a.restartGeneration;
      this.clearBackoff(s);
      for (const c of current) await runtime.restartContainer(c.id, this.opts.stopTimeoutSeconds);
      s.lastStartMs = Date.now();
      return this.observe(a, s, await this.inspectAll(current));
    }
    if (s.restartDue) {
      s.restartDue = false;
      // As Marathon: one failing container replaces the whole instance; a single container restarts in place.
      if (current.length > 1) {
        for (const c of current) await runtime.removeContainer(c.id);
        return this.launch(a, s);
      }
      for (const c of current) if (c.state !== 'running') await runtime.startContainer(c.id);
      s.lastStartMs = Date.now();
      return this.observe(a, s, await this.inspectAll(current));
    }
    await this.observe(a, s, current);
  }

  private async inspectAll(list: ContainerInfo[]): Promise<ContainerInfo[]> {
    const out: ContainerInfo[] = [];
    for (const c of list) {
      const info = await this.opts.runtime.inspectContainer(c.id);
      if (info) out.push(info);
    }
    return out;
  }

  /** Reports running containers; handles an exit with the pod's restart policy and backoff. */
  private async observe(a: Assignment, s: LocalState, containers: ContainerInfo[]): Promise<void> {
    const exited = containers.find((c) => c.state === 'exited' || c.state === 'dead' || c.state === 'created');
    if (!exited) {
      const detailed = containers.some((c) => c.startedAt === null) ? await this.inspectAll(containers) : containers;
      return this.send(a, 'running', detailed, null);
    }
    const info = (await this.opts.runtime.inspectContainer(exited.id)) ?? exited;
    const code = info.exitCode ?? null;
    const exitKey = `${info.id}@${info.finishedAt}`;
    if (s.lastExitKey !== exitKey) {
      s.lastExitKey = exitKey;
      s.lastLogLines = await this.tail(info.id, 20);
      // A container that ran a while before dying starts its backoff afresh.
      if (s.lastStartMs && Date.now() - s.lastStartMs > 60_000) s.restarts = 0;
    }
    const failed = code !== 0;
    const reason = info.error ? `failed: ${info.error}` : `exited with code ${code ?? 'unknown'}`;
    const policy = a.spec.restartPolicy;
    const restart = policy === 'always' || (policy === 'on-failure' && failed);
    const delayS = this.backoffSeconds(a, s);
    s.message = restart ? `${reason}; restarting in ${delayS.toFixed(1)} s` : reason;
    await this.send(a, failed ? 'failed' : 'exited', containers.map((c) => (c.id === info.id ? info : c)), code, s.message);
    if (!restart || s.backoffTimer || s.restartDue) return;
    this.retryAfter(a.instanceId, s, delayS);
  }

  /** After the delay the next pass of the instance's queue restarts it: never beside another pass. */
  private retryAfter(id: InstanceId, s: LocalState, delayS: number): void {
    s.backoffTimer = setTimeout(() => {
      s.backoffTimer = null;
      s.restarts++;
      s.restartDue = true;
      this.kick(id);
    }, delayS * 1000);
  }

  private clearBackoff(s: LocalState): void {
    if (s.backoffTimer) clearTimeout(s.backoffTimer);
    s.backoffTimer = null;
    s.restartDue = false;
  }

  private backoffSeconds(a: Assignment, s: LocalState): number {
    return Math.min(a.spec.backoff.maxSeconds, a.spec.backoff.initialSeconds * a.spec.backoff.factor ** s.restarts);
  }

  /** Pulls, creates volumes, allocates ports, creates and starts every container of the instance. */
  private async launch(a: Assignment, s: LocalState): Promise<void> {
    const { runtime } = this.opts;
    // A backoff set for the containers this launch replaces must not fire on the new ones.
    this.clearBackoff(s);
    try {
      for (const image of new Set(a.spec.containers.map((c) => c.image))) {
        if (await runtime.imageExists(image)) continue;
        s.pull = { image, current: 0, total: 0 };
        await this.send(a, 'pulling', [], null, `pulling ${image}`);
        let lastSent = 0;
        await runtime.pullImage(image, a.registryLogin, (p) => {
          s.pull = { image, current: p.current, total: p.total };
          if (Date.now() - lastSent > 500) {
            lastSent = Date.now();
            void this.send(a, 'pulling', [], null, pullMessage(s.pull));
          }
        }, this.abort.signal);
        s.pull = null;
      }
      await this.send(a, 'creating', [], null, 'creating containers');
      const labels = { [LABELS.managed]: '1', [LABELS.pod]: a.podId, [LABELS.instance]: a.instanceId, [LABELS.node]: this.nodeId };
      if (a.volumeDisk) await runtime.ensureVolume(a.volumeDisk, { ...labels, 'berth.kind': 'volume-disk' });
      if (a.networkVolume) await runtime.ensureVolume(a.networkVolume, { [LABELS.managed]: '1', [LABELS.node]: this.nodeId, 'berth.kind': 'network-volume' });

      const ports: Record<string, number> = {};
      for (const p of a.spec.containers.flatMap((c) => c.ports)) {
        const want = a.hostPorts[String(p.port)];
        ports[String(p.port)] = want && (await portFree(want, this.opts.bindAddress)) ? want : await freePort(this.opts.bindAddress);
      }
      const env: Record<string, string> = { ...a.env, BERTH_PUBLIC_IP: this.opts.publicIp, RUNPOD_PUBLIC_IP: this.opts.publicIp };
      for (const p of a.spec.containers.flatMap((c) => c.ports)) {
        if (p.protocol !== 'tcp') continue;
        env[`BERTH_TCP_PORT_${p.port}`] = String(ports[String(p.port)]);
        env[`RUNPOD_TCP_PORT_${p.port}`] = String(ports[String(p.port)]);
      }
      const mount = a.volumeDisk ?? a.networkVolume;
      const created: string[] = [];
      let owner: string | undefined;
      // The first container holds the network namespace and the published ports; the others join it.
      for (const [i, c] of a.spec.containers.entries()) {
        const plan: ContainerPlan = {
          name: `berth-${a.instanceId}-${c.name}`,
          image: c.image,
          entrypoint: c.entrypoint,
          command: c.command,
          // The device list is ours, after the user's env: on hosts whose default runtime is nvidia,
          // NVIDIA_VISIBLE_DEVICES=all in a pod's env would otherwise expose every GPU of the node.
          env: { ...env, ...c.env, NVIDIA_VISIBLE_DEVICES: a.gpus.map((g) => g.uuid).join(',') || 'void' },
          labels: { ...labels, [LABELS.version]: String(a.specVersion), [LABELS.reset]: String(a.resetGeneration), [LABELS.container]: c.name },
          ports: i === 0 ? a.spec.containers.flatMap((ct) => ct.ports).map((p) => ({ containerPort: p.port, hostPort: ports[String(p.port)]!, hostIp: this.opts.bindAddress })) : [],
          mounts: mount ? [{ source: mount, target: a.spec.volumeMountPath, readOnly: false }] : [],
          cpus: a.spec.vcpuCount,
          memoryBytes: a.spec.memoryGb === null ? null : Math.round(a.spec.memoryGb * 2 ** 30),
          diskBytes: a.spec.containerDiskGb * 2 ** 30,
          gpuUuids: a.gpus.map((g) => g.uuid),
          gpusSimulated: this.gpus.simulated,
          ...(owner ? { networkMode: `container:${owner}` } : { hostname: a.podId }),
        };
        const res = await runtime.createContainer(plan);
        s.diskEnforced = res.diskEnforced;
        created.push(res.id);
        owner ??= res.id;
      }
      await Promise.all(created.map((id) => runtime.startContainer(id)));
      s.lastStartMs = Date.now();
      s.restartGenerationDone = a.restartGeneration;
      s.message = null;
      const infos = await this.inspectAll(created.map((id) => ({ id }) as ContainerInfo));
      await this.observe(a, s, infos);
    } catch (e) {
      s.pull = null;
      const message = e instanceof Error ? e.message : String(e);
      this.log.warn({ err: e, instance: a.instanceId }, 'launch failed');
      const retryable = !(e instanceof BerthError) || e.retryable;
      const delayS = this.backoffSeconds(a, s);
      s.message = `${message}${retryable ? `; retrying in ${delayS.toFixed(1)} s` : ''}`;
      await this.send(a, 'failed', [], null, s.message);
      if (retryable && !s.backoffTimer) this.retryAfter(a.instanceId, s, delayS);
    }
  }

  private async tail(containerId: string, lines: number): Promise<string[]> {
    const out: string[] = [];
    try {
      for await (const l of this.opts.runtime.logs(containerId, { tail: lines })) out.push(l.text);
    } catch {
      // The last lines are a courtesy; an exit is reported without them.
    }
    return out.slice(-lines);
  }

  private async send(a: Assignment, state: InstanceState, containers: ContainerInfo[], exitCode: number | null, message: string | null = null): Promise<void> {
    const s = this.state(a.instanceId);
    const order = a.spec.containers.map((c) => c.name);
    containers = [...containers].sort((x, y) => order.indexOf(x.labels[LABELS.container] ?? '') - order.indexOf(y.labels[LABELS.container] ?? ''));
    const main = containers[0];
    const observation: InstanceObservation = {
      state,
      message: state === 'running' ? null : message,
      exitCode,
      ports: main?.ports ?? {},
      containers: containers.map((c): ContainerObservation => ({
        name: c.labels[LABELS.container] ?? c.name,
        containerId: c.id,
        state: c.state === 'running' ? 'running' : c.state === 'created' ? 'creating' : (c.exitCode ?? 0) === 0 ? 'exited' : 'failed',
        exitCode: c.exitCode,
        startedAt: c.startedAt,
        finishedAt: c.finishedAt,
      })),
      pull: s.pull,
      lastLogLines: state === 'exited' || state === 'failed' ? s.lastLogLines : [],
      startedAt: containers.map((c) => c.startedAt).find((t) => t) ?? null,
      restartCount: s.restarts,
      observedSpecVersion: containers.length ? a.specVersion : null,
      observedResetGeneration: a.resetGeneration,
      observedRestartGeneration: s.restartGenerationDone ?? a.restartGeneration,
      disk: this.diskOf(containers, a, s),
      updatedAt: new Date().toISOString(),
    };
    const key = JSON.stringify({ ...observation, updatedAt: '' });
    if (key === s.lastReported) return;
    s.lastReported = key;
    const report: InstanceReport = { instanceId: a.instanceId, observation };
    // One instance's reports go out one after another, so a slow pull-progress report cannot land after 'running'.
    const sent = s.sending.then(() =>
      this.opts.channel.report(this.nodeId, [report]).catch((e: unknown) => {
        s.lastReported = '';
        this.log.warn({ err: e }, 'report failed');
      }),
    );
    s.sending = sent;
    await sent;
  }

  private diskOf(containers: ContainerInfo[], a: Assignment, s: LocalState): DiskUsage | null {
    if (containers.length === 0) return null;
    const sum = containers.reduce((n, c) => n + (this.lastDisk.get(c.id) ?? 0), 0);
    const vol = a.volumeDisk ?? a.networkVolume;
    return {
      containerDiskBytes: this.lastDisk.size ? sum : null,
      volumeDiskBytes: vol && this.lastDisk.has(`volume:${vol}`) ? this.lastDisk.get(`volume:${vol}`)! : null,
      containerDiskEnforced: s.diskEnforced,
    };
  }

  /** One `system df` for the whole node, not one call per pod. */
  private async measureDisk(): Promise<void> {
    if (this.assignments.size === 0) return;
    try {
      const df = await this.opts.runtime.diskUsage();
      const m = new Map<string, number>();
      for (const [id, bytes] of Object.entries(df.containers)) m.set(id, bytes);
      for (const [name, bytes] of Object.entries(df.volumes)) m.set(`volume:${name}`, bytes);
      this.lastDisk = m;
      for (const id of this.assignments.keys()) this.kick(id);
    } catch (e) {
      this.log.debug({ err: e }, 'disk usage unavailable');
    }
  }

  /** Removes the node's copies of deleted network volumes; one still mounted stays until its pod is gone. */
  private async dropNetworkVolumes(existing: string[]): Promise<void> {
    const keep = new Set(existing);
    for (const v of await this.opts.runtime.listVolumes({ [LABELS.managed]: '', [LABELS.node]: this.nodeId, 'berth.kind': 'network-volume' })) {
      if (keep.has(v.name)) continue;
      await this.opts.runtime.removeVolume(v.name).then(
        () => this.log.info({ volume: v.name }, 'removed a deleted network volume'),
        (err: unknown) => this.log.warn({ err, volume: v.name }, 'cannot remove a deleted network volume yet'),
      );
    }
  }

  /** Containers and volume disks with our labels that no assignment claims: left from pods deleted while away. */
  private async collectOrphans(): Promise<void> {
    // Only this node's containers: several agents may share one Docker daemon in tests.
    const all = await this.opts.runtime.listContainers({ [LABELS.managed]: '', [LABELS.node]: this.nodeId });
    for (const c of all) {
      const id = c.labels[LABELS.instance] as InstanceId | undefined;
      if (id && !this.assignments.has(id)) {
        this.log.info({ container: c.name }, 'removing a container no assignment claims');
        await this.opts.runtime.removeContainer(c.id);
      }
    }
    for (const v of await this.opts.runtime.listVolumes({ [LABELS.managed]: '', [LABELS.node]: this.nodeId, 'berth.kind': 'volume-disk' })) {
      const id = v.labels[LABELS.instance] as InstanceId | undefined;
      if (id && !this.assignments.has(id)) {
        this.log.info({ volume: v.name }, 'removing a volume disk no assignment claims');
        await this.opts.runtime.removeVolume(v.name).catch((err: unknown) => this.log.warn({ err, volume: v.name }, 'cannot remove an orphaned volume disk'));
      }
    }
  }

  private containerOf(instanceId: InstanceId, name: string | undefined): Promise<ContainerInfo> {
    // Docker lists newest first; the default is the spec's first container.
    const wanted = name ?? this.assignments.get(instanceId)?.spec.containers[0]?.name;
    return this.opts.runtime.listContainers({ [LABELS.instance]: instanceId, [LABELS.node]: this.nodeId }).then((list) => {
      const c = wanted ? list.find((x) => x.labels[LABELS.container] === wanted) : list[0];
      if (!c) throw new BerthError('CONFLICT', name ? `container ${name} of ${instanceId} does not exist` : `instance ${instanceId} has no container now`);
      return c;
    });
  }

  async *logs(instanceId: InstanceId, container: string | undefined, opts: { tail?: number; since?: string; follow?: boolean }, signal?: AbortSignal) {
    const c = await this.containerOf(instanceId, container);
    yield* this.opts.runtime.logs(c.id, opts, signal);
  }

  async exec(instanceId: InstanceId, container: string | undefined, argv: string[], timeoutMs: number) {
    const c = await this.containerOf(instanceId, container);
    if (c.state !== 'running') throw new BerthError('CONFLICT', `container ${c.labels[LABELS.container] ?? c.name} is not running`);
    return this.opts.runtime.exec(c.id, argv, { timeoutMs });
  }

  private interactiveRuntime(): InteractiveRuntime {
    const r = this.opts.runtime as Runtime & Partial<InteractiveRuntime>;
    if (!r.openExec || !r.containerAddress || !r.containerGateway || !r.getArchive || !r.putArchive) throw new BerthError('CONFLICT', "this node's runtime offers no interactive access");
    return r as InteractiveRuntime;
  }

  private async runningContainer(instanceId: InstanceId, container: string | undefined): Promise<ContainerInfo> {
    const c = await this.containerOf(instanceId, container);
    if (c.state !== 'running') throw new BerthError('CONFLICT', `container ${c.labels[LABELS.container] ?? c.name} is not running`);
    return c;
  }

  async openExec(instanceId: InstanceId, container: string | undefined, req: InteractiveExecRequest): Promise<InteractiveExec> {
    const c = await this.runningContainer(instanceId, container);
    return this.interactiveRuntime().openExec(c.id, {
      argv: req.argv,
      tty: req.tty,
      env: Object.entries(req.env ?? {}).map(([k, v]) => `${k}=${v}`),
      ...(req.cols ? { cols: req.cols } : {}),
      ...(req.rows ? { rows: req.rows } : {}),
    });
  }

  /** Connects to the pod's address on its Docker network: the first container holds the namespace all of them share. */
  async connect(instanceId: InstanceId, port: number): Promise<Socket> {
    const c = await this.runningContainer(instanceId, undefined);
    const ip = await this.interactiveRuntime().containerAddress(c.id);
    if (!ip) throw new BerthError('CONFLICT', `instance ${instanceId} has no network address`);
    return new Promise((resolve, reject) => {
      const socket = tcpConnect({ host: ip, port, noDelay: true });
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', (err: NodeJS.ErrnoException) => {
        reject(new BerthError('CONFLICT', err.code === 'ECONNREFUSED' ? `nothing listens on port ${port} in the pod` : `cannot connect to port ${port} in the pod: ${err.message}`, { cause: err }));
      });
    });
  }

  async hostAddress(instanceId: InstanceId): Promise<string> {
    const c = await this.runningContainer(instanceId, undefined);
    const gw = await this.interactiveRuntime().containerGateway(c.id);
    if (!gw) throw new BerthError('CONFLICT', `instance ${instanceId} is on no network the node can listen on`);
    return gw;
  }

  async readFile(instanceId: InstanceId, container: string | undefined, path: string, signal?: AbortSignal): Promise<{ size: number; content: Readable }> {
    const c = await this.containerOf(instanceId, container);
    const tar = await this.interactiveRuntime().getArchive(c.id, path, signal);
    try {
      const file = await firstFileOfTar(tar);
      return { size: file.size, content: file.content };
    } catch (err) {
      if (err instanceof BerthError) throw err;
      throw new BerthError('VALIDATION', `${path}: ${(err as Error).message}`, { cause: err, extra: { path } });
    }
  }

  async writeFile(instanceId: InstanceId, container: string | undefined, path: string, content: Readable, size: number, mode: number): Promise<void> {
    const c = await this.containerOf(instanceId, container);
    const tar = singleFileTar(posix.basename(path), size, mode, Date.now() / 1000, content);
    await this.interactiveRuntime().putArchive(c.id, posix.dirname(path), tar);
  }
}

function pullMessage(p: PullProgress): string {
  if (!p.total) return `pulling ${p.image}`;
  const mb = (n: number): string => (n / 1e6).toFixed(0);
  return `pulling ${p.image}: ${Math.floor((100 * p.current) / p.total)}% (${mb(p.current)}/${mb(p.total)} MB)`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
