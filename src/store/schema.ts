import type { Generated } from 'kysely';
import type {
  ApiKeyId,
  Change,
  DeploymentAction,
  DesiredStatus,
  InstanceGoal,
  InstanceId,
  JoinTokenId,
  NetworkVolumeId,
  NodeCredentialId,
  NodeId,
  OwnerId,
  PodId,
  PodStatus,
  RegistryAuthId,
  SshKeyId,
  TemplateId,
} from '../model/index.js';

/*
 * The tables as Kysely sees them. Portable column types only: timestamps are ISO-8601 text (they sort
 * as text), JSON is text parsed in rows.ts, booleans are 0/1 integers. Branded ids and status unions
 * are declared here so queries cannot mix a node id into a pod id column.
 */

export interface PodsTable {
  id: PodId;
  owner: OwnerId;
  name: string;
  spec_version: number;
  desired_status: DesiredStatus;
  status: PodStatus;
  status_message: string | null;
  node_id: NodeId | null;
  created_at: string;
  updated_at: string;
  last_started_at: string | null;
  terminated_at: string | null;
  revision: number;
  keep_alive_until: string | null;
  last_stopped_at: string | null;
  lifetime_note: string | null;
}

/** No foreign key to pods: versions outlive the pod, as Marathon keeps an app's versions. */
export interface PodVersionsTable {
  pod_id: PodId;
  version: number;
  /** PodSpec as JSON. */
  spec: string;
  /**
   * The containers' images as a JSON array: the image filter reads this instead of parsing every
   * spec (PostgreSQL's text-to-jsonb cast of 10,000 specs alone costs ~90 ms). Versions never
   * change, so the copy cannot drift.
   */
  images: string;
  /**
   * The Marathon path id the version defines the pod under (`spec.marathon.id`), or null: Marathon's
   * routes find a pod by it without reading every spec.
   */
  marathon_path: string | null;
  created_at: string;
}

export interface InstancesTable {
  id: InstanceId;
  pod_id: PodId;
  ordinal: number;
  node_id: NodeId | null;
  spec_version: number;
  goal: InstanceGoal;
  reset_generation: number;
  restart_generation: number;
  /** string[] as JSON. */
  gpu_uuids: string;
  /** Record<string, number> as JSON. */
  host_ports: string;
  /** InstanceObservation as JSON, or null before the agent's first report. */
  observed: string | null;
  revision: number;
}

export interface NodesTable {
  id: NodeId;
  name: string;
  public_ip: string;
  /** Record<string, string> as JSON. */
  labels: string;
  /** NodeCapacity as JSON. */
  capacity: string;
  agent_version: string;
  registered_at: string;
  last_seen_at: string;
  revision: number;
  /** 0/1: takes no new instances. */
  cordoned: Generated<number>;
  /** Null: READY. */
  not_ready_since: string | null;
}

export interface NetworkVolumesTable {
  id: NetworkVolumeId;
  owner: OwnerId;
  name: string;
  size_gb: number;
  data_center_id: string;
  /** The holding node (no shared storage in its data center); null until first used. */
  node_id: NodeId | null;
  created_at: string;
}

export interface TemplatesTable {
  id: TemplateId;
  owner: OwnerId;
  name: string;
  /** PodInput as JSON. */
  pod: string;
  readme: string;
  created_at: string;
  updated_at: string;
}

export interface RegistryAuthsTable {
  id: RegistryAuthId;
  owner: OwnerId;
  name: string;
  username: string;
  password_sealed: string;
  created_at: string;
}

export interface SecretsTable {
  owner: OwnerId;
  name: string;
  value_sealed: string;
  created_at: string;
  updated_at: string;
}

export interface DeploymentsTable {
  id: string;
  pod_id: string;
  path: string;
  action: DeploymentAction;
  version: string;
  to_version: number;
  from_version: number | null;
  started_at: string;
}

export interface SshKeysTable {
  id: SshKeyId;
  owner: OwnerId;
  user_name: string | null;
  name: string;
  public_key: string;
  fingerprint: string;
  created_at: string;
}

export interface ApiKeysTable {
  id: ApiKeyId;
  owner: OwnerId;
  name: string;
  hash: string;
  prefix: string;
  /** 0 or 1. */
  admin: number;
  user_name: string | null;
  created_at: string;
  last_used_at: string | null;
}

export interface TeamsTable {
  name: string;
  /** Partial<PodSecurityPolicy> as JSON. */
  policy: string;
  /** TeamQuota as JSON. */
  quota: string;
  created_at: string;
}

export interface TeamMembersTable {
  team: string;
  user_name: string;
  role: string;
  created_at: string;
}

export interface AuditLogTable {
  id: string;
  at: string;
  team: string;
  user_name: string | null;
  key_id: string | null;
  action: string;
  object_type: string;
  object_id: string;
  /** JSON. */
  detail: string;
}

/** One usage sample per instance per minute (usage.ts); no foreign key: samples of a deleted pod age out. */
export interface UsageSamplesTable {
  instance_id: InstanceId;
  /** The sample's minute, `YYYY-MM-DDTHH:MM`: the key that keeps one a minute. */
  minute: string;
  pod_id: PodId;
  node_id: NodeId | null;
  at: string;
  /** InstanceUsage as JSON. */
  sample: string;
}

export interface ChangesTable {
  revision: Generated<number>;
  kind: Change['kind'];
  entity_id: string;
  node_id: NodeId | null;
  at: string;
}

export interface Database {
  pods: PodsTable;
  pod_versions: PodVersionsTable;
  instances: InstancesTable;
  nodes: NodesTable;
  network_volumes: NetworkVolumesTable;
  templates: TemplatesTable;
  registry_auths: RegistryAuthsTable;
  ssh_keys: SshKeysTable;
  secrets: SecretsTable;
  deployments: DeploymentsTable;
  api_keys: ApiKeysTable;
  changes: ChangesTable;
  usage_samples: UsageSamplesTable;
  teams: TeamsTable;
  team_members: TeamMembersTable;
  audit_log: AuditLogTable;
  join_tokens: JoinTokensTable;
  node_credentials: NodeCredentialsTable;
  leases: LeasesTable;
  servers: ServersTable;
  cluster_keys: ClusterKeysTable;
  redeemed_links: RedeemedLinksTable;
}

/** Join tokens (model/join.ts), kept as hashes; revoked and expired ones a while, to say why a join is refused. */
export interface JoinTokensTable {
  id: JoinTokenId;
  description: string;
  /** Record<string, string> as JSON. */
  labels: string;
  hash: string;
  max_uses: number | null;
  uses: number;
  expires_at: string | null;
  revoked_at: string | null;
  created_at: string;
  last_used_at: string | null;
}

/** One node's credential for the agent endpoints, kept as a hash; deleted with its node. */
export interface NodeCredentialsTable {
  id: NodeCredentialId;
  node_id: NodeId;
  hash: string;
  token_id: JoinTokenId | null;
  created_at: string;
  last_used_at: string | null;
}

/** A lease one server holds at a time (the leader's: `leader`); times are the database clock's, in ms since the epoch. */
export interface LeasesTable {
  name: string;
  holder: string | null;
  holder_url: string | null;
  /** Goes up by one each time another server takes the lease: the fencing token. */
  epoch: number;
  expires_at: number;
}

/** The servers on this database, each heartbeating its advertised URL (agents dial every one). */
export interface ServersTable {
  id: string;
  url: string;
  started_at: string;
  /** The database clock at the last heartbeat, ms since the epoch. */
  seen_at: number;
}

/** Key material every server on the database must share (the secret sealer's key, the proxy's signing key, the SSH host key). */
export interface ClusterKeysTable {
  name: string;
  value: string;
  created_at: string;
}

/** One-time proxy links redeemed, until they expire: a link works once, whichever server's proxy it reaches. */
export interface RedeemedLinksTable {
  nonce: string;
  /** ms since the epoch. */
  expires_at: number;
}
