import type { ActivitySignal, InstanceId, InstanceUsage, NodeId, PodId } from '../model/index.js';
import type { Store } from '../store/types.js';
import type { ActivityTracker } from './activity.js';
import type { DeploymentEvent } from './deployment-service.js';
import type { LifetimeEvent } from './lifetimes.js';
import type { UsageService } from './usage.js';

/*
 * What servers tell each other that is not in the store: the latest usage samples (an agent sends
 * its node's batch to one server; every server's views, `berth pod top` and /metrics, and the
 * leader's idle policy need them) and the pods' activity (a session is on whichever server the user
 * reached; the leader's idle policy judges). Both travel as PostgreSQL notices on the store's
 * channel, each at most MAX_NOTICE bytes, and are memory where they land: a new leader starts
 * counting idleness afresh, as any server does at its start (lifetimes.ts).
 *
 * The bus also carries what only the leader sees happen, for every server's event streams — a
 * deployment started or ended, a lifetime policy acting — and the wake-up of agents' watches when a
 * secret, registry credential or network volume changed (those are not in the change feed).
 */

/** Under PostgreSQL's 8,000-byte NOTIFY limit, with room for the topic and server id. */
const MAX_NOTICE = 7600;
/** How often a server sends the activity it saw. */
const ACTIVITY_EVERY_MS = 1000;

type Samples = Array<[InstanceId, PodId, InstanceUsage]>;
interface UsageNotice {
  node: NodeId;
  samples: Samples;
}
type EventNotice = { deployment: DeploymentEvent } | { lifetime: LifetimeEvent };
interface ActivityNotice {
  /** Per pod: the last use per signal since the last notice, and the sessions open now per signal. */
  pods: Array<[string, Partial<Record<ActivitySignal, number>>, Partial<Record<ActivitySignal, number>>]>;
}

type NoticeStore = Pick<Store, 'publishNotice' | 'onNotice'>;

export class ClusterBus {
  private readonly unnotice: () => void;
  private readonly timer: NodeJS.Timeout;
  private relaying = false;

  constructor(
    private readonly store: NoticeStore,
    private readonly serverId: string,
    private readonly parts: {
      usage: UsageService;
      activity: ActivityTracker;
      deployments?: { onEvent(l: (e: DeploymentEvent) => void): () => void; relay(e: DeploymentEvent): void };
      lifetimes?: { onEvent(l: (e: LifetimeEvent) => void): () => void; relay(e: LifetimeEvent): void };
      /** Wakes this server's agents' watches. */
      wake?: () => void;
      logger?: { warn(obj: object, msg: string): void };
    },
  ) {
    this.unnotice = store.onNotice((payload) => this.heard(payload));
    parts.usage.onRecorded((node, samples) => this.sendUsage(node, samples));
    // Only the leader starts and ends deployments and carries out lifetime policies: what it tells its own listeners, it tells the others.
    // An event relayed here is not sent on again (`relaying`): it would go round the servers for ever.
    parts.deployments?.onEvent((e) => {
      if (this.relaying) return;
      if (e.eventType === 'deployment_started' || e.eventType === 'deployment_success' || e.eventType === 'deployment_failed') this.send('event', { deployment: e });
    });
    parts.lifetimes?.onEvent((e) => {
      if (!this.relaying) this.send('event', { lifetime: e });
    });
    this.timer = setInterval(() => this.sendActivity(), ACTIVITY_EVERY_MS);
    this.timer.unref();
  }

  close(): void {
    this.unnotice();
    clearInterval(this.timer);
  }

  /** Wakes every server's agents' watches (this one's are woken by the caller). */
  wakeAgents(): void {
    this.send('wake', {});
  }

  private send(topic: 'usage' | 'activity' | 'event' | 'wake', body: UsageNotice | ActivityNotice | EventNotice | Record<string, never>): void {
    void this.store.publishNotice(`${topic}:${this.serverId}:${JSON.stringify(body)}`).catch((err: unknown) => this.parts.logger?.warn({ err, topic }, 'telling the other servers failed'));
  }

  private sendUsage(node: NodeId, samples: Samples): void {
    for (const chunk of chunks(samples)) this.send('usage', { node, samples: chunk });
  }

  private sendActivity(): void {
    const pods = this.parts.activity.takeShared();
    for (const chunk of chunks(pods)) this.send('activity', { pods: chunk });
  }

  private heard(payload: string): void {
    const m = /^(usage|activity|event|wake):([^:]+):/.exec(payload);
    if (!m || m[2] === this.serverId) return;
    try {
      const body = JSON.parse(payload.slice(m[0].length)) as UsageNotice & ActivityNotice & Partial<{ deployment: DeploymentEvent; lifetime: LifetimeEvent }>;
      if (m[1] === 'usage') this.parts.usage.ingest(body.node, body.samples);
      else if (m[1] === 'activity') this.parts.activity.merge(m[2]!, body.pods, Date.now());
      else if (m[1] === 'wake') this.parts.wake?.();
      else {
        this.relaying = true;
        try {
          if (body.deployment) this.parts.deployments?.relay(body.deployment);
          else if (body.lifetime) this.parts.lifetimes?.relay(body.lifetime);
        } finally {
          this.relaying = false;
        }
      }
    } catch (err) {
      this.parts.logger?.warn({ err }, 'a notice from another server could not be read');
    }
  }
}

/** Splits `items` into runs whose JSON stays under MAX_NOTICE with room for the envelope (an item too big alone goes alone). */
function chunks<T>(items: T[]): T[][] {
  const out: T[][] = [];
  let part: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = Buffer.byteLength(JSON.stringify(item)) + 1;
    if (part.length > 0 && bytes + size > MAX_NOTICE - 200) {
      out.push(part);
      part = [];
      bytes = 0;
    }
    part.push(item);
    bytes += size;
  }
  if (part.length > 0) out.push(part);
  return out;
}
