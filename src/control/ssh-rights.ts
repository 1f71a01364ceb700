/**
 * Who an SSH key lets in. A key records the user who registered it, and SSH counts as a write: the
 * gateway lets a key in only while its user is an owner or a member of the pod's team, read at
 * each session and channel, so demoting or removing a user shuts their keys out at once.
 */
import type { OwnerId, SshKey } from '../model/index.js';
import type { Store } from '../store/types.js';

export type SshRight = { ok: true } | { ok: false; reason: string };

/**
 * A key without a user (from before keys had users, or registered by a key acting for no user)
 * cannot be tied to anyone's role, so it opens sessions only for an owner without a team record
 * (a team of one from before teams, as its API keys act). In a team it must be registered again,
 * by a member's own API key.
 */
export async function sshRight(store: Store, key: Pick<SshKey, 'user' | 'fingerprint'>, team: OwnerId): Promise<SshRight> {
  if (!key.user) {
    if (!(await store.getTeam(team))) return { ok: true };
    return { ok: false, reason: `SSH key ${key.fingerprint} belongs to no user of team ${team} (registered before keys had users, or by a key acting for no user); a member removes it (berth ssh-key rm ${key.fingerprint}) and adds it again with their own API key` };
  }
  const role = await store.memberRole(team, key.user);
  if (!role) return { ok: false, reason: `${key.user} is no longer a member of team ${team}: their SSH keys open nothing` };
  if (role === 'viewer') return { ok: false, reason: `${key.user} is a viewer of team ${team} and cannot use SSH (shells, commands, SFTP and forwards are writes)` };
  return { ok: true };
}
