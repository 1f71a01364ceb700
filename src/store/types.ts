import type {
  ApiKey,
  ApiKeyId,
  Change,
  Deployment,
  Instance,
  InstanceId,
  NetworkVolume,
  NetworkVolumeId,
  Node,
  NodeId,
  OwnerId,
  Pod,
  PodId,
  PodSpec,
  PodStatus,
  PodVersion,
  RegistryAuth,
  RegistryAuthId,
  Secret,
  SshKey,
  SshKeyId,
  Template,
  TemplateId,
} from '../model/index.js';

/** A pod with its current spec and its instances: what every view of a pod is built from. */
export interface PodDetail {
  pod: Pod;
  spec: PodSpec;
  instances: Instance[];
}

export interface PodFilter {
  /** Only this owner's pods; absent: everyone's (admin). */
  owner?: OwnerId;
  ids?: PodId[];
  status?: PodStatus[];
  /** Exact name match. */
  name?: string;
  nodeId?: NodeId;
  /** Image of any container, exact match. */
  image?: string;
  /** Defined under this Marathon path id (`spec.marathon.id`) at its current version. */
  marathonPath?: string;
  /** Terminated pods are left out unless asked for, or unless `status` names TERMINATED. */
  includeTerminated?: boolean;
  /** Page size; absent: all. */
  limit?: number;
  /** Cursor: pods created after this one (list order is creation order, then id). */
  after?: PodId;
}

export type PodPatch = Partial<Pick<Pod, 'desiredStatus' | 'status' | 'statusMessage' | 'nodeId' | 'lastStartedAt' | 'terminatedAt' | 'name'>>;
export type InstancePatch = Partial<Omit<Instance, 'id' | 'podId' | 'ordinal' | 'revision'>>;
export type NodeInput = Omit<Node, 'revision'>;

/**
 * Persistence for the control plane. Every write bumps the store revision and appends to the change
 * feed in the same transaction; listeners hear of it after the commit.
 */
export interface Store {
  readonly dialect: 'sqlite' | 'postgres';
  close(): Promise<void>;

  /** Runs `fn` in one transaction; changes are announced only if it commits. */
  transaction<T>(fn: (tx: Store) => Promise<T>): Promise<T>;

  revision(): Promise<number>;
  /** The oldest revision the change feed still holds; 0 when it is empty. */
  oldestRevision(): Promise<number>;
  /** Drops all but the newest `keep` changes, so the feed does not grow without end; returns how many went. */
  pruneChanges(keep: number): Promise<number>;
  /** Changes after `since`, oldest first, at most `limit`. */
  changesSince(since: number, limit?: number): Promise<Change[]>;
  /** Hear of each committed change in this process. Returns the unsubscribe function. */
  onChange(listener: (change: Change) => void): () => void;

  // Pods and their versions. Version 1 is written with the pod; versions are kept after terminate.
  createPod(pod: Omit<Pod, 'revision' | 'specVersion'>, spec: PodSpec, instances: Omit<Instance, 'revision' | 'specVersion'>[]): Promise<PodDetail>;
  getPod(id: PodId): Promise<PodDetail | undefined>;
  listPods(filter: PodFilter): Promise<PodDetail[]>;
  countPods(filter: PodFilter): Promise<number>;
  updatePod(id: PodId, patch: PodPatch): Promise<Pod>;
  /** Writes the next version and makes it current; returns its number. */
  addPodVersion(id: PodId, spec: PodSpec): Promise<number>;
  getPodVersion(id: PodId, version: number): Promise<PodVersion | undefined>;
  listPodVersions(id: PodId): Promise<PodVersion[]>;
  /** Removes the pod row and its instances; versions stay. */
  deletePod(id: PodId): Promise<void>;

  // Instances
  getInstance(id: InstanceId): Promise<Instance | undefined>;
  listInstances(filter: { podId?: PodId; nodeId?: NodeId }): Promise<Instance[]>;
  insertInstance(instance: Omit<Instance, 'revision'>): Promise<Instance>;
  updateInstance(id: InstanceId, patch: InstancePatch): Promise<Instance>;
  deleteInstance(id: InstanceId): Promise<void>;

  // Nodes
  upsertNode(node: NodeInput): Promise<Node>;
  getNode(id: NodeId): Promise<Node | undefined>;
  listNodes(): Promise<Node[]>;
  touchNode(id: NodeId, at: string): Promise<void>;

  // Network volumes
  createNetworkVolume(v: NetworkVolume): Promise<NetworkVolume>;
  getNetworkVolume(id: NetworkVolumeId): Promise<NetworkVolume | undefined>;
  listNetworkVolumes(owner?: OwnerId): Promise<NetworkVolume[]>;
  updateNetworkVolume(id: NetworkVolumeId, patch: Partial<Pick<NetworkVolume, 'name' | 'sizeGb'>>): Promise<NetworkVolume>;
  deleteNetworkVolume(id: NetworkVolumeId): Promise<void>;

  // Templates (name unique per owner)
  createTemplate(t: Template): Promise<Template>;
  getTemplate(id: TemplateId): Promise<Template | undefined>;
  listTemplates(owner?: OwnerId): Promise<Template[]>;
  updateTemplate(id: TemplateId, patch: Partial<Pick<Template, 'name' | 'pod' | 'readme' | 'updatedAt'>>): Promise<Template>;
  deleteTemplate(id: TemplateId): Promise<void>;

  // Registry credentials
  createRegistryAuth(r: RegistryAuth): Promise<RegistryAuth>;
  getRegistryAuth(id: RegistryAuthId): Promise<RegistryAuth | undefined>;
  listRegistryAuths(owner?: OwnerId): Promise<RegistryAuth[]>;
  deleteRegistryAuth(id: RegistryAuthId): Promise<void>;

  // Secrets (name unique per owner); values stay sealed in the store
  /** Creates or replaces the owner's secret of that name. */
  putSecret(s: Secret): Promise<Secret>;
  getSecret(owner: OwnerId, name: string): Promise<Secret | undefined>;
  listSecrets(owner?: OwnerId): Promise<Secret[]>;
  deleteSecret(owner: OwnerId, name: string): Promise<void>;

  // Deployments (Marathon rollouts in progress): written when one starts, deleted when it ends
  putDeployment(d: Deployment): Promise<void>;
  deleteDeployment(id: string): Promise<void>;
  listDeployments(): Promise<Deployment[]>;

  // SSH keys
  createSshKey(k: SshKey): Promise<SshKey>;
  listSshKeys(owner: OwnerId): Promise<SshKey[]>;
  deleteSshKey(id: SshKeyId): Promise<void>;

  // API keys
  createApiKey(k: ApiKey): Promise<ApiKey>;
  findApiKeyByHash(hash: string): Promise<ApiKey | undefined>;
  listApiKeys(owner?: OwnerId): Promise<ApiKey[]>;
  deleteApiKey(id: ApiKeyId): Promise<void>;
  touchApiKey(id: ApiKeyId, at: string): Promise<void>;
}
