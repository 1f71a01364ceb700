/**
 * A network volume on a data center's NFS export is the export's subdirectory `<export>/<volume id>`
 * (control/volume-backing.ts), and an NFS mount of a directory that does not exist fails. The node
 * makes it the first time it needs it, with what every node has: Docker and its infra image. A
 * container of that image mounts the export's root, and a tmpfs at `<root>/<volume id>` inside it;
 * the runtime creates a missing mount target before it mounts there, so starting the container makes
 * the directory on the export. The container is removed at once; it ran nothing but catatonit.
 *
 * Not exercised against a real NFS server in Berth's tests (the test machine's kernel has no NFS
 * client); the same steps are tested with a plain local volume as the root.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { BerthError, type NodeId } from '../model/index.js';
import type { Runtime } from '../runtime/types.js';
import { LABELS } from './labels.js';

/** What the assignment says of an NFS-backed network volume. */
export interface NfsVolume {
  /** The `local` driver's options of the volume itself: `device` is `:<export>/<volume id>`. */
  options: Record<string, string>;
}

/** The export root's options and the subdirectory, from the volume's own; undefined when the device is not `:<path>/<name>`. */
export function exportRootOf(options: Record<string, string>): { root: Record<string, string>; subdirectory: string } | undefined {
  if (options.type !== 'nfs') return undefined;
  const m = /^:(.*)\/([^/]+)$/.exec(options.device ?? '');
  if (!m || m[2] === '..' || m[2] === '.') return undefined;
  return { root: { ...options, device: `:${m[1] || '/'}` }, subdirectory: m[2]! };
}

/** The Docker volume of an export's root on this node: named by the mount, so two exports never share one. */
export const exportRootVolumeName = (root: Record<string, string>): string =>
  `berth-nfs-${createHash('sha256').update(`${root.o ?? ''}\n${root.device ?? ''}`).digest('hex').slice(0, 16)}`;

export class NfsSubdirectories {
  /** Subdirectories made (or being made) since the agent started: once per volume per run. */
  private readonly made = new Map<string, Promise<void>>();

  constructor(
    private readonly runtime: Runtime,
    private readonly log: Logger,
    private readonly nodeId: NodeId,
    /** The image to run: the node's infra image. */
    private readonly image: () => Promise<string>,
  ) {}

  /** Makes the volume's subdirectory on its export; nothing for a volume that is not on NFS. */
  ensure(options: Record<string, string> | null | undefined): Promise<void> {
    const at = options ? exportRootOf(options) : undefined;
    if (!at) return Promise.resolve();
    return this.ensureUnder(at.root, at.subdirectory);
  }

  /** Makes `<root volume>/<subdirectory>`; `root`: options of Docker's local driver for the export root (a plain volume when empty). */
  ensureUnder(root: Record<string, string>, subdirectory: string): Promise<void> {
    const rootName = exportRootVolumeName(root);
    const key = `${rootName}/${subdirectory}`;
    let run = this.made.get(key);
    if (!run) {
      run = this.make(rootName, root, subdirectory);
      this.made.set(key, run);
      // A failure is tried again at the next launch.
      run.catch(() => this.made.delete(key));
    }
    return run;
  }

  private async make(rootName: string, root: Record<string, string>, subdirectory: string): Promise<void> {
    const labels = { [LABELS.managed]: '1', [LABELS.node]: this.nodeId, 'berth.kind': 'nfs-root' };
    await this.runtime.ensureVolume(rootName, labels, Object.keys(root).length ? root : undefined);
    const name = `berth-mkdir-${this.nodeId}-${subdirectory}`.slice(0, 120);
    // One left by an agent killed midway would hold the name.
    await this.runtime.removeContainer(name);
    const { id } = await this.runtime.createContainer({
      name,
      image: await this.image(),
      entrypoint: [],
      command: [],
      env: {},
      labels: { [LABELS.node]: this.nodeId, 'berth.kind': 'nfs-mkdir' },
      ports: [],
      mounts: [
        { source: rootName, target: '/export', readOnly: false },
        // The target is made on the export before the tmpfs covers it.
        { kind: 'tmpfs', source: '', target: `/export/${subdirectory}`, readOnly: false },
      ],
      cpus: null,
      memoryBytes: null,
      diskBytes: null,
      gpuUuids: [],
      gpusSimulated: false,
      networkMode: 'none',
    });
    try {
      await this.runtime.startContainer(id);
      this.log.info({ volume: rootName, subdirectory }, 'made a network volume’s directory on its NFS export');
    } catch (err) {
      // Same kind, so the launch is retried exactly as for the error it wraps.
      if (!(err instanceof BerthError)) throw err;
      throw new BerthError(err.kind, `cannot make the network volume's directory ${subdirectory} on the NFS export ${root.device ?? ''} (${root.o ?? ''}): ${err.message}`, { cause: err });
    } finally {
      await this.runtime.removeContainer(id);
    }
  }
}
