/** The container runtime as the agent needs it: Docker Engine's API (Docker or Podman). */
import type { ExecStream } from '../model/exec-stream.js';
import type { PathStat } from '../model/records.js';
import type { ContainerStats } from './stats.js';
import type { OpenedFile } from './container-root.js';
import type { ContextFile } from './tar.js';

export type { ContainerStats } from './stats.js';

export interface RegistryCredentials {
  username: string;
  password: string;
  /** The registry host the credentials are for, e.g. `registry.example.com:5000`. */
  serveraddress: string;
}

export interface PortBinding {
  containerPort: number;
  /** 0: let the runtime choose. */
  hostPort: number;
  hostIp: string;
  /** @default 'tcp' */
  protocol?: 'tcp' | 'udp';
}

export interface MountPlan {
  /** A named volume, or with `kind: 'bind'` a path on the node; ignored for `tmpfs`. */
  source: string;
  target: string;
  readOnly: boolean;
  /** @default 'volume' */
  kind?: 'volume' | 'bind' | 'tmpfs';
}

/** One container, fully resolved: nothing left for the runtime to decide. */
export interface ContainerPlan {
  /** The Docker container name. */
  name: string;
  image: string;
  entrypoint: string[];
  command: string[];
  env: Record<string, string>;
  labels: Record<string, string>;
  ports: PortBinding[];
  mounts: MountPlan[];
  /** CPU limit in CPUs; null: none. */
  cpus: number | null;
  memoryBytes: number | null;
  /** Size cap of the writable layer; applied where the storage driver supports it. */
  diskBytes: number | null;
  /** GPUs handed to the container by UUID (Docker device requests); simulated GPUs only set env. */
  gpuUuids: string[];
  gpusSimulated: boolean;
  /** `container:<id>` to join another container's network namespace, `host`, or a Docker network's name. */
  networkMode?: string;
  hostname?: string;
  /** Run as this user (name or uid[:gid]); absent: the image's. */
  user?: string;
  tty?: boolean;
  privileged?: boolean;
  /** Capabilities added to Docker's default set. */
  capAdd?: string[];
  /** Seconds between SIGTERM and SIGKILL when the container is stopped; absent: the daemon's default. */
  stopTimeoutSeconds?: number;
}

export type ContainerRunState = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export interface ContainerInfo {
  id: string;
  name: string;
  labels: Record<string, string>;
  state: ContainerRunState;
  /** Set once the container has ended (`exited`, `dead`); null while created or running. */
  exitCode: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  /** Container port → host port, for published ports: `"8080"` for TCP, `"53/udp"` for other protocols. */
  ports: Record<string, number>;
  /** The runtime's error for a container that could not start. */
  error: string | null;
}

export interface PullProgressEvent {
  current: number;
  total: number;
  status: string;
}

export interface RuntimeEvent {
  /** Docker's action: create, start, die, stop, kill, destroy, oom, restart, health_status... */
  action: string;
  containerId: string;
  /** Docker's actor attributes: the container's labels, plus `name` and `image` (and `exitCode` on die). */
  labels: Record<string, string>;
  exitCode: number | null;
  /** Nanoseconds since the epoch; beyond 2^53, so exact only to about a quarter microsecond. */
  timeNano: number;
}

export interface LogLine {
  stream: 'stdout' | 'stderr';
  /** ISO time Docker stamped on the line, with Docker's nanosecond fraction. */
  time: string;
  text: string;
}

export interface LogOptions {
  tail?: number;
  /** Unix seconds or ISO time. */
  since?: string;
  follow?: boolean;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Set when a stream had more than `LIMITS.execOutputBytes`: the rest was read and dropped. */
  truncated?: true;
}

export interface CreateResult {
  id: string;
  /** False when the storage driver cannot cap the writable layer and the cap was left off; true when none was asked for. */
  diskEnforced: boolean;
}

export interface DiskUsageReport {
  /** Container id → bytes in its writable layer. */
  containers: Record<string, number>;
  /** Volume name → bytes used. */
  volumes: Record<string, number>;
}

export interface Runtime {
  /** Throws a RUNTIME BerthError with a plain message when the daemon cannot be reached. */
  ping(): Promise<{ version: string; apiVersion: string }>;
  imageExists(ref: string): Promise<boolean>;
  pullImage(ref: string, auth: RegistryCredentials | null, onProgress: (p: PullProgressEvent) => void, signal?: AbortSignal): Promise<void>;
  /** Builds `tag` from a Dockerfile among a few small files; no registry is involved for `FROM scratch`. */
  buildImage(tag: string, files: readonly ContextFile[]): Promise<void>;
  /** Makes the volume unless it exists; `driverOpts`: options of Docker's `local` driver (an NFS mount: type, o, device). */
  ensureVolume(name: string, labels: Record<string, string>, driverOpts?: Record<string, string>): Promise<void>;
  removeVolume(name: string): Promise<void>;
  listVolumes(labelFilter: Record<string, string>): Promise<{ name: string; labels: Record<string, string> }[]>;
  createContainer(plan: ContainerPlan): Promise<CreateResult>;
  startContainer(id: string): Promise<void>;
  restartContainer(id: string, timeoutSeconds: number): Promise<void>;
  stopContainer(id: string, timeoutSeconds: number): Promise<void>;
  /** Force-removes; a container already gone is not an error. */
  removeContainer(id: string): Promise<void>;
  /** SIGKILL, when a stop or remove did not take; a container not running or gone is not an error. */
  killContainer?(id: string): Promise<void>;
  inspectContainer(id: string): Promise<ContainerInfo | undefined>;
  /** All containers, running or not, carrying every given label (value '' matches any value). */
  listContainers(labelFilter: Record<string, string>): Promise<ContainerInfo[]>;
  /** Container events for containers carrying the label; ends when the signal aborts. Reconnects on its own. */
  watchEvents(label: string, onEvent: (e: RuntimeEvent) => void, signal: AbortSignal): void;
  logs(id: string, opts: LogOptions, signal?: AbortSignal): AsyncIterable<LogLine>;
  exec(id: string, argv: string[], opts?: { timeoutMs?: number; env?: string[] }): Promise<ExecResult>;
  diskUsage(): Promise<DiskUsageReport>;
  /** A container's CPU, memory, network and disk figures now (Docker's stats, read once); undefined when it is gone. */
  containerStats(id: string): Promise<ContainerStats | undefined>;
}

/** An exec to talk to: a shell with a PTY, a command with its stdin, an SFTP helper. */
export interface ExecStreamOptions {
  argv: string[];
  /** Allocate a PTY: stdout and stderr arrive merged on `stdout`, and `resize` works. */
  tty: boolean;
  /** `KEY=value` entries added to the container's environment. */
  env?: string[];
  /** The first window size, for a PTY. */
  cols?: number;
  rows?: number;
  workingDir?: string;
}

export type { ExecStream } from '../model/exec-stream.js';

/** Docker networks the agent makes for pods: separate from Runtime so the agent's other runtimes need not grow; DockerRuntime implements it. */
export interface NetworkRuntime {
  /** Makes a bridge network with that Linux interface name, unless one of the name exists. */
  ensureNetwork(name: string, opts: { bridge: string; labels: Record<string, string> }): Promise<void>;
  /** Networks carrying every given label (value '' matches any value), with how many containers each has and when each was made (ms since the epoch). */
  listNetworks(labelFilter: Record<string, string>): Promise<{ name: string; containers: number; createdMs: number }[]>;
  /** Removes the network; one gone already is not an error, one still in use is (CONFLICT). */
  removeNetwork(name: string): Promise<void>;
}

/**
 * What interactive access needs beyond the Runtime: PTY exec, file copies through the archive
 * API, and the container's address on its network. Separate so the agent's other runtimes need
 * not grow; DockerRuntime implements both.
 */
export interface InteractiveRuntime {
  openExec(id: string, opts: ExecStreamOptions): Promise<ExecStream>;
  /** The container's IP on its (first) network, or on the network of the container it joined; undefined when it has none. */
  containerAddress(id: string): Promise<string | undefined>;
  /** The host's address on the container's network (the network's gateway), which the container can reach. */
  containerGateway(id: string): Promise<string | undefined>;
  /**
   * A regular file of a running container, read on the node through the container's root with its
   * links resolved inside it, Docker not in the data path; undefined where that cannot be done (the
   * caller uses `getArchive` then). NOT_FOUND, or VALIDATION when it is not a regular file.
   */
  openFile?(id: string, path: string): Promise<OpenedFile | undefined>;
  /** A tar stream of `path` (a file or a directory), as Docker's archive API gives it. */
  getArchive(id: string, path: string, signal?: AbortSignal): Promise<NodeJS.ReadableStream>;
  /** Unpacks a tar stream into the directory `dir`, which must exist. */
  putArchive(id: string, dir: string, tar: NodeJS.ReadableStream): Promise<void>;
  /** A path's attributes as the archive API reports them (no program in the image needed); NOT_FOUND when there is none. */
  statPath(id: string, path: string): Promise<PathStat>;
}

