import type { Instance, Node, NodeId, OwnerId, Pod, PodId, PodSpec, PodStatus } from '../model/index.js';
import type { ChangeFeed } from './changes.js';
import type { DeploymentStore } from './deployments.js';
import type { InstanceStore } from './instances.js';
import type { JoinTokenStore, NodeCredentialStore } from './join-tokens.js';
import type { ApiKeyStore, SshKeyStore } from './keys.js';
import type { AuditStore, TeamStore } from './teams.js';
import type { LeaseStore } from './leases.js';
import type { NodeStore } from './nodes.js';
import type { PodStore } from './pods.js';
import type { NetworkVolumeStore, RegistryAuthStore, SecretStore, TemplateStore } from './resources.js';
import type { UsageStore } from './usage.js';

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
  /**
   * The pod's path id at its current version, as the API that defined it gave it (`spec.marathon.id`);
   * an indexed column. Pods without one have none here: `/<podId>` is the Marathon API's reading.
   */
  marathonPath?: string;
  /** Terminated pods are left out unless asked for, or unless `status` names TERMINATED. */
  includeTerminated?: boolean;
  /** Page size; absent: all. */
  limit?: number;
  /** Cursor: pods created after this one (list order is creation order, then id). */
  after?: PodId;
}

export type PodPatch = Partial<Pick<Pod, 'desiredStatus' | 'status' | 'statusMessage' | 'nodeId' | 'lastStartedAt' | 'terminatedAt' | 'name' | 'keepAliveUntil' | 'lastStoppedAt' | 'lifetimeNote'>>;
export type InstancePatch = Partial<Omit<Instance, 'id' | 'podId' | 'ordinal' | 'revision'>>;
export type NodeInput = Omit<Node, 'revision'>;

/**
 * Persistence for the control plane. Every write bumps the store revision and appends to the change
 * feed in the same transaction; listeners hear of it after the commit. Each slice is declared beside
 * its implementation (pods.ts, instances.ts, ...); sql-store.ts puts them together.
 */
export interface Store
  extends ChangeFeed,
    PodStore,
    InstanceStore,
    NodeStore,
    NetworkVolumeStore,
    TemplateStore,
    RegistryAuthStore,
    SecretStore,
    DeploymentStore,
    SshKeyStore,
    ApiKeyStore,
    UsageStore,
    TeamStore,
    AuditStore,
    JoinTokenStore,
    NodeCredentialStore,
    LeaseStore {
  readonly dialect: 'sqlite' | 'postgres';
  close(): Promise<void>;

  /**
   * Runs `fn` in one transaction; changes are announced only if it commits. Nested calls join the
   * outer transaction. Inside `fn`, use only `tx`: on SQLite the transaction holds the one
   * connection, so a call on the outer store would wait for it forever.
   */
  transaction<T>(fn: (tx: Store) => Promise<T>): Promise<T>;
}
