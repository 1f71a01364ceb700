import { BerthError, type NodeId, type UsageReport } from '../model/index.js';
import type { AgentChannel, InstanceReport, NodeRegistration, WatchResult } from '../control/agent-protocol.js';

/** The agent protocol over HTTP: what `berth agent` on another machine speaks to the server. */
export class HttpAgentChannel implements AgentChannel {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  private async call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const res = await fetch(new URL(`/api/v1/agent/${path}`, this.baseUrl), {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      ...(signal ? { signal } : {}),
    });
    if (res.status === 204) return undefined as T;
    const data = (await res.json().catch(() => ({}))) as { detail?: string };
    if (!res.ok) throw new BerthError(res.status >= 500 ? 'NODE_UNAVAILABLE' : res.status === 401 ? 'UNAUTHORIZED' : 'CONFLICT', `the server answered ${res.status}: ${data.detail ?? res.statusText}`);
    return data as T;
  }

  register(reg: NodeRegistration): Promise<{ nodeId: NodeId }> {
    return this.call('POST', 'register', reg);
  }

  watch(nodeId: NodeId, since: number, waitMs: number, signal?: AbortSignal): Promise<WatchResult> {
    // The server answers within waitMs (or sooner: it holds a watch at most a third of its node
    // timeout). A connection that stops carrying anything (a cut network) is given up after that and
    // a margin, so the agent calls again as soon as the network is back instead of waiting on it.
    const deadline = AbortSignal.timeout(waitMs + 10_000);
    return this.call('GET', `watch?nodeId=${encodeURIComponent(nodeId)}&since=${since}&waitMs=${waitMs}`, undefined, signal ? AbortSignal.any([signal, deadline]) : deadline);
  }

  report(nodeId: NodeId, reports: InstanceReport[]): Promise<void> {
    return this.call('POST', 'report', { nodeId, reports });
  }

  reportUsage(nodeId: NodeId, samples: UsageReport[]): Promise<void> {
    return this.call('POST', 'usage', { nodeId, samples });
  }
}
