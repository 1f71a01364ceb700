/**
 * Docker's container records in Berth's terms: the create request made from a `ContainerPlan` (and
 * its refusals), and `ContainerInfo` read from inspect and from the list API.
 */

import type Docker from 'dockerode';
import { BerthError } from '../model/errors.js';
import { daemonMessage, fail, statusCode, type Daemon } from './daemon.js';
import { exitCodeFromStatus } from './streams.js';
import type { ContainerInfo, ContainerPlan, ContainerRunState } from './types.js';

/** Docker's zero time, which it reports for a container that never started or never finished. */
const ZERO_TIME_PREFIX = '0001-01-01';

const RUN_STATES: ReadonlySet<string> = new Set<ContainerRunState>(['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead']);

function runState(raw: string | undefined): ContainerRunState {
  const s = (raw ?? '').toLowerCase();
  if (RUN_STATES.has(s)) return s as ContainerRunState;
  // Podman's names for the same states.
  if (s === 'configured' || s === 'initialized') return 'created';
  if (s === 'stopped' || s === 'stopping') return 'exited';
  return 'dead';
}

/** Only a container that has ended has an exit code; Docker reports 0 for one that never ran. */
function endedExitCode(state: ContainerRunState, code: number | null | undefined): number | null {
  return (state === 'exited' || state === 'dead') && typeof code === 'number' ? code : null;
}

function dockerTime(value: string | undefined): string | null {
  if (!value || value.startsWith(ZERO_TIME_PREFIX)) return null;
  return value;
}

/** `"8080/tcp"` → `"8080"`; other protocols keep their suffix so a UDP port cannot shadow TCP. */
function portKey(port: string | number, protocol: string): string {
  return protocol === 'tcp' ? String(port) : `${port}/${protocol}`;
}

function portsFromInspect(ports: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (typeof ports !== 'object' || ports === null) return out;
  for (const [spec, bindings] of Object.entries(ports)) {
    if (!Array.isArray(bindings)) continue;
    const [port, protocol = 'tcp'] = spec.split('/');
    for (const b of bindings as unknown[]) {
      if (typeof b !== 'object' || b === null || !('HostPort' in b)) continue;
      const hostPort = Number(b.HostPort);
      if (port && hostPort > 0) {
        out[portKey(port, protocol)] = hostPort;
        break;
      }
    }
  }
  return out;
}

export function labelFilters(labels: Record<string, string>): string[] {
  return Object.entries(labels).map(([k, v]) => (v === '' ? k : `${k}=${v}`));
}

export function createOptions(plan: ContainerPlan, withDiskCap: boolean): Docker.ContainerCreateOptions {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of plan.ports) {
    const key = `${p.containerPort}/${p.protocol ?? 'tcp'}`;
    exposed[key] = {};
    // An empty HostPort, not "0", is how the API asks Docker to choose a free port.
    (bindings[key] ??= []).push({ HostIp: p.hostIp, HostPort: p.hostPort > 0 ? String(p.hostPort) : '' });
  }
  const hostConfig: Docker.HostConfig = {
    // A tmpfs has no source; Docker takes an empty one.
    Mounts: plan.mounts.map((m) => ({ Type: m.kind ?? 'volume', Source: m.kind === 'tmpfs' ? '' : m.source, Target: m.target, ReadOnly: m.readOnly })),
    PortBindings: bindings,
    // The agent owns restarts (with backoff and pod-wide replacement); Docker must not restart on its own.
    RestartPolicy: { Name: 'no' },
    AutoRemove: false,
  };
  if (plan.cpus !== null) hostConfig.NanoCpus = Math.round(plan.cpus * 1e9);
  if (plan.memoryBytes !== null) hostConfig.Memory = plan.memoryBytes;
  if (withDiskCap && plan.diskBytes !== null) hostConfig.StorageOpt = { size: String(plan.diskBytes) };
  if (plan.gpuUuids.length > 0 && !plan.gpusSimulated) {
    hostConfig.DeviceRequests = [{ Driver: 'nvidia', DeviceIDs: plan.gpuUuids, Capabilities: [['gpu']] }];
  }
  if (plan.networkMode) hostConfig.NetworkMode = plan.networkMode;
  if (plan.privileged) hostConfig.Privileged = true;
  if (plan.capAdd?.length) hostConfig.CapAdd = plan.capAdd;
  return {
    name: plan.name,
    Image: plan.image,
    Env: Object.entries(plan.env).map(([k, v]) => `${k}=${v}`),
    Labels: plan.labels,
    ExposedPorts: exposed,
    // An empty array would override the image's ENTRYPOINT/CMD with nothing; leave them unset instead.
    ...(plan.entrypoint.length > 0 ? { Entrypoint: plan.entrypoint } : {}),
    ...(plan.command.length > 0 ? { Cmd: plan.command } : {}),
    ...(plan.hostname ? { Hostname: plan.hostname } : {}),
    ...(plan.user ? { User: plan.user } : {}),
    ...(plan.tty ? { Tty: true } : {}),
    ...(plan.stopTimeoutSeconds !== undefined ? { StopTimeout: plan.stopTimeoutSeconds } : {}),
    HostConfig: hostConfig,
  };
}

export function isStorageOptRefusal(err: unknown): boolean {
  const status = statusCode(err);
  if (status === undefined || status === 404 || status === 409) return false;
  return /storage-?opt|storage option|quota/i.test(daemonMessage(err));
}

export function createError(daemon: Daemon, err: unknown, plan: ContainerPlan): BerthError {
  const status = statusCode(err);
  const message = daemonMessage(err);
  if (status === 409) {
    return new BerthError('CONFLICT', `container name ${plan.name} is already in use`, { cause: err, extra: { name: plan.name } });
  }
  if (status === 404 && /no such image/i.test(message)) {
    return new BerthError('NOT_FOUND', `image ${plan.image} is not on this node; pull it first`, { cause: err, extra: { image: plan.image } });
  }
  return fail(daemon, err, `create container ${plan.name}`);
}

export function infoFromInspect(info: Docker.ContainerInspectInfo): ContainerInfo {
  const state = runState(info.State.Status);
  return {
    id: info.Id,
    name: info.Name.replace(/^\//, ''),
    labels: info.Config.Labels ?? {},
    state,
    exitCode: endedExitCode(state, info.State.ExitCode),
    startedAt: dockerTime(info.State.StartedAt),
    finishedAt: dockerTime(info.State.FinishedAt),
    ports: portsFromInspect(info.NetworkSettings?.Ports),
    error: info.State.Error ? info.State.Error : null,
  };
}

/**
 * From the list API alone: no start or finish times, no error text, and the exit code only inside
 * its `Status` text (`Exited (137) 2 minutes ago`), which is parsed.
 */
export function infoFromList(c: Docker.ContainerInfo): ContainerInfo {
  const state = runState(c.State);
  const ports: Record<string, number> = {};
  for (const p of c.Ports ?? []) {
    if (p.PublicPort) ports[portKey(p.PrivatePort, p.Type || 'tcp')] ??= p.PublicPort;
  }
  return {
    id: c.Id,
    name: (c.Names?.[0] ?? '').replace(/^\//, ''),
    labels: c.Labels ?? {},
    state,
    exitCode: state === 'exited' || state === 'dead' ? exitCodeFromStatus(c.Status ?? '') : null,
    startedAt: null,
    finishedAt: null,
    ports,
    error: null,
  };
}
