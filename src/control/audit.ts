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

export class AuditLog {
  constructor(
    private readonly store: Store,
    private readonly log?: Logger,
  ) {}

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
