/**
 * The proxy's fast path: plain keep-alive HTTP/1.1 requests to public ports, relayed on raw
 * sockets the way nginx does it. A request head is read with a strict parser (http1.ts), written
 * to a pooled connection to the pod with its hop-by-hop lines replaced by X-Forwarded-*, and the
 * response is passed back as it arrives: its head rewritten, its body untouched (a chunked body
 * stays chunked; only its end is tracked). Per request that is one read and one write each way
 * and a few string operations, where Node's HTTP server and undici build request, response and
 * header objects and streams around every exchange: this is where the proxy's CPU went.
 *
 * Anything else (a private port, an error to explain, an upgrade, a chunked upload, Expect,
 * HTTP/1.0, a malformed or oversized head) hands the connection, with the bytes already read, to
 * Node's HTTP server and the full path in engine.ts, which keeps it from then on.
 *
 * One file, over 500 lines, by choice: FastConnection is one state machine (head, body, pipelining,
 * backpressure and hand-off share its fields and are correct only together), and splitting its
 * states into modules would scatter the invariants without making any part readable alone. The
 * parts that stand alone live apart: the HTTP/1 parser (http1.ts), the pod connection pool
 * (upstream-pool.ts) and the idle clock (idle-clock.ts).
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ChunkedEnd, MAX_HEAD_BYTES, parseRequestHead, parseResponseHead, type Framing, type RequestHead, type ResponseHead } from './http1.js';
import { BerthError, problemDocument, REASON_PHRASES } from '../model/index.js';
import type { IdleClock, Sweepable } from './idle-clock.js';
import type { PortRoute, PodRoute, Upstream } from './routes.js';
import { READ_BYTES, type UpstreamConn, type UpstreamPool } from './upstream-pool.js';
import { proxyCounts } from './counters.js';

/** Where a request goes: the pod, its port and the instance picked. */
export interface Target {
  route: PodRoute;
  port: PortRoute;
  upstream: Upstream;
  /** The Authorization header carried a Berth key: strip it before the pod sees it. */
  stripAuthorization: boolean;
}

/** What the fast path needs from the engine that owns it. */
export interface FastPathHost {
  readonly scheme: 'http' | 'https';
  /** 0: no inactivity limit. */
  readonly idleMs: number;
  readonly log: Logger;
  readonly upstreams: UpstreamPool;
  readonly clock: IdleClock;
  /** Ticks of the clock after which an idle client connection closes. */
  readonly keepAliveTicks: number;
  /** The target of a request the fast path may relay (a public http port of a running pod), else undefined. */
  fastTarget(host: string): Target | undefined;
  /** Gives the connection and the bytes read but not handled to the full path. */
  handoff(socket: Duplex, pending: Buffer | null): void;
  /** The 502 text for a failed upstream, as the full path words it. */
  upstreamFailure(target: Target, err: Error & { code?: string }): string;
}

/** The code of the error for a pod connection that closed before a byte of the answer came back. */
export const NO_ANSWER = 'BERTH_NO_ANSWER';
export const noAnswer = (): Error & { code: string } => Object.assign(new Error('the connection closed before an answer'), { code: NO_ANSWER });

const CRLFCRLF = Buffer.from('\r\n\r\n');
/** An idle client connection (or one stuck in the middle of a head) is closed after this long. */
export const CLIENT_KEEP_ALIVE_MS = 65_000;
const MAX_RESPONSE_HEAD_BYTES = 64 * 1024;
/** Below this, a response head and its first body bytes go out as one string in one write. */
const COALESCE_BYTES = 16 * 1024;
/** A read this small is turned into one latin1 string and parsed as such. */
const SMALL_READ_BYTES = 4 * 1024;

/** Methods a request is not sent twice with, even when the pod may never have seen the first. */
export const NOT_IDEMPOTENT = new Set(['POST', 'PATCH', 'LOCK']);

const PAUSE_BODY = 1;
const PAUSE_PIPELINE = 2;

const enum Phase {
  Head,
  Body,
}

function clientAddress(addr: string | undefined): string {
  if (!addr) return 'unknown';
  return addr.startsWith('::ffff:') ? addr.slice(7) : addr;
}

/**
 * Where a client socket created with net's `onread` reads to: a buffer of its own, handed to the
 * fast path while it has the connection; after a hand-off, copies pushed into the socket's stream
 * as a plain socket would.
 */
export class ClientReads {
  buffer = Buffer.allocUnsafeSlow(READ_BYTES);
  conn: FastConnection | undefined;
  socket: Socket | undefined;

  deliver(n: number, buf: Uint8Array): boolean {
    const chunk = (buf as Buffer).subarray(0, n);
    if (this.conn) {
      this.conn.onClientData(chunk, true);
      return true;
    }
    return this.socket ? this.socket.push(Buffer.from(chunk)) : false;
  }

  /** A write still holds the bytes last read: the next read goes into a new buffer. */
  lend(): void {
    this.buffer = Buffer.allocUnsafeSlow(READ_BYTES);
  }
}

/**
 * One client connection on the fast path: one exchange at a time (pipelined requests wait, read
 * but unparsed, with the socket paused), until it closes or is handed off. Bytes come from 'data'
 * events, or, for a socket with a buffer of its own, from ClientReads (borrowed: good until the
 * next read, so whatever is kept is copied).
 */
export class FastConnection implements Sweepable {
  private pending: Buffer | null = null;
  private pausedBy = 0;
  private clientEnded = false;
  /** The proxy ended the connection: whatever the client still sends is dropped. */
  private closing = false;
  private readonly remote: string;
  private readonly onData = (chunk: Buffer): void => this.onClientData(chunk, false);
  private readonly onEnd = (): void => this.onClientEnd();
  private readonly onClose = (): void => this.onClientClose();
  private readonly onError = (): void => void this.socket.destroy();
  private readonly onDrain = (): void => this.onClientDrain();
  /** The clock tick of the last read or write. */
  private seen: number;
  /**
   * The last request head and response head read on this connection and what they gave: most
   * clients send the same head again and again on a connection, and a pod answers with the same
   * head (its Date changes once a second), so they are not parsed again.
   */
  private lastRequest: { text: string; head: RequestHead; forwarded: string } | undefined;
  private lastResponse: { text: string; method: string; res: ResponseHead } | undefined;

  // The exchange in flight, when busy.
  private busy = false;
  private head: RequestHead | undefined;
  private target: Target | undefined;
  private forwarded = '';
  private bodyLeft = 0;
  private closeAfter = false;
  private retried = false;
  private up: UpstreamConn | undefined;
  private upPaused = false;
  private phase = Phase.Head;
  private responseHead: Buffer | null = null;
  private framing: Framing = 'none';
  private reusable = false;
  private left = 0;
  private chunked: ChunkedEnd | undefined;

  constructor(
    private readonly socket: Duplex & { remoteAddress?: string | undefined },
    private readonly host: FastPathHost,
    private readonly reads?: ClientReads,
  ) {
    this.remote = clientAddress(socket.remoteAddress);
    if (reads) reads.conn = this;
    else socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
    socket.on('drain', this.onDrain);
    this.seen = host.clock.tick;
    host.clock.add(this);
  }

  private pause(flag: number): void {
    if (this.pausedBy === 0) this.socket.pause();
    this.pausedBy |= flag;
  }

  private resume(flags: number): void {
    if (this.pausedBy === 0) return;
    this.pausedBy &= ~flags;
    if (this.pausedBy === 0) this.socket.resume();
  }

  onClientData(chunk: Buffer, borrowed: boolean): void {
    this.seen = this.host.clock.tick;
    if (this.closing) return;
    if (this.busy) {
      if (this.bodyLeft > 0) {
        if (chunk.length <= this.bodyLeft) {
          this.bodyLeft -= chunk.length;
          this.sendBody(chunk, borrowed);
          return;
        }
        const part = chunk.subarray(0, this.bodyLeft);
        chunk = chunk.subarray(this.bodyLeft);
        this.bodyLeft = 0;
        this.sendBody(part, borrowed);
      }
      // The start of a pipelined request: it waits for this exchange to end.
      this.pending = this.pending ? Buffer.concat([this.pending, chunk]) : borrowed ? Buffer.from(chunk) : chunk;
      this.pause(PAUSE_PIPELINE);
      return;
    }
    if (this.pending) this.next(Buffer.concat([this.pending, chunk]), false);
    else this.next(chunk, borrowed);
  }

  /** Starts the request at the start of `buf` if its head is all there, else keeps the bytes for later. */
  private next(buf: Buffer, borrowed: boolean): void {
    this.pending = null;
    // A small read (the usual whole request) becomes one string, searched and cut as a string.
    const text = buf.length <= SMALL_READ_BYTES ? buf.toString('latin1') : undefined;
    const end = text !== undefined ? text.indexOf('\r\n\r\n') : buf.indexOf(CRLFCRLF);
    if (end < 0 || end > MAX_HEAD_BYTES) {
      this.pending = borrowed ? Buffer.from(buf) : buf;
      // Not a whole head yet; past the limit, Node's parser answers 431.
      if (end > MAX_HEAD_BYTES || buf.length > MAX_HEAD_BYTES) this.handoff();
      return;
    }
    const headText = text !== undefined ? text.slice(0, end) : buf.toString('latin1', 0, end);
    const last = this.lastRequest;
    const head = last?.text === headText ? last.head : parseRequestHead(headText);
    const target = head ? this.host.fastTarget(head.host) : undefined;
    if (!head || !target) {
      this.pending = borrowed ? Buffer.from(buf) : buf;
      return this.handoff();
    }
    let rest = end + 4 < buf.length ? buf.subarray(end + 4) : null;

    this.busy = true;
    proxyCounts.requests++;
    this.head = head;
    this.target = target;
    this.bodyLeft = head.contentLength;
    this.closeAfter = head.close;
    this.retried = false;
    if (last?.head === head) this.forwarded = last.forwarded;
    else {
      this.forwarded = `${head.lines}x-forwarded-for: ${head.forwardedFor ? `${head.forwardedFor}, ${this.remote}` : this.remote}\r\nx-forwarded-proto: ${this.host.scheme}\r\nx-forwarded-host: ${head.host}\r\n\r\n`;
      this.lastRequest = { text: headText, head, forwarded: this.forwarded };
    }
    this.dispatch(this.host.upstreams.acquire(target.upstream));
    if (this.bodyLeft > 0 && rest) {
      if (rest.length <= this.bodyLeft) {
        this.bodyLeft -= rest.length;
        this.sendBody(rest, borrowed);
        rest = null;
      } else {
        this.sendBody(rest.subarray(0, this.bodyLeft), borrowed);
        rest = rest.subarray(this.bodyLeft);
        this.bodyLeft = 0;
      }
    }
    if (rest) {
      this.pending = borrowed ? Buffer.from(rest) : rest;
      this.pause(PAUSE_PIPELINE);
    }
  }

  private dispatch(conn: UpstreamConn): void {
    this.up = conn;
    conn.owner = this;
    this.phase = Phase.Head;
    this.responseHead = null;
    this.upPaused = false;
    conn.write(this.forwarded);
  }

  private sendBody(part: Buffer, borrowed: boolean): void {
    if (!this.up) return;
    const flushed = this.up.write(part);
    if (borrowed && this.up.socket.writableLength > 0) this.reads?.lend();
    if (!flushed) this.pause(PAUSE_BODY);
  }

  onUpstreamDrain(): void {
    this.resume(PAUSE_BODY);
  }

  private onClientDrain(): void {
    if (this.upPaused && this.up) {
      this.upPaused = false;
      this.up.socket.resume();
    }
  }

  /** Writes to the client; `borrowed` bytes are the pod connection's read buffer, lent out if the write keeps them. */
  private toClient(chunk: Buffer, borrowed: boolean): void {
    this.afterWrite(this.socket.write(chunk), borrowed);
  }

  private afterWrite(flushed: boolean, borrowed: boolean): void {
    this.seen = this.host.clock.tick;
    if (borrowed && this.socket.writableLength > 0) this.up?.lend();
    if (!flushed && this.up && !this.upPaused) {
      this.upPaused = true;
      this.up.socket.pause();
    }
  }

  onUpstreamData(chunk: Buffer): void {
    if (this.phase === Phase.Head) {
      const held = this.responseHead;
      this.responseHead = null;
      // A head in pieces was copied out; a first piece is the read buffer itself.
      this.startResponse(held ? Buffer.concat([held, chunk]) : chunk, held === null);
    } else this.relayBody(chunk);
  }

  /** Reads the response head (skipping 1xx heads) and sends it on with the body bytes that came with it. */
  private startResponse(buf: Buffer, borrowed: boolean): void {
    // A small read (the usual whole response) becomes one string: one conversion for head and body.
    const str = buf.length <= SMALL_READ_BYTES ? buf.toString('latin1') : undefined;
    let start = 0;
    for (;;) {
      const end = str !== undefined ? str.indexOf('\r\n\r\n', start) : buf.indexOf(CRLFCRLF, start);
      if (end < 0) {
        if (buf.length - start > MAX_RESPONSE_HEAD_BYTES) return this.fail('UPSTREAM_FAILED', this.where('sent a response head larger than 64 KiB'));
        // The rest of the head is still to come: keep what is here (a copy: the read buffer is reused).
        this.responseHead = Buffer.from(buf.subarray(start));
        return;
      }
      let res: ResponseHead;
      try {
        const text = str !== undefined ? str.slice(start, end) : buf.toString('latin1', start, end);
        const method = this.head!.method;
        const last = this.lastResponse;
        if (last?.text === text && last.method === method) res = last.res;
        else {
          res = parseResponseHead(text, method);
          this.lastResponse = { text, method, res };
        }
      } catch (err) {
        return this.fail('UPSTREAM_FAILED', this.where(`sent a response the proxy cannot pass on: ${(err as Error).message}`));
      }
      start = end + 4;
      if (res.status === 101) return this.fail('UPSTREAM_FAILED', this.where('switched protocols without being asked to'));
      // 100 Continue and other interim answers: the full path drops them too.
      if (res.status < 200) continue;
      this.phase = Phase.Body;
      this.framing = res.framing;
      this.reusable = !res.upstreamCloses;
      if (res.framing === 'close') this.closeAfter = true;
      // Said either way, as Node's server and nginx do: some clients (Node's among them) keep a
      // connection after a HEAD answer without a length only when told so.
      const text = `${res.lines}${this.closeAfter ? 'connection: close\r\n' : 'connection: keep-alive\r\n'}\r\n`;
      const rest = buf.length - start;
      if (res.framing === 'length') this.left = res.contentLength;
      else if (res.framing === 'chunked') this.chunked = new ChunkedEnd();
      if (rest === 0 || res.framing === 'none') {
        this.seen = this.host.clock.tick;
        this.socket.write(text, 'latin1');
        if (res.framing === 'none') return this.finish(this.reusable && rest === 0);
        if (res.framing === 'length' && this.left === 0) return this.finish(this.reusable);
        return;
      }
      if (str !== undefined && res.framing === 'length') {
        // The usual case: a small response with a length, all here or starting here.
        const take = Math.min(rest, this.left);
        this.left -= take;
        this.afterWrite(this.socket.write(text + (take === str.length - start ? str.slice(start) : str.slice(start, start + take)), 'latin1'), false);
        if (this.left === 0) this.finish(this.reusable && take === rest);
        return;
      }
      const body = buf.subarray(start);
      let bodyEnd: number;
      try {
        bodyEnd = this.bodyEnd(body);
      } catch (err) {
        return this.fail('UPSTREAM_FAILED', this.where(`sent a malformed chunked body: ${(err as Error).message}`));
      }
      const part = bodyEnd < 0 ? body : body.subarray(0, bodyEnd);
      if (part.length <= COALESCE_BYTES) {
        // One string, written in one go (latin1 carries bytes unchanged): no buffer to allocate.
        this.afterWrite(this.socket.write(text + part.toString('latin1'), 'latin1'), false);
      } else {
        this.socket.cork();
        this.socket.write(text, 'latin1');
        const flushed = this.socket.write(part);
        this.socket.uncork();
        this.afterWrite(flushed, borrowed);
      }
      if (bodyEnd >= 0) this.finish(this.reusable && bodyEnd === body.length);
      return;
    }
  }

  /** Where the body ends in `chunk`: an index (the end is in it) or -1 (it goes on). Throws on a malformed chunked body. */
  private bodyEnd(chunk: Buffer): number {
    switch (this.framing) {
      case 'length':
        if (chunk.length < this.left) {
          this.left -= chunk.length;
          return -1;
        }
        {
          const end = this.left;
          this.left = 0;
          return end;
        }
      case 'chunked':
        return this.chunked!.feed(chunk);
      default:
        return -1;
    }
  }

  private relayBody(chunk: Buffer): void {
    let end: number;
    try {
      end = this.bodyEnd(chunk);
    } catch (err) {
      this.host.log.debug({ err, upstream: this.target?.upstream.origin }, 'malformed chunked body from the pod');
      return this.abort();
    }
    if (end < 0) return this.toClient(chunk, true);
    this.toClient(end === chunk.length ? chunk : chunk.subarray(0, end), true);
    this.finish(this.reusable && end === chunk.length);
  }

  onUpstreamEnd(): void {
    // A body that runs until the pod closes has arrived whole.
    if (this.phase === Phase.Body && this.framing === 'close') this.finish(false);
  }

  onUpstreamClosed(conn: UpstreamConn, err: Error | undefined): void {
    if (!this.busy || this.up !== conn) return;
    this.up = undefined;
    if (this.phase === Phase.Head && this.responseHead === null) {
      // A reused connection the pod closed while idle: try a fresh one when the request can be sent
      // again (no body) and sending it twice does no harm (not POST, PATCH or LOCK, as nginx does it).
      if (conn.reused && !this.retried && this.head!.contentLength === 0 && !NOT_IDEMPOTENT.has(this.head!.method)) {
        this.retried = true;
        return this.dispatch(this.host.upstreams.connect(this.target!.upstream));
      }
      const e: Error & { code?: string } = err ?? noAnswer();
      return this.fail('UPSTREAM_FAILED', this.host.upstreamFailure(this.target!, e));
    }
    if (this.phase === Phase.Body && this.framing === 'close') return this.finish(false);
    if (this.phase === Phase.Head) return this.fail('UPSTREAM_FAILED', this.where('closed the connection in the middle of a response head'));
    // The body was cut short: so is the client's copy.
    this.socket.destroy();
  }

  onUpstreamTimeout(): void {
    if (this.host.idleMs === 0) return; // the timer is the pool's idle limit; an exchange may take as long as it takes
    if (this.phase === Phase.Head) return this.fail('UPSTREAM_TIMEOUT', this.where('did not answer in time'));
    this.abort();
  }

  private where(what: string): string {
    return `port ${this.target!.port.port} of pod ${this.target!.route.podId} ${what}`;
  }

  /** The exchange is over: the connection to the pod goes back to the pool (or away), the next request may start. */
  private finish(reusable: boolean): void {
    const conn = this.up;
    this.up = undefined;
    if (conn) {
      if (this.upPaused) conn.socket.resume();
      // A request body the pod did not wait for leaves that connection mid-message.
      if (reusable && this.bodyLeft === 0) this.host.upstreams.release(conn);
      else conn.destroy();
    }
    this.busy = false;
    this.head = undefined;
    this.target = undefined;
    this.chunked = undefined;
    this.responseHead = null;
    if (this.bodyLeft > 0 || this.closeAfter || this.clientEnded) {
      this.closing = true;
      this.socket.end();
      this.socket.resume(); // read and drop the rest of an upload nobody waits for
      return;
    }
    this.resume(PAUSE_BODY | PAUSE_PIPELINE);
    if (this.pending) this.next(this.pending, false);
  }

  /** Answers an error before any of the response went out. */
  private fail(kind: 'UPSTREAM_FAILED' | 'UPSTREAM_TIMEOUT', message: string): void {
    this.up?.destroy();
    this.up = undefined;
    const err = new BerthError(kind, message);
    proxyCounts.upstreamErrors++;
    this.host.log.debug({ upstream: this.target?.upstream.origin, status: err.status, message }, 'upstream failed');
    if (this.bodyLeft > 0) this.closeAfter = true;
    this.socket.write(errorResponse(err, this.head?.accept ?? '', this.closeAfter), 'latin1');
    this.finish(false);
  }

  /** Something broke after the response head went out: the client sees the connection close. */
  private abort(): void {
    this.up?.destroy();
    this.up = undefined;
    this.socket.destroy();
  }

  private onClientEnd(): void {
    this.clientEnded = true;
    if (!this.busy) this.socket.end();
    else if (this.bodyLeft > 0) this.abort(); // the client gave up in the middle of its upload
  }

  private onClientClose(): void {
    this.host.clock.delete(this);
    this.up?.destroy();
    this.up = undefined;
    this.busy = false;
  }

  /** Idle past the keep-alive (or in the middle of a head), or silent past the idle limit while the response streams. */
  sweep(tick: number): void {
    const idle = tick - this.seen;
    if (!this.busy) {
      if (idle > this.host.keepAliveTicks) this.socket.destroy();
    } else if (this.host.idleMs > 0 && this.phase === Phase.Body && idle > this.host.upstreams.idleTicks) {
      // Before the response head, the pod connection's own limit answers 504 instead.
      this.abort();
    }
  }

  private handoff(): void {
    const s = this.socket;
    s.off('data', this.onData);
    s.off('end', this.onEnd);
    s.off('close', this.onClose);
    s.off('error', this.onError);
    s.off('drain', this.onDrain);
    this.host.clock.delete(this);
    if (this.reads) this.reads.conn = undefined;
    const pending = this.pending;
    this.pending = null;
    this.host.handoff(s, pending);
  }
}

/** An error answer, worded and typed as the full path's sendError words and types it: the problem document when the client asks for JSON. */
export function errorBody(err: BerthError, accept: string): { type: string; body: string } {
  const wantsJson = /json/.test(accept) && !/html/.test(accept);
  return wantsJson ? { type: 'application/problem+json', body: JSON.stringify(problemDocument(err, 'proxy').body) } : { type: 'text/plain; charset=utf-8', body: `${err.message}\n` };
}

function errorResponse(err: BerthError, accept: string, close: boolean): Buffer {
  const { type, body } = errorBody(err, accept);
  const bytes = Buffer.from(body);
  const head = `HTTP/1.1 ${err.status} ${REASON_PHRASES[err.status] ?? 'Error'}\r\ncontent-type: ${type}\r\ncontent-length: ${bytes.length}\r\nx-berth-error: ${err.code}\r\ncache-control: no-store\r\n${close ? 'connection: close\r\n' : ''}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), bytes]);
}
