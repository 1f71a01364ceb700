/** Disk use of the node's pods, measured for the whole node at once: one `system df`, not one call per pod. */
import type { Logger } from 'pino';
import type { Assignment } from '../control/agent-protocol.js';
import type { DiskUsage } from '../model/index.js';
import type { ContainerInfo, Runtime } from '../runtime/types.js';

export class DiskMeter {
  /** Container id, or `volume:<name>` → bytes, as of the last measure. */
  private last = new Map<string, number>();

  constructor(
    private readonly runtime: Runtime,
    private readonly log: Logger,
  ) {}

  /** Measures again; false when the runtime could not say (the last figures stay). */
  async measure(): Promise<boolean> {
    try {
      const df = await this.runtime.diskUsage();
      const m = new Map<string, number>();
      for (const [id, bytes] of Object.entries(df.containers)) m.set(id, bytes);
      for (const [name, bytes] of Object.entries(df.volumes)) m.set(`volume:${name}`, bytes);
      this.last = m;
      return true;
    } catch (e) {
      this.log.debug({ err: e }, 'disk usage unavailable');
      return false;
    }
  }

  /** The instance's use as last measured; `enforced`: whether its container disk cap holds. */
  usageOf(containers: ContainerInfo[], a: Assignment, enforced: boolean): DiskUsage | null {
    if (containers.length === 0) return null;
    const sum = containers.reduce((n, c) => n + (this.last.get(c.id) ?? 0), 0);
    const vol = a.volumeDisk ?? a.networkVolume;
    return {
      containerDiskBytes: this.last.size ? sum : null,
      volumeDiskBytes: vol && this.last.has(`volume:${vol}`) ? this.last.get(`volume:${vol}`)! : null,
      containerDiskEnforced: enforced,
    };
  }
}
