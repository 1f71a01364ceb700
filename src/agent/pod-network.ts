/**
 * Pods' own networks and the node's firewall for them.
 *
 * Each team's bridge-mode pods live on a Docker bridge network of their own (named by the control
 * plane, `berth-t-<team>`), made here on demand and removed when no container uses it. Docker keeps
 * bridge networks from routing to each other (its DOCKER-ISOLATION chains), so one team's pods cannot
 * reach another's by IP, while a team's pods reach each other.
 *
 * Docker does not keep a container from reaching the node itself: packets to the node's addresses
 * (the network's gateway, the node's other IPs) go to the INPUT chain, where any service bound to
 * 0.0.0.0 answers — the Berth API among them. (DOCKER-USER is on FORWARD and never sees them; an
 * `--internal` network would also cut outbound internet and published ports.) So every pod bridge
 * gets an interface named `berth…` and two INPUT rules cover them all: replies to connections the
 * node opened (the proxy's, health checks, port-forward) pass, anything else from a pod to the node
 * is dropped. Published ports are unaffected: they are DNAT'ed and forwarded, not delivered to INPUT.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { NodeId } from '../model/index.js';
import type { NetworkRuntime, Runtime } from '../runtime/types.js';
import { execFileOffThread } from '../runtime/host-worker.js';
import { LABELS } from './labels.js';

/** Linux interface names of pod bridges start with this; the firewall rules match `berth+`. */
export const BRIDGE_PREFIX = 'berth';
const COMMENT = 'berth: pods reach the node only in replies';

/** The bridge interface of a pod network: `berth` and 10 hex digits (Linux allows 15 characters). */
export const bridgeName = (network: string): string => BRIDGE_PREFIX + createHash('sha256').update(network).digest('hex').slice(0, 10);

/** The INPUT rules, in their order in the chain, as iptables argv after `-I INPUT <n>` / `-C INPUT` / `-D INPUT`. */
export const ISOLATION_RULES: readonly (readonly string[])[] = [
  ['-i', `${BRIDGE_PREFIX}+`, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-m', 'comment', '--comment', COMMENT, '-j', 'ACCEPT'],
  ['-i', `${BRIDGE_PREFIX}+`, '-m', 'comment', '--comment', COMMENT, '-j', 'DROP'],
];

/** One hole in the wall: a pod's bridge may reach one TCP port of one node address (ssh -R). */
const holeRule = (bridge: string, address: string, port: number): string[] => ['-i', bridge, '-d', address, '-p', 'tcp', '--dport', String(port), '-m', 'comment', '--comment', 'berth: ssh -R listener', '-j', 'ACCEPT'];

async function iptables(args: readonly string[]): Promise<boolean> {
  try {
    // Forked from the host worker: a fork blocks its thread until the child has exec'd.
    await execFileOffThread('iptables', ['-w', '5', ...args]);
    return true;
  } catch {
    return false;
  }
}

/** Puts the INPUT rules at the top of the chain, once; false when iptables is missing or refuses (not root). */
export async function ensureIsolationRules(): Promise<boolean> {
  const present = await Promise.all(ISOLATION_RULES.map((r) => iptables(['-C', 'INPUT', ...r])));
  if (present.every(Boolean)) return true;
  // One without the other would be in the wrong order: put both back, accept before drop.
  await removeIsolationRules();
  for (const r of [...ISOLATION_RULES].reverse()) if (!(await iptables(['-I', 'INPUT', '1', ...r]))) return false;
  return true;
}

/** Takes the rules out again (every copy). */
export async function removeIsolationRules(): Promise<void> {
  for (const r of ISOLATION_RULES) while (await iptables(['-D', 'INPUT', ...r]));
}

export function networkRuntime(runtime: Runtime): NetworkRuntime | undefined {
  const r = runtime as Runtime & Partial<NetworkRuntime>;
  return r.ensureNetwork && r.listNetworks && r.removeNetwork ? (r as NetworkRuntime) : undefined;
}

/** How old an unused pod network must be before the sweep removes it. */
const NETWORK_GRACE_MS = 2 * 60_000;

/**
 * How long a check of the INPUT rules holds before a launch looks again. Each check runs iptables
 * twice; a check per launch cost a burst of 200 pods 400 processes forked from the agent (a large
 * process: each fork blocked its event loop) and as many waits on the xtables lock Docker needs too.
 */
export const RULES_RECHECK_MS = 30_000;

export class PodNetworks {
  /** Networks a launch in flight is about to join: not removed meanwhile. */
  private readonly joining = new Map<string, number>();
  /**
   * The make of each network in flight, shared by the launches that ask meanwhile: 8 launches at
   * once each making the team's network had Docker allocate a subnet and bridge 8 times, and refuse
   * 7 of them, at the start of every burst.
   */
  private readonly making = new Map<string, Promise<void>>();
  /** The last check of the INPUT rules (in flight or done), shared by the launches that follow it. */
  private rulesChecked: { atMs: number; done: Promise<boolean> } | undefined;

  constructor(
    private readonly runtime: NetworkRuntime | undefined,
    private readonly log: Logger,
    private readonly nodeId: NodeId,
    /** Whether the INPUT rules hold (ensureIsolationRules succeeded). */
    private readonly firewalled: boolean,
  ) {}

  /** Makes the network (with its bridge name and labels) before a launch joins it; `done` lets the collector have it again. */
  async join(name: string): Promise<() => void> {
    this.joining.set(name, (this.joining.get(name) ?? 0) + 1);
    const done = (): void => {
      const n = (this.joining.get(name) ?? 1) - 1;
      if (n > 0) this.joining.set(name, n);
      else this.joining.delete(name);
    };
    try {
      // Put back if someone flushed the chain since the start (a firewall reload).
      if (this.firewalled) await this.ensureRules();
      await this.ensureNetwork(name);
    } catch (err) {
      done();
      throw err;
    }
    return done;
  }

  /** Makes the network unless it is there; one make per name at a time, shared. */
  private ensureNetwork(name: string): Promise<void> {
    const runtime = this.runtime;
    if (!runtime) return Promise.resolve();
    let made = this.making.get(name);
    if (!made) {
      made = runtime.ensureNetwork(name, { bridge: bridgeName(name), labels: { [LABELS.managed]: '1', [LABELS.node]: this.nodeId, 'berth.kind': 'pod-network' } }).finally(() => this.making.delete(name));
      this.making.set(name, made);
    }
    return made;
  }

  /** The INPUT rules, checked (and put back) at most once per RULES_RECHECK_MS, one check at a time. */
  private ensureRules(): Promise<boolean> {
    const now = Date.now();
    if (this.rulesChecked && now - this.rulesChecked.atMs < RULES_RECHECK_MS) return this.rulesChecked.done;
    const done = ensureIsolationRules();
    this.rulesChecked = { atMs: now, done };
    return done;
  }

  /**
   * Removes pod networks that no container uses and no launch here is about to join. Any agent's on
   * this daemon, not only this node's: agents sharing a daemon (tests) share a team's network, and the
   * one that made it may be gone. A network younger than NETWORK_GRACE_MS is left alone: another
   * agent's launch may be between making it and starting its container.
   */
  async collect(): Promise<void> {
    if (!this.runtime) return;
    const youngest = Date.now() - NETWORK_GRACE_MS;
    for (const n of await this.runtime.listNetworks({ [LABELS.managed]: '', 'berth.kind': 'pod-network' })) {
      if (n.containers > 0 || this.joining.has(n.name) || n.createdMs > youngest) continue;
      await this.runtime.removeNetwork(n.name).then(
        () => this.log.info({ network: n.name }, 'removed an unused pod network'),
        (err: unknown) => this.log.debug({ err, network: n.name }, 'cannot remove a pod network yet'),
      );
    }
  }

  /**
   * Lets pods on `network` reach `port` of the node's `address` (an ssh -R listener) until the
   * returned function is called. Nothing to do where the wall is not up or the pod is not on a pod network.
   */
  async openHole(network: string | undefined, address: string, port: number): Promise<() => Promise<void>> {
    if (!this.firewalled || !network) return async () => undefined;
    const rule = holeRule(bridgeName(network), address, port);
    await iptables(['-I', 'INPUT', '1', ...rule]);
    return async () => void (await iptables(['-D', 'INPUT', ...rule]));
  }
}
