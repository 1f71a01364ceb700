import type { PodSpec } from './spec.js';

/**
 * The node ports an instance of the spec takes whatever else runs there, as `port/proto` keys:
 * endpoints that ask for an exact `hostPort`, and with host networking every port a container
 * declares (it listens on the node itself). Two instances asking for one of them cannot share a
 * node, as Marathon's offers would not match either. Ports the agent picks (`hostPort: 0`, RunPod's
 * published ports) are not here: any free port does.
 */
export function fixedHostPorts(spec: PodSpec): readonly string[] {
  // Asked for every running instance at every placement: specs are immutable per version, so once each.
  let ports = known.get(spec);
  if (!ports) known.set(spec, (ports = collect(spec)));
  return ports;
}

const known = new WeakMap<PodSpec, string[]>();

function collect(spec: PodSpec): string[] {
  const out = new Set<string>();
  const host = spec.network.mode === 'host';
  for (const c of spec.containers) {
    if (host) for (const p of c.ports) out.add(`${p.port}/tcp`);
    for (const e of c.endpoints) {
      const port = e.hostPort !== null && e.hostPort > 0 ? e.hostPort : host ? e.containerPort : null;
      if (port === null || port <= 0) continue;
      const udp = e.protocols.includes('udp');
      const tcp = e.protocols.length === 0 || e.protocols.some((x) => x !== 'udp');
      if (tcp) out.add(`${port}/tcp`);
      if (udp) out.add(`${port}/udp`);
    }
  }
  return [...out];
}
