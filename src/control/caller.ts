import { BerthError, type OwnerId, type TeamRole } from '../model/index.js';

/**
 * Who is asking: every control-plane call is made on behalf of one key. `owner` is the key's team
 * (what owns pods and resources); `user` the person in it the key acts for, with `role` there.
 */
export interface Caller {
  owner: OwnerId;
  admin: boolean;
  /** null or absent: a key for the whole team (from before teams, or an admin key). */
  user?: string | null;
  /** Absent: `owner` (a key without a user has its team's full rights). */
  role?: TeamRole;
  /** The key's id, for the audit log. */
  keyId?: string;
}

/** An owner filter for listings: admins see everything. */
export const ownerScope = (c: Caller): OwnerId | undefined => (c.admin ? undefined : c.owner);

export const canSee = (c: Caller, owner: OwnerId): boolean => c.admin || c.owner === owner;

export const roleOf = (c: Caller): TeamRole => c.role ?? 'owner';

/**
 * Refuses a viewer anything but reading. Exec, SSH, terminals and port-forwards count as writes: they
 * run code in the pod (as Kubernetes learned with exec over WebSockets).
 */
export function requireWrite(c: Caller, what: string): void {
  if (c.admin || roleOf(c) !== 'viewer') return;
  throw new BerthError('FORBIDDEN', `${c.user ?? 'this key'} is a viewer of team ${c.owner} and cannot ${what}`, { extra: { role: 'viewer' } });
}

/** Only the team's owners (and the operator) manage its members and read its audit log. */
export function requireTeamOwner(c: Caller, team: string, what: string): void {
  if (c.admin || (c.owner === team && roleOf(c) === 'owner')) return;
  throw new BerthError('FORBIDDEN', `only an owner of team ${team} or an admin key can ${what}`);
}

/** Only the operator: what a team could use to lift its own limits (policy, quotas, teams). */
export function requireAdmin(c: Caller, what: string): void {
  if (!c.admin) throw new BerthError('FORBIDDEN', `only an admin key can ${what}`);
}
