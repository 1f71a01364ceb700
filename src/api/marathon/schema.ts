/**
 * Marathon's pod definition (`docs/docs/rest-api/public/api/v2/types/pod.raml` and its imports) in
 * its normalized form: what `GET /v2/pods/{id}` answers with. Every defaulted field is filled in;
 * optional fields are absent rather than null, and empty collections are left out, as Marathon's
 * generated serializer writes them.
 */

export type EnvValue = string | { secret: string };
export type KVLabels = Record<string, string>;

export type MesosCommand = { shell: string } | { argv: string[] };

export interface MesosExec {
  command: MesosCommand;
  overrideEntrypoint?: boolean;
}

export interface Resources {
  cpus: number;
  mem: number;
  disk: number;
  gpus: number;
}

export interface ExecutorResources {
  cpus: number;
  mem: number;
  disk: number;
}

export type ResourceLimit = number | 'unlimited';

export interface ResourceLimits {
  cpus?: ResourceLimit;
  mem?: ResourceLimit;
}

export interface Endpoint {
  name: string;
  containerPort?: number;
  hostPort?: number;
  protocol?: string[];
  labels?: KVLabels;
  networkNames?: string[];
}

export interface Image {
  kind: 'DOCKER';
  id: string;
  pullConfig?: { secret: string };
  forcePull?: boolean;
  labels?: KVLabels;
}

export interface HttpCheck {
  endpoint: string;
  path?: string;
  scheme: 'HTTP' | 'HTTPS';
}

export interface HealthCheck {
  http?: HttpCheck;
  tcp?: { endpoint: string };
  exec?: { command: MesosCommand };
  gracePeriodSeconds: number;
  intervalSeconds: number;
  maxConsecutiveFailures: number;
  timeoutSeconds: number;
  delaySeconds: number;
}

/** Marathon's `check` (a readiness-style check Mesos only reports): accepted and echoed, not run. */
export interface Check {
  http?: HttpCheck;
  tcp?: { endpoint: string };
  exec?: { command: MesosCommand };
  intervalSeconds: number;
  timeoutSeconds: number;
  delaySeconds: number;
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly: boolean;
}

export interface Artifact {
  uri: string;
  extract: boolean;
  executable: boolean;
  cache: boolean;
  destPath?: string;
}

export interface LinuxInfo {
  seccomp?: { profileName?: string; unconfined: boolean };
  ipcInfo?: { mode: 'PRIVATE' | 'SHARE_PARENT'; shmSize?: number };
}

export interface PodContainer {
  name: string;
  exec?: MesosExec;
  resources: Resources;
  resourceLimits?: ResourceLimits;
  endpoints?: Endpoint[];
  image?: Image;
  environment?: Record<string, EnvValue>;
  user?: string;
  healthCheck?: HealthCheck;
  check?: Check;
  volumeMounts?: VolumeMount[];
  artifacts?: Artifact[];
  labels?: KVLabels;
  lifecycle?: { killGracePeriodSeconds?: number };
  tty?: boolean;
  linuxInfo?: LinuxInfo;
}

export interface PersistentVolumeInfo {
  type: 'root' | 'path' | 'mount';
  size: number;
  maxSize?: number;
  profileName?: string;
  constraints?: string[][];
}

export type PodVolume =
  | { name: string; persistent: PersistentVolumeInfo }
  | { name: string; secret: string }
  | { name: string; host: string }
  | { name: string };

export type NetworkMode = 'container' | 'container/bridge' | 'host';

export interface Network {
  name?: string;
  mode: NetworkMode;
  labels?: KVLabels;
}

export const CONSTRAINT_OPERATORS = ['UNIQUE', 'CLUSTER', 'GROUP_BY', 'LIKE', 'UNLIKE', 'MAX_PER', 'IS'] as const;
export type ConstraintOperator = (typeof CONSTRAINT_OPERATORS)[number];

export interface Constraint {
  fieldName: string;
  operator: ConstraintOperator;
  value?: string;
}

export type UnreachableStrategy = 'disabled' | { inactiveAfterSeconds: number; expungeAfterSeconds: number };

export interface Scheduling {
  backoff: { backoff: number; backoffFactor: number; maxLaunchDelay: number };
  upgrade: { minimumHealthCapacity: number; maximumOverCapacity: number };
  placement?: { constraints?: Constraint[]; acceptedResourceRoles?: string[] };
  killSelection: 'YOUNGEST_FIRST' | 'OLDEST_FIRST';
  unreachableStrategy: UnreachableStrategy;
}

/** A normalized pod definition. `version` is only set on what the API answers with. */
export interface MarathonPod {
  id: string;
  labels?: KVLabels;
  version?: string;
  user?: string;
  environment?: Record<string, EnvValue>;
  containers: PodContainer[];
  secrets?: Record<string, { source: string }>;
  volumes?: PodVolume[];
  networks?: Network[];
  scaling: { kind: 'fixed'; instances: number };
  scheduling: Scheduling;
  executorResources: ExecutorResources;
  role: string;
  linuxInfo?: LinuxInfo;
  legacySharedCgroups?: boolean;
}

/** Marathon's defaults (`PodDefinition`, `state/RunSpec.scala`, the RAML `default:` facets). */
export const MARATHON_DEFAULTS = {
  instances: 1,
  backoff: { backoff: 1, backoffFactor: 1.15, maxLaunchDelay: 300 },
  upgrade: { minimumHealthCapacity: 1, maximumOverCapacity: 1 },
  /** `UpgradeStrategy.forResidentTasks`: a pod with persistent volumes is replaced in place. */
  residentUpgrade: { minimumHealthCapacity: 0.5, maximumOverCapacity: 0 },
  killSelection: 'YOUNGEST_FIRST' as const,
  unreachable: { inactiveAfterSeconds: 0, expungeAfterSeconds: 0 },
  executorResources: { cpus: 0.1, mem: 32, disk: 10 },
  containerResources: { cpus: 1, mem: 128, disk: 0, gpus: 0 },
  healthCheck: { gracePeriodSeconds: 300, intervalSeconds: 60, maxConsecutiveFailures: 3, timeoutSeconds: 20, delaySeconds: 15 },
  check: { intervalSeconds: 60, timeoutSeconds: 20, delaySeconds: 15 },
  role: '*',
};

/** Where Mesos puts a task's sandbox; relative mount paths and `MESOS_SANDBOX` point here. */
export const SANDBOX = '/mnt/mesos/sandbox';

export const volumeName = (v: PodVolume): string => v.name;
export const isPersistent = (v: PodVolume): v is { name: string; persistent: PersistentVolumeInfo } => 'persistent' in v;
export const isSecretVolume = (v: PodVolume): v is { name: string; secret: string } => 'secret' in v;
export const isHostVolume = (v: PodVolume): v is { name: string; host: string } => 'host' in v;
