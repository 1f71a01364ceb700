import {
  BASELINE_POLICY,
  BerthError,
  UNRESTRICTED_POLICY,
  widenPolicy,
  type PodSecurityPolicy,
  DESIRED_AFTER,
  allowedActions,
  instanceIdOf,
  isPodId,
  invalid,
  lifetimeToInput,
  mergeLifetime,
  newPodId,
  notFound,
  specToInput,
  type Instance,
  type InstanceId,
  type LifetimeInput,
  type NodeId,
  type PodAction,
  type PodId,
  type PodInput,
  type PodSpec,
  type PodVersion,
  type Problem,
} from '../model/index.js';
import type { PodDetail, PodFilter, Store } from '../store/types.js';
import { canSee, ownerScope, requireWrite, type Caller } from './caller.js';
import type { Leadership } from './leadership.js';
import { PlacementLock } from './placement-lock.js';
import { admitCreate, admitStart, checkQuota, holdsResources } from './quota.js';
import { compilePodInput } from './pod-input.js';
import { summarize } from './pod-status.js';
import { fit, reserve, type NodeLoad } from './scheduler.js';
import { Placer } from './placement.js';
import { scopedLoads, type VolumeBacking } from './volume-backing.js';

export interface PodServiceOptions {
  /** Host paths pods may mount (`host` volumes): a path must be one of these or under one. Empty: none. */
  hostVolumeRoots?: string[];
  /** The operator's lifetime policies, under a template's and the request's, for pods created from now on. @default none */
  lifetimeDefault?: LifetimeInput;
  /** Spec versions kept per pod (the newest; version 1 is kept too); older ones are deleted. @default 100 */
  specVersionsKept?: number;
  /** What the pod security policy grants every key beyond the baseline (`berth server --pod-policy`); its `hostPorts` may also narrow it. @default nothing */
  podPolicy?: Partial<PodSecurityPolicy>;
  /** Which data centers keep network volumes on shared storage (`berth server --nfs`); the others bind each volume to a node. @default none */
  volumeBacking?: VolumeBacking;
  /** How long an instance on a NOT_READY node waits before it is placed again elsewhere, for pods without a Marathon unreachable strategy. @default 60000 */
  unreachableAfterMs?: number;
  /** Several servers: placement and every change run only on the leader, fenced by its lease (leadership.ts). @default one server, always leading */
  leadership?: Pick<Leadership, 'lead' | 'leads'>;
}

export interface ActionOptions {
  /** Start with this many GPUs instead of the spec's (0: RunPod's "zero GPU pod" for data recovery). */
  gpuCount?: number;
}

const now = (): string => new Date().toISOString();

/**
 * The pod service: every API (native, RunPod, Marathon) creates, changes and acts on pods through it.
 * It writes desired state; agents and `applyObservation` move the observed status.
 *
 * Placement (`placeWaiting`, `loads`, the wait reasons, the spec cache) is the `Placer`'s
 * (placement.ts): this service holds one and shares the placement lock with it, and its placement
 * methods here delegate to it. `regainGpus` and `resize` fit on a pod's own node and stay here.
 * About 500 lines, and kept whole: create, update/resize and the actions each read, check and write
 * one pod under the same lock; splitting them would pass that lock and the Placer between files.
 */
export class PodService {
  /** Placement reads loads and then writes reservations; one at a time keeps GPUs from being handed out twice. */
  private readonly placing: PlacementLock;
  private readonly placer: Placer;

  constructor(
    private readonly store: Store,
    private readonly options: PodServiceOptions = {},
  ) {
    this.placing = new PlacementLock(options.leadership);
    this.placer = new Placer(store, this.placing, options);
  }

  /** Why the pod's unplaced instances wait, if they do (Marathon's queue shows it). */
  waitReasonOf(podId: PodId): string | null {
    return this.placer.waitReasonOf(podId);
  }

  /** Placement decisions so far, for the metrics endpoint: how many found a node, how many did not, and the seconds each took. */
  get placements(): Placer['placements'] {
    return this.placer.placements;
  }

  /** Pods with an instance waiting for a node now (Marathon's queue). */
  get waitingCount(): number {
    return this.placer.waitingCount;
  }

  /** Whether the spec's network volume lives on one node (its data center has no shared storage): the pod is bound to that node (`boundToNode`). */
  networkVolumeHeld(spec: PodSpec, store: Store = this.store): Promise<boolean> {
    return this.placer.networkVolumeHeld(spec, store);
  }

  /** Validates input into a spec for the caller (templates merged, references checked), writing nothing. */
  compileFor(caller: Caller, input: PodInput): Promise<PodSpec> {
    return this.compile(caller, input);
  }

  /** The pod security policy the caller's pods are held to: the baseline widened by the server's grants, then the team's; none for an admin key. */
  async policyFor(caller: Caller): Promise<PodSecurityPolicy> {
    if (caller.admin) return UNRESTRICTED_POLICY;
    const server = this.options.podPolicy ?? {};
    // The operator's host-port rule replaces the baseline's: `none` narrows it.
    const base = { ...widenPolicy(BASELINE_POLICY, server), hostPorts: server.hostPorts ?? BASELINE_POLICY.hostPorts };
    const team = await this.store.getTeam(caller.owner);
    return team ? widenPolicy(base, team.policy) : base;
  }

  private async compile(caller: Caller, input: PodInput, withTemplate?: boolean, lifetimeDefault?: LifetimeInput): Promise<PodSpec> {
    const limits = { hostVolumeRoots: this.options.hostVolumeRoots ?? [], policy: await this.policyFor(caller) };
    return compilePodInput(this.store, limits, caller, input, withTemplate, lifetimeDefault);
  }

  /**
   * Writes `spec` as the pod's next version without touching its instances: a rollout controller
   * moves them. Returns the version number.
   */
  async writeVersion(caller: Caller, id: string, spec: PodSpec): Promise<number> {
    requireWrite(caller, 'change pods');
    return this.placing.run(async () => {
      const current = await this.get(caller, id);
      if (current.pod.desiredStatus === 'TERMINATED') throw new BerthError('ACTION_NOT_ALLOWED', `pod ${id} is terminated`, { extra: { podStatus: current.pod.status, allowedActions: [] } });
      // Marathon's definitions have no lifetime policies: a pod keeps the ones it has.
      const next = spec.lifetime || !current.spec.lifetime ? spec : { ...spec, lifetime: current.spec.lifetime };
      return this.store.transaction(async (tx) => {
        const version = await tx.addPodVersion(current.pod.id, next, this.options.specVersionsKept);
        await tx.updatePod(current.pod.id, { name: spec.name });
        return version;
      });
    });
  }

  /**
   * Starts `count` new instances of the pod at `version`, each placed on its own (constraints see
   * the pod's other instances). Instances no node takes now wait, with the reason kept.
   */
  startInstances(podId: PodId, count: number, version: number): Promise<Instance[]> {
    return this.placer.startInstances(podId, count, version);
  }


  /** Moves instances to `version` where they are: their containers are recreated on the same node. */
  async replaceInstances(podId: PodId, ids: InstanceId[], version: number): Promise<void> {
    if (ids.length === 0) return;
    await this.placing.run(async () => {
      for (const id of ids) await this.store.updateInstance(id, { specVersion: version });
      await this.placer.refreshStatusLocked(podId);
    });
  }

  /** Stops and removes instances (an unplaced one goes at once); their resources are free for others. */
  async removeInstances(podId: PodId, ids: InstanceId[]): Promise<void> {
    if (ids.length === 0) return;
    await this.placing.run(async () => {
      for (const id of ids) {
        const inst = await this.store.getInstance(id);
        if (!inst) continue;
        if (!inst.nodeId) await this.store.deleteInstance(id);
        else await this.store.updateInstance(id, { goal: 'removed', gpuUuids: [] });
      }
      await this.placer.refreshStatusLocked(podId);
    });
    await this.placeWaiting();
  }

  /** Recreates an instance's containers under the same id (Marathon's kill without wipe). */
  async relaunchInstance(id: InstanceId): Promise<Instance | undefined> {
    return this.placing.run(async () => {
      const inst = await this.store.getInstance(id);
      if (!inst || inst.goal !== 'running') return inst;
      return this.store.updateInstance(id, { resetGeneration: inst.resetGeneration + 1 });
    });
  }

  /**
   * `queueOverQuota: false`: refuse a create over quota even where the team queues (RunPod's API).
   * `refuseUnplaceable: true`: refuse a pod no schedulable node could fit even when empty (RunPod's
   * API); otherwise it waits in the queue with the reason, as a machine may join.
   */
  async create(caller: Caller, input: PodInput, opts: { queueOverQuota?: boolean; refuseUnplaceable?: boolean } = {}): Promise<PodDetail> {
    requireWrite(caller, 'create pods');
    const spec = await this.compile(caller, input, true, this.options.lifetimeDefault);
    const id = newPodId();
    return this.placing.run(async () => {
      // Under the lock: two creates racing cannot both fit under the quota.
      const quotaWait = await admitCreate(this.store, caller.owner, spec, opts.queueOverQuota ?? true);
      const loads = await this.placer.loads();
      const chosen: { nodeId: NodeId | null; gpus: string[] }[] = [];
      let reason: string | null = null;
      for (let ordinal = 0; ordinal < spec.instances; ordinal++) {
        const peers = chosen.map((c) => c.nodeId).filter((n): n is NodeId => n !== null);
        // Over a queueing team's quota: nothing is placed; the pod waits in the queue.
        const p = quotaWait ? ({ ok: false, reason: quotaWait } as const) : await this.placer.placeTimed(loads, spec, peers);
        if (p.ok) {
          chosen.push({ nodeId: p.nodeId, gpus: p.gpus.map((g) => g.uuid) });
          reserve(loads.get(p.nodeId)!, spec, p.gpus.map((g) => g.uuid));
        } else {
          // A network volume's holding node (or data center) is all the pod may ever run on.
          const scope = await this.placer.volumeScope(spec);
          const allowed = scope ? scopedLoads(loads, scope) : loads;
          if (opts.refuseUnplaceable && allowed.size > 0 && !fitsAnyEmptyNode(allowed, spec)) {
            throw new BerthError('NO_CAPACITY', `no node can ever run this pod: ${p.reason}`, { extra: { reason: p.reason } });
          }
          chosen.push({ nodeId: null, gpus: [] });
          reason = p.reason;
        }
      }
      const at = now();
      const firstNode = chosen[0]?.nodeId ?? null;
      const instances = chosen.map((c, ordinal) => ({
        id: instanceIdOf(id, ordinal),
        podId: id,
        ordinal,
        nodeId: c.nodeId,
        goal: 'running' as const,
        resetGeneration: 0,
        restartGeneration: 0,
        gpuUuids: c.gpus,
        hostPorts: {},
        observed: null,
      }));
      if (reason) this.placer.waitReasons.set(id, quotaWait ?? `waiting for resources: ${reason}`);
      const { status, message } = summarize('RUNNING', instances.map((i) => ({ ...i, specVersion: 1, revision: 0 })), this.placer.waitReasons.get(id) ?? null);
      return this.store.createPod(
        {
          id,
          owner: caller.owner,
          name: spec.name,
          desiredStatus: 'RUNNING',
          status,
          statusMessage: message,
          nodeId: firstNode,
          createdAt: at,
          updatedAt: at,
          lastStartedAt: null,
          terminatedAt: null,
        },
        spec,
        instances,
      );
    });
  }

  list(caller: Caller, filter: Omit<PodFilter, 'owner'>): Promise<PodDetail[]> {
    return this.store.listPods({ ...filter, owner: ownerScope(caller) });
  }

  async get(caller: Caller, id: string): Promise<PodDetail> {
    // An id that cannot exist names nothing: not found, without asking the store.
    if (!isPodId(id)) throw notFound('pod', id.length > 64 ? `${id.slice(0, 64)}…` : id);
    const detail = await this.store.getPod(id);
    if (!detail || !canSee(caller, detail.pod.owner)) throw notFound('pod', id);
    return detail;
  }

  /** One page of the pod's versions, oldest first, after version `after`. */
  async versions(caller: Caller, id: string, page: { after?: number; limit?: number } = {}): Promise<PodVersion[]> {
    const d = await this.get(caller, id);
    return this.store.listPodVersions(d.pod.id, page);
  }

  /**
   * Applies a partial input over the pod's spec. Any change but the name recreates the containers
   * (as RunPod: an update resets the pod; only the volume disk and network volume survive).
   */
  async update(caller: Caller, id: string, patch: PodInput): Promise<PodDetail> {
    requireWrite(caller, 'change pods');
    const first = await this.get(caller, id);
    const input: PodInput = { ...specToInput(first.spec), ...patch };
    // Switching between the single-container fields and `containers`: drop the form not asked for.
    if (patch.containers !== undefined) for (const f of ['image', 'entrypoint', 'command', 'env', 'ports'] as const) if (patch[f] === undefined) delete input[f];
    if (patch.image !== undefined && patch.containers === undefined) delete input.containers;
    // Lifetime policies merge one by one: setting a maximum running time keeps the idle stop.
    if (patch.lifetime !== undefined) input.lifetime = mergeLifetime(first.spec.lifetime && lifetimeToInput(first.spec.lifetime), patch.lifetime) ?? null;
    const spec = await this.compile(caller, input, patch.templateId !== undefined && patch.templateId !== first.spec.templateId);
    // A start still waiting for the quota counts as stopped, and its instances stay so (resize).
    await checkQuota(this.store, first.pod.owner, spec, first.pod.id, holdsResources(first));

    // Checked and written under the placement lock, on a fresh read: a terminate or another update
    // that won the race is seen here, not overwritten.
    return this.placing.run(async () => {
      const current = await this.get(caller, id);
      if (current.pod.desiredStatus === 'TERMINATED') throw new BerthError('ACTION_NOT_ALLOWED', `pod ${id} is terminated`, { extra: { podStatus: current.pod.status, allowedActions: [] } });
      const problems: Problem[] = [];
      if (spec.volumeGb < current.spec.volumeGb) problems.push({ path: '/volumeGb', message: `the volume disk can only grow (now ${current.spec.volumeGb} GB)` });
      if (spec.networkVolumeId !== current.spec.networkVolumeId) problems.push({ path: '/networkVolumeId', message: 'a network volume is attached at create and cannot be changed' });
      if (problems.length) throw invalid(problems);
      if (JSON.stringify(spec) === JSON.stringify(current.spec)) return current;
      // The name and the lifetime policies are read by the control plane alone: changing them recreates nothing.
      const onlyName = JSON.stringify(withoutLifetime({ ...spec, name: current.spec.name })) === JSON.stringify(withoutLifetime(current.spec));
      const next = onlyName ? spec : withoutMarathonDefinition(spec);
      await this.store.transaction(async (tx) => {
        const version = await tx.addPodVersion(current.pod.id, next, this.options.specVersionsKept);
        await tx.updatePod(current.pod.id, { name: next.name });
        if (onlyName) return;
        await this.resize(tx, current, next, version);
      });
      await this.placer.refreshStatusLocked(current.pod.id);
      return (await this.store.getPod(current.pod.id))!;
    });
  }

  /**
   * Moves instances to the new version and scales to `spec.instances`. Every kept instance is fitted
   * again on its node (CPU, memory, GPUs) against the others' reservations, its own included, so a
   * change never oversubscribes a node; GPUs it holds are kept when the GPU ask did not change.
   */
  private async resize(tx: Store, current: PodDetail, spec: PodSpec, version: number): Promise<void> {
    const loads = await this.placer.loads(tx, current.pod.id);
    const running = holdsResources(current);
    const gpusChanged = spec.gpuCount !== current.spec.gpuCount || JSON.stringify(spec.gpuTypeIds) !== JSON.stringify(current.spec.gpuTypeIds);
    // The instances in ordinal order fill the slots 0..n-1. One replaced because its node is not
    // answering (or gone) holds no slot: it must never run again, and its replacement (a higher
    // ordinal) takes its place.
    const gone = (i: Instance): boolean => i.goal === 'removed' && i.nodeId !== null && (!loads.has(i.nodeId) || !!loads.get(i.nodeId)!.node.notReadySince);
    const slots = current.instances.filter((i) => !gone(i)).sort((a, b) => a.ordinal - b.ordinal);
    const slotOf = new Map(slots.map((i, k) => [i.id, k]));
    let nextOrdinal = Math.max(-1, ...current.instances.map((i) => i.ordinal)) + 1;
    for (const inst of current.instances) {
      if (gone(inst) || slotOf.get(inst.id)! < spec.instances) continue;
      // An instance no node holds has nothing to clean up: it goes at once.
      if (!inst.nodeId) await tx.deleteInstance(inst.id);
      else await tx.updateInstance(inst.id, { goal: 'removed', specVersion: version, gpuUuids: [] });
    }
    for (let slot = 0; slot < spec.instances; slot++) {
      const inst = slots[slot];
      const placedAndRunning = running && inst?.nodeId && inst.goal !== 'stopped';
      let nodeId = inst?.nodeId ?? null;
      let gpuUuids = inst && inst.goal !== 'removed' ? inst.gpuUuids : [];
      if (placedAndRunning) {
        const load = loads.get(inst.nodeId!);
        if (!load) throw new BerthError('NODE_UNAVAILABLE', `pod ${current.pod.id} lives on node ${inst.nodeId}, which is not registered`);
        const r = fit(load, spec, gpusChanged || inst.goal === 'removed' ? spec.gpuCount : 0);
        if ('reason' in r) throw new BerthError('NO_CAPACITY', `cannot apply the change on its node: ${r.reason}`, { extra: { reason: r.reason } });
        if (gpusChanged || inst.goal === 'removed') gpuUuids = r.gpus.map((g) => g.uuid);
        reserve(load, spec, gpuUuids);
      } else if (running && !inst) {
        const peers = slots.filter((i, k) => i.goal === 'running' && i.nodeId && k < spec.instances).map((i) => i.nodeId!);
        const p = await this.placer.placeTimed(loads, spec, peers, tx);
        if (p.ok) {
          nodeId = p.nodeId;
          gpuUuids = p.gpus.map((g) => g.uuid);
          reserve(loads.get(p.nodeId)!, spec, gpuUuids);
        }
      }
      const goal = running ? 'running' : 'stopped';
      if (inst) await tx.updateInstance(inst.id, { specVersion: version, gpuUuids, goal: inst.goal === 'removed' ? goal : inst.goal });
      else {
        const ordinal = nextOrdinal++;
        await tx.insertInstance({
          id: instanceIdOf(current.pod.id, ordinal),
          podId: current.pod.id,
          ordinal,
          nodeId,
          specVersion: version,
          goal,
          resetGeneration: 0,
          restartGeneration: 0,
          gpuUuids,
          hostPorts: {},
          observed: null,
        });
      }
    }
  }

  /**
   * Start, stop, restart, reset or terminate; 409 naming the allowed actions when the status forbids it.
   * `policyNote`: a lifetime policy acts, and says why (kept as the status message while it lasts).
   */
  async act(caller: Caller, id: string, action: PodAction, opts: ActionOptions = {}, policyNote?: string): Promise<PodDetail> {
    requireWrite(caller, 'act on pods');
    await this.get(caller, id);
    return this.placing.run(async () => {
      // The status is read and checked under the lock, so two actions cannot both pass the check
      // on the same old status (a terminate and a start racing would otherwise revive the pod).
      const detail = await this.get(caller, id);
      const allowed = allowedActions(detail.pod.status);
      if (!allowed.includes(action) || (detail.pod.desiredStatus === 'TERMINATED' && action !== 'terminate')) {
        throw new BerthError('ACTION_NOT_ALLOWED', `cannot ${action} pod ${id} while it is ${detail.pod.status}; allowed: ${allowed.join(', ') || 'none'}`, {
          extra: { podStatus: detail.pod.status, allowedActions: allowed },
        });
      }
      if (opts.gpuCount !== undefined && opts.gpuCount > detail.spec.gpuCount) {
        throw invalid([{ path: '/gpuCount', message: `can be at most the pod's ${detail.spec.gpuCount}: start with fewer GPUs, or change the pod to ask for more` }]);
      }
      // Over a queueing team's quota, a plain start is accepted and waits, its instances still
      // stopped, until the placement pass starts them (Placer.startWaitingLocked); others are refused.
      let quotaWait: string | null = null;
      if ((action === 'start' || action === 'reset' || action === 'restart') && detail.pod.desiredStatus !== 'RUNNING') {
        const starting = opts.gpuCount !== undefined ? { ...detail.spec, gpuCount: opts.gpuCount } : detail.spec;
        quotaWait = await admitStart(this.store, detail.pod.owner, starting, detail.pod.id, action === 'start' && opts.gpuCount === undefined);
      }
      const podId = detail.pod.id;
      await this.store.transaction(async (tx) => {
        const loads = await this.placer.loads(tx, podId);
        for (const inst of quotaWait ? [] : detail.instances) {
          const patch = await this.instanceAfter(action, inst, detail, loads, opts);
          if (patch === 'delete') await tx.deleteInstance(inst.id);
          else await tx.updateInstance(inst.id, patch);
        }
        const desired = DESIRED_AFTER[action];
        const at = now();
        await tx.updatePod(podId, {
          desiredStatus: desired,
          // A stop starts the terminate-after-stopped clock; a start forgets what a policy did.
          lifetimeNote: desired === 'RUNNING' ? null : (policyNote ?? (desired === 'TERMINATED' ? null : detail.pod.lifetimeNote)),
          ...(desired === 'EXITED' && detail.pod.desiredStatus !== 'EXITED' ? { lastStoppedAt: at } : {}),
          // The status follows the instances (refreshStatusLocked): TERMINATED once the node removed them.
          ...(desired === 'TERMINATED' ? { terminatedAt: at } : {}),
        });
      });
      if (quotaWait) this.placer.waitReasons.set(podId, quotaWait);
      else if (action === 'terminate' || action === 'stop') this.placer.waitReasons.delete(podId);
      await this.placer.refreshStatusLocked(podId);
      return (await this.store.getPod(podId))!;
    });
  }

  private async instanceAfter(action: PodAction, inst: Instance, detail: PodDetail, loads: Map<NodeId, NodeLoad>, opts: ActionOptions): Promise<Partial<Instance> | 'delete'> {
    switch (action) {
      case 'stop':
        // As RunPod: a stopped pod gives its GPUs back and keeps its volume disk on the node.
        return { goal: 'stopped', gpuUuids: [] };
      case 'terminate':
        // An instance on a node that is not answering goes at once: when the node comes back, its
        // agent removes what no assignment claims (containers and volumes alike).
        return inst.nodeId && !loads.get(inst.nodeId)?.node.notReadySince && loads.has(inst.nodeId) ? { goal: 'removed', gpuUuids: [] } : 'delete';
      case 'restart':
      case 'start':
      case 'reset': {
        const base = action === 'reset' ? { resetGeneration: inst.resetGeneration + 1, hostPorts: {} } : {};
        if (inst.goal === 'running') {
          // Restart, or start of containers that exited on their own (restart policy never/on-failure): run them again in place.
          return action === 'reset' ? { ...base, goal: 'running' } : { goal: 'running', restartGeneration: inst.restartGeneration + 1 };
        }
        // Stopped: its GPUs were given back and must be had again on its node.
        const gpus = await this.regainGpus(inst, detail, loads, opts);
        return { ...base, goal: 'running', gpuUuids: gpus };
      }
    }
  }

  /** A stopped pod is pinned to its node; its GPUs must be free there again, or the start fails and says why. */
  private async regainGpus(inst: Instance, detail: PodDetail, loads: Map<NodeId, NodeLoad>, opts: ActionOptions): Promise<string[]> {
    const want = opts.gpuCount ?? detail.spec.gpuCount;
    if (!inst.nodeId) return [];
    const load = loads.get(inst.nodeId);
    if (!load) throw new BerthError('NODE_UNAVAILABLE', `pod ${detail.pod.id} lives on node ${inst.nodeId}, which is not registered`);
    const r = fit(load, detail.spec, want);
    if ('reason' in r) {
      throw new BerthError('NO_CAPACITY', `not enough free resources on the pod's node to start it (${r.reason}). Wait, start it with fewer GPUs (gpuCount 0 keeps /workspace reachable), or terminate it and create a new pod.`, {
        extra: { reason: r.reason },
      });
    }
    const uuids = r.gpus.map((g) => g.uuid);
    reserve(load, detail.spec, uuids);
    return uuids;
  }

  /** Recomputes a pod's status from its instances and writes it when it changed. */
  refreshStatus(podId: PodId): Promise<void> {
    // Under the lock: a status computed from a read taken before an action must not land after it.
    const leadership = this.options.leadership;
    if (!leadership || leadership.leads()) return this.placing.run(() => this.placer.refreshStatusLocked(podId));
    // A follower, from its agents' reports: read and written in one transaction, which takes the
    // writer lock first, so no server's write lands between the read and the write.
    return this.placing.runHere(() => this.store.transaction((tx) => this.placer.refreshStatusLocked(podId, tx)));
  }

  /** Places a new instance of the pod in place of `id` (node loss, drain): see Placer.moveInstance. */
  moveInstance(id: InstanceId, opts: { keepIfUnplaced?: boolean } = {}): Promise<{ moved: Instance } | { unplaced: string } | undefined> {
    return this.placer.moveInstance(id, opts);
  }

  /** Deletes an instance nothing can act on any more (its node is gone for good), and refreshes its pod. */
  forgetInstance(id: InstanceId): Promise<void> {
    return this.placer.forgetInstance(id);
  }

  /** Tries to place instances waiting for a node; called when nodes join or resources free up. See Placer.placeWaiting. */
  placeWaiting(): Promise<void> {
    return this.placer.placeWaiting();
  }
}

/**
 * A Marathon pod changed through another API no longer runs what its stored definition says: the
 * definition goes, its path id stays, and the Marathon API writes the definition from the spec.
 */
function withoutMarathonDefinition(spec: PodSpec): PodSpec {
  return spec.marathon?.definition ? { ...spec, marathon: { id: spec.marathon.id } } : spec;
}

function withoutLifetime(spec: PodSpec): PodSpec {
  const { lifetime: _lifetime, ...rest } = spec;
  return rest;
}

function fitsAnyEmptyNode(loads: Map<NodeId, NodeLoad>, spec: PodSpec): boolean {
  for (const { node, unschedulable } of loads.values()) {
    if (unschedulable) continue;
    if (!('reason' in fit({ node, cpus: 0, memoryMb: 0, gpuUuids: new Set() }, spec))) return true;
  }
  return false;
}

export type { InstanceId };
