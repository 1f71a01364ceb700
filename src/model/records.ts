import type { ApiKeyId, InstanceId, NetworkVolumeId, NodeId, OwnerId, PodId, RegistryAuthId, SshKeyId, TemplateId } from './ids.js';
import type { PodInput, PodSpec } from './spec.js';
import type { DesiredStatus, InstanceState, PodStatus } from './status.js';

/** ISO-8601 UTC timestamps everywhere. */
export type Timestamp = string;

export interface PullProgress {
  image: string;
  /** Bytes downloaded and bytes to download over all layers seen so far. */
  current: number;
  total: number;
}

export interface Pod {
  id: PodId;
  owner: OwnerId;
  name: string;
  specVersion: number;
  desiredStatus: DesiredStatus;
  status: PodStatus;
  /** Why the pod is in its status: a pull in progress, a placement that failed, an exit. */
  statusMessage: string | null;
  /** Pinned once placed: the volume disk lives there. */
  nodeId: NodeId | null;
  createdAt: Timestamp;
  updatedAt: Timestamp;
  lastStartedAt: Timestamp | null;
  terminatedAt: Timestamp | null;
  /** Until when the owner asked to keep the pod alive: the idle stop and the maximum running time wait till then. */
  keepAliveUntil: Timestamp | null;
  /** When the pod was last stopped (by its owner or a policy): the terminate-after-stopped policy counts from it. */
  lastStoppedAt: Timestamp | null;
  /** What a lifetime policy last did, in words; the status message while the pod stays stopped or terminated, cleared by a start. */
  lifetimeNote: string | null;
  /** The store revision of the last change to this pod or its instances. */
  revision: number;
}

export interface PodVersion {
  podId: PodId;
  version: number;
  spec: PodSpec;
  createdAt: Timestamp;
}

export interface ContainerObservation {
  name: string;
  containerId: string | null;
  state: InstanceState;
  exitCode: number | null;
  startedAt: Timestamp | null;
  finishedAt: Timestamp | null;
  /** The health check's verdict; null: the container has none, or no verdict yet. */
  healthy?: boolean | null;
  /** Consecutive failed health checks now. */
  healthFailures?: number;
}

export interface DiskUsage {
  /** Bytes written to the container disk (writable layer). */
  containerDiskBytes: number | null;
  volumeDiskBytes: number | null;
  /** Whether the declared container disk size is enforced by the runtime, or only reported. */
  containerDiskEnforced: boolean;
}

/** What the agent reports about one instance; the store keeps the latest. */
export interface InstanceObservation {
  state: InstanceState;
  message: string | null;
  exitCode: number | null;
  /** Container port (as string) → host port. */
  ports: Record<string, number>;
  /** Endpoint name → the host port allocated to it (endpoints that asked for one). */
  endpoints?: Record<string, number>;
  containers: ContainerObservation[];
  pull: PullProgress | null;
  /** The last lines of output when the instance exited or failed. */
  lastLogLines: string[];
  startedAt: Timestamp | null;
  /** Restarts of containers that had run (a crash, a failed health check): not pulls. */
  restartCount: number;
  /** Launches in a row that failed before any container ran (a pull, a taken host port), each retried with backoff; absent in reports of older agents. */
  launchFailures?: number;
  observedSpecVersion: number | null;
  observedResetGeneration: number;
  observedRestartGeneration: number;
  disk: DiskUsage | null;
  updatedAt: Timestamp;
}

/** What the instance should be; `stopped` keeps the volume disk, `removed` deletes it. */
export type InstanceGoal = 'running' | 'stopped' | 'removed';

export interface Instance {
  id: InstanceId;
  podId: PodId;
  ordinal: number;
  nodeId: NodeId | null;
  specVersion: number;
  goal: InstanceGoal;
  /** Bumped by reset: containers are recreated (container disk wiped, new port mappings). */
  resetGeneration: number;
  /** Bumped by restart: containers restart in place. */
  restartGeneration: number;
  /** The exact GPUs assigned on the node, by UUID. */
  gpuUuids: string[];
  /** The host ports to ask for again when containers are recreated after a stop; cleared by reset. */
  hostPorts: Record<string, number>;
  observed: InstanceObservation | null;
  revision: number;
}

export interface Gpu {
  index: number;
  uuid: string;
  /** As nvidia-smi names it, e.g. "NVIDIA GeForce RTX 4090"; also the GPU type id. */
  name: string;
  memoryMb: number;
}

export interface NodeCapacity {
  cpus: number;
  memoryMb: number;
  gpus: Gpu[];
  /** True when the GPUs come from a declared inventory, not nvidia-smi. */
  gpusSimulated: boolean;
}

export interface Node {
  id: NodeId;
  name: string;
  /** Where the node's published ports are reached; what pods see as BERTH_PUBLIC_IP. */
  publicIp: string;
  labels: Record<string, string>;
  capacity: NodeCapacity;
  agentVersion: string;
  registeredAt: Timestamp;
  lastSeenAt: Timestamp;
  /** Takes no new instances (`berth node cordon`, and drain); what runs there stays. Absent: false. */
  cordoned?: boolean;
  /** Since when the node is NOT_READY: its agent was not heard from past the node timeout. Null or absent: READY. */
  notReadySince?: Timestamp | null;
  revision: number;
}

export interface NetworkVolume {
  id: NetworkVolumeId;
  owner: OwnerId;
  name: string;
  sizeGb: number;
  /** The node group (data center) whose nodes can attach it. */
  dataCenterId: string;
  /**
   * The node that holds its data, where its data center has no shared storage: pods that use it
   * run there only. Null until a pod first uses it, and always on shared storage.
   */
  nodeId: NodeId | null;
  createdAt: Timestamp;
}

export interface Template {
  id: TemplateId;
  owner: OwnerId;
  name: string;
  /** The pod fields the template sets. */
  pod: PodInput;
  readme: string;
  createdAt: Timestamp;
  updatedAt: Timestamp;
}

export interface RegistryAuth {
  id: RegistryAuthId;
  owner: OwnerId;
  name: string;
  username: string;
  /** AES-256-GCM ciphertext of the password; decrypted only to hand to an agent. */
  passwordSealed: string;
  createdAt: Timestamp;
}

/** A secret of the secret store, by name per owner; pods reference it by name, never by value. */
export interface Secret {
  owner: OwnerId;
  /** e.g. `db/password`; Marathon pods name it in `secrets.<name>.source`. */
  name: string;
  /** AES-256-GCM ciphertext of the value; opened only to hand to the agent that runs the pod. */
  valueSealed: string;
  createdAt: Timestamp;
  updatedAt: Timestamp;
}

export interface SshKey {
  id: SshKeyId;
  owner: OwnerId;
  /** The user who registered it; the gateway lets it in while that user may write in the team. Null: a key for the whole team (from before keys had users, or registered by a key acting for no user). */
  user?: string | null;
  name: string;
  publicKey: string;
  fingerprint: string;
  createdAt: Timestamp;
}

export interface ApiKey {
  id: ApiKeyId;
  owner: OwnerId;
  name: string;
  /** sha256 of the secret; the secret itself is shown once, at creation. */
  hash: string;
  /** The first characters of the secret, to tell keys apart in a list. */
  prefix: string;
  admin: boolean;
  /** The user the key acts for in its owner (team), with that user's role there; null: the whole team (a key from before teams, or an admin key). */
  user?: string | null;
  createdAt: Timestamp;
  lastUsedAt: Timestamp | null;
}

/** One entry of the change feed: every write bumps the store revision. */
export interface Change {
  revision: number;
  kind: 'pod' | 'instance' | 'node';
  id: string;
  /** For instance changes, the node it is assigned to, so agents watch only their own. */
  nodeId: NodeId | null;
  at: Timestamp;
}

/** A path in a container as Docker's archive API reports it: the last component is not followed. */
export interface PathStat {
  name: string;
  size: number;
  /** POSIX st_mode: file type and permission bits. */
  mode: number;
  mtimeMs: number;
  /** Where a symbolic link points, as written; empty for anything else. */
  linkTarget: string;
}

/** A Marathon deployment step action on a pod. */
export type DeploymentAction = 'StartPod' | 'StopPod' | 'ScalePod' | 'RestartPod';

/** A rollout in progress, as Marathon's `GET /v2/deployments` shows it; kept in the store until it ends. */
export interface Deployment {
  id: string;
  /** The Marathon path id of the pod. */
  path: string;
  podId: string;
  action: DeploymentAction;
  /** ISO time of the pod version the deployment moves to (Marathon's `version`). */
  version: string;
  /** The spec version it moves to, and the one it started from (null: the pod is new). */
  toVersion: number;
  fromVersion: number | null;
  startedAt: string;
}
