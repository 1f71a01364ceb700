/**
 * The pod flags shared by `pod create`, `pod update` and `template create`, and the request body
 * they make. The CLI checks only what it must parse itself (KEY=VALUE, the entrypoint); every other
 * rule is the server's, so its problems come back with their paths.
 */
import { mergeLifetime, type PodInput } from '../../model/index.js';
import type { OptionSpecs, OptionValues } from './define.js';
import { keyValues, readJsonObject } from './input.js';
import { LIFETIME_OPTIONS, lifetimeFrom } from './lifetime-flags.js';

export const POD_FIELD_OPTIONS = {
  image: { kind: 'string', flags: '--image <image>', description: 'container image' },
  env: { kind: 'list', flags: '-e, --env <KEY=VALUE>', description: 'environment variable (repeatable)' },
  ports: { kind: 'list', split: true, flags: '-p, --ports <ports>', description: 'ports to publish: 8888/http,22/tcp (repeatable)' },
  gpuCount: { kind: 'number', integer: true, flags: '--gpu-count <n>', description: 'GPUs (0: CPU only)' },
  gpuType: { kind: 'list', flags: '--gpu-type <type>', description: 'acceptable GPU type, preferred first (repeatable)' },
  vcpu: { kind: 'number', flags: '--vcpu <n>', description: 'CPUs reserved and enforced' },
  memoryGb: { kind: 'number', flags: '--memory-gb <n>', description: 'memory reserved and enforced, in GB' },
  containerDiskGb: { kind: 'number', integer: true, flags: '--container-disk-gb <n>', description: 'container disk (wiped on stop and reset), in GB' },
  volumeGb: { kind: 'number', integer: true, flags: '--volume-gb <n>', description: 'volume disk (kept across stop/start), in GB; 0: none' },
  volumeMountPath: { kind: 'string', flags: '--volume-mount-path <path>', description: 'where the volume disk or network volume is mounted' },
  networkVolume: { kind: 'string', flags: '--network-volume <id>', description: 'attach a network volume at the mount path' },
  registryAuth: { kind: 'string', flags: '--registry-auth <id>', description: 'registry credentials to pull the image with' },
  restart: { kind: 'string', flags: '--restart <policy>', description: 'restart policy', choices: ['never', 'on-failure', 'always'] },
  ssh: { kind: 'boolean', negatable: true, flags: '--ssh', description: 'put your SSH keys in PUBLIC_KEY (the default)', negatedDescription: 'leave your SSH keys out of the pod' },
  entrypoint: { kind: 'string', flags: '--entrypoint <argv>', description: 'a JSON array, or words split on spaces ("" for the image\'s)' },
  label: { kind: 'list', flags: '--label <KEY=VALUE>', description: 'pod label (repeatable)' },
  instances: { kind: 'number', integer: true, flags: '--instances <n>', description: 'instances of the pod' },
  ...LIFETIME_OPTIONS,
} as const satisfies OptionSpecs;

export const POD_OPTIONS = {
  name: { kind: 'string', flags: '--name <name>', description: 'pod name' },
  template: { kind: 'string', flags: '--template <id>', description: 'start from a template; flags override its fields' },
  ...POD_FIELD_OPTIONS,
  file: { kind: 'string', flags: '-f, --file <path>', description: 'a JSON request body (- for stdin); flags override its fields' },
} as const satisfies OptionSpecs;

export type PodFlags = Partial<OptionValues<typeof POD_OPTIONS>>;

/** The request body from `-f` (if any), then the flags given, then the command after `--`. */
export async function podInputFrom(flags: PodFlags, command: readonly string[]): Promise<PodInput> {
  const body: PodInput = flags.file ? ((await readJsonObject(flags.file)) as PodInput) : {};
  if (flags.name !== undefined) body.name = flags.name;
  if (flags.template !== undefined) body.templateId = flags.template;
  if (flags.image !== undefined) body.image = flags.image;
  if (flags.env?.length) body.env = { ...body.env, ...keyValues('--env', flags.env) };
  if (flags.ports?.length) body.ports = flags.ports;
  if (flags.gpuCount !== undefined) body.gpuCount = flags.gpuCount;
  if (flags.gpuType?.length) body.gpuTypeIds = flags.gpuType;
  if (flags.vcpu !== undefined) body.vcpuCount = flags.vcpu;
  if (flags.memoryGb !== undefined) body.memoryGb = flags.memoryGb;
  if (flags.containerDiskGb !== undefined) body.containerDiskGb = flags.containerDiskGb;
  if (flags.volumeGb !== undefined) body.volumeGb = flags.volumeGb;
  if (flags.volumeMountPath !== undefined) body.volumeMountPath = flags.volumeMountPath;
  if (flags.networkVolume !== undefined) body.networkVolumeId = flags.networkVolume;
  if (flags.registryAuth !== undefined) body.registryAuthId = flags.registryAuth;
  if (flags.restart !== undefined) body.restartPolicy = flags.restart as PodInput['restartPolicy'];
  if (flags.ssh !== undefined) body.startSsh = flags.ssh;
  if (flags.entrypoint !== undefined) body.entrypoint = parseArgv(flags.entrypoint);
  if (flags.label?.length) body.labels = { ...body.labels, ...keyValues('--label', flags.label) };
  if (flags.instances !== undefined) body.instances = flags.instances;
  if (command.length) body.command = [...command];
  const lifetime = lifetimeFrom(flags);
  if (lifetime) body.lifetime = mergeLifetime(body.lifetime, lifetime);
  return body;
}

/** `["python","-m","x"]` as JSON, else words split on spaces; empty: the image's own. */
export function parseArgv(text: string): string[] {
  const t = text.trim();
  if (t.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(t);
      if (Array.isArray(parsed) && parsed.every((s) => typeof s === 'string')) return parsed;
    } catch {
      // Not JSON after all: split it like any other string.
    }
  }
  return t === '' ? [] : t.split(/\s+/);
}
