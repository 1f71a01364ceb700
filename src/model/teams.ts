/**
 * Teams, their members and what the operator sets per team. A team is what owns pods and every
 * resource (the `owner` of a pod, volume, template, secret, registry credential and key is a team's
 * name); a key acts for one user of one team with that user's role in it.
 */
import type { PodSecurityPolicy } from './policy.js';

/** owner: manage members (and read policy, quotas, the audit log); member: create and use; viewer: read only. */
export type TeamRole = 'owner' | 'member' | 'viewer';
export const TEAM_ROLES: readonly TeamRole[] = ['owner', 'member', 'viewer'];

/** Limits over a team's live pods and volumes; an absent field: no limit. */
export interface TeamQuota {
  /** GPUs of pods meant to run, of any type. */
  gpus?: number;
  /** GPUs of pods meant to run that may land on the type (a pod naming several types counts against each). */
  gpusByType?: Record<string, number>;
  /** vCPUs reserved by pods meant to run; with this set, a pod must reserve its vCPUs. */
  vcpus?: number;
  /** Memory reserved by pods meant to run, in GB; with this set, a pod must reserve its memory. */
  memoryGb?: number;
  /** Pods not terminated (stopped ones included: they keep their volume and may start again). */
  pods?: number;
  /** Volume disks of pods not terminated (per instance) and network volumes, in GB. */
  volumeGb?: number;
  /**
   * What a create or a start over a quota gets: `refuse` (a 403 naming the quota) or `queue`
   * (accepted, the pod waits with the reason — a create unplaced, a start stopped on its node — and
   * is placed or started once the team's usage falls). RunPod's API refuses a create either way, as
   * RunPod does. @default 'refuse'
   */
  overQuota?: OverQuota;
}

export const OVER_QUOTA = ['refuse', 'queue'] as const;
export type OverQuota = (typeof OVER_QUOTA)[number];

export interface Team {
  name: string;
  /** What the operator grants the team's pods beyond the server's policy. */
  policy: Partial<PodSecurityPolicy>;
  quota: TeamQuota;
  createdAt: string;
}

export interface TeamMember {
  team: string;
  user: string;
  role: TeamRole;
  createdAt: string;
}

/** One entry of the audit log: who did what to which object, when. */
export interface AuditEntry {
  id: string;
  at: string;
  /** The team the object belongs to; `admin` for the operator's own. */
  team: string;
  /** The user the key acts for; null for a key without one (the admin key, keys from before teams). */
  user: string | null;
  /** The key's id. */
  keyId: string | null;
  /** `pod.create`, `pod.stop`, `pod.exec`, `ssh.session`, `terminal.session`, `key.create`, `team.policy`… */
  action: string;
  /** `pod`, `key`, `team`, `volume`, … and its id. */
  objectType: string;
  objectId: string;
  /** What else is worth keeping (a command's argv, a role), small. */
  detail: Record<string, unknown>;
}
