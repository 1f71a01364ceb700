/** Host ports: finding free ones, and giving an instance the ones it publishes. */
import { createServer } from 'node:net';
import type { Assignment } from '../control/agent-protocol.js';
import { BerthError } from '../model/index.js';
import type { PortBinding } from '../runtime/types.js';
import { listenPort } from './pod-env.js';

/** Whether a TCP port can be bound on the address now. */
export function portFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A port the kernel reports free now. Another process may still take it before Docker binds it; the create then fails and is retried. */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen({ port: 0, host, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** What the launch allocated for the instance's network. */
export interface NetPlan {
  /** Container port → host port, as reported in `ports`. */
  ports: Record<string, number>;
  /** Endpoint name → host port. */
  endpoints: Record<string, number>;
  /** What the container holding the network publishes. */
  bindings: PortBinding[];
}

/** Host ports for the legacy ports and the endpoints, and what the network's holder publishes. */
export async function allocatePorts(a: Assignment, bind: string, nodeName: string): Promise<NetPlan> {
  const host = a.spec.network.mode === 'host';
  const taken = new Set<number>();
  const pick = async (want: number | undefined): Promise<number> => {
    if (want && !taken.has(want) && (await portFree(want, bind))) {
      taken.add(want);
      return want;
    }
    for (;;) {
      const p = await freePort(bind);
      if (taken.has(p)) continue;
      taken.add(p);
      return p;
    }
  };
  const plan: NetPlan = { ports: {}, endpoints: {}, bindings: [] };
  for (const p of a.spec.containers.flatMap((c) => c.ports)) {
    // With host networking the container listens on the node's own port.
    if (host) {
      plan.ports[String(p.port)] = p.port;
      continue;
    }
    const hostPort = await pick(a.hostPorts[String(p.port)]);
    plan.ports[String(p.port)] = hostPort;
    plan.bindings.push({ containerPort: p.port, hostPort, hostIp: bind });
  }
  for (const e of a.spec.containers.flatMap((c) => c.endpoints)) {
    if (e.hostPort === null) continue;
    // The port it had before, under its own key, else (as `ports` reports it) under its container port.
    const before = a.hostPorts[`ep:${e.name}`] ?? (e.containerPort !== null ? a.hostPorts[String(e.containerPort)] : undefined);
    if (e.hostPort > 0 && !host && !(await portFree(e.hostPort, bind))) {
      // Docker would fail the start with "address already in use"; the scheduler knows only Berth's own instances.
      throw new BerthError('NO_CAPACITY', `host port ${e.hostPort} of endpoint ${e.name} is taken on node ${nodeName} by something outside Berth; the instance starts when it is free`);
    }
    const hostPort = e.hostPort === 0 ? await pick(before) : e.hostPort;
    taken.add(hostPort);
    plan.endpoints[e.name] = hostPort;
    const tcp = e.protocols.length === 0 || e.protocols.some((x) => x !== 'udp');
    if (e.containerPort !== null && tcp) plan.ports[String(e.containerPort)] ??= hostPort;
    if (host) continue;
    const containerPort = listenPort(e, 'bridge', hostPort)!;
    if (tcp) plan.bindings.push({ containerPort, hostPort, hostIp: bind });
    if (e.protocols.includes('udp')) plan.bindings.push({ containerPort, hostPort, hostIp: bind, protocol: 'udp' });
  }
  return plan;
}
