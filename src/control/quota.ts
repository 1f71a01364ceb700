/**
 * Team quotas: what a team's live pods and volumes add up to, against what the operator set. Checked
 * when a pod is created, changed or started; a request that would cross a quota is refused naming it,
 * or, for a create or a start in a team whose quota says `overQuota: queue`, waits until it fits: a
 * create unplaced, a start with its instances still stopped on their nodes (`waitsToStart`).
 */
import { BerthError, type PodId, type PodSpec, type Team, type TeamQuota } from '../model/index.js';
import type { PodDetail, Store } from '../store/types.js';

interface Usage {
  gpus: number;
  gpusByType: Record<string, number>;
  vcpus: number;
  memoryGb: number;
  pods: number;
  volumeGb: number;
}

/** Live: not terminated. Meant to run: what holds GPUs, CPUs and memory (a stopped pod gives them back). */
function add(u: Usage, spec: PodSpec, running: boolean): void {
  u.pods += 1;
  u.volumeGb += spec.volumeGb * spec.instances;
  if (!running) return;
  u.gpus += spec.gpuCount * spec.instances;
  for (const t of new Set(spec.gpuTypeIds)) u.gpusByType[t] = (u.gpusByType[t] ?? 0) + spec.gpuCount * spec.instances;
  u.vcpus += (spec.vcpuCount ?? 0) * spec.instances;
  u.memoryGb += (spec.memoryGb ?? 0) * spec.instances;
}

const isLive = (d: PodDetail): boolean => d.pod.desiredStatus !== 'TERMINATED';

/**
 * A start that waits for its team's quota: the pod is meant to run, its instances are still stopped
 * (GPUs given back, volume disk kept on the node) until the placement pass starts them. A start
 * otherwise moves every instance to `running` at once, so a running pod has no stopped instance but so.
 */
export const waitsToStart = (d: Pick<PodDetail, 'pod' | 'instances'>): boolean => d.pod.desiredStatus === 'RUNNING' && d.instances.some((i) => i.goal === 'stopped');

/** Holds (or is to hold) GPUs, CPUs and memory: meant to run, and not a start still waiting. */
export const holdsResources = (d: Pick<PodDetail, 'pod' | 'instances'>): boolean => d.pod.desiredStatus === 'RUNNING' && !waitsToStart(d);
const isRunning = holdsResources;

/** The quotas the team would cross if `podId` (new when absent) had `spec`, running or not; each named. */
export function quotaProblems(quota: TeamQuota, team: string, pods: PodDetail[], volumesGb: number, spec: PodSpec, podId: PodId | undefined, running: boolean): string[] {
  const before: Usage = { gpus: 0, gpusByType: {}, vcpus: 0, memoryGb: 0, pods: 0, volumeGb: volumesGb };
  const after: Usage = { ...before, gpusByType: {} };
  for (const d of pods.filter(isLive)) {
    add(before, d.spec, isRunning(d));
    if (d.pod.id !== podId) add(after, d.spec, isRunning(d));
  }
  add(after, spec, running);
  const out: string[] = [];
  // Only a step up is refused: a team already over a lowered quota may still shrink or stop.
  const over = (name: string, limit: number | undefined, was: number, now: number, unit = ''): void => {
    if (limit !== undefined && now > limit && now > was) out.push(`quota ${name} of team ${team} would be crossed: ${now}${unit} asked for in all, ${limit}${unit} allowed`);
  };
  over('pods', quota.pods, before.pods, after.pods);
  over('gpus', quota.gpus, before.gpus, after.gpus);
  for (const [type, limit] of Object.entries(quota.gpusByType ?? {})) over(`gpusByType.${type}`, limit, before.gpusByType[type] ?? 0, after.gpusByType[type] ?? 0);
  over('vcpus', quota.vcpus, before.vcpus, after.vcpus);
  over('memoryGb', quota.memoryGb, before.memoryGb, after.memoryGb, ' GB');
  over('volumeGb', quota.volumeGb, before.volumeGb, after.volumeGb, ' GB');
  return out;
}

/** What no wait can cure: with a vCPU, memory or GPU-type quota, a pod meant to run must say what it takes. */
export function reservationProblems(quota: TeamQuota, team: string, spec: PodSpec, running: boolean): string[] {
  const out: string[] = [];
  if (running && quota.vcpus !== undefined && spec.vcpuCount === null) out.push(`quota vcpus of team ${team}: the pod must reserve its vCPUs (vcpuCount)`);
  if (running && quota.memoryGb !== undefined && spec.memoryGb === null) out.push(`quota memoryGb of team ${team}: the pod must reserve its memory (memoryGb)`);
  if (quota.gpusByType && running && spec.gpuCount > 0 && spec.gpuTypeIds.length === 0) out.push(`quota gpusByType of team ${team}: the pod must name its GPU types (gpuTypeIds)`);
  return out;
}

/** The team, when it has a quota with a limit in it. */
export async function limitedTeam(store: Store, team: string): Promise<Team | undefined> {
  const t = await store.getTeam(team);
  return t && Object.keys(t.quota).some((k) => k !== 'overQuota') ? t : undefined;
}

/**
 * The quotas crossed. `admittedOnly`: count only pods with a placed instance (and stopped ones,
 * pinned to their node), as the queue does: a pod waiting unplaced holds nothing yet.
 */
async function crossed(store: Store, t: Team, spec: PodSpec, podId: PodId | undefined, running: boolean, admittedOnly: boolean): Promise<string[]> {
  const owner = t.name as PodDetail['pod']['owner'];
  let pods = await store.listPods({ owner });
  if (admittedOnly) pods = pods.filter((d) => d.instances.some((i) => i.nodeId !== null));
  const volumesGb = t.quota.volumeGb === undefined ? 0 : (await store.listNetworkVolumes(owner)).reduce((n, v) => n + v.sizeGb, 0);
  return quotaProblems(t.quota, t.name, pods, volumesGb, spec, podId, running);
}

const exceeded = (t: Team, problems: string[]): BerthError => new BerthError('QUOTA_EXCEEDED', problems.join('; '), { extra: { team: t.name, quota: t.quota } });

/** Throws QUOTA_EXCEEDED when the team has a quota the change would cross. */
export async function checkQuota(store: Store, team: string, spec: PodSpec, podId: PodId | undefined, running: boolean): Promise<void> {
  const t = await limitedTeam(store, team);
  if (!t) return;
  const problems = [...(await crossed(store, t, spec, podId, running, false)), ...reservationProblems(t.quota, team, spec, running)];
  if (problems.length) throw exceeded(t, problems);
}

/**
 * A create: null when it may be placed now; the reason it waits when it crosses a quota of a team
 * that queues (`overQuota: queue`, and `queue` allowed: RunPod's API never queues). Throws otherwise.
 */
export function admitCreate(store: Store, team: string, spec: PodSpec, queue: boolean): Promise<string | null> {
  return admit(store, team, spec, undefined, queue);
}

/**
 * A start of the stopped pod `podId` (every API's): null when it may start now; the reason it waits
 * when it crosses a quota of a team that queues. Throws otherwise (a team that refuses, or what no
 * wait can cure). `queue: false`: refuse either way.
 */
export function admitStart(store: Store, team: string, spec: PodSpec, podId: PodId, queue: boolean): Promise<string | null> {
  return admit(store, team, spec, podId, queue);
}

async function admit(store: Store, team: string, spec: PodSpec, podId: PodId | undefined, queue: boolean): Promise<string | null> {
  const t = await limitedTeam(store, team);
  if (!t) return null;
  if (!queue || t.quota.overQuota !== 'queue') {
    await checkQuota(store, team, spec, podId, true);
    return null;
  }
  const unfit = reservationProblems(t.quota, team, spec, true);
  if (unfit.length) throw exceeded(t, unfit);
  const problems = await crossed(store, t, spec, podId, true, true);
  return problems.length ? quotaWaitReason(problems) : null;
}

/**
 * Before the first instance of a waiting pod is placed: the reason it waits for its team's quota,
 * or null. Usage counts admitted pods only, so the queue lets one in as another stops or goes.
 */
export async function quotaHold(store: Store, detail: PodDetail, spec: PodSpec): Promise<string | null> {
  if (detail.instances.some((i) => i.nodeId !== null)) return null;
  const t = await limitedTeam(store, detail.pod.owner);
  if (!t) return null;
  const problems = await crossed(store, t, spec, detail.pod.id, true, true);
  return problems.length ? quotaWaitReason(problems) : null;
}

/**
 * Before a start that waits (`waitsToStart`) goes ahead: the reason it still waits for its team's
 * quota, or null. The pod itself counts as stopped until then; the others as the queue counts them.
 */
export async function startHold(store: Store, detail: PodDetail): Promise<string | null> {
  const t = await limitedTeam(store, detail.pod.owner);
  if (!t) return null;
  const problems = await crossed(store, t, detail.spec, detail.pod.id, true, true);
  return problems.length ? quotaWaitReason(problems) : null;
}

export const quotaWaitReason = (problems: string[]): string => `waiting for quota: ${problems.join('; ')}`;
