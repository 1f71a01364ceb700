import { fetch as undiciFetch, type Dispatcher } from 'undici';
import type { Logger } from 'pino';
import { BerthError, type ErrorKind, type NodeId, type UsageReport } from '../model/index.js';
import type { AgentChannel, InstanceReport, NodeRegistration, WatchResult } from '../control/agent-protocol.js';
import { pinnedDispatcher } from './server-trust.js';
import { classify, failsOver, MAX_SERVERS, ServerList, type CallFailure, type ListedServer } from './server-list.js';

export interface HttpChannelOptions {
  /** The server's URL, e.g. https://10.0.0.1:7700, or several servers of one cluster, tried in order. */
  server: string | readonly string[];
  /** The node's credential, when the machine has joined. */
  credential?: string;
  /** A join token, exchanged at `register` when there is no credential yet. */
  token?: string;
  /** The server certificate's SHA-256 to pin (from the join token), on every server; null or absent: the usual CA check. */
  fingerprint?: string | null;
  /** Given the node and its credential the join made, and the server that made them, before `register` answers: the agent keeps them. */
  onJoined?: (joined: { nodeId: NodeId; credential: string; server: string }) => Promise<void>;
  /** Called once when the server refuses the node's credential (the node was removed): the agent should stop. */
  onRevoked?: (err: BerthError) => void;
  /** Where a move to another server is said. @default silent */
  logger?: Logger;
  /** How long a call other than a watch may go unanswered before its server counts as gone. @default 30_000 */
  callTimeoutMs?: number;
}

const KIND_OF_STATUS: Record<number, ErrorKind> = { 400: 'VALIDATION', 401: 'UNAUTHORIZED', 403: 'FORBIDDEN', 404: 'NOT_FOUND', 409: 'CONFLICT' };

interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  /** @default true; a join is not (it uses up a token and makes a node). */
  idempotent?: boolean;
}

type Attempt<T> = { ok: true; value: T } | { ok: false; failure: CallFailure; status?: number; err: BerthError };

/**
 * The agent protocol over HTTP: what `berth agent` on another machine speaks to the servers. The
 * first `register` of a machine is a join (the token for a credential of its node); every call after
 * is made with that credential, and the server takes the node from it. The credential holds on every
 * server of the cluster (it is in the shared database): a call goes to the current server and, when
 * that one is gone or failing (refused, reset, silent, a 5xx), to the next known one, so losing a server
 * loses no call (server-list.ts).
 */
export class HttpAgentChannel implements AgentChannel {
  private credential: string | undefined;
  private readonly dispatcher: Dispatcher | undefined;
  private revoked = false;
  /** The servers this agent knows, and the one its calls go to now. */
  readonly servers: ServerList;

  constructor(private readonly opts: HttpChannelOptions) {
    this.credential = opts.credential;
    this.dispatcher = opts.fingerprint ? pinnedDispatcher(opts.fingerprint) : undefined;
    this.servers = new ServerList(typeof opts.server === 'string' ? [opts.server] : opts.server);
  }

  /** The current server, the node credential and the pinned fingerprint: what another connection to a server (the node channel) authenticates with. */
  get auth(): { server: string; credential: string | undefined; fingerprint: string | null } {
    return { server: this.servers.current, credential: this.credential, fingerprint: this.opts.fingerprint ?? null };
  }

  /** One call, on the current server and, while servers are gone, on the next ones; each known server is tried once. */
  private async call<T>(method: string, path: string, body?: unknown, o: CallOptions = {}): Promise<T> {
    const order = this.servers.order();
    let first: BerthError | undefined;
    for (let i = 0; i < order.length; i++) {
      const server = order[i]!;
      const r = await this.attempt<T>(server, method, path, body, o);
      if (r.ok) {
        this.servers.use(server);
        return r.value;
      }
      if (!failsOver(r.failure, o.idempotent ?? true, r.status)) throw r.err;
      first ??= r.err;
      // The next call starts on the next server too: a silent one is not waited on again.
      const next = order[(i + 1) % order.length]!;
      this.servers.use(next);
      if (i + 1 < order.length) this.opts.logger?.warn({ from: server, to: next, err: r.err.message }, `agent call ${path}: ${server} is gone; trying ${next}`);
    }
    throw first!;
  }

  private async attempt<T>(server: string, method: string, path: string, body: unknown, o: CallOptions): Promise<Attempt<T>> {
    const { signal } = o;
    const timeoutMs = o.timeoutMs ?? this.opts.callTimeoutMs ?? 30_000;
    // One controller per attempt, its listener on the caller's signal taken off after: a listener
    // left on the agent's long-lived signal per call would pile up for as long as the agent runs.
    const ac = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort(new Error(`no answer in ${timeoutMs / 1000} s`));
    }, timeoutMs);
    const stop = (): void => ac.abort(signal?.reason);
    signal?.addEventListener('abort', stop, { once: true });
    if (signal?.aborted) stop();
    let res;
    let text: string;
    try {
      res = await undiciFetch(new URL(`/api/v1/agent/${path}`, server), {
        method,
        headers: { ...(this.credential && path !== 'join' ? { authorization: `Bearer ${this.credential}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: ac.signal,
        ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
      });
      // Read under the same deadline: a server that dies half-way through its answer is a server gone.
      text = await res.text();
    } catch (err) {
      if (signal?.aborted) throw err;
      // fetch says "fetch failed"; the cause says why (refused, a certificate that is not the pinned one).
      const cause = timedOut ? (ac.signal.reason as Error) : ((err as { cause?: Error }).cause ?? (err as Error));
      return { ok: false, failure: classify({ error: err, timedOut }), err: new BerthError('NODE_UNAVAILABLE', `cannot reach ${server}: ${cause.message}`, { cause: err }) };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', stop);
    }
    if (res.status === 204) return { ok: true, value: undefined as T };
    let data: { detail?: string; reason?: string } | undefined;
    try {
      data = text ? (JSON.parse(text) as typeof data) : {};
    } catch {
      data = undefined;
    }
    if (res.ok) {
      if (data === undefined) return { ok: false, failure: 'unavailable', err: new BerthError('NODE_UNAVAILABLE', `${server} answered ${res.status} with something that is not JSON`) };
      return { ok: true, value: data as T };
    }
    data ??= {};
    const kind = res.status >= 500 ? 'NODE_UNAVAILABLE' : (KIND_OF_STATUS[res.status] ?? 'CONFLICT');
    const err = new BerthError(kind, `the server answered ${res.status}: ${data.detail ?? res.statusText}`, { extra: { status: res.status, ...(data.reason ? { reason: data.reason } : {}) } });
    if (res.status === 401 && path !== 'join' && !this.revoked) {
      this.revoked = true;
      this.opts.onRevoked?.(err);
    }
    return { ok: false, failure: classify({ status: res.status }), status: res.status, err };
  }

  async register(reg: NodeRegistration): Promise<{ nodeId: NodeId }> {
    // The server takes the node from the credential (or makes a new one at a join), not from the body.
    const { nodeId: _known, ...registration } = reg;
    if (this.credential) return this.call('POST', 'register', registration);
    if (!this.opts.token) throw new BerthError('UNAUTHORIZED', 'this machine has not joined the server: give a join token (`berth token create` on the server)');
    const joined = await this.call<{ nodeId: NodeId; credential: string }>('POST', 'join', { token: this.opts.token, registration }, { idempotent: false });
    await this.opts.onJoined?.({ ...joined, server: this.servers.current });
    this.credential = joined.credential;
    return { nodeId: joined.nodeId };
  }

  watch(_nodeId: NodeId, since: number, waitMs: number, signal?: AbortSignal, changesOnly = false): Promise<WatchResult> {
    // The server answers within waitMs (or sooner: it holds a watch at most a third of its node
    // timeout). A connection that stops carrying anything (a cut network, a server gone) is given up
    // after that and a margin, and the watch is asked again of the next server: `since` is a
    // revision of the one shared store, so any server answers it alike.
    return this.call('GET', `watch?since=${since}&waitMs=${waitMs}${changesOnly ? '&changesOnly=true' : ''}`, undefined, { timeoutMs: waitMs + 10_000, ...(signal ? { signal } : {}) });
  }

  report(_nodeId: NodeId, reports: InstanceReport[]): Promise<void> {
    return this.call('POST', 'report', { reports });
  }

  reportUsage(_nodeId: NodeId, samples: UsageReport[]): Promise<void> {
    return this.call('POST', 'usage', { samples });
  }

  /**
   * The cluster's servers (`GET /api/v1/agent/servers`): empty where the server lists none (SQLite,
   * one server) or is older than the route. Malformed entries are left out.
   */
  async listServers(signal?: AbortSignal): Promise<ListedServer[]> {
    let answer: { servers?: unknown };
    try {
      answer = await this.call<{ servers?: unknown }>('GET', 'servers', undefined, signal ? { signal } : {});
    } catch (err) {
      if (err instanceof BerthError && err.kind === 'NOT_FOUND') return [];
      throw err;
    }
    if (!Array.isArray(answer?.servers)) return [];
    return (answer.servers as unknown[])
      .filter((s): s is ListedServer => typeof s === 'object' && s !== null && typeof (s as ListedServer).id === 'string' && typeof (s as ListedServer).url === 'string')
      .slice(0, MAX_SERVERS)
      .map((s) => ({ id: s.id, url: s.url }));
  }

  /** Closes the pinned connections, if any. */
  async close(): Promise<void> {
    await this.dispatcher?.close();
  }
}
