/**
 * Server-sent events (text/event-stream), the one writer for every stream the API serves: the
 * native API's logs and pod events, RunPod's log stream and Marathon's event bus.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';

export interface SseOptions {
  /** @default 'text/event-stream; charset=utf-8' */
  contentType?: string;
  /** A comment written with the head, so a client sees the stream open before the first event; without one the head alone is sent at once. */
  hello?: string;
  /** How often a comment is written to keep proxies from closing a quiet stream. @default 15_000 */
  keepAliveMs?: number;
  /** The keep-alive comment's text; '' writes a bare `:`. @default 'ping' */
  keepAlive?: string;
}

export interface SseEvent {
  event?: string;
  id?: string | number;
  /** A string is sent as it is, one `data:` line per line; anything else as JSON. */
  data: unknown;
}

/** One event in the wire format: `id:`, `event:`, then a `data:` line per line of the data, and a blank line. */
export function sseFrame(e: SseEvent): string {
  const data = typeof e.data === 'string' ? e.data : JSON.stringify(e.data);
  let out = e.id !== undefined ? `id: ${e.id}\n` : '';
  if (e.event !== undefined) out += `event: ${e.event}\n`;
  for (const line of data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return `${out}\n`;
}

/** A comment line, which clients ignore: `: text`, or a bare `:` for ''. */
export const sseComment = (text: string): string => (text ? `: ${text}\n\n` : ':\n\n');

/** An open event stream on a response: events in, keep-alive comments meanwhile, `closed` once the client goes away. */
export class SseStream {
  private readonly ac = new AbortController();
  private readonly ping: NodeJS.Timeout;
  /** Aborted when the response closes: the client went away, or `end()`. */
  readonly closed: AbortSignal = this.ac.signal;

  constructor(
    private readonly res: ServerResponse,
    opts: SseOptions = {},
  ) {
    res.writeHead(200, { 'content-type': opts.contentType ?? 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    if (opts.hello !== undefined) res.write(sseComment(opts.hello));
    else res.flushHeaders();
    const keepAlive = sseComment(opts.keepAlive ?? 'ping');
    this.ping = setInterval(() => res.write(keepAlive), opts.keepAliveMs ?? 15_000);
    this.ping.unref();
    res.on('close', () => {
      clearInterval(this.ping);
      this.ac.abort();
    });
  }

  /** Writes one event; false once the stream is closed (or while the client reads slower than we write). */
  send(e: SseEvent): boolean {
    if (this.closed.aborted || this.res.writableEnded) return false;
    return this.res.write(sseFrame(e));
  }

  end(): void {
    clearInterval(this.ping);
    this.res.end();
  }
}

/** Takes a reply from Fastify (which no longer manages it) and starts an event stream on it. */
export function openSse(reply: FastifyReply, opts: SseOptions = {}): SseStream {
  reply.hijack();
  return new SseStream(reply.raw, opts);
}
