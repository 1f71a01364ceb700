import { BerthError, notFound, type AuditEntry, type Team, type TeamMember, type TeamQuota, type TeamRole, type PodSecurityPolicy } from '../model/index.js';
import { unique, type StoreContext } from './context.js';

/** Teams and their members. */
export interface TeamStore {
  createTeam(t: Team): Promise<Team>;
  getTeam(name: string): Promise<Team | undefined>;
  listTeams(): Promise<Team[]>;
  setTeamPolicy(name: string, policy: Partial<PodSecurityPolicy>): Promise<void>;
  setTeamQuota(name: string, quota: TeamQuota): Promise<void>;
  /** Adds the user to the team, or changes their role there. */
  setMember(m: TeamMember): Promise<void>;
  removeMember(team: string, user: string): Promise<void>;
  /** The team's members; without a team, every team's. */
  listMembers(team?: string): Promise<TeamMember[]>;
  memberRole(team: string, user: string): Promise<TeamRole | undefined>;
}

/** The audit log: appended to, read newest first. */
export interface AuditStore {
  appendAudit(e: AuditEntry): Promise<void>;
  /** Newest first; `team` narrows to one team's; `before` (an entry's `at`) pages back. */
  listAudit(opts: { team?: string; limit: number; before?: string }): Promise<AuditEntry[]>;
  /** Deletes the entries written before `before` (an ISO time); answers how many. */
  pruneAudit(before: string): Promise<number>;
}

const teamFromRow = (r: { name: string; policy: string; quota: string; created_at: string }): Team => ({
  name: r.name,
  policy: JSON.parse(r.policy) as Partial<PodSecurityPolicy>,
  quota: JSON.parse(r.quota) as TeamQuota,
  createdAt: r.created_at,
});

export function teamStore(ctx: StoreContext): TeamStore {
  return {
    async createTeam(t) {
      await unique(ctx, () => ctx.db.insertInto('teams').values({ name: t.name, policy: JSON.stringify(t.policy), quota: JSON.stringify(t.quota), created_at: t.createdAt }).execute(), `team ${t.name} already exists`);
      return t;
    },

    async getTeam(name) {
      const row = await ctx.db.selectFrom('teams').selectAll().where('name', '=', name).executeTakeFirst();
      return row && teamFromRow(row);
    },

    async listTeams() {
      return (await ctx.db.selectFrom('teams').selectAll().orderBy('name').execute()).map(teamFromRow);
    },

    async setTeamPolicy(name, policy) {
      const r = await ctx.db.updateTable('teams').set({ policy: JSON.stringify(policy) }).where('name', '=', name).executeTakeFirst();
      if (r.numUpdatedRows === 0n) throw notFound('team', name);
    },

    async setTeamQuota(name, quota) {
      const r = await ctx.db.updateTable('teams').set({ quota: JSON.stringify(quota) }).where('name', '=', name).executeTakeFirst();
      if (r.numUpdatedRows === 0n) throw notFound('team', name);
    },

    async setMember(m) {
      if (!(await ctx.db.selectFrom('teams').select('name').where('name', '=', m.team).executeTakeFirst())) throw notFound('team', m.team);
      const r = await ctx.db.updateTable('team_members').set({ role: m.role }).where('team', '=', m.team).where('user_name', '=', m.user).executeTakeFirst();
      if (r.numUpdatedRows > 0n) return;
      await unique(ctx, () => ctx.db.insertInto('team_members').values({ team: m.team, user_name: m.user, role: m.role, created_at: m.createdAt }).execute(), `${m.user} is already in ${m.team}`);
    },

    async removeMember(team, user) {
      const r = await ctx.db.deleteFrom('team_members').where('team', '=', team).where('user_name', '=', user).executeTakeFirst();
      if (r.numDeletedRows === 0n) throw new BerthError('NOT_FOUND', `${user} is not a member of team ${team}`, { extra: { id: user } });
    },

    async listMembers(team) {
      let q = ctx.db.selectFrom('team_members').selectAll();
      if (team !== undefined) q = q.where('team', '=', team);
      const rows = await q.orderBy('team').orderBy('user_name').execute();
      return rows.map((r) => ({ team: r.team, user: r.user_name, role: r.role as TeamRole, createdAt: r.created_at }));
    },

    async memberRole(team, user) {
      const row = await ctx.db.selectFrom('team_members').select('role').where('team', '=', team).where('user_name', '=', user).executeTakeFirst();
      return row?.role as TeamRole | undefined;
    },
  };
}

export function auditStore(ctx: StoreContext): AuditStore {
  return {
    async appendAudit(e) {
      await ctx.db
        .insertInto('audit_log')
        .values({ id: e.id, at: e.at, team: e.team, user_name: e.user, key_id: e.keyId, action: e.action, object_type: e.objectType, object_id: e.objectId, detail: JSON.stringify(e.detail) })
        .execute();
    },

    async pruneAudit(before) {
      const result = await ctx.db.deleteFrom('audit_log').where('at', '<', before).executeTakeFirst();
      return Number(result.numDeletedRows);
    },

    async listAudit({ team, limit, before }) {
      let q = ctx.db.selectFrom('audit_log').selectAll();
      if (team !== undefined) q = q.where('team', '=', team);
      if (before !== undefined) q = q.where('at', '<', before);
      const rows = await q.orderBy('at', 'desc').orderBy('id', 'desc').limit(limit).execute();
      return rows.map((r) => ({
        id: r.id,
        at: r.at,
        team: r.team,
        user: r.user_name,
        keyId: r.key_id,
        action: r.action,
        objectType: r.object_type,
        objectId: r.object_id,
        detail: JSON.parse(r.detail) as Record<string, unknown>,
      }));
    },
  };
}
