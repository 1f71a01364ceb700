import { randomBytes } from 'node:crypto';
import { DATA_CENTER_LABEL, DEFAULT_DATA_CENTER } from '../../control/index.js';
import { BerthError, invalid, type Node, type PodInput, type PodSpec, type Problem } from '../../model/index.js';
import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from '../server.js';

/** Settings both RunPod APIs share; the server passes them when it registers the routes. */
export interface RunpodOptions {
  /**
   * Port of Berth's SSH gateway, shown as `ssh.proxy.port`.
   * @default $BERTH_SSH_PORT, else 2222
   */
  sshPort?: number;
  /** Host shown as `ssh.proxy.host`. @default $BERTH_SSH_HOST, else the host the client reached the API at */
  sshHost?: string;
  /**
   * What a GPU and a vCPU cost per hour, for `cost`/`costPerHr`. Your own hardware costs nothing
   * per hour unless you say so.
   * @default $BERTH_COST_PER_GPU_HOUR / $BERTH_COST_PER_VCPU_HOUR, else 0
   */
  costPerGpuHour?: number;
  costPerVcpuHour?: number;
}

export interface CompiledRunpodOptions {
  sshPort: number;
  sshHost: string | undefined;
  costPerGpuHour: number;
  costPerVcpuHour: number;
}

const envNumber = (name: string, fallback: number): number => {
  const v = Number(process.env[name]);
  return process.env[name] !== undefined && process.env[name] !== '' && Number.isFinite(v) ? v : fallback;
};

export function compileRunpodOptions(o: RunpodOptions = {}): CompiledRunpodOptions {
  return {
    sshPort: o.sshPort ?? envNumber('BERTH_SSH_PORT', 2222),
    sshHost: o.sshHost ?? (process.env.BERTH_SSH_HOST || undefined),
    costPerGpuHour: o.costPerGpuHour ?? envNumber('BERTH_COST_PER_GPU_HOUR', 0),
    costPerVcpuHour: o.costPerVcpuHour ?? envNumber('BERTH_COST_PER_VCPU_HOUR', 0),
  };
}

/**
 * RunPod facts Berth's pod model has no field for, kept as spec labels (visible in the native view):
 * the CPU flavour a CPU pod was created with; a template's `startJupyter` and `category`.
 */
export const LABELS = {
  cpuFlavor: 'runpod_cpu_flavor',
  startJupyter: 'runpod_start_jupyter',
  category: 'runpod_category',
} as const;

/** The header that names request fields Berth accepted without acting on them (see docs/runpod.md). */
export const IGNORED_HEADER = 'berth-ignored-fields';

/**
 * A query list in either of RunPod's encodings: repeated keys (`?a=1&a=2`, v1 clients) or one
 * comma-joined value (`?a=1,2`, v2's `explode: false`), or both mixed.
 */
export function queryList(v: unknown): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  const items = (Array.isArray(v) ? v : [v]).flatMap((s) => String(s).split(','));
  const out = items.map((s) => s.trim()).filter((s) => s !== '');
  return out.length ? out : undefined;
}

/** Splits a RunPod `args`/`dockerArgs` string into argv as a POSIX shell would (quotes and backslashes). */
export function splitArgs(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quote === "'") {
      if (ch === "'") quote = null;
      else cur += ch;
    } else if (quote === '"') {
      if (ch === '"') quote = null;
      else if (ch === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1]!)) cur += text[++i];
      else cur += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (ch === '\\' && i + 1 < text.length) {
      cur += text[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (quote) throw invalid([{ path: '/args', message: `unterminated ${quote} quote` }]);
  if (inWord) out.push(cur);
  return out;
}

/** The inverse of `splitArgs`: one string a shell splits back into the same argv. */
export function joinArgs(argv: string[]): string {
  return argv.map((a) => (a !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * Berth's CPU flavours: RunPod's ids, so scripts that name `cpu3c` or `cpu5g` run unchanged. Every
 * flavour runs on whatever CPU the node has; the letter sets the memory per vCPU as RunPod's do
 * (c: compute 2 GB, g: general 4 GB, m: memory 8 GB).
 */
export const CPU_FLAVORS = [
  { id: 'cpu3c', name: 'Compute-Optimized', ramGbPerVcpu: 2 },
  { id: 'cpu3g', name: 'General Purpose', ramGbPerVcpu: 4 },
  { id: 'cpu3m', name: 'Memory-Optimized', ramGbPerVcpu: 8 },
  { id: 'cpu5c', name: 'Compute-Optimized', ramGbPerVcpu: 2 },
  { id: 'cpu5g', name: 'General Purpose', ramGbPerVcpu: 4 },
  { id: 'cpu5m', name: 'Memory-Optimized', ramGbPerVcpu: 8 },
] as const;
export type CpuFlavor = (typeof CPU_FLAVORS)[number];
export const DEFAULT_CPU_FLAVOR: CpuFlavor = CPU_FLAVORS[0];

export const cpuFlavor = (id: string): CpuFlavor | undefined => CPU_FLAVORS.find((f) => f.id === id);

/** The flavour a CPU pod shows: the label it was created with, else the one its memory per vCPU matches. */
export function flavorOf(spec: PodSpec): CpuFlavor {
  const labelled = cpuFlavor(spec.labels[LABELS.cpuFlavor] ?? '');
  if (labelled) return labelled;
  const ratio = spec.vcpuCount && spec.memoryGb ? spec.memoryGb / spec.vcpuCount : 0;
  return CPU_FLAVORS.find((f) => f.ramGbPerVcpu === ratio) ?? DEFAULT_CPU_FLAVOR;
}

/** A CPU pod's reservation from a flavour and a vCPU count, as RunPod sizes it. */
export function cpuReservation(flavorId: string, vcpuCount: number, path: string): Pick<PodInput, 'gpuCount' | 'vcpuCount' | 'memoryGb'> & { labels: Record<string, string> } {
  const f = cpuFlavor(flavorId);
  if (!f) throw invalid([{ path, message: `unknown CPU flavour ${flavorId}; Berth offers ${CPU_FLAVORS.map((x) => x.id).join(', ')}` }]);
  return { gpuCount: 0, vcpuCount, memoryGb: vcpuCount * f.ramGbPerVcpu, labels: { [LABELS.cpuFlavor]: f.id } };
}

export const dataCenterOf = (node: Node | undefined): string | null => (node ? (node.labels[DATA_CENTER_LABEL] ?? DEFAULT_DATA_CENTER) : null);

/** Berth's data centers (node groups); a server with no node yet still offers the default one. */
export function dataCenters(nodes: Node[]): string[] {
  const ids = [...new Set(nodes.map((n) => dataCenterOf(n)!))];
  return ids.length ? ids : [DEFAULT_DATA_CENTER];
}

/**
 * Checks a create's data centers. Berth places a pod on any node; it can honour a list that names
 * every data center it has (or the only one), and refuses a list it cannot honour rather than
 * placing the pod somewhere the caller excluded.
 */
export function checkDataCenters(requested: string[] | undefined, nodes: Node[], path: string, problems: Problem[]): void {
  if (!requested?.length) return;
  const known = dataCenters(nodes);
  const unknown = requested.filter((d) => !known.includes(d));
  if (unknown.length === requested.length) {
    problems.push({ path, message: `unknown data center ${unknown.join(', ')}; Berth's data centers (node groups) are: ${known.join(', ')}` });
  } else if (known.some((d) => !requested.includes(d))) {
    problems.push({ path, message: `Berth cannot yet restrict placement to some of its data centers; name all of ${known.join(', ')} or leave ${path.split('/').pop()} out` });
  }
}

/** A generated `JUPYTER_PASSWORD`, as RunPod's `startJupyter`. */
export const jupyterPassword = (): string => randomBytes(12).toString('base64url');

/** Fields accepted and recorded nowhere: said in the reply's `berth-ignored-fields` header. */
export class Ignored {
  readonly fields: string[] = [];
  add(field: string): void {
    if (!this.fields.includes(field)) this.fields.push(field);
  }
  /** Every key of `body` not in `known`, as an ignored field under `prefix`. */
  unknown(body: Record<string, unknown>, known: readonly string[], prefix = ''): void {
    for (const k of Object.keys(body)) if (!known.includes(k)) this.add(prefix + k);
  }
  header(): Record<string, string> {
    return this.fields.length ? { [IGNORED_HEADER]: this.fields.join(', ') } : {};
  }
}

/** Refuses a RunPod feature Berth does not have when the request turns it on (off is what Berth does). */
export function refuseIfTrue(problems: Problem[], body: Record<string, unknown>, field: string, path: string, why: string): void {
  if (body[field] === true) problems.push({ path, message: why });
}

export const throwIf = (problems: Problem[]): void => {
  if (problems.length) throw invalid(problems);
};

/** The single-container pods RunPod describes; a native multi-container pod shows its first container. */
export const mainContainer = (spec: PodSpec) => spec.containers[0]!;

/**
 * Where Berth's SSH gateway is, for `ssh.proxy`: the endpoint the server started it at when it runs
 * one, else the options, else the host the client reached the API at.
 */
export function gatewayOf(access: ApiDeps['access'], opts: CompiledRunpodOptions, requestHost: string): { host: string; port: number } {
  const started = access?.endpoints.ssh;
  return { host: started?.host ?? opts.sshHost ?? requestHost, port: started?.port ?? opts.sshPort };
}

export const notRunpod = (what: string): BerthError => new BerthError('NOT_FOUND', `Berth does not serve RunPod's ${what}`);

/** Answers every route under each path with a clear "not served" error, in the scope's own error shape. */
export function refuseNotServed(app: FastifyInstance, areas: readonly (readonly [path: string, what: string])[]): void {
  for (const [path, what] of areas) {
    const refuse = async (): Promise<never> => {
      throw notRunpod(what);
    };
    app.all(path, { schema: { hide: true } }, refuse);
    app.all(`${path}/*`, { schema: { hide: true } }, refuse);
  }
}
