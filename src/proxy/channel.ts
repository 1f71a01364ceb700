/**
 * The proxy's way to pods through their node's NodeAccess (`--node-connect channel`, and `auto`
 * for remote nodes). NodeAccess lives in the server process, next to the agents' channels; the
 * proxy's workers are other processes. So the server runs a relay on a unix socket of its own
 * (a 0700 directory, and a per-process secret besides): a worker dials it, says in one line which
 * node, instance and port it wants, and from then on the socket is a TCP connection to that port
 * in the pod. The engine in the server process (`--proxy-workers 0`) dials the same relay: one path.
 *
 * The pool keeps these connections alive per (instance, port) like any other upstream, so the
 * line, the lookup and NodeAccess.connect are paid once per connection, not per request; a request
 * costs one more copy, in the server process, which the channel pays anyway (it lives there).
 *
 * Protocol: the dialer sends `BERTH-RELAY1 <secret> <nodeId> <instanceId> <port>\n` and may send the
 * request at once, without waiting; the relay answers `ok\n` and then the pod's bytes, or
 * `err <code> <message>\n` and closes (`code` is the errno of the connection in the pod where there
 * was one, ECONNREFUSED for nothing listening, else the Berth error code).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect as netConnect, type IpcNetConnectOpts, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { NodeAccess } from '../control/agent-protocol.js';
import type { InstanceId, NodeId } from '../model/index.js';
import type { Upstream } from './routes.js';

/** Where the relay listens and the secret that opens it: what a worker is told. */
export interface RelayAddress {
  path: string;
  secret: string;
}

/** The node's NodeAccess; throws (NODE_UNAVAILABLE) for a node with no agent connected. */
export type NodeAccessOf = (nodeId: NodeId) => NodeAccess;

const MAGIC = 'BERTH-RELAY1';

/** net's `onread`: reads go into the caller's own buffer. */
export interface OnRead {
  buffer: () => Uint8Array;
  callback: (n: number, buf: Uint8Array) => boolean;
}
const MAX_LINE = 512;
/** A connection into the pod not made this soon is answered as a failure (as a direct connect times out). */
const CONNECT_TIMEOUT_MS = 10_000;

/** The failure a relay reported, shaped as a socket error so the proxy words it as it words a direct one's. */
export function relayError(line: string): Error & { code: string } {
  const m = /^err (\S+) ?(.*)$/.exec(line);
  return Object.assign(new Error(m?.[2] || `the channel relay answered "${line.slice(0, 100)}"`), { code: m?.[1] ?? 'EPROTO' });
}

/** The relay's answer line, when `text` holds it: `ok` (and where the pod's bytes start), or the failure. */
export function relayAnswer(text: string): { ok: true; end: number } | { ok: false; err: Error } | undefined {
  const nl = text.indexOf('\n');
  if (nl < 0) return text.length > MAX_LINE ? { ok: false, err: relayError(text) } : undefined;
  const line = text.slice(0, nl);
  return line === 'ok' ? { ok: true, end: nl + 1 } : { ok: false, err: relayError(line) };
}

/**
 * Dials the relay for `u` and sends the request line; the answer line comes first on the socket.
 * `onread` as net.connect takes it (the fast path reads into a buffer of its own).
 */
export function dialRelay(relay: RelayAddress, u: Upstream, onread?: OnRead): Socket {
  const socket = netConnect({ path: relay.path, ...(onread ? { onread } : {}) } as IpcNetConnectOpts);
  socket.write(`${MAGIC} ${relay.secret} ${u.host} ${u.instanceId} ${u.port}\n`, 'latin1');
  return socket;
}

/**
 * A relay socket once its answer came: resolves when the pod's bytes follow (the socket paused,
 * those already read put back), rejects with the failure (the caller destroys the socket). For the full path and upgrades, whose
 * readers take a plain socket.
 */
export function relayReady(socket: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      const a = relayAnswer(text);
      if (!a) return;
      done();
      // The caller destroys the socket: its close must not come before the reason is known.
      if (!a.ok) return reject(a.err);
      socket.pause();
      const rest = Buffer.from(text.slice(a.end), 'latin1');
      if (rest.length > 0) socket.unshift(rest);
      resolve();
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    const onClose = (): void => {
      done();
      reject(Object.assign(new Error('the channel relay closed the connection'), { code: 'ECONNRESET' }));
    };
    const done = (): void => {
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('close', onClose);
  });
}

/** The server process's end: takes relay connections and joins each to NodeAccess.connect. */
export class ChannelRelay {
  private readonly streams = new Set<Duplex>();
  /** Every relay connection, joined or not: a close must not wait on one (half-open is allowed, so a peer that never ends keeps it). */
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    private readonly dir: string,
    readonly address: RelayAddress,
    private readonly accessOf: NodeAccessOf,
    private readonly log: Logger,
  ) {
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      this.take(socket);
    });
    server.on('error', (err) => log.warn({ err }, 'the proxy channel relay failed'));
  }

  static async start(accessOf: NodeAccessOf, log: Logger): Promise<ChannelRelay> {
    const dir = await mkdtemp(join(tmpdir(), 'berth-proxy-'));
    const address: RelayAddress = { path: join(dir, 'relay.sock'), secret: randomBytes(24).toString('hex') };
    // Half-open allowed: a dialler that ends its side (a client done sending) still gets the rest of the pod's answer.
    const server = createServer({ noDelay: true, allowHalfOpen: true });
    const relay = new ChannelRelay(server, dir, address, accessOf, log);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(address.path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    return relay;
  }

  /** Connections into pods open through the relay now. */
  get open(): number {
    return this.streams.size;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.streams) s.destroy();
    this.streams.clear();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await closed;
    await rm(this.dir, { recursive: true, force: true });
  }

  private take(socket: Socket): void {
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      const nl = head.indexOf('\n');
      if (nl < 0) {
        if (head.length > MAX_LINE) socket.destroy();
        return;
      }
      socket.off('data', onData);
      socket.pause();
      const rest = Buffer.from(head.slice(nl + 1), 'latin1');
      this.open1(socket, head.slice(0, nl), rest);
    };
    socket.on('data', onData);
    socket.on('error', () => socket.destroy());
  }

  private open1(socket: Socket, line: string, rest: Buffer): void {
    const [magic, secret, nodeId, instanceId, portText] = line.split(' ');
    if (magic !== MAGIC || !secret || !sameSecret(secret, this.address.secret) || !nodeId || !instanceId || !/^\d{1,5}$/.test(portText ?? '')) return void socket.destroy();
    const fail = (err: unknown): void => {
      const e = err as Error & { code?: string; cause?: { code?: string } };
      const code = e.cause?.code ?? e.code ?? 'EFAIL';
      this.log.debug({ err, instanceId, port: portText }, 'no connection into the pod through its node');
      if (!socket.destroyed) socket.end(`err ${code} ${(e.message ?? String(err)).replace(/\s+/g, ' ')}\n`, 'latin1');
    };
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`the connection was not accepted within ${CONNECT_TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' })), CONNECT_TIMEOUT_MS);
    });
    let opening: Promise<Duplex>;
    try {
      opening = this.accessOf(nodeId as NodeId).connect(instanceId as InstanceId, Number(portText));
    } catch (err) {
      clearTimeout(timer);
      return fail(err);
    }
    Promise.race([opening, timedOut]).then(
      (stream) => {
        clearTimeout(timer);
        if (socket.destroyed) return void stream.destroy();
        this.join(socket, stream, rest);
      },
      (err: unknown) => {
        clearTimeout(timer);
        // A connection made after the deadline has nobody waiting for it.
        opening.then((s) => s.destroy(), () => undefined);
        fail(err);
      },
    );
  }

  /**
   * Joins the relay socket and the pod stream both ways: each chunk written straight on, the
   * reader paused while the writer is full (what pipe() does, with less machinery per chunk: every
   * proxied byte crosses here).
   */
  private join(socket: Socket, stream: Duplex, rest: Buffer): void {
    this.streams.add(stream);
    stream.on('error', () => stream.destroy());
    stream.once('close', () => {
      this.streams.delete(stream);
      // The pod's side ended: whatever was written goes first, then the connection closes.
      if (!socket.destroyed) socket.end();
    });
    socket.once('close', () => stream.destroy());
    socket.write('ok\n', 'latin1');
    if (rest.length > 0) stream.write(rest);
    stream.on('data', (chunk: Buffer) => {
      if (!socket.write(chunk)) stream.pause();
    });
    socket.on('drain', () => stream.resume());
    stream.once('end', () => socket.end());
    socket.on('data', (chunk: Buffer) => {
      if (!stream.write(chunk)) socket.pause();
    });
    stream.on('drain', () => socket.resume());
    socket.once('end', () => stream.end());
    socket.resume();
  }
}

function sameSecret(given: string, secret: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}
