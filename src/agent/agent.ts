import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, hostname, totalmem } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { AgentChannel, Assignment, InstanceReport } from '../control/agent-protocol.js';
import {
  BerthError,
  type ContainerObservation,
  type ContainerSpec,
  type DiskUsage,
  type EndpointSpec,
  type InstanceId,
  type InstanceObservation,
  type InstanceState,
  type NodeId,
  type PullProgress,
} from '../model/index.js';
import { singleFileTar, type TarOwner } from '../runtime/tar.js';
import type { ContainerInfo, ContainerPlan, CreateResult, Runtime } from '../runtime/types.js';
import { containerPlan, holderPlan, infraPlan, podEnv, usesInfra } from './container-plan.js';
import { GarbageCollector } from './garbage-collector.js';
import { discoverGpus, type GpuInventory } from './gpus.js';
import { LocalInfraImage } from './infra-image.js';
import { HealthMonitor, type HealthAddress, type HealthTarget } from './health.js';
import {
  ephemeralVolumeName,
  INSTANCE_VOLUME_KINDS,
  isInfra,
  jsonLabel,
  generationLabels,
  instanceLabels,
  LABELS,
  persistentVolumeName,
  sortContainers,
  specOf,
  type InstanceVolumeKind,
} from './labels.js';
import { interactiveRuntime, LocalNodeAccess } from './node-access.js';
import { listenPort } from './pod-env.js';
import { allocatePorts } from './ports.js';
import { RestartTracker } from './restarts.js';

export { ephemeralVolumeName, LABELS, persistentVolumeName } from './labels.js';
export { containerGpus, usesInfra } from './container-plan.js';

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
  /**
   * The infra container's image, pulled without registry credentials when missing.
   * @default the node's own, built from catatonit on first use (see infra-image.ts)
   */
  infraImage?: string;
  /** Where the node's catatonit is, for its own infra image. @default the usual places (CATATONIT_PATHS) */
  catatonitPath?: string;
}

/** Options with no default: absent means "not set". */
type OptionalOption = 'gpuInventoryPath' | 'labels' | 'infraImage' | 'catatonitPath';

interface LocalState {
  backoff: RestartTracker;
  restartGenerationDone: number | null;
  pull: PullProgress | null;
  lastReported: string;
  lastLogLines: string[];
  lastExitKey: string | null;
  diskEnforced: boolean;
  message: string | null;
  /** Reports of one instance go out in order. */
  sending: Promise<void>;
  /** The running containers' health checks; null when none run. */
  health: HealthMonitor | null;
  /** The containers (id@start) the monitor checks: other containers get a new one. */
  healthKey: string;
  /** Why a failed health check condemned the instance; cleared by the next launch. */
  unhealthy: string | null;
}

/**
 * The node agent: registers, watches its assignments, makes Docker match them and reports what it
 * sees. Level-triggered: every pass compares an assignment with the containers Docker has (found by
 * label), so a restarted agent adopts what is running and never starts a duplicate.
 */
export class Agent {
  private nodeId!: NodeId;
  /** Logs, exec and the interactive access to this node's pods. */
  access!: LocalNodeAccess;
  private gc!: GarbageCollector;
  private revision = 0;
  private readonly assignments = new Map<InstanceId, Assignment>();
  private readonly local = new Map<InstanceId, LocalState>();
  private readonly running = new Map<InstanceId, Promise<void>>();
  private readonly again = new Set<InstanceId>();
  private readonly infraImage: LocalInfraImage;
  private readonly abort = new AbortController();
  private gpus!: GpuInventory;
  private loop: Promise<void> | undefined;
  private diskTimer: NodeJS.Timeout | undefined;
  private lastDisk: Map<string, number> = new Map();

  private constructor(private readonly opts: Required<Omit<AgentOptions, OptionalOption>> & Pick<AgentOptions, OptionalOption>) {
    this.infraImage = new LocalInfraImage(opts.runtime, opts.logger, opts.catatonitPath ? [opts.catatonitPath] : undefined);
  }

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
    this.access = new LocalNodeAccess(runtime, nodeId, (id) => this.assignments.get(id));
    this.gc = new GarbageCollector(runtime, this.log, nodeId, (id) => this.assignments.has(id));
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
    await this.gc.dropNetworkVolumes(first.networkVolumes);
    await this.gc.collectOrphans();
    this.loop = this.watchLoop();
    this.diskTimer = setInterval(() => void this.measureDisk(), 60_000);
    this.diskTimer.unref();
  }

  async close(): Promise<void> {
    this.abort.abort();
    if (this.diskTimer) clearInterval(this.diskTimer);
    for (const s of this.local.values()) {
      s.backoff.dispose();
      s.health?.stop();
    }
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
        await this.gc.dropNetworkVolumes(res.networkVolumes);
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
    })().finally(() => {
      this.running.delete(id);
      this.gc.passEnded(id);
    });
    this.running.set(id, pass);
  }

  private state(id: InstanceId): LocalState {
    let s = this.local.get(id);
    if (!s) {
      s = {
        backoff: new RestartTracker(() => this.kick(id)),
        restartGenerationDone: null,
        pull: null,
        lastReported: '',
        lastLogLines: [],
        lastExitKey: null,
        diskEnforced: true,
        message: null,
        sending: Promise.resolve(),
        health: null,
        healthKey: '',
        unhealthy: null,
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
      this.dropHealth(this.local.get(id));
      await this.removeContainers(containers);
      await this.removeInstanceVolumes(id, INSTANCE_VOLUME_KINDS);
      this.local.delete(id);
      return;
    }
    const s = this.state(id);
    this.log.debug({ instance: id, goal: a.goal, containers: containers.map((c) => c.state) }, 'reconcile');
    if (a.goal !== 'running') {
      this.dropHealth(s);
      s.unhealthy = null;
      await this.removeContainers(containers, a);
      s.backoff.reset();
      // Ephemeral volumes live as long as the instance's containers; persistent ones until the instance is removed.
      await this.removeInstanceVolumes(id, a.goal === 'removed' ? ['ephemeral', 'persistent'] : ['ephemeral']);
      if (a.goal === 'removed' && a.volumeDisk) await runtime.removeVolume(a.volumeDisk);
      await this.send(a, a.goal === 'removed' ? 'removed' : 'stopped', [], null);
      if (a.goal === 'removed') this.local.delete(id);
      return;
    }

    // The infra container first, then the spec's order: the one holding the network namespace must (re)start before those joining it.
    const current = sortContainers(
      a.spec,
      containers.filter((c) => c.labels[LABELS.version] === String(a.specVersion) && c.labels[LABELS.reset] === String(a.resetGeneration)),
    );
    const stale = containers.filter((c) => !current.includes(c));
    await this.removeContainers(stale, a);
    const infra = usesInfra(a.spec);
    if (current.length !== a.spec.containers.length + (infra ? 1 : 0) || current.some(isInfra) !== infra) {
      // Nothing ran before (a first launch): nothing to replace either.
      return containers.length > 0 ? this.replace(a, s, current) : this.launch(a, s);
    }

    s.restartGenerationDone ??= a.observedRestartGeneration ?? a.restartGeneration;
    if (a.restartGeneration > s.restartGenerationDone) {
      s.restartGenerationDone = a.restartGeneration;
      s.backoff.clear();
      this.dropHealth(s);
      s.unhealthy = null;
      // The infra container keeps the namespace; without it running the containers have no network to restart into.
      if (current.some((c) => isInfra(c) && c.state !== 'running')) return this.replace(a, s, current);
      await Promise.all(current.filter((c) => !isInfra(c)).map((c) => runtime.restartContainer(c.id, this.graceOf(a, c))));
      s.backoff.started();
      return this.observe(a, s, await this.inspectAll(current));
    }
    if (s.unhealthy && current.some((c) => !isInfra(c) && c.state === 'running')) {
      // Stopped, not removed: the exit is then handled as any other, with the restart policy and the backoff.
      await Promise.all(current.filter((c) => !isInfra(c) && c.state === 'running').map((c) => runtime.stopContainer(c.id, this.graceOf(a, c))));
      return this.observe(a, s, await this.inspectAll(current));
    }
    if (s.backoff.restartDue) {
      s.backoff.restartDue = false;
      // As Marathon: one failing container replaces the whole instance; a single container restarts in place.
      if (infra || s.unhealthy) return this.replace(a, s, current);
      for (const c of current) if (c.state !== 'running') await runtime.startContainer(c.id);
      s.backoff.started();
      return this.observe(a, s, await this.inspectAll(current));
    }
    await this.observe(a, s, current);
  }

  /** A new instance in place of the old: new containers, and ephemeral volumes started afresh, as Marathon's would be. */
  private async replace(a: Assignment, s: LocalState, current: ContainerInfo[]): Promise<void> {
    await this.removeContainers(current, a);
    if (a.spec.volumes.some((v) => v.kind === 'ephemeral')) await this.removeInstanceVolumes(a.instanceId, ['ephemeral']);
    await this.launch(a, s);
  }

  private async inspectAll(list: ContainerInfo[]): Promise<ContainerInfo[]> {
    const infos = await Promise.all(list.map((c) => this.opts.runtime.inspectContainer(c.id)));
    return infos.filter((c): c is ContainerInfo => c !== undefined);
  }

  /** Force-removes, all at once; containers whose spec gives a kill grace period get SIGTERM and that long first. */
  private async removeContainers(list: ContainerInfo[], a?: Assignment): Promise<void> {
    const { runtime } = this.opts;
    const results = await Promise.allSettled(
      list.map(async (c) => {
        const grace = a ? specOf(a.spec, c)?.killGracePeriodSeconds : null;
        if (grace !== null && grace !== undefined && c.state === 'running') await runtime.stopContainer(c.id, grace).catch(() => undefined);
        await runtime.removeContainer(c.id);
      }),
    );
    throwFirst(results);
  }

  /** Seconds between SIGTERM and SIGKILL for a container: its spec's, else the node's. */
  private graceOf(a: Assignment, c: ContainerInfo): number {
    return specOf(a.spec, c)?.killGracePeriodSeconds ?? this.opts.stopTimeoutSeconds;
  }

  private async removeInstanceVolumes(id: InstanceId, kinds: readonly InstanceVolumeKind[]): Promise<void> {
    const volumes = await this.opts.runtime.listVolumes({ [LABELS.instance]: id, [LABELS.node]: this.nodeId });
    for (const v of volumes) {
      if (kinds.includes(v.labels['berth.kind'] as InstanceVolumeKind)) await this.opts.runtime.removeVolume(v.name);
    }
  }

  /** Reports running containers; handles an exit with the pod's restart policy and backoff. */
  private async observe(a: Assignment, s: LocalState, containers: ContainerInfo[]): Promise<void> {
    const exited = containers.find((c) => c.state === 'exited' || c.state === 'dead' || c.state === 'created');
    if (!exited) {
      const detailed = containers.some((c) => c.startedAt === null) ? await this.inspectAll(containers) : containers;
      if (!s.unhealthy) this.watchHealth(a, s, detailed);
      return this.send(a, 'running', detailed, null);
    }
    // The last verdicts stay in the report; no checks run against stopped containers.
    s.health?.stop();
    const info = (await this.opts.runtime.inspectContainer(exited.id)) ?? exited;
    const code = info.exitCode ?? null;
    const exitKey = `${info.id}@${info.finishedAt}`;
    if (s.lastExitKey !== exitKey) {
      s.lastExitKey = exitKey;
      s.lastLogLines = await this.tail(info.id, 20);
      s.backoff.exitSeen();
    }
    // A health-check kill is a failure whatever the exit code.
    const failed = s.unhealthy !== null || code !== 0;
    const exit = info.error ? `failed: ${info.error}` : `exited with code ${code ?? 'unknown'}`;
    const who = isInfra(info) ? 'the infra container' : `container ${info.labels[LABELS.container] ?? info.name}`;
    const reason = s.unhealthy ?? (usesInfra(a.spec) ? `${who} ${exit}` : exit);
    const policy = a.spec.restartPolicy;
    const restart = policy === 'always' || (policy === 'on-failure' && failed);
    const delayS = s.backoff.delaySeconds(a.spec.backoff);
    s.message = restart ? `${reason}; restarting in ${delayS.toFixed(1)} s` : reason;
    await this.send(a, failed ? 'failed' : 'exited', containers.map((c) => (c.id === info.id ? info : c)), code, s.message);
    if (!restart || s.backoff.waiting || s.backoff.restartDue) return;
    s.backoff.retryAfter(delayS, 'restart');
  }

  /** Starts health checks for the running containers that declare one, unless they already run for these containers. */
  private watchHealth(a: Assignment, s: LocalState, containers: ContainerInfo[]): void {
    const targets = containers.flatMap((c): HealthTarget[] => {
      const spec = isInfra(c) ? undefined : specOf(a.spec, c);
      if (!spec?.healthCheck) return [];
      const endpoint = spec.endpoints.find((e) => e.name === spec.healthCheck?.endpoint);
      return [{ container: spec.name, containerId: c.id, check: spec.healthCheck, ...(endpoint ? { address: this.addressOf(a, containers, endpoint) } : {}) }];
    });
    if (targets.length === 0) return this.dropHealth(s);
    const key = containers.map((c) => `${c.id}@${c.startedAt}`).join(',');
    if (s.health && s.healthKey === key) return;
    s.health?.stop();
    const started = containers.map((c) => (c.startedAt ? Date.parse(c.startedAt) : NaN)).filter((t) => !Number.isNaN(t));
    const monitor: HealthMonitor = new HealthMonitor({
      targets,
      exec: (id, argv, timeoutMs) => this.opts.runtime.exec(id, argv, { timeoutMs }),
      startedAtMs: started.length ? Math.max(...started) : Date.now(),
      onChange: () => {
        if (s.health === monitor) this.kick(a.instanceId);
      },
      onUnhealthy: (container, failures) => {
        if (s.health !== monitor) return;
        s.unhealthy = `container ${container} failed ${failures} health check${failures === 1 ? '' : 's'} in a row; replacing the instance`;
        this.log.info({ instance: a.instanceId, container }, s.unhealthy);
        this.kick(a.instanceId);
      },
    });
    s.health = monitor;
    s.healthKey = key;
  }

  private dropHealth(s: LocalState | undefined): void {
    if (!s) return;
    s.health?.stop();
    s.health = null;
    s.healthKey = '';
  }

  /**
   * Where a check reaches an endpoint: the instance's address and the port the container listens on,
   * or the node's loopback and the host port with host networking.
   */
  private addressOf(a: Assignment, containers: ContainerInfo[], e: EndpointSpec): () => Promise<HealthAddress> {
    const holder = containers.find(isInfra) ?? containers[0];
    const hostPorts = jsonLabel(holder, LABELS.endpoints);
    const mode = a.spec.network.mode;
    let ip: string | undefined;
    return async () => {
      const port = listenPort(e, mode, hostPorts[e.name]);
      if (port === undefined) throw new Error(`endpoint ${e.name} has no port`);
      if (mode === 'host') return { host: '127.0.0.1', port: hostPorts[e.name] ?? port };
      ip ??= holder ? await interactiveRuntime(this.opts.runtime).containerAddress(holder.id) : undefined;
      if (!ip) throw new Error('the instance has no address yet');
      return { host: ip, port };
    };
  }

  /**
   * Pulls every image the instance needs that the node lacks, reporting progress; returns the infra
   * container's image when the instance has one: the operator's, pulled like the others, or the
   * node's own, built here.
   */
  private async pullImages(a: Assignment, s: LocalState): Promise<string | null> {
    const { runtime } = this.opts;
    const images = [...new Set(a.spec.containers.map((c) => c.image))].map((image) => ({ image, login: a.registryLogin }));
    let infra: string | null = null;
    if (usesInfra(a.spec)) {
      infra = this.opts.infraImage ?? null;
      // The operator's infra image is public: the pod's registry login is for the pod's own images.
      if (infra && !images.some((i) => i.image === infra)) images.unshift({ image: infra, login: null });
      infra ??= await this.infraImage.ensure();
    }
    const present = await Promise.all(images.map((i) => runtime.imageExists(i.image)));
    for (const [n, { image, login }] of images.entries()) {
      if (present[n]) continue;
      s.pull = { image, current: 0, total: 0 };
      await this.send(a, 'pulling', [], null, `pulling ${image}`);
      let lastSent = 0;
      await runtime.pullImage(image, login, (p) => {
        s.pull = { image, current: p.current, total: p.total };
        if (Date.now() - lastSent > 500) {
          lastSent = Date.now();
          void this.send(a, 'pulling', [], null, pullMessage(s.pull));
        }
      }, this.abort.signal);
      s.pull = null;
    }
    return infra;
  }

  /** Creates the instance's volumes: the volume disk or network volume, and the pod's ephemeral and persistent volumes. */
  private async prepareVolumes(a: Assignment, labels: Record<string, string>): Promise<void> {
    const { runtime } = this.opts;
    const work: Promise<void>[] = [];
    if (a.volumeDisk) work.push(runtime.ensureVolume(a.volumeDisk, { ...labels, 'berth.kind': 'volume-disk' }));
    if (a.networkVolume) work.push(this.gc.ensureNetworkVolume(a.instanceId, a.networkVolume));
    for (const v of a.spec.volumes) {
      if (v.kind === 'ephemeral') {
        work.push(runtime.ensureVolume(ephemeralVolumeName(a.instanceId, v.name), { ...labels, 'berth.kind': 'ephemeral' }));
      } else if (v.kind === 'persistent') {
        work.push(runtime.ensureVolume(persistentVolumeName(a.instanceId, v.name), { ...labels, 'berth.kind': 'persistent', 'berth.size-mb': String(v.sizeMb) }));
      }
    }
    throwFirst(await Promise.allSettled(work));
  }

  /** Pulls, creates volumes, allocates ports, creates and starts every container of the instance. */
  private async launch(a: Assignment, s: LocalState): Promise<void> {
    const { runtime } = this.opts;
    // A backoff set for the containers this launch replaces must not fire on the new ones.
    s.backoff.clear();
    this.dropHealth(s);
    s.unhealthy = null;
    try {
      this.checkSecrets(a);
      const infraImage = await this.pullImages(a, s);
      // Not waited for: reports go out in order, and the containers need not wait for the store.
      void this.send(a, 'creating', [], null, 'creating containers');
      const labels = instanceLabels(a, this.nodeId);
      await this.prepareVolumes(a, labels);
      const net = await allocatePorts(a, this.opts.bindAddress, this.opts.name);
      const env = podEnv(a, net, this.opts.publicIp);
      const generation = generationLabels(a, this.nodeId);
      const holder = holderPlan(a, net);

      let created: string[];
      let results: CreateResult[];
      if (infraImage) {
        const infra = await runtime.createContainer(infraPlan(a, infraImage, holder, generation, this.gpus.simulated));
        // The containers are created while the infra container starts, then all started at once.
        const starting = runtime.startContainer(infra.id);
        const creating = settleAll(a.spec.containers.map((c) => this.createContainer(a, c, env, generation, { networkMode: `container:${infra.id}` })));
        const [started, made] = await Promise.allSettled([starting, creating]);
        if (made.status === 'rejected') throw made.reason;
        if (started.status === 'rejected') throw started.reason;
        const apps = made.value;
        results = apps;
        await settleAll(apps.map((r) => runtime.startContainer(r.id)));
        created = [infra.id, ...apps.map((r) => r.id)];
      } else {
        const sole = a.spec.containers[0]!;
        const res = await this.createContainer(a, sole, env, generation, holder);
        results = [res];
        await runtime.startContainer(res.id);
        created = [res.id];
      }
      s.diskEnforced = results.every((r) => r.diskEnforced);
      s.backoff.launched();
      s.restartGenerationDone = a.restartGeneration;
      s.message = null;
      const infos = await this.inspectAll(created.map((id) => ({ id }) as ContainerInfo));
      await this.observe(a, s, sortContainers(a.spec, infos));
    } catch (e) {
      s.pull = null;
      const message = e instanceof Error ? e.message : String(e);
      this.log.warn({ err: e, instance: a.instanceId }, 'launch failed');
      const retryable = !(e instanceof BerthError) || e.retryable;
      const delayS = s.backoff.delaySeconds(a.spec.backoff);
      const attempt = s.backoff.launchFailures + 1;
      s.message = `${message}${retryable ? `; retrying in ${delayS.toFixed(1)} s${attempt > 1 ? ` (attempt ${attempt})` : ''}` : ''}`;
      await this.send(a, 'failed', [], null, s.message);
      if (retryable && !s.backoff.waiting) s.backoff.retryAfter(delayS, 'launch');
    }
  }

  /** Every secret the pod's containers use must have come with the assignment. */
  private checkSecrets(a: Assignment): void {
    const refs = [
      ...a.spec.containers.flatMap((c) => Object.values(c.secretEnv)),
      ...a.spec.volumes.flatMap((v) => (v.kind === 'secret' && a.spec.containers.some((c) => c.volumeMounts.some((m) => m.name === v.name)) ? [v.secret] : [])),
    ];
    const missing = [...new Set(refs.filter((r) => a.secrets[r] === undefined))];
    if (missing.length) throw new BerthError('VALIDATION', `the value of secret ${missing.join(', ')} did not reach the node`);
  }

  /** Creates one container of the pod and writes its secret files into it; it is not started. */
  private async createContainer(a: Assignment, c: ContainerSpec, podEnv: Record<string, string>, generation: Record<string, string>, extra: Partial<ContainerPlan>): Promise<CreateResult> {
    const plan = containerPlan(a, c, { podEnv, generation, network: extra, nodeName: this.opts.name, gpusSimulated: this.gpus.simulated });
    const res = await this.opts.runtime.createContainer(plan);
    await this.writeSecretFiles(a, c, res.id);
    return res;
  }

  /** Each secret volume the container mounts becomes a file at its mount path, readable by the container's user only. */
  private async writeSecretFiles(a: Assignment, c: ContainerSpec, containerId: string): Promise<void> {
    for (const m of c.volumeMounts) {
      const v = a.spec.volumes.find((x) => x.name === m.name);
      if (v?.kind !== 'secret') continue;
      const value = Buffer.from(a.secrets[v.secret] ?? '', 'utf8');
      const owner = numericOwner(c.user);
      // A user known only by name cannot be made the owner here: the file is then readable by all in the container.
      const mode = c.user === null || owner ? 0o400 : 0o444;
      const tar = singleFileTar(m.mountPath.replace(/^\/+/, ''), value.length, mode, Date.now() / 1000, Readable.from([value]), owner);
      await interactiveRuntime(this.opts.runtime).putArchive(containerId, '/', tar);
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
    const sorted = sortContainers(a.spec, containers);
    // The infra container or the sole one: it publishes the ports.
    const holder = sorted[0];
    const apps = sorted.filter((c) => !isInfra(c));
    const hasEndpoints = a.spec.containers.some((c) => c.endpoints.length > 0);
    const observation: InstanceObservation = {
      state,
      message: state === 'running' ? null : message,
      exitCode,
      // Docker's own account of what it published; with host networking it publishes nothing and the launch's record stands.
      ports: (a.spec.network.mode === 'host' ? jsonLabel(holder, LABELS.ports) : holder?.ports) ?? {},
      ...(hasEndpoints && holder ? { endpoints: jsonLabel(holder, LABELS.endpoints) } : {}),
      containers: apps.map((c): ContainerObservation => {
        const check = specOf(a.spec, c)?.healthCheck;
        const verdict = check ? s.health?.verdict(c.id) : undefined;
        return {
          name: c.labels[LABELS.container] ?? c.name,
          containerId: c.id,
          state: c.state === 'running' ? 'running' : c.state === 'created' ? 'creating' : (c.exitCode ?? 0) === 0 ? 'exited' : 'failed',
          exitCode: c.exitCode,
          startedAt: c.startedAt,
          finishedAt: c.finishedAt,
          ...(check ? { healthy: verdict?.healthy ?? null, healthFailures: verdict?.failures ?? 0 } : {}),
        };
      }),
      pull: s.pull,
      lastLogLines: state === 'exited' || state === 'failed' ? s.lastLogLines : [],
      startedAt: apps.map((c) => c.startedAt).find((t) => t) ?? null,
      restartCount: s.backoff.restarts,
      launchFailures: s.backoff.launchFailures,
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
}

function pullMessage(p: PullProgress): string {
  if (!p.total) return `pulling ${p.image}`;
  const mb = (n: number): string => (n / 1e6).toFixed(0);
  return `pulling ${p.image}: ${Math.floor((100 * p.current) / p.total)}% (${mb(p.current)}/${mb(p.total)} MB)`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `1000` or `1000:1000` as a file owner; undefined for a user given by name. */
function numericOwner(user: string | null): TarOwner | undefined {
  if (user === 'root') return { uid: 0, gid: 0 };
  const m = user === null ? null : /^(\d+)(?::(\d+))?$/.exec(user);
  if (!m) return undefined;
  const uid = Number(m[1]);
  const gid = m[2] !== undefined ? Number(m[2]) : uid;
  // ustar's owner fields hold 7 octal digits.
  return uid < 0o7777777 && gid < 0o7777777 ? { uid, gid } : undefined;
}

/** Waits for every promise, then throws the first failure: nothing is left running behind a rejection. */
async function settleAll<T>(work: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(work);
  throwFirst(results);
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

function throwFirst(results: PromiseSettledResult<unknown>[]): void {
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
