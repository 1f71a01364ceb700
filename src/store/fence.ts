import { AsyncLocalStorage } from 'node:async_hooks';
import { sql, type Kysely } from 'kysely';
import { BerthError } from '../model/index.js';
import type { SqlDialect } from './dialect.js';
import type { Database } from './schema.js';

/*
 * Fencing (Kleppmann's fencing tokens, done in the database): work a leader does only because it
 * leads runs inside `withFence`, and every write transaction opened inside it first checks, after
 * the writer lock, that the lease is still this holder's at this epoch and not expired — and holds
 * the lease row (FOR SHARE) until it commits, so no new leader can be granted the lease while it
 * writes. A leader paused past its lease (SIGSTOP, a long GC, a partition) wakes with writes that
 * fail with NOT_LEADER instead of placing beside the new leader.
 */

export interface Fence {
  /** The lease's name (`leader`). */
  lease: string;
  holder: string;
  epoch: number;
}

const current = new AsyncLocalStorage<Fence>();

/** Runs `fn` with its write transactions fenced by `fence` (also any it starts later, asynchronously). */
export function withFence<T>(fence: Fence, fn: () => Promise<T>): Promise<T> {
  return current.run(fence, fn);
}

/** The fence the running code is under, if any. */
export function currentFence(): Fence | undefined {
  return current.getStore();
}

/** Called first in every write transaction (after the writer lock): refuses the write when the fence no longer holds. */
export async function checkFence(trx: Kysely<Database>, dialect: SqlDialect): Promise<void> {
  const fence = current.getStore();
  if (!fence) return;
  const { rows } = await sql<{ epoch: number }>`select epoch from leases where name = ${fence.lease} and holder = ${fence.holder} and epoch = ${fence.epoch} and expires_at > ${dialect.nowMs()}${dialect.forShare}`.execute(trx);
  if (rows.length === 0) {
    throw new BerthError('NOT_LEADER', `this server no longer holds the ${fence.lease} lease at epoch ${fence.epoch}: the write was refused (another server leads now)`, { extra: { lease: fence.lease, epoch: fence.epoch } });
  }
}
