/**
 * The node channel's contract: what crosses between the control plane and a remote agent over the
 * connection the agent dials and upgrades (docs/cluster.md). The agent is an HTTP/2 server on that socket and the
 * control plane its client; each `NodeAccess` call is one HTTP/2 stream: `POST /<op>` with the
 * call's arguments as JSON in one header, bytes (stdin, a file, a TCP stream) as the bodies, and a
 * failure as the status plus the `BerthError`'s kind and message in headers. Nothing here does I/O.
 */
import { BerthError, ERRORS, type ErrorKind } from '../model/index.js';

/** The route the agent upgrades to the channel; authenticated as the other /api/v1/agent routes. */
export const CHANNEL_PATH = '/api/v1/agent/channel';
/** The `Upgrade:` token: HTTP/2 with this contract from the byte after the 101, so either side can refuse a peer that speaks another. */
export const CHANNEL_UPGRADE = 'berth-node-channel/1';

export const CHANNEL_OPS = ['logs', 'exec', 'open-exec', 'exec-stderr', 'exec-resize', 'connect', 'read-file', 'write-file', 'stat-file', 'host-address', 'open-to-pod', 'listen', 'accept'] as const;
export type ChannelOp = (typeof CHANNEL_OPS)[number];

export const HEADER = {
  /** The call's arguments: JSON in base64 (a header value takes no raw non-ASCII), in pieces (`encodeArgs`). */
  args: 'berth-args',
  errorKind: 'berth-error-kind',
  errorMessage: 'berth-error-message',
  errorExtra: 'berth-error-extra',
  /** `read-file`: the file's size. */
  size: 'berth-size',
  /** `listen`: where the node listens; `accept`: whom a connection came from (`address:port`). */
  address: 'berth-address',
  port: 'berth-port',
  from: 'berth-from',
  /** `open-exec`'s trailer: the process's exit code. */
  exitCode: 'berth-exit-code',
} as const;

/**
 * HTTP/2 settings both ends use. Windows are what a 200 MB scp needs over a link with some delay:
 * a stream may have 4 MiB in flight, the session 32 MiB; frames up to 256 KiB carry what a TCP read
 * gave in one frame (and one callback), instead of 16 KiB slices of it.
 */
export const CHANNEL_SETTINGS = {
  initialWindowSize: 4 * 2 ** 20,
  maxFrameSize: 256 * 2 ** 10,
  enablePush: false,
  maxHeaderListSize: 2 * 2 ** 20,
} as const;
export const SESSION_WINDOW = 32 * 2 ** 20;
/** The largest header block either end sends (Node's default, 64 KiB, is under a long command's arguments). */
export const MAX_SEND_HEADER_BLOCK = 2 * 2 ** 20;
/** nghttp2's bound on what one session buffers, in MB (its default, 10, is under two full windows). */
export const MAX_SESSION_MEMORY_MB = 128;

/**
 * nghttp2 takes no header field over 64 KiB, and a command may be 48 KiB before encoding: the
 * arguments are cut into pieces of this size, `berth-args`, `berth-args-1`, ... in order.
 */
const ARGS_PIECE = 16 * 1024;
/** Pieces at most: 1 MiB of arguments, within the header list size both ends accept. */
const ARGS_PIECES_MAX = 60;

export function encodeArgs(args: unknown): Record<string, string> {
  const text = Buffer.from(JSON.stringify(args)).toString('base64');
  const out: Record<string, string> = {};
  const pieces = Math.max(1, Math.ceil(text.length / ARGS_PIECE));
  if (pieces > ARGS_PIECES_MAX) throw new BerthError('VALIDATION', `the call's arguments are over ${(ARGS_PIECE * ARGS_PIECES_MAX) / 1024} KiB encoded`);
  for (let i = 0; i < pieces; i++) out[i === 0 ? HEADER.args : `${HEADER.args}-${i}`] = text.slice(i * ARGS_PIECE, (i + 1) * ARGS_PIECE);
  return out;
}

export function decodeArgs<T>(headers: Record<string, string | string[] | number | undefined>): T {
  const first = headers[HEADER.args];
  if (typeof first !== 'string') throw new BerthError('VALIDATION', `the channel call has no ${HEADER.args} header`);
  let text = first;
  for (let i = 1; i < ARGS_PIECES_MAX; i++) {
    const piece = headers[`${HEADER.args}-${i}`];
    if (typeof piece !== 'string') break;
    text += piece;
  }
  try {
    return JSON.parse(Buffer.from(text, 'base64').toString('utf8')) as T;
  } catch {
    throw new BerthError('VALIDATION', `the channel call's ${HEADER.args} headers are not encoded JSON`);
  }
}

/** A failure as response headers: the error's HTTP status and its kind, message and extra members. */
export function errorHeaders(err: unknown): Record<string, string | number> {
  const be = err instanceof BerthError ? err : new BerthError('RUNTIME', (err as Error)?.message ?? String(err));
  const out: Record<string, string | number> = { ':status': be.status, [HEADER.errorKind]: be.kind, [HEADER.errorMessage]: encodeURIComponent(be.message.slice(0, 4000)) };
  if (Object.keys(be.extra).length) out[HEADER.errorExtra] = encodeURIComponent(JSON.stringify(be.extra).slice(0, 4000));
  return out;
}

/** The `BerthError` a failed call's headers describe, its kind kept (NOT_FOUND stays NOT_FOUND). */
export function errorFromHeaders(headers: Record<string, string | string[] | number | undefined>): BerthError {
  const kindHeader = headers[HEADER.errorKind];
  const kind: ErrorKind = typeof kindHeader === 'string' && kindHeader in ERRORS ? (kindHeader as ErrorKind) : 'NODE_UNAVAILABLE';
  const text = (h: unknown): string | undefined => {
    if (typeof h !== 'string') return undefined;
    try {
      return decodeURIComponent(h);
    } catch {
      return h;
    }
  };
  const message = text(headers[HEADER.errorMessage]) ?? `the node answered ${String(headers[':status'])}`;
  let extra: Record<string, unknown> | undefined;
  const rawExtra = text(headers[HEADER.errorExtra]);
  if (rawExtra) {
    try {
      extra = JSON.parse(rawExtra) as Record<string, unknown>;
    } catch {
      // A damaged extra loses its members, not the error.
    }
  }
  return new BerthError(kind, message, extra ? { extra } : {});
}

/** The arguments of each call, as the control plane sends them. */
export interface ChannelArgs {
  logs: { instanceId: string; container?: string; opts: { tail?: number; since?: string; follow?: boolean } };
  exec: { instanceId: string; container?: string; argv: string[]; timeoutMs: number };
  'open-exec': { instanceId: string; container?: string; id: string; argv: string[]; tty: boolean; env?: Record<string, string>; cols?: number; rows?: number };
  'exec-stderr': { id: string };
  'exec-resize': { id: string; cols: number; rows: number };
  connect: { instanceId: string; port: number };
  'read-file': { instanceId: string; container?: string; path: string };
  'write-file': { instanceId: string; container?: string; path: string; size: number; mode: number };
  'stat-file': { instanceId: string; container?: string; path: string };
  'host-address': { instanceId: string };
  'open-to-pod': { instanceId: string; address: string; port: number };
  /** Held open as long as the listener is; `id` names it to `accept`. */
  listen: { instanceId: string; port: number; id: string };
  /** Answered when a connection comes to the listener, and then carries it. */
  accept: { id: string };
}
