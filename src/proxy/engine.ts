/**
 * The proxy's request handling, the same in the server process and in a proxy worker: connections
 * come in raw (from a listener or over IPC), TLS is ended here when configured, plain requests to
 * public ports take the fast path (fast-path.ts) and everything else goes through Node's HTTP
 * server and undici (the full path below): routing errors that explain themselves, private ports
 * (API key or one-time link cookie), WebSocket and other upgrades, chunked uploads, HTTP/1.0.
 * The engine owns no route table and no key store: it is handed a RouteSource and a ProxyAccess.
 * About 500 lines, kept whole: the full path's request, upgrade and error handling share the
 * connection set-up above them; the fast path and the relay are already files of their own.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect as tcpConnect, Socket, type SocketConstructorOpts } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { Pool, type buildConnector, type Dispatcher } from 'undici';
import { PROXY_LOGIN_PATH, type ProxyGrant } from '../control/access.js';
import { canSee } from '../control/caller.js';
import { dialRelay, relayReady, type RelayAddress } from './channel.js';
import { CLIENT_KEEP_ALIVE_MS, ClientReads, FastConnection, noAnswer, NOT_IDEMPOTENT, type FastPathHost, type Target } from './fast-path.js';
import { IdleClock } from './idle-clock.js';
import type { ProxyAccess } from './gate.js';
import { UpstreamPool } from './upstream-pool.js';
import { countConnection, proxyCounts } from './counters.js';
import { ProxyError, rawAnswer, ResponseRelay, sendError, upstreamFailure } from './relay.js';
import type { PodRoute, PortRoute, Upstream } from './routes.js';

export interface RouteSource {
  get(podId: string): PodRoute | undefined;
}

export interface EngineOptions {
  routes: RouteSource;
  access: ProxyAccess;
  logger: Logger;
  /** Pod hosts are `{podId}-{port}.{domain}`. @default localhost */
  domain?: string;
  /** End TLS with this certificate (a wildcard for `*.{domain}`). */
  tls?: { cert: Buffer; key: Buffer };
  /** Close a stream, WebSocket or upstream that sends nothing for this long; 0: never. @default 0 */
  idleTimeoutMs?: number;
  /** Told the pod of each request or upgrade routed to one (the idle policy's `proxy` signal); must be cheap. */
  onUse?: (podId: string) => void;
  /** The server's channel relay (channel.ts), for routes through a node's NodeAccess. */
  relay?: RelayAddress;
}

export const SESSION_COOKIE = 'berth_proxy_session';

const HOST_LABEL = /^([0-9a-z]{14})(?:-(\d{1,4}))?-(\d{1,5})$/;
/** Hop-by-hop headers (RFC 9110 §7.6.1) and those undici frames itself; never forwarded. */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'expect', 'proxy-authorization', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);
const MAX_CACHED_HOSTS = 10_000;

/** A Host header taken apart: `{podId}[-{ordinal}]-{port}.{domain}`. */
interface PodAddress {
  podId: string;
  ordinal: string | undefined;
  port: number;
}

/**
 * The bare handle under an accepted socket that has not read yet (`pauseOnConnect`), to pass to a
 * worker and wrap there (acceptHandle); undefined where a Node version keeps it elsewhere, and the
 * socket itself is passed instead.
 */
export function socketHandle(socket: Socket): object | undefined {
  const handle = (socket as unknown as { _handle?: unknown })._handle;
  return typeof handle === 'object' && handle !== null ? handle : undefined;
}

export class ProxyEngine implements FastPathHost {
  readonly scheme: 'http' | 'https';
  readonly idleMs: number;
  readonly log: Logger;
  readonly upstreams: UpstreamPool;
  readonly clock: IdleClock;
  readonly keepAliveTicks: number;
  /** Node's HTTP server for the full path; it never listens: connections are handed to it. */
  private readonly full: Server;
  private readonly tls: TlsServer | undefined;
  private readonly pools = new Map<string, Pool>();
  private readonly sockets = new Set<Duplex>();
  private readonly domainSuffix: string;
  /** Host header → pod address, so the fast path parses a host once, not per request. */
  private readonly hosts = new Map<string, PodAddress | ProxyError>();
  private closed = false;

  constructor(private readonly opts: EngineOptions) {
    this.domainSuffix = `.${(opts.domain ?? 'localhost').toLowerCase()}`;
    this.scheme = opts.tls ? 'https' : 'http';
    this.idleMs = opts.idleTimeoutMs ?? 0;
    this.log = opts.logger;
    this.clock = new IdleClock(this.idleMs);
    // An idle limit shorter than the keep-alive closes idle connections too, as the full path's socket timeout does.
    this.keepAliveTicks = this.clock.ticks(this.idleMs > 0 ? Math.min(this.idleMs, CLIENT_KEEP_ALIVE_MS) : CLIENT_KEEP_ALIVE_MS);
    this.upstreams = new UpstreamPool(this.idleMs, this.clock, opts.relay);
    this.full = createHttpServer((req, res) => this.onRequest(req, res));
    // No whole-request deadline (a large upload may take an hour) and no idle cap unless asked.
    this.full.requestTimeout = 0;
    this.full.timeout = this.idleMs;
    this.full.keepAliveTimeout = 65_000;
    this.full.headersTimeout = 60_000;
    this.full.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    this.full.on('clientError', (_err, socket: Duplex) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
      else socket.destroy();
    });
    if (opts.tls) {
      this.tls = createTlsServer({ cert: opts.tls.cert, key: opts.tls.key, ALPNProtocols: ['http/1.1'] }, (socket: TLSSocket) => {
        socket.setNoDelay(true);
        new FastConnection(socket, this);
      });
      this.tls.on('tlsClientError', (_err, socket) => socket.destroy());
    }
  }

  /** Takes a client connection: from this process's listener or passed by the server over IPC. */
  accept(socket: Socket): void {
    if (this.closed) return void socket.destroy();
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    countConnection(socket);
    socket.setNoDelay(true);
    if (this.tls) this.tls.emit('connection', socket);
    else new FastConnection(socket, this);
  }

  /**
   * Takes a client connection as the bare handle of an accepted socket (what the server passes a
   * worker): the socket made around it reads into a buffer of its own, sparing the fast path an
   * allocation and Node's stream machinery per read. Under TLS the TLS layer reads: a plain socket.
   */
  acceptHandle(handle: object): void {
    if (this.tls) return this.accept(new Socket({ handle, readable: true, writable: true } as SocketConstructorOpts));
    const reads = new ClientReads();
    const socket = new Socket({ handle, readable: true, writable: true, onread: { buffer: () => reads.buffer, callback: (n: number, buf: Uint8Array) => reads.deliver(n, buf) } } as SocketConstructorOpts);
    reads.socket = socket;
    if (this.closed) return void socket.destroy();
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    countConnection(socket);
    socket.setNoDelay(true);
    new FastConnection(socket, this, reads);
  }

  /** Called with the origins the routes still use: connections to the others close. */
  keepOrigins(live: Set<string>): void {
    this.upstreams.keepOnly(live);
    for (const [origin, pool] of this.pools) {
      if (live.has(origin)) continue;
      this.pools.delete(origin);
      void pool.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    this.upstreams.close();
    this.clock.close();
    await Promise.allSettled([...this.pools.values()].map((p) => p.destroy()));
    this.pools.clear();
  }

  handoff(socket: Duplex, pending: Buffer | null): void {
    if (pending) socket.unshift(pending);
    socket.resume();
    this.full.emit('connection', socket);
  }

  fastTarget(host: string): Target | undefined {
    const addr = this.address(host);
    if (addr instanceof ProxyError) return undefined;
    const route = this.opts.routes.get(addr.podId);
    const port = route?.ports.get(addr.port);
    if (!route || !port || port.protocol !== 'http' || port.private || route.status !== 'RUNNING') return undefined;
    const upstream = addr.ordinal === undefined ? port.upstreams[port.next++ % port.upstreams.length] : port.upstreams.find((u) => u.instanceId === `${addr.podId}-${addr.ordinal}`);
    if (port.next >= 1e9) port.next = 0;
    if (!upstream) return undefined;
    this.opts.onUse?.(route.podId);
    return { route, port, upstream, stripAuthorization: false };
  }

  upstreamFailure(target: Target, err: Error & { code?: string }): string {
    return upstreamFailure(target, err);
  }

  private address(hostHeader: string): PodAddress | ProxyError {
    let a = this.hosts.get(hostHeader);
    if (a === undefined) {
      a = this.parseHost(hostHeader);
      if (this.hosts.size >= MAX_CACHED_HOSTS) this.hosts.clear();
      this.hosts.set(hostHeader, a);
    }
    return a;
  }

  private parseHost(hostHeader: string): PodAddress | ProxyError {
    const host = (hostHeader.startsWith('[') ? hostHeader : hostHeader.replace(/:\d+$/, '')).toLowerCase();
    if (!host.endsWith(this.domainSuffix)) {
      return new ProxyError('NOT_FOUND', `${host} is not a pod address: this proxy serves {podId}-{port}${this.domainSuffix}`);
    }
    const m = HOST_LABEL.exec(host.slice(0, host.length - this.domainSuffix.length));
    if (!m) return new ProxyError('NOT_FOUND', `${host} is not a pod address: this proxy serves {podId}-{port}${this.domainSuffix} or {podId}-{instance}-{port}${this.domainSuffix}`);
    return { podId: m[1]!, ordinal: m[2], port: Number(m[3]) };
  }

  /** A socket to the upstream, resolved once bytes can flow: a TCP connect, or the channel relay's `ok`. */
  private open(u: Upstream): { socket: Socket; ready: Promise<void> } {
    if (u.via === 'channel' && this.opts.relay) {
      const socket = dialRelay(this.opts.relay, u);
      return { socket, ready: relayReady(socket) };
    }
    const socket = tcpConnect({ host: u.host, port: u.port, noDelay: true });
    const ready = new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return { socket, ready };
  }

  private pool(u: Upstream): Pool {
    const origin = u.origin;
    let p = this.pools.get(origin);
    if (!p) {
      const relay = this.opts.relay;
      p = new Pool(origin, {
        // Through the channel: undici speaks over a relay socket once the relay said `ok`.
        ...(u.via === 'channel' && relay
          ? {
              connect: (_opts: buildConnector.Options, cb: buildConnector.Callback) => {
                const socket = dialRelay(relay, u);
                relayReady(socket).then(
                  () => cb(null, socket),
                  (err: Error) => {
                    socket.destroy();
                    cb(err, null);
                  },
                );
              },
            }
          : {}),
        pipelining: 1,
        keepAliveTimeout: 60_000,
        keepAliveMaxTimeout: 600_000,
        // 0: no cap on time to first byte nor between body chunks (RunPod's 100 s complaint).
        headersTimeout: this.idleMs,
        bodyTimeout: this.idleMs,
        connectTimeout: 10_000,
      });
      this.pools.set(origin, p);
    }
    return p;
  }

  /**
   * Routing and access checks of the full path, shared by requests and upgrades; throws a
   * ProxyError. Synchronous for public ports; a private port's checks may wait.
   */
  private resolve(req: IncomingMessage): Target | 'login' | Promise<Target | 'login'> {
    const hostHeader = req.headers.host;
    if (!hostHeader) throw new ProxyError('NO_HOST', 'the request has no Host header; ask for http://{podId}-{port}.<domain>/');
    const addr = this.address(hostHeader);
    if (addr instanceof ProxyError) throw addr;
    const { podId, ordinal, port: portNo } = addr;
    const route = this.opts.routes.get(podId);
    if (!route) throw new ProxyError('POD_NOT_FOUND', `pod ${podId} not found`);
    const port = route.ports.get(portNo);
    if (!port) {
      const listed = [...route.ports.values()].map((p) => `${p.port}/${p.protocol}`).join(', ');
      throw new ProxyError('PORT_NOT_EXPOSED', `pod ${podId} does not expose port ${portNo} (${listed ? `it exposes ${listed}` : 'it exposes no ports'})`);
    }
    if (port.protocol !== 'http') {
      throw new ProxyError('PORT_NOT_HTTP', `port ${portNo} of pod ${podId} is exposed as tcp, not http: connect to it directly at the node's public address and its mapped port (berth pod get ${podId})`);
    }
    if (port.private) {
      if (req.url?.startsWith(PROXY_LOGIN_PATH)) return 'login';
      return this.authorize(req, route, portNo).then((grant) => {
        if (grant === 'denied') {
          throw new ProxyError('UNAUTHORIZED', `port ${portNo} of pod ${podId} is private: send the owner's API key as "Authorization: Bearer <key>", or open a one-time link (POST /api/v1/pods/${podId}/proxy-link)`);
        }
        return this.pick(route, port, podId, portNo, ordinal, grant === 'bearer');
      });
    }
    return this.pick(route, port, podId, portNo, ordinal, false);
  }

  private pick(route: PodRoute, port: PortRoute, podId: string, portNo: number, ordinal: string | undefined, stripAuthorization: boolean): Target {
    if (route.status !== 'RUNNING') {
      throw new ProxyError('POD_NOT_RUNNING', `pod ${podId} is ${route.status}${route.statusMessage ? ` (${route.statusMessage})` : ''}; it serves port ${portNo} once it is RUNNING`);
    }
    let upstream;
    if (ordinal !== undefined) {
      upstream = port.upstreams.find((u) => u.instanceId === `${podId}-${ordinal}`);
      if (!upstream) throw new ProxyError('INSTANCE_NOT_RUNNING', `instance ${podId}-${ordinal} of pod ${podId} is not running or does not exist`);
    } else {
      const n = port.upstreams.length;
      if (n === 0) throw new ProxyError('NO_RUNNING_INSTANCE', `no running instance of pod ${podId} serves port ${portNo} yet`);
      upstream = port.upstreams[port.next++ % n]!;
      if (port.next >= 1e9) port.next = 0;
    }
    this.opts.onUse?.(podId);
    return { route, port, upstream, stripAuthorization };
  }

  private async authorize(req: IncomingMessage, route: PodRoute, port: number): Promise<'cookie' | 'bearer' | 'denied'> {
    const cookie = req.headers.cookie;
    if (cookie) {
      const value = cookieValue(cookie, SESSION_COOKIE);
      const grant = value ? await this.opts.access.session(value) : undefined;
      if (grant && grantFits(grant, route, port)) return 'cookie';
    }
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) {
      const caller = await this.opts.access.caller(auth.slice(7).trim());
      if (caller && canSee(caller, route.owner)) return 'bearer';
    }
    return 'denied';
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    proxyCounts.requests++;
    let target: Target | 'login' | Promise<Target | 'login'>;
    try {
      target = this.resolve(req);
    } catch (err) {
      return this.fail(req, res, err);
    }
    if (target instanceof Promise) {
      target.then(
        (t) => (t === 'login' ? this.login(req, res) : this.forward(req, res, t)),
        (err: unknown) => this.fail(req, res, err),
      );
    } else if (target === 'login') this.login(req, res);
    else this.forward(req, res, target);
  }

  /** Redeems a one-time link: sets the session cookie for this host and redirects into the app. */
  private login(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const label = (req.headers.host ?? '').split('.')[0] ?? '';
    const m = HOST_LABEL.exec(label);
    const route = m ? this.opts.routes.get(m[1]!) : undefined;
    this.opts.access.login(url.searchParams.get('token') ?? '').then(
      (login) => {
        if (!login || !route || !grantFits(login.grant, route, Number(m![3]))) {
          return this.fail(req, res, new ProxyError('UNAUTHORIZED', 'this link is not valid here, has expired or was used already: ask the API for a new one'));
        }
        const next = url.searchParams.get('next');
        res.writeHead(302, {
          location: next && next.startsWith('/') && !next.startsWith('//') ? next : '/',
          'set-cookie': `${SESSION_COOKIE}=${login.session.value}; Path=/; Max-Age=${login.session.maxAgeS}; HttpOnly; SameSite=Lax${this.scheme === 'https' ? '; Secure' : ''}`,
          'cache-control': 'no-store',
        });
        res.end();
      },
      (err: unknown) => this.fail(req, res, err),
    );
  }

  private forwardHeaders(req: IncomingMessage, target: Target, keepUpgrade: boolean): string[] {
    const raw = req.rawHeaders;
    const out: string[] = [];
    let xff: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const lower = name.toLowerCase();
      if (lower === 'x-forwarded-for') {
        xff = xff ? `${xff}, ${raw[i + 1]}` : raw[i + 1];
        continue;
      }
      if (HOP.has(lower) && !(keepUpgrade && (lower === 'connection' || lower === 'upgrade'))) continue;
      if (lower === 'authorization' && target.stripAuthorization) continue;
      if (lower === 'cookie' && target.port.private) {
        const rest = stripCookie(raw[i + 1]!, SESSION_COOKIE);
        if (rest) out.push(name, rest);
        continue;
      }
      out.push(name, raw[i + 1]!);
    }
    const remote = clientAddress(req.socket.remoteAddress);
    out.push('x-forwarded-for', xff ? `${xff}, ${remote}` : remote, 'x-forwarded-proto', this.scheme, 'x-forwarded-host', req.headers.host ?? '');
    return out;
  }

  private forward(req: IncomingMessage, res: ServerResponse, target: Target, retried = false): void {
    const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
    // A kept-alive connection the pod closed just as the request went out (a server that closes
    // without saying so; through a channel its close arrives later): sent again once on a fresh
    // one when that does no harm, as the fast path does, as nginx does.
    const again = !hasBody && !retried && !NOT_IDEMPOTENT.has(req.method ?? 'GET') ? () => this.forward(req, res, target, true) : undefined;
    const handler = new ResponseRelay(req, res, target, this.log, again);
    this.pool(target.upstream).dispatch(
      {
        path: req.url ?? '/',
        method: req.method as Dispatcher.HttpMethod,
        headers: this.forwardHeaders(req, target, false),
        body: hasBody ? req : null,
      },
      handler,
    );
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    proxyCounts.requests++;
    proxyCounts.upgrades++;
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    Promise.resolve()
      .then(() => this.resolve(req))
      .then(
        (target) => {
          if (target === 'login') return rawAnswer(socket, new ProxyError('VALIDATION', 'a login link is not an upgrade'));
          const { socket: upstream, ready } = this.open(target.upstream);
          this.sockets.add(upstream);
          upstream.once('close', () => this.sockets.delete(upstream));
          const headers = this.forwardHeaders(req, target, true);
          let text = `${req.method} ${req.url} HTTP/1.1\r\n`;
          for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
          upstream.write(text + '\r\n');
          if (head.length) upstream.write(head);
          // Until the pod sends a byte, its failing (refused, reset, closed) is answered with a 502 saying why.
          let answered = false;
          let failure: Error | undefined;
          upstream.on('error', (err: NodeJS.ErrnoException) => {
            failure = err;
          });
          ready.then(
            () => {
              upstream.once('data', () => {
                answered = true;
              });
              upstream.pipe(socket, { end: false });
              socket.pipe(upstream);
            },
            (err: Error) => {
              failure = err;
              upstream.destroy();
            },
          );
          upstream.once('end', () => {
            if (answered) socket.end();
          });
          socket.once('close', () => upstream.destroy());
          upstream.once('close', () => {
            if (!answered && !socket.destroyed) {
              proxyCounts.upstreamErrors++;
              rawAnswer(socket, new ProxyError('UPSTREAM_FAILED', upstreamFailure(target, failure ?? noAnswer())));
            } else socket.destroy();
          });
          if (this.idleMs > 0) {
            for (const s of [socket as Socket, upstream]) {
              s.setTimeout(this.idleMs, () => {
                socket.destroy();
                upstream.destroy();
              });
            }
          }
        },
        (err: unknown) => {
          if (err instanceof ProxyError) rawAnswer(socket, err);
          else {
            this.log.error({ err }, 'proxy upgrade failed');
            rawAnswer(socket, new ProxyError('INTERNAL', 'internal error in the proxy'));
          }
        },
      );
  }

  private fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const e = err instanceof ProxyError ? err : new ProxyError('INTERNAL', 'internal error in the proxy');
    if (!(err instanceof ProxyError)) this.log.error({ err }, 'proxy request failed');
    // Drain what the client is still sending so a keep-alive connection stays usable.
    req.resume();
    sendError(req, res, e);
  }
}

function clientAddress(addr: string | undefined): string {
  if (!addr) return 'unknown';
  return addr.startsWith('::ffff:') ? addr.slice(7) : addr;
}

function cookieValue(header: string, name: string): string | undefined {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function stripCookie(header: string, name: string): string {
  return header
    .split(';')
    .filter((p) => p.split('=')[0]!.trim() !== name)
    .join(';')
    .trim();
}

function grantFits(grant: ProxyGrant, route: PodRoute, port: number): boolean {
  return grant.podId === route.podId && grant.port === port && grant.owner === route.owner;
}
