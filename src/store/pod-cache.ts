import type { PodId } from '../model/index.js';
import type { PodDetail } from './types.js';

/**
 * Assembled pod details of committed states, by pod id, so that listing 10,000 pods does not parse
 * 10,000 specs and instance reports on every call. Exact because every write to a pod, its spec
 * version or its instances gives the pod row a revision no other state of the pod ever has (see
 * SqlStore): an entry serves only while its revision is the row's. Entries are frozen, because every
 * caller of listPods shares them. Oldest-first eviction keeps at most `max` entries.
 */
export class PodDetailCache {
  private readonly entries = new Map<PodId, PodDetail>();

  constructor(private readonly max: number) {}

  /** The cached detail if the pod is still at `revision`. */
  get(id: PodId, revision: number): PodDetail | undefined {
    const detail = this.entries.get(id);
    return detail?.pod.revision === revision ? detail : undefined;
  }

  /** Keeps `detail` (frozen) and returns it. */
  put(detail: PodDetail): PodDetail {
    deepFreeze(detail);
    this.entries.delete(detail.pod.id);
    this.entries.set(detail.pod.id, detail);
    if (this.entries.size > this.max) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    return detail;
  }

  forget(id: PodId): void {
    this.entries.delete(id);
  }
}

function deepFreeze(value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const member of Object.values(value)) deepFreeze(member);
}
