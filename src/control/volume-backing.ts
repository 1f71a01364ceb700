/**
 * Where a network volume's data lives, and so where pods that use it may run (docs/cluster.md).
 *
 * A data center whose operator named an NFS export has shared storage: each of its volumes is the
 * export's subdirectory `<export>/<volume id>`, mounted on every node through Docker's `local`
 * driver, and pods go to any node of that data center (RunPod's network volumes are datacenter-wide).
 * A data center without one keeps each volume on one node, bound at the first placement of a pod
 * that uses it: pods go there only, and wait when it is full. Never an empty copy elsewhere.
 */
import { invalid, type NetworkVolume, type NodeId, type PodSpec } from '../model/index.js';
import { DATA_CENTER_LABEL, DEFAULT_DATA_CENTER } from './agents.js';
import type { NodeLoad } from './scheduler.js';

/** An NFS export as the operator names it: `<server>:/<path>` and mount options. */
export interface NfsExport {
  server: string;
  /** Absolute, without a trailing slash. */
  path: string;
  /** Mount options after `addr=`. @default ['rw', 'nfsvers=4'] */
  options: string[];
}

export const DEFAULT_NFS_OPTIONS = ['rw', 'nfsvers=4'];

/** What a network volume's Docker volume is made with on a node: the `local` driver's options, or none (a plain local volume). */
export type VolumeDriverOptions = Record<string, string> | null;

/**
 * Parses `<data center>=<server>:/<path>[,option...]`, the `--nfs` flag's form. Throws a 4xx-style
 * problem naming the flag on bad input.
 */
export function parseNfsFlag(text: string, path = '--nfs'): { dataCenter: string; export: NfsExport } {
  const m = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,62})=([A-Za-z0-9.:[\]-]+?):(\/[^,\s]*)((?:,[^,\s]+)*)$/.exec(text.trim());
  const problem = (message: string) => invalid([{ path, message: `${message} (got ${JSON.stringify(text)}; e.g. us-east=10.0.0.5:/srv/berth,nfsvers=4.1)` }]);
  if (!m) throw problem('must be <data center>=<server>:/<export path>[,mount options]');
  const [, dataCenter, rawServer, rawPath, rawOptions] = m;
  const server = rawServer!.replace(/^\[(.*)\]$/, '$1');
  const exportPath = rawPath!.replace(/\/+$/, '') || '/';
  if (exportPath.split('/').includes('..')) throw problem('the export path must not contain ..');
  const options = rawOptions ? rawOptions.slice(1).split(',') : [...DEFAULT_NFS_OPTIONS];
  if (options.some((o) => o.startsWith('addr='))) throw problem('the server is given before the colon; leave addr= out of the options');
  return { dataCenter: dataCenter!, export: { server, path: exportPath, options } };
}

/** The network volume's Docker volume options on shared storage: `local` driver, type nfs, the volume's own subdirectory. */
export function nfsDriverOptions(exp: NfsExport, volumeId: string): Record<string, string> {
  const root = exp.path === '/' ? '' : exp.path;
  return { type: 'nfs', o: [`addr=${exp.server}`, ...exp.options].join(','), device: `:${root}/${volumeId}` };
}

/** The shared storage of each data center that has one: what `berth server --nfs` declared. */
export class VolumeBacking {
  private readonly exports: ReadonlyMap<string, NfsExport>;

  constructor(exports: Iterable<[string, NfsExport]> = []) {
    this.exports = new Map(exports);
  }

  /** The data center's NFS export, if it has shared storage. */
  shared(dataCenter: string): NfsExport | undefined {
    return this.exports.get(dataCenter);
  }

  /** `nfs` on shared storage, `node` on the node that holds it. */
  storageOf(v: Pick<NetworkVolume, 'dataCenterId'>): 'nfs' | 'node' {
    return this.exports.has(v.dataCenterId) ? 'nfs' : 'node';
  }

  /** What a node makes the volume's Docker volume with. */
  driverOptions(v: Pick<NetworkVolume, 'id' | 'dataCenterId'>): VolumeDriverOptions {
    const exp = this.exports.get(v.dataCenterId);
    return exp ? nfsDriverOptions(exp, v.id) : null;
  }

  /** Where pods using the volume may run. */
  scope(v: NetworkVolume): VolumeScope {
    if (this.exports.has(v.dataCenterId)) return { volume: v, nodeId: null, binds: false };
    return { volume: v, nodeId: v.nodeId, binds: v.nodeId === null };
  }
}

/**
 * Where a pod using `volume` may be placed: any node of its data center (`nodeId` null), or the
 * holding node only. `binds`: the volume is bound to whatever node the placement picks.
 */
export interface VolumeScope {
  volume: NetworkVolume;
  nodeId: NodeId | null;
  binds: boolean;
}

const dataCenterOf = (load: NodeLoad): string => load.node.labels[DATA_CENTER_LABEL] ?? DEFAULT_DATA_CENTER;

/** The loads of the nodes the scope allows: the same objects, so reservations made on them count everywhere. */
export function scopedLoads(loads: Map<NodeId, NodeLoad>, scope: VolumeScope): Map<NodeId, NodeLoad> {
  if (scope.nodeId) {
    const load = loads.get(scope.nodeId);
    return load ? new Map([[scope.nodeId, load]]) : new Map();
  }
  const out = new Map<NodeId, NodeLoad>();
  for (const [id, load] of loads) if (dataCenterOf(load) === scope.volume.dataCenterId) out.set(id, load);
  return out;
}

/** Why a pod using the volume waits, from what place() said about the nodes the scope allowed. */
export function scopeReason(scope: VolumeScope, all: Map<NodeId, NodeLoad>, allowed: Map<NodeId, NodeLoad>, reason: string): string {
  const v = scope.volume;
  if (scope.nodeId) {
    const holder = all.get(scope.nodeId)?.node.name;
    if (!holder) return `network volume ${v.id} is held by node ${scope.nodeId}, which is not registered`;
    return `network volume ${v.id} is held by node ${holder}, and pods that use it run there only: ${reason}`;
  }
  if (allowed.size === 0) return `network volume ${v.id} is in data center ${v.dataCenterId}, which has no node`;
  return `network volume ${v.id} is in data center ${v.dataCenterId}: ${reason}`;
}

/**
 * Whether the pod's network volume binds it to its node: the volume's data lives on that node (no
 * shared storage in its data center), so the pod cannot be placed elsewhere without its data. Node
 * loss and drain keep such a pod where it is (`boundToNode` in node-binding.ts).
 */
export function volumeHeldByNode(spec: Pick<PodSpec, 'networkVolumeId'>, volume: Pick<NetworkVolume, 'dataCenterId'> | undefined, backing: VolumeBacking): boolean {
  if (!spec.networkVolumeId) return false;
  // A volume no longer in the store has no data anywhere else either: stay.
  if (!volume) return true;
  return backing.storageOf(volume) === 'node';
}
