import { fixedHostPorts, instanceIdOf, type Instance, type InstanceId, type Node, type NodeId, type PodId, type PodSpec } from '../model/index.js';
import type { PodDetail, PodPatch, Store } from '../store/types.js';
import type { Leadership } from './leadership.js';
import type { PlacementLock } from './placement-lock.js';
import { limitedTeam, quotaHold, startHold, waitsToStart } from './quota.js';
import { summarize } from './pod-status.js';
import { fit, nodeLoads, place, reserve, type NodeLoad, type Placement } from './scheduler.js';
import { decideLost, lostMessage } from './node-decide.js';
import { PLACEMENT_BATCH, PlacementBatch } from './placement-batch.js';
import { scopedLoads, scopeReason, volumeHeldByNode, VolumeBacking, type VolumeScope } from './volume-backing.js';

export interface PlacerOptions {
  /** Which data centers keep network volumes on shared storage (`berth server --nfs`); the others bind each volume to a node. @default none */
  volumeBacking?: VolumeBacking;
  /** How long an instance on a NOT_READY node waits before it is placed again elsewhere, for pods without a Marathon unreachable strategy. @default 60000 */
  unreachableAfterMs?: number;
  /** Several servers: only the leader places (see PodServiceOptions). @default one server, always leading */
  leadership?: Pick<Leadership, 'leads'>;
}

const now = (): string => new Date().toISOString();

/**
 * Placement, for the pod service: the placement pass over waiting instances (`placeWaiting`), the
 * load map it places against, one placement with its network-volume scope (`placeTimed`), new and
 * moved instances (deployments, node loss, drains), and what placement leaves in memory: why each
 * unplaced pod waits, the placement counters, the spec cache. A pod's status follows its instances
 * and its wait reason, so it is recomputed here too (`refreshStatusLocked`).
 *
 * The pod service holds it and shares its placement lock with it: creates, changes, actions and
 * placement run one at a time. Methods named `…Locked`, and `placeTimed`, `loads` and `volumeScope`,
 * expect the caller to hold it.
 */
export class Placer {
  /** Why an unplaced pod waits, kept in memory: it changes with every node and is recomputed on each try. */
  readonly waitReasons = new Map<PodId, string>();
  /** Spec versions never change once written, so they are cached by `podId@version` for placement. */
  private readonly specCache = new Map<string, PodSpec>();

  constructor(
    private readonly store: Store,
    /** The pod service's placement lock. */
    private readonly placing: PlacementLock,
    private readonly options: PlacerOptions = {},
  ) {}

  private leads(): boolean {
    return this.options.leadership?.leads() ?? true;
  }

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
  async placeTimed(loads: Map<NodeId, NodeLoad>, spec: PodSpec, peers: NodeId[], store: Store = this.store): Promise<Placement> {
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
  async volumeScope(spec: PodSpec, store: Store = this.store): Promise<VolumeScope | undefined> {
    if (!spec.networkVolumeId) return undefined;
    const volume = await store.getNetworkVolume(spec.networkVolumeId);
    return volume && this.backing.scope(volume);
  }

  /** Whether the spec's network volume lives on one node (its data center has no shared storage): the pod is bound to that node (`boundToNode`). */
  async networkVolumeHeld(spec: PodSpec, store: Store = this.store): Promise<boolean> {
    if (!spec.networkVolumeId) return false;
    return volumeHeldByNode(spec, await store.getNetworkVolume(spec.networkVolumeId), this.backing);
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
    if (!this.leads()) return;
    await this.placing.run(async () => {
      const revision = await this.store.revision();
      if (revision === this.placedAt) return;
      const nodes = await this.store.listNodes();
      if (nodes.length === 0) return;
      this.placedAt = revision;
      const instances = await this.store.listInstances({});
      const waitingPods = [...new Set(instances.filter((i) => !i.nodeId && i.goal === 'running').map((i) => i.podId))];
      const startsWaiting = await this.startsWaiting(instances);
      if (waitingPods.length === 0 && startsWaiting.length === 0) return;
      const details: PodDetail[] = [];
      for (let i = 0; i < waitingPods.length; i += 500) details.push(...(await this.store.listPods({ ids: waitingPods.slice(i, i + 500) })));
      for (const d of details) this.specCache.set(`${d.pod.id}@${d.pod.specVersion}`, d.spec);
      const loads = await this.loads(this.store, undefined, nodes, instances);
      const byId = new Map(nodes.map((n) => [n.id, n]));
      const batch = new PlacementBatch(this.store, async (pod, insts, spec) => this.statusPatch(pod, insts, await this.awayOf(pod, insts, spec, byId)));
      // Starts that waited for their team's quota first: their volume disks already hold a place on their nodes.
      for (const detail of startsWaiting) await this.startWaitingLocked(detail, loads, batch);
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

  /**
   * The pods whose start waits for their team's quota (`waitsToStart`). Such a pod shows PROVISIONING
   * (pod-status.ts), so only pods in that status and with a stopped instance are read.
   */
  private async startsWaiting(instances: Instance[]): Promise<PodDetail[]> {
    // Only pods with a stopped instance, and of those only the PROVISIONING: not every pod that waits.
    const stopped = [...new Set(instances.filter((i) => i.goal === 'stopped').map((i) => i.podId))];
    const found: PodDetail[] = [];
    for (let i = 0; i < stopped.length; i += 500) found.push(...(await this.store.listPods({ ids: stopped.slice(i, i + 500), status: ['PROVISIONING'] })));
    return found.filter(waitsToStart);
  }

  /**
   * A start that waited for its team's quota, once the quota lets it: as a start does
   * (PodService.regainGpus), each stopped instance takes its GPUs back on its own node, where its
   * volume disk is — all of them or, where one does not fit, none, and the pod waits on with the
   * reason. One whose node is gone for good (no node) runs again unplaced: the next pass places it.
   */
  private async startWaitingLocked(detail: PodDetail, loads: Map<NodeId, NodeLoad>, batch: PlacementBatch): Promise<void> {
    const podId = detail.pod.id;
    // What this pass placed so far is written first, so the quota sees it.
    await batch.flush();
    const held = await startHold(this.store, detail);
    const waitOn = (reason: string): void => {
      this.waitReasons.set(podId, reason);
      batch.status(detail.pod, detail.instances, detail.spec);
    };
    if (held) return waitOn(held);
    // Tried on copies of the loads: a pod that does not fit whole takes nothing.
    const trial = new Map<NodeId, NodeLoad>();
    const starts: { inst: Instance; spec: PodSpec; gpuUuids: string[] }[] = [];
    for (const inst of detail.instances) {
      if (inst.goal !== 'stopped') continue;
      const spec = (await this.specOf(inst)) ?? detail.spec;
      if (!inst.nodeId) {
        starts.push({ inst, spec, gpuUuids: [] });
        continue;
      }
      const real = loads.get(inst.nodeId);
      if (!real) return waitOn(`waiting for resources: the pod lives on node ${inst.nodeId}, which is not registered`);
      let load = trial.get(inst.nodeId);
      if (!load) trial.set(inst.nodeId, (load = { ...real, gpuUuids: new Set(real.gpuUuids), hostPorts: new Set(real.hostPorts) }));
      const r = fit(load, spec, spec.gpuCount);
      if ('reason' in r) return waitOn(`waiting for resources: not enough free on the pod's node to start it: ${r.reason}`);
      const gpuUuids = r.gpus.map((g) => g.uuid);
      reserve(load, spec, gpuUuids);
      starts.push({ inst, spec, gpuUuids });
    }
    await this.store.transaction(async (tx) => {
      for (const { inst, gpuUuids } of starts) await tx.updateInstance(inst.id, { goal: 'running', gpuUuids });
    });
    for (const { inst, spec, gpuUuids } of starts) if (inst.nodeId) reserve(loads.get(inst.nodeId)!, spec, gpuUuids);
    const started = new Map(starts.map((s) => [s.inst.id, s.gpuUuids]));
    this.waitReasons.delete(podId);
    batch.status(detail.pod, detail.instances.map((i) => (started.has(i.id) ? { ...i, goal: 'running' as const, gpuUuids: started.get(i.id)! } : i)), detail.spec);
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

  async loads(store: Store = this.store, except?: PodId, nodesRead?: Node[], instancesRead?: Instance[]): Promise<Map<NodeId, NodeLoad>> {
    const nodes = nodesRead ?? (await store.listNodes());
    if (nodes.length === 0) return new Map();
    const instances = (instancesRead ?? (await store.listInstances({}))).filter((i) => i.goal === 'running' && i.nodeId && i.podId !== except);
    for (const inst of instances) await this.specOf(inst, store);
    return nodeLoads(nodes, instances, (i) => this.specCache.get(`${i.podId}@${i.specVersion}`));
  }

  async refreshStatusLocked(podId: PodId, store: Store = this.store): Promise<void> {
    const detail = await store.getPod(podId);
    if (!detail) return;
    const patch = this.statusPatch(detail.pod, detail.instances, await this.awayOf(detail.pod, detail.instances, detail.spec));
    if (patch) await store.updatePod(podId, patch);
  }

  /** The pod's status recomputed from `instances`, as a patch; null when it would not change. `away`: see awayOf. */
  private statusPatch(pod: PodDetail['pod'], instances: Instance[], away?: (i: Instance) => string | null): PodPatch | null {
    // A follower keeps no wait reasons (only the leader places): the one the leader wrote stays.
    const waiting = this.leads() ? null : instances.some((i) => (!i.nodeId && i.goal === 'running') || (i.goal === 'stopped' && pod.desiredStatus === 'RUNNING')) ? pod.statusMessage : null;
    const summary = summarize(pod.desiredStatus, instances, this.waitReasons.get(pod.id) ?? waiting, away);
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
}

/** What a placement asks of a node, as a key: two specs with one key fit the same nodes. */
function askKey(spec: PodSpec): string {
  return JSON.stringify([spec.vcpuCount, spec.memoryGb, spec.gpuCount, spec.gpuTypeIds, fixedHostPorts(spec), spec.constraints ?? [], spec.networkVolumeId]);
}

const NO_SHARED_STORAGE = new VolumeBacking();
