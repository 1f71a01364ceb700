/**
 * The Runtime over Docker Engine's HTTP API (Docker, or Podman's Docker-compatible socket) through
 * dockerode. Every call goes to the API; nothing runs the docker CLI.
 */

import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { BerthError } from '../model/errors.js';
import type { PathStat } from '../model/records.js';
import { pullFailureMessage } from './images.js';
import { contextTar, type ContextFile } from './tar.js';
import {
  exitCodeFromStatus,
  FrameDemuxer,
  JsonObjectSplitter,
  LogLineSplitter,
  nanosToDockerTimestamp,
  toDockerTimestamp,
} from './streams.js';
import type {
  ContainerInfo,
  ContainerPlan,
  ContainerRunState,
  CreateResult,
  DiskUsageReport,
  ExecResult,
  ExecStream,
  ExecStreamOptions,
  InteractiveRuntime,
  LogLine,
  LogOptions,
  PullProgressEvent,
  RegistryCredentials,
  Runtime,
  RuntimeEvent,
} from './types.js';

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
}

/** How often pull progress is reported at most. */
const PROGRESS_INTERVAL_MS = 250;
const EVENTS_BACKOFF_MIN_MS = 250;
const EVENTS_BACKOFF_MAX_MS = 5_000;
const PING_TIMEOUT_MS = 10_000;
/** Docker's zero time, which it reports for a container that never started or never finished. */
const ZERO_TIME_PREFIX = '0001-01-01';
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

function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

function statusCode(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'statusCode' in err && typeof err.statusCode === 'number') return err.statusCode;
  return undefined;
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError' || errorCode(err) === 'ABORT_ERR');
}

/** The daemon's own words: its JSON `message`, without docker-modem's `(HTTP code 500) server error - ` prefix. */
function daemonMessage(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'json' in err) {
    const json: unknown = err.json;
    if (typeof json === 'object' && json !== null && 'message' in json && typeof json.message === 'string') return json.message.trim();
    if (typeof json === 'string' && json.trim()) return json.trim();
  }
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/^\(HTTP code \d+\)\s+[^-]*-\s*/, '').trim();
}

function isUnreachable(err: unknown): boolean {
  const code = errorCode(err);
  return statusCode(err) === undefined && code !== undefined && UNREACHABLE_CODES.has(code);
}

const RUN_STATES: ReadonlySet<string> = new Set<ContainerRunState>(['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead']);

function runState(raw: string | undefined): ContainerRunState {
  const s = (raw ?? '').toLowerCase();
  if (RUN_STATES.has(s)) return s as ContainerRunState;
  // Podman's names for the same states.
  if (s === 'configured' || s === 'initialized') return 'created';
  if (s === 'stopped' || s === 'stopping') return 'exited';
  return 'dead';
}

/** Only a container that has ended has an exit code; Docker reports 0 for one that never ran. */
function endedExitCode(state: ContainerRunState, code: number | null | undefined): number | null {
  return (state === 'exited' || state === 'dead') && typeof code === 'number' ? code : null;
}

function dockerTime(value: string | undefined): string | null {
  if (!value || value.startsWith(ZERO_TIME_PREFIX)) return null;
  return value;
}

/** `"8080/tcp"` → `"8080"`; other protocols keep their suffix so a UDP port cannot shadow TCP. */
function portKey(port: string | number, protocol: string): string {
  return protocol === 'tcp' ? String(port) : `${port}/${protocol}`;
}

function portsFromInspect(ports: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (typeof ports !== 'object' || ports === null) return out;
  for (const [spec, bindings] of Object.entries(ports)) {
    if (!Array.isArray(bindings)) continue;
    const [port, protocol = 'tcp'] = spec.split('/');
    for (const b of bindings as unknown[]) {
      if (typeof b !== 'object' || b === null || !('HostPort' in b)) continue;
      const hostPort = Number(b.HostPort);
      if (port && hostPort > 0) {
        out[portKey(port, protocol)] = hostPort;
        break;
      }
    }
  }
  return out;
}

function labelFilters(labels: Record<string, string>): string[] {
  return Object.entries(labels).map(([k, v]) => (v === '' ? k : `${k}=${v}`));
}

interface PulledLayer {
  current: number;
  total: number;
}

/** Sums per-layer byte counts from the pull stream into one figure. */
class PullProgress {
  private readonly layers = new Map<string, PulledLayer>();
  status = '';
  error: string | null = null;

  update(msg: unknown): void {
    if (typeof msg !== 'object' || msg === null) return;
    if ('error' in msg) {
      // Pull failures after the response started arrive in the body, the HTTP status being 200.
      const detail = 'errorDetail' in msg && typeof msg.errorDetail === 'object' && msg.errorDetail !== null && 'message' in msg.errorDetail ? msg.errorDetail.message : undefined;
      this.error ??= String(typeof detail === 'string' && detail ? detail : msg.error);
      return;
    }
    const status = 'status' in msg && typeof msg.status === 'string' ? msg.status : '';
    if (status) this.status = status;
    const id = 'id' in msg && typeof msg.id === 'string' ? msg.id : undefined;
    // Messages without a layer id are the summary lines (`Pulling from`, `Digest:`, `Status:`).
    if (!id || status.startsWith('Pulling from')) return;
    const layer = this.layers.get(id) ?? { current: 0, total: 0 };
    this.layers.set(id, layer);
    const detail = 'progressDetail' in msg && typeof msg.progressDetail === 'object' && msg.progressDetail !== null ? msg.progressDetail : {};
    const current = 'current' in detail && typeof detail.current === 'number' ? detail.current : undefined;
    const total = 'total' in detail && typeof detail.total === 'number' ? detail.total : undefined;
    if (status === 'Downloading' && current !== undefined && total !== undefined && total > 0) {
      layer.current = Math.min(current, total);
      layer.total = total;
    } else if (['Verifying Checksum', 'Download complete', 'Extracting', 'Pull complete', 'Already exists'].includes(status)) {
      layer.current = layer.total;
    }
  }

  snapshot(done: boolean): PullProgressEvent {
    let current = 0;
    let total = 0;
    for (const l of this.layers.values()) {
      current += l.current;
      total += l.total;
    }
    return { current: done ? total : current, total, status: this.status };
  }
}

export class DockerRuntime implements Runtime, InteractiveRuntime {
  readonly docker: Docker;
  private readonly where: string;
  /** Whether the storage driver accepts a writable-layer size cap; learned on the first create that asks for one. */
  private diskQuotaSupported: boolean | undefined;

  private constructor(docker: Docker, where: string) {
    this.docker = docker;
    this.where = where;
  }

  /** Connects lazily: a daemon that is down is reported by `ping()` and by each call, not here. */
  static async create(opts: DockerRuntimeOptions = {}): Promise<DockerRuntime> {
    const conn = resolveConnection(opts, process.env);
    return new DockerRuntime(new Docker(conn.options), conn.where);
  }

  /** Whether a container disk cap is enforced on this node; undefined until a create has asked for one. */
  get diskQuota(): boolean | undefined {
    return this.diskQuotaSupported;
  }

  async ping(): Promise<{ version: string; apiVersion: string }> {
    try {
      // A black-holed TCP host would otherwise hang the caller for the OS connect timeout.
      const v = await new Promise<unknown>((resolve, reject) => {
        this.docker.modem.dial(
          { path: '/version', method: 'GET', statusCodes: { 200: true, 500: 'server error' }, abortSignal: AbortSignal.timeout(PING_TIMEOUT_MS) },
          (err, data) => (err ? reject(err) : resolve(data)),
        );
      });
      const field = (name: string): string => (typeof v === 'object' && v !== null && name in v ? String((v as Record<string, unknown>)[name]) : '');
      if (!field('ApiVersion')) throw new BerthError('RUNTIME', `${this.where} answered, but not as a Docker Engine API`);
      return { version: field('Version'), apiVersion: field('ApiVersion') };
    } catch (err) {
      if (isAbort(err)) throw this.unreachable('no answer within 10 s', err);
      throw this.fail(err, 'Docker daemon ping');
    }
  }

  async imageExists(ref: string): Promise<boolean> {
    try {
      await this.docker.getImage(ref).inspect();
      return true;
    } catch (err) {
      if (statusCode(err) === 404) return false;
      throw this.fail(err, `image ${ref}`);
    }
  }

  async pullImage(ref: string, auth: RegistryCredentials | null, onProgress: (p: PullProgressEvent) => void, signal?: AbortSignal): Promise<void> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.pull(ref, { ...(auth ? { authconfig: auth } : {}), ...(signal ? { abortSignal: signal } : {}) });
    } catch (err) {
      if (isAbort(err)) throw err;
      if (isUnreachable(err)) throw this.unreachableFrom(err);
      throw new BerthError('RUNTIME', pullFailureMessage(ref, daemonMessage(err)), { cause: err });
    }
    const progress = new PullProgress();
    let lastReport = 0;
    await new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(
        stream,
        (err) => {
          if (err) {
            if (isAbort(err) || signal?.aborted) reject(signal?.reason ?? err);
            else reject(new BerthError('RUNTIME', pullFailureMessage(ref, daemonMessage(err)), { cause: err }));
          } else if (signal?.aborted) {
            // An abort can close the body before it errors; the pull did not finish either way.
            reject(signal.reason);
          } else if (progress.error !== null) {
            reject(new BerthError('RUNTIME', pullFailureMessage(ref, progress.error)));
          } else {
            resolve();
          }
        },
        (msg: unknown) => {
          progress.update(msg);
          const now = Date.now();
          if (now - lastReport >= PROGRESS_INTERVAL_MS && progress.error === null) {
            lastReport = now;
            onProgress(progress.snapshot(false));
          }
        },
      );
    });
    onProgress(progress.snapshot(true));
  }

  async buildImage(tag: string, files: readonly ContextFile[]): Promise<void> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.buildImage(contextTar(files), { t: tag, rm: true, forcerm: true });
    } catch (err) {
      throw this.fail(err, `build of ${tag}`);
    }
    await new Promise<void>((resolve, reject) => {
      let failure: string | null = null;
      this.docker.modem.followProgress(
        stream,
        (err) => (err ? reject(this.fail(err, `build of ${tag}`)) : failure ? reject(new BerthError('RUNTIME', `build of ${tag} failed: ${failure}`)) : resolve()),
        (msg: unknown) => {
          // Build failures arrive in the body, the HTTP status being 200.
          if (failure === null && typeof msg === 'object' && msg !== null && 'error' in msg) failure = String(msg.error);
        },
      );
    });
  }

  async ensureVolume(name: string, labels: Record<string, string>): Promise<void> {
    try {
      // Docker answers 201 with the existing volume when the name is taken; Podman answers 409.
      await this.docker.createVolume({ Name: name, Labels: labels });
    } catch (err) {
      if (statusCode(err) === 409) return;
      throw this.fail(err, `volume ${name}`);
    }
  }

  async removeVolume(name: string): Promise<void> {
    const volume = this.docker.getVolume(name);
    for (let attempt = 0; ; attempt++) {
      try {
        await volume.remove();
        return;
      } catch (err) {
        const status = statusCode(err);
        if (status === 404) return;
        // A container removed a moment ago can still hold the volume while the daemon finishes
        // tearing it down; a short wait usually clears it.
        if (status === 409 && attempt < 5) {
          await sleep(50 * 2 ** attempt);
          continue;
        }
        if (status === 409) {
          // RUNTIME rather than CONFLICT: retryable, as the holder is usually a container being removed.
          throw new BerthError('RUNTIME', `volume ${name} is still in use: ${daemonMessage(err)}`, { cause: err });
        }
        throw this.fail(err, `volume ${name}`);
      }
    }
  }

  async listVolumes(labelFilter: Record<string, string>): Promise<{ name: string; labels: Record<string, string> }[]> {
    try {
      const res = await this.docker.listVolumes({ filters: { label: labelFilters(labelFilter) } });
      return (res.Volumes ?? []).map((v) => ({ name: v.Name, labels: v.Labels ?? {} }));
    } catch (err) {
      throw this.fail(err, 'volume list');
    }
  }

  async createContainer(plan: ContainerPlan): Promise<CreateResult> {
    if (plan.diskBytes !== null && this.diskQuotaSupported !== false) {
      try {
        const id = await this.create(plan, true);
        this.diskQuotaSupported = true;
        return { id, diskEnforced: true };
      } catch (err) {
        if (!isStorageOptRefusal(err)) throw this.createError(err, plan);
        // overlay2 caps the writable layer only on xfs mounted with pquota; elsewhere the daemon
        // refuses the option (and removes the half-made container, freeing the name).
        this.diskQuotaSupported = false;
      }
    }
    try {
      const id = await this.create(plan, false);
      return { id, diskEnforced: plan.diskBytes === null };
    } catch (err) {
      throw this.createError(err, plan);
    }
  }

  private async create(plan: ContainerPlan, withDiskCap: boolean): Promise<string> {
    const exposed: Record<string, object> = {};
    const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
    for (const p of plan.ports) {
      const key = `${p.containerPort}/${p.protocol ?? 'tcp'}`;
      exposed[key] = {};
      // An empty HostPort, not "0", is how the API asks Docker to choose a free port.
      (bindings[key] ??= []).push({ HostIp: p.hostIp, HostPort: p.hostPort > 0 ? String(p.hostPort) : '' });
    }
    const hostConfig: Docker.HostConfig = {
      Mounts: plan.mounts.map((m) => ({ Type: m.kind ?? 'volume', Source: m.source, Target: m.target, ReadOnly: m.readOnly })),
      PortBindings: bindings,
      // The agent owns restarts (with backoff and pod-wide replacement); Docker must not restart on its own.
      RestartPolicy: { Name: 'no' },
      AutoRemove: false,
    };
    if (plan.cpus !== null) hostConfig.NanoCpus = Math.round(plan.cpus * 1e9);
    if (plan.memoryBytes !== null) hostConfig.Memory = plan.memoryBytes;
    if (withDiskCap && plan.diskBytes !== null) hostConfig.StorageOpt = { size: String(plan.diskBytes) };
    if (plan.gpuUuids.length > 0 && !plan.gpusSimulated) {
      hostConfig.DeviceRequests = [{ Driver: 'nvidia', DeviceIDs: plan.gpuUuids, Capabilities: [['gpu']] }];
    }
    if (plan.networkMode) hostConfig.NetworkMode = plan.networkMode;
    const container = await this.docker.createContainer({
      name: plan.name,
      Image: plan.image,
      Env: Object.entries(plan.env).map(([k, v]) => `${k}=${v}`),
      Labels: plan.labels,
      ExposedPorts: exposed,
      // An empty array would override the image's ENTRYPOINT/CMD with nothing; leave them unset instead.
      ...(plan.entrypoint.length > 0 ? { Entrypoint: plan.entrypoint } : {}),
      ...(plan.command.length > 0 ? { Cmd: plan.command } : {}),
      ...(plan.hostname ? { Hostname: plan.hostname } : {}),
      ...(plan.user ? { User: plan.user } : {}),
      ...(plan.tty ? { Tty: true } : {}),
      ...(plan.stopTimeoutSeconds !== undefined ? { StopTimeout: plan.stopTimeoutSeconds } : {}),
      HostConfig: hostConfig,
    });
    return container.id;
  }

  private createError(err: unknown, plan: ContainerPlan): BerthError {
    const status = statusCode(err);
    const message = daemonMessage(err);
    if (status === 409) {
      return new BerthError('CONFLICT', `container name ${plan.name} is already in use`, { cause: err, extra: { name: plan.name } });
    }
    if (status === 404 && /no such image/i.test(message)) {
      return new BerthError('NOT_FOUND', `image ${plan.image} is not on this node; pull it first`, { cause: err, extra: { image: plan.image } });
    }
    return this.fail(err, `create container ${plan.name}`);
  }

  async startContainer(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).start();
    } catch (err) {
      if (statusCode(err) === 304) return;
      throw this.fail(err, `start container ${id}`, 'container', id);
    }
  }

  async restartContainer(id: string, timeoutSeconds: number): Promise<void> {
    try {
      await this.docker.getContainer(id).restart({ t: timeoutSeconds });
    } catch (err) {
      throw this.fail(err, `restart container ${id}`, 'container', id);
    }
  }

  async stopContainer(id: string, timeoutSeconds: number): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: timeoutSeconds });
    } catch (err) {
      if (statusCode(err) === 304) return;
      throw this.fail(err, `stop container ${id}`, 'container', id);
    }
  }

  async removeContainer(id: string): Promise<void> {
    try {
      // v: anonymous volumes belong to the container's disk, which terminate wipes.
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (err) {
      const status = statusCode(err);
      if (status === 404) return;
      if (status === 409 && /already in progress/i.test(daemonMessage(err))) {
        // Someone else is removing it; done once it is gone.
        for (let i = 0; i < 50; i++) {
          if ((await this.inspectContainer(id)) === undefined) return;
          await sleep(100);
        }
      }
      throw this.fail(err, `remove container ${id}`);
    }
  }

  async inspectContainer(id: string): Promise<ContainerInfo | undefined> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(id).inspect();
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw this.fail(err, `inspect container ${id}`);
    }
    const state = runState(info.State.Status);
    return {
      id: info.Id,
      name: info.Name.replace(/^\//, ''),
      labels: info.Config.Labels ?? {},
      state,
      exitCode: endedExitCode(state, info.State.ExitCode),
      startedAt: dockerTime(info.State.StartedAt),
      finishedAt: dockerTime(info.State.FinishedAt),
      ports: portsFromInspect(info.NetworkSettings?.Ports),
      error: info.State.Error ? info.State.Error : null,
    };
  }

  /**
   * From the list API alone, so one call covers every container at agent start. That API has no
   * start or finish times (`startedAt`/`finishedAt` are null; inspect the container for them), no
   * error text (`error` is null), and the exit code only inside its `Status` text
   * (`Exited (137) 2 minutes ago`), which is parsed. Ids, names, labels, state and ports are exact.
   */
  async listContainers(labelFilter: Record<string, string>): Promise<ContainerInfo[]> {
    let list: Docker.ContainerInfo[];
    try {
      list = await this.docker.listContainers({ all: true, filters: { label: labelFilters(labelFilter) } });
    } catch (err) {
      throw this.fail(err, 'container list');
    }
    return list.map((c) => {
      const state = runState(c.State);
      const ports: Record<string, number> = {};
      for (const p of c.Ports ?? []) {
        if (p.PublicPort) ports[portKey(p.PrivatePort, p.Type || 'tcp')] ??= p.PublicPort;
      }
      return {
        id: c.Id,
        name: (c.Names?.[0] ?? '').replace(/^\//, ''),
        labels: c.Labels ?? {},
        state,
        exitCode: state === 'exited' || state === 'dead' ? exitCodeFromStatus(c.Status ?? '') : null,
        startedAt: null,
        finishedAt: null,
        ports,
        error: null,
      };
    });
  }

  /**
   * Streams container events for the label until the signal aborts. When the stream ends or breaks
   * (daemon restart), reconnects after a short backoff asking for events `since` the last one seen,
   * so none are lost and none are delivered twice. `onEvent` must not throw: as with an event
   * emitter's listener, an exception escapes as an uncaught one.
   */
  watchEvents(label: string, onEvent: (e: RuntimeEvent) => void, signal: AbortSignal): void {
    void this.watchLoop(label, onEvent, signal);
  }

  private async watchLoop(label: string, onEvent: (e: RuntimeEvent) => void, signal: AbortSignal): Promise<void> {
    let since: string | undefined;
    let lastNano = -1n;
    // Events sharing the last seen timestamp, which a `since` replay delivers again.
    let seenAtLast = new Set<string>();
    let backoff = EVENTS_BACKOFF_MIN_MS;
    while (!signal.aborted) {
      const connectedAt = Date.now();
      let res: IncomingMessage | undefined;
      try {
        res = await this.dialStream('/events?', { filters: { type: ['container'], label: [label] }, ...(since ? { since } : {}) }, signal);
        backoff = EVENTS_BACKOFF_MIN_MS;
        const splitter = new JsonObjectSplitter();
        for await (const chunk of res as AsyncIterable<Buffer>) {
          for (const raw of splitter.push(chunk)) {
            const parsed = parseEvent(raw);
            if (!parsed || parsed.nano < lastNano) continue;
            if (parsed.nano === lastNano) {
              if (seenAtLast.has(parsed.key)) continue;
            } else {
              lastNano = parsed.nano;
              seenAtLast = new Set();
            }
            seenAtLast.add(parsed.key);
            onEvent(parsed.event);
          }
        }
      } catch {
        // A broken stream is handled like an ended one: reconnect below. The daemon being down
        // shows through ping() and the agent's other calls, not here.
      } finally {
        res?.destroy();
      }
      if (signal.aborted) return;
      // Nothing seen yet: replay from when this connection was made, so an event during the gap still arrives.
      since = lastNano >= 0n ? nanosToDockerTimestamp(lastNano) : (since ?? nanosToDockerTimestamp(BigInt(connectedAt) * 1_000_000n));
      try {
        await sleep(backoff, undefined, { signal });
      } catch {
        return;
      }
      backoff = Math.min(backoff * 2, EVENTS_BACKOFF_MAX_MS);
    }
  }

  /**
   * Log lines with Docker's timestamps. With `follow`, runs until the container stops or the signal
   * aborts; either way the HTTP stream is closed when iteration ends (also on `break`).
   */
  logs(id: string, opts: LogOptions, signal?: AbortSignal): AsyncIterable<LogLine> {
    return this.readLogs(id, opts, signal);
  }

  private async *readLogs(id: string, opts: LogOptions, signal?: AbortSignal): AsyncGenerator<LogLine> {
    const query: Record<string, unknown> = { stdout: true, stderr: true, timestamps: true, follow: opts.follow === true };
    if (opts.tail !== undefined) query.tail = String(Math.max(0, Math.floor(opts.tail)));
    if (opts.since !== undefined) {
      const since = toDockerTimestamp(opts.since);
      if (since === null) throw new BerthError('VALIDATION', `since: expected Unix seconds or an ISO time, got ${opts.since}`, { problems: [{ path: '/since', message: 'expected Unix seconds or an ISO time' }] });
      query.since = since;
    }
    if (signal?.aborted) return;
    let tty: boolean;
    try {
      tty = (await this.docker.getContainer(id).inspect()).Config.Tty === true;
    } catch (err) {
      throw this.fail(err, `logs of container ${id}`, 'container', id);
    }
    let res: IncomingMessage;
    try {
      res = await this.dialStream(`/containers/${encodeURIComponent(id)}/logs?`, query, signal);
    } catch (err) {
      if (signal?.aborted) return;
      throw this.fail(err, `logs of container ${id}`, 'container', id);
    }
    const demux = new FrameDemuxer();
    const splitter = new LogLineSplitter();
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) {
        if (tty) {
          yield* splitter.pushRaw(chunk);
        } else {
          for (const frame of demux.push(chunk)) yield* splitter.pushFrame(frame);
        }
      }
      yield* splitter.end();
    } catch (err) {
      if (signal?.aborted || isAbort(err)) return;
      throw this.fail(err, `logs of container ${id}`);
    } finally {
      res.destroy();
    }
  }

  /**
   * Runs argv in the running container and collects its output. Docker cannot kill an exec'd
   * process, so on timeout this stops waiting, closes the stream and throws; the process may linger.
   */
  async exec(id: string, argv: string[], opts: { timeoutMs?: number; env?: string[] } = {}): Promise<ExecResult> {
    let socket: Socket | undefined;
    let timedOut = false;
    const run = async (): Promise<ExecResult> => {
      const exec = await this.docker.getContainer(id).exec({
        Cmd: argv,
        AttachStdout: true,
        AttachStderr: true,
        AttachStdin: false,
        Tty: false,
        ...(opts.env && opts.env.length > 0 ? { Env: opts.env } : {}),
      });
      const stream = (await exec.start({ hijack: true, stdin: false })) as Socket;
      if (timedOut) {
        stream.destroy();
        throw new Error('timed out');
      }
      socket = stream;
      const out: Record<'stdout' | 'stderr', Buffer[]> = { stdout: [], stderr: [] };
      const demux = new FrameDemuxer();
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        for (const f of demux.push(chunk)) out[f.stream].push(f.payload);
      }
      stream.destroy();
      // The stream closes as the process exits; the exit code can land a moment later.
      let info = await exec.inspect();
      for (let i = 0; i < 40 && (info.Running || info.ExitCode === null); i++) {
        await sleep(25);
        info = await exec.inspect();
      }
      return {
        exitCode: info.ExitCode ?? -1,
        stdout: Buffer.concat(out.stdout).toString('utf8'),
        stderr: Buffer.concat(out.stderr).toString('utf8'),
      };
    };
    const running = run();
    if (!opts.timeoutMs) {
      try {
        return await running;
      } catch (err) {
        throw this.fail(err, `exec in container ${id}`, 'container', id);
      }
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        socket?.destroy();
        reject(new BerthError('RUNTIME', `command timed out after ${opts.timeoutMs} ms: ${argv.join(' ')}`));
      }, opts.timeoutMs);
    });
    // The losing side of the race must not surface as an unhandled rejection.
    running.catch(() => undefined);
    try {
      return await Promise.race([running, timeout]);
    } catch (err) {
      if (err instanceof BerthError) throw err;
      throw this.fail(err, `exec in container ${id}`, 'container', id);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Starts argv with stdin attached and hands back its streams. With a PTY the output is raw and
   * resizable; without, Docker multiplexes stdout and stderr in frames, split here.
   */
  async openExec(id: string, opts: ExecStreamOptions): Promise<ExecStream> {
    let exec: Docker.Exec;
    let socket: Socket;
    try {
      exec = await this.docker.getContainer(id).exec({
        Cmd: opts.argv,
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Tty: opts.tty,
        ...(opts.env && opts.env.length > 0 ? { Env: opts.env } : {}),
        ...(opts.workingDir ? { WorkingDir: opts.workingDir } : {}),
      });
      socket = (await exec.start({ hijack: true, stdin: true, Tty: opts.tty })) as Socket;
    } catch (err) {
      throw this.fail(err, `exec in container ${id}`, 'container', id);
    }
    socket.setNoDelay(true);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    if (opts.tty) {
      socket.pipe(stdout);
    } else {
      const demux = new FrameDemuxer();
      socket.on('data', (chunk: Buffer) => {
        let full = false;
        for (const f of demux.push(chunk)) full = !(f.stream === 'stderr' ? stderr : stdout).write(f.payload) || full;
        if (full) {
          socket.pause();
          const resume = (): void => {
            if (stdout.writableNeedDrain || stderr.writableNeedDrain) return;
            stdout.off('drain', resume);
            stderr.off('drain', resume);
            socket.resume();
          };
          stdout.on('drain', resume);
          stderr.on('drain', resume);
        }
      });
      socket.on('end', () => {
        stdout.end();
        stderr.end();
      });
    }
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (!stdout.writableEnded) stdout.end();
      if (!stderr.writableEnded) stderr.end();
    });
    // Listen before any await: a quick command can end while the first resize is on its way.
    const exitCode = new Promise<number>((resolve) => {
      socket.once('close', () => {
        void (async () => {
          // The stream closes as the process exits; the exit code can land a moment later.
          try {
            let info = await exec.inspect();
            for (let i = 0; i < 40 && (info.Running || info.ExitCode === null); i++) {
              await sleep(25);
              info = await exec.inspect();
            }
            resolve(info.ExitCode ?? -1);
          } catch {
            resolve(-1);
          }
        })();
      });
    });
    const resize = async (cols: number, rows: number): Promise<void> => {
      if (!opts.tty || cols <= 0 || rows <= 0) return;
      try {
        await exec.resize({ h: rows, w: cols });
      } catch {
        // The process may have ended a moment ago: a resize then has nothing to do.
      }
    };
    if (opts.cols && opts.rows) await resize(opts.cols, opts.rows);
    return { stdin: socket, stdout, stderr, resize, exitCode, close: () => socket.destroy() };
  }

  async containerAddress(id: string): Promise<string | undefined> {
    return (await this.networkOf(id))?.IPAddress || undefined;
  }

  async containerGateway(id: string): Promise<string | undefined> {
    return (await this.networkOf(id))?.Gateway || undefined;
  }

  /** The container's first network with an address; a container that joined another's namespace has that one's. */
  private async networkOf(id: string): Promise<{ IPAddress?: string; Gateway?: string } | undefined> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(id).inspect();
    } catch (err) {
      throw this.fail(err, `inspect container ${id}`, 'container', id);
    }
    const mode = info.HostConfig?.NetworkMode ?? '';
    if (mode.startsWith('container:')) return this.networkOf(mode.slice('container:'.length));
    return Object.values(info.NetworkSettings?.Networks ?? {}).find((n) => n.IPAddress);
  }

  async getArchive(id: string, path: string, signal?: AbortSignal): Promise<NodeJS.ReadableStream> {
    try {
      return await this.docker.getContainer(id).getArchive({ path, ...(signal ? { abortSignal: signal } : {}) });
    } catch (err) {
      if (statusCode(err) === 404) throw new BerthError('NOT_FOUND', `${path}: no such file or directory`, { cause: err, extra: { path } });
      throw this.fail(err, `read ${path} in container ${id}`);
    }
  }

  async putArchive(id: string, dir: string, tar: NodeJS.ReadableStream): Promise<void> {
    try {
      const res: unknown = await this.docker.getContainer(id).putArchive(tar, { path: dir });
      // The answer's body is empty; reading it to the end frees the connection.
      if (typeof res === 'object' && res !== null && 'resume' in res && typeof res.resume === 'function') res.resume();
    } catch (err) {
      if (statusCode(err) === 404) throw new BerthError('NOT_FOUND', `${dir}: no such directory`, { cause: err, extra: { path: dir } });
      if (statusCode(err) === 403) throw new BerthError('FORBIDDEN', `${dir} is read-only in the container`, { cause: err, extra: { path: dir } });
      throw this.fail(err, `write into ${dir} in container ${id}`);
    }
  }

  async statPath(id: string, path: string): Promise<PathStat> {
    let res: IncomingMessage;
    try {
      res = (await this.docker.getContainer(id).infoArchive({ path })) as IncomingMessage;
    } catch (err) {
      if (statusCode(err) === 404) throw new BerthError('NOT_FOUND', `${path}: no such file or directory`, { cause: err, extra: { path } });
      throw this.fail(err, `stat ${path} in container ${id}`);
    }
    res.resume();
    const header = res.headers['x-docker-container-path-stat'];
    if (typeof header !== 'string') throw new BerthError('RUNTIME', `the daemon said nothing of ${path}'s attributes`);
    const raw = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as { name: string; size: number; mode: number; mtime: string; linkTarget: string };
    return { name: raw.name, size: raw.size, mode: posixMode(raw.mode), mtimeMs: Date.parse(raw.mtime), linkTarget: raw.linkTarget ?? '' };
  }

  async diskUsage(): Promise<DiskUsageReport> {
    let df: unknown;
    try {
      df = await this.docker.df();
    } catch (err) {
      throw this.fail(err, 'disk usage');
    }
    const report: DiskUsageReport = { containers: {}, volumes: {} };
    if (typeof df !== 'object' || df === null) return report;
    if ('Containers' in df && Array.isArray(df.Containers)) {
      for (const c of df.Containers as unknown[]) {
        if (typeof c !== 'object' || c === null || !('Id' in c) || typeof c.Id !== 'string') continue;
        const size = 'SizeRw' in c && typeof c.SizeRw === 'number' ? c.SizeRw : 0;
        report.containers[c.Id] = Math.max(0, size);
      }
    }
    if ('Volumes' in df && Array.isArray(df.Volumes)) {
      for (const v of df.Volumes as unknown[]) {
        if (typeof v !== 'object' || v === null || !('Name' in v) || typeof v.Name !== 'string') continue;
        const usage = 'UsageData' in v && typeof v.UsageData === 'object' && v.UsageData !== null ? v.UsageData : {};
        const size = 'Size' in usage && typeof usage.Size === 'number' ? usage.Size : -1;
        // -1: the daemon did not measure it (e.g. a non-local driver).
        if (size >= 0) report.volumes[v.Name] = size;
      }
    }
    return report;
  }

  /** A streaming GET; the response is the live body, to be destroyed by the caller. */
  private dialStream(path: string, query: Record<string, unknown>, signal?: AbortSignal): Promise<IncomingMessage> {
    const options: DialOptions = {
      path,
      method: 'GET',
      options: query,
      isStream: true,
      statusCodes: { 200: true, 400: 'bad parameter', 404: 'not found', 500: 'server error' },
      ...(signal ? { abortSignal: signal } : {}),
    };
    return new Promise((resolve, reject) => {
      this.docker.modem.dial(options, (err, res) => {
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

  private unreachable(reason: string, cause: unknown): BerthError {
    return new BerthError('RUNTIME', `Cannot reach the Docker daemon at ${this.where}: ${reason}. Is Docker (or Podman's Docker-compatible socket) running?`, { cause });
  }

  private unreachableFrom(err: unknown): BerthError {
    const code = errorCode(err) ?? '';
    return this.unreachable(REASONS[code] ?? code, err);
  }

  /** Maps a dockerode failure to the error catalogue, keeping the daemon's own message. */
  private fail(err: unknown, what: string, kind?: string, id?: string): BerthError {
    if (err instanceof BerthError) return err;
    if (isUnreachable(err)) return this.unreachableFrom(err);
    const status = statusCode(err);
    if (status === 404 && kind && id) return new BerthError('NOT_FOUND', `${kind} ${id} not found`, { extra: { id }, cause: err });
    const message = `${what}: ${daemonMessage(err)}`;
    if (status === 400) return new BerthError('VALIDATION', message, { cause: err });
    if (status === 404) return new BerthError('NOT_FOUND', message, { cause: err });
    if (status === 409) return new BerthError('CONFLICT', message, { cause: err });
    return new BerthError('RUNTIME', message, { cause: err });
  }
}

function isStorageOptRefusal(err: unknown): boolean {
  const status = statusCode(err);
  if (status === undefined || status === 404 || status === 409) return false;
  return /storage-?opt|storage option|quota/i.test(daemonMessage(err));
}

/** Docker's event JSON → RuntimeEvent, with the exact nanosecond time (as a bigint) and a key to dedupe replays. */
function parseEvent(raw: string): { event: RuntimeEvent; nano: bigint; key: string } | null {
  let msg: unknown;
  try {
    msg = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof msg !== 'object' || msg === null) return null;
  const actor = 'Actor' in msg && typeof msg.Actor === 'object' && msg.Actor !== null ? msg.Actor : {};
  const attributes = 'Attributes' in actor && typeof actor.Attributes === 'object' && actor.Attributes !== null ? actor.Attributes : {};
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(attributes)) if (typeof v === 'string') labels[k] = v;
  const containerId = 'ID' in actor && typeof actor.ID === 'string' ? actor.ID : 'id' in msg && typeof msg.id === 'string' ? msg.id : '';
  // Older daemons send `status` and no `Action`.
  const action = 'Action' in msg && typeof msg.Action === 'string' ? msg.Action : 'status' in msg && typeof msg.status === 'string' ? msg.status : '';
  if (!containerId || !action) return null;
  // JSON.parse rounds timeNano (about 1.7e18, past 2^53); read the digits from the text.
  const nanoText = /"timeNano"\s*:\s*(\d+)/.exec(raw)?.[1];
  const seconds = 'time' in msg && typeof msg.time === 'number' ? msg.time : 0;
  const nano = nanoText ? BigInt(nanoText) : BigInt(seconds) * 1_000_000_000n;
  const exitCode = labels.exitCode !== undefined && /^-?\d+$/.test(labels.exitCode) ? Number(labels.exitCode) : null;
  return {
    event: { action, containerId, labels, exitCode, timeNano: Number(nano) },
    nano,
    key: `${containerId} ${action}`,
  };
}

/** Go's os.FileMode (what the archive API reports: type bits at the top) as a POSIX st_mode. */
export function posixMode(go: number): number {
  const bit = (n: number): boolean => Math.floor(go / 2 ** n) % 2 === 1;
  const type = bit(31)
    ? 0o040000 // ModeDir
    : bit(27)
      ? 0o120000 // ModeSymlink
      : bit(26)
        ? bit(21)
          ? 0o020000 // ModeDevice | ModeCharDevice
          : 0o060000 // ModeDevice: a block device
        : bit(25)
          ? 0o010000 // ModeNamedPipe
          : bit(24)
            ? 0o140000 // ModeSocket
            : 0o100000;
  return type | (go % 0o1000) | (bit(23) ? 0o4000 : 0) | (bit(22) ? 0o2000 : 0) | (bit(20) ? 0o1000 : 0);
}
