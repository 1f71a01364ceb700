/**
 * The one way to reach a pod's instance on its node: find the pod the caller may see, the instance
 * asked for, the container, and the node's access, with every refusal worded once. Logs, exec, the
 * web terminal, port forwarding, the SSH gateway and RunPod's log stream all come through here.
 */
import { BerthError, type Instance } from '../model/index.js';
import type { PodDetail } from '../store/types.js';
import type { NodeAccess } from './agent-protocol.js';
import type { AgentService } from './agents.js';
import { requireWrite, type Caller } from './caller.js';
import type { PodService } from './pods.js';

export interface ResolveOptions {
  /** The instance's ordinal. @default the first one (the first running one with `running`) */
  instance?: number;
  /** A container of the pod, checked against its spec. @default the node's choice (the spec's first) */
  container?: string;
  /**
   * The pod must be RUNNING and the instance running: what starts something in it (exec, a shell, a
   * connection) needs that; logs do not (an exited container's output is still there).
   * @default false
   */
  running?: boolean;
  /** Runs something in the pod (exec, SSH, a terminal, a port-forward): a write, refused to viewers. @default false */
  interactive?: boolean;
}

export interface Resolved {
  detail: PodDetail;
  instance: Instance;
  access: NodeAccess;
}

export class InstanceResolver {
  constructor(
    private readonly pods: PodService,
    private readonly agents: AgentService,
  ) {}

  async resolve(caller: Caller, podId: string, opts: ResolveOptions = {}): Promise<Resolved> {
    const detail = await this.pods.get(caller, podId);
    if (opts.interactive) requireWrite(caller, `run anything in pod ${detail.pod.id} (exec, SSH, terminal, port-forward)`);
    const instance = opts.running ? runningInstance(detail, opts.instance) : anyInstance(detail, opts.instance);
    const { containers } = detail.spec;
    if (opts.container !== undefined && !containers.some((c) => c.name === opts.container)) {
      throw new BerthError('NOT_FOUND', `pod ${detail.pod.id} has no container ${opts.container} (it has ${containers.map((c) => c.name).join(', ')})`, { extra: { container: opts.container } });
    }
    return { detail, instance, access: this.agents.nodeAccess(instance.nodeId) };
  }
}

function byOrdinal(d: PodDetail): Instance[] {
  return [...d.instances].sort((a, b) => a.ordinal - b.ordinal);
}

function anyInstance(d: PodDetail, ordinal: number | undefined): Instance {
  const all = byOrdinal(d);
  const inst = ordinal === undefined ? all[0] : all.find((i) => i.ordinal === ordinal);
  if (inst) return inst;
  if (ordinal === undefined) throw new BerthError('CONFLICT', `pod ${d.pod.id} has no instance (it is scaled to 0)`);
  throw new BerthError('NOT_FOUND', `pod ${d.pod.id} has no instance ${ordinal}; it has ${all.map((i) => i.ordinal).join(', ') || 'none'}`);
}

function runningInstance(d: PodDetail, ordinal: number | undefined): Instance {
  const { pod } = d;
  if (pod.status !== 'RUNNING') {
    const why = pod.statusMessage ? ` (${pod.statusMessage})` : '';
    const hint = pod.status === 'TERMINATED' ? '' : `; start it with \`berth pod start ${pod.id}\``;
    throw new BerthError('ACTION_NOT_ALLOWED', `pod ${pod.id} is ${pod.status}${why}; it needs to be RUNNING${hint}`, { extra: { podStatus: pod.status } });
  }
  const running = byOrdinal(d).filter((i) => i.observed?.state === 'running');
  const inst = ordinal === undefined ? running[0] : running.find((i) => i.ordinal === ordinal);
  if (inst) return inst;
  throw new BerthError('ACTION_NOT_ALLOWED', ordinal === undefined ? `pod ${pod.id} has no running instance yet` : `instance ${pod.id}-${ordinal} is not running`, { extra: { podStatus: pod.status } });
}
