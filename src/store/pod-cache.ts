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

  /** Whole list answers by filter, each for the store revision it was read at. */
  private readonly lists = new Map<string, { revision: number; details: readonly PodDetail[] }>();

  /**
   * The list that `filter` gave at store revision `revision`, if one was kept. Exact because any
   * write that could change a list (a pod row, its current version, its instances) records a change
   * and so moves the store revision: a list kept at the revision that is still current is the list.
   */
  list(filter: string, revision: number): PodDetail[] | undefined {
    const hit = this.lists.get(filter);
    // A copy: callers may treat the array as theirs; the details in it are frozen and shared.
    return hit?.revision === revision ? hit.details.slice() : undefined;
  }

  /**
   * Keeps `details` as what `filter` gives at `revision`. The caller read `revision` before it read
   * the pods, so the pods are of that revision or newer; a newer one moved the store revision past
   * `revision`, and a list kept for a revision that is no longer current is never served.
   */
  putList(filter: string, revision: number, details: readonly PodDetail[]): void {
    this.lists.delete(filter);
    this.lists.set(filter, { revision, details: details.slice() });
    if (this.lists.size > MAX_LISTS) {
      const oldest = this.lists.keys().next();
      if (!oldest.done) this.lists.delete(oldest.value);
    }
  }
}

/** Distinct filters kept (per owner, status, page...); a list of 10,000 pods is an array of references. */
const MAX_LISTS = 32;

function deepFreeze(value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const member of Object.values(value)) deepFreeze(member);
}
