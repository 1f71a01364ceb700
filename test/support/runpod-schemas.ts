/**
 * RunPod's published response schemas, the subset Berth serves, for contract tests.
 *
 * No npm package ships RunPod's OpenAPI documents or response types (the official
 * `@runpod/mcp-server` bundles only request schemas; `runpod-sdk` covers Serverless only), and the
 * tests may reach nothing but the npm registry, so these are written here by hand from:
 *
 * - REST v2: runpod/docs `api-reference-v2/openapi.json` ("Runpod REST API" 2.0.0), components
 *   `Pod` (= ContainerConfig + its required list), `PodStatus`, `PodAction`, `Mounts`,
 *   `PersistentMount`, `NetworkMount`, `GpuConfig`, `CpuConfig`, `Cloud`, `PodSsh`,
 *   `PodSshEndpoint`, `PodGlobalNetworking`, `PodRuntime`, `PodRuntimePort`, `PodGpuUtilization`,
 *   `Utilization`, `ListPodsResponse`, `Template`, `TemplateMounts`, `TemplateCategory`,
 *   `ListTemplatesResponse`, `NetworkVolume`, `VolumeType`, `ListNetworkVolumesResponse`,
 *   `Registry`, `ListRegistriesResponse`, `SshKeys`, `GpuType`, `GpuManufacturer`,
 *   `AvailabilityLevel`, `DataCenterAvailability`, `CudaVersionAvailability`,
 *   `ListGpuTypesResponse`, `CpuType`, `ListCpuTypesResponse`, `DataCenter`, `DataCenterRegion`,
 *   `Compliance`, `CatalogResourceAvailability`, `ListDataCentersResponse`, `ErrorResponse`.
 * - REST v1: runpod/docs `api-reference/openapi.json` ("Runpod API" 0.1.0, OpenAPI 3.0.3),
 *   components `Pod`, `Pods`, `NetworkVolume`, `NetworkVolumes`, `Template`, `Templates`,
 *   `ContainerRegistryAuth`, `ContainerRegistryAuths`, `SavingsPlan`, `UnauthorizedError`.
 *
 * Types, enums, bounds, `required` and nullability follow the specs member by member; like the
 * specs, objects allow members they do not list (Berth's v1 pod adds the spellings real clients read).
 */
import { FormatRegistry, Type, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

FormatRegistry.Set('date-time', (v) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(v) && !Number.isNaN(Date.parse(v)));
FormatRegistry.Set('ipv4', (v) => /^(\d{1,3})(\.\d{1,3}){3}$/.test(v) && v.split('.').every((o) => Number(o) <= 255));

const Str = Type.String();
const Int = Type.Integer();
const Num = Type.Number();
const Bool = Type.Boolean();
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Enum = (values: readonly string[]) => Type.Union(values.map((v) => Type.Literal(v)));
const Env = Type.Record(Type.String(), Type.String());
const opt = Type.Optional;
const DateTime = Type.String({ format: 'date-time' });

// ---- REST v2 ----

const PodStatus = Enum(['PROVISIONING', 'STARTING', 'RUNNING', 'EXITED', 'ERROR', 'TERMINATED']);
const PodAction = Enum(['start', 'stop', 'restart', 'terminate']);
const PersistentMount = Type.Object({ size: Type.Integer({ minimum: 10 }), path: Str }, { additionalProperties: false });
const NetworkMount = Type.Object({ volumeId: Str, path: Str }, { additionalProperties: false });
const Mounts = Type.Object({ persistent: opt(PersistentMount), network: opt(Type.Array(NetworkMount, { maxItems: 1 })) }, { additionalProperties: false });
const SshEndpoint = Type.Object({ host: Str, port: Int, username: Str, command: Str });
const Utilization = Type.Object({ util: opt(Int) });

const containerConfig = {
  args: Str,
  disk: Type.Integer({ minimum: 1 }),
  env: Env,
  image: Str,
  ports: Type.Array(Str),
  registry: Nullable(Str),
};

export const V2Pod = Type.Object({
  ...containerConfig,
  id: Str,
  name: Str,
  status: PodStatus,
  actions: Type.Array(PodAction),
  mounts: Mounts,
  gpu: opt(Type.Object({ id: Str, count: opt(Type.Integer({ minimum: 1 })) })),
  cpu: opt(Type.Object({ id: Type.String({ minLength: 1 }), vcpuCount: Type.Integer({ minimum: 2 }), memory: Type.Integer({ minimum: 1 }) })),
  cloud: Enum(['SECURE', 'COMMUNITY']),
  dataCenterId: Nullable(Str),
  cudaVersion: Nullable(Str),
  ssh: Type.Object({ proxy: Nullable(SshEndpoint), direct: Nullable(SshEndpoint) }),
  template: Nullable(Str),
  cost: Num,
  locked: Bool,
  globalNetworking: Type.Object({ enabled: Bool, ip: opt(Str), internalDns: opt(Str) }),
  runtime: Nullable(
    Type.Object({
      uptime: opt(Int),
      gpus: opt(Type.Array(Type.Object({ util: opt(Int), memoryUtil: opt(Int) }))),
      cpu: opt(Utilization),
      memory: opt(Utilization),
      ports: opt(Type.Array(Type.Object({ private: opt(Int), public: opt(Nullable(Int)), type: opt(Str), ip: opt(Nullable(Str)) }))),
    }),
  ),
  createdAt: DateTime,
  startedAt: Nullable(DateTime),
});
export const V2ListPods = Type.Object({ pods: Type.Array(V2Pod) });

export const V2Template = Type.Object({
  ...containerConfig,
  id: Str,
  name: Str,
  mounts: Type.Object({ persistent: opt(PersistentMount) }, { additionalProperties: false }),
  serverless: Bool,
  public: Bool,
  category: Enum(['CPU', 'NVIDIA', 'AMD']),
  startSsh: Bool,
  startJupyter: Bool,
  allowedCudaVersions: Type.Array(Str),
});
export const V2ListTemplates = Type.Object({ templates: Type.Array(V2Template) });

export const V2NetworkVolume = Type.Object({ id: Str, name: Str, size: Type.Integer({ minimum: 10, maximum: 4096 }), dataCenter: Str, type: Enum(['STANDARD', 'HIGH_PERFORMANCE']) });
export const V2ListNetworkVolumes = Type.Object({ networkVolumes: Type.Array(V2NetworkVolume) });

export const V2Registry = Type.Object({ id: Str, name: Str });
export const V2ListRegistries = Type.Object({ registries: Type.Array(V2Registry) });

export const V2SshKeys = Type.Object({ keys: Type.Array(Str) });

const Availability = Enum(['NONE', 'LOW', 'MEDIUM', 'HIGH']);
const DataCenterAvailability = Type.Object({ id: Str, name: Str, availability: Availability });
export const V2GpuType = Type.Object({
  id: Str,
  name: Str,
  pool: Nullable(Str),
  manufacturer: Enum(['NVIDIA', 'AMD', 'UNKNOWN']),
  memory: Int,
  secure: Bool,
  community: Bool,
  price: Type.Object({ secure: Num, community: Num, serverless: opt(Num) }),
  maxCount: Type.Object({ secure: Int, community: Int }),
  availability: opt(Availability),
  dataCenters: opt(Type.Array(DataCenterAvailability)),
  cudaVersions: opt(Type.Array(Type.Object({ version: Type.String({ pattern: '^\\d+\\.\\d+$' }), available: Bool }))),
});
export const V2ListGpuTypes = Type.Object({ gpus: Type.Array(V2GpuType) });

export const V2CpuType = Type.Object({
  id: Str,
  name: Str,
  group: Str,
  vcpu: Type.Object({ min: Int, max: Int }),
  ramGbPerVcpu: Num,
  price: Type.Object({ securePerVcpu: Num, serverlessPerVcpu: Num }),
  availability: opt(Availability),
  dataCenters: opt(Type.Array(DataCenterAvailability)),
});
export const V2ListCpuTypes = Type.Object({ cpus: Type.Array(V2CpuType) });

const Region = Enum(['NORTH_AMERICA', 'SOUTH_AMERICA', 'EUROPE', 'ASIA', 'MIDDLE_EAST', 'AFRICA', 'OCEANIA', 'ANTARCTICA', 'UNKNOWN']);
const Compliance = Enum(['GDPR', 'ISO_IEC_27001', 'ISO_14001', 'PCI_DSS', 'HITRUST', 'SOC_1_TYPE_2', 'SOC_2_TYPE_2', 'SOC_3_TYPE_2', 'ITAR', 'FISMA_HIGH', 'HIPAA', 'RENEWABLE']);
const ResourceAvailability = Type.Object({ id: Str, name: Str, availability: Availability });
export const V2DataCenter = Type.Object({
  id: Str,
  name: Str,
  region: Region,
  globalNetwork: Bool,
  networkVolumeTypes: Type.Array(Enum(['STANDARD', 'HIGH_PERFORMANCE'])),
  compliance: Type.Array(Compliance),
  gpuAvailability: opt(Type.Array(ResourceAvailability)),
  cpuAvailability: opt(Type.Array(ResourceAvailability)),
});
export const V2ListDataCenters = Type.Object({ dataCenters: Type.Array(V2DataCenter) });

export const V2Error = Type.Object({ title: Str, status: Int, detail: Str, errors: opt(Type.Array(Str)) });

// ---- REST v1 (no `required` lists in the spec: every member is optional, typed) ----

const GpuPrices = {
  id: opt(Str),
  count: opt(Int),
  displayName: opt(Str),
  securePrice: opt(Num),
  communityPrice: opt(Num),
  oneMonthPrice: opt(Num),
  threeMonthPrice: opt(Num),
  sixMonthPrice: opt(Num),
  oneWeekPrice: opt(Num),
  communitySpotPrice: opt(Num),
  secureSpotPrice: opt(Num),
};
const V1NetworkVolumeFields = { id: opt(Str), name: opt(Str), size: opt(Int), dataCenterId: opt(Str) };

export const V1Pod = Type.Object({
  adjustedCostPerHr: opt(Num),
  aiApiId: opt(Str),
  consumerUserId: opt(Str),
  containerDiskInGb: opt(Int),
  containerRegistryAuthId: opt(Str),
  costPerHr: opt(Num),
  cpuFlavorId: opt(Str),
  desiredStatus: opt(Enum(['RUNNING', 'EXITED', 'TERMINATED'])),
  dockerEntrypoint: opt(Type.Array(Str)),
  dockerStartCmd: opt(Type.Array(Str)),
  endpointId: opt(Str),
  env: opt(Type.Record(Str, Str)),
  gpu: opt(Type.Object(GpuPrices)),
  id: opt(Str),
  image: opt(Str),
  interruptible: opt(Bool),
  lastStartedAt: opt(Str),
  lastStatusChange: opt(Str),
  locked: opt(Bool),
  machine: opt(
    Type.Object({
      minPodGpuCount: opt(Int),
      gpuTypeId: opt(Str),
      gpuType: opt(Type.Object(GpuPrices)),
      cpuCount: opt(Int),
      cpuTypeId: opt(Str),
      cpuType: opt(Type.Object({ id: opt(Str), displayName: opt(Str), cores: opt(Num), threadsPerCore: opt(Num), groupId: opt(Str) })),
      location: opt(Str),
      dataCenterId: opt(Str),
      diskThroughputMBps: opt(Int),
      maxDownloadSpeedMbps: opt(Int),
      maxUploadSpeedMbps: opt(Int),
      supportPublicIp: opt(Bool),
      secureCloud: opt(Bool),
      maintenanceStart: opt(Str),
      maintenanceEnd: opt(Str),
      maintenanceNote: opt(Str),
      note: opt(Str),
      costPerHr: opt(Num),
      currentPricePerGpu: opt(Num),
      gpuAvailable: opt(Int),
      gpuDisplayName: opt(Str),
    }),
  ),
  machineId: opt(Str),
  memoryInGb: opt(Num),
  name: opt(Type.String({ maxLength: 191 })),
  networkVolume: opt(Type.Object(V1NetworkVolumeFields)),
  portMappings: opt(Nullable(Type.Record(Str, Int))),
  ports: opt(Type.Array(Str)),
  publicIp: opt(Nullable(Type.String({ format: 'ipv4' }))),
  savingsPlans: opt(Type.Array(Type.Object({ costPerHr: opt(Num), endTime: opt(Str), gpuTypeId: opt(Str), id: opt(Str), podId: opt(Str), startTime: opt(Str) }))),
  slsVersion: opt(Int),
  templateId: opt(Str),
  vcpuCount: opt(Num),
  volumeEncrypted: opt(Bool),
  volumeInGb: opt(Int),
  volumeMountPath: opt(Str),
});
export const V1Pods = Type.Array(V1Pod);

export const V1NetworkVolume = Type.Object(V1NetworkVolumeFields);
export const V1NetworkVolumes = Type.Array(V1NetworkVolume);

export const V1Template = Type.Object({
  category: opt(Str),
  containerDiskInGb: opt(Int),
  containerRegistryAuthId: opt(Str),
  dockerEntrypoint: opt(Type.Array(Str)),
  dockerStartCmd: opt(Type.Array(Str)),
  earned: opt(Num),
  env: opt(Type.Record(Str, Str)),
  id: opt(Str),
  imageName: opt(Str),
  isPublic: opt(Bool),
  isRunpod: opt(Bool),
  isServerless: opt(Bool),
  name: opt(Str),
  ports: opt(Type.Array(Str)),
  readme: opt(Str),
  runtimeInMin: opt(Int),
  volumeInGb: opt(Int),
  volumeMountPath: opt(Str),
});
export const V1Templates = Type.Array(V1Template);

export const V1ContainerRegistryAuth = Type.Object({ id: opt(Str), name: opt(Str) });
export const V1ContainerRegistryAuths = Type.Array(V1ContainerRegistryAuth);

export const V1Error = Type.Object({ message: Str });

/** Every way `value` breaks `schema`, as `path: message` lines; empty when it conforms. */
export function violations(schema: TSchema, value: unknown): string[] {
  return [...Value.Errors(schema, value)].map((e) => `${e.path || '/'}: ${e.message} (got ${JSON.stringify(e.value)?.slice(0, 80)})`);
}
