/**
 * The agent's end of the node channel: an HTTP/2 server on the channel's socket that answers each
 * stream with a call of this node's `NodeAccess` (channel-protocol.ts). Bytes are piped, never
 * framed again: stdin and a file arrive as request bodies, stdout, a file and a TCP stream leave as
 * response bodies, and HTTP/2's per-stream windows are the flow control. A stream the control plane
 * resets (its client went away) ends what it carried here: the follow, the process, the connection.
 */
import { createServer, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import type { Logger } from 'pino';
import type { ExecStream, NodeAccess } from '../control/agent-protocol.js';
import { CHANNEL_SETTINGS, decodeArgs, errorHeaders, HEADER, MAX_SEND_HEADER_BLOCK, MAX_SESSION_MEMORY_MB, SESSION_WINDOW, type ChannelArgs, type ChannelOp } from '../control/channel-protocol.js';
import { BerthError, type InstanceId } from '../model/index.js';

const OK = { ':status': 200 } as const;

/** Serves `access` on `socket` until either ends; resolves when the session has closed. */
export function serveNodeAccess(socket: Duplex, access: NodeAccess, log: Logger): { session: Promise<Http2Session>; closed: Promise<void> } {
  const server = createServer({ settings: CHANNEL_SETTINGS, maxSessionMemory: MAX_SESSION_MEMORY_MB, maxSendHeaderBlockLength: MAX_SEND_HEADER_BLOCK });
  const execs = new Map<string, ExecStream>();
  let closed!: () => void;
  const done = new Promise<void>((r) => (closed = r));
  const session = new Promise<Http2Session>((resolve) => {
    server.once('session', (s: Http2Session) => {
      s.once('connect', () => s.setLocalWindowSize(SESSION_WINDOW));
      s.once('close', () => {
        for (const e of execs.values()) e.close();
        execs.clear();
        closed();
      });
      s.on('error', (err) => log.debug({ err }, 'node channel session error'));
      resolve(s);
    });
  });
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    stream.on('error', () => undefined);
    const op = String(headers[':path'] ?? '').slice(1) as ChannelOp;
    handle(op, stream, headers, access, execs).catch((err: unknown) => {
      if (!(err instanceof BerthError)) log.warn({ err, op }, 'node channel call failed');
      fail(stream, err);
    });
  });
  server.emit('connection', socket);
  return { session, closed: done };
}

/** Answers with the error when nothing was sent yet, else resets the stream: the caller sees the failure either way. */
function fail(stream: ServerHttp2Stream, err: unknown): void {
  if (stream.destroyed || stream.closed) return;
  if (!stream.headersSent) {
    stream.respond(errorHeaders(err), { endStream: true });
  } else {
    // destroy(), not close(code): Node sends no RST_STREAM for close() while the request's side is open.
    stream.destroy(err instanceof Error ? err : new Error(String(err)));
  }
}

function drained(stream: ServerHttp2Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

function json(stream: ServerHttp2Stream, value: unknown): void {
  stream.respond({ ...OK, 'content-type': 'application/json' });
  stream.end(JSON.stringify(value));
}

/** An AbortSignal that fires when the stream is closed or reset before it ended. */
function closedSignal(stream: ServerHttp2Stream): AbortSignal {
  const ac = new AbortController();
  stream.once('close', () => ac.abort());
  return ac.signal;
}

async function handle(op: ChannelOp, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, access: NodeAccess, execs: Map<string, ExecStream>): Promise<void> {
  const raw = headers;
  switch (op) {
    case 'logs': {
      const a = decodeArgs<ChannelArgs['logs']>(raw);
      const signal = closedSignal(stream);
      const lines = access.logs(a.instanceId as InstanceId, a.container, a.opts, signal)[Symbol.asyncIterator]();
      // The first line (or the end) before answering: a missing container is an error status, not an empty body.
      let next = await lines.next();
      stream.respond({ ...OK, 'content-type': 'application/x-ndjson' });
      try {
        while (!next.done && !signal.aborted) {
          if (!stream.write(`${JSON.stringify(next.value)}\n`)) await drained(stream);
          next = await lines.next();
        }
      } finally {
        // Ends the follow here: the runtime's stops on the signal too, any other source on return().
        await lines.return?.(undefined);
      }
      if (!stream.closed) stream.end();
      return;
    }
    case 'exec': {
      const a = decodeArgs<ChannelArgs['exec']>(raw);
      return json(stream, await access.exec(a.instanceId as InstanceId, a.container, a.argv, a.timeoutMs));
    }
    case 'open-exec':
      return openExec(decodeArgs<ChannelArgs['open-exec']>(raw), stream, access, execs);
    case 'exec-stderr': {
      const a = decodeArgs<ChannelArgs['exec-stderr']>(raw);
      const exec = execs.get(a.id);
      stream.respond(OK);
      if (!exec) return void stream.end();
      pipeline(exec.stderr as Readable, stream, () => undefined);
      return;
    }
    case 'exec-resize': {
      const a = decodeArgs<ChannelArgs['exec-resize']>(raw);
      await execs.get(a.id)?.resize(a.cols, a.rows);
      return json(stream, {});
    }
    case 'connect': {
      const a = decodeArgs<ChannelArgs['connect']>(raw);
      const socket = await access.connect(a.instanceId as InstanceId, a.port);
      if (stream.closed) return void socket.destroy();
      stream.respond(OK);
      // Half-closes cross: the caller's end of writing ends the socket's, and the pod's end ends the response.
      stream.pipe(socket);
      socket.pipe(stream);
      socket.on('error', (err) => stream.destroy(err));
      stream.once('close', () => socket.destroy());
      return;
    }
    case 'read-file': {
      const a = decodeArgs<ChannelArgs['read-file']>(raw);
      const signal = closedSignal(stream);
      const { size, content } = await access.readFile(a.instanceId as InstanceId, a.container, a.path, signal);
      if (stream.closed) return void content.destroy();
      stream.respond({ ...OK, [HEADER.size]: String(size) });
      pipeline(content, stream, () => undefined);
      return;
    }
    case 'write-file': {
      const a = decodeArgs<ChannelArgs['write-file']>(raw);
      await access.writeFile(a.instanceId as InstanceId, a.container, a.path, stream, a.size, a.mode);
      return json(stream, {});
    }
    case 'stat-file': {
      const a = decodeArgs<ChannelArgs['stat-file']>(raw);
      return json(stream, await access.statFile(a.instanceId as InstanceId, a.container, a.path));
    }
    case 'host-address': {
      const a = decodeArgs<ChannelArgs['host-address']>(raw);
      return json(stream, { address: await access.hostAddress(a.instanceId as InstanceId) });
    }
    case 'open-to-pod': {
      // Held open as long as the hole is: the caller closes the stream to close it, as does a lost channel.
      const a = decodeArgs<ChannelArgs['open-to-pod']>(raw);
      const close = (await access.openToPod?.(a.instanceId as InstanceId, a.address, a.port)) ?? (async () => undefined);
      if (stream.closed) return void (await close());
      stream.once('close', () => void close().catch(() => undefined));
      stream.respond(OK);
      stream.resume();
      return;
    }
    default:
      throw new BerthError('NOT_FOUND', `the node knows no channel call ${JSON.stringify(op)}; is the agent older than the server?`);
  }
}

/**
 * A process with its stdin attached: the request body is its stdin (its end is EOF), the response
 * body its stdout, its exit code a trailer after the last byte. Its stderr, when it has one apart,
 * is a stream of its own (`exec-stderr`), so neither output is framed inside the other.
 */
async function openExec(a: ChannelArgs['open-exec'], stream: ServerHttp2Stream, access: NodeAccess, execs: Map<string, ExecStream>): Promise<void> {
  const exec = await access.openExec(a.instanceId as InstanceId, a.container, { argv: a.argv, tty: a.tty, ...(a.env ? { env: a.env } : {}), ...(a.cols ? { cols: a.cols } : {}), ...(a.rows ? { rows: a.rows } : {}) });
  if (stream.closed) return void exec.close();
  execs.set(a.id, exec);
  stream.once('close', () => {
    execs.delete(a.id);
    exec.close();
  });
  stream.respond(OK, { waitForTrailers: true });
  stream.once('wantTrailers', () => {
    void exec.exitCode.then((code) => {
      if (!stream.closed) stream.sendTrailers({ [HEADER.exitCode]: String(code) });
    });
  });
  stream.pipe(exec.stdin as NodeJS.WritableStream);
  const stdout = exec.stdout as Readable;
  stdout.pipe(stream, { end: false });
  stdout.once('end', () => {
    if (!stream.closed) stream.end();
  });
  stdout.once('error', (err) => stream.destroy(err));
}
