import type { Insertable, Selectable, Updateable } from 'kysely';
import type {
  ApiKey,
  Change,
  Deployment,
  Instance,
  InstanceObservation,
  NetworkVolume,
  Node,
  NodeCapacity,
  Pod,
  PodId,
  PodInput,
  PodSpec,
  PodVersion,
  RegistryAuth,
  Secret,
  SshKey,
  Template,
} from '../model/index.js';
import type {
  ApiKeysTable,
  ChangesTable,
  DeploymentsTable,
  InstancesTable,
  NetworkVolumesTable,
  NodesTable,
  PodsTable,
  PodVersionsTable,
  RegistryAuthsTable,
  SecretsTable,
  SshKeysTable,
  TemplatesTable,
} from './schema.js';
import type { InstancePatch, PodPatch } from './types.js';
import { normalizeSpec } from '../model/spec.js';

/*
 * Rows to records and back. The JSON columns were written by JSON.stringify of the same types, so
 * parsing them back is trusted rather than validated again.
 */

const parse = <T>(text: string): T => JSON.parse(text) as T;

export type PodRow = Selectable<PodsTable>;
export type InstanceRow = Selectable<InstancesTable>;

export const podFromRow = (r: PodRow): Pod => ({
  id: r.id,
  owner: r.owner,
  name: r.name,
  specVersion: r.spec_version,
  desiredStatus: r.desired_status,
  status: r.status,
  statusMessage: r.status_message,
  nodeId: r.node_id,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  lastStartedAt: r.last_started_at,
  terminatedAt: r.terminated_at,
  keepAliveUntil: r.keep_alive_until,
  lastStoppedAt: r.last_stopped_at,
  lifetimeNote: r.lifetime_note,
  revision: r.revision,
});

export const podToRow = (p: Pod): Insertable<PodsTable> => ({
  id: p.id,
  owner: p.owner,
  name: p.name,
  spec_version: p.specVersion,
  desired_status: p.desiredStatus,
  status: p.status,
  status_message: p.statusMessage,
  node_id: p.nodeId,
  created_at: p.createdAt,
  updated_at: p.updatedAt,
  last_started_at: p.lastStartedAt,
  terminated_at: p.terminatedAt,
  keep_alive_until: p.keepAliveUntil,
  last_stopped_at: p.lastStoppedAt,
  lifetime_note: p.lifetimeNote,
  revision: p.revision,
});

export const specFromText = (text: string): PodSpec => normalizeSpec(parse<PodSpec>(text));

export const podVersionFromRow = (r: Selectable<PodVersionsTable>): PodVersion => ({
  podId: r.pod_id,
  version: r.version,
  spec: specFromText(r.spec),
  createdAt: r.created_at,
});

export const podVersionToRow = (podId: PodId, version: number, spec: PodSpec, createdAt: string): Insertable<PodVersionsTable> => ({
  pod_id: podId,
  version,
  spec: JSON.stringify(spec),
  images: JSON.stringify(spec.containers.map((c) => c.image)),
  marathon_path: spec.marathon?.id ?? null,
  created_at: createdAt,
});

export const instanceFromRow = (r: InstanceRow): Instance => ({
  id: r.id,
  podId: r.pod_id,
  ordinal: r.ordinal,
  nodeId: r.node_id,
  specVersion: r.spec_version,
  goal: r.goal,
  resetGeneration: r.reset_generation,
  restartGeneration: r.restart_generation,
  gpuUuids: parse<string[]>(r.gpu_uuids),
  hostPorts: parse<Record<string, number>>(r.host_ports),
  observed: r.observed === null ? null : parse<InstanceObservation>(r.observed),
  revision: r.revision,
});

export const instanceToRow = (i: Instance): Insertable<InstancesTable> => ({
  id: i.id,
  pod_id: i.podId,
  ordinal: i.ordinal,
  node_id: i.nodeId,
  spec_version: i.specVersion,
  goal: i.goal,
  reset_generation: i.resetGeneration,
  restart_generation: i.restartGeneration,
  gpu_uuids: JSON.stringify(i.gpuUuids),
  host_ports: JSON.stringify(i.hostPorts),
  observed: i.observed === null ? null : JSON.stringify(i.observed),
  revision: i.revision,
});

export const nodeFromRow = (r: Selectable<NodesTable>): Node => ({
  id: r.id,
  name: r.name,
  publicIp: r.public_ip,
  labels: parse<Record<string, string>>(r.labels),
  capacity: parse<NodeCapacity>(r.capacity),
  agentVersion: r.agent_version,
  registeredAt: r.registered_at,
  lastSeenAt: r.last_seen_at,
  cordoned: r.cordoned === 1,
  notReadySince: r.not_ready_since,
  revision: r.revision,
});

export const nodeToRow = (n: Node): Insertable<NodesTable> => ({
  id: n.id,
  name: n.name,
  public_ip: n.publicIp,
  labels: JSON.stringify(n.labels),
  capacity: JSON.stringify(n.capacity),
  agent_version: n.agentVersion,
  registered_at: n.registeredAt,
  last_seen_at: n.lastSeenAt,
  cordoned: n.cordoned ? 1 : 0,
  not_ready_since: n.notReadySince ?? null,
  revision: n.revision,
});

export const networkVolumeFromRow = (r: Selectable<NetworkVolumesTable>): NetworkVolume => ({
  id: r.id,
  owner: r.owner,
  name: r.name,
  sizeGb: r.size_gb,
  dataCenterId: r.data_center_id,
  nodeId: r.node_id ?? null,
  createdAt: r.created_at,
});

export const networkVolumeToRow = (v: NetworkVolume): Insertable<NetworkVolumesTable> => ({
  id: v.id,
  owner: v.owner,
  name: v.name,
  size_gb: v.sizeGb,
  data_center_id: v.dataCenterId,
  node_id: v.nodeId,
  created_at: v.createdAt,
});

export const templateFromRow = (r: Selectable<TemplatesTable>): Template => ({
  id: r.id,
  owner: r.owner,
  name: r.name,
  pod: parse<PodInput>(r.pod),
  readme: r.readme,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export const templateToRow = (t: Template): Insertable<TemplatesTable> => ({
  id: t.id,
  owner: t.owner,
  name: t.name,
  pod: JSON.stringify(t.pod),
  readme: t.readme,
  created_at: t.createdAt,
  updated_at: t.updatedAt,
});

export const secretFromRow = (r: Selectable<SecretsTable>): Secret => ({
  owner: r.owner,
  name: r.name,
  valueSealed: r.value_sealed,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export const secretToRow = (s: Secret): Insertable<SecretsTable> => ({
  owner: s.owner,
  name: s.name,
  value_sealed: s.valueSealed,
  created_at: s.createdAt,
  updated_at: s.updatedAt,
});

export const registryAuthFromRow = (r: Selectable<RegistryAuthsTable>): RegistryAuth => ({
  id: r.id,
  owner: r.owner,
  name: r.name,
  username: r.username,
  passwordSealed: r.password_sealed,
  createdAt: r.created_at,
});

export const registryAuthToRow = (a: RegistryAuth): Insertable<RegistryAuthsTable> => ({
  id: a.id,
  owner: a.owner,
  name: a.name,
  username: a.username,
  password_sealed: a.passwordSealed,
  created_at: a.createdAt,
});

export const sshKeyFromRow = (r: Selectable<SshKeysTable>): SshKey => ({
  id: r.id,
  owner: r.owner,
  user: r.user_name,
  name: r.name,
  publicKey: r.public_key,
  fingerprint: r.fingerprint,
  createdAt: r.created_at,
});

export const sshKeyToRow = (k: SshKey): Insertable<SshKeysTable> => ({
  id: k.id,
  owner: k.owner,
  user_name: k.user ?? null,
  name: k.name,
  public_key: k.publicKey,
  fingerprint: k.fingerprint,
  created_at: k.createdAt,
});

export const apiKeyFromRow = (r: Selectable<ApiKeysTable>): ApiKey => ({
  id: r.id,
  owner: r.owner,
  name: r.name,
  hash: r.hash,
  prefix: r.prefix,
  admin: r.admin === 1,
  ...(r.user_name !== null ? { user: r.user_name } : {}),
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at,
});

export const apiKeyToRow = (k: ApiKey): Insertable<ApiKeysTable> => ({
  id: k.id,
  owner: k.owner,
  name: k.name,
  hash: k.hash,
  prefix: k.prefix,
  admin: k.admin ? 1 : 0,
  user_name: k.user ?? null,
  created_at: k.createdAt,
  last_used_at: k.lastUsedAt,
});

export const deploymentFromRow = (r: Selectable<DeploymentsTable>): Deployment => ({
  id: r.id,
  podId: r.pod_id,
  path: r.path,
  action: r.action,
  version: r.version,
  toVersion: Number(r.to_version),
  fromVersion: r.from_version === null ? null : Number(r.from_version),
  startedAt: r.started_at,
});

export const deploymentToRow = (d: Deployment): Insertable<DeploymentsTable> => ({
  id: d.id,
  pod_id: d.podId,
  path: d.path,
  action: d.action,
  version: d.version,
  to_version: d.toVersion,
  from_version: d.fromVersion,
  started_at: d.startedAt,
});

export const changeFromRow = (r: Selectable<ChangesTable>): Change => ({
  revision: r.revision,
  kind: r.kind,
  id: r.entity_id,
  nodeId: r.node_id,
  at: r.at,
});

/** Only the fields the patch gives; `undefined` leaves a column alone, `null` clears it. */
export function podPatchToRow(p: PodPatch): Updateable<PodsTable> {
  const row: Updateable<PodsTable> = {};
  if (p.desiredStatus !== undefined) row.desired_status = p.desiredStatus;
  if (p.status !== undefined) row.status = p.status;
  if (p.statusMessage !== undefined) row.status_message = p.statusMessage;
  if (p.nodeId !== undefined) row.node_id = p.nodeId;
  if (p.lastStartedAt !== undefined) row.last_started_at = p.lastStartedAt;
  if (p.terminatedAt !== undefined) row.terminated_at = p.terminatedAt;
  if (p.name !== undefined) row.name = p.name;
  if (p.keepAliveUntil !== undefined) row.keep_alive_until = p.keepAliveUntil;
  if (p.lastStoppedAt !== undefined) row.last_stopped_at = p.lastStoppedAt;
  if (p.lifetimeNote !== undefined) row.lifetime_note = p.lifetimeNote;
  return row;
}

/** Only the fields the patch gives; `undefined` leaves a column alone, `null` clears it. */
export function instancePatchToRow(p: InstancePatch): Updateable<InstancesTable> {
  const row: Updateable<InstancesTable> = {};
  if (p.nodeId !== undefined) row.node_id = p.nodeId;
  if (p.specVersion !== undefined) row.spec_version = p.specVersion;
  if (p.goal !== undefined) row.goal = p.goal;
  if (p.resetGeneration !== undefined) row.reset_generation = p.resetGeneration;
  if (p.restartGeneration !== undefined) row.restart_generation = p.restartGeneration;
  if (p.gpuUuids !== undefined) row.gpu_uuids = JSON.stringify(p.gpuUuids);
  if (p.hostPorts !== undefined) row.host_ports = JSON.stringify(p.hostPorts);
  if (p.observed !== undefined) row.observed = p.observed === null ? null : JSON.stringify(p.observed);
  return row;
}
