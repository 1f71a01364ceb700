/**
 * Reads a Marathon pod definition from JSON as Marathon's RAML-generated Play JSON readers do, and
 * normalizes it as `PodNormalization` does: defaults filled in, enums in their canonical case,
 * unknown fields and `version` dropped, `hostPort` 0 where it is not container networking, the
 * resident-pod scheduling defaults. Shape errors carry Play's codes (`error.path.missing`,
 * `error.expected.jsstring`, `error.pattern`...) at Play's paths (`/containers(0)/name`).
 */
import { canonicalPath } from './paths.js';
import { compact, isRec, Reader, type JsonError, type Read, type Rec, type StringRules } from './play-reader.js';
import {
  CONSTRAINT_OPERATORS,
  MARATHON_DEFAULTS as D,
  isPersistent,
  type Artifact,
  type Check,
  type Constraint,
  type Endpoint,
  type EnvValue,
  type ExecutorResources,
  type HealthCheck,
  type HttpCheck,
  type Image,
  type KVLabels,
  type LinuxInfo,
  type MarathonPod,
  type MesosCommand,
  type MesosExec,
  type Network,
  type NetworkMode,
  type PersistentVolumeInfo,
  type PodContainer,
  type PodVolume,
  type ResourceLimit,
  type ResourceLimits,
  type Resources,
  type Scheduling,
  type UnreachableStrategy,
  type VolumeMount,
} from './schema.js';

export type { JsonError } from './play-reader.js';

/** `rawId` is the id as sent: Marathon validates it before making it canonical. */
export type ReadResult = { ok: true; pod: MarathonPod; rawId: string } | { ok: false; errors: JsonError[] };

// stringTypes.raml
const PATH_ID = /^(\/?((\.\.)|(([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9]))?($|\/))+$/;
const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const NETWORK_NAME = /^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$/;
const ENV_KEY = /^[a-zA-Z_][a-zA-Z0-9_]{0,253}?$/;

const NAME_RULES: StringRules = { pattern: NAME, maxLength: 63, minLength: 1 };
const PATH_RULES: StringRules = { minLength: 1, maxLength: 1024 };

function readers(r: Reader) {
  const name = r.str(NAME_RULES);
  const labels: Read<KVLabels> = r.map(r.str());
  const envValue: Read<EnvValue> = (path, v) => {
    if (typeof v === 'string') return v;
    if (isRec(v)) {
      const secret = r.req(v, 'secret', path, r.str());
      return secret === undefined ? undefined : { secret };
    }
    return r.fail(path, 'error.expected.jsstring');
  };
  const environment = r.map(envValue, ENV_KEY);

  const command: Read<MesosCommand> = r.obj((o, path) => {
    // The union tries `shell` first, so a definition with both runs the shell command.
    if (o.shell !== undefined) {
      const shell = r.req(o, 'shell', path, r.str({ minLength: 1 }));
      return shell === undefined ? undefined : { shell };
    }
    const argv = r.req(o, 'argv', path, r.arr(r.str(), 1));
    return argv === undefined ? undefined : { argv };
  });

  const exec: Read<MesosExec> = r.obj((o, path) => {
    const cmd = r.req(o, 'command', path, command);
    const overrideEntrypoint = r.opt(o, 'overrideEntrypoint', path, r.bool());
    return cmd === undefined ? undefined : compact({ command: cmd, overrideEntrypoint });
  });

  const resources: Read<Resources> = r.obj((o, path) => ({
    cpus: r.opt(o, 'cpus', path, r.num({ min: 0.001 })) ?? D.containerResources.cpus,
    mem: r.opt(o, 'mem', path, r.num({ min: 0.001 })) ?? D.containerResources.mem,
    disk: r.opt(o, 'disk', path, r.num({ min: 0 })) ?? D.containerResources.disk,
    gpus: r.opt(o, 'gpus', path, r.int({ min: 0 })) ?? D.containerResources.gpus,
  }));

  const executorResources: Read<ExecutorResources> = r.obj((o, path) => ({
    cpus: r.opt(o, 'cpus', path, r.num({ min: 0.1 })) ?? D.executorResources.cpus,
    mem: r.opt(o, 'mem', path, r.num({ min: 32 })) ?? D.executorResources.mem,
    disk: r.opt(o, 'disk', path, r.num({ min: 10 })) ?? D.executorResources.disk,
  }));

  const limit: Read<ResourceLimit> = (path, v) => {
    if (typeof v === 'string') return v.toLowerCase() === 'unlimited' ? 'unlimited' : r.fail(path, 'error.unknown.enum.literal');
    return r.num()(path, v);
  };
  const resourceLimits: Read<ResourceLimits> = r.obj((o, path) => compact({ cpus: r.opt(o, 'cpus', path, limit), mem: r.opt(o, 'mem', path, limit) }));

  const endpoint: Read<Endpoint> = r.obj((o, path) => {
    const ep = compact({
      name: r.req(o, 'name', path, name),
      // Port is 1..65535 in the RAML, but 0 is documented ("match the allocated host port") and validated as allowed.
      containerPort: r.opt(o, 'containerPort', path, r.int({ min: 0, max: 65535 })),
      hostPort: r.opt(o, 'hostPort', path, r.int({ min: 0, max: 65535 })),
      protocol: r.opt(o, 'protocol', path, r.arr(r.str(), 1)),
      labels: r.opt(o, 'labels', path, labels),
      networkNames: r.opt(o, 'networkNames', path, r.arr(name)),
    });
    return ep.name === undefined ? undefined : (ep as Endpoint);
  });

  const image: Read<Image> = r.obj((o, path) => {
    const kind = r.req(o, 'kind', path, r.enumOf(['DOCKER'] as const));
    const id = r.req(o, 'id', path, r.str(PATH_RULES));
    const pullConfig = r.opt(
      o,
      'pullConfig',
      path,
      r.obj((p, pp) => {
        const secret = r.req(p, 'secret', pp, r.str({ minLength: 1 }));
        return secret === undefined ? undefined : { secret };
      }),
    );
    if (kind === undefined || id === undefined) return undefined;
    return compact({ kind, id, pullConfig, forcePull: r.opt(o, 'forcePull', path, r.bool()), labels: r.opt(o, 'labels', path, labels) });
  });

  const httpCheck: Read<HttpCheck> = r.obj((o, path) => {
    const endpointName = r.req(o, 'endpoint', path, name);
    const checkPath = r.opt(o, 'path', path, r.str(PATH_RULES));
    const scheme = r.opt(o, 'scheme', path, r.enumOf(['HTTP', 'HTTPS'] as const)) ?? 'HTTP';
    return endpointName === undefined ? undefined : compact({ endpoint: endpointName, path: checkPath, scheme });
  });
  const tcpCheck: Read<{ endpoint: string }> = r.obj((o, path) => {
    const endpointName = r.req(o, 'endpoint', path, name);
    return endpointName === undefined ? undefined : { endpoint: endpointName };
  });
  const commandCheck: Read<{ command: MesosCommand }> = r.obj((o, path) => {
    const cmd = r.req(o, 'command', path, command);
    return cmd === undefined ? undefined : { command: cmd };
  });
  const seconds = (o: Rec, key: string, path: string, dflt: number): number => r.opt(o, key, path, r.int({ min: 0 })) ?? dflt;

  const healthCheck: Read<HealthCheck> = r.obj((o, path) => {
    const d = D.healthCheck;
    return compact({
      http: r.opt(o, 'http', path, httpCheck),
      tcp: r.opt(o, 'tcp', path, tcpCheck),
      exec: r.opt(o, 'exec', path, commandCheck),
      gracePeriodSeconds: seconds(o, 'gracePeriodSeconds', path, d.gracePeriodSeconds),
      intervalSeconds: seconds(o, 'intervalSeconds', path, d.intervalSeconds),
      maxConsecutiveFailures: seconds(o, 'maxConsecutiveFailures', path, d.maxConsecutiveFailures),
      timeoutSeconds: seconds(o, 'timeoutSeconds', path, d.timeoutSeconds),
      delaySeconds: seconds(o, 'delaySeconds', path, d.delaySeconds),
    });
  });
  const check: Read<Check> = r.obj((o, path) => {
    const d = D.check;
    return compact({
      http: r.opt(o, 'http', path, httpCheck),
      tcp: r.opt(o, 'tcp', path, tcpCheck),
      exec: r.opt(o, 'exec', path, commandCheck),
      intervalSeconds: seconds(o, 'intervalSeconds', path, d.intervalSeconds),
      timeoutSeconds: seconds(o, 'timeoutSeconds', path, d.timeoutSeconds),
      delaySeconds: seconds(o, 'delaySeconds', path, d.delaySeconds),
    });
  });

  const volumeMount: Read<VolumeMount> = r.obj((o, path) => {
    const mount = { name: r.req(o, 'name', path, name), mountPath: r.req(o, 'mountPath', path, r.str(PATH_RULES)), readOnly: r.opt(o, 'readOnly', path, r.bool()) ?? false };
    return mount.name === undefined || mount.mountPath === undefined ? undefined : (mount as VolumeMount);
  });

  const artifact: Read<Artifact> = r.obj((o, path) => {
    const uri = r.req(o, 'uri', path, r.str(PATH_RULES));
    const a = compact({
      uri,
      extract: r.opt(o, 'extract', path, r.bool()) ?? true,
      executable: r.opt(o, 'executable', path, r.bool()) ?? false,
      cache: r.opt(o, 'cache', path, r.bool()) ?? false,
      destPath: r.opt(o, 'destPath', path, r.str(PATH_RULES)),
    });
    return uri === undefined ? undefined : (a as Artifact);
  });

  const linuxInfo: Read<LinuxInfo> = r.obj((o, path) =>
    compact({
      seccomp: r.opt(
        o,
        'seccomp',
        path,
        r.obj((s, sp) => compact({ profileName: r.opt(s, 'profileName', sp, r.str()), unconfined: r.opt(s, 'unconfined', sp, r.bool()) ?? false })),
      ),
      ipcInfo: r.opt(
        o,
        'ipcInfo',
        path,
        r.obj((s, sp) => {
          const mode = r.req(s, 'mode', sp, r.enumOf(['PRIVATE', 'SHARE_PARENT'] as const));
          return mode === undefined ? undefined : compact({ mode, shmSize: r.opt(s, 'shmSize', sp, r.int()) });
        }),
      ),
    }),
  );

  const container: Read<PodContainer> = r.obj((o, path) => {
    const c = compact({
      name: r.req(o, 'name', path, name),
      exec: r.opt(o, 'exec', path, exec),
      resources: r.req(o, 'resources', path, resources),
      resourceLimits: r.opt(o, 'resourceLimits', path, resourceLimits),
      endpoints: r.opt(o, 'endpoints', path, r.arr(endpoint)),
      image: r.opt(o, 'image', path, image),
      environment: r.opt(o, 'environment', path, environment),
      user: r.opt(o, 'user', path, r.str()),
      healthCheck: r.opt(o, 'healthCheck', path, healthCheck),
      check: r.opt(o, 'check', path, check),
      volumeMounts: r.opt(o, 'volumeMounts', path, r.arr(volumeMount)),
      artifacts: r.opt(o, 'artifacts', path, r.arr(artifact)),
      labels: r.opt(o, 'labels', path, labels),
      lifecycle: r.opt(
        o,
        'lifecycle',
        path,
        r.obj((l, lp) => compact({ killGracePeriodSeconds: r.opt(l, 'killGracePeriodSeconds', lp, r.num({ min: 0 })) })),
      ),
      tty: r.opt(o, 'tty', path, r.bool()),
      linuxInfo: r.opt(o, 'linuxInfo', path, linuxInfo),
    });
    return c.name === undefined || c.resources === undefined ? undefined : (c as PodContainer);
  });

  const persistentInfo: Read<PersistentVolumeInfo> = r.obj((o, path) => {
    const size = r.req(o, 'size', path, r.num({ min: 0 }, 'long'));
    const profileName = r.opt(o, 'profileName', path, r.str());
    const info = compact({
      // `type` defaults to root, or to mount when a profile is named (`PersistentVolumeInfo`).
      type: r.opt(o, 'type', path, r.enumOf(['root', 'path', 'mount'] as const)) ?? (profileName !== undefined ? 'mount' : 'root'),
      size,
      maxSize: r.opt(o, 'maxSize', path, r.num({ min: 0 }, 'long')),
      profileName,
      constraints: r.opt(o, 'constraints', path, r.arr(r.arr(r.str(), 2))),
    });
    return size === undefined ? undefined : (info as PersistentVolumeInfo);
  });

  /** The union is resolved by the key that is present: persistent, secret, host, else ephemeral. */
  const volume: Read<PodVolume> = r.obj((o, path): PodVolume | undefined => {
    if (o.persistent !== undefined) {
      const v = { name: r.req(o, 'name', path, r.str({ minLength: 1 })), persistent: r.req(o, 'persistent', path, persistentInfo) };
      return v.name === undefined || v.persistent === undefined ? undefined : { name: v.name, persistent: v.persistent };
    }
    if (o.secret !== undefined) {
      const v = { name: r.req(o, 'name', path, r.str({ minLength: 1 })), secret: r.req(o, 'secret', path, r.str({ minLength: 1 })) };
      return v.name === undefined || v.secret === undefined ? undefined : { name: v.name, secret: v.secret };
    }
    if (o.host !== undefined) {
      const v = { name: r.req(o, 'name', path, name), host: r.req(o, 'host', path, r.str()) };
      return v.name === undefined || v.host === undefined ? undefined : { name: v.name, host: v.host };
    }
    const n = r.req(o, 'name', path, name);
    return n === undefined ? undefined : { name: n };
  });

  const network: Read<Network> = r.obj((o, path) =>
    compact({
      name: r.opt(o, 'name', path, r.str({ pattern: NETWORK_NAME, maxLength: 63, minLength: 1 })),
      mode: r.opt(o, 'mode', path, r.enumOf(['container', 'container/bridge', 'host'] as const)) ?? ('container' as NetworkMode),
      labels: r.opt(o, 'labels', path, labels),
    }),
  );

  const constraint: Read<Constraint> = r.obj((o, path) => {
    const c = compact({ fieldName: r.req(o, 'fieldName', path, r.str()), operator: r.req(o, 'operator', path, r.enumOf(CONSTRAINT_OPERATORS)), value: r.opt(o, 'value', path, r.str()) });
    return c.fieldName === undefined || c.operator === undefined ? undefined : (c as Constraint);
  });

  const unreachable: Read<UnreachableStrategy> = (path, v) => {
    if (typeof v === 'string') return v.toLowerCase() === 'disabled' ? 'disabled' : r.fail(path, 'error.unknown.enum.literal');
    return r.obj((o, p) => ({
      inactiveAfterSeconds: r.opt(o, 'inactiveAfterSeconds', p, r.num({ min: 0 }, 'long')) ?? D.unreachable.inactiveAfterSeconds,
      expungeAfterSeconds: r.opt(o, 'expungeAfterSeconds', p, r.num({ min: 0 }, 'long')) ?? D.unreachable.expungeAfterSeconds,
    }))(path, v);
  };

  const unit = { min: 0, max: 1 };
  const scheduling = (o: Rec, path: string): Partial<Scheduling> => ({
    backoff: r.opt(
      o,
      'backoff',
      path,
      r.obj((b, bp) => ({
        backoff: r.opt(b, 'backoff', bp, r.num({ min: 0 })) ?? D.backoff.backoff,
        backoffFactor: r.opt(b, 'backoffFactor', bp, r.num({ min: 0 })) ?? D.backoff.backoffFactor,
        maxLaunchDelay: r.opt(b, 'maxLaunchDelay', bp, r.num({ min: 0 })) ?? D.backoff.maxLaunchDelay,
      })),
    ),
    upgrade: r.opt(
      o,
      'upgrade',
      path,
      r.obj((u, up) => ({
        minimumHealthCapacity: r.opt(u, 'minimumHealthCapacity', up, r.num(unit)) ?? D.upgrade.minimumHealthCapacity,
        maximumOverCapacity: r.opt(u, 'maximumOverCapacity', up, r.num(unit)) ?? D.upgrade.maximumOverCapacity,
      })),
    ),
    placement: r.opt(
      o,
      'placement',
      path,
      r.obj((p, pp) => compact({ constraints: r.opt(p, 'constraints', pp, r.arr(constraint)), acceptedResourceRoles: r.opt(p, 'acceptedResourceRoles', pp, r.arr(r.str())) })),
    ),
    killSelection: r.opt(o, 'killSelection', path, r.enumOf(['YOUNGEST_FIRST', 'OLDEST_FIRST'] as const)),
    unreachableStrategy: r.opt(o, 'unreachableStrategy', path, unreachable),
  });

  const scaling: Read<{ kind: 'fixed'; instances: number }> = r.obj((o, path) => {
    const kind = r.req(o, 'kind', path, r.enumOf(['fixed'] as const));
    const instances = r.opt(o, 'instances', path, r.int({ min: 0 })) ?? D.instances;
    return kind === undefined ? undefined : { kind, instances };
  });

  const secretDef: Read<{ source: string }> = r.obj((o, path) => {
    const source = r.req(o, 'source', path, r.str({ minLength: 1 }));
    return source === undefined ? undefined : { source };
  });

  return { name, labels, environment, container, volume, network, scaling, scheduling, executorResources, linuxInfo, secretDef };
}

/** Marathon's normalization of what was read (`PodNormalization`): host ports and resident defaults. */
function normalize(pod: MarathonPod): MarathonPod {
  const containerMode = (pod.networks ?? []).some((n) => n.mode === 'container');
  const containers = containerMode
    ? pod.containers
    : pod.containers.map((c) => (c.endpoints ? { ...c, endpoints: c.endpoints.map((e) => ({ ...e, hostPort: e.hostPort ?? 0 })) } : c));
  return { ...pod, containers };
}

/** Reads and normalizes a pod definition, or lists every shape error. */
export function readPod(json: unknown): ReadResult {
  const r = new Reader();
  const R = readers(r);
  const o = isRec(json) ? json : {};
  const path = '';
  // In the RAML's field order, so errors come out in the order Marathon lists them. `version` is ignored.
  const id = r.req(o, 'id', path, r.str({ pattern: PATH_ID, minLength: 1 }));
  const labels = r.opt(o, 'labels', path, R.labels);
  const user = r.opt(o, 'user', path, r.str());
  const environment = r.opt(o, 'environment', path, R.environment);
  const containers = r.req(o, 'containers', path, r.arr(R.container, 1));
  const secrets = r.opt(o, 'secrets', path, r.map(R.secretDef));
  const volumes = r.opt(o, 'volumes', path, r.arr(R.volume));
  const networks = r.opt(o, 'networks', path, r.arr(R.network));
  const scaling = r.opt(o, 'scaling', path, R.scaling) ?? { kind: 'fixed' as const, instances: D.instances };
  const given = r.opt(o, 'scheduling', path, r.obj((s, sp) => R.scheduling(s, sp)));
  const executorResources = r.opt(o, 'executorResources', path, R.executorResources) ?? { ...D.executorResources };
  const role = r.opt(o, 'role', path, r.str({ minLength: 1 })) ?? D.role;
  const linuxInfo = r.opt(o, 'linuxInfo', path, R.linuxInfo);
  const legacySharedCgroups = r.opt(o, 'legacySharedCgroups', path, r.bool()) || undefined;
  if (r.failed || id === undefined || containers === undefined) return { ok: false, errors: r.list() };

  // A resident pod (persistent volumes) is replaced in place and never declared unreachable.
  const resident = (volumes ?? []).some(isPersistent);
  const scheduling: Scheduling = compact({
    backoff: given?.backoff ?? { ...D.backoff },
    upgrade: given?.upgrade ?? { ...(resident ? D.residentUpgrade : D.upgrade) },
    placement: given?.placement,
    killSelection: given?.killSelection ?? D.killSelection,
    unreachableStrategy: given?.unreachableStrategy ?? (resident ? 'disabled' : { ...D.unreachable }),
  });
  const pod: MarathonPod = compact({
    id: canonicalPath(id),
    labels,
    user,
    environment,
    containers,
    secrets,
    volumes,
    networks,
    scaling,
    scheduling,
    executorResources,
    role,
    linuxInfo,
    legacySharedCgroups,
  });
  return { ok: true, pod: normalize(pod), rawId: id };
}
