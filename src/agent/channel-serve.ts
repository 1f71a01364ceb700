/**
 * The agent's end of the node channel: an HTTP/2 server on the channel's socket that answers each
 * stream with a call of this node's `NodeAccess` (channel-protocol.ts). Bytes are piped, never
 * framed again: stdin and a file arrive as request bodies, stdout, a file and a TCP stream leave as
 * response bodies, and HTTP/2's per-stream windows are the flow control. A stream the control plane
 * resets (its client went away) ends what it carried here: the follow, the process, the connection.
 */
import { createServer, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { Duplex, Readable, Writable } from 'node:stream';
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
  const listeners = new Map<string, PodListener>();
  let closed!: () => void;
  const done = new Promise<void>((r) => (closed = r));
  const session = new Promise<Http2Session>((resolve) => {
    server.once('session', (s: Http2Session) => {
      s.once('connect', () => s.setLocalWindowSize(SESSION_WINDOW));
      s.once('close', () => {
        for (const e of execs.values()) e.close();
        execs.clear();
        for (const l of listeners.values()) l.server.close();
        listeners.clear();
        closed();
      });
      s.on('error', (err) => log.debug({ err }, 'node channel session error'));
      resolve(s);
    });
  });
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    stream.on('error', () => undefined);
    const op = String(headers[':path'] ?? '').slice(1) as ChannelOp;
    handle(op, stream, headers, access, execs, listeners).catch((err: unknown) => {
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
    if (stream.destroyed) return resolve();
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

/**
 * Calls `fn` once when the caller is gone: the stream closed, or reset while we still write. A reset
 * with NO_ERROR after the request's body ended leaves Node's stream open (it waits for the response
 * to end, which a follow never does), so 'aborted' counts too, and the stream is destroyed then.
 */
function onGone(stream: ServerHttp2Stream, fn: () => void): void {
  let done = false;
  const gone = (): void => {
    if (done) return;
    done = true;
    fn();
    if (!stream.destroyed) stream.destroy();
  };
  stream.once('aborted', gone);
  stream.once('close', gone);
}

/** An AbortSignal that fires when the caller is gone (`onGone`). */
function closedSignal(stream: ServerHttp2Stream): AbortSignal {
  const ac = new AbortController();
  onGone(stream, () => ac.abort());
  return ac.signal;
}

async function handle(op: ChannelOp, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, access: NodeAccess, execs: Map<string, ExecStream>, listeners: Map<string, PodListener>): Promise<void> {
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
        while (!next.done && !signal.aborted && !stream.destroyed) {
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
      onGone(stream, () => socket.destroy());
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
      onGone(stream, () => void close().catch(() => undefined));
      stream.respond(OK);
      stream.resume();
      return;
    }
    case 'listen':
      return listen(decodeArgs<ChannelArgs['listen']>(raw), stream, access, listeners);
    case 'accept': {
      const l = listeners.get(decodeArgs<ChannelArgs['accept']>(raw).id);
      if (!l) throw new BerthError('NOT_FOUND', 'that listener is closed');
      const socket = l.pending.shift();
      if (socket) return carry(stream, socket);
      l.waiting.push(stream);
      onGone(stream, () => {
        const at = l.waiting.indexOf(stream);
        if (at >= 0) l.waiting.splice(at, 1);
      });
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
  onGone(stream, () => {
    execs.delete(a.id);
    exec.close();
  });
  stream.respond(OK, { waitForTrailers: true });
  stream.once('wantTrailers', () => {
    void exec.exitCode.then((code) => {
      if (!stream.closed) stream.sendTrailers({ [HEADER.exitCode]: String(code) });
    });
  });
  pipeGathered(stream, exec.stdin as Writable);
  const stdout = exec.stdout as Readable;
  stdout.pipe(stream, { end: false });
  stdout.once('end', () => {
    if (!stream.closed) stream.end();
  });
  stdout.once('error', (err) => stream.destroy(err));
}

/**
 * Pipes a request body into a process's stdin with the writes of one turn of the event loop
 * gathered (cork, then writev): one system call into Docker for what one read of the channel
 * brought, not one per HTTP/2 DATA frame, as the SFTP gateway gathers its writes on a local node.
 */
/** What may wait for a process's stdin before the stream into it is paused (the SFTP gateway's mark). */
const GATHER_HIGH = 2 ** 20;

function pipeGathered(from: ServerHttp2Stream, to: Writable): void {
  let corked = false;
  const onData = (chunk: Buffer): void => {
    if (to.destroyed) return;
    if (!corked) {
      corked = true;
      to.cork();
      setImmediate(() => {
        corked = false;
        to.uncork();
      });
    }
    // Past a socket's 16 KiB mark, not at it: a turn's chunks are gathered, not one per drain.
    to.write(chunk);
    if (to.writableLength > GATHER_HIGH) from.pause();
  };
  from.on('data', onData);
  to.on('drain', () => from.resume());
  from.once('end', () => {
    if (!to.destroyed) to.end();
  });
  // A stdin gone (the process ended) takes nothing more: the rest of the body is read and dropped.
  to.once('close', () => from.resume());
}

/** A listener on the node for a pod (ssh -R): connections wait for an `accept` stream to carry them. */
interface PodListener {
  server: TcpServer;
  pending: Socket[];
  waiting: ServerHttp2Stream[];
}

/** Answers an `accept` with the connection and pipes both ways; half-closes cross, as for `connect`. */
function carry(stream: ServerHttp2Stream, socket: Socket): void {
  if (stream.closed) return void socket.destroy();
  stream.respond({ ...OK, [HEADER.from]: `${socket.remoteAddress ?? ''}:${socket.remotePort ?? 0}` });
  stream.pipe(socket);
  socket.pipe(stream);
  socket.resume();
  socket.on('error', (err) => stream.destroy(err));
  onGone(stream, () => socket.destroy());
}

/**
 * Listens where the pod reaches the node (its network's gateway), opens the node's firewall to the
 * pod for it, and holds both as long as the `listen` stream is open. The control plane keeps an
 * `accept` stream waiting, so a connection is carried as soon as it comes.
 */
async function listen(a: ChannelArgs['listen'], stream: ServerHttp2Stream, access: NodeAccess, listeners: Map<string, PodListener>): Promise<void> {
  const address = await access.hostAddress(a.instanceId as InstanceId);
  const l: PodListener = { server: createTcpServer({ noDelay: true }), pending: [], waiting: [] };
  l.server.on('connection', (socket) => {
    socket.on('error', () => undefined);
    const waiting = l.waiting.shift();
    if (waiting) return carry(waiting, socket);
    socket.pause();
    l.pending.push(socket);
  });
  await new Promise<void>((resolve, reject) => {
    l.server.once('error', (err) => reject(new BerthError('CONFLICT', `the node cannot listen on ${address}:${a.port}: ${err.message}`, { cause: err })));
    l.server.listen(a.port, address, () => resolve());
  });
  const port = (l.server.address() as { port: number }).port;
  let closeHole: () => Promise<void> = async () => undefined;
  try {
    closeHole = (await access.openToPod?.(a.instanceId as InstanceId, address, port)) ?? closeHole;
  } catch (err) {
    l.server.close();
    throw err;
  }
  const close = (): void => {
    listeners.delete(a.id);
    l.server.close();
    for (const s of l.pending) s.destroy();
    for (const w of l.waiting) w.destroy();
    void closeHole().catch(() => undefined);
  };
  if (stream.closed) return close();
  listeners.set(a.id, l);
  onGone(stream, close);
  stream.respond({ ...OK, [HEADER.address]: address, [HEADER.port]: String(port) });
  stream.resume();
}
