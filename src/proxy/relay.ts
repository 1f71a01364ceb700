/**
 * What the full path sends back to the client: an upstream response streamed as it comes
 * (ResponseRelay), a pod port that failed said in words (`unanswered`, `upstreamFailure`), and the
 * proxy's own refusals (ProxyError) as problem+json, or as raw HTTP text on an upgrade's socket.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { BerthError } from '../model/index.js';
import { errorBody, NO_ANSWER, type Target } from './fast-path.js';
import { proxyCounts } from './counters.js';

/** Hop-by-hop headers of a response (RFC 9110 §7.6.1): the client's connection has its own. */
const RESPONSE_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'trailer', 'upgrade']);

/** A refusal the proxy words itself; any other error it meets is answered as INTERNAL. */
export class ProxyError extends BerthError {}

/** Streams one upstream response to the client: undici's lowest-level handler, no intermediate streams. */
export class ResponseRelay implements Dispatcher.DispatchHandlers {
  private abort: ((err?: Error) => void) | undefined;
  private resume: (() => void) | undefined;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly target: Target,
    private readonly log: Logger,
    /** Sends the request again, where that does no harm: for a connection that closed before any answer. */
    private again?: () => void,
  ) {
    res.once('close', () => {
      if (!res.writableFinished) this.abort?.(new Error('the client went away'));
    });
    res.on('drain', () => this.resume?.());
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abort = abort;
    if (this.res.destroyed) abort(new Error('the client went away'));
  }

  onHeaders(status: number, rawHeaders: Buffer[] | string[] | null, resume: () => void, statusText: string): boolean {
    this.resume = resume;
    const headers: string[] = [];
    let sized = false;
    if (rawHeaders) {
      for (let i = 0; i < rawHeaders.length; i += 2) {
        const name = rawHeaders[i]!.toString();
        const lower = name.toLowerCase();
        if (RESPONSE_HOP.has(lower)) continue;
        if (lower === 'content-length') sized = true;
        headers.push(name, rawHeaders[i + 1]!.toString('latin1'));
      }
    }
    if (status < 200) return true;
    this.res.writeHead(status, statusText || undefined, headers);
    // A response of unknown length (an event stream, a long download) gets its head now rather than
    // with its first chunk; one with a length goes out head and body in one write.
    if (!sized) this.res.flushHeaders();
    return true;
  }

  onData(chunk: Buffer): boolean {
    return this.res.write(chunk);
  }

  onComplete(): void {
    this.res.end();
  }

  onError(err: Error): void {
    if (this.res.headersSent) {
      this.res.destroy();
      return;
    }
    if (this.res.destroyed) return;
    const again = this.again;
    this.again = undefined;
    if (again && (err as { code?: string }).code === 'UND_ERR_SOCKET') return again();
    proxyCounts.upstreamErrors++;
    this.log.debug({ err, upstream: this.target.upstream.origin }, 'upstream failed');
    this.req.resume();
    const timeout = (err as { code?: string }).code === 'UND_ERR_HEADERS_TIMEOUT';
    sendError(this.req, this.res, new ProxyError(timeout ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_FAILED', upstreamFailure(this.target, err)));
  }
}

/**
 * How a connection to a pod's port gave no answer at all, when that is what happened: refused (no
 * listener and no port forwarding in between), or reset or closed before a byte came back (Docker's
 * port forwarding accepts the connection, then drops it when nothing listens in the pod).
 */
export function unanswered(err: Error & { code?: string; socket?: { bytesRead?: number } }): string | undefined {
  const code = err.code ?? (err.cause as { code?: string } | undefined)?.code;
  if (code === 'ECONNREFUSED') return 'the connection was refused';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'the connection was reset';
  if (code === NO_ANSWER || (code === 'UND_ERR_SOCKET' && !err.socket?.bytesRead)) return 'the connection was closed before an answer';
  return undefined;
}

export function upstreamFailure(target: Target, err: Error & { code?: string }): string {
  const where = `port ${target.port.port} of pod ${target.route.podId}`;
  const silent = unanswered(err);
  if (silent) return `nothing answers on ${where}: is the server in the pod listening on 0.0.0.0:${target.port.port}? (${silent})`;
  if (err.code === 'UND_ERR_HEADERS_TIMEOUT') return `${where} did not answer in time`;
  return `${where} failed to answer: ${err.message}`;
}

export function sendError(req: IncomingMessage, res: ServerResponse, err: BerthError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const { type, body } = errorBody(err, req.headers.accept ?? '');
  res.writeHead(err.status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'x-berth-error': err.code,
    'cache-control': 'no-store',
  });
  res.end(body);
}

/** The refusal of a WebSocket upgrade, always as text: the socket is not an HTTP response. */
export function rawAnswer(socket: Duplex, err: BerthError): void {
  if (!socket.writable) return void socket.destroy();
  const { status } = err;
  const { type, body } = errorBody(err, '');
  socket.end(`HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : status === 401 ? 'Unauthorized' : status === 503 ? 'Service Unavailable' : status === 502 ? 'Bad Gateway' : 'Error'}\r\ncontent-type: ${type}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-berth-error: ${err.code}\r\nconnection: close\r\n\r\n${body}`);
}
