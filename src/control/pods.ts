import {
  BASELINE_POLICY,
  BerthError,
  UNRESTRICTED_POLICY,
  widenPolicy,
  type PodSecurityPolicy,
  DESIRED_AFTER,
  fixedHostPorts,
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
  type Node,
  type LifetimeInput,
  type NodeId,
  type PodAction,
  type PodId,
  type PodInput,
  type PodSpec,
  type PodVersion,
  type Problem,
} from '../model/index.js';
import type { InstancePlacement } from '../store/instances.js';
import type { PodDetail, PodFilter, PodPatch, Store } from '../store/types.js';
import { canSee, ownerScope, requireWrite, type Caller } from './caller.js';
import { Mutex } from './mutex.js';
import { admitCreate, checkQuota, limitedTeam, quotaHold } from './quota.js';
import { compilePodInput } from './pod-input.js';
import { summarize } from './pod-status.js';
import { fit, nodeLoads, place, reserve, type NodeLoad, type Placement } from './scheduler.js';
import { decideLost, lostMessage } from './node-decide.js';
import { scopedLoads, scopeReason, volumeHeldByNode, VolumeBacking, type VolumeScope } from './volume-backing.js';

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
 * One file for now (~570 lines): create, update, act and placement share the placement lock, the
 * load map and the spec cache. Placement (`placeWaiting`, `loads`, `regainGpus`) is the part to move
 * out, once a leader places for several servers (issue 12).
 */
export class PodService {
  /** Placement reads loads and then writes reservations; one at a time keeps GPUs from being handed out twice. */
  private readonly placing = new Mutex();
  /** Why an unplaced pod waits, kept in memory: it changes with every node and is recomputed on each try. */
  private readonly waitReasons = new Map<PodId, string>();
  /** Spec versions never change once written, so they are cached by `podId@version` for placement. */
  private readonly specCache = new Map<string, PodSpec>();

  constructor(
    private readonly store: Store,
    private readonly options: PodServiceOptions = {},
  ) {}

  /** Why the pod's unplaced instances wait, if they do (Marathon's queue shows it). */
  waitReasonOf(podId: PodId): string | null {
    return this.waitReasons.get(podId) ?? null;
  }

  /** Placement decisions so far, for the metrics endpoint: how many found a node, how many did not, and the seconds each took. */
  readonly placements = { placed: 0, unplaced: 0, observe: undefined as ((seconds: number, placed: boolean) => void) | undefined };

  /** Pods with an instance waiting for a node now (Marathon's queue). */
  get waitingCount(): number {
    return this.waitReasons.size;
  }

  /**
   * Places one instance. A pod with a network volume goes only where the volume's data is: its data
   * center's nodes, or the one node that holds it (bound here, at its first placement, when its data
   * center has no shared storage). `store`: the transaction the caller is in, if any.
   */
  private async placeTimed(loads: Map<NodeId, NodeLoad>, spec: PodSpec, peers: NodeId[], store: Store = this.store): Promise<Placement> {
    const scope = await this.volumeScope(spec, store);
    const allowed = scope ? scopedLoads(loads, scope) : loads;
    const t0 = performance.now();
    let p = place(allowed, spec, null, spec.gpuCount, peers);
    if (scope && !p.ok) p = { ok: false, reason: scopeReason(scope, loads, allowed, p.reason) };
    if (scope?.binds && p.ok) {
      const bound = await store.bindNetworkVolume(scope.volume.id, p.nodeId);
      if (bound.nodeId !== p.nodeId) p = { ok: false, reason: scopeReason(this.backing.scope(bound), loads, allowed, 'bound meanwhile') };
    }
    if (p.ok) this.placements.placed++;
    else this.placements.unplaced++;
    this.placements.observe?.((performance.now() - t0) / 1000, p.ok);
    return p;
  }

  private get backing(): VolumeBacking {
    return this.options.volumeBacking ?? NO_SHARED_STORAGE;
  }

  /** Where the spec's network volume lets its pods run; undefined: anywhere (no volume, or one deleted since). */
  private async volumeScope(spec: PodSpec, store: Store = this.store): Promise<VolumeScope | undefined> {
    if (!spec.networkVolumeId) return undefined;
    const volume = await store.getNetworkVolume(spec.networkVolumeId);
    return volume && this.backing.scope(volume);
  }

  /** Whether the spec's network volume lives on one node (its data center has no shared storage): the pod is bound to that node (`boundToNode`). */
  async networkVolumeHeld(spec: PodSpec, store: Store = this.store): Promise<boolean> {
    if (!spec.networkVolumeId) return false;
    return volumeHeldByNode(spec, await store.getNetworkVolume(spec.networkVolumeId), this.backing);
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
  async startInstances(podId: PodId, count: number, version: number): Promise<Instance[]> {
    if (count <= 0) return [];
    return this.placing.run(async () => {
      const detail = await this.store.getPod(podId);
      const spec = (await this.store.getPodVersion(podId, version))?.spec;
      if (!detail || !spec) return [];
      const loads = await this.loads();
      const peers = detail.instances.filter((i) => i.goal === 'running' && i.nodeId).map((i) => i.nodeId!);
      let ordinal = Math.max(-1, ...detail.instances.map((i) => i.ordinal)) + 1;
      const out: Instance[] = [];
      for (let n = 0; n < count; n++) {
        const p = await this.placeTimed(loads, spec, peers);
        let nodeId: NodeId | null = null;
        let gpuUuids: string[] = [];
        if (p.ok) {
          nodeId = p.nodeId;
          gpuUuids = p.gpus.map((g) => g.uuid);
          reserve(loads.get(p.nodeId)!, spec, gpuUuids);
          peers.push(p.nodeId);
        } else {
          this.waitReasons.set(podId, `waiting for resources: ${p.reason}`);
        }
        out.push(
          await this.store.insertInstance({
            id: instanceIdOf(podId, ordinal++),
            podId,
            ordinal: ordinal - 1,
            nodeId,
            specVersion: version,
            goal: 'running',
            resetGeneration: 0,
            restartGeneration: 0,
            gpuUuids,
            hostPorts: {},
            observed: null,
          }),
        );
      }
      await this.refreshStatusLocked(podId);
      return out;
    });
  }

  /** Moves instances to `version` where they are: their containers are recreated on the same node. */
  async replaceInstances(podId: PodId, ids: InstanceId[], version: number): Promise<void> {
    if (ids.length === 0) return;
    await this.placing.run(async () => {
      for (const id of ids) await this.store.updateInstance(id, { specVersion: version });
      await this.refreshStatusLocked(podId);
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
      await this.refreshStatusLocked(podId);
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
      const loads = await this.loads();
      const chosen: { nodeId: NodeId | null; gpus: string[] }[] = [];
      let reason: string | null = null;
      for (let ordinal = 0; ordinal < spec.instances; ordinal++) {
        const peers = chosen.map((c) => c.nodeId).filter((n): n is NodeId => n !== null);
        // Over a queueing team's quota: nothing is placed; the pod waits in the queue.
        const p = quotaWait ? ({ ok: false, reason: quotaWait } as const) : await this.placeTimed(loads, spec, peers);
        if (p.ok) {
          chosen.push({ nodeId: p.nodeId, gpus: p.gpus.map((g) => g.uuid) });
          reserve(loads.get(p.nodeId)!, spec, p.gpus.map((g) => g.uuid));
        } else {
          // A network volume's holding node (or data center) is all the pod may ever run on.
          const scope = await this.volumeScope(spec);
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
      if (reason) this.waitReasons.set(id, quotaWait ?? `waiting for resources: ${reason}`);
      const { status, message } = summarize('RUNNING', instances.map((i) => ({ ...i, specVersion: 1, revision: 0 })), this.waitReasons.get(id) ?? null);
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
    await checkQuota(this.store, first.pod.owner, spec, first.pod.id, first.pod.desiredStatus === 'RUNNING');

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
      await this.refreshStatusLocked(current.pod.id);
      return (await this.store.getPod(current.pod.id))!;
    });
  }

  /**
   * Moves instances to the new version and scales to `spec.instances`. Every kept instance is fitted
   * again on its node (CPU, memory, GPUs) against the others' reservations, its own included, so a
   * change never oversubscribes a node; GPUs it holds are kept when the GPU ask did not change.
   */
  private async resize(tx: Store, current: PodDetail, spec: PodSpec, version: number): Promise<void> {
    const loads = await this.loads(tx, current.pod.id);
    const running = current.pod.desiredStatus === 'RUNNING';
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
        const p = await this.placeTimed(loads, spec, peers, tx);
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
      if ((action === 'start' || action === 'reset' || action === 'restart') && detail.pod.desiredStatus !== 'RUNNING') {
        const starting = opts.gpuCount !== undefined ? { ...detail.spec, gpuCount: opts.gpuCount } : detail.spec;
        await checkQuota(this.store, detail.pod.owner, starting, detail.pod.id, true);
      }
      const podId = detail.pod.id;
      await this.store.transaction(async (tx) => {
        const loads = await this.loads(tx, podId);
        for (const inst of detail.instances) {
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
      if (action === 'terminate') this.waitReasons.delete(podId);
      await this.refreshStatusLocked(podId);
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
    return this.placing.run(() => this.refreshStatusLocked(podId));
  }

  private async refreshStatusLocked(podId: PodId, store: Store = this.store): Promise<void> {
    const detail = await store.getPod(podId);
    if (!detail) return;
    const patch = this.statusPatch(detail.pod, detail.instances, await this.awayOf(detail.pod, detail.instances, detail.spec));
    if (patch) await store.updatePod(podId, patch);
  }

  /** The pod's status recomputed from `instances`, as a patch; null when it would not change. `away`: see awayOf. */
  private statusPatch(pod: PodDetail['pod'], instances: Instance[], away?: (i: Instance) => string | null): PodPatch | null {
    const summary = summarize(pod.desiredStatus, instances, this.waitReasons.get(pod.id) ?? null, away);
    const status = summary.status;
    // A pod a lifetime policy stopped or terminated says why for as long as it stays so.
    const message = pod.desiredStatus !== 'RUNNING' && pod.lifetimeNote ? pod.lifetimeNote : summary.message;
    if (status === pod.status && message === pod.statusMessage) return null;
    const startedAt = instances.find((i) => i.observed?.startedAt)?.observed?.startedAt ?? now();
    return {
      status,
      statusMessage: message,
      ...(status === 'RUNNING' && pod.status !== 'RUNNING' ? { lastStartedAt: startedAt } : {}),
      nodeId: pod.nodeId ?? instances.find((i) => i.nodeId)?.nodeId ?? null,
    };
  }

  /**
   * For the pod's instances on nodes that are not answering, what its status message says; undefined
   * when every node answers. `known`: the nodes as a placement pass read them (no read per pod).
   */
  private async awayOf(pod: PodDetail['pod'], instances: Instance[], podSpec: PodSpec, known?: Map<NodeId, Node>): Promise<((i: Instance) => string | null) | undefined> {
    const ids = [...new Set(instances.map((i) => i.nodeId).filter((n): n is NodeId => n !== null))];
    const lost = new Map<NodeId, Node>();
    for (const id of ids) {
      const node = known ? known.get(id) : await this.store.getNode(id);
      if (node?.notReadySince) lost.set(id, node);
    }
    if (lost.size === 0) return undefined;
    const t = Date.now();
    const held = await this.networkVolumeHeld(podSpec);
    return (i) => {
      const node = i.nodeId ? lost.get(i.nodeId) : undefined;
      if (!node) return null;
      const spec = i.specVersion === pod.specVersion ? podSpec : (this.specCache.get(`${i.podId}@${i.specVersion}`) ?? podSpec);
      return lostMessage(node, decideLost(i, spec, node, t, this.options.unreachableAfterMs, held && spec.networkVolumeId === podSpec.networkVolumeId));
    };
  }

  /**
   * Places a new instance of the pod (a new ordinal, as a deployment does) in place of `id`, which
   * gets goal `removed`: its node's agent removes it when it answers again. Under the placement
   * lock, through the normal placement (cordoned and NOT_READY nodes skipped); where no node takes
   * it now, the new one waits with the reason — unless `keepIfUnplaced` (a drain), when nothing
   * changes and the reason comes back. Undefined when `id` no longer runs (it went meanwhile).
   */
  async moveInstance(id: InstanceId, opts: { keepIfUnplaced?: boolean } = {}): Promise<{ moved: Instance } | { unplaced: string } | undefined> {
    const moved = await this.placing.run(async () => {
      const inst = await this.store.getInstance(id);
      if (!inst || inst.goal !== 'running' || !inst.nodeId) return undefined;
      const detail = await this.store.getPod(inst.podId);
      if (!detail || detail.pod.desiredStatus !== 'RUNNING') return undefined;
      const spec = (await this.store.getPodVersion(inst.podId, inst.specVersion))?.spec ?? detail.spec;
      const loads = await this.loads();
      const peers = detail.instances.filter((i) => i.id !== id && i.goal === 'running' && i.nodeId).map((i) => i.nodeId!);
      // Never back onto the node it leaves.
      const away = new Map([...loads].filter(([n]) => n !== inst.nodeId));
      const p = await this.placeTimed(away, spec, peers);
      if (!p.ok && opts.keepIfUnplaced) return { unplaced: p.reason };
      const ordinal = Math.max(-1, ...detail.instances.map((i) => i.ordinal)) + 1;
      const next = await this.store.transaction(async (tx) => {
        if (loads.has(inst.nodeId!)) await tx.updateInstance(id, { goal: 'removed', gpuUuids: [] });
        else await tx.deleteInstance(id);
        const created = await tx.insertInstance({
          id: instanceIdOf(inst.podId, ordinal),
          podId: inst.podId,
          ordinal,
          nodeId: p.ok ? p.nodeId : null,
          specVersion: inst.specVersion,
          goal: 'running',
          resetGeneration: 0,
          restartGeneration: 0,
          gpuUuids: p.ok ? p.gpus.map((g) => g.uuid) : [],
          hostPorts: {},
          observed: null,
        });
        if (p.ok && detail.pod.nodeId === inst.nodeId) await tx.updatePod(inst.podId, { nodeId: p.nodeId });
        return created;
      });
      if (p.ok) this.waitReasons.delete(inst.podId);
      else this.waitReasons.set(inst.podId, `waiting for resources: ${p.reason}`);
      await this.refreshStatusLocked(inst.podId);
      return { moved: next };
    });
    return moved;
  }

  /** Deletes an instance nothing can act on any more (its node is gone for good), and refreshes its pod. */
  async forgetInstance(id: InstanceId): Promise<void> {
    await this.placing.run(async () => {
      const inst = await this.store.getInstance(id);
      if (!inst) return;
      if (inst.goal === 'stopped') await this.store.updateInstance(id, { nodeId: null });
      else await this.store.deleteInstance(id);
      await this.refreshStatusLocked(inst.podId);
    });
  }

  /** The store revision the last placement pass saw: an unchanged store has nothing new to place. */
  private placedAt = -1;

  /**
   * Tries to place instances waiting for a node; called when nodes join or resources free up.
   *
   * One pass reads the nodes, the instances and the waiting pods once, keeps the loads as it places,
   * and writes placements and the pods' new statuses in transactions of PLACEMENT_BATCH, yielding
   * the event loop between them: API requests go on while a long queue is placed.
   */
  async placeWaiting(): Promise<void> {
    await this.placing.run(async () => {
      const revision = await this.store.revision();
      if (revision === this.placedAt) return;
      const nodes = await this.store.listNodes();
      if (nodes.length === 0) return;
      this.placedAt = revision;
      const instances = await this.store.listInstances({});
      const waitingPods = [...new Set(instances.filter((i) => !i.nodeId && i.goal === 'running').map((i) => i.podId))];
      if (waitingPods.length === 0) return;
      const details: PodDetail[] = [];
      for (let i = 0; i < waitingPods.length; i += 500) details.push(...(await this.store.listPods({ ids: waitingPods.slice(i, i + 500) })));
      for (const d of details) this.specCache.set(`${d.pod.id}@${d.pod.specVersion}`, d.spec);
      const loads = await this.loads(this.store, undefined, nodes, instances);
      const byId = new Map(nodes.map((n) => [n.id, n]));
      const batch = new PlacementBatch(this.store, async (pod, insts, spec) => this.statusPatch(pod, insts, await this.awayOf(pod, insts, spec, byId)));
      const limited = new Map<string, boolean>();
      const refused = new Map<string, string>();
      for (const detail of details) {
        if (detail.pod.desiredStatus !== 'RUNNING') continue;
        const podId = detail.pod.id;
        let current = detail.instances;
        const peers = current.filter((i) => i.goal === 'running' && i.nodeId).map((i) => i.nodeId!);
        for (const inst of detail.instances) {
          if (inst.nodeId || inst.goal !== 'running') continue;
          const spec = (await this.specOf(inst)) ?? detail.spec;
          // A pod none of whose instances is placed yet counts against its team's quota only once placed:
          // what this pass placed so far is written first, so the quota sees it.
          let isLimited = limited.get(detail.pod.owner);
          if (isLimited === undefined) limited.set(detail.pod.owner, (isLimited = (await limitedTeam(this.store, detail.pod.owner)) !== undefined));
          if (isLimited) {
            await batch.flush();
            const held = await quotaHold(this.store, { ...detail, instances: current }, spec);
            if (held) {
              this.waitReasons.set(podId, held);
              batch.status(detail.pod, current, detail.spec);
              continue;
            }
          }
          // A pass only adds reservations: an ask that found no node finds none later in the pass.
          const ask = peers.length === 0 ? askKey(spec) : undefined;
          const known = ask === undefined ? undefined : refused.get(ask);
          const p = known !== undefined ? ({ ok: false, reason: known } as const) : await this.placeTimed(loads, spec, peers);
          if (!p.ok) {
            if (ask !== undefined) refused.set(ask, p.reason);
            this.waitReasons.set(podId, `waiting for resources: ${p.reason}`);
            batch.status(detail.pod, current, detail.spec);
            continue;
          }
          const uuids = p.gpus.map((g) => g.uuid);
          reserve(loads.get(p.nodeId)!, spec, uuids);
          peers.push(p.nodeId);
          current = current.map((i) => (i.id === inst.id ? { ...i, nodeId: p.nodeId, gpuUuids: uuids } : i));
          this.waitReasons.delete(podId);
          batch.place({ id: inst.id, podId, nodeId: p.nodeId, gpuUuids: uuids });
          batch.status(detail.pod, current, detail.spec);
          if (batch.size >= PLACEMENT_BATCH) {
            await batch.flush();
            // Long passes must not hold the event loop: API requests go on between batches.
            await new Promise((r) => setImmediate(r));
          }
        }
      }
      await batch.flush();
    });
  }

  /** The spec an instance runs, by its version; versions never change, so each is read once. */
  private async specOf(inst: Instance, store: Store = this.store): Promise<PodSpec | undefined> {
    const key = `${inst.podId}@${inst.specVersion}`;
    let spec = this.specCache.get(key);
    if (!spec) {
      spec = (await store.getPodVersion(inst.podId, inst.specVersion))?.spec;
      if (spec) this.specCache.set(key, spec);
    }
    return spec;
  }

  private async loads(store: Store = this.store, except?: PodId, nodesRead?: Node[], instancesRead?: Instance[]): Promise<Map<NodeId, NodeLoad>> {
    const nodes = nodesRead ?? (await store.listNodes());
    if (nodes.length === 0) return new Map();
    const instances = (instancesRead ?? (await store.listInstances({}))).filter((i) => i.goal === 'running' && i.nodeId && i.podId !== except);
    for (const inst of instances) await this.specOf(inst, store);
    return nodeLoads(nodes, instances, (i) => this.specCache.get(`${i.podId}@${i.specVersion}`));
  }
}

/** Placements written per transaction by a placement pass. */
export const PLACEMENT_BATCH = 256;

/**
 * A placement pass's pending writes: instances placed and pods whose status follows, written in
 * one transaction per flush. A pod's status is computed when it is flushed, from its instances as
 * the pass last saw them (an agent's report that lands meanwhile refreshes it again afterwards).
 */
class PlacementBatch {
  private placements: InstancePlacement[] = [];
  private pods = new Map<PodId, { pod: PodDetail['pod']; instances: Instance[]; spec: PodSpec }>();
  private readonly written = new Map<PodId, PodDetail['pod']>();

  constructor(
    private readonly store: Store,
    private readonly statusPatch: (pod: PodDetail['pod'], instances: Instance[], spec: PodSpec) => Promise<PodPatch | null>,
  ) {}

  get size(): number {
    return this.placements.length;
  }

  place(placement: InstancePlacement): void {
    this.placements.push(placement);
  }

  status(pod: PodDetail['pod'], instances: Instance[], spec: PodSpec): void {
    this.pods.set(pod.id, { pod, instances, spec });
  }

  async flush(): Promise<void> {
    if (this.placements.length === 0 && this.pods.size === 0) return;
    const patches: { id: PodId; patch: PodPatch }[] = [];
    for (const { pod, instances, spec } of this.pods.values()) {
      // Against what an earlier flush of this pass wrote, not the pod as the pass first read it.
      const base = this.written.get(pod.id) ?? pod;
      const patch = await this.statusPatch(base, instances, spec);
      if (!patch) continue;
      patches.push({ id: pod.id, patch });
      this.written.set(pod.id, { ...base, ...patch });
    }
    const placements = this.placements;
    this.placements = [];
    this.pods = new Map();
    await this.store.placeInstances(placements, patches);
  }
}

/**
 * A Marathon pod changed through another API no longer runs what its stored definition says: the
 * definition goes, its path id stays, and the Marathon API writes the definition from the spec.
 */
function withoutMarathonDefinition(spec: PodSpec): PodSpec {
  return spec.marathon?.definition ? { ...spec, marathon: { id: spec.marathon.id } } : spec;
}

/** What a placement asks of a node, as a key: two specs with one key fit the same nodes. */
function askKey(spec: PodSpec): string {
  return JSON.stringify([spec.vcpuCount, spec.memoryGb, spec.gpuCount, spec.gpuTypeIds, fixedHostPorts(spec), spec.constraints ?? [], spec.networkVolumeId]);
}

function withoutLifetime(spec: PodSpec): PodSpec {
  const { lifetime: _lifetime, ...rest } = spec;
  return rest;
}

const NO_SHARED_STORAGE = new VolumeBacking();

function fitsAnyEmptyNode(loads: Map<NodeId, NodeLoad>, spec: PodSpec): boolean {
  for (const { node, unschedulable } of loads.values()) {
    if (unschedulable) continue;
    if (!('reason' in fit({ node, cpus: 0, memoryMb: 0, gpuUuids: new Set() }, spec))) return true;
  }
  return false;
}

export type { InstanceId };
