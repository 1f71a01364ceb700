/**
 * Request schemas of RunPod's REST v1 (runpod/docs api-reference/openapi.json) and v2
 * (api-reference-v2/openapi.json), checked by Fastify. Unlike RunPod's, they let unknown members
 * through: Berth answers them in the `berth-ignored-fields` header instead of refusing the request.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

const Str = Type.String();
const Strings = Type.Array(Type.String());
const Env = Type.Record(Type.String(), Type.String());
const Bool = Type.Boolean();
const opt = Type.Optional;
const nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const CUDA = Type.String({ pattern: '^\\d+\\.\\d+$' });
/**
 * One of a few strings, as a JSON Schema `enum`: a wrong value is one violation that names the
 * allowed ones, where a union of literals is one violation per literal and one for the union.
 */
const oneOf = <T extends string>(values: readonly T[]) => Type.Unsafe<T>({ type: 'string', enum: [...values] });

export const IdParams = Type.Object({ id: Str });
export type IdParamsT = Static<typeof IdParams>;

// ---- v2 ----

const PersistentMount = Type.Object({ size: Type.Integer({ minimum: 10 }), path: Str });
const NetworkMount = Type.Object({ volumeId: Str, path: Str });
const Mounts = Type.Object({ persistent: opt(PersistentMount), network: opt(Type.Array(NetworkMount, { maxItems: 1 })) });

const containerConfig = {
  image: opt(Str),
  args: opt(Str),
  disk: opt(Type.Integer({ minimum: 1 })),
  env: opt(Env),
  ports: opt(Strings),
  registry: opt(nullable(Type.String())),
};

export const V2CreatePod = Type.Object({
  ...containerConfig,
  name: Type.String({ minLength: 1 }),
  cloud: opt(oneOf(['SECURE', 'COMMUNITY'])),
  gpu: opt(Type.Object({ id: Type.String({ minLength: 1 }), count: opt(Type.Integer({ minimum: 1 })), allowedCudaVersions: opt(Type.Array(CUDA)), minCudaVersion: opt(CUDA) })),
  cpu: opt(Type.Object({ id: Type.String({ minLength: 1 }), vcpuCount: Type.Integer({ minimum: 2 }) })),
  dataCenterIds: opt(Strings),
  globalNetworking: opt(Bool),
  mounts: opt(Mounts),
  startJupyter: opt(Bool),
  startSsh: opt(Bool),
  templateId: opt(Type.String({ minLength: 1 })),
});
export type V2CreatePodT = Static<typeof V2CreatePod>;

export const V2UpdatePod = Type.Object({
  ...containerConfig,
  name: opt(Type.String({ minLength: 1 })),
  globalNetworking: opt(Bool),
  locked: opt(Bool),
  mounts: opt(Mounts),
  templateId: opt(Str),
});
export type V2UpdatePodT = Static<typeof V2UpdatePod>;

export const V2PodAction = Type.Object({ action: oneOf(['start', 'stop', 'restart', 'terminate']) });

export const V2Logs = Type.Object({
  source: opt(Str),
  tail: opt(Type.Integer({ minimum: 0, maximum: 5000 })),
  since: opt(Str),
});

const TemplateCategory = oneOf(['NVIDIA', 'AMD', 'CPU']);
const templateFields = {
  ...containerConfig,
  allowedCudaVersions: opt(Type.Array(CUDA)),
  category: opt(TemplateCategory),
  mounts: opt(Type.Object({ persistent: opt(PersistentMount) })),
  public: opt(Bool),
  serverless: opt(Bool),
  startJupyter: opt(Bool),
  startSsh: opt(Bool),
};
export const V2CreateTemplate = Type.Object({ ...templateFields, name: Type.String({ minLength: 1 }), image: Type.String() });
export const V2UpdateTemplate = Type.Object({ ...templateFields, name: opt(Type.String({ minLength: 1 })) });
export type V2TemplateT = Static<typeof V2UpdateTemplate>;

export const V2CreateNetworkVolume = Type.Object({
  name: Type.String({ minLength: 1 }),
  size: Type.Integer({ minimum: 10, maximum: 4096 }),
  dataCenter: Type.String({ minLength: 1 }),
  type: opt(oneOf(['STANDARD', 'HIGH_PERFORMANCE'])),
});
export const V2UpdateNetworkVolume = Type.Object({ name: opt(Type.String({ minLength: 1 })), size: opt(Type.Integer({ minimum: 10, maximum: 4096 })) }, { minProperties: 1 });

export const V2CreateRegistry = Type.Object({ name: Type.String({ minLength: 1 }), username: Type.String({ minLength: 1 }), password: Type.String({ minLength: 1 }) });

export const V2SshKeys = Type.Object({ keys: Type.Array(Type.String({ pattern: '^(ssh|ecdsa|sk)-[^\\s]+ [^\\s]+([ \\t][^\\n\\r]*)?$' })) });

/** Catalog filters: `explode: false` lists, also taken as repeated keys. */
export const V2CatalogQuery = Type.Object({
  include: opt(Strings),
  product: opt(Strings),
  count: opt(Type.Integer({ minimum: 1 })),
  vcpuCount: opt(Type.Integer({ minimum: 2 })),
  regions: opt(Strings),
  globalNetwork: opt(Bool),
});
export type V2CatalogQueryT = Static<typeof V2CatalogQuery>;

// ---- v1 ----

/** v1 clients send `env` as a map; the GraphQL habits `[{key, value}]` and `["K=V"]` are taken too. */
const V1Env = Type.Union([Env, Type.Array(Type.Union([Str, Type.Object({ key: Str, value: Str })]))]);
const Ports = Type.Union([Strings, Str]);

const v1PodFields = {
  name: opt(Type.String({ maxLength: 191 })),
  imageName: opt(Str),
  image: opt(Str),
  containerDiskInGb: opt(nullable(Type.Integer({ minimum: 1 }))),
  volumeInGb: opt(nullable(Type.Integer({ minimum: 0 }))),
  volumeMountPath: opt(Str),
  ports: opt(Ports),
  env: opt(V1Env),
  dockerEntrypoint: opt(Strings),
  dockerStartCmd: opt(Strings),
  dockerArgs: opt(Str),
  containerRegistryAuthId: opt(nullable(Type.String())),
  globalNetworking: opt(Bool),
  locked: opt(Bool),
};

export const V1CreatePod = Type.Object({
  ...v1PodFields,
  templateId: opt(Str),
  computeType: opt(oneOf(['GPU', 'CPU'])),
  cloudType: opt(oneOf(['SECURE', 'COMMUNITY', 'ALL'])),
  gpuTypeIds: opt(Strings),
  gpuTypePriority: opt(oneOf(['availability', 'custom'])),
  gpuCount: opt(Type.Integer({ minimum: 1 })),
  cpuFlavorIds: opt(Strings),
  vcpuCount: opt(Type.Integer({ minimum: 1 })),
  dataCenterIds: opt(Strings),
  networkVolumeId: opt(Str),
  interruptible: opt(Bool),
});
export type V1CreatePodT = Static<typeof V1CreatePod>;

export const V1UpdatePod = Type.Object(v1PodFields);
export type V1UpdatePodT = Static<typeof V1UpdatePod>;

const boolQuery = opt(Bool);
export const V1ListPods = Type.Object({
  computeType: opt(oneOf(['GPU', 'CPU'])),
  cpuFlavorId: opt(Strings),
  dataCenterId: opt(Strings),
  desiredStatus: opt(oneOf(['RUNNING', 'EXITED', 'TERMINATED'])),
  endpointId: opt(Str),
  gpuTypeId: opt(Strings),
  id: opt(Str),
  imageName: opt(Str),
  name: opt(Str),
  networkVolumeId: opt(Str),
  templateId: opt(Str),
  includeMachine: boolQuery,
  includeNetworkVolume: boolQuery,
  includeSavingsPlans: boolQuery,
  includeTemplate: boolQuery,
  includeWorkers: boolQuery,
});
export type V1ListPodsT = Static<typeof V1ListPods>;

export const V1GetPod = Type.Pick(V1ListPods, ['includeMachine', 'includeNetworkVolume', 'includeSavingsPlans', 'includeTemplate', 'includeWorkers']);
export type V1GetPodT = Static<typeof V1GetPod>;

const v1TemplateFields = {
  category: opt(TemplateCategory),
  containerDiskInGb: opt(Type.Integer({ minimum: 1 })),
  containerRegistryAuthId: opt(nullable(Type.String())),
  dockerEntrypoint: opt(Strings),
  dockerStartCmd: opt(Strings),
  env: opt(V1Env),
  imageName: opt(Str),
  isPublic: opt(Bool),
  isServerless: opt(Bool),
  name: opt(Str),
  ports: opt(Ports),
  readme: opt(Str),
  volumeInGb: opt(Type.Integer({ minimum: 0 })),
  volumeMountPath: opt(Str),
};
export const V1CreateTemplate = Type.Object({ ...v1TemplateFields, name: Str, imageName: Str });
export const V1UpdateTemplate = Type.Object(v1TemplateFields);
export type V1TemplateT = Static<typeof V1UpdateTemplate>;

export const V1CreateNetworkVolume = Type.Object({ name: Str, size: Type.Integer({ minimum: 0, maximum: 4000 }), dataCenterId: Str });
export const V1UpdateNetworkVolume = Type.Object({ name: opt(Str), size: opt(Type.Integer({ minimum: 0, maximum: 4000 })) });

export const V1CreateRegistryAuth = Type.Object({ name: Str, username: Str, password: Str });
