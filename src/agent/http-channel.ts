import { fetch as undiciFetch, type Dispatcher } from 'undici';
import { BerthError, type ErrorKind, type NodeId, type UsageReport } from '../model/index.js';
import type { AgentChannel, InstanceReport, NodeRegistration, WatchResult } from '../control/agent-protocol.js';
import { pinnedDispatcher } from './server-trust.js';

export interface HttpChannelOptions {
  /** The server's URL, e.g. https://10.0.0.1:7700. */
  server: string;
  /** The node's credential, when the machine has joined. */
  credential?: string;
  /** A join token, exchanged at `register` when there is no credential yet. */
  token?: string;
  /** The server certificate's SHA-256 to pin (from the join token); null or absent: the usual CA check. */
  fingerprint?: string | null;
  /** Given the node and its credential the join made, before `register` answers: the agent keeps them. */
  onJoined?: (joined: { nodeId: NodeId; credential: string }) => Promise<void>;
  /** Called once when the server refuses the node's credential (the node was removed): the agent should stop. */
  onRevoked?: (err: BerthError) => void;
}

const KIND_OF_STATUS: Record<number, ErrorKind> = { 400: 'VALIDATION', 401: 'UNAUTHORIZED', 403: 'FORBIDDEN', 404: 'NOT_FOUND', 409: 'CONFLICT' };

/**
 * The agent protocol over HTTP: what `berth agent` on another machine speaks to the server. The
 * first `register` of a machine is a join (the token for a credential of its node); every call after
 * is made with that credential, and the server takes the node from it.
 */
export class HttpAgentChannel implements AgentChannel {
  private credential: string | undefined;
  private readonly dispatcher: Dispatcher | undefined;
  private revoked = false;

  constructor(private readonly opts: HttpChannelOptions) {
    this.credential = opts.credential;
    this.dispatcher = opts.fingerprint ? pinnedDispatcher(opts.fingerprint) : undefined;
  }

  /** The server, the node credential and the pinned fingerprint: what another connection to the server (the stream channel) authenticates with. */
  get auth(): { server: string; credential: string | undefined; fingerprint: string | null } {
    return { server: this.opts.server, credential: this.credential, fingerprint: this.opts.fingerprint ?? null };
  }

  private async call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    let res;
    try {
      res = await undiciFetch(new URL(`/api/v1/agent/${path}`, this.opts.server), {
        method,
        headers: { ...(this.credential && path !== 'join' ? { authorization: `Bearer ${this.credential}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(signal ? { signal } : {}),
        ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
      });
    } catch (err) {
      if (signal?.aborted) throw err;
      // fetch says "fetch failed"; the cause says why (refused, a certificate that is not the pinned one).
      const cause = (err as { cause?: Error }).cause ?? (err as Error);
      throw new BerthError('NODE_UNAVAILABLE', `cannot reach ${this.opts.server}: ${cause.message}`, { cause: err });
    }
    if (res.status === 204) return undefined as T;
    const data = (await res.json().catch(() => ({}))) as { detail?: string; reason?: string };
    if (!res.ok) {
      const kind = res.status >= 500 ? 'NODE_UNAVAILABLE' : (KIND_OF_STATUS[res.status] ?? 'CONFLICT');
      const err = new BerthError(kind, `the server answered ${res.status}: ${data.detail ?? res.statusText}`, { extra: { status: res.status, ...(data.reason ? { reason: data.reason } : {}) } });
      if (res.status === 401 && path !== 'join' && !this.revoked) {
        this.revoked = true;
        this.opts.onRevoked?.(err);
      }
      throw err;
    }
    return data as T;
  }

  async register(reg: NodeRegistration): Promise<{ nodeId: NodeId }> {
    // The server takes the node from the credential (or makes a new one at a join), not from the body.
    const { nodeId: _known, ...registration } = reg;
    if (this.credential) return this.call('POST', 'register', registration);
    if (!this.opts.token) throw new BerthError('UNAUTHORIZED', 'this machine has not joined the server: give a join token (`berth token create` on the server)');
    const joined = await this.call<{ nodeId: NodeId; credential: string }>('POST', 'join', { token: this.opts.token, registration });
    await this.opts.onJoined?.(joined);
    this.credential = joined.credential;
    return { nodeId: joined.nodeId };
  }

  async watch(_nodeId: NodeId, since: number, waitMs: number, signal?: AbortSignal): Promise<WatchResult> {
    // The server answers within waitMs (or sooner: it holds a watch at most a third of its node
    // timeout). A connection that stops carrying anything (a cut network) is given up after that and
    // a margin, so the agent calls again as soon as the network is back instead of waiting on it.
    // One controller per watch, its listener on the agent's signal taken off after: a listener left
    // on that long-lived signal per watch would pile up for as long as the agent runs.
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error(`no answer to the watch in ${(waitMs + 10_000) / 1000} s`)), waitMs + 10_000);
    const stop = (): void => ac.abort(signal?.reason);
    signal?.addEventListener('abort', stop, { once: true });
    if (signal?.aborted) stop();
    try {
      return await this.call('GET', `watch?since=${since}&waitMs=${waitMs}`, undefined, ac.signal);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', stop);
    }
  }

  report(_nodeId: NodeId, reports: InstanceReport[]): Promise<void> {
    return this.call('POST', 'report', { reports });
  }

  reportUsage(_nodeId: NodeId, samples: UsageReport[]): Promise<void> {
    return this.call('POST', 'usage', { samples });
  }

  /** Closes the pinned connections, if any. */
  async close(): Promise<void> {
    await this.dispatcher?.close();
  }
}
