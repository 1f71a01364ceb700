// The parts of the API's answers the console reads (docs/api.md). Written by hand from the
// documented views, not imported from the server: the console is a client of the public API.

export type PodStatus = 'PROVISIONING' | 'STARTING' | 'RUNNING' | 'EXITED' | 'ERROR' | 'TERMINATED';
export const POD_STATUSES: PodStatus[] = ['PROVISIONING', 'STARTING', 'RUNNING', 'EXITED', 'ERROR', 'TERMINATED'];
export type PodAction = 'start' | 'stop' | 'restart' | 'reset' | 'terminate';

/** A list item (`GET /pods`) and the common part of every pod view. */
export interface PodSummary {
  id: string;
  name: string;
  owner: string;
  status: PodStatus;
  desiredStatus: string;
  statusMessage: string | null;
  allowedActions: PodAction[];
  specVersion: number;
  revision: number;
  image: string | null;
  ports: string[];
  gpuCount: number;
  gpuType: string | null;
  nodeId: string | null;
  publicIp: string | null;
  portMappings: Record<string, number>;
  pull: { image: string; current: number; total: number } | null;
  exitCode: number | null;
  lastLogLines: string[];
  restartCount: number;
  launchFailures: number;
  createdAt: string;
  updatedAt: string;
  lastStartedAt: string | null;
  terminatedAt: string | null;
}

export interface Connection {
  http: { port: number; url: string; private: boolean }[];
  tcp: { port: number; publicIp: string | null; externalPort: number | null; address: string | null }[];
  ssh: { host: string; port: number; user: string; command: string; hostKey?: string; containers?: Record<string, string> } | null;
}

export interface InstanceView {
  id: string;
  nodeId: string | null;
  state: string;
  message: string | null;
  healthy: boolean | null;
  gpus: { index: number; uuid: string; name: string; memoryMb: number; simulated: boolean }[];
  containers: { name: string; state: string; exitCode: number | null; startedAt: string | null; healthy?: boolean | null }[];
  startedAt: string | null;
  restartCount: number;
  disk: { containerDiskBytes: number; volumeDiskBytes: number; containerDiskEnforced: boolean } | null;
}

/** `GET /pods/{id}` and every event: the summary's fields plus the spec, instances and connection details. */
export interface PodView extends PodSummary {
  connection: Connection;
  spec: PodSpec;
  instances: InstanceView[];
}

export interface PodSpec {
  name: string;
  containers: { name: string; image: string; env: Record<string, string>; ports: unknown[] }[];
  gpuCount: number;
  gpuTypeIds: string[];
  vcpuCount: number | null;
  memoryGb: number | null;
  containerDiskGb: number;
  volumeGb: number;
  volumeMountPath: string;
  networkVolumeId: string | null;
  startSsh: boolean;
  [field: string]: unknown;
}

export interface NodeView {
  id: string;
  name: string;
  publicIp: string;
  status: 'READY' | 'NOT_READY';
  notReadySince?: string | null;
  cordoned?: boolean;
  capacity: { cpus: number; memoryMb: number; gpusSimulated: boolean };
  gpus: { index: number; uuid: string; name: string; memoryMb: number; simulated: boolean; inUse: boolean }[];
  allocated: { cpus: number; memoryMb: number; gpus: number };
  instances: number;
}

export interface Template {
  id: string;
  name: string;
  pod: Record<string, unknown>;
  readme?: string | null;
}

export interface NetworkVolume {
  id: string;
  name: string;
  sizeGb: number;
  dataCenterId: string;
  /** Where its data is: the data center's NFS export, or one node (docs/cluster.md). Absent from older servers. */
  storage?: 'nfs' | 'node';
  nodeId?: string | null;
  nodeName?: string | null;
}

export interface Secret {
  name: string;
}

export interface WhoAmI {
  owner: string;
  admin: boolean;
}

/** An instance's view with what the instances tab reads besides InstanceView (docs/api.md "The pod view"). */
export interface InstanceDetail extends InstanceView {
  specVersion: number;
  goal: string;
  ports: Record<string, number>;
  /** Endpoint name → the host port it is published on. */
  endpoints: Record<string, number>;
  launchFailures: number;
  containers: { name: string; containerId: string | null; state: string; exitCode: number | null; startedAt: string | null; finishedAt: string | null; healthy?: boolean | null }[];
}

/** A container of a pod's spec, with what the instances tab shows of it. */
export interface ContainerSpecView {
  name: string;
  image: string;
  endpoints?: { name: string; containerPort: number | null; hostPort: number | null; protocols: string[] }[];
  healthCheck?: { kind: string; [field: string]: unknown } | null;
}

/** `GET /marathon/v2/deployments`: one step with one action on one pod (docs/marathon.md). */
export interface MarathonDeployment {
  id: string;
  version: string;
  affectedPods: string[];
  currentActions: { action: string; pod?: string; readinessCheckResults?: unknown[] }[];
  currentStep: number;
  totalSteps: number;
}

/** Registry credentials (`GET /registry-auths`), never with the password. */
export interface RegistryAuth {
  id: string;
  name: string;
  username: string;
  createdAt: string;
}

export interface SshKeyView {
  id: string;
  name: string;
  publicKey: string;
  fingerprint: string;
  createdAt: string;
}

export interface ApiKeyView {
  id: string;
  name: string;
  owner: string;
  prefix: string;
  admin: boolean;
  createdAt: string;
  lastUsedAt: string | null;
}
