import type { Leadership } from './leadership.js';
import { Mutex } from './mutex.js';

/**
 * The pod service's placement lock: creates, changes, actions and placement one at a time, each on a
 * fresh read. `run` is the leader's work and is fenced by its lease (a server that does not lead
 * gets NOT_LEADER); `runHere` is one any server may do — a pod's status recomputed from an agent's
 * report — and is only kept from overlapping with this server's own work.
 */
export class PlacementLock {
  private readonly mutex = new Mutex();

  constructor(private readonly leadership?: Pick<Leadership, 'lead'>) {}

  run<T>(fn: () => Promise<T>): Promise<T> {
    const leadership = this.leadership;
    return this.mutex.run(leadership ? () => leadership.lead(fn) : fn);
  }

  runHere<T>(fn: () => Promise<T>): Promise<T> {
    return this.mutex.run(fn);
  }
}
