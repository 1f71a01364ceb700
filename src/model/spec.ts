/**
 * The pod spec's shape: the compiled spec (what the store keeps per version and the agent runs), the
 * friendly input, the defaults, and the small questions asked of a spec. Compiling input into a spec
 * is in `spec-compile.ts`, the input form in `spec-input.ts`, port specs in `port-spec.ts`.
 */
import type { NetworkVolumeId, RegistryAuthId, TemplateId } from './ids.js';
import type { LifetimeInput, LifetimePolicy } from './lifetime.js';

export type PortProtocol = 'http' | 'tcp';
export interface PortSpec {
  port: number;
  protocol: PortProtocol;
  /** An http port only the owner reaches through the proxy (`8888/http:private`); absent: public, as on RunPod. */
  private?: true;
}

export interface VolumeMount {
  /** `volume-disk`, `network-volume`, or a pod volume's name. */
  name: string;
  mountPath: string;
  readOnly: boolean;
}

/**
 * A named port of a container (Marathon's endpoint). With bridge networking the container port is
 * published on a host port; with host networking the container listens on the allocated host port.
 */
export interface EndpointSpec {
  name: string;
  /** null: none (host networking: the container listens on the host port). */
  containerPort: number | null;
  /** null: not asked for; 0: any free port of the node; else exactly that port. */
  hostPort: number | null;
  /** Free-form, as Marathon (`tcp`, `udp`, `http`); `http` makes it reachable through the proxy. */
  protocols: string[];
  labels: Record<string, string>;
}

export interface HealthCheckSpec {
  kind: 'http' | 'tcp' | 'exec';
  /** http/tcp: the name of one of this container's endpoints. */
  endpoint: string | null;
  /** http: the request path. */
  path: string | null;
  scheme: 'HTTP' | 'HTTPS';
  /** exec: argv; a shell command is `['/bin/sh', '-c', command]`. */
  argv: string[];
  /** Failures are not counted until this long after the start, or until the first success. */
  gracePeriodSeconds: number;
  intervalSeconds: number;
  timeoutSeconds: number;
  /** This many failures in a row replace the instance; 0: never. */
  maxConsecutiveFailures: number;
  /** The first check runs this long after the start. */
  delaySeconds: number;
}

/** What one container may use; null: no limit of its own (the pod's `vcpuCount`/`memoryGb` apply). */
export interface ContainerResources {
  cpus: number | null;
  memoryMb: number | null;
  gpus: number;
  diskMb: number;
}

export interface ContainerSpec {
  name: string;
  image: string;
  /** Empty: the image's ENTRYPOINT. */
  entrypoint: string[];
  /** Empty: the image's CMD. */
  command: string[];
  env: Record<string, string>;
  /** Env vars whose value is a secret of the pod: variable → name in `PodSpec.secrets`. */
  secretEnv: Record<string, string>;
  ports: PortSpec[];
  endpoints: EndpointSpec[];
  resources: ContainerResources;
  /** Mounts of the pod's `volumes` by name. */
  volumeMounts: VolumeMount[];
  healthCheck: HealthCheckSpec | null;
  /** Run as this user (name or uid[:gid]); null: the image's. */
  user: string | null;
  tty: boolean;
  /** Seconds between SIGTERM and SIGKILL; null: the node's default. */
  killGracePeriodSeconds: number | null;
  labels: Record<string, string>;
  /** Docker's privileged mode; only where the pod security policy grants it. Absent: not privileged. */
  privileged?: true;
  /** Linux capabilities added to Docker's default set (`NET_ADMIN`); only those the policy grants. Absent: none. */
  capAdd?: string[];
}

/** A volume of the pod, mounted by its containers' `volumeMounts`. */
export type PodVolume =
  /** Lives as long as the instance; shared by its containers. */
  | { name: string; kind: 'ephemeral' }
  /** A directory of the node, only under the paths the operator allows. */
  | { name: string; kind: 'host'; hostPath: string }
  /** A volume on the node that outlives the instance's containers; the pod stays on its node. */
  | { name: string; kind: 'persistent'; sizeMb: number }
  /** One file holding the value of a pod secret. */
  | { name: string; kind: 'secret'; secret: string };

export type NetworkMode = 'bridge' | 'host' | 'container';

export interface NetworkSpec {
  /** `bridge`: the node's Docker bridge with published ports (RunPod pods, Marathon `container/bridge`); `host`: the node's own network; `container`: a named Docker network. */
  mode: NetworkMode;
  /** `container` mode: the Docker network to join; null: the default bridge. */
  name: string | null;
}

export const CONSTRAINT_OPERATORS = ['UNIQUE', 'CLUSTER', 'GROUP_BY', 'LIKE', 'UNLIKE', 'MAX_PER', 'IS'] as const;
export type ConstraintOperator = (typeof CONSTRAINT_OPERATORS)[number];

/** A placement rule on a node field: `hostname` (the node name) or one of the node's labels. */
export interface Constraint {
  field: string;
  operator: ConstraintOperator;
  value: string | null;
}

export interface UpgradePolicy {
  /** Share of instances that must stay healthy during a rollout (0..1). */
  minimumHealthCapacity: number;
  /** Share of extra instances a rollout may start beside the old ones (0..1). */
  maximumOverCapacity: number;
}

/**
 * How the pod was defined through the Marathon API: its path id and the normalized definition it
 * answers with. A change through another API drops the definition (it would show the spec before the
 * change); the Marathon API then writes one from the spec.
 */
export interface MarathonMeta {
  id: string;
  definition?: Record<string, unknown>;
}

export type RestartPolicy = 'always' | 'on-failure' | 'never';

/**
 * When an instance gets a container of its own that holds its network namespace, host name and
 * published ports, the app containers joining it: only when several containers share them
 * (`multi-container`), or `always`, one container or many (Marathon's layout).
 */
export type NetworkHolder = 'always' | 'multi-container';

export interface BackoffPolicy {
  initialSeconds: number;
  factor: number;
  maxSeconds: number;
}

/** Seconds before the next try after `tries` failed ones, as Marathon: `initial × factor^tries`, capped. */
export function backoffSeconds(policy: BackoffPolicy, tries: number): number {
  return Math.min(policy.maxSeconds, policy.initialSeconds * policy.factor ** tries);
}

/** A compiled, fully defaulted pod spec: what the store keeps per version and the agent runs. */
export interface PodSpec {
  name: string;
  containers: ContainerSpec[];
  /** 0: a CPU-only pod. */
  gpuCount: number;
  /** Acceptable GPU types in order of preference; empty: any. */
  gpuTypeIds: string[];
  /** CPUs reserved on the node and enforced as a limit; null: no reservation, no limit. */
  vcpuCount: number | null;
  /** Memory reserved and enforced as a limit, in GB; null: no reservation, no limit. */
  memoryGb: number | null;
  containerDiskGb: number;
  /** The volume disk; 0: none. */
  volumeGb: number;
  volumeMountPath: string;
  /** Mounted at `volumeMountPath` in place of the volume disk. */
  networkVolumeId: NetworkVolumeId | null;
  registryAuthId: RegistryAuthId | null;
  templateId: TemplateId | null;
  /** Put the owner's SSH keys in PUBLIC_KEY, as RunPod's `startSsh`. */
  startSsh: boolean;
  restartPolicy: RestartPolicy;
  instances: number;
  labels: Record<string, string>;
  backoff: BackoffPolicy;
  volumes: PodVolume[];
  network: NetworkSpec;
  /** Secrets the pod uses: its own name → the name in Berth's secret store. Values never live in a spec. */
  secrets: Record<string, string>;
  constraints: Constraint[];
  upgrade: UpgradePolicy;
  killSelection: 'YOUNGEST_FIRST' | 'OLDEST_FIRST';
  /** Set for pods defined through /marathon/v2; null otherwise. */
  marathon: MarathonMeta | null;
  /**
   * Whether one container's network is held apart too (see `holdsNetworkApart`); kept by updates.
   * Absent: `multi-container` (left out so that specs without it read as before).
   */
  networkHolder?: NetworkHolder;
  /** Idle stop, maximum running time, terminate after stopped (`lifetime.ts`); absent: none. Changing it alone recreates nothing. */
  lifetime?: LifetimePolicy;
}

/** The friendly form the native API, CLI and templates take. Every field is optional. */
export interface PodInput {
  name?: string;
  image?: string;
  entrypoint?: string[];
  command?: string[];
  env?: Record<string, string>;
  /** `["8888/http", "22/tcp"]` or RunPod's `"8888/http,22/tcp"`. */
  ports?: string[] | string;
  containers?: ContainerInput[];
  gpuCount?: number;
  gpuTypeIds?: string[];
  vcpuCount?: number | null;
  memoryGb?: number | null;
  containerDiskGb?: number;
  volumeGb?: number;
  volumeMountPath?: string;
  networkVolumeId?: string | null;
  registryAuthId?: string | null;
  templateId?: string | null;
  startSsh?: boolean;
  restartPolicy?: RestartPolicy;
  instances?: number;
  labels?: Record<string, string>;
  backoff?: Partial<BackoffPolicy>;
  volumes?: PodVolume[];
  network?: Partial<NetworkSpec>;
  /**
   * Without `network`: the node's network where the caller's pod security policy grants it, the
   * pod network otherwise (Marathon: a pod with no networks runs in the host's namespace).
   */
  hostNetworkByDefault?: boolean;
  secrets?: Record<string, string>;
  constraints?: (Omit<Constraint, 'value'> & { value?: string | null })[];
  upgrade?: Partial<UpgradePolicy>;
  killSelection?: 'YOUNGEST_FIRST' | 'OLDEST_FIRST';
  marathon?: MarathonMeta | null;
  /** @default multi-container */
  networkHolder?: NetworkHolder;
  /** Merged per policy over a template's and the server's default; `null` turns them all off. */
  lifetime?: LifetimeInput | null;
}

export interface ContainerInput {
  name?: string;
  image?: string;
  entrypoint?: string[];
  command?: string[];
  env?: Record<string, string>;
  secretEnv?: Record<string, string>;
  ports?: string[] | string;
  endpoints?: (Partial<EndpointSpec> & { name: string })[];
  resources?: Partial<ContainerResources>;
  volumeMounts?: (Omit<VolumeMount, 'readOnly'> & { readOnly?: boolean })[];
  healthCheck?: (Partial<HealthCheckSpec> & { kind: HealthCheckSpec['kind'] }) | null;
  user?: string | null;
  tty?: boolean;
  killGracePeriodSeconds?: number | null;
  labels?: Record<string, string>;
  privileged?: boolean;
  capAdd?: string[];
}

/** @default values a pod gets when the request leaves a field out (RunPod's, where it has one). */
export const POD_DEFAULTS = {
  name: 'my pod',
  containerDiskGb: 50,
  volumeGb: 20,
  volumeMountPath: '/workspace',
  restartPolicy: 'always' as RestartPolicy,
  startSsh: true,
  instances: 1,
  /** As Marathon: 1 s, ×1.15, at most 300 s. */
  backoff: { initialSeconds: 1, factor: 1.15, maxSeconds: 300 },
  network: { mode: 'bridge' as NetworkMode, name: null },
  /** As Marathon: a rollout keeps every instance until its replacement is healthy, and may double the pod meanwhile. */
  upgrade: { minimumHealthCapacity: 1, maximumOverCapacity: 1 },
  killSelection: 'YOUNGEST_FIRST' as const,
  /** As Marathon's health check defaults. */
  healthCheck: { gracePeriodSeconds: 300, intervalSeconds: 60, timeoutSeconds: 20, maxConsecutiveFailures: 3, delaySeconds: 15 },
};

/**
 * Whether an instance's network namespace, host name and published ports are held by a container
 * of their own that the app containers join, rather than by its one app container.
 */
export const holdsNetworkApart = (spec: PodSpec): boolean => spec.networkHolder === 'always' || spec.containers.length > 1;

/** Fills the fields a spec written by an older Berth lacks, so every reader sees the whole shape. */
export function normalizeSpec(spec: PodSpec): PodSpec {
  const s = spec as Partial<PodSpec> & Pick<PodSpec, 'containers'>;
  if (s.marathon !== undefined && (s.marathon === null || s.networkHolder !== undefined) && s.containers.every((ct) => ct.resources !== undefined)) return spec;
  return {
    ...spec,
    volumes: s.volumes ?? [],
    network: s.network ?? { ...POD_DEFAULTS.network },
    secrets: s.secrets ?? {},
    constraints: s.constraints ?? [],
    upgrade: s.upgrade ?? { ...POD_DEFAULTS.upgrade },
    killSelection: s.killSelection ?? POD_DEFAULTS.killSelection,
    marathon: s.marathon ?? null,
    // Reads stored data: before the field, every pod defined through /marathon/v2 held its network apart.
    ...(s.networkHolder !== undefined || s.marathon ? { networkHolder: s.networkHolder ?? 'always' } : {}),
    containers: s.containers.map((ct) => ({
      ...ct,
      secretEnv: ct.secretEnv ?? {},
      endpoints: ct.endpoints ?? [],
      resources: ct.resources ?? { cpus: null, memoryMb: null, gpus: 0, diskMb: 0 },
      volumeMounts: ct.volumeMounts ?? [],
      healthCheck: ct.healthCheck ?? null,
      user: ct.user ?? null,
      tty: ct.tty ?? false,
      killGracePeriodSeconds: ct.killGracePeriodSeconds ?? null,
      labels: ct.labels ?? {},
    })),
  };
}

/** All ports of the pod, over its containers. */
export const podPorts = (spec: PodSpec): PortSpec[] => spec.containers.flatMap((c) => c.ports);
