/**
 * Marathon's event bus (`GET /v2/events`, `docs/docs/event-bus.md`): the pod events the routes
 * publish and the deployment and instance events of the deployment service, as Marathon writes them.
 */
import { canSee, type Caller, type DeploymentEvent, type DeploymentService } from '../../control/index.js';
import type { Instance, Node, OwnerId, PodId, PodSpec } from '../../model/index.js';
import type { Store } from '../../store/types.js';
import type { SseOptions, SseStream } from '../sse.js';
import { CONDITIONS } from './conditions.js';
import { marathonInstanceId } from './paths.js';
import { deploymentView, taskState } from './views.js';

export type BusEvent = Record<string, unknown> & { eventType: string; timestamp: string };
/** An event and whose pod it is about; a caller hears of its own pods only (admins of all). */
type Listener = (e: BusEvent, owner: OwnerId) => void;

/** How /v2/events streams: Marathon's bare content type, and a bare `:` comment every 25 s to keep proxies from closing a quiet stream. */
export const EVENT_STREAM: SseOptions = { contentType: 'text/event-stream', keepAliveMs: 25_000, keepAlive: '' };

export class MarathonEventBus {
  private readonly listeners = new Set<Listener>();
  private readonly streams = new Set<SseStream>();
  private readonly owners = new Map<PodId, OwnerId>();
  /** Subscribed to the deployment service only while a stream is open: its instance events read the store on every instance change. */
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly deployments: DeploymentService,
    private readonly store: Store,
  ) {}

  private listen(): void {
    this.unsubscribe ??= this.deployments.onEvent((e) => {
      void this.fromService(e).then((r) => r?.events.forEach((event) => this.publish(event, r.owner)), () => undefined);
    });
  }

  private quiet(): void {
    if (this.listeners.size > 0) return;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  publish(event: Omit<BusEvent, 'timestamp'> & { timestamp?: string }, owner: OwnerId): void {
    const e = { ...event, timestamp: event.timestamp ?? new Date().toISOString() } as BusEvent;
    for (const l of this.listeners) l(e, owner);
  }

  /**
   * Streams events to one client: `event_stream_attached` first (published to everyone, as Marathon
   * does), then every event whose type passes the filter, until the client goes away.
   */
  attach(stream: SseStream, caller: Caller, remoteAddress: string, types: string[]): void {
    const wanted = (t: string) => types.length === 0 || types.includes(t);
    const listener: Listener = (e, owner) => {
      if (wanted(e.eventType) && canSee(caller, owner)) stream.send({ event: e.eventType, data: e });
    };
    this.listeners.add(listener);
    this.listen();
    this.streams.add(stream);
    stream.closed.addEventListener('abort', () => {
      this.listeners.delete(listener);
      this.quiet();
      this.streams.delete(stream);
      this.publish({ eventType: 'event_stream_detached', remoteAddress }, caller.owner);
    });
    this.publish({ eventType: 'event_stream_attached', remoteAddress }, caller.owner);
  }

  /** Ends every stream, so a closing server does not wait on them. */
  close(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    for (const stream of this.streams) stream.end();
    this.listeners.clear();
  }

  /** A deployment service event's Marathon events, with its pod's owner; undefined once the pod is gone. */
  private async fromService(e: DeploymentEvent): Promise<{ events: Omit<BusEvent, 'timestamp'>[]; owner: OwnerId } | undefined> {
    const podId = ('deployment' in e ? e.deployment.podId : e.instance.podId) as PodId;
    // A deleted pod's row may be gone by the time its deployment ends: its owner is remembered.
    const owner = (await this.store.getPod(podId))?.pod.owner ?? this.owners.get(podId);
    if (owner === undefined) return undefined;
    this.owners.set(podId, owner);
    return { events: await marathonEvents(e, this.store), owner };
  }
}

/** Each step of a deployment (Berth's have one) ends with it: `deployment_step_success` or `_failure` first. */
const STEP_END = { deployment_success: 'deployment_step_success', deployment_failed: 'deployment_step_failure' } as const;

/**
 * A deployment service event in Marathon's words (`core/event/Events.scala`): the events Marathon
 * sends for it, in its order.
 */
export async function marathonEvents(e: DeploymentEvent, store: Pick<Store, 'getNode' | 'getPodVersion'>): Promise<Omit<BusEvent, 'timestamp'>[]> {
  if ('deployment' in e) {
    const d = e.deployment;
    const plan = { id: d.id, version: d.version, steps: deploymentView(d).steps };
    const step = plan.steps[0];
    if (e.eventType === 'deployment_started') return [{ eventType: 'deployment_info', plan, currentStep: step }];
    const reason = e.reason ? { reason: e.reason } : {};
    return [
      { eventType: STEP_END[e.eventType], plan, currentStep: step, ...reason },
      { eventType: e.eventType, id: d.id, plan, ...reason },
    ];
  }
  const inst = e.instance;
  const node = inst.nodeId ? await store.getNode(inst.nodeId) : undefined;
  const version = await store.getPodVersion(inst.podId, inst.specVersion);
  const base = {
    instanceId: marathonInstanceId(e.path, inst.id),
    runSpecId: e.path,
    runSpecVersion: version?.createdAt ?? null,
  };
  if (e.eventType === 'instance_health_changed') return [{ eventType: 'instance_health_changed_event', ...base, healthy: e.healthy }];
  const changed = { eventType: 'instance_changed_event', ...base, condition: CONDITIONS[e.phase], agentId: inst.nodeId ?? '', host: hostOf(node), goal: inst.goal === 'running' ? 'Running' : inst.goal === 'stopped' ? 'Stopped' : 'Decommissioned' };
  // As Marathon (`InstanceChangedEventsGenerator`): each task's status update, then the instance's change.
  return [...(version ? statusUpdates(e.path, inst, version.spec, version.createdAt, node) : []), changed];
}

const hostOf = (node: Node | undefined): string => (node ? node.publicIp || node.name : '');

/**
 * `status_update_event` for each container (Mesos task) of an instance whose condition changed:
 * its task state and the instance's last word on it in `message` (why a launch failed, why a
 * container ended), as Mesos's status update message reaches Marathon's subscribers.
 */
function statusUpdates(path: string, inst: Instance, spec: PodSpec, version: string, node: Node | undefined): Omit<BusEvent, 'timestamp'>[] {
  const o = inst.observed;
  const instanceId = marathonInstanceId(path, inst.id);
  return spec.containers.map((c) => {
    const ports = [...c.endpoints.map((ep) => o?.endpoints?.[ep.name]), ...c.ports.map((p) => o?.ports[String(p.port)])].filter((p): p is number => p !== undefined);
    return {
      eventType: 'status_update_event',
      slaveId: inst.nodeId ?? '',
      taskId: `${instanceId}.${c.name}`,
      taskStatus: taskState(o?.containers.find((x) => x.name === c.name), inst),
      message: o?.message ?? '',
      appId: path,
      host: hostOf(node),
      ipAddresses: [],
      ports,
      version,
    };
  });
}
