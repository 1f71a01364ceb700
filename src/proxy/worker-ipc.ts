/**
 * What the server process and its proxy workers say to each other over the IPC channel of
 * child_process.fork (JSON messages; client connections travel as socket handles beside a
 * `conn` message), and the worker's side of the private-port checks: questions to the server,
 * answered by id, with the answers kept as long as the in-process proxy keeps them.
 */
import type { ProxyGrant } from '../control/access.js';
import type { Caller } from '../control/caller.js';
import type { RelayAddress } from './channel.js';
import type { ProxyCounts } from './counters.js';
import { KEY_CACHE_MS, type Login, type ProxyAccess } from './gate.js';
import type { RouteData } from './routes.js';

export interface WorkerSettings {
  domain: string;
  idleTimeoutMs: number;
  /** PEM certificate and key, base64: a worker ends TLS itself. */
  tls?: { cert: string; key: string };
  /** The server logger's level: workers log through the server at the same level. */
  logLevel: string;
  /** Which worker this is (0-based), for its log lines. */
  index: number;
  /** The server's channel relay, for routes through a node's NodeAccess (channel.ts). */
  relay?: RelayAddress;
}

export type AccessQuestion = { op: 'session'; value: string } | { op: 'caller'; secret: string } | { op: 'login'; token: string };

/** Server → worker. */
export type ToWorker =
  | { t: 'init'; settings: WorkerSettings; routes: RouteData[] }
  | { t: 'route'; podId: string; route: RouteData | null }
  /** A client connection: the socket handle rides along with the message. */
  | { t: 'conn' }
  | { t: 'answer'; id: number; value?: unknown; error?: string };

/** Worker → server. */
export type FromWorker =
  | { t: 'ready' }
  /** One pino line, for the server's logger. */
  | { t: 'log'; line: string }
  /** The pods requests were routed to in the last second (the idle policy's `proxy` signal): one message a second at most. */
  | { t: 'used'; pods: string[] }
  /** The worker's counters since it started, sent once a second when they moved (the metrics endpoint adds them up). */
  | { t: 'counts'; counts: ProxyCounts }
  | ({ t: 'ask'; id: number } & AccessQuestion);

/** How long a worker waits for the server to answer a private-port question. */
const ANSWER_TIMEOUT_MS = 10_000;
const MAX_CACHED = 10_000;

interface Cached<T> {
  value: T;
  until: number;
}

/** A worker's ProxyAccess: asks the server, remembers answers (keys 30 s, cookies until they expire). */
export class RemoteAccess implements ProxyAccess {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly sessions = new Map<string, Cached<ProxyGrant | undefined>>();
  private readonly callers = new Map<string, Cached<Caller | undefined>>();

  constructor(private readonly send: (m: FromWorker) => void) {}

  session(value: string): ProxyGrant | undefined | Promise<ProxyGrant | undefined> {
    const hit = this.sessions.get(value);
    if (hit && hit.until > Date.now()) return hit.value;
    return this.ask<ProxyGrant | undefined>({ op: 'session', value }).then((grant) => {
      // A genuine cookie stays good until it expires (nothing revokes one); a bad one is asked about again later.
      remember(this.sessions, value, grant, grant ? grant.expiresAt : Date.now() + KEY_CACHE_MS);
      return grant;
    });
  }

  caller(secret: string): Caller | undefined | Promise<Caller | undefined> {
    const hit = this.callers.get(secret);
    if (hit && hit.until > Date.now()) return hit.value;
    return this.ask<Caller | undefined>({ op: 'caller', secret }).then((caller) => {
      remember(this.callers, secret, caller, Date.now() + KEY_CACHE_MS);
      return caller;
    });
  }

  login(token: string): Promise<Login | undefined> {
    return this.ask<Login | undefined>({ op: 'login', token });
  }

  /** Settles the question an answer is for. */
  answer(m: { id: number; value?: unknown; error?: string }): void {
    const w = this.waiting.get(m.id);
    if (!w) return;
    this.waiting.delete(m.id);
    clearTimeout(w.timer);
    if (m.error !== undefined) w.reject(new Error(m.error));
    else w.resolve(m.value ?? undefined);
  }

  private ask<T>(q: AccessQuestion): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`the server did not answer the proxy worker's ${q.op} question in ${ANSWER_TIMEOUT_MS / 1000} s`));
      }, ANSWER_TIMEOUT_MS);
      timer.unref();
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.send({ t: 'ask', id, ...q });
    });
  }
}

function remember<T>(cache: Map<string, Cached<T>>, key: string, value: T, until: number): void {
  if (cache.size >= MAX_CACHED) cache.clear();
  cache.set(key, { value, until });
}

/** The server's answer to a worker's question, from its own ProxyAccess. */
export async function answerQuestion(access: ProxyAccess, q: AccessQuestion): Promise<unknown> {
  switch (q.op) {
    case 'session':
      return access.session(q.value);
    case 'caller':
      return access.caller(q.secret);
    case 'login':
      return access.login(q.token);
  }
}
