import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { CONSTRAINT_OPERATORS, type ActivitySignal } from '../../model/index.js';

const Env = Type.Record(Type.String(), Type.String(), { description: 'Environment variables, name → value' });
const Ports = Type.Union([Type.Array(Type.String()), Type.String()], { description: 'Ports to publish: ["8888/http", "22/tcp"] or "8888/http,22/tcp"' });

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

const Endpoint = Type.Object(
  {
    name: Type.String(),
    containerPort: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: 65535 }))),
    hostPort: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: 65535, description: '0: any free port of the node' }))),
    protocols: Type.Optional(Type.Array(Type.String(), { description: '@default ["tcp"]; "http" makes it reachable through the proxy' })),
    labels: Type.Optional(Env),
  },
  { additionalProperties: false },
);

const HealthCheck = Type.Object(
  {
    kind: Type.Union([Type.Literal('http'), Type.Literal('tcp'), Type.Literal('exec')]),
    endpoint: Type.Optional(Nullable(Type.String({ description: "http/tcp: one of the container's endpoints" }))),
    path: Type.Optional(Nullable(Type.String())),
    scheme: Type.Optional(Type.Union([Type.Literal('HTTP'), Type.Literal('HTTPS')])),
    argv: Type.Optional(Type.Array(Type.String(), { description: 'exec: the command' })),
    gracePeriodSeconds: Type.Optional(Type.Integer({ minimum: 0, description: '@default 300' })),
    intervalSeconds: Type.Optional(Type.Integer({ minimum: 1, description: '@default 60' })),
    timeoutSeconds: Type.Optional(Type.Integer({ minimum: 0, description: '@default 20' })),
    maxConsecutiveFailures: Type.Optional(Type.Integer({ minimum: 0, description: '@default 3; 0: never replace' })),
    delaySeconds: Type.Optional(Type.Integer({ minimum: 0, description: '@default 15' })),
  },
  { additionalProperties: false },
);

export const ContainerInput = Type.Object(
  {
    name: Type.Optional(Type.String()),
    image: Type.Optional(Type.String()),
    entrypoint: Type.Optional(Type.Array(Type.String())),
    command: Type.Optional(Type.Array(Type.String())),
    env: Type.Optional(Env),
    secretEnv: Type.Optional(Type.Record(Type.String(), Type.String(), { description: "Variable → name of one of the pod's secrets" })),
    ports: Type.Optional(Ports),
    endpoints: Type.Optional(Type.Array(Endpoint)),
    resources: Type.Optional(
      Type.Object(
        {
          cpus: Type.Optional(Nullable(Type.Number({ description: 'Limit for this container' }))),
          memoryMb: Type.Optional(Nullable(Type.Number())),
          gpus: Type.Optional(Type.Integer({ minimum: 0 })),
          diskMb: Type.Optional(Type.Number({ minimum: 0 })),
        },
        { additionalProperties: false },
      ),
    ),
    volumeMounts: Type.Optional(Type.Array(Type.Object({ name: Type.String(), mountPath: Type.String(), readOnly: Type.Optional(Type.Boolean()) }, { additionalProperties: false }))),
    healthCheck: Type.Optional(Nullable(HealthCheck)),
    user: Type.Optional(Nullable(Type.String())),
    tty: Type.Optional(Type.Boolean()),
    killGracePeriodSeconds: Type.Optional(Nullable(Type.Number({ minimum: 0 }))),
    labels: Type.Optional(Env),
    privileged: Type.Optional(Type.Boolean({ description: 'Docker privileged mode; refused unless the pod security policy grants it' })),
    capAdd: Type.Optional(Type.Array(Type.String(), { description: 'Capabilities to add (NET_ADMIN); refused unless the policy grants them' })),
  },
  { additionalProperties: false },
);

const PodVolume = Type.Union([
  Type.Object({ name: Type.String(), kind: Type.Literal('ephemeral') }, { additionalProperties: false }),
  Type.Object({ name: Type.String(), kind: Type.Literal('host'), hostPath: Type.String() }, { additionalProperties: false }),
  Type.Object({ name: Type.String(), kind: Type.Literal('persistent'), sizeMb: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }),
  Type.Object({ name: Type.String(), kind: Type.Literal('secret'), secret: Type.String() }, { additionalProperties: false }),
]);

const Constraint = Type.Object(
  {
    field: Type.String({ description: '"hostname" or a node label' }),
    operator: Type.Union(CONSTRAINT_OPERATORS.map((o) => Type.Literal(o))),
    value: Type.Optional(Nullable(Type.String())),
  },
  { additionalProperties: false },
);

/** The values' rules (ranges, the signal names) are the model's (lifetime.ts), so each problem comes with its path and words. */
// Null first: with type coercion on, a null tried against a number first would become 0.
const NullFirst = <T extends TSchema>(t: T) => Type.Union([Type.Null(), t]);
const Lifetime = Type.Object(
  {
    idleStop: Type.Optional(
      NullFirst(
        Type.Object(
          {
            idleSeconds: Type.Optional(Type.Number({ description: 'Stop after this long with no use on any of the signals; fractions allowed' })),
            gpuThresholdPercent: Type.Optional(Type.Number({ description: 'The gpu signal: a GPU at or above this utilization is in use; @default 5' })),
            // Checked by the model, which names the signals a wrong one could be.
            signals: Type.Optional(Type.Unsafe<ActivitySignal[]>(Type.Array(Type.String(), { description: 'What counts as use: gpu, ssh, terminal, proxy, port-forward; @default all' }))),
          },
          { additionalProperties: false, description: 'Stop the pod when idle; null: no idle stop (over a template or the server default)' },
        ),
      ),
    ),
    maxRuntimeSeconds: Type.Optional(NullFirst(Type.Number({ description: 'Stop after running this long (since it last became RUNNING)' }))),
    terminateAfterStoppedSeconds: Type.Optional(NullFirst(Type.Number({ description: 'Terminate (the volume disk is deleted) after being stopped this long' }))),
  },
  { additionalProperties: false, description: "Lifetime policies, merged per policy over the template's and the server's default; null: none (docs/lifetimes.md)" },
);

export const KeepAliveBody = Type.Object(
  { hours: Type.Number({ minimum: 0, maximum: 8760, description: 'Keep the pod from its idle stop and maximum running time this long from now; 0: no longer' }) },
  { additionalProperties: false },
);

const podFields = {
  name: Type.Optional(Type.String({ description: '@default "my pod"' })),
  image: Type.Optional(Type.String({ description: 'Image of a single-container pod' })),
  entrypoint: Type.Optional(Type.Array(Type.String(), { description: 'Empty: the image ENTRYPOINT' })),
  command: Type.Optional(Type.Array(Type.String(), { description: 'Empty: the image CMD' })),
  env: Type.Optional(Env),
  ports: Type.Optional(Ports),
  containers: Type.Optional(Type.Array(ContainerInput, { description: 'Several containers sharing one network namespace (instead of image)' })),
  gpuCount: Type.Optional(Type.Integer({ minimum: 0, description: '@default 0 (CPU only)' })),
  gpuTypeIds: Type.Optional(Type.Array(Type.String(), { description: 'Acceptable GPU types, preferred first' })),
  vcpuCount: Type.Optional(Type.Union([Type.Number(), Type.Null()], { description: 'Reserved and enforced CPUs; null: no limit' })),
  memoryGb: Type.Optional(Type.Union([Type.Number(), Type.Null()], { description: 'Reserved and enforced memory; null: no limit' })),
  containerDiskGb: Type.Optional(Type.Integer({ description: '@default 50' })),
  volumeGb: Type.Optional(Type.Integer({ description: '@default 20; 0: no volume disk' })),
  volumeMountPath: Type.Optional(Type.String({ description: '@default "/workspace"' })),
  networkVolumeId: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  registryAuthId: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  templateId: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  startSsh: Type.Optional(Type.Boolean({ description: '@default true: PUBLIC_KEY gets your SSH keys' })),
  restartPolicy: Type.Optional(Type.Union([Type.Literal('always'), Type.Literal('on-failure'), Type.Literal('never')], { description: '@default "always"' })),
  instances: Type.Optional(Type.Integer({ minimum: 0, description: '@default 1' })),
  labels: Type.Optional(Env),
  backoff: Type.Optional(
    Type.Object(
      { initialSeconds: Type.Optional(Type.Number({ minimum: 0 })), factor: Type.Optional(Type.Number({ minimum: 1 })), maxSeconds: Type.Optional(Type.Number({ minimum: 0 })) },
      { additionalProperties: false, description: 'Restart backoff; @default 1 s, ×1.15, at most 300 s' },
    ),
  ),
  volumes: Type.Optional(Type.Array(PodVolume, { description: "Volumes the containers' volumeMounts name" })),
  network: Type.Optional(
    Type.Object(
      { mode: Type.Optional(Type.Union([Type.Literal('bridge'), Type.Literal('host'), Type.Literal('container')])), name: Type.Optional(Nullable(Type.String())) },
      { additionalProperties: false, description: '@default bridge' },
    ),
  ),
  secrets: Type.Optional(Type.Record(Type.String(), Type.String(), { description: "The pod's name for a secret → its name in the secret store" })),
  constraints: Type.Optional(Type.Array(Constraint)),
  upgrade: Type.Optional(
    Type.Object(
      { minimumHealthCapacity: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })), maximumOverCapacity: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })) },
      { additionalProperties: false },
    ),
  ),
  killSelection: Type.Optional(Type.Union([Type.Literal('YOUNGEST_FIRST'), Type.Literal('OLDEST_FIRST')])),
  lifetime: Type.Optional(NullFirst(Lifetime)),
};

export const PodInput = Type.Object(podFields, { additionalProperties: false });
export type PodInputT = Static<typeof PodInput>;

export const PodIdParams = Type.Object({ id: Type.String() });

export const ListPodsQuery = Type.Object({
  status: Type.Optional(Type.Array(Type.String(), { description: 'Repeat or comma-separate: RUNNING,EXITED' })),
  name: Type.Optional(Type.String()),
  image: Type.Optional(Type.String()),
  nodeId: Type.Optional(Type.String()),
  includeTerminated: Type.Optional(Type.Boolean()),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000 })),
  after: Type.Optional(Type.String({ description: 'Cursor: the `next` of the previous page' })),
  view: Type.Optional(Type.Union([Type.Literal('summary'), Type.Literal('full')], { description: '@default "summary": no spec or instances; "full": as GET /pods/{id}' })),
});

/** Versions per page of GET /pods/{id}/versions: a spec may be large, so pages are short. */
export const VERSIONS_PAGE_DEFAULT = 20;
export const VERSIONS_PAGE_MAX = 100;

export const VersionsQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: VERSIONS_PAGE_MAX, description: `Versions per page; @default ${VERSIONS_PAGE_DEFAULT}` })),
  cursor: Type.Optional(Type.String({ description: 'The `next` of the previous page' })),
});

export const ActionBody = Type.Optional(
  Type.Object({ gpuCount: Type.Optional(Type.Integer({ minimum: 0, description: 'start only: start with fewer GPUs (0: data recovery)' })) }, { additionalProperties: false }),
);

export const LogsQuery = Type.Object({
  tail: Type.Optional(Type.Integer({ minimum: 0, description: 'Last N lines; @default 100' })),
  since: Type.Optional(Type.String({ description: 'Unix seconds or RFC 3339 time' })),
  follow: Type.Optional(Type.Boolean({ description: 'Keep the stream open for new lines' })),
  container: Type.Optional(Type.String()),
  instance: Type.Optional(Type.Integer({ minimum: 0 })),
});

export const ExecBody = Type.Object(
  {
    command: Type.Array(Type.String(), { minItems: 1, description: 'argv; no shell unless you run one' }),
    container: Type.Optional(Type.String()),
    instance: Type.Optional(Type.Integer({ minimum: 0 })),
    timeoutSeconds: Type.Optional(Type.Number({ minimum: 1, maximum: 3600, description: '@default 60' })),
  },
  { additionalProperties: false },
);

export const NetworkVolumeInput = Type.Object(
  {
    name: Type.Optional(Type.String()),
    sizeGb: Type.Optional(Type.Integer()),
    dataCenterId: Type.Optional(Type.String()),
    nodeId: Type.Optional(Type.String({ description: "the node (id or name) that holds the volume, where its data center has no shared storage; @default the node of the first pod that uses it" })),
  },
  { additionalProperties: false },
);

export const TemplateInput = Type.Object(
  { name: Type.Optional(Type.String()), pod: Type.Optional(Type.Object(podFields, { additionalProperties: false })), readme: Type.Optional(Type.String()) },
  { additionalProperties: false },
);

export const RegistryAuthInput = Type.Object(
  { name: Type.Optional(Type.String()), username: Type.Optional(Type.String()), password: Type.Optional(Type.String()) },
  { additionalProperties: false },
);

export const SshKeyInput = Type.Object({ name: Type.Optional(Type.String()), publicKey: Type.Optional(Type.String()) }, { additionalProperties: false });

export const ApiKeyInput = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    owner: Type.Optional(Type.String({ minLength: 1, description: 'The team the key acts for; @default the caller\'s' })),
    user: Type.Optional(Type.String({ minLength: 1, description: 'A member of the team the key acts for, with their role; absent: the whole team (owners and admin keys only)' })),
    admin: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const IdParams = Type.Object({ id: Type.String() });
