/**
 * What the node holds that nothing claims any more: containers and instance volumes of pods deleted
 * while the agent was away, and the node's copies of deleted network volumes.
 */
import type { Logger } from 'pino';
import type { InstanceId, NodeId } from '../model/index.js';
import type { Runtime } from '../runtime/types.js';
import { INSTANCE_VOLUME_KINDS, LABELS, type InstanceVolumeKind } from './labels.js';

export class GarbageCollector {
  /**
   * Network volumes a reconcile pass in flight may mount: not removed until that pass is over. A
   * volume removed between its creation and the container's would be made again by Docker,
   * without labels, and never collected.
   */
  private readonly mounting = new Map<InstanceId, string>();
  /** The network volumes the store has, as of the last watch. */
  private networkVolumes: string[] | undefined;
  /** A deleted network volume is still on Docker (in use, or a pass may mount it): try again after each pass. */
  private networkVolumesLeft = false;
  /** The removal of deleted network volumes under way: one at a time, and a volume is made only after it. */
  private dropping: Promise<void> = Promise.resolve();

  /** `claimed` says whether an assignment holds the instance now. */
  constructor(
    private readonly runtime: Runtime,
    private readonly log: Logger,
    private readonly nodeId: NodeId,
    private readonly claimed: (id: InstanceId) => boolean,
  ) {}

  /** Makes the network volume a launch of the instance mounts; kept from removal until the instance's pass is over. */
  ensureNetworkVolume(instanceId: InstanceId, name: string, driverOpts?: Record<string, string> | null): Promise<void> {
    // Noted first: a removal that starts from now on leaves it alone; one under way ends before it is made.
    this.mounting.set(instanceId, name);
    const labels = { [LABELS.managed]: '1', [LABELS.node]: this.nodeId, 'berth.kind': 'network-volume' };
    return this.dropping.then(() => this.runtime.ensureVolume(name, labels, driverOpts ?? undefined));
  }

  /** A reconcile pass of the instance is over: what it may have mounted can go. */
  passEnded(instanceId: InstanceId): void {
    const mounted = this.mounting.get(instanceId);
    this.mounting.delete(instanceId);
    // A volume the pass made that the store no longer has (deleted while the pass ran, perhaps
    // after a sweep that found nothing yet): no watch answer brings a change for it any more.
    if (mounted && this.networkVolumes && !this.networkVolumes.includes(mounted)) this.networkVolumesLeft = true;
    // This pass may have let go of a deleted network volume (or been about to mount one).
    if (this.networkVolumesLeft && this.networkVolumes) void this.dropNetworkVolumes(this.networkVolumes);
  }

  /**
   * Removes the node's copies of deleted network volumes; one still mounted stays until its pod is
   * gone. Called with every watch answer: it asks Docker only when the store's volumes changed since
   * the last look or that look left one behind (a burst of 200 pods otherwise made a volume list per
   * answer, with the watch loop waiting on each).
   */
  dropNetworkVolumes(existing: string[]): Promise<void> {
    if (!this.networkVolumesLeft && this.networkVolumes && sameNames(existing, this.networkVolumes)) return this.dropping;
    const run = this.dropping.then(() => this.dropNetworkVolumesNow(existing));
    this.dropping = run.catch(() => undefined);
    return run;
  }

  private async dropNetworkVolumesNow(existing: string[]): Promise<void> {
    this.networkVolumes = existing;
    let volumes;
    try {
      volumes = await this.runtime.listVolumes({ [LABELS.managed]: '', [LABELS.node]: this.nodeId, 'berth.kind': 'network-volume' });
    } catch (err) {
      // Not swept (a busy daemon): the next watch answer tries again, though it brings no change.
      this.networkVolumesLeft = true;
      throw err;
    }
    this.networkVolumesLeft = false;
    const keep = new Set(existing);
    for (const v of volumes) {
      if (keep.has(v.name)) continue;
      // Looked at now, not before the list: a pass may have started meanwhile.
      if ([...this.mounting.values()].includes(v.name)) {
        this.networkVolumesLeft = true;
        continue;
      }
      await this.runtime.removeVolume(v.name).then(
        () => this.log.info({ volume: v.name }, 'removed a deleted network volume'),
        (err: unknown) => {
          this.networkVolumesLeft = true;
          this.log.warn({ err, volume: v.name }, 'cannot remove a deleted network volume yet');
        },
      );
    }
  }

  /** Containers and instance volumes with our labels that no assignment claims: left from pods deleted while away. */
  async collectOrphans(): Promise<void> {
    // Only this node's containers: several agents may share one Docker daemon in tests.
    const all = await this.runtime.listContainers({ [LABELS.managed]: '', [LABELS.node]: this.nodeId });
    for (const c of all) {
      const id = c.labels[LABELS.instance] as InstanceId | undefined;
      if (id && !this.claimed(id)) {
        this.log.info({ container: c.name }, 'removing a container no assignment claims');
        await this.runtime.removeContainer(c.id);
      }
    }
    for (const v of await this.runtime.listVolumes({ [LABELS.managed]: '', [LABELS.node]: this.nodeId })) {
      const id = v.labels[LABELS.instance] as InstanceId | undefined;
      if (!id || this.claimed(id) || !INSTANCE_VOLUME_KINDS.includes(v.labels['berth.kind'] as InstanceVolumeKind)) continue;
      this.log.info({ volume: v.name }, `removing a ${v.labels['berth.kind']} volume no assignment claims`);
      await this.runtime.removeVolume(v.name).catch((err: unknown) => this.log.warn({ err, volume: v.name }, 'cannot remove an orphaned volume'));
    }
  }
}

const sameNames = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x) => b.includes(x));
