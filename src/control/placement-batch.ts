import type { Instance, PodId, PodSpec } from '../model/index.js';
import type { InstancePlacement } from '../store/instances.js';
import type { PodDetail, PodPatch, Store } from '../store/types.js';

/** Placements written per transaction by a placement pass. */
export const PLACEMENT_BATCH = 256;

/**
 * A placement pass's pending writes: instances placed and pods whose status follows, written in
 * one transaction per flush. A pod's status is computed when it is flushed, from its instances as
 * the pass last saw them (an agent's report that lands meanwhile refreshes it again afterwards).
 */
export class PlacementBatch {
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
