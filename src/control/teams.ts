/**
 * Teams and their members. The operator (an admin key) makes teams and sets what a team's policy
 * grants and its quotas; a team's owners manage its members; everyone in a team reads it.
 */
import { BerthError, invalid, notFound, OVER_QUOTA, parsePolicyGrants, TEAM_ROLES, type OwnerId, type Team, type TeamMember, type TeamQuota, type TeamRole } from '../model/index.js';
import type { Store } from '../store/types.js';
import { canSee, requireAdmin, requireTeamOwner, type Caller } from './caller.js';

const NAME = /^[a-z0-9][a-z0-9_.-]{0,39}$/;
const NAME_RULE = 'must be 1-40 lowercase letters, digits, _ . or -, starting with a letter or digit';
const QUOTA_FIELDS = ['gpus', 'vcpus', 'memoryGb', 'pods', 'volumeGb'] as const;

export class TeamService {
  constructor(private readonly store: Store) {}

  async create(caller: Caller, name: string): Promise<Team> {
    requireAdmin(caller, 'create teams');
    if (!NAME.test(name)) throw invalid([{ path: '/name', message: NAME_RULE }]);
    return this.store.createTeam({ name, policy: {}, quota: {}, createdAt: new Date().toISOString() });
  }

  async list(caller: Caller): Promise<Team[]> {
    const all = await this.store.listTeams();
    return all.filter((t) => canSee(caller, t.name as OwnerId));
  }

  async get(caller: Caller, name: string): Promise<{ team: Team; members: TeamMember[] }> {
    const team = await this.store.getTeam(name);
    if (!team || !canSee(caller, name as OwnerId)) throw notFound('team', name);
    return { team, members: await this.store.listMembers(name) };
  }

  /** Replaces what the team's pods are granted beyond the server's policy, from grant words (`host-network,cap:NET_ADMIN`). */
  async setPolicy(caller: Caller, name: string, grants: string): Promise<Team> {
    requireAdmin(caller, 'set a team\'s pod security policy');
    const policy = parsePolicyGrants(grants);
    if ('unknown' in policy) throw invalid([{ path: '/grants', message: `unknown grant ${policy.unknown.join(', ')} (host-network, host-path, named-networks, privileged, cap:<NAME>, host-ports=none|unprivileged|any)` }]);
    await this.store.setTeamPolicy(name, policy);
    return (await this.get(caller, name)).team;
  }

  async setQuota(caller: Caller, name: string, quota: TeamQuota): Promise<Team> {
    requireAdmin(caller, 'set a team\'s quotas');
    const problems = QUOTA_FIELDS.filter((f) => quota[f] !== undefined && !(Number.isFinite(quota[f]) && quota[f]! >= 0 && quota[f]! <= 1e9)).map((f) => ({ path: `/${f}`, message: 'must be a number from 0 to 1e9' }));
    if (quota.overQuota !== undefined && !OVER_QUOTA.includes(quota.overQuota)) problems.push({ path: '/overQuota', message: `must be one of ${OVER_QUOTA.join(', ')}` });
    for (const [t, n] of Object.entries(quota.gpusByType ?? {})) if (!(Number.isInteger(n) && n >= 0 && n <= 1e6)) problems.push({ path: `/gpusByType/${t}`, message: 'must be a whole number from 0' });
    if (problems.length) throw invalid(problems);
    await this.store.setTeamQuota(name, quota);
    return (await this.get(caller, name)).team;
  }

  async setMember(caller: Caller, team: string, user: string, role: TeamRole): Promise<TeamMember> {
    requireTeamOwner(caller, team, 'manage its members');
    const problems = [];
    if (!NAME.test(user)) problems.push({ path: '/user', message: NAME_RULE });
    if (!TEAM_ROLES.includes(role)) problems.push({ path: '/role', message: `must be one of ${TEAM_ROLES.join(', ')}` });
    if (problems.length) throw invalid(problems);
    if (!caller.admin && caller.user === user && role !== 'owner') throw new BerthError('CONFLICT', 'an owner cannot demote themselves; another owner or an admin key can');
    const member: TeamMember = { team, user, role, createdAt: new Date().toISOString() };
    await this.store.setMember(member);
    return member;
  }

  async removeMember(caller: Caller, team: string, user: string): Promise<void> {
    requireTeamOwner(caller, team, 'manage its members');
    await this.store.removeMember(team, user);
  }
}
