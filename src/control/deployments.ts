import { randomUUID } from 'node:crypto';
import { BerthError, podIdOfInstance, type Deployment, type DeploymentAction, type Instance, type InstanceId, type PodId, type PodInput, type PodSpec, type PodVersion } from '../model/index.js';
import type { PodDetail, Store } from '../store/types.js';
import { canSee, requireWrite, type Caller } from './caller.js';
import { instancePhase, instanceReady, marathonPathOf, type ApplyOptions, type ApplyResult, type DeploymentEvent, type DeploymentService, type InstancePhase } from './deployment-service.js';
import type { Leadership } from './leadership.js';
import { Mutex } from './mutex.js';
import type { PodService } from './pods.js';
import { waitsToStart } from './quota.js';

const noPodAt = (path: string): BerthError => new BerthError('NOT_FOUND', `no pod at ${path}`, { extra: { path } });
const noDeployment = (id: string): BerthError => new BerthError('NOT_FOUND', `no deployment ${id}`, { extra: { deploymentId: id } });

/** How often a rollout looks again when no change woke it (a health verdict arrives with a report anyway). */
const TICK_MS = 1_000;

/** What a spec runs, without what only counts or orders instances: a change here replaces instances. */
function configOf(spec: PodSpec): string {
  const { instances: _i, killSelection: _k, upgrade: _u, backoff: _b, marathon, name: _n, ...rest } = spec;
  return JSON.stringify({ ...rest, marathonId: marathon?.id ?? null });
}

/**
 * Pods defined by a Marathon path id, and the deployments that roll them: level-triggered, each
 * step compares the pod's instances with its current version and acts within the upgrade policy.
 * Deployments are kept in the store while they run: after a restart each goes on under its id, and
 * any other pod whose instances have not reached its version gets a new one.
 */
export class DeploymentController implements DeploymentService {
  private readonly active = new Map<string, Deployment>();
  private readonly byPod = new Map<string, string>();
  private readonly listeners = new Set<(e: DeploymentEvent) => void>();
  private readonly lock = new Mutex();
  private readonly stepping = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  /** Per pod, what its instances looked like at the last change: the next change's events are the difference. */
  private readonly seen = new Map<string, Map<string, { phase: InstancePhase; healthy: boolean | null }>>();
  private readonly specs = new Map<string, PodSpec>();
  private readonly unsubscribe: () => void;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The store's copy of the deployments, written in the order they start and end. */
  private persisting: Promise<void> = Promise.resolve();

  /** Whether this server steps deployments: one server always; of several, the leader (from `recover` until `follow`). */
  private leading: boolean;

  constructor(
    private readonly store: Store,
    private readonly pods: PodService,
    private readonly options: { leadership?: Pick<Leadership, 'lead'> } = {},
  ) {
    this.leading = !options.leadership;
    this.unsubscribe = store.onChange((c) => {
      if (c.kind === 'pod') this.podChanged(c.id);
      else if (c.kind === 'instance') this.podChanged(podIdOfInstance(c.id));
    });
  }

  /**
   * Picks up the deployments a previous run left in the store (same ids: a client polling
   * `/v2/deployments/{id}` or waiting to roll back sees them go on), then gives any other Marathon
   * pod whose instances have not reached its version a deployment of its own.
   */
  async recover(): Promise<void> {
    this.leading = true;
    for (const dep of await this.store.listDeployments()) {
      const holder = this.byPod.get(dep.podId);
      if (holder) {
        // Two for one pod (one ended and its deletion was lost): the later one holds it.
        this.persist(() => this.store.deleteDeployment(holder));
        this.active.delete(holder);
      }
      this.hold(dep);
    }
    for (const d of await this.store.listPods({})) {
      if (!d.spec.marathon || d.pod.desiredStatus === 'TERMINATED' || this.byPod.has(d.pod.id)) continue;
      if (!(await this.converged(d))) this.begin(d, 'RestartPod', null, await this.versionTime(d.pod.id, d.pod.specVersion));
    }
  }

  /**
   * This server no longer leads: it stops stepping and forgets the deployments it held (the new
   * leader's `recover` goes on with them from the store, under their ids). Instance events go on.
   */
  follow(): void {
    this.leading = false;
    this.active.clear();
    this.byPod.clear();
    this.again.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stops stepping; what the store was told is written before this resolves. */
  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe();
    if (this.timer) clearInterval(this.timer);
    await this.persisting;
  }

  /** Queues a write to the store's copy. One that fails is dropped: the deployment still runs here, and after a restart recover() gives an unconverged pod a deployment anyway. */
  private persist(write: () => Promise<void>): void {
    const leadership = this.options.leadership;
    this.persisting = this.persisting.then(leadership ? () => leadership.lead(write) : write).catch(() => undefined);
  }

  /** Changes are the leader's (followers forward them to it); here, as a guard. */
  private mustLead(): void {
    if (!this.leading) throw new BerthError('NOT_LEADER', 'this server does not step deployments: it does not lead');
  }

  onEvent(listener: (e: DeploymentEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tells this server's listeners of a deployment's start or end on the leader (cluster-bus.ts relays them). */
  relay(e: DeploymentEvent): void {
    this.emit(e);
  }

  private emit(e: DeploymentEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // A listener's failure (a closed stream) is its own.
      }
    }
  }

  deployments(): Deployment[] {
    return [...this.active.values()];
  }

  waitReason(podId: string): string | null {
    return this.pods.waitReasonOf(podId as PodId);
  }

  async list(caller: Caller): Promise<PodDetail[]> {
    return this.pods.list(caller, {});
  }

  async find(caller: Caller, path: string): Promise<PodDetail | undefined> {
    return (await this.atPath(caller, path, false))[0];
  }

  async history(caller: Caller, path: string): Promise<PodVersion[]> {
    const out: PodVersion[] = [];
    for (const d of await this.atPath(caller, path, true)) out.push(...(await this.store.listPodVersions(d.pod.id)));
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** The pods at a Marathon path, by the store's index of paths: Marathon's own, or the pod `/<podId>` made through another API. */
  private async atPath(caller: Caller, path: string, includeTerminated: boolean): Promise<PodDetail[]> {
    // A pod being terminated (its containers not yet removed) is no longer at its path.
    const found = (await this.pods.list(caller, { marathonPath: path, ...(includeTerminated ? { includeTerminated } : {}) })).filter((d) => includeTerminated || d.pod.desiredStatus !== 'TERMINATED');
    const own = /^\/([0-9a-z]{14})$/.exec(path)?.[1];
    if (own && !found.some((d) => d.pod.id === own)) {
      const d = await this.pods.get(caller, own).catch(() => undefined);
      if (d && marathonPathOf(d) === path && (includeTerminated || d.pod.desiredStatus !== 'TERMINATED')) found.push(d);
    }
    return found;
  }

  apply(caller: Caller, input: PodInput, opts: ApplyOptions): Promise<ApplyResult> {
    requireWrite(caller, 'change pods');
    const path = input.marathon?.id;
    if (!path) throw new BerthError('VALIDATION', 'the input names no path id to apply it at');
    this.mustLead();
    return this.lock.run(async () => {
      const existing = await this.find(caller, path);
      if (existing && opts.mustBeNew) throw new BerthError('CONFLICT', `a pod already exists at ${path}`, { extra: { duplicate: true, path } });
      if (existing) this.takeLock(existing.pod.id, opts.force);
      if (!existing) {
        const detail = await this.pods.create(caller, input);
        const deployment = this.begin(detail, 'StartPod', null, await this.versionTime(detail.pod.id, detail.pod.specVersion));
        return { detail, deployment, created: true };
      }
      const spec = await this.pods.compileFor(caller, input);
      const from = existing.pod.specVersion;
      const version = await this.pods.writeVersion(caller, existing.pod.id, spec);
      const detail = (await this.store.getPod(existing.pod.id))!;
      const action = configOf(spec) === configOf(existing.spec) ? 'ScalePod' : 'RestartPod';
      const deployment = this.begin(detail, action, from, await this.versionTime(detail.pod.id, version));
      return { detail, deployment, created: false };
    }).then(async (r) => {
      // Acknowledged only once stored: a leader killed after answering leaves it to the next, under its id.
      await this.persisting;
      return r;
    });
  }

  remove(caller: Caller, path: string, opts: { force: boolean }): Promise<Deployment> {
    requireWrite(caller, 'delete pods');
    this.mustLead();
    return this.lock.run(async () => {
      const existing = await this.find(caller, path);
      if (!existing) throw noPodAt(path);
      this.takeLock(existing.pod.id, opts.force);
      const detail = await this.pods.act(caller, existing.pod.id, 'terminate');
      return this.begin(detail, 'StopPod', existing.pod.specVersion, await this.versionTime(detail.pod.id, detail.pod.specVersion));
    });
  }

  cancel(caller: Caller, id: string, opts: { force: boolean }): Promise<Deployment | null> {
    requireWrite(caller, 'cancel deployments');
    this.mustLead();
    return this.lock.run(async () => {
      const dep = this.active.get(id);
      if (!dep) throw noDeployment(id);
      const detail = await this.store.getPod(dep.podId as PodId);
      if (detail && !canSee(caller, detail.pod.owner)) throw noDeployment(id);
      this.finish(dep, 'deployment_failed', opts.force ? 'stopped by the user' : 'rolled back by the user');
      if (opts.force || !detail) return null;
      // A rollback is a deployment of its own: a creation is undone by deleting the pod, a change by
      // writing the version before it again.
      if (dep.fromVersion === null || dep.action === 'StopPod') {
        if (dep.fromVersion === null) {
          const gone = await this.pods.act(caller, dep.podId, 'terminate');
          return this.begin(gone, 'StopPod', dep.toVersion, dep.version);
        }
        return null;
      }
      const previous = await this.store.getPodVersion(dep.podId as PodId, dep.fromVersion);
      if (!previous) return null;
      const version = await this.pods.writeVersion(caller, dep.podId, previous.spec);
      const now = (await this.store.getPod(dep.podId as PodId))!;
      return this.begin(now, configOf(previous.spec) === configOf(detail.spec) ? 'ScalePod' : 'RestartPod', dep.toVersion, await this.versionTime(dep.podId, version));
    });
  }

  async killInstances(caller: Caller, path: string, instanceIds: string[], opts: { wipe: boolean }): Promise<Instance[]> {
    requireWrite(caller, 'kill instances');
    const detail = await this.find(caller, path);
    if (!detail) throw noPodAt(path);
    const targets = detail.instances.filter((i) => instanceIds.includes(i.id) && i.goal === 'running');
    const out: Instance[] = [];
    if (opts.wipe) {
      // Expunged: a new instance with a new id (and fresh persistent volumes) takes its place.
      await this.pods.removeInstances(detail.pod.id, targets.map((i) => i.id));
      await this.pods.startInstances(detail.pod.id, targets.length, detail.pod.specVersion);
      for (const t of targets) out.push({ ...t, goal: 'removed' });
      return out;
    }
    for (const t of targets) out.push((await this.pods.relaunchInstance(t.id)) ?? t);
    return out;
  }

  /** Refuses a change while a deployment holds the pod, unless forced (which cancels the holder). */
  private takeLock(podId: string, force: boolean): void {
    const holder = this.byPod.get(podId);
    const dep = holder ? this.active.get(holder) : undefined;
    if (!dep) return;
    if (!force) {
      throw new BerthError('CONFLICT', `the pod is locked by one or more deployments (${dep.id}); a forced change cancels them`, { extra: { deployments: [{ id: dep.id }] } });
    }
    this.finish(dep, 'deployment_failed', 'cancelled by a forced change');
  }

  private begin(detail: PodDetail, action: DeploymentAction, fromVersion: number | null, version: string): Deployment {
    const dep: Deployment = {
      id: randomUUID(),
      path: marathonPathOf(detail),
      podId: detail.pod.id,
      action,
      version,
      toVersion: detail.pod.specVersion,
      fromVersion,
      startedAt: new Date().toISOString(),
    };
    this.persist(() => this.store.putDeployment(dep));
    this.hold(dep);
    this.emit({ eventType: 'deployment_started', deployment: dep });
    return dep;
  }

  /** Makes `dep` the pod's deployment and steps it until it ends. */
  private hold(dep: Deployment): void {
    this.active.set(dep.id, dep);
    this.byPod.set(dep.podId, dep.id);
    this.timer ??= setInterval(() => {
      for (const d of this.active.values()) this.kick(d.podId);
    }, TICK_MS);
    this.timer.unref();
    this.kick(dep.podId);
  }

  private finish(dep: Deployment, how: 'deployment_success' | 'deployment_failed', reason?: string): void {
    if (!this.active.delete(dep.id)) return;
    if (this.byPod.get(dep.podId) === dep.id) this.byPod.delete(dep.podId);
    this.persist(() => this.store.deleteDeployment(dep.id));
    this.emit({ eventType: how, deployment: dep, ...(reason ? { reason } : {}) });
    if (this.active.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private podChanged(podId: string): void {
    if (this.leading && this.byPod.has(podId)) this.kick(podId);
    if (this.listeners.size > 0) void this.instanceEvents(podId as PodId).catch(() => undefined);
  }

  /** Instance events, from what changed in the pod's instances since last seen. */
  private async instanceEvents(podId: PodId): Promise<void> {
    const d = await this.store.getPod(podId);
    if (!d) {
      this.seen.delete(podId);
      return;
    }
    const path = marathonPathOf(d);
    const last = this.seen.get(podId);
    const now = new Map<string, { phase: InstancePhase; healthy: boolean | null }>();
    this.seen.set(podId, now);
    for (const inst of d.instances) {
      const spec = await this.specOf(podId, inst.specVersion);
      const phase = instancePhase(inst);
      const hasCheck = spec?.containers.some((c) => c.healthCheck) ?? false;
      const healthy = hasCheck ? (inst.observed?.state === 'running' ? instanceReady(inst, spec) : null) : null;
      const before = last?.get(inst.id);
      now.set(inst.id, { phase, healthy });
      if (before?.phase !== phase) this.emit({ eventType: 'instance_changed', instance: inst, path, phase });
      if (hasCheck && before?.healthy !== healthy) this.emit({ eventType: 'instance_health_changed', instance: inst, path, healthy });
    }
  }

  /** Steps of one pod never overlap; a change during a step runs one more. */
  private kick(podId: string): void {
    if (this.closed || !this.leading) return;
    if (this.stepping.has(podId)) {
      this.again.add(podId);
      return;
    }
    const run = (async () => {
      do {
        this.again.delete(podId);
        const id = this.byPod.get(podId);
        const dep = id ? this.active.get(id) : undefined;
        if (!dep) return;
        try {
          await this.step(dep);
        } catch (e) {
          // Level-triggered: the next tick looks again. A placement that cannot happen now waits in the pod's status.
          if (!(e instanceof BerthError)) throw e;
        }
      } while (this.again.has(podId) && !this.closed);
    })().finally(() => this.stepping.delete(podId));
    this.stepping.set(podId, run);
  }

  private async specOf(podId: string, version: number): Promise<PodSpec | undefined> {
    const key = `${podId}@${version}`;
    let spec = this.specs.get(key);
    if (!spec) {
      spec = (await this.store.getPodVersion(podId as PodId, version))?.spec;
      if (spec) this.specs.set(key, spec);
    }
    return spec;
  }

  private async versionTime(podId: string, version: number): Promise<string> {
    return (await this.store.getPodVersion(podId as PodId, version))?.createdAt ?? new Date().toISOString();
  }

  private async converged(d: PodDetail): Promise<boolean> {
    const target = configOf(d.spec);
    const active = d.instances.filter((i) => i.goal === 'running');
    if (active.length !== d.spec.instances) return false;
    for (const i of active) if (configOf((await this.specOf(d.pod.id, i.specVersion)) ?? d.spec) !== target) return false;
    return true;
  }

  /**
   * One step of a rollout. Old instances (another config) give way to new ones so that at least
   * ceil(n × minimumHealthCapacity) instances stay ready and at most n + floor(n × maximumOverCapacity)
   * run; with no room above n (or persistent volumes, which tie instances to their node) instances are
   * replaced where they are.
   */
  private async step(dep: Deployment): Promise<void> {
    const detail = await this.store.getPod(dep.podId as PodId);
    if (!detail) return this.finish(dep, dep.action === 'StopPod' ? 'deployment_success' : 'deployment_failed', 'the pod is gone');
    if (dep.action === 'StopPod' || detail.pod.desiredStatus === 'TERMINATED') {
      if (detail.instances.length === 0) this.finish(dep, dep.action === 'StopPod' ? 'deployment_success' : 'deployment_failed', 'the pod was deleted');
      return;
    }
    // A stopped pod's instances stay stopped, moved to the new version for when it starts (a start
    // waiting for its team's quota included: the placement pass starts it).
    if (detail.pod.desiredStatus !== 'RUNNING' || waitsToStart(detail)) {
      await this.pods.replaceInstances(detail.pod.id, detail.instances.filter((i) => i.goal === 'stopped').map((i) => i.id), detail.pod.specVersion);
      return this.finish(dep, 'deployment_success');
    }
    const spec = detail.spec;
    const n = spec.instances;
    const target = configOf(spec);
    const active = detail.instances.filter((i) => i.goal === 'running');
    const isNew = new Map<InstanceId, boolean>();
    const ready = new Map<InstanceId, boolean>();
    for (const i of active) {
      const s = await this.specOf(dep.podId, i.specVersion);
      isNew.set(i.id, configOf(s ?? spec) === target);
      ready.set(i.id, instanceReady(i, s));
    }
    const fresh = active.filter((i) => isNew.get(i.id));
    const old = active.filter((i) => !isNew.get(i.id));
    const readyFresh = fresh.filter((i) => ready.get(i.id)).length;

    if (old.length === 0) {
      if (fresh.length > n) return this.pods.removeInstances(detail.pod.id, this.victims(fresh, fresh.length - n, spec, ready).map((i) => i.id));
      if (fresh.length < n) {
        await this.pods.startInstances(detail.pod.id, n - fresh.length, detail.pod.specVersion);
        return;
      }
      if (readyFresh === n) this.finish(dep, 'deployment_success');
      return;
    }

    const minHealthy = Math.ceil(n * spec.upgrade.minimumHealthCapacity);
    const surge = Math.floor(n * spec.upgrade.maximumOverCapacity);
    const resident = spec.volumes.some((v) => v.kind === 'persistent');
    const readyTotal = active.filter((i) => ready.get(i.id)).length;

    if (surge === 0 || resident) {
      // In place: an old instance is recreated at the new version while enough others stay ready.
      const notReadyOld = old.filter((i) => !ready.get(i.id));
      let budget = Math.max(0, readyTotal - minHealthy) + notReadyOld.length;
      const pendingFresh = fresh.length - readyFresh;
      if (budget === 0 && pendingFresh === 0) budget = 1; // minimum = n and no room above: one at a time
      const chosen = [...notReadyOld, ...this.victims(old.filter((i) => ready.get(i.id)), old.length, spec, ready)].slice(0, budget);
      await this.pods.replaceInstances(detail.pod.id, chosen.map((i) => i.id), detail.pod.specVersion);
      const total = active.length;
      if (total > n) await this.pods.removeInstances(detail.pod.id, this.victims(old.filter((i) => !chosen.includes(i)), total - n, spec, ready).map((i) => i.id));
      else if (total < n) await this.pods.startInstances(detail.pod.id, n - total, detail.pod.specVersion);
      return;
    }

    // Beside: start new instances within the surge, stop old ones as new ones become ready.
    const keepOld = Math.max(0, minHealthy - readyFresh);
    const readyOld = old.filter((i) => ready.get(i.id));
    const keep = this.victims(readyOld, readyOld.length, spec, ready).reverse().slice(0, keepOld);
    const stop = old.filter((i) => !keep.includes(i));
    await this.pods.removeInstances(detail.pod.id, stop.map((i) => i.id));
    const room = n + surge - (keep.length + fresh.length);
    const start = Math.min(n - fresh.length, room);
    if (start > 0) await this.pods.startInstances(detail.pod.id, start, detail.pod.specVersion);
  }

  /** The instances to stop first: ones not ready, then by the pod's kill selection. */
  private victims(list: Instance[], count: number, spec: PodSpec, ready: Map<InstanceId, boolean>): Instance[] {
    const youngestFirst = spec.killSelection !== 'OLDEST_FIRST';
    return [...list]
      .sort((a, b) => Number(ready.get(a.id) ?? false) - Number(ready.get(b.id) ?? false) || (youngestFirst ? b.ordinal - a.ordinal : a.ordinal - b.ordinal))
      .slice(0, count);
  }
}
