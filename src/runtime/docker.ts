/**
 * The Runtime over Docker Engine's HTTP API (Docker, or Podman's Docker-compatible socket) through
 * dockerode. Every call goes to the API; nothing runs the docker CLI. `DockerRuntime` is what callers
 * use; each concern with more than a call to it lives in a file of its own (the connection and error
 * mapping in `daemon.ts`, `pull.ts`, `events.ts`, `logs.ts`, `exec.ts`, `container-files.ts`,
 * `disk-usage.ts`, and the container records in `containers.ts`).
 */

import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import { BerthError } from '../model/errors.js';
import type { PathStat } from '../model/records.js';
import { getArchive, openFile, putArchive, statPath } from './container-files.js';
import type { OpenedFile } from './container-root.js';
import { createError, createOptions, infoFromInspect, infoFromList, isStorageOptRefusal, labelFilters } from './containers.js';
import { CALL_TIMEOUT_MS, connect, daemonMessage, fail, isAbort, statusCode, unreachable, withDeadline, type Daemon, type DockerRuntimeOptions } from './daemon.js';
import { diskUsage } from './disk-usage.js';
import { watchLoop } from './events.js';
import { exec, openExec } from './exec.js';
import { readLogs } from './logs.js';
import { pullImage } from './pull.js';
import { containerStats } from './stats.js';
import { contextTar, type ContextFile } from './tar.js';
import type {
  ContainerInfo,
  ContainerStats,
  ContainerPlan,
  CreateResult,
  DiskUsageReport,
  ExecResult,
  ExecStream,
  ExecStreamOptions,
  InteractiveRuntime,
  NetworkRuntime,
  LogLine,
  LogOptions,
  PullProgressEvent,
  RegistryCredentials,
  Runtime,
  RuntimeEvent,
} from './types.js';

export type { DockerRuntimeOptions } from './daemon.js';

const PING_TIMEOUT_MS = 10_000;

export class DockerRuntime implements Runtime, InteractiveRuntime, NetworkRuntime {
  readonly docker: Docker;
  private readonly daemon: Daemon;
  /** Whether the storage driver accepts a writable-layer size cap; learned on the first create that asks for one. */
  private diskQuotaSupported: boolean | undefined;

  private constructor(
    daemon: Daemon,
    private readonly callTimeoutMs: number,
  ) {
    this.daemon = daemon;
    this.docker = daemon.docker;
  }

  /** Connects lazily: a daemon that is down is reported by `ping()` and by each call, not here. */
  static async create(opts: DockerRuntimeOptions = {}): Promise<DockerRuntime> {
    return new DockerRuntime(connect(opts, process.env), opts.callTimeoutMs ?? CALL_TIMEOUT_MS);
  }

  /** A container or volume call, given up on after the call timeout (plus `graceSeconds` for a stop). */
  private bounded<T>(what: string, call: () => Promise<T>, graceSeconds = 0): Promise<T> {
    return withDeadline(what, this.callTimeoutMs + graceSeconds * 1000, call);
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
      if (!field('ApiVersion')) throw new BerthError('RUNTIME', `${this.daemon.where} answered, but not as a Docker Engine API`);
      return { version: field('Version'), apiVersion: field('ApiVersion') };
    } catch (err) {
      if (isAbort(err)) throw unreachable(this.daemon, 'no answer within 10 s', err);
      throw fail(this.daemon, err, 'Docker daemon ping');
    }
  }

  async imageExists(ref: string): Promise<boolean> {
    try {
      await this.docker.getImage(ref).inspect();
      return true;
    } catch (err) {
      if (statusCode(err) === 404) return false;
      throw fail(this.daemon, err, `image ${ref}`);
    }
  }

  pullImage(ref: string, auth: RegistryCredentials | null, onProgress: (p: PullProgressEvent) => void, signal?: AbortSignal): Promise<void> {
    return pullImage(this.daemon, ref, auth, onProgress, signal);
  }

  async buildImage(tag: string, files: readonly ContextFile[]): Promise<void> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.buildImage(contextTar(files), { t: tag, rm: true, forcerm: true });
    } catch (err) {
      throw fail(this.daemon, err, `build of ${tag}`);
    }
    await new Promise<void>((resolve, reject) => {
      let failure: string | null = null;
      this.docker.modem.followProgress(
        stream,
        (err) => (err ? reject(fail(this.daemon, err, `build of ${tag}`)) : failure ? reject(new BerthError('RUNTIME', `build of ${tag} failed: ${failure}`)) : resolve()),
        (msg: unknown) => {
          // Build failures arrive in the body, the HTTP status being 200.
          if (failure === null && typeof msg === 'object' && msg !== null && 'error' in msg) failure = String(msg.error);
        },
      );
    });
  }

  async ensureVolume(name: string, labels: Record<string, string>, driverOpts?: Record<string, string>): Promise<void> {
    try {
      // Docker answers 201 with the existing volume when the name is taken; Podman answers 409.
      const opts = driverOpts && Object.keys(driverOpts).length > 0 ? { Driver: 'local', DriverOpts: driverOpts } : {};
      await this.bounded(`create volume ${name}`, () => this.docker.createVolume({ Name: name, Labels: labels, ...opts }));
    } catch (err) {
      if (statusCode(err) === 409) return;
      throw fail(this.daemon, err, `volume ${name}`);
    }
  }

  async ensureNetwork(name: string, opts: { bridge: string; labels: Record<string, string> }): Promise<void> {
    try {
      await this.docker.getNetwork(name).inspect();
      return;
    } catch (err) {
      if (statusCode(err) !== 404) throw fail(this.daemon, err, `network ${name}`);
    }
    try {
      await this.docker.createNetwork({ Name: name, Driver: 'bridge', CheckDuplicate: true, Labels: opts.labels, Options: { 'com.docker.network.bridge.name': opts.bridge } });
    } catch (err) {
      // Made meanwhile by another launch: Docker says 409 for the name, or, when the two creates
      // cross, 403 for the bridge name ("networks have same bridge name"). Either way it is there now.
      if (statusCode(err) === 409) return;
      const made = await this.docker.getNetwork(name).inspect().then(() => true, () => false);
      if (made) return;
      throw fail(this.daemon, err, `network ${name}`);
    }
  }

  async listNetworks(labelFilter: Record<string, string>): Promise<{ name: string; containers: number; createdMs: number }[]> {
    const label = Object.entries(labelFilter).map(([k, v]) => (v === '' ? k : `${k}=${v}`));
    try {
      const list = await this.docker.listNetworks({ filters: { label } });
      // The list leaves Containers empty; an inspect of each fills it.
      return await Promise.all(
        list.map(async (n) => {
          const info = (await this.docker.getNetwork(n.Id).inspect()) as Docker.NetworkInspectInfo;
          return { name: n.Name, containers: Object.keys(info.Containers ?? {}).length, createdMs: Date.parse(info.Created) || 0 };
        }),
      );
    } catch (err) {
      throw fail(this.daemon, err, 'list networks');
    }
  }

  async removeNetwork(name: string): Promise<void> {
    try {
      await this.docker.getNetwork(name).remove();
    } catch (err) {
      if (statusCode(err) === 404) return;
      throw fail(this.daemon, err, `network ${name}`);
    }
  }

  async removeVolume(name: string): Promise<void> {
    const volume = this.docker.getVolume(name);
    for (let attempt = 0; ; attempt++) {
      try {
        await this.bounded(`remove volume ${name}`, () => volume.remove());
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
        throw fail(this.daemon, err, `volume ${name}`);
      }
    }
  }

  async listVolumes(labelFilter: Record<string, string>): Promise<{ name: string; labels: Record<string, string> }[]> {
    try {
      const res = await this.bounded('volume list', () => this.docker.listVolumes({ filters: { label: labelFilters(labelFilter) } }));
      return (res.Volumes ?? []).map((v) => ({ name: v.Name, labels: v.Labels ?? {} }));
    } catch (err) {
      throw fail(this.daemon, err, 'volume list');
    }
  }

  async createContainer(plan: ContainerPlan): Promise<CreateResult> {
    if (plan.diskBytes !== null && this.diskQuotaSupported !== false) {
      try {
        const id = (await this.bounded('create container', () => this.docker.createContainer(createOptions(plan, true)))).id;
        this.diskQuotaSupported = true;
        return { id, diskEnforced: true };
      } catch (err) {
        if (!isStorageOptRefusal(err)) throw createError(this.daemon, err, plan);
        // overlay2 caps the writable layer only on xfs mounted with pquota; elsewhere the daemon
        // refuses the option (and removes the half-made container, freeing the name).
        this.diskQuotaSupported = false;
      }
    }
    try {
      const id = (await this.bounded('create container', () => this.docker.createContainer(createOptions(plan, false)))).id;
      return { id, diskEnforced: plan.diskBytes === null };
    } catch (err) {
      throw createError(this.daemon, err, plan);
    }
  }

  async startContainer(id: string): Promise<void> {
    try {
      await this.bounded(`start container ${id}`, () => this.docker.getContainer(id).start());
    } catch (err) {
      if (statusCode(err) === 304) return;
      throw fail(this.daemon, err, `start container ${id}`, 'container', id);
    }
  }

  async restartContainer(id: string, timeoutSeconds: number): Promise<void> {
    try {
      await this.bounded(`restart container ${id}`, () => this.docker.getContainer(id).restart({ t: timeoutSeconds }), timeoutSeconds);
    } catch (err) {
      throw fail(this.daemon, err, `restart container ${id}`, 'container', id);
    }
  }

  async stopContainer(id: string, timeoutSeconds: number): Promise<void> {
    try {
      await this.bounded(`stop container ${id}`, () => this.docker.getContainer(id).stop({ t: timeoutSeconds }), timeoutSeconds);
    } catch (err) {
      if (statusCode(err) === 304) return;
      throw fail(this.daemon, err, `stop container ${id}`, 'container', id);
    }
  }

  async removeContainer(id: string): Promise<void> {
    try {
      // v: anonymous volumes belong to the container's disk, which terminate wipes.
      await this.bounded(`remove container ${id}`, () => this.docker.getContainer(id).remove({ force: true, v: true }));
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
      throw fail(this.daemon, err, `remove container ${id}`);
    }
  }

  async killContainer(id: string): Promise<void> {
    try {
      await this.bounded(`kill container ${id}`, () => this.docker.getContainer(id).kill({ signal: 'SIGKILL' }));
    } catch (err) {
      // Gone, or not running: nothing left to kill.
      if (statusCode(err) === 404 || statusCode(err) === 409) return;
      throw fail(this.daemon, err, `kill container ${id}`);
    }
  }

  async inspectContainer(id: string): Promise<ContainerInfo | undefined> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.bounded(`inspect container ${id}`, () => this.docker.getContainer(id).inspect());
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw fail(this.daemon, err, `inspect container ${id}`);
    }
    return infoFromInspect(info);
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
      list = await this.bounded('container list', () => this.docker.listContainers({ all: true, filters: { label: labelFilters(labelFilter) } }));
    } catch (err) {
      throw fail(this.daemon, err, 'container list');
    }
    return list.map(infoFromList);
  }

  /**
   * Streams container events for the label until the signal aborts. When the stream ends or breaks
   * (daemon restart), reconnects after a short backoff asking for events `since` the last one seen,
   * so none are lost and none are delivered twice. `onEvent` must not throw: as with an event
   * emitter's listener, an exception escapes as an uncaught one.
   */
  watchEvents(label: string, onEvent: (e: RuntimeEvent) => void, signal: AbortSignal): void {
    void watchLoop(this.daemon, label, onEvent, signal);
  }

  /**
   * Log lines with Docker's timestamps. With `follow`, runs until the container stops or the signal
   * aborts; either way the HTTP stream is closed when iteration ends (also on `break`).
   */
  logs(id: string, opts: LogOptions, signal?: AbortSignal): AsyncIterable<LogLine> {
    return readLogs(this.daemon, id, opts, signal);
  }

  /**
   * Runs argv in the running container and collects its output. Docker cannot kill an exec'd
   * process, so on timeout this stops waiting, closes the stream and throws; the process may linger.
   */
  exec(id: string, argv: string[], opts: { timeoutMs?: number; env?: string[] } = {}): Promise<ExecResult> {
    return exec(this.daemon, id, argv, opts);
  }

  /** Starts argv with stdin attached and hands back its streams (raw and resizable with a PTY). */
  openExec(id: string, opts: ExecStreamOptions): Promise<ExecStream> {
    return openExec(this.daemon, id, opts);
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
      throw fail(this.daemon, err, `inspect container ${id}`, 'container', id);
    }
    const mode = info.HostConfig?.NetworkMode ?? '';
    if (mode.startsWith('container:')) return this.networkOf(mode.slice('container:'.length));
    return Object.values(info.NetworkSettings?.Networks ?? {}).find((n) => n.IPAddress);
  }

  openFile(id: string, path: string): Promise<OpenedFile | undefined> {
    return openFile(this.daemon, id, path);
  }

  getArchive(id: string, path: string, signal?: AbortSignal): Promise<NodeJS.ReadableStream> {
    return getArchive(this.daemon, id, path, signal);
  }

  putArchive(id: string, dir: string, tar: NodeJS.ReadableStream): Promise<void> {
    return putArchive(this.daemon, id, dir, tar);
  }

  statPath(id: string, path: string): Promise<PathStat> {
    return statPath(this.daemon, id, path);
  }

  diskUsage(): Promise<DiskUsageReport> {
    return diskUsage(this.daemon);
  }

  containerStats(id: string): Promise<ContainerStats | undefined> {
    return containerStats(this.daemon, id);
  }
}
