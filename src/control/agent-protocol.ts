import type { Duplex, Readable } from 'node:stream';
import type { ExecStream, Gpu, InstanceGoal, InstanceId, InstanceObservation, NodeCapacity, NodeId, PathStat, PodId, PodSpec, UsageReport } from '../model/index.js';

/**
 * The agent protocol. Agents pull: they register, watch their assignments and report what they
 * observe. The in-process agent of `berth server` and a remote `berth agent` speak the same calls;
 * only the transport differs.
 */
export interface NodeRegistration {
  /** Known after the first registration; the agent keeps it in its data dir. */
  nodeId?: NodeId;
  name: string;
  publicIp: string;
  labels: Record<string, string>;
  capacity: NodeCapacity;
  agentVersion: string;
}

export interface RegistryLogin {
  username: string;
  password: string;
  serveraddress: string;
}

/** A server of the cluster an agent connects to (`GET /api/v1/agent/servers`): its id and the URL it advertises. */
export interface ClusterServer {
  id: string;
  url: string;
}

/** Everything an agent needs to run one instance, resolved by the control plane. */
export interface Assignment {
  instanceId: InstanceId;
  podId: PodId;
  ordinal: number;
  specVersion: number;
  goal: InstanceGoal;
  resetGeneration: number;
  restartGeneration: number;
  /** The restart generation the node last reported done: a restart asked for while the agent was away is not lost. */
  observedRestartGeneration: number | null;
  spec: PodSpec;
  gpus: Gpu[];
  /** Host ports to ask for again (kept across stop/start; cleared by reset). */
  hostPorts: Record<string, number>;
  /** Env the control plane injects (pod id, counts, PUBLIC_KEY…); the agent adds port and IP vars. */
  env: Record<string, string>;
  registryLogin: RegistryLogin | null;
  /** The values of the pod's secrets, by the pod's own secret names (`PodSpec.secrets`); never logged. */
  secrets: Record<string, string>;
  /** Docker volume names; null when the pod has none. */
  volumeDisk: string | null;
  networkVolume: string | null;
  /**
   * Options of Docker's `local` driver the network volume is made with on the node: NFS on a data
   * center's shared storage (`type`, `o`, `device`). Absent or null: a plain local volume, which
   * holds the data on this node only.
   */
  networkVolumeOptions?: Record<string, string> | null;
  /**
   * The Docker network of the pod's team, which the node makes on demand: a pod on the pod network
   * (`bridge`, or `container` without a name) joins it instead of Docker's default bridge. Absent or
   * null: Docker's default bridge (an older server).
   */
  podNetwork?: string | null;
}

export interface WatchResult {
  revision: number;
  /** Every assignment of the node; with `partial`, only those of instances changed after `since`. */
  assignments: Assignment[];
  /**
   * Set on an answer to a watch that asked for changes only: the agent keeps the assignments it has
   * for the instances in `instanceIds` not in `assignments`, and drops those not in `instanceIds`.
   * Absent: `assignments` is the whole set (the first watch, a wake, a feed too short, an older server).
   */
  partial?: { instanceIds: InstanceId[] };
  /** Docker volume names of the network volumes that exist; the agent removes the others it holds. */
  networkVolumes: string[];
}

export interface InstanceReport {
  instanceId: InstanceId;
  observation: InstanceObservation;
}

export interface AgentChannel {
  register(reg: NodeRegistration): Promise<{ nodeId: NodeId }>;
  /**
   * Answers at once when the node's assignments changed after `since`, else after `waitMs` with the
   * same revision. `changesOnly`: the answer may be partial (WatchResult.partial), as an agent that
   * keeps the last answer's assignments asks: a burst of 200 pods then costs each answer the few
   * assignments that changed, not all 200 built again.
   */
  watch(nodeId: NodeId, since: number, waitMs: number, signal?: AbortSignal, changesOnly?: boolean): Promise<WatchResult>;
  report(nodeId: NodeId, reports: InstanceReport[]): Promise<void>;
  /**
   * The usage of the node's running instances, one batch per interval, which replaces the last: on
   * a path of its own, so samples move no revision and wake no watcher. Absent: the agent measures nothing.
   */
  reportUsage?(nodeId: NodeId, samples: UsageReport[]): Promise<void>;
}

/**
 * Everything the control plane, the API and the gateways do inside a node's pods: logs, commands, a
 * shell with a PTY, a TCP stream into the pod, files. Complete: an agent in the server's process
 * serves it over its local runtime, and a remote agent will serve the same over its channel, so
 * nothing above it asks which kind of node it has.
 */
export interface NodeAccess {
  logs(instanceId: InstanceId, container: string | undefined, opts: { tail?: number; since?: string; follow?: boolean }, signal?: AbortSignal): AsyncIterable<{ stream: 'stdout' | 'stderr'; time: string; text: string }>;
  exec(instanceId: InstanceId, container: string | undefined, argv: string[], timeoutMs: number): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  /** Starts a process with its stdin attached: a shell with a PTY, or a command. */
  openExec(instanceId: InstanceId, container: string | undefined, req: ExecRequest): Promise<ExecStream>;
  /** A TCP connection to `port` inside the instance's network namespace, as `localhost:port` in the pod. */
  connect(instanceId: InstanceId, port: number): Promise<Duplex>;
  /**
   * A file's bytes, streamed, with its size; NOT_FOUND when there is none, VALIDATION when it is not
   * a regular file. Links on the way stay inside the container; one at the end may be refused as not
   * a regular file (Docker's archive API, which a stopped container is read through, hands it over
   * as a link): callers that want what it points to resolve it first (`statFile`).
   */
  readFile(instanceId: InstanceId, container: string | undefined, path: string, signal?: AbortSignal): Promise<{ size: number; content: Readable }>;
  /** The node's own address on the pod's network: where the pod reaches a listener of the node (ssh -R). */
  hostAddress(instanceId: InstanceId): Promise<string>;
  /** Lets the pod reach `port` of the node's `address` through the node's firewall until the returned function is called (ssh -R). */
  openToPod?(instanceId: InstanceId, address: string, port: number): Promise<() => Promise<void>>;
  /**
   * A listener on the node where the pod reaches it (`hostAddress`, the node's firewall opened to the
   * pod), each connection handed to `onConnection`: ssh -R when the gateway is not on the pod's node.
   * Absent: the caller listens itself (it is on the node). Port 0 picks a free one.
   */
  listenForPod?(instanceId: InstanceId, port: number, onConnection: (socket: Duplex, from: { address: string; port: number }) => void): Promise<{ address: string; port: number; close(): Promise<void> }>;
  /** A path's attributes without running anything in the container (for images without `stat`); the last component is not followed. */
  statFile(instanceId: InstanceId, container: string | undefined, path: string): Promise<PathStat>;
  /** Replaces `path` with exactly `size` bytes from `content`. */
  writeFile(instanceId: InstanceId, container: string | undefined, path: string, content: Readable, size: number, mode: number): Promise<void>;
}

/** A process to start in a pod's container (`NodeAccess.openExec`). */
export interface ExecRequest {
  argv: string[];
  tty: boolean;
  env?: Record<string, string>;
  cols?: number;
  rows?: number;
}

export type { ExecStream } from '../model/index.js';
