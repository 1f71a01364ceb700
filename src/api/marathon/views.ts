/**
 * Marathon's response bodies built from Berth's records: the pod definition with its version, the
 * PodStatus view (`raml/PodStatusConversion.scala`), the Instance a kill answers with, deployments,
 * the launch queue and `/v2/info`.
 */
import type { Deployment } from '../../control/index.js';
import { backoffSeconds, type ContainerObservation, type Instance, type Node, type PodSpec, type PodVersion } from '../../model/index.js';
import type { PodDetail } from '../../store/types.js';
import { conditionOf } from './conditions.js';
import { marathonInstanceId } from './paths.js';
import { MARATHON_DEFAULTS, type MarathonPod, type Resources } from './schema.js';
import { definitionFromSpec } from './synthesize.js';

/** What the views of one pod need besides its detail: its versions by number and the nodes by id. */
export interface PodContext {
  detail: PodDetail;
  versions: Map<number, PodVersion>;
  nodes: Map<string, Node>;
  /** The pod is being deleted by a deployment. */
  deleting: boolean;
  /** Why its unplaced instances wait, as the scheduler last said. */
  waitReason?: string | null;
  now: string;
}

/**
 * The definition of a Marathon pod's spec: the one stored with it, or, where a change through another
 * API dropped that, one written from the spec under the pod's Marathon id.
 */
export const definitionOf = (spec: PodSpec): MarathonPod =>
  (spec.marathon && !spec.marathon.definition ? definitionFromSpec(spec, spec.marathon.id) : spec.marathon?.definition) as unknown as MarathonPod;

/** A spec version's time: what Marathon calls the pod's `version`. */
export const versionTime = (ctx: PodContext, version: number): string => ctx.versions.get(version)?.createdAt ?? ctx.detail.pod.updatedAt;

/** The definition as `GET /v2/pods/{id}` answers: normalized, with the version written after the id. */
export function podView(spec: PodSpec, version: string): Record<string, unknown> {
  const { id, labels, ...rest } = definitionOf(spec);
  return { id, ...(labels ? { labels } : {}), version, ...rest };
}

/** Marathon's timestamps have milliseconds; Docker's have nanoseconds. */
const iso = (t: string): string => {
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? t : d.toISOString();
};

type InstanceStatus = 'PENDING' | 'STAGING' | 'STABLE' | 'DEGRADED' | 'TERMINAL';
const HEALTH_REPORTED = 'health-reported-by-mesos';
const HEALTH_UNREPORTED = 'health-unreported-by-mesos';

/**
 * The Mesos task state a container's observed state reads as. A container the node never made
 * (the instance failed before: an image that cannot be pulled, a volume that cannot be made) failed
 * with its instance, as Mesos fails every task of a task group whose launch failed.
 */
export function taskState(c: ContainerObservation | undefined, inst: Instance): string {
  if (!c && inst.observed?.state === 'failed') return 'TASK_FAILED';
  switch (c?.state) {
    case 'running':
      return 'TASK_RUNNING';
    case 'exited':
      return c.exitCode === 0 ? 'TASK_FINISHED' : 'TASK_FAILED';
    case 'failed':
      return 'TASK_FAILED';
    case 'stopped':
    case 'removed':
      return 'TASK_KILLED';
    default:
      return 'TASK_STAGING';
  }
}

const isActive = (state: string): boolean => state === 'TASK_RUNNING' || state === 'TASK_STAGING';

const GOALS: Record<Instance['goal'], string> = { running: 'Running', stopped: 'Stopped', removed: 'Decommissioned' };

function containerStatus(ctx: PodContext, inst: Instance, spec: PodSpec, def: MarathonPod, name: string) {
  const o = inst.observed;
  const seen = o?.containers.find((c) => c.name === name);
  const cspec = spec.containers.find((c) => c.name === name);
  const cdef = def.containers.find((c) => c.name === name);
  const status = taskState(seen, inst);
  const since = iso(seen?.startedAt ?? o?.updatedAt ?? ctx.detail.pod.updatedAt);
  const checked = cspec?.healthCheck ?? null;
  const healthy = seen?.healthy ?? null;
  const conditions =
    checked && status === 'TASK_RUNNING'
      ? [{ name: 'healthy', lastChanged: since, lastUpdated: o?.updatedAt ?? since, value: String(healthy === true), reason: healthy === null ? HEALTH_UNREPORTED : HEALTH_REPORTED }]
      : [];
  // Endpoints that asked for a host port first, with what the node allocated; the checked one last, with its verdict.
  let endpoints: Record<string, unknown>[] = [];
  if (isActive(status)) {
    const eps = cspec?.endpoints ?? [];
    const allocated = (e: (typeof eps)[number]) => o?.endpoints?.[e.name] ?? (e.hostPort ? e.hostPort : undefined);
    endpoints = [
      ...eps.filter((e) => e.hostPort !== null).map((e) => ({ name: e.name, ...(allocated(e) !== undefined ? { allocatedHostPort: allocated(e) } : {}) })),
      ...eps.filter((e) => e.hostPort === null).map((e) => ({ name: e.name })),
    ];
    const target = checked?.endpoint;
    const hit = endpoints.find((e) => e.name === target);
    if (hit) endpoints = [...endpoints.filter((e) => e !== hit), { ...hit, ...(healthy !== null ? { healthy } : {}) }];
  }
  const ended = status === 'TASK_FINISHED' || status === 'TASK_FAILED' || status === 'TASK_KILLED';
  return {
    name,
    status,
    statusSince: since,
    ...(ended && o?.message ? { message: o.message } : {}),
    conditions,
    containerId: `${marathonInstanceId(def.id, inst.id)}.${name}`,
    endpoints,
    ...(isActive(status) && cdef ? { resources: cdef.resources } : {}),
    ...(ended ? { termination: { ...(seen?.exitCode != null ? { exitCode: seen.exitCode } : {}), ...(o?.message ? { message: o.message } : {}) } } : {}),
    lastUpdated: o?.updatedAt ?? since,
    lastChanged: since,
  };
}

/**
 * `PodStatusConversion.podInstanceState`: unplaced is pending, a container without a good health
 * verdict degrades. Marathon leaves `message` out but for those; Berth says what it knows for the
 * others too: why an instance waits, the pull in progress, why it ended (the image that could not
 * be pulled, the container that exited) and when it is tried again.
 */
function instanceStatus(inst: Instance, containers: { conditions: { value: string }[] }[], waitReason: string | null, startWaits: boolean): { status: InstanceStatus; message?: string } {
  const o = inst.observed;
  const said = o?.message ? { message: o.message } : {};
  // A start waiting for the team's quota: pending, as an instance waiting to be placed.
  if (startWaits) return { status: 'PENDING', ...(waitReason ? { message: waitReason } : {}) };
  if (inst.goal !== 'running') return { status: 'TERMINAL' };
  const state = o?.state;
  if (!inst.nodeId) return { status: 'PENDING', ...(waitReason ? { message: waitReason } : {}) };
  if (state === undefined || state === 'pending') return { status: 'PENDING', ...said };
  if (state === 'pulling' || state === 'creating') return { status: 'STAGING', ...said };
  if (state !== 'running') return { status: 'TERMINAL', ...said };
  if (containers.some((c) => c.conditions.some((k) => k.value === 'false'))) return { status: 'DEGRADED', message: 'at least one container is not healthy' };
  return { status: 'STABLE' };
}

/**
 * Seconds until the node launches again an instance that ended (its launch failed, or its
 * containers ended), by the pod's backoff as the agent applies it (`initial × factor^n`, n the
 * restarts and failed launches so far, at most the maximum, from the report of the end); undefined
 * for an instance that has not ended or will not be launched again.
 */
export function relaunchDelay(inst: Instance, spec: PodSpec, nowMs: number): number | undefined {
  const o = inst.observed;
  if (inst.goal !== 'running' || !inst.nodeId || !o || (o.state !== 'failed' && o.state !== 'exited')) return undefined;
  if (spec.restartPolicy === 'never' || (spec.restartPolicy === 'on-failure' && o.state === 'exited')) return undefined;
  const b = spec.backoff;
  // The agent's own backoff (agent/restarts.ts), from what it reported.
  const delayS = backoffSeconds(b, o.restartCount + (o.launchFailures ?? 0));
  return Math.max(0, Math.ceil((Date.parse(o.updatedAt) + delayS * 1000 - nowMs) / 1000));
}

/** A start waiting for the team's quota: the pod is meant to run, the instance still stopped on its node. */
const startWaits = (ctx: PodContext, i: Instance): boolean => i.goal === 'stopped' && ctx.detail.pod.desiredStatus === 'RUNNING';

/** One instance as `PodInstanceStatus`. */
export function instanceStatusView(ctx: PodContext, inst: Instance) {
  const spec = ctx.versions.get(inst.specVersion)?.spec ?? ctx.detail.spec;
  const def = definitionOf(spec) ?? definitionOf(ctx.detail.spec);
  const placed = inst.nodeId !== null;
  const node = inst.nodeId ? ctx.nodes.get(inst.nodeId) : undefined;
  // Its node is not answering: what it last said may be stale (Mesos' TASK_UNREACHABLE).
  const lost = node?.notReadySince ? node : undefined;
  const containers = placed ? def.containers.map((c) => containerStatus(ctx, inst, spec, def, c.name)).map((c) => (lost ? { ...c, status: 'TASK_UNREACHABLE', statusSince: iso(lost.notReadySince!) } : c)) : [];
  const { status, message } = lost && inst.goal === 'running' ? { status: 'DEGRADED' as const, message: `node ${lost.name} is not answering since ${lost.notReadySince}` } : instanceStatus(inst, containers, ctx.waitReason ?? null, startWaits(ctx, inst));
  const o = inst.observed;
  const since = iso((status === 'STABLE' || status === 'DEGRADED' ? o?.startedAt : undefined) ?? o?.updatedAt ?? ctx.detail.pod.createdAt);
  // As Marathon: the default executor's share plus what the active containers asked for.
  const base = MARATHON_DEFAULTS.executorResources;
  const resources = containers
    .flatMap((c) => ('resources' in c && c.resources ? [c.resources as Resources] : []))
    .reduce((t, r) => ({ cpus: t.cpus + r.cpus, mem: t.mem + r.mem, disk: t.disk + r.disk, gpus: t.gpus + r.gpus }), { ...base, gpus: 0 });
  return {
    id: marathonInstanceId(def.id, inst.id),
    status,
    statusSince: since,
    ...(message ? { message } : {}),
    conditions: [],
    ...(node ? { agentHostname: node.publicIp || node.name, agentId: node.id } : {}),
    resources: { ...resources, cpus: Math.round(resources.cpus * 1000) / 1000 },
    networks: [],
    containers,
    specReference: `/v2/pods${def.id}::versions/${versionTime(ctx, inst.specVersion)}`,
    localVolumes: [],
    lastUpdated: o?.updatedAt ?? since,
    lastChanged: since,
    role: def.role,
  };
}

/**
 * `GET /v2/pods/{id}::status`. Instances that are not meant to run (being removed) are left out.
 * A pod that is not STABLE says why in `message`: the first of its instances that is not STABLE
 * and says why, else the pod's own status message.
 */
export function podStatusView(ctx: PodContext) {
  const spec = ctx.detail.spec;
  const instances = ctx.detail.instances.filter((i) => i.goal === 'running').map((i) => instanceStatusView(ctx, i));
  const stable = instances.filter((i) => i.status === 'STABLE').length;
  const status = ctx.deleting ? 'TERMINAL' : stable >= spec.instances ? 'STABLE' : 'DEGRADED';
  const since = instances.map((i) => i.statusSince).sort().pop() ?? ctx.now;
  const message = status === 'DEGRADED' ? (instances.find((i) => i.status !== 'STABLE' && i.message)?.message ?? ctx.detail.pod.statusMessage) : null;
  return {
    id: definitionOf(spec).id,
    spec: podView(spec, versionTime(ctx, ctx.detail.pod.specVersion)),
    status,
    statusSince: since,
    ...(message ? { message } : {}),
    instances,
    terminationHistory: [],
    lastUpdated: ctx.now,
    lastChanged: since,
  };
}

/** The `Instance` a kill answers with (`types/instance.raml`). */
export function instanceView(ctx: PodContext, inst: Instance) {
  const def = definitionOf(ctx.versions.get(inst.specVersion)?.spec ?? ctx.detail.spec);
  const node = inst.nodeId ? ctx.nodes.get(inst.nodeId) : undefined;
  const o = inst.observed;
  const since = node?.notReadySince ?? o?.updatedAt ?? ctx.detail.pod.updatedAt;
  // Its node not answering: Unreachable, or UnreachableInactive once replaced elsewhere (Marathon's conditions).
  const condition = node?.notReadySince ? (inst.goal === 'running' ? 'Unreachable' : 'UnreachableInactive') : conditionOf(inst);
  const checked = (ctx.versions.get(inst.specVersion)?.spec ?? ctx.detail.spec).containers.some((c) => c.healthCheck);
  return {
    instanceId: marathonInstanceId(def.id, inst.id),
    agentInfo: { host: node ? node.publicIp || node.name : '', ...(node ? { agentId: node.id } : {}), attributes: [] },
    runSpecVersion: versionTime(ctx, inst.specVersion),
    state: {
      condition,
      since,
      ...(condition === 'Running' && o?.startedAt ? { activeSince: iso(o.startedAt) } : {}),
      ...(checked && condition === 'Running' ? { healthy: (o?.containers ?? []).every((c) => c.healthy !== false) && (o?.containers ?? []).some((c) => c.healthy === true) } : {}),
      goal: GOALS[inst.goal],
    },
    unreachableStrategy: def.scheduling.unreachableStrategy,
  };
}

/** `DeploymentStepInfo`: one step with the pod's one action. */
export function deploymentView(d: Deployment) {
  const action = { action: d.action, pod: d.path };
  return {
    id: d.id,
    version: d.version,
    affectedApps: [],
    affectedPods: [d.path],
    steps: [{ actions: [action] }],
    currentActions: [{ ...action, readinessCheckResults: [] }],
    currentStep: 1,
    totalSteps: 1,
  };
}

/** Marathon's offer-rejection reasons for what the scheduler said about each node. */
export function rejectReasons(reason: string): string[] {
  const out = new Set<string>();
  for (const part of reason.split('; ')) {
    if (/vCPU/.test(part)) out.add('InsufficientCpus');
    else if (/memory/.test(part)) out.add('InsufficientMemory');
    else if (/GPU/.test(part)) out.add('InsufficientGpus');
    else if (/disk/i.test(part)) out.add('InsufficientDisk');
    else if (/port/i.test(part)) out.add('InsufficientPorts');
    else if (/heard from|registered/.test(part)) out.add('AgentMaintenance');
    else out.add('UnfulfilledConstraint');
  }
  return [...out];
}

/**
 * The instances of a pod that wait to be launched, as Marathon's launch queue holds them: those
 * no node has taken yet (or, for a start waiting for its team's quota, not started yet), and those
 * that ended and wait out their backoff before the node launches them again, each with the seconds
 * left (0 for one waiting to be placed).
 */
export function waitingInstances(ctx: PodContext): { instance: Instance; delay: number }[] {
  const now = Date.parse(ctx.now);
  return ctx.detail.instances.flatMap((i) => {
    if (startWaits(ctx, i)) return [{ instance: i, delay: 0 }];
    if (i.goal !== 'running') return [];
    if (i.nodeId === null) return [{ instance: i, delay: 0 }];
    const delay = relaunchDelay(i, ctx.versions.get(i.specVersion)?.spec ?? ctx.detail.spec, now);
    return delay === undefined ? [] : [{ instance: i, delay }];
  });
}

/**
 * One `/v2/queue` entry: the pod, how many instances wait to be launched, the backoff left before
 * the next launch (`delay`, overdue once it has passed), and why, in `message` (Berth's own): the
 * last failure of an instance that ended, else why unplaced ones wait.
 */
export function queueEntry(ctx: PodContext, waiting: { instance: Instance; delay: number }[], reason: string | null) {
  const nodes = ctx.nodes.size;
  const unlaunched = (w: { instance: Instance }): boolean => w.instance.nodeId === null || startWaits(ctx, w.instance);
  const reasons = reason && waiting.some(unlaunched) ? rejectReasons(reason.replace(/^waiting for resources: /, '')) : [];
  const ended = waiting.filter((w) => !unlaunched(w));
  // The next launch attempt: the soonest of the backed-off instances; none backed off, it is due.
  const timeLeftSeconds = ended.length === waiting.length && ended.length > 0 ? Math.min(...ended.map((w) => w.delay)) : 0;
  const failure = ended.map((w) => w.instance.observed?.message).find((m) => m);
  const message = failure ?? reason;
  return {
    pod: podView(ctx.detail.spec, versionTime(ctx, ctx.detail.pod.specVersion)),
    count: waiting.length,
    delay: { timeLeftSeconds, overdue: timeLeftSeconds === 0 },
    since: ctx.detail.pod.updatedAt,
    processedOffersSummary: {
      processedOffersCount: nodes,
      unusedOffersCount: nodes,
      rejectSummaryLastOffers: reasons.map((r) => ({ reason: r, declined: nodes, processed: nodes })),
    },
    role: definitionOf(ctx.detail.spec).role,
    ...(message ? { message } : {}),
  };
}

/** `GET /v2/info`: enough of Marathon's to tell clients what they talk to. */
export function infoView(opts: { version: string; berthVersion: string; leader: string; httpPort: number; https: boolean }) {
  return {
    name: 'marathon',
    version: opts.version,
    buildref: `berth-${opts.berthVersion}`,
    elected: true,
    leader: opts.leader,
    frameworkId: 'berth',
    marathon_config: {
      checkpoint: true,
      features: ['secrets'],
      framework_name: 'marathon',
      ha: false,
      hostname: opts.leader.split(':')[0],
      mesos_role: MARATHON_DEFAULTS.role,
      mesos_user: 'root',
      webui_url: null,
      executor: '//cmd',
      backends: 'berth',
    },
    zookeeper_config: {},
    http_config: opts.https ? { http_port: null, https_port: opts.httpPort } : { http_port: opts.httpPort, https_port: null },
  };
}
