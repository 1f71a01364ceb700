import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, hostname, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { AgentChannel, Assignment } from '../control/agent-protocol.js';
import type { InstanceId, NodeId } from '../model/index.js';
import type { Runtime } from '../runtime/types.js';
import { DiskMeter } from './disk.js';
import { GarbageCollector } from './garbage-collector.js';
import { discoverGpus } from './gpus.js';
import { LocalInfraImage } from './infra-image.js';
import { InstanceRunner, type RunnerContext } from './instance-runner.js';
import { LABELS } from './labels.js';
import { Launcher } from './launcher.js';
import { LocalNodeAccess } from './node-access.js';
import { UsageCollector } from './usage-collector.js';
import { NfsSubdirectories } from './nfs-subdirectory.js';
import { ensureIsolationRules, networkRuntime, PodNetworks } from './pod-network.js';

export { containerGpus, usesInfra } from './container-plan.js';
export { ephemeralVolumeName, LABELS, persistentVolumeName } from './labels.js';

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
  /** How often the running instances' usage is measured and sent (`--metrics-interval`); 0: never. @default 10_000 */
  usageIntervalMs?: number;
  /**
   * Keep pods off the node's own services with INPUT rules (see pod-network.ts); needs root and
   * iptables, and warns where it cannot. @default true
   */
  isolatePods?: boolean;
}

/** Options with no default: absent means "not set". */
type OptionalOption = 'gpuInventoryPath' | 'labels' | 'infraImage' | 'catatonitPath' | 'isolatePods';

/**
 * The node agent: registers, watches its assignments, hands each instance's to its runner
 * (instance-runner.ts) and routes Docker's events to it. Level-triggered: every pass compares an
 * assignment with the containers Docker has (found by label), so a restarted agent adopts what is
 * running and never starts a duplicate.
 */
export class Agent {
  private nodeId!: NodeId;
  private nodeAccess!: LocalNodeAccess;
  private gc!: GarbageCollector;
  private networks!: PodNetworks;
  private collecting: Promise<void> | undefined;
  private ctx!: RunnerContext;
  private revision = 0;
  /** Ask the next watch for every assignment, not the changed ones only (see take). */
  private wantWhole = false;
  /** One per instance assigned here, or with something left to clean up. */
  private readonly runners = new Map<InstanceId, InstanceRunner>();
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private diskTimer: NodeJS.Timeout | undefined;
  private usage: UsageCollector | undefined;

  private constructor(private readonly opts: Required<Omit<AgentOptions, OptionalOption>> & Pick<AgentOptions, OptionalOption>) {}

  static async create(options: AgentOptions): Promise<Agent> {
    const agent = new Agent({
      name: hostname(),
      publicIp: '127.0.0.1',
      bindAddress: '0.0.0.0',
      watchWaitMs: 25_000,
      stopTimeoutSeconds: 10,
      usageIntervalMs: 10_000,
      ...options,
    });
    try {
      await agent.start();
    } catch (err) {
      // A start refused half-way (a removed node's credential) leaves nothing open: the event stream ends with the signal.
      agent.abort.abort();
      throw err;
    }
    return agent;
  }

  get id(): NodeId {
    return this.nodeId;
  }

  /** Logs, exec and the interactive access to this node's pods: what the control plane is given as its NodeAccess. */
  get access(): LocalNodeAccess {
    return this.nodeAccess;
  }

  private get log(): Logger {
    return this.opts.logger;
  }

  private async start(): Promise<void> {
    const { runtime, channel, dataDir } = this.opts;
    await runtime.ping();
    const gpus = await discoverGpus(this.opts.gpuInventoryPath);
    if (gpus.note) this.log.info({ gpus: gpus.gpus.length }, `GPUs: ${gpus.note}`);
    await mkdir(dataDir, { recursive: true });
    const idFile = join(dataDir, 'node-id');
    const known = await readFile(idFile, 'utf8').then((s) => s.trim() as NodeId, () => undefined);
    const { nodeId } = await channel.register({
      ...(known ? { nodeId: known } : {}),
      name: this.opts.name,
      publicIp: this.opts.publicIp,
      labels: this.opts.labels ?? {},
      capacity: { cpus: cpus().length, memoryMb: Math.floor(totalmem() / 2 ** 20), gpus: gpus.gpus, gpusSimulated: gpus.simulated },
      agentVersion: '0.1.0',
    });
    this.nodeId = nodeId;
    const firewalled = this.opts.isolatePods !== false && (await ensureIsolationRules());
    if (this.opts.isolatePods !== false && !firewalled) this.log.warn('cannot add the INPUT rules that keep pods off the node (iptables missing, or not root): pods can reach services of the node');
    this.networks = new PodNetworks(networkRuntime(runtime), this.log, nodeId, firewalled);
    this.nodeAccess = new LocalNodeAccess(runtime, nodeId, (id) => this.runners.get(id)?.assignment, this.networks);
    this.gc = new GarbageCollector(runtime, this.log, nodeId, (id) => this.runners.get(id)?.assignment !== undefined);
    const localInfraImage = new LocalInfraImage(runtime, this.log, this.opts.catatonitPath ? [this.opts.catatonitPath] : undefined);
    const operatorInfra = this.opts.infraImage;
    // The operator's infra image where the node has it; else the node's own, built on demand.
    const infraForNfs = async (): Promise<string> => (operatorInfra && (await runtime.imageExists(operatorInfra)) ? operatorInfra : localInfraImage.ensure());
    this.ctx = {
      runtime,
      channel,
      log: this.log,
      nodeId,
      launcher: new Launcher({
        runtime,
        nodeId,
        nodeName: this.opts.name,
        publicIp: this.opts.publicIp,
        bindAddress: this.opts.bindAddress,
        infraImage: this.opts.infraImage,
        localInfraImage,
        gpusSimulated: gpus.simulated,
        gc: this.gc,
        nfs: new NfsSubdirectories(runtime, this.log, nodeId, infraForNfs),
        signal: this.abort.signal,
        networks: this.networks,
      }),
      gc: this.gc,
      disk: new DiskMeter(runtime, this.log),
      stopTimeoutSeconds: this.opts.stopTimeoutSeconds,
      signal: this.abort.signal,
      wake: (id) => this.kick(id),
      idle: (runner) => {
        if (runner.done && this.runners.get(runner.id) === runner) {
          this.runners.delete(runner.id);
          this.collectNetworks();
        }
      },
    };
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
    this.collectNetworks();
    this.loop = this.watchLoop();
    this.diskTimer = setInterval(() => {
      void this.measureDisk();
      this.collectNetworks();
    }, 60_000);
    this.diskTimer.unref();
    if (channel.reportUsage && this.opts.usageIntervalMs > 0) {
      this.usage = new UsageCollector({
        runtime,
        channel,
        nodeId,
        log: this.log,
        intervalMs: this.opts.usageIntervalMs,
        gpusOf: (id) => this.runners.get(id)?.assignment?.gpus ?? [],
        gpusSimulated: gpus.simulated,
      });
      this.usage.start();
    }
  }

  /** Removes pod networks no container uses any more; one sweep at a time. */
  private collectNetworks(): void {
    if (this.collecting) return;
    this.collecting = this.networks
      .collect()
      .catch((err: unknown) => this.log.warn({ err }, 'cannot sweep pod networks'))
      .finally(() => (this.collecting = undefined));
  }

  async close(): Promise<void> {
    this.abort.abort();
    if (this.diskTimer) clearInterval(this.diskTimer);
    await this.usage?.close();
    for (const r of this.runners.values()) r.close();
    await this.loop?.catch(() => undefined);
    await Promise.allSettled([...this.runners.values()].map((r) => r.pass));
    await this.collecting;
    await this.networks?.collect().catch(() => undefined);
  }

  private async watchLoop(): Promise<void> {
    let failures = 0;
    while (!this.abort.signal.aborted) {
      try {
        const res = await this.opts.channel.watch(this.nodeId, this.revision, this.opts.watchWaitMs, this.abort.signal, !this.wantWhole);
        if (this.abort.signal.aborted) return;
        this.take(res.revision, res.assignments, res.partial?.instanceIds);
        await this.gc.dropNetworkVolumes(res.networkVolumes);
        failures = 0;
      } catch (e) {
        if (this.abort.signal.aborted) return;
        failures++;
        this.log.warn({ err: e }, 'watching assignments failed; retrying');
        // At most 5 s: a node that stays away longer than the server's node timeout is NOT_READY and its pods move.
        await sleep(Math.min(5_000, 500 * 2 ** failures));
      }
    }
  }

  /**
   * Takes a watch answer: `assignments` are the node's, or, with `partialIds` (a partial answer), the
   * changed ones among the node's instances `partialIds`, the others keeping what they have.
   */
  private take(revision: number, assignments: Assignment[], partialIds?: InstanceId[]): void {
    this.revision = revision;
    this.wantWhole = false;
    const seen = new Set<InstanceId>(partialIds);
    for (const a of assignments) {
      seen.add(a.instanceId);
      const runner = this.runnerOf(a.instanceId);
      const prev = runner.assignment;
      runner.assignment = a;
      if (!prev || JSON.stringify(prev) !== JSON.stringify(a)) this.kick(a.instanceId);
    }
    // An instance of the node this agent has no assignment for, and the answer brought none: placed
    // after the server read the changes. The next watch answers at once for it; ask that one whole.
    if (partialIds?.some((id) => !this.runners.get(id)?.assignment)) this.wantWhole = true;
    for (const [id, runner] of [...this.runners]) {
      if (runner.assignment && !seen.has(id)) {
        runner.assignment = undefined;
        this.kick(id);
      }
    }
  }

  private runnerOf(id: InstanceId): InstanceRunner {
    let runner = this.runners.get(id);
    if (!runner) {
      runner = new InstanceRunner(id, this.ctx);
      this.runners.set(id, runner);
    }
    return runner;
  }

  /** Queues a reconcile of one instance; passes for one instance never overlap. */
  private kick(id: InstanceId): void {
    if (this.abort.signal.aborted) return;
    this.runnerOf(id).kick();
  }

  /** One `system df` for the whole node, not one call per pod. */
  private async measureDisk(): Promise<void> {
    const assigned = (): InstanceRunner[] => [...this.runners.values()].filter((r) => r.assignment);
    if (assigned().length === 0) return;
    if (!(await this.ctx.disk.measure())) return;
    for (const r of assigned()) this.kick(r.id);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
