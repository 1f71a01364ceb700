/**
 * One instance on this node: its state, and the reconcile passes that make Docker match its
 * assignment. Passes of one instance never overlap; each compares the assignment with the
 * containers Docker has (found by label), decides (decide.ts) and acts.
 */
import type { Logger } from 'pino';
import type { AgentChannel, Assignment } from '../control/agent-protocol.js';
import { BerthError, type InstanceId, type InstanceState, type NodeId, type PullProgress } from '../model/index.js';
import type { ContainerInfo, Runtime } from '../runtime/types.js';
import { usesInfra } from './container-plan.js';
import { decide } from './decide.js';
import type { DiskMeter } from './disk.js';
import type { GarbageCollector } from './garbage-collector.js';
import { gpuHeld, heldMessage } from './gpu-holders.js';
import { HealthWatch } from './health-watch.js';
import { INSTANCE_VOLUME_KINDS, isInfra, LABELS, sortContainers, specOf, type InstanceVolumeKind } from './labels.js';
import { LaunchStoodDown, type Launcher } from './launcher.js';
import { observationOf, Reporter } from './reporter.js';
import { RestartTracker } from './restarts.js';
import { throwFirst } from './settle.js';

/** How often a launch waiting for a GPU another container holds looks again. */
const GPU_RECHECK_MS = 500;

/** What every runner of the node shares. */
export interface RunnerContext {
  runtime: Runtime;
  channel: AgentChannel;
  log: Logger;
  nodeId: NodeId;
  launcher: Launcher;
  gc: GarbageCollector;
  disk: DiskMeter;
  /** Seconds a container gets between SIGTERM and SIGKILL, where its spec gives none. */
  stopTimeoutSeconds: number;
  /** Aborted when the agent closes: no pass starts after it. */
  signal: AbortSignal;
  /** Queues a pass of an instance through the agent, which finds (or makes) its runner. */
  wake(id: InstanceId): void;
  /** A runner's passes are over for now. */
  idle(runner: InstanceRunner): void;
}

/** What the runner keeps of the instance between passes; dropped once the instance is removed. */
interface LocalState {
  backoff: RestartTracker;
  health: HealthWatch;
  reporter: Reporter;
  restartGenerationDone: number | null;
  pull: PullProgress | null;
  lastLogLines: string[];
  lastExitKey: string | null;
  diskEnforced: boolean;
  /** What the launch waits for (gpu-holders.ts), as last said; null when it waits for nothing. */
  gpuWait: string | null;
  /** The next look at the GPUs while it waits: one at a time, however many passes asked. */
  gpuRecheck: NodeJS.Timeout | null;
}

export class InstanceRunner {
  /** What the control plane wants of the instance; undefined once no assignment claims it. */
  assignment: Assignment | undefined;
  private local: LocalState | null = null;
  private running: Promise<void> | null = null;
  private again = false;

  constructor(
    readonly id: InstanceId,
    private readonly ctx: RunnerContext,
  ) {}

  /** The runner holds nothing: no assignment, no state, no pass. */
  get done(): boolean {
    return !this.assignment && !this.local && !this.running;
  }

  /** The pass under way, if any. */
  get pass(): Promise<void> | null {
    return this.running;
  }

  /** Queues a reconcile pass; passes never overlap. */
  kick(): void {
    if (this.ctx.signal.aborted) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.reconcile();
        } catch (e) {
          // Level-triggered: a later pass sees the same difference and tries again.
          this.ctx.log.error({ err: e, instance: this.id }, 'reconcile failed; trying again in 5 s');
          setTimeout(() => this.ctx.wake(this.id), 5_000).unref();
        }
      } while (this.again && !this.ctx.signal.aborted);
    })().finally(() => {
      this.running = null;
      this.ctx.gc.passEnded(this.id);
      this.ctx.idle(this);
    });
  }

  /** The agent is closing: no timer of this instance may fire after it. */
  close(): void {
    this.local?.backoff.dispose();
    this.local?.health.pause();
    if (this.local?.gpuRecheck) clearTimeout(this.local.gpuRecheck);
  }

  private state(): LocalState {
    this.local ??= {
      backoff: new RestartTracker(() => this.ctx.wake(this.id)),
      health: new HealthWatch(this.ctx.runtime, this.ctx.log, this.id, () => this.ctx.wake(this.id)),
      reporter: new Reporter(this.ctx.channel, this.ctx.nodeId, this.ctx.log, this.id),
      restartGenerationDone: null,
      pull: null,
      lastLogLines: [],
      lastExitKey: null,
      diskEnforced: true,
      gpuWait: null,
      gpuRecheck: null,
    };
    return this.local;
  }

  private async reconcile(): Promise<void> {
    const { runtime } = this.ctx;
    const a = this.assignment;
    const containers = await runtime.listContainers({ [LABELS.instance]: this.id, [LABELS.node]: this.ctx.nodeId });
    const d = decide(a, containers, {
      restartGenerationDone: this.local?.restartGenerationDone ?? null,
      unhealthy: (this.local?.health.unhealthy ?? null) !== null,
      restartDue: this.local?.backoff.restartDue ?? false,
    });
    if (!a || d.action === 'forget') {
      // Not ours any more (the pod was deleted while we were away): leave nothing behind.
      this.local?.health.drop();
      await this.removeContainers(containers);
      await this.removeInstanceVolumes(INSTANCE_VOLUME_KINDS);
      this.local = null;
      return;
    }
    const s = this.state();
    this.ctx.log.debug({ instance: this.id, goal: a.goal, action: d.action, containers: containers.map((c) => c.state) }, 'reconcile');
    if (d.action === 'stop' || d.action === 'remove') {
      s.health.reset();
      try {
        await this.removeContainers(containers, a);
      } catch (e) {
        // Said, not hidden: the pod is not stopped (nor terminated) while its containers are there.
        const still = await runtime.listContainers({ [LABELS.instance]: this.id, [LABELS.node]: this.ctx.nodeId }).catch(() => containers);
        await this.send(a, 'failed', still, null, `${(e as Error).message}; trying again`).catch(() => undefined);
        throw e;
      }
      s.backoff.reset();
      // Ephemeral volumes live as long as the instance's containers; persistent ones until the instance is removed.
      await this.removeInstanceVolumes(d.action === 'remove' ? ['ephemeral', 'persistent'] : ['ephemeral']);
      if (d.action === 'remove' && a.volumeDisk) await runtime.removeVolume(a.volumeDisk);
      await this.send(a, d.action === 'remove' ? 'removed' : 'stopped', [], null);
      if (d.action === 'remove') this.local = null;
      return;
    }

    await this.removeContainers(d.stale, a);
    if ((d.action === 'launch' || d.action === 'replace') && (await this.waitingForGpus(a, s))) return;
    if (d.restartGenerationDone !== null) s.restartGenerationDone = d.restartGenerationDone;
    if (d.cause === 'restart' || d.action === 'restart-in-place') {
      s.backoff.clear();
      s.health.reset();
    }
    switch (d.action) {
      case 'launch':
        return this.launch(a, s);
      case 'replace':
        if (d.cause === 'backoff') s.backoff.restartDue = false;
        return this.replace(a, s, d.current);
      case 'restart-in-place':
        await Promise.all(d.current.filter((c) => !isInfra(c)).map((c) => runtime.restartContainer(c.id, this.graceOf(a, c))));
        s.backoff.started();
        return this.observe(a, s, await this.inspectAll(d.current));
      case 'stop-unhealthy':
        // Stopped, not removed: the exit is then handled as any other, with the restart policy and the backoff.
        await Promise.all(d.current.filter((c) => !isInfra(c) && c.state === 'running').map((c) => runtime.stopContainer(c.id, this.graceOf(a, c))));
        return this.observe(a, s, await this.inspectAll(d.current));
      case 'restart-exited':
        s.backoff.restartDue = false;
        for (const c of d.current) if (c.state !== 'running') await runtime.startContainer(c.id);
        s.backoff.started();
        return this.observe(a, s, await this.inspectAll(d.current));
      case 'observe':
        return this.observe(a, s, d.current);
    }
  }

  /**
   * Whether a GPU the instance is given is still held by another instance's container here (see
   * gpu-holders.ts): then it says so and looks again shortly, leaving this pass free to take a new
   * assignment (a stop) meanwhile.
   */
  private async waitingForGpus(a: Assignment, s: LocalState): Promise<boolean> {
    if (a.gpus.length === 0) return false;
    const held = gpuHeld(a, await this.ctx.runtime.listContainers({ [LABELS.node]: this.ctx.nodeId }));
    if (!held) {
      if (s.gpuWait) this.ctx.log.info({ instance: this.id }, 'the GPUs are free: launching');
      s.gpuWait = null;
      return false;
    }
    const message = heldMessage(held);
    if (message !== s.gpuWait) this.ctx.log.info({ instance: this.id, gpu: held.uuid, holder: held.holder.id }, message);
    s.gpuWait = message;
    await this.send(a, 'pending', [], null, message);
    s.gpuRecheck ??= setTimeout(() => {
      s.gpuRecheck = null;
      this.ctx.wake(this.id);
    }, GPU_RECHECK_MS).unref();
    return true;
  }

  /**
   * Asked by the launch once its images are there, right before it makes anything: a launch is not
   * cancelled when its assignment changes (a stop during a long pull), and the GPUs were looked at
   * before the pull. A reason to stand down, or null to go on.
   */
  private async readyToCreate(a: Assignment, s: LocalState): Promise<string | null> {
    const now = this.assignment;
    const same = (x: Assignment): string => JSON.stringify([x.goal, x.specVersion, x.resetGeneration, x.gpus]);
    if (!now || same(now) !== same(a)) return 'the assignment changed during the launch';
    return (await this.waitingForGpus(a, s)) ? s.gpuWait : null;
  }

  /** A new instance in place of the old: new containers, and ephemeral volumes started afresh, as Marathon's would be. */
  private async replace(a: Assignment, s: LocalState, current: ContainerInfo[]): Promise<void> {
    await this.removeContainers(current, a);
    if (a.spec.volumes.some((v) => v.kind === 'ephemeral')) await this.removeInstanceVolumes(['ephemeral']);
    await this.launch(a, s);
  }

  /** Launches the instance; a launch that fails before any container runs is retried with the backoff. */
  private async launch(a: Assignment, s: LocalState): Promise<void> {
    // A backoff set for the containers this launch replaces must not fire on the new ones.
    s.backoff.clear();
    s.health.reset();
    try {
      const launched = await this.ctx.launcher.launch(a, {
        pull: (p) => {
          s.pull = p;
        },
        pulling: (message) => this.send(a, 'pulling', [], null, message),
        creating: () => void this.send(a, 'creating', [], null, 'creating containers'),
        ready: () => this.readyToCreate(a, s),
      });
      s.diskEnforced = launched.diskEnforced;
      s.backoff.launched();
      s.restartGenerationDone = a.restartGeneration;
      const infos = await this.inspectAll(launched.created.map((id) => ({ id }) as ContainerInfo));
      await this.observe(a, s, sortContainers(a.spec, infos));
    } catch (e) {
      s.pull = null;
      // Nothing was made: the pass the change queued, or the GPUs' next look, takes it from here.
      if (e instanceof LaunchStoodDown) return;
      const message = e instanceof Error ? e.message : String(e);
      this.ctx.log.warn({ err: e, instance: a.instanceId }, 'launch failed');
      const retryable = !(e instanceof BerthError) || e.retryable;
      const delayS = s.backoff.delaySeconds(a.spec.backoff);
      const attempt = s.backoff.launchFailures + 1;
      await this.send(a, 'failed', [], null, `${message}${retryable ? `; retrying in ${delayS.toFixed(1)} s${attempt > 1 ? ` (attempt ${attempt})` : ''}` : ''}`);
      if (retryable && !s.backoff.waiting) s.backoff.retryAfter(delayS, 'launch');
    }
  }

  /** Reports running containers; handles an exit with the pod's restart policy and backoff. */
  private async observe(a: Assignment, s: LocalState, containers: ContainerInfo[]): Promise<void> {
    const exited = containers.find((c) => c.state === 'exited' || c.state === 'dead' || c.state === 'created');
    if (!exited) {
      const detailed = containers.some((c) => c.startedAt === null) ? await this.inspectAll(containers) : containers;
      if (!s.health.unhealthy) s.health.watch(a, detailed);
      return this.send(a, 'running', detailed, null);
    }
    // The last verdicts stay in the report; no checks run against stopped containers.
    s.health.pause();
    const info = (await this.ctx.runtime.inspectContainer(exited.id)) ?? exited;
    const code = info.exitCode ?? null;
    const exitKey = `${info.id}@${info.finishedAt}`;
    if (s.lastExitKey !== exitKey) {
      s.lastExitKey = exitKey;
      s.lastLogLines = await this.tail(info.id, 20);
      s.backoff.exitSeen();
    }
    // A health-check kill is a failure whatever the exit code.
    const failed = s.health.unhealthy !== null || code !== 0;
    const exit = info.error ? `failed: ${info.error}` : `exited with code ${code ?? 'unknown'}`;
    const who = isInfra(info) ? 'the infra container' : `container ${info.labels[LABELS.container] ?? info.name}`;
    const reason = s.health.unhealthy ?? (usesInfra(a.spec) ? `${who} ${exit}` : exit);
    const policy = a.spec.restartPolicy;
    const restart = policy === 'always' || (policy === 'on-failure' && failed);
    const delayS = s.backoff.delaySeconds(a.spec.backoff);
    const message = restart ? `${reason}; restarting in ${delayS.toFixed(1)} s` : reason;
    await this.send(a, failed ? 'failed' : 'exited', containers.map((c) => (c.id === info.id ? info : c)), code, message);
    if (!restart || s.backoff.waiting || s.backoff.restartDue) return;
    s.backoff.retryAfter(delayS, 'restart');
  }

  private async inspectAll(list: ContainerInfo[]): Promise<ContainerInfo[]> {
    const infos = await Promise.all(list.map((c) => this.ctx.runtime.inspectContainer(c.id)));
    return infos.filter((c): c is ContainerInfo => c !== undefined);
  }

  /**
   * Force-removes, all at once; containers whose spec gives a kill grace period get SIGTERM and that
   * long first. A remove that fails or hangs (the runtime bounds each call) is escalated: SIGKILL,
   * then remove again; what still fails is thrown, naming the container.
   */
  private async removeContainers(list: ContainerInfo[], a?: Assignment): Promise<void> {
    const { runtime } = this.ctx;
    const results = await Promise.allSettled(
      list.map(async (c) => {
        const grace = a ? specOf(a.spec, c)?.killGracePeriodSeconds : null;
        if (grace !== null && grace !== undefined && c.state === 'running') await runtime.stopContainer(c.id, grace).catch(() => undefined);
        try {
          await runtime.removeContainer(c.id);
        } catch (first) {
          this.ctx.log.warn({ err: first, instance: this.id, container: c.id }, 'remove failed; killing the container and removing it again');
          await runtime.killContainer?.(c.id).catch(() => undefined);
          try {
            await runtime.removeContainer(c.id);
          } catch (second) {
            const name = c.labels[LABELS.container] ?? c.name;
            throw new BerthError('RUNTIME', `could not remove container ${name} (${c.id.slice(0, 12)}) after killing it: ${(second as Error).message}`, { cause: second });
          }
        }
      }),
    );
    throwFirst(results);
  }

  /** Seconds between SIGTERM and SIGKILL for a container: its spec's, else the node's. */
  private graceOf(a: Assignment, c: ContainerInfo): number {
    return specOf(a.spec, c)?.killGracePeriodSeconds ?? this.ctx.stopTimeoutSeconds;
  }

  private async removeInstanceVolumes(kinds: readonly InstanceVolumeKind[]): Promise<void> {
    const volumes = await this.ctx.runtime.listVolumes({ [LABELS.instance]: this.id, [LABELS.node]: this.ctx.nodeId });
    for (const v of volumes) {
      if (kinds.includes(v.labels['berth.kind'] as InstanceVolumeKind)) await this.ctx.runtime.removeVolume(v.name);
    }
  }

  private async tail(containerId: string, lines: number): Promise<string[]> {
    const out: string[] = [];
    try {
      for await (const l of this.ctx.runtime.logs(containerId, { tail: lines })) out.push(l.text);
    } catch {
      // The last lines are a courtesy; an exit is reported without them.
    }
    return out.slice(-lines);
  }

  private send(a: Assignment, state: InstanceState, containers: ContainerInfo[], exitCode: number | null, message: string | null = null): Promise<void> {
    const s = this.state();
    return s.reporter.send(
      observationOf(a, state, containers, exitCode, message, {
        pull: s.pull,
        lastLogLines: s.lastLogLines,
        restartCount: s.backoff.restarts,
        launchFailures: s.backoff.launchFailures,
        restartGenerationDone: s.restartGenerationDone,
        disk: this.ctx.disk.usageOf(containers, a, s.diskEnforced),
        verdict: (id) => s.health.verdict(id),
      }),
    );
  }
}
