/**
 * A remote node's `NodeAccess`, over its node channel: each call is an HTTP/2 stream to the agent
 * (channel-protocol.ts). What a caller gets back is the stream itself where it can be (a TCP
 * connection, a file's bytes, a process's stdin), so bytes are copied by nobody in between, and
 * destroying it resets the stream, which ends the work on the node.
 */
import { randomUUID } from 'node:crypto';
import { constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type IncomingHttpStatusHeader } from 'node:http2';
import { PassThrough, pipeline, type Duplex, type Readable } from 'node:stream';
import type { ExecRequest, ExecStream, NodeAccess } from '../control/agent-protocol.js';
import { encodeArgs, errorFromHeaders, HEADER, type ChannelArgs, type ChannelOp } from '../control/channel-protocol.js';
import { BerthError, type InstanceId, type NodeId, type PathStat } from '../model/index.js';

type Headers = IncomingHttpHeaders & IncomingHttpStatusHeader;

const ignore = (): void => undefined;

export class RemoteNodeAccess implements NodeAccess {
  constructor(
    private readonly session: ClientHttp2Session,
    private readonly nodeId: NodeId,
  ) {}

  private lost(detail: string, cause?: unknown): BerthError {
    return new BerthError('NODE_UNAVAILABLE', `node ${this.nodeId}: ${detail}`, cause ? { cause } : {});
  }

  private open<O extends ChannelOp>(op: O, args: ChannelArgs[O], endStream: boolean): ClientHttp2Stream {
    if (this.session.closed || this.session.destroyed) throw this.lost('its channel is closed');
    let stream: ClientHttp2Stream;
    try {
      stream = this.session.request({ ':method': 'POST', ':path': `/${op}`, ...encodeArgs(args) }, { endStream });
    } catch (err) {
      throw this.lost(`its channel refused a stream: ${(err as Error).message}`, err);
    }
    // Failures reach callers through the answer or their own listeners; none may go unhandled.
    stream.on('error', ignore);
    return stream;
  }

  /** The answer's headers when the call succeeded; its `BerthError` when not; NODE_UNAVAILABLE when the stream ended unanswered. */
  private answer(stream: ClientHttp2Stream): Promise<Headers> {
    return new Promise((resolve, reject) => {
      const done = (): void => {
        stream.off('response', onResponse);
        stream.off('close', onClose);
        stream.off('error', onError);
      };
      const onResponse = (h: Headers): void => {
        done();
        if (h[':status'] === 200) return resolve(h);
        stream.destroy();
        reject(errorFromHeaders(h));
      };
      const onError = (err: Error): void => {
        done();
        reject(this.lost(`the channel failed: ${err.message}`, err));
      };
      const onClose = (): void => {
        done();
        reject(this.lost('the channel closed before the node answered'));
      };
      stream.once('response', onResponse);
      stream.once('error', onError);
      stream.once('close', onClose);
    });
  }

  private async call<T, O extends ChannelOp = ChannelOp>(op: O, args: ChannelArgs[O]): Promise<T> {
    const stream = this.open(op, args, true);
    await this.answer(stream);
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as T;
  }

  async *logs(instanceId: InstanceId, container: string | undefined, opts: { tail?: number; since?: string; follow?: boolean }, signal?: AbortSignal) {
    const stream = this.open('logs', { instanceId, ...(container !== undefined ? { container } : {}), opts }, true);
    const abort = (): void => void stream.destroy();
    if (signal?.aborted) abort();
    signal?.addEventListener('abort', abort, { once: true });
    try {
      await this.answer(stream);
      stream.setEncoding('utf8');
      let rest = '';
      for await (const chunk of stream as AsyncIterable<string>) {
        rest += chunk;
        let nl: number;
        while ((nl = rest.indexOf('\n')) >= 0) {
          const line = rest.slice(0, nl);
          rest = rest.slice(nl + 1);
          yield JSON.parse(line) as { stream: 'stdout' | 'stderr'; time: string; text: string };
        }
      }
      // A follow the node broke off (its Docker failed) is reset, not ended: say so rather than end quietly.
      if (!signal?.aborted && stream.rstCode !== undefined && stream.rstCode !== constants.NGHTTP2_NO_ERROR) throw this.lost('the log stream was broken off');
    } catch (err) {
      if (signal?.aborted) return;
      throw err;
    } finally {
      signal?.removeEventListener('abort', abort);
      if (!stream.closed) stream.destroy();
    }
  }

  exec(instanceId: InstanceId, container: string | undefined, argv: string[], timeoutMs: number): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    return this.call('exec', { instanceId, ...(container !== undefined ? { container } : {}), argv, timeoutMs });
  }

  async openExec(instanceId: InstanceId, container: string | undefined, req: ExecRequest): Promise<ExecStream> {
    const id = randomUUID();
    const main = this.open('open-exec', { instanceId, ...(container !== undefined ? { container } : {}), id, ...req }, false);
    await this.answer(main);
    const exitCode = new Promise<number>((resolve) => {
      main.once('trailers', (h: IncomingHttpHeaders) => resolve(Number(h[HEADER.exitCode] ?? -1)));
      main.once('close', () => resolve(-1));
    });
    const stdout = new PassThrough();
    pipeline(main, stdout, ignore);
    // Without a PTY the process's stderr comes on a stream of its own, read from the start so it never holds stdout up.
    const stderr = new PassThrough();
    let side: ClientHttp2Stream | undefined;
    if (req.tty) stderr.end();
    else {
      side = this.open('exec-stderr', { id }, true);
      pipeline(side, stderr, ignore);
    }
    return {
      stdin: main,
      stdout,
      stderr,
      resize: async (cols, rows) => void (await this.call('exec-resize', { id, cols, rows })),
      exitCode,
      close: () => {
        // destroy(), not close(code): Node sends no RST_STREAM for close() while the request's side is still open.
        main.destroy();
        side?.destroy();
      },
    };
  }

  async connect(instanceId: InstanceId, port: number): Promise<Duplex> {
    const stream = this.open('connect', { instanceId, port }, false);
    await this.answer(stream);
    // As a TCP socket without allowHalfOpen: the pod's end of writing ends ours.
    stream.once('end', () => {
      if (!stream.writableEnded) stream.end();
    });
    return stream;
  }

  async readFile(instanceId: InstanceId, container: string | undefined, path: string, signal?: AbortSignal): Promise<{ size: number; content: Readable }> {
    const stream = this.open('read-file', { instanceId, ...(container !== undefined ? { container } : {}), path }, true);
    const abort = (): void => void stream.destroy();
    if (signal?.aborted) abort();
    signal?.addEventListener('abort', abort, { once: true });
    stream.once('close', () => signal?.removeEventListener('abort', abort));
    const h = await this.answer(stream);
    return { size: Number(h[HEADER.size]), content: stream };
  }

  async writeFile(instanceId: InstanceId, container: string | undefined, path: string, content: Readable, size: number, mode: number): Promise<void> {
    const stream = this.open('write-file', { instanceId, ...(container !== undefined ? { container } : {}), path, size, mode }, false);
    // A source that fails resets the stream: the node does not keep a partial file as a whole one.
    pipeline(content, stream, ignore);
    await this.answer(stream);
    stream.resume();
  }

  statFile(instanceId: InstanceId, container: string | undefined, path: string): Promise<PathStat> {
    return this.call('stat-file', { instanceId, ...(container !== undefined ? { container } : {}), path });
  }

  async hostAddress(instanceId: InstanceId): Promise<string> {
    return (await this.call<{ address: string }>('host-address', { instanceId })).address;
  }

  async openToPod(instanceId: InstanceId, address: string, port: number): Promise<() => Promise<void>> {
    const stream = this.open('open-to-pod', { instanceId, address, port }, false);
    await this.answer(stream);
    stream.resume();
    return async () => {
      stream.destroy();
    };
  }

  async listenForPod(instanceId: InstanceId, port: number, onConnection: (socket: Duplex, from: { address: string; port: number }) => void): Promise<{ address: string; port: number; close(): Promise<void> }> {
    const id = randomUUID();
    const held = this.open('listen', { instanceId, port, id }, false);
    const h = await this.answer(held);
    held.resume();
    let open = true;
    held.once('close', () => void (open = false));
    // One accept waits on the node at a time; each answered one is a connection, and the next is asked for at once.
    void (async () => {
      while (open) {
        const stream = this.open('accept', { id }, false);
        let answered: Headers;
        try {
          answered = await this.answer(stream);
        } catch {
          // The listener or the channel closed.
          break;
        }
        stream.once('end', () => {
          if (!stream.writableEnded) stream.end();
        });
        const from = String(answered[HEADER.from] ?? '');
        const at = from.lastIndexOf(':');
        onConnection(stream, { address: from.slice(0, at), port: Number(from.slice(at + 1)) || 0 });
      }
    })().catch(ignore);
    return {
      address: String(h[HEADER.address]),
      port: Number(h[HEADER.port]),
      close: async () => {
        open = false;
        held.destroy();
      },
    };
  }
}
