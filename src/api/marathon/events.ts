/**
 * Marathon's event bus (`GET /v2/events`, `docs/docs/event-bus.md`): the pod events the routes
 * publish and the deployment and instance events of the deployment service, as Marathon writes them.
 */
import type { ServerResponse } from 'node:http';
import { canSee, type Caller, type DeploymentService, type MarathonEvent } from '../../control/index.js';
import type { OwnerId, PodId } from '../../model/index.js';
import type { Store } from '../../store/types.js';
import { marathonInstanceId } from './paths.js';
import { deploymentView } from './views.js';

export type BusEvent = Record<string, unknown> & { eventType: string; timestamp: string };
/** An event and whose pod it is about; a caller hears of its own pods only (admins of all). */
type Listener = (e: BusEvent, owner: OwnerId) => void;

/** A comment line now and then keeps proxies from closing a quiet stream. */
const KEEPALIVE_MS = 25_000;

export class MarathonEventBus {
  private readonly listeners = new Set<Listener>();
  private readonly streams = new Set<ServerResponse>();
  private readonly owners = new Map<PodId, OwnerId>();
  /** Subscribed to the deployment service only while a stream is open: its instance events read the store on every instance change. */
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly deployments: DeploymentService,
    private readonly store: Store,
  ) {}

  private listen(): void {
    this.unsubscribe ??= this.deployments.onEvent((e) => {
      void this.fromService(e).then((r) => r && this.publish(r.event, r.owner), () => undefined);
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
  attach(res: ServerResponse, caller: Caller, remoteAddress: string, types: string[]): void {
    const wanted = (t: string) => types.length === 0 || types.includes(t);
    const listener: Listener = (e, owner) => {
      if (wanted(e.eventType) && canSee(caller, owner)) res.write(`event: ${e.eventType}\ndata: ${JSON.stringify(e)}\n\n`);
    };
    const keepalive = setInterval(() => res.write(':\n\n'), KEEPALIVE_MS);
    keepalive.unref();
    this.listeners.add(listener);
    this.listen();
    this.streams.add(res);
    res.on('close', () => {
      clearInterval(keepalive);
      this.listeners.delete(listener);
      this.quiet();
      this.streams.delete(res);
      this.publish({ eventType: 'event_stream_detached', remoteAddress }, caller.owner);
    });
    this.publish({ eventType: 'event_stream_attached', remoteAddress }, caller.owner);
  }

  /** Ends every stream, so a closing server does not wait on them. */
  close(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    for (const res of this.streams) res.end();
    this.listeners.clear();
  }

  private async versionTime(podId: string, version: number): Promise<string | undefined> {
    return (await this.store.getPodVersion(podId as PodId, version))?.createdAt;
  }

  /** A deployment service event in Marathon's words (`core/event/Events.scala`), with its pod's owner; undefined once the pod is gone. */
  private async fromService(e: MarathonEvent): Promise<{ event: Omit<BusEvent, 'timestamp'>; owner: OwnerId } | undefined> {
    const podId = ('deployment' in e ? e.deployment.podId : e.instance.podId) as PodId;
    // A deleted pod's row may be gone by the time its deployment ends: its owner is remembered.
    const owner = (await this.store.getPod(podId))?.pod.owner ?? this.owners.get(podId);
    if (owner === undefined) return undefined;
    this.owners.set(podId, owner);
    return { event: await this.marathonEvent(e), owner };
  }

  private async marathonEvent(e: MarathonEvent): Promise<Omit<BusEvent, 'timestamp'>> {
    if ('deployment' in e) {
      const d = e.deployment;
      const plan = { id: d.id, version: d.version, steps: deploymentView(d).steps };
      const step = plan.steps[0];
      if (e.eventType === 'deployment_success' || e.eventType === 'deployment_failed') return { eventType: e.eventType, id: d.id, plan, ...(e.reason ? { reason: e.reason } : {}) };
      return { eventType: e.eventType, plan, currentStep: step, ...(e.reason ? { reason: e.reason } : {}) };
    }
    const inst = e.instance;
    const node = inst.nodeId ? await this.store.getNode(inst.nodeId) : undefined;
    const base = {
      instanceId: marathonInstanceId(e.path, inst.id),
      runSpecId: e.path,
      runSpecVersion: (await this.versionTime(inst.podId, inst.specVersion)) ?? null,
    };
    if (e.eventType === 'instance_health_changed_event') return { eventType: e.eventType, ...base, healthy: e.healthy };
    return { eventType: e.eventType, ...base, condition: e.condition, agentId: inst.nodeId ?? '', host: node ? node.publicIp || node.name : '', goal: inst.goal === 'running' ? 'Running' : inst.goal === 'stopped' ? 'Stopped' : 'Decommissioned' };
  }
}
