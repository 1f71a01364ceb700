/**
 * The fast path's keep-alive connections to pods' published ports, per origin: each reads into a
 * buffer of its own and tells the client connection that owns it (for one exchange) what came.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { dialRelay, relayAnswer, type RelayAddress } from './channel.js';
import type { IdleClock, Sweepable } from './idle-clock.js';
import type { Upstream } from './routes.js';

/** An idle pooled connection to a pod is closed after this long. */
const UPSTREAM_KEEP_ALIVE_MS = 60_000;
/** A pod connection not accepted this soon fails the request with 502. */
const CONNECT_TIMEOUT_MS = 10_000;
const MAX_IDLE_PER_ORIGIN = 256;
/** Each connection with a buffer of its own (pod connections, clients passed as handles) reads this much at most. */
export const READ_BYTES = 32 * 1024;

/** The client connection a pooled connection serves for the length of one exchange. */
export interface UpstreamOwner {
  onUpstreamData(chunk: Buffer): void;
  onUpstreamEnd(): void;
  onUpstreamDrain(): void;
  onUpstreamClosed(conn: UpstreamConn, err: Error | undefined): void;
  onUpstreamTimeout(): void;
}

/**
 * One pooled connection to a pod's published port; its listeners are installed once. It reads
 * into a buffer of its own (net's `onread`): no allocation and no stream machinery per read. The
 * bytes handed to the owner are only good until the next read, unless the owner lets go of the
 * buffer (`lend`) because a write still holds them.
 */
export class UpstreamConn implements Sweepable {
  owner: UpstreamOwner | undefined;
  /** The clock tick of the last read or write. */
  seen: number;
  /** It served a request before: a failure before any answer may be the pod closing an idle connection. */
  reused = false;
  readonly socket: Socket;
  private error: Error | undefined;
  private buffer = Buffer.allocUnsafeSlow(READ_BYTES);
  /** Through the channel relay: the relay's answer line (or its start) is still to come. */
  private answer: string | undefined;

  constructor(
    readonly origin: string,
    u: Upstream,
    private readonly pool: UpstreamPool,
  ) {
    const onread = {
      buffer: () => this.buffer,
      callback: (n: number, buf: Uint8Array): boolean => {
        this.seen = pool.clock.tick;
        let bytes = (buf as Buffer).subarray(0, n);
        if (this.answer !== undefined) {
          const before = this.answer.length;
          this.answer += bytes.toString('latin1');
          const a = relayAnswer(this.answer);
          if (!a) return true;
          this.answer = undefined;
          if (!a.ok) {
            this.error = a.err;
            socket.destroy();
            return true;
          }
          bytes = bytes.subarray(a.end - before);
          if (bytes.length === 0) return true;
        }
        if (this.owner) this.owner.onUpstreamData(bytes);
        else socket.destroy(); // nothing is asked of an idle connection: bytes now are garbage
        return true;
      },
    };
    if (u.via === 'channel') {
      if (!pool.relay) throw new Error('the proxy has no channel relay, yet a route goes through one');
      this.answer = '';
    }
    const socket = u.via === 'channel' ? dialRelay(pool.relay!, u, onread) : tcpConnect({ host: u.host, port: u.port, noDelay: true, onread });
    this.socket = socket;
    this.seen = pool.clock.tick;
    pool.clock.add(this);
    socket.on('end', () => this.owner?.onUpstreamEnd());
    socket.on('drain', () => this.owner?.onUpstreamDrain());
    socket.on('error', (err) => {
      this.error = err;
    });
    socket.on('close', () => {
      pool.clock.delete(this);
      pool.forget(this);
      const owner = this.owner;
      this.owner = undefined;
      owner?.onUpstreamClosed(this, this.error);
    });
  }

  /** Writes, noting the activity. */
  write(data: Buffer | string): boolean {
    this.seen = this.pool.clock.tick;
    return typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data);
  }

  /** Idle in the pool past its keep-alive, or silent past the idle limit in the middle of an exchange. */
  sweep(tick: number): void {
    const idle = tick - this.seen;
    if (this.socket.connecting || this.answer !== undefined) {
      // As undici's connectTimeout did: a pod address that swallows the connection gets a 502.
      if (idle > this.pool.connectTicks) this.socket.destroy(new Error(`the connection was not accepted within ${CONNECT_TIMEOUT_MS / 1000} s`));
      return;
    }
    if (!this.owner) {
      if (idle > this.pool.idleTicks) this.socket.destroy();
    } else if (this.pool.idleMs > 0 && idle > this.pool.idleTicks) this.owner.onUpstreamTimeout();
  }

  /** A write still holds the bytes last read: the next read goes into a new buffer. */
  lend(): void {
    this.buffer = Buffer.allocUnsafeSlow(READ_BYTES);
  }

  destroy(): void {
    this.owner = undefined;
    this.socket.destroy();
  }
}

/** Keep-alive connections to pods, per origin, most recently used first. */
export class UpstreamPool {
  private readonly idle = new Map<string, UpstreamConn[]>();
  private closed = false;

  /** Ticks after which a connection is idle too long: the idle limit, else the pool's keep-alive. */
  readonly idleTicks: number;
  readonly connectTicks: number;

  constructor(
    readonly idleMs: number,
    readonly clock: IdleClock,
    /** Where channel upstreams are dialled (channel.ts); absent: the routes have none. */
    readonly relay?: RelayAddress,
  ) {
    this.idleTicks = clock.ticks(idleMs > 0 ? idleMs : UPSTREAM_KEEP_ALIVE_MS);
    this.connectTicks = clock.ticks(CONNECT_TIMEOUT_MS);
  }

  acquire(u: Upstream): UpstreamConn {
    const list = this.idle.get(u.origin);
    while (list && list.length > 0) {
      const c = list.pop()!;
      if (!c.socket.destroyed && c.socket.writable) {
        c.reused = true;
        return c;
      }
      c.destroy();
    }
    return this.connect(u);
  }

  connect(u: Upstream): UpstreamConn {
    return new UpstreamConn(u.origin, u, this);
  }

  release(c: UpstreamConn): void {
    c.owner = undefined;
    if (this.closed || c.socket.destroyed || !c.socket.writable) return c.destroy();
    let list = this.idle.get(c.origin);
    if (!list) this.idle.set(c.origin, (list = []));
    list.push(c);
    if (list.length > MAX_IDLE_PER_ORIGIN) list.shift()!.destroy();
  }

  forget(c: UpstreamConn): void {
    const list = this.idle.get(c.origin);
    if (!list) return;
    const i = list.indexOf(c);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.idle.delete(c.origin);
  }

  /** Closes the idle connections to origins no route uses any more. */
  keepOnly(live: Set<string>): void {
    for (const [origin, list] of this.idle) {
      if (live.has(origin)) continue;
      this.idle.delete(origin);
      for (const c of list) c.destroy();
    }
  }

  close(): void {
    this.closed = true;
    for (const list of this.idle.values()) for (const c of list) c.destroy();
    this.idle.clear();
  }
}
