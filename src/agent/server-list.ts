/**
 * The servers an agent knows, and which it talks to now (k3s' model: an agent reaches every server
 * of its cluster). The operator's `--server`s come first; the cluster then tells the agent its
 * servers (`GET /api/v1/agent/servers`). HTTP calls go to the current server and move to the next on
 * a failure that says the server is gone (`failsOver`); node channels go to every listed server.
 */
import { CertificateMismatch } from './server-trust.js';

/** A server of the cluster, as `/api/v1/agent/servers` lists it. */
export interface ListedServer {
  id: string;
  url: string;
}

/** The most servers an agent follows: a cluster is a handful; a bad answer must not make it dial thousands. */
export const MAX_SERVERS = 32;

/** A server URL as the agent keys it: its origin (`http://h:7700/` and `http://h:7700` are one server). */
export function serverOrigin(url: string): string {
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`a server URL is http:// or https://, not ${url}`);
  return u.origin;
}

/** `--server a,b --server c`: each given once, in order, as origins. */
export function parseServers(given: readonly string[]): string[] {
  const out: string[] = [];
  for (const s of given.flatMap((g) => g.split(','))) {
    const t = s.trim();
    if (!t) continue;
    const o = serverOrigin(t);
    if (!out.includes(o)) out.push(o);
  }
  return out;
}

export class ServerList {
  private readonly configured: string[];
  private listed: string[] = [];
  private now: string;

  /** `configured`: the servers the operator gave (at least one), tried in that order. */
  constructor(configured: readonly string[]) {
    this.configured = parseServers(configured);
    if (this.configured.length === 0) throw new Error('no server given');
    this.now = this.configured[0]!;
  }

  /** The server calls go to now. */
  get current(): string {
    return this.now;
  }

  /** Every server known: the listed ones, then the operator's (a fallback: an advertised URL may not be reachable from here). */
  get known(): string[] {
    return [...new Set([...this.listed, ...this.configured])];
  }

  /**
   * The servers to hold a node channel to: the listed ones; none listed (SQLite, one server, an
   * older server): the one the calls go to. Never the operator's URL beside a listed URL of the same
   * server under another name: two channels of one node to one server would replace each other for ever.
   */
  get channelTargets(): string[] {
    return this.listed.length ? [...this.listed] : [this.now];
  }

  /** The order to try a call in: the current server, then every other known one after it. */
  order(): string[] {
    const all = this.known;
    const i = Math.max(0, all.indexOf(this.now));
    return [...all.slice(i), ...all.slice(0, i)];
  }

  /** A call succeeded on `server`: it is current. */
  use(server: string): void {
    this.now = server;
  }

  /**
   * Takes the cluster's list. Returns whether the listed servers changed. An empty list keeps what
   * was known (a server that lists none is a single server, or an older one).
   */
  update(servers: readonly ListedServer[]): boolean {
    const next: string[] = [];
    for (const s of servers) {
      let o: string;
      try {
        o = serverOrigin(s.url);
      } catch {
        continue;
      }
      if (!next.includes(o)) next.push(o);
      if (next.length >= MAX_SERVERS) break;
    }
    if (next.length === 0) return false;
    const changed = next.join(' ') !== this.listed.join(' ');
    this.listed = next;
    if (!this.known.includes(this.now)) this.now = this.known[0]!;
    return changed;
  }
}

/** Error codes of a connection that never carried the request: safe to send anywhere else, a join included. */
const NOT_SENT = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
/** Error codes of a connection lost or silent after the request may have gone: the server died or hangs. */
const LOST = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** The code of a fetch failure: on the error, its cause, or the cause's cause. */
function codeOf(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string') return e.code;
  }
  return undefined;
}

/** What a failed call says about its server. */
export type CallFailure =
  /** The request never reached the server (refused, unreachable, another certificate): any call may go elsewhere. */
  | 'not-sent'
  /** The connection was lost or the server went silent (reset, hang-up, our timeout): the server is gone, the call may have been done. */
  | 'lost'
  /** The server answered but could not serve (a 5xx: 502/503/504 from a proxy or a server stopping, a 500 from a server that lost its database). */
  | 'unavailable'
  /** Anything else: the call's own failure (refused, invalid), the same on any server. */
  | 'final';

/** Classifies a failure: a thrown error (with `timedOut` when our own deadline aborted it), or an HTTP status. */
export function classify(failure: { status: number } | { error: unknown; timedOut?: boolean }): CallFailure {
  if ('status' in failure) return failure.status >= 500 ? 'unavailable' : 'final';
  if (failure.timedOut) return 'lost';
  const err = failure.error;
  if (err instanceof CertificateMismatch || (err as { cause?: unknown })?.cause instanceof CertificateMismatch) return 'not-sent';
  const code = codeOf(err);
  if (code && NOT_SENT.has(code)) return 'not-sent';
  if (code && LOST.has(code)) return 'lost';
  // undici says "other side closed" / "socket hang up" without a code on some paths.
  const text = `${(err as Error)?.message ?? ''} ${((err as { cause?: Error })?.cause as Error | undefined)?.message ?? ''}`;
  if (/other side closed|socket hang up|terminated/i.test(text)) return 'lost';
  return 'final';
}

/**
 * Whether a failed call moves to the next server. Idempotent calls (register, watch, report, usage,
 * the server list) move on any sign that the server is gone or failing (each server is tried once
 * per call, so a 500 that every server gives costs one try each); a join, which uses up a token and makes
 * a node, moves only when it surely was not done there (never sent, or a 503: not served).
 */
export function failsOver(failure: CallFailure, idempotent: boolean, status?: number): boolean {
  if (failure === 'final') return false;
  if (idempotent) return true;
  return failure === 'not-sent' || (failure === 'unavailable' && status === 503);
}
