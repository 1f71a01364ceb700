import { createHash } from 'node:crypto';
import { BerthError, newNodeId, registryOf, type OwnerId, type PodId, type Instance, type InstanceId, type NodeId, type PodSpec, type UsageReport } from '../model/index.js';
import type { Store } from '../store/types.js';
import type { AgentChannel, Assignment, ClusterServer, InstanceReport, NodeAccess, NodeRegistration, RegistryLogin, WatchResult } from './agent-protocol.js';
import type { PodService } from './pods.js';
import type { Sealer } from './sealer.js';
import type { UsageService } from './usage.js';
import { VolumeBacking } from './volume-backing.js';

/** The label a node uses to say which data center (node group) it belongs to. */
export const DATA_CENTER_LABEL = 'berth.io/datacenter';
export const DEFAULT_DATA_CENTER = 'local';

export const volumeDiskName = (instanceId: InstanceId): string => `berth-vol-${instanceId}`;
export const networkVolumeName = (id: string): string => `berth-nv-${id}`;

/**
 * The Docker network of an owner's (a team's) pods: `berth-t-<owner>`, or a hash of the owner where
 * its name is not a Docker name.
 */
export function podNetworkName(owner: string): string {
  if (/^[a-z0-9][a-z0-9_.-]{0,39}$/.test(owner)) return `berth-t-${owner}`;
  return `berth-t-${createHash('sha256').update(owner).digest('hex').slice(0, 16)}`;
}

/** The most changes a partial watch answer reads; more since the agent's revision: a whole answer. */
const PARTIAL_CHANGES_MAX = 10_000;

/** Whether the spec's pods go on their team's network: the pod network, not the host's or a named one. */
const onPodNetwork = (spec: PodSpec): boolean => spec.network.mode === 'bridge' || (spec.network.mode === 'container' && spec.network.name === null);

/**
 * The control plane's side of the agent protocol (agents call it in process or over HTTP), and the
 * registry of node access for logs and exec.
 */
export class AgentService implements AgentChannel {
  private readonly waiters = new Map<NodeId, Set<() => void>>();
  /**
   * Bumped by each change every agent must see that the change feed does not carry (a network
   * volume deleted, a secret changed); `answered` is the generation each node's last watch answer
   * reflected. A watch behind it answers at once: an agent between two watches when the wake went
   * out would otherwise wait out its whole watch. (In memory: one server. See architecture.md.)
   */
  private generation = 0;
  private readonly answered = new Map<NodeId, number>();
  /** This server's end of each node's channel to it: every server holds one per node (agents dial every server). */
  private readonly access = new Map<NodeId, NodeAccess>();
  private listServers: () => Promise<ClusterServer[]> = () => Promise.resolve([]);
  private readonly unsubscribe: () => void;
  /** Calls of watch and report, for the metrics endpoint (heartbeats: every watch touches the node). */
  readonly counts = { watches: 0, reports: 0 };

  constructor(
    private readonly store: Store,
    private readonly pods: PodService,
    private readonly sealer: Sealer,
    private readonly usage?: UsageService,
    /** Which data centers keep network volumes on NFS: their nodes make the volume with the driver options. */
    private readonly volumeBacking: VolumeBacking = new VolumeBacking(),
    /** The longest a watch is held (a third of the node timeout): a live agent always calls well within it. @default 25000 */
    private readonly maxWatchWaitMs = 25_000,
  ) {
    this.unsubscribe = store.onChange((c) => {
      if (c.kind !== 'instance' || !c.nodeId) return;
      const set = this.waiters.get(c.nodeId);
      if (set) for (const wake of set) wake();
    });
  }

  close(): void {
    this.unsubscribe();
    for (const set of this.waiters.values()) for (const wake of set) wake();
  }

  async register(reg: NodeRegistration): Promise<{ nodeId: NodeId }> {
    const at = new Date().toISOString();
    const existing = reg.nodeId ? await this.store.getNode(reg.nodeId) : undefined;
    const node = await this.store.upsertNode({
      id: reg.nodeId ?? newNodeId(),
      name: reg.name,
      publicIp: reg.publicIp,
      labels: { [DATA_CENTER_LABEL]: DEFAULT_DATA_CENTER, ...reg.labels },
      capacity: reg.capacity,
      agentVersion: reg.agentVersion,
      registeredAt: existing?.registeredAt ?? at,
      lastSeenAt: at,
      notReadySince: null,
    });
    if (existing?.notReadySince) await this.nodeBack(node.id);
    await this.pods.placeWaiting();
    return { nodeId: node.id };
  }

  /** Answers every waiting watch now, and the next watch of each agent: for changes agents must see that are not instance changes. */
  wakeAll(): void {
    this.generation++;
    for (const set of this.waiters.values()) for (const wake of set) wake();
  }

  /**
   * Where the cluster's servers come from (the servers registry, with this server itself; wired by
   * `berth server`). Unset: none, and agents keep to the server they were given.
   */
  setServers(list: () => Promise<ClusterServer[]>): void {
    this.listServers = list;
  }

  /** The servers agents should hold a node channel to, each once (by id and by URL), at most 32. */
  async servers(): Promise<ClusterServer[]> {
    const out: ClusterServer[] = [];
    for (const s of await this.listServers()) {
      if (out.some((o) => o.id === s.id || o.url === s.url)) continue;
      out.push({ id: s.id, url: s.url });
      if (out.length >= 32) break;
    }
    return out;
  }

  setNodeAccess(nodeId: NodeId, access: NodeAccess | undefined): void {
    if (access) this.access.set(nodeId, access);
    else this.access.delete(nodeId);
  }

  /** Removes `access` when it is still the node's (a channel that closed after its replacement connected leaves that one). */
  dropNodeAccess(nodeId: NodeId, access: NodeAccess): void {
    if (this.access.get(nodeId) === access) this.access.delete(nodeId);
  }

  nodeAccess(nodeId: NodeId | null): NodeAccess {
    const a = nodeId ? this.access.get(nodeId) : undefined;
    if (!a) throw new BerthError('NODE_UNAVAILABLE', nodeId ? `node ${nodeId} is not connected` : 'the pod has not been placed on a node yet');
    return a;
  }

  async watch(nodeId: NodeId, since: number, waitMs: number, signal?: AbortSignal, changesOnly = false): Promise<WatchResult> {
    const node = await this.store.getNode(nodeId);
    if (!node) throw new BerthError('NOT_FOUND', `node ${nodeId} is not registered`);
    await this.store.touchNode(nodeId, new Date().toISOString());
    if (node.notReadySince) {
      await this.store.setNodeState(nodeId, { notReadySince: null });
      await this.nodeBack(nodeId);
    }
    this.counts.watches++;
    waitMs = Math.min(waitMs, this.maxWatchWaitMs);
    /** The wait ran out with nothing to tell: the answer is then whole (see below). */
    let quiet = false;
    if (since > 0) {
      // Listen first, then look: a change committed between the look and the wait still wakes us.
      let wake!: () => void;
      const woken = new Promise<void>((resolve) => (wake = resolve));
      const set = this.waiters.get(nodeId) ?? new Set();
      this.waiters.set(nodeId, set);
      set.add(wake);
      const timer = setTimeout(() => {
        quiet = true;
        wake();
      }, waitMs);
      signal?.addEventListener('abort', wake);
      try {
        if (this.answered.get(nodeId) === this.generation && !(await this.changedSince(nodeId, since))) await woken;
      } finally {
        clearTimeout(timer);
        set.delete(wake);
        signal?.removeEventListener('abort', wake);
      }
    }
    // A whole answer after a wake since the last one (a secret, a login changed: any assignment may
    // differ), and after a quiet wait, which also brings what moved without a change in the feed (a
    // team's SSH keys) as every answer did before answers could be partial.
    const whole = quiet || this.answered.get(nodeId) !== this.generation;
    // Noted before anything is read: a wake after this point makes the next watch answer at once.
    this.answered.set(nodeId, this.generation);
    const revision = await this.store.revision();
    const changed = changesOnly && since > 0 && !whole ? await this.instancesChangedSince(nodeId, since) : undefined;
    // A partial answer reads whole rows only for what changed: on a node with hundreds of instances,
    // a burst of reports wakes a watch per report, and each read every row before.
    const ids = changed ? await this.store.listInstanceIds({ nodeId }) : undefined;
    const answered = changed ? await this.store.listInstances({ nodeId, ids: [...changed] }) : await this.store.listInstances({ nodeId });
    const built = await Promise.all(answered.map((i) => this.assignmentOf(i)));
    const assignments = built.filter((a): a is Assignment => a !== undefined);
    const networkVolumes = (await this.store.listNetworkVolumes()).map((v) => networkVolumeName(v.id));
    if (!ids) return { revision, assignments, networkVolumes };
    // An instance whose pod is going (no assignment could be made) is left out, as a whole answer leaves it.
    const gone = new Set(answered.filter((_, n) => built[n] === undefined).map((i) => i.id));
    return { revision, assignments, networkVolumes, partial: { instanceIds: ids.filter((id) => !gone.has(id)) } };
  }

  /**
   * The instances changed after `since` (wherever the feed says they were), or undefined when a
   * partial answer cannot be made: the feed no longer reaches back to `since`, it holds more changes
   * than one read takes, or this node itself changed (its labels and capacity are in every assignment).
   */
  private async instancesChangedSince(nodeId: NodeId, since: number): Promise<Set<InstanceId> | undefined> {
    if (since < (await this.store.oldestRevision()) - 1) return undefined;
    const changes = await this.store.changesSince(since, PARTIAL_CHANGES_MAX);
    if (changes.length >= PARTIAL_CHANGES_MAX) return undefined;
    const ids = new Set<InstanceId>();
    for (const c of changes) {
      if (c.kind === 'node' && c.id === nodeId) return undefined;
      if (c.kind === 'instance') ids.add(c.id as InstanceId);
    }
    return ids;
  }

  /** The node answers again: its pods' statuses no longer say it is lost. */
  private async nodeBack(nodeId: NodeId): Promise<void> {
    const pods = new Set((await this.store.listInstances({ nodeId })).map((i) => i.podId));
    for (const podId of pods) await this.pods.refreshStatus(podId);
    await this.pods.placeWaiting();
  }

  private async changedSince(nodeId: NodeId, since: number): Promise<boolean> {
    // Older than what the feed still holds: the agent cannot be told what it missed, so it gets everything now.
    if (since < (await this.store.oldestRevision()) - 1) return true;
    const changes = await this.store.changesSince(since, 10_000);
    return changes.some((c) => c.kind === 'instance' && c.nodeId === nodeId);
  }

  async reportUsage(nodeId: NodeId, samples: UsageReport[]): Promise<void> {
    await this.usage?.record(nodeId, samples);
  }

  async report(nodeId: NodeId, reports: InstanceReport[]): Promise<void> {
    this.counts.reports++;
    const touched = new Set<PodId>();
    for (const { instanceId, observation } of reports) {
      const inst = await this.store.getInstance(instanceId);
      if (!inst || inst.nodeId !== nodeId) continue;
      if (observation.state === 'removed' && inst.goal === 'removed') {
        await this.store.deleteInstance(inst.id);
      } else {
        // The host ports to ask for again after a stop: by container port, and by endpoint name for endpoints without one.
        const wanted: Record<string, number> = { ...observation.ports };
        for (const [name, port] of Object.entries(observation.endpoints ?? {})) if (!Object.values(observation.ports).includes(port)) wanted[`ep:${name}`] = port;
        const keepPorts = Object.keys(wanted).length > 0 && JSON.stringify(wanted) !== JSON.stringify(inst.hostPorts);
        await this.store.updateInstance(inst.id, { observed: observation, ...(keepPorts ? { hostPorts: wanted } : {}) });
      }
      touched.add(inst.podId);
    }
    for (const podId of touched) await this.pods.refreshStatus(podId);
    if (reports.some((r) => r.observation.state === 'removed' || r.observation.state === 'stopped')) await this.pods.placeWaiting();
  }

  private async assignmentOf(inst: Instance): Promise<Assignment | undefined> {
    const version = await this.store.getPodVersion(inst.podId, inst.specVersion);
    const detail = await this.store.getPod(inst.podId);
    if (!version || !detail) return undefined;
    const spec = version.spec;
    const node = inst.nodeId ? await this.store.getNode(inst.nodeId) : undefined;
    const gpus = (node?.capacity.gpus ?? []).filter((g) => inst.gpuUuids.includes(g.uuid));
    return {
      instanceId: inst.id,
      podId: inst.podId,
      ordinal: inst.ordinal,
      specVersion: inst.specVersion,
      goal: inst.goal,
      resetGeneration: inst.resetGeneration,
      restartGeneration: inst.restartGeneration,
      observedRestartGeneration: inst.observed?.observedRestartGeneration ?? null,
      spec,
      gpus,
      hostPorts: inst.hostPorts,
      env: await this.envOf(inst, spec, detail.pod.owner, gpus.map((g) => g.name), node?.capacity, node?.labels),
      registryLogin: await this.loginFor(spec),
      secrets: await this.secretsFor(spec, detail.pod.owner),
      volumeDisk: spec.volumeGb > 0 && !spec.networkVolumeId ? volumeDiskName(inst.id) : null,
      networkVolume: spec.networkVolumeId ? networkVolumeName(spec.networkVolumeId) : null,
      networkVolumeOptions: await this.networkVolumeOptions(spec),
      podNetwork: onPodNetwork(spec) ? podNetworkName(detail.pod.owner) : null,
    };
  }

  /** The env contract every pod gets, under BERTH_* and RunPod's RUNPOD_* names. */
  private async envOf(
    inst: Instance,
    spec: PodSpec,
    owner: OwnerId,
    gpuNames: string[],
    capacity: { cpus: number; memoryMb: number; gpusSimulated: boolean } | undefined,
    labels: Record<string, string> | undefined,
  ): Promise<Record<string, string>> {
    const cpus = spec.vcpuCount ?? capacity?.cpus ?? 0;
    const memGb = spec.memoryGb ?? Math.floor((capacity?.memoryMb ?? 0) / 1024);
    const common: Record<string, string> = {
      POD_ID: inst.podId,
      POD_HOSTNAME: inst.podId,
      DC_ID: labels?.[DATA_CENTER_LABEL] ?? DEFAULT_DATA_CENTER,
      GPU_COUNT: String(inst.gpuUuids.length),
      CPU_COUNT: String(cpus),
      MEM_GB: String(memGb),
      VOLUME_ID: spec.networkVolumeId ?? '',
    };
    if (gpuNames[0]) common.GPU_NAME = encodeURIComponent(gpuNames[0]).replace(/%20/g, '+');
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(common)) {
      env[`BERTH_${k}`] = v;
      env[`RUNPOD_${k}`] = v;
    }
    if (capacity?.gpusSimulated && inst.gpuUuids.length) env.BERTH_GPUS_SIMULATED = '1';
    if (spec.startSsh) {
      const keys = await this.store.listSshKeys(owner);
      if (keys.length) env.PUBLIC_KEY = keys.map((k) => k.publicKey).join('\n');
    }
    return env;
  }

  private async networkVolumeOptions(spec: PodSpec): Promise<Record<string, string> | null> {
    if (!spec.networkVolumeId) return null;
    const volume = await this.store.getNetworkVolume(spec.networkVolumeId);
    return volume ? this.volumeBacking.driverOptions(volume) : null;
  }

  /** Resolves the pod's secret references; a missing secret leaves its variable or file out (the pod's status says so). */
  private async secretsFor(spec: PodSpec, owner: OwnerId): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const [name, source] of Object.entries(spec.secrets)) {
      const secret = await this.store.getSecret(owner, source);
      if (!secret) continue;
      try {
        out[name] = this.sealer.open(secret.valueSealed);
      } catch {
        // Sealed under another key: as with registry logins, this pod goes without it.
      }
    }
    return out;
  }

  private async loginFor(spec: PodSpec): Promise<RegistryLogin | null> {
    if (!spec.registryAuthId) return null;
    const auth = await this.store.getRegistryAuth(spec.registryAuthId);
    if (!auth) return null;
    const image = spec.containers[0]?.image ?? '';
    try {
      return { username: auth.username, password: this.sealer.open(auth.passwordSealed), serveraddress: registryOf(image) };
    } catch {
      // A credential sealed under another key (a replaced secret.key) fails this pod's pull, not the node's whole watch.
      return null;
    }
  }
}
