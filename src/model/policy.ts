/**
 * The pod security policy, in the spirit of Kubernetes' Pod Security Standards: what a pod of an
 * ordinary (non-admin) key may ask of its node. The default is "baseline": nothing that reaches
 * outside the pod's own containers, network and volumes. The operator widens it server-wide or per
 * team; an admin key is the operator's and is never held to it.
 *
 * Host PID and IPC namespaces and devices are not in the spec at all (a pod gets only the GPUs
 * placed for it), so no policy can grant them and no key can ask for them.
 */
import type { Problem } from './errors.js';
import type { PodSpec } from './spec.js';

/** Fixed host ports a pod may ask for: none, only 1024 and up (`unprivileged`), or any. */
export type HostPortRule = 'none' | 'unprivileged' | 'any';
export const HOST_PORT_RULES: readonly HostPortRule[] = ['none', 'unprivileged', 'any'];

export interface PodSecurityPolicy {
  /** The node's network namespace (`network.mode: host`, or joining the Docker network `host`). @default false */
  hostNetwork: boolean;
  /** `host` volumes (still only under the paths the operator allows, `--allow-host-path`). @default false */
  hostPath: boolean;
  /** Joining a named Docker network (`network.mode: container` with a name) instead of the team's own. @default false */
  namedNetworks: boolean;
  /** Docker's privileged mode. @default false */
  privileged: boolean;
  /** Capabilities that may be added (`NET_ADMIN`), or `ALL`. @default none */
  capabilities: string[];
  /** Fixed host ports (a Marathon endpoint's `hostPort`; ports picked by the node are always allowed). @default 'unprivileged' */
  hostPorts: HostPortRule;
}

export const BASELINE_POLICY: PodSecurityPolicy = {
  hostNetwork: false,
  hostPath: false,
  namedNetworks: false,
  privileged: false,
  capabilities: [],
  hostPorts: 'unprivileged',
};

/** What an admin key gets: everything. */
export const UNRESTRICTED_POLICY: PodSecurityPolicy = {
  hostNetwork: true,
  hostPath: true,
  namedNetworks: true,
  privileged: true,
  capabilities: ['ALL'],
  hostPorts: 'any',
};

/** A policy widened by grants (the server's, then a team's): each field the more permissive of the two. */
export function widenPolicy(base: PodSecurityPolicy, grant: Partial<PodSecurityPolicy>): PodSecurityPolicy {
  const rank = (r: HostPortRule): number => HOST_PORT_RULES.indexOf(r);
  return {
    hostNetwork: base.hostNetwork || grant.hostNetwork === true,
    hostPath: base.hostPath || grant.hostPath === true,
    namedNetworks: base.namedNetworks || grant.namedNetworks === true,
    privileged: base.privileged || grant.privileged === true,
    capabilities: [...new Set([...base.capabilities, ...(grant.capabilities ?? [])])],
    hostPorts: grant.hostPorts && rank(grant.hostPorts) > rank(base.hostPorts) ? grant.hostPorts : base.hostPorts,
  };
}

/**
 * Grants as the CLI writes them: `host-network,host-path,named-networks,privileged,cap:NET_ADMIN,host-ports=any`.
 * Returns the grant or the words it did not understand.
 */
export function parsePolicyGrants(text: string): Partial<PodSecurityPolicy> | { unknown: string[] } {
  const out: Partial<PodSecurityPolicy> = {};
  const unknown: string[] = [];
  for (const word of text.split(',').map((w) => w.trim()).filter(Boolean)) {
    if (word === 'host-network') out.hostNetwork = true;
    else if (word === 'host-path') out.hostPath = true;
    else if (word === 'named-networks') out.namedNetworks = true;
    else if (word === 'privileged') out.privileged = true;
    else if (word.startsWith('cap:') && word.length > 4) out.capabilities = [...(out.capabilities ?? []), word.slice(4).toUpperCase().replace(/^CAP_/, '')];
    else if (word.startsWith('host-ports=') && (HOST_PORT_RULES as string[]).includes(word.slice(11))) out.hostPorts = word.slice(11) as HostPortRule;
    else unknown.push(word);
  }
  return unknown.length ? { unknown } : out;
}

/** A policy in the words `parsePolicyGrants` reads. */
export function formatPolicy(p: PodSecurityPolicy): string {
  const words = [
    p.hostNetwork && 'host-network',
    p.hostPath && 'host-path',
    p.namedNetworks && 'named-networks',
    p.privileged && 'privileged',
    ...p.capabilities.map((c) => `cap:${c}`),
    `host-ports=${p.hostPorts}`,
  ];
  return words.filter(Boolean).join(',');
}

const HOW = 'the operator grants it with `berth server --pod-policy` or `berth team policy set`';

/** Every field of the spec the policy refuses, with its path and the policy's word for it. */
export function policyProblems(spec: PodSpec, policy: PodSecurityPolicy): Problem[] {
  const out: Problem[] = [];
  const refuse = (path: string, what: string, grant: string): void => {
    out.push({ path, message: `${what} is refused by the pod security policy (${grant}: not granted; ${HOW})` });
  };
  const { mode, name } = spec.network;
  if (!policy.hostNetwork && (mode === 'host' || (mode === 'container' && name === 'host'))) refuse('/network/mode', 'the host network', 'host-network');
  else if (!policy.namedNetworks && mode === 'container' && name !== null && name !== 'host') refuse('/network/name', `joining the Docker network ${name}`, 'named-networks');
  spec.volumes.forEach((v, i) => {
    if (v.kind === 'host' && !policy.hostPath) refuse(`/volumes(${i})/hostPath`, `the host path ${v.hostPath}`, 'host-path');
  });
  spec.containers.forEach((c, i) => {
    const p = `/containers(${i})`;
    if (c.privileged && !policy.privileged) refuse(`${p}/privileged`, 'privileged mode', 'privileged');
    for (const [j, cap] of (c.capAdd ?? []).entries()) {
      if (!policy.capabilities.includes('ALL') && !policy.capabilities.includes(cap)) refuse(`${p}/capAdd(${j})`, `the capability ${cap}`, `cap:${cap}`);
    }
    c.endpoints.forEach((e, j) => {
      if (e.hostPort === null || e.hostPort === 0) return;
      if (policy.hostPorts === 'none') refuse(`${p}/endpoints(${j})/hostPort`, `the fixed host port ${e.hostPort}`, 'host-ports=unprivileged');
      else if (policy.hostPorts === 'unprivileged' && e.hostPort < 1024) refuse(`${p}/endpoints(${j})/hostPort`, `the fixed host port ${e.hostPort} (below 1024)`, 'host-ports=any');
    });
  });
  return out;
}
