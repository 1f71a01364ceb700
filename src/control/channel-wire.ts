/**
 * The node channel's byte pipe: the agent's `GET /api/v1/agent/channel` upgraded, HTTP/1.1 style, to
 * `berth-node-channel/1` (101 Switching Protocols), after which HTTP/2 runs straight on the TCP (or
 * TLS) socket: nghttp2 then reads and writes the socket itself, no byte passes through JavaScript on
 * the way. Here: both sides of that handshake, and the HTTP/2 PINGs that tell either end the other
 * is gone. Both ends use it (the agent dials, the API accepts).
 */
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import type { Http2Session } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { CHANNEL_UPGRADE } from './channel-protocol.js';

/** The answer that hands the socket over; nothing else is written on it in HTTP/1.1. */
const SWITCHING = `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${CHANNEL_UPGRADE}\r\n\r\n`;

/**
 * Gets a socket ready for HTTP/2 once the handshake is over: what was read past the handshake goes
 * back into the socket (HTTP/2 reads it from there first), writes are not held back by Nagle's
 * algorithm (a terminal's keystrokes), and no idle timeout of the HTTP server is left on it.
 */
function prepare(socket: Socket, head: Buffer | undefined): Socket {
  socket.setNoDelay(true);
  socket.setTimeout(0);
  socket.setKeepAlive(true, 10_000);
  if (head?.length) socket.unshift(head);
  // The TLS socket still says it speaks HTTP/1.1 (ALPN): it does not any more. Node's HTTP/2 server
  // refuses a TLS socket whose ALPN is not h2 (its HTTP/1.1 fallback), so it is told.
  if ('alpnProtocol' in socket) (socket as Socket & { alpnProtocol: string | false }).alpnProtocol = 'h2';
  // A failed socket is seen by the session on it as its close; the error itself must not go unheard.
  socket.on('error', () => undefined);
  return socket;
}

/**
 * The server's side: answers an authenticated upgrade request with 101 and resolves with the socket,
 * ready for HTTP/2, once that answer is written: a TLS socket handed to HTTP/2 with a write of its
 * own still under way aborts Node (nghttp2 is told of a write it did not make).
 */
export function acceptUpgrade(socket: Duplex, head: Buffer | undefined): Promise<Socket> {
  return new Promise((resolve, reject) => {
    socket.write(SWITCHING, (err) => (err ? reject(err) : resolve(prepare(socket as Socket, head))));
  });
}

/** The server refused the upgrade: its status and its problem's detail, if it sent one. */
export class ChannelRefused extends Error {
  constructor(
    readonly status: number,
    detail: string,
  ) {
    super(`the server refused the node channel: ${status}${detail ? ` ${detail}` : ''}`);
    this.name = 'ChannelRefused';
  }
}

export interface DialUpgradeOptions {
  /** `Authorization` header value. */
  authorization: string;
  /** An already connected socket to send the request on (a pinned TLS connection). */
  socket?: Duplex;
  /** @default 10000 */
  timeoutMs?: number;
}

/** The agent's side: asks `url` for the upgrade and resolves with the socket once the server answered 101, ready for HTTP/2. */
export function dialUpgrade(url: string, opts: DialUpgradeOptions): Promise<Socket> {
  const target = new URL(url);
  const request = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req: ClientRequest = request(target, {
      method: 'GET',
      headers: { connection: 'Upgrade', upgrade: CHANNEL_UPGRADE, authorization: opts.authorization },
      // No agent: its own connect would be used instead of the socket given (and nothing is pooled).
      ...(opts.socket ? { createConnection: () => opts.socket as Socket } : { agent: false }),
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer to the node channel's upgrade in ${(opts.timeoutMs ?? 10_000) / 1000}s`)), opts.timeoutMs ?? 10_000);
    req.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.once('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => {
      clearTimeout(timer);
      if (String(res.headers.upgrade ?? '').toLowerCase() !== CHANNEL_UPGRADE) {
        socket.destroy();
        return reject(new ChannelRefused(101, `switched to ${String(res.headers.upgrade)}, not ${CHANNEL_UPGRADE}`));
      }
      // As on the server: HTTP/2 takes the socket only once the request's own write is done.
      if (req.writableFinished) resolve(prepare(socket, head));
      else req.once('finish', () => resolve(prepare(socket, head)));
    });
    req.once('response', (res: IncomingMessage) => {
      clearTimeout(timer);
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => void (body.length < 4000 ? (body += d) : undefined));
      res.once('end', () => {
        let detail = body.slice(0, 500);
        try {
          const problem = JSON.parse(body) as { detail?: string; message?: string };
          detail = problem.detail ?? problem.message ?? detail;
        } catch {
          // Not a problem document: its text.
        }
        reject(new ChannelRefused(res.statusCode ?? 0, detail));
      });
      res.once('error', (err) => reject(err));
    });
    req.end();
  });
}

/**
 * HTTP/2 PINGs every `intervalMs`; a session that has heard nothing (no ack, no byte on its socket)
 * for two intervals is destroyed with its socket, so a cut network ends in a `close` rather than a
 * channel that hangs. A busy socket counts as heard: a ping's ack may queue behind a full window of
 * data. Returns the function that stops it.
 */
export function keepAlive(session: Http2Session, socket: Socket, intervalMs: number): () => void {
  let heard = Date.now();
  let bytes = socket.bytesRead;
  let waiting = false;
  const timer = setInterval(() => {
    if (socket.bytesRead !== bytes) {
      bytes = socket.bytesRead;
      heard = Date.now();
    }
    if (Date.now() - heard > 2 * intervalMs) {
      stop();
      session.destroy();
      socket.destroy();
      return;
    }
    if (waiting || session.destroyed || session.closed) return;
    try {
      waiting = session.ping((err) => {
        waiting = false;
        if (!err) heard = Date.now();
      });
    } catch {
      waiting = false;
    }
  }, intervalMs);
  timer.unref();
  const stop = (): void => clearInterval(timer);
  session.once('close', stop);
  return stop;
}
