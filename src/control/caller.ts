import type { OwnerId } from '../model/index.js';

/** Who is asking: every control-plane call is made on behalf of one key's owner. */
export interface Caller {
  owner: OwnerId;
  admin: boolean;
}

/** An owner filter for listings: admins see everything. */
export const ownerScope = (c: Caller): OwnerId | undefined => (c.admin ? undefined : c.owner);

export const canSee = (c: Caller, owner: OwnerId): boolean => c.admin || c.owner === owner;
