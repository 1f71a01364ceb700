/**
 * The connection to the Docker daemon and what its failures mean: where it is (options or
 * `DOCKER_HOST`), the daemon's own words out of dockerode's errors, and the mapping of a failure to
 * the error catalogue. Every file that speaks the Engine API takes a `Daemon`.
 */

import type { IncomingMessage } from 'node:http';
import Docker from 'dockerode';
import { BerthError } from '../model/errors.js';

export interface DockerRuntimeOptions {
  /**
   * The daemon's Unix socket.
   * @default the socket or host in `DOCKER_HOST`, else `/var/run/docker.sock`
   */
  socketPath?: string;
  /**
   * `unix:///path`, `tcp://host:port`, `http(s)://host:port` or `ssh://user@host`; wins over `socketPath`.
   * @default `DOCKER_HOST`
   */
  host?: string;
  /**
   * How long a container or volume call (create, start, stop past its grace period, kill, remove,
   * inspect, list) may go unanswered before it is given up on with a retryable RUNTIME error.
   * @default 60_000
   */
  callTimeoutMs?: number;
}

/** @see DockerRuntimeOptions.callTimeoutMs */
export const CALL_TIMEOUT_MS = 60_000;

/**
 * `call`, or a retryable RUNTIME error once `ms` pass without an answer. Docker can hang a call for
 * good (issue 15: `rm -f` of a container wedged by an exec); the caller must get on with its other
 * work and try again later. The request itself is left to the daemon: Docker cannot cancel it.
 */
export async function withDeadline<T>(what: string, ms: number, call: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const running = call();
  // The losing side of the race must not surface as an unhandled rejection.
  running.catch(() => undefined);
  try {
    return await Promise.race([
      running,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new BerthError('RUNTIME', `${what}: Docker did not answer in ${Math.round(ms / 1000)} s`, { extra: { timedOut: true } })), ms);
        timer.unref();
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A dockerode client and where its daemon is, for messages. */
export interface Daemon {
  readonly docker: Docker;
  readonly where: string;
}

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'EPERM', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOENT: 'no such socket',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
};

type DialOptions = Parameters<Docker['modem']['dial']>[0];

interface Connection {
  options: Docker.DockerOptions;
  /** Where the daemon is, for messages. */
  where: string;
}

function resolveConnection(opts: DockerRuntimeOptions, env: NodeJS.ProcessEnv): Connection {
  const host = opts.host ?? (opts.socketPath ? undefined : env.DOCKER_HOST);
  if (host === undefined) {
    const socketPath = opts.socketPath ?? '/var/run/docker.sock';
    return { options: { socketPath }, where: socketPath };
  }
  if (host.startsWith('unix://')) {
    const socketPath = host.slice('unix://'.length) || '/var/run/docker.sock';
    return { options: { socketPath }, where: socketPath };
  }
  if (host === env.DOCKER_HOST && opts.host === undefined) {
    // docker-modem reads DOCKER_HOST with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH itself.
    return { options: {}, where: host };
  }
  const url = new URL(host.includes('://') ? host : `tcp://${host}`);
  const protocol = url.protocol === 'https:' ? 'https' : url.protocol === 'ssh:' ? 'ssh' : 'http';
  const port = url.port || (protocol === 'https' ? '2376' : protocol === 'ssh' ? '22' : '2375');
  return {
    options: { host: url.hostname, port, protocol, ...(url.username ? { username: url.username } : {}) },
    where: host,
  };
}

/** A client for the daemon the options (or the environment) name; connects lazily, on the first call. */
export function connect(opts: DockerRuntimeOptions, env: NodeJS.ProcessEnv): Daemon {
  const conn = resolveConnection(opts, env);
  return { docker: new Docker(conn.options), where: conn.where };
}

export function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

export function statusCode(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'statusCode' in err && typeof err.statusCode === 'number') return err.statusCode;
  return undefined;
}

export function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError' || errorCode(err) === 'ABORT_ERR');
}

/** The daemon's own words: its JSON `message`, without docker-modem's `(HTTP code 500) server error - ` prefix. */
export function daemonMessage(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'json' in err) {
    const json: unknown = err.json;
    if (typeof json === 'object' && json !== null && 'message' in json && typeof json.message === 'string') return json.message.trim();
    if (typeof json === 'string' && json.trim()) return json.trim();
  }
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/^\(HTTP code \d+\)\s+[^-]*-\s*/, '').trim();
}

export function isUnreachable(err: unknown): boolean {
  const code = errorCode(err);
  return statusCode(err) === undefined && code !== undefined && UNREACHABLE_CODES.has(code);
}

export function unreachable(daemon: Daemon, reason: string, cause: unknown): BerthError {
  return new BerthError('RUNTIME', `Cannot reach the Docker daemon at ${daemon.where}: ${reason}. Is Docker (or Podman's Docker-compatible socket) running?`, { cause });
}

export function unreachableFrom(daemon: Daemon, err: unknown): BerthError {
  const code = errorCode(err) ?? '';
  return unreachable(daemon, REASONS[code] ?? code, err);
}

/** Maps a dockerode failure to the error catalogue, keeping the daemon's own message. */
export function fail(daemon: Daemon, err: unknown, what: string, kind?: string, id?: string): BerthError {
  if (err instanceof BerthError) return err;
  if (isUnreachable(err)) return unreachableFrom(daemon, err);
  const status = statusCode(err);
  if (status === 404 && kind && id) return new BerthError('NOT_FOUND', `${kind} ${id} not found`, { extra: { id }, cause: err });
  const message = `${what}: ${daemonMessage(err)}`;
  if (status === 400) return new BerthError('VALIDATION', message, { cause: err });
  if (status === 404) return new BerthError('NOT_FOUND', message, { cause: err });
  if (status === 409) return new BerthError('CONFLICT', message, { cause: err });
  return new BerthError('RUNTIME', message, { cause: err });
}

/** A streaming GET; the response is the live body, to be destroyed by the caller. */
export function dialStream(daemon: Daemon, path: string, query: Record<string, unknown>, signal?: AbortSignal): Promise<IncomingMessage> {
  const options: DialOptions = {
    path,
    method: 'GET',
    options: query,
    isStream: true,
    statusCodes: { 200: true, 400: 'bad parameter', 404: 'not found', 500: 'server error' },
    ...(signal ? { abortSignal: signal } : {}),
  };
  return new Promise((resolve, reject) => {
    daemon.docker.modem.dial(options, (err, res) => {
      if (err) return reject(err);
      const body = res as IncomingMessage;
      // Also end the body on abort: aborting the request alone does not always reach a response
      // that has already started.
      if (signal) {
        const onAbort = (): void => {
          body.destroy();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        body.once('close', () => signal.removeEventListener('abort', onAbort));
        if (signal.aborted) body.destroy();
      }
      resolve(body);
    });
  });
}
