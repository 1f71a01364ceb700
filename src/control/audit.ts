/**
 * The audit log: who did what to which object, when. The API records every change it answers
 * (create, update, delete, actions, exec, keys, teams, policy) once it has succeeded, and the
 * gateways record each SSH, terminal and port-forward session when it opens. An entry that cannot
 * be written is logged, never failing the request it records.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { AuditEntry } from '../model/index.js';
import type { Store } from '../store/types.js';
import { requireTeamOwner, type Caller } from './caller.js';

export const AUDIT_PAGE_MAX = 1000;
/** How long entries are kept when the operator does not say (`berth server --audit-retention`). */
export const AUDIT_RETENTION_DAYS = 400;

export interface AuditLogOptions {
  log?: Logger;
  /** Entries older than this many days are deleted, once an hour; 0 keeps them for ever. @default AUDIT_RETENTION_DAYS */
  retentionDays?: number;
  /** @default one hour */
  pruneEveryMs?: number;
}

export class AuditLog {
  private readonly log: Logger | undefined;
  private readonly pruner: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly opts: AuditLogOptions = {},
  ) {
    this.log = opts.log;
    if (this.retentionDays > 0) {
      this.pruner = setInterval(() => void this.prune(), opts.pruneEveryMs ?? 3_600_000);
      this.pruner.unref();
    }
  }

  private get retentionDays(): number {
    return this.opts.retentionDays ?? AUDIT_RETENTION_DAYS;
  }

  close(): void {
    clearInterval(this.pruner);
  }

  /** Deletes what is older than the retention; answers how many entries went. Failures are logged. */
  async prune(now = Date.now()): Promise<number> {
    if (this.retentionDays <= 0) return 0;
    const before = new Date(now - this.retentionDays * 86_400_000).toISOString();
    try {
      const n = await this.store.pruneAudit(before);
      if (n > 0) this.log?.info({ deleted: n, before }, 'pruned the audit log');
      return n;
    } catch (err) {
      this.log?.warn({ err }, 'pruning the audit log failed');
      return 0;
    }
  }

  /** `team`: whose log it goes in when not the caller's (the operator changing a team). */
  async record(caller: Caller, action: string, objectType: string, objectId: string, detail: Record<string, unknown> = {}, team: string = caller.owner): Promise<void> {
    const at = new Date().toISOString();
    const entry: AuditEntry = {
      id: `${at}-${randomBytes(4).toString('hex')}`,
      at,
      team,
      user: caller.user ?? null,
      keyId: caller.keyId ?? null,
      action,
      objectType,
      objectId,
      detail,
    };
    await this.store.appendAudit(entry).catch((err: unknown) => this.log?.warn({ err, action, objectId }, 'cannot write to the audit log'));
  }

  /** The team's entries (the caller's own team unless an admin names one; an admin without one: every team's), newest first. */
  list(caller: Caller, opts: { team?: string; limit?: number; before?: string }): Promise<AuditEntry[]> {
    const team = opts.team ?? (caller.admin ? undefined : caller.owner);
    requireTeamOwner(caller, team ?? caller.owner, 'read the audit log');
    const limit = Math.min(Math.max(1, Math.floor(opts.limit ?? 100)), AUDIT_PAGE_MAX);
    return this.store.listAudit({ ...(team !== undefined ? { team } : {}), limit, ...(opts.before ? { before: opts.before } : {}) });
  }
}
