/**
 * Launching an instance on this node: its images pulled, its volumes and host ports made ready, its
 * containers created from their plans (with their secret files) and started.
 */
import { Readable } from 'node:stream';
import type { Assignment } from '../control/agent-protocol.js';
import { BerthError, type ContainerSpec, type NodeId, type PullProgress } from '../model/index.js';
import { singleFileTar, type TarOwner } from '../runtime/tar.js';
import type { ContainerPlan, CreateResult, Runtime } from '../runtime/types.js';
import { containerPlan, holderPlan, infraPlan, podEnv, usesInfra, type HolderPlan } from './container-plan.js';
import type { GarbageCollector } from './garbage-collector.js';
import type { LocalInfraImage } from './infra-image.js';
import type { NfsSubdirectories } from './nfs-subdirectory.js';
import { ephemeralVolumeName, generationLabels, instanceLabels, persistentVolumeName } from './labels.js';
import { interactiveRuntime } from './node-access.js';
import type { PodNetworks } from './pod-network.js';
import { Slots } from './launch-slots.js';
import { allocatePorts } from './ports.js';
import { settleAll, throwFirst } from './settle.js';

export interface LauncherOptions {
  runtime: Runtime;
  nodeId: NodeId;
  /** The node's name, as pods see it (HOST) and errors name it. */
  nodeName: string;
  publicIp: string;
  bindAddress: string;
  /** The operator's infra image; absent: the node's own. */
  infraImage: string | undefined;
  localInfraImage: LocalInfraImage;
  gpusSimulated: boolean;
  /** Guards the network volumes a launch makes against their removal (see GarbageCollector). */
  gc: GarbageCollector;
  /** Makes an NFS-backed network volume's directory on its export. */
  nfs: NfsSubdirectories;
  /** Aborts pulls when the agent closes. */
  signal: AbortSignal;
  /** Makes the team's network a launch joins, and keeps it from removal meanwhile. */
  networks: PodNetworks;
  /** Launches creating volumes and containers at once; the rest wait their turn. @default LAUNCH_CONCURRENCY */
  launchConcurrency?: number;
}

/**
 * Docker's daemon serializes much of a container's create and start (its store, the network
 * controller): 200 launches at once made every one wait on all the others, and the first pods ran
 * only after the last was created. A few at a time keep the daemon busy and the pods coming up in
 * order, as a `docker run` script with a parallelism of 8 does.
 */
export const LAUNCH_CONCURRENCY = 8;

/** How a launch shows its progress: the runner reports it. */
export interface LaunchProgress {
  /** The pull under way; null once it is done. */
  pull(p: PullProgress | null): void;
  /** Reports the instance as pulling with this message. */
  pulling(message: string): Promise<void>;
  /** The images are there; the containers are being created. */
  creating(): void;
  /** Asked in the launch's slot before anything is made: null to go on, or why it stands down (LaunchStoodDown). */
  ready?(): Promise<string | null>;
}

/** A launch that made nothing, because `ready` gave a reason: not a failure. */
export class LaunchStoodDown extends Error {}

export interface Launched {
  /** The containers' ids, the infra container's first. */
  created: string[];
  /** Whether every container's disk cap holds (see CreateResult). */
  diskEnforced: boolean;
}

export class Launcher {
  private readonly slots: Slots;

  constructor(private readonly opts: LauncherOptions) {
    this.slots = new Slots(opts.launchConcurrency ?? LAUNCH_CONCURRENCY);
  }

  /** Pulls, creates volumes, allocates ports, creates and starts every container of the instance. */
  async launch(a: Assignment, progress: LaunchProgress): Promise<Launched> {
    const { nodeId } = this.opts;
    checkSecrets(a);
    const infraImage = await this.pullImages(a, progress);
    // Not waited for: reports go out in order, and the containers need not wait for the store.
    progress.creating();
    // Pulls above are not limited: a slow pull must not keep other pods' containers from starting.
    return this.slots.run(async () => {
      const why = (await progress.ready?.()) ?? null;
      if (why !== null) throw new LaunchStoodDown(why);
      await this.prepareVolumes(a);
      const net = await allocatePorts(a, this.opts.bindAddress, this.opts.nodeName);
      const env = podEnv(a, net, this.opts.publicIp);
      const generation = generationLabels(a, nodeId);
      const holder = holderPlan(a, net);
      const joined = a.podNetwork ? await this.opts.networks.join(a.podNetwork) : undefined;
      try {
        return await this.createAndStart(a, holder, infraImage, env, generation);
      } finally {
        joined?.();
      }
    });
  }

  private async createAndStart(a: Assignment, holder: HolderPlan, infraImage: string | null, env: Record<string, string>, generation: Record<string, string>): Promise<Launched> {
    const { runtime } = this.opts;
    // Async: a plan that cannot be made (a mount of nothing) rejects like a create that fails.
    const create = async (c: ContainerSpec, network: Partial<ContainerPlan>): Promise<CreateResult> =>
      this.createContainer(a, containerPlan(a, c, { podEnv: env, generation, network, nodeName: this.opts.nodeName, gpusSimulated: this.opts.gpusSimulated }), c);

    if (infraImage) {
      const infra = await runtime.createContainer(infraPlan(a, infraImage, holder, generation, this.opts.gpusSimulated));
      // The containers are created while the infra container starts, then all started at once.
      const starting = runtime.startContainer(infra.id);
      const creating = settleAll(a.spec.containers.map((c) => create(c, { networkMode: `container:${infra.id}` })));
      const [started, made] = await Promise.allSettled([starting, creating]);
      if (made.status === 'rejected') throw made.reason;
      if (started.status === 'rejected') throw started.reason;
      const apps = made.value;
      await settleAll(apps.map((r) => runtime.startContainer(r.id)));
      return { created: [infra.id, ...apps.map((r) => r.id)], diskEnforced: apps.every((r) => r.diskEnforced) };
    }
    const res = await create(a.spec.containers[0]!, holder);
    await runtime.startContainer(res.id);
    return { created: [res.id], diskEnforced: res.diskEnforced };
  }

  /**
   * Pulls every image the instance needs that the node lacks, reporting progress; returns the infra
   * container's image when the instance has one: the operator's, pulled like the others, or the
   * node's own, built here.
   */
  private async pullImages(a: Assignment, progress: LaunchProgress): Promise<string | null> {
    const { runtime } = this.opts;
    const images = [...new Set(a.spec.containers.map((c) => c.image))].map((image) => ({ image, login: a.registryLogin }));
    let infra: string | null = null;
    if (usesInfra(a.spec)) {
      infra = this.opts.infraImage ?? null;
      // The operator's infra image is public: the pod's registry login is for the pod's own images.
      if (infra && !images.some((i) => i.image === infra)) images.unshift({ image: infra, login: null });
      infra ??= await this.opts.localInfraImage.ensure();
    }
    const present = await Promise.all(images.map((i) => runtime.imageExists(i.image)));
    for (const [n, { image, login }] of images.entries()) {
      if (present[n]) continue;
      progress.pull({ image, current: 0, total: 0 });
      await progress.pulling(`pulling ${image}`);
      let lastSent = 0;
      await runtime.pullImage(
        image,
        login,
        (p) => {
          const pull = { image, current: p.current, total: p.total };
          progress.pull(pull);
          if (Date.now() - lastSent > 500) {
            lastSent = Date.now();
            void progress.pulling(pullMessage(pull));
          }
        },
        this.opts.signal,
      );
      progress.pull(null);
    }
    return infra;
  }

  /** Creates the instance's volumes: the volume disk or network volume, and the pod's ephemeral and persistent volumes. */
  private async prepareVolumes(a: Assignment): Promise<void> {
    const { runtime } = this.opts;
    const labels = instanceLabels(a, this.opts.nodeId);
    const work: Promise<void>[] = [];
    if (a.volumeDisk) work.push(runtime.ensureVolume(a.volumeDisk, { ...labels, 'berth.kind': 'volume-disk' }));
    if (a.networkVolume) {
      const volume = a.networkVolume;
      // On an NFS export, the volume's directory must be there before Docker mounts it.
      work.push(this.opts.nfs.ensure(a.networkVolumeOptions).then(() => this.opts.gc.ensureNetworkVolume(a.instanceId, volume, a.networkVolumeOptions)));
    }
    for (const v of a.spec.volumes) {
      if (v.kind === 'ephemeral') {
        work.push(runtime.ensureVolume(ephemeralVolumeName(a.instanceId, v.name), { ...labels, 'berth.kind': 'ephemeral' }));
      } else if (v.kind === 'persistent') {
        work.push(runtime.ensureVolume(persistentVolumeName(a.instanceId, v.name), { ...labels, 'berth.kind': 'persistent', 'berth.size-mb': String(v.sizeMb) }));
      }
    }
    throwFirst(await Promise.allSettled(work));
  }

  /** Creates one container of the pod and writes its secret files into it; it is not started. */
  private async createContainer(a: Assignment, plan: ContainerPlan, c: ContainerSpec): Promise<CreateResult> {
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
}

/** Every secret the pod's containers use must have come with the assignment. */
function checkSecrets(a: Assignment): void {
  const refs = [
    ...a.spec.containers.flatMap((c) => Object.values(c.secretEnv)),
    ...a.spec.volumes.flatMap((v) => (v.kind === 'secret' && a.spec.containers.some((c) => c.volumeMounts.some((m) => m.name === v.name)) ? [v.secret] : [])),
  ];
  const missing = [...new Set(refs.filter((r) => a.secrets[r] === undefined))];
  if (missing.length) throw new BerthError('VALIDATION', `the value of secret ${missing.join(', ')} did not reach the node`);
}

function pullMessage(p: PullProgress): string {
  if (!p.total) return `pulling ${p.image}`;
  const mb = (n: number): string => (n / 1e6).toFixed(0);
  return `pulling ${p.image}: ${Math.floor((100 * p.current) / p.total)}% (${mb(p.current)}/${mb(p.total)} MB)`;
}

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
