/** `berth team ...` and `berth user ...`: teams, their members, policy grants and quotas, and the audit log. */
import { UserError, table } from '../output.js';
import { defineCommand, defineGroup } from './define.js';

interface TeamView {
  name: string;
  grants: string;
  quota: Record<string, unknown>;
  createdAt: string;
  members?: { user: string; role: string }[];
}

const enc = encodeURIComponent;

const create = defineCommand({
  name: 'create',
  description: 'Create a team (admin key)',
  args: [{ name: 'name', description: 'the team name: lowercase letters, digits, _ . -', required: true }],
  examples: ['berth team create red'],
  async handler({ args, ctx }) {
    const t = await (await ctx.client()).post<TeamView>('/teams', { name: args.name });
    ctx.out.result(t, () => `team ${t.name} created\n`);
  },
});

const list = defineCommand({
  name: 'list',
  aliases: ['ls'],
  description: 'List the teams you see (all with an admin key)',
  examples: ['berth team ls'],
  async handler({ ctx }) {
    const res = await (await ctx.client()).get<{ teams: TeamView[] }>('/teams');
    ctx.out.result(res, () =>
      table(res.teams, [
        { header: 'NAME', value: (t) => t.name },
        { header: 'GRANTS', value: (t) => t.grants || '-' },
        { header: 'QUOTA', value: (t) => Object.entries(t.quota).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(',') || '-' },
      ]),
    );
  },
});

const get = defineCommand({
  name: 'get',
  description: 'A team with its members, grants and quotas',
  args: [{ name: 'name', description: 'team', required: true }],
  examples: ['berth team get red'],
  async handler({ args, ctx }) {
    const t = await (await ctx.client()).get<TeamView>(`/teams/${enc(args.name)}`);
    ctx.out.result(t, () => `Team:    ${t.name}\nGrants:  ${t.grants || '(the server\'s policy)'}\nQuota:   ${JSON.stringify(t.quota)}\nMembers: ${(t.members ?? []).map((m) => `${m.user} (${m.role})`).join(', ') || '-'}\n`);
  },
});

const policySet = defineCommand({
  name: 'set',
  description: "Set what the team's pods are granted beyond the server's pod security policy, replacing the team's grants (admin key)",
  args: [
    { name: 'team', description: 'team', required: true },
    { name: 'grants', description: 'host-network,host-path,named-networks,privileged,cap:<NAME>,host-ports=none|unprivileged|any ("" for none)', required: true },
  ],
  examples: ['berth team policy set red host-network,cap:NET_ADMIN', 'berth team policy set red ""'],
  async handler({ args, ctx }) {
    const t = await (await ctx.client()).put<TeamView>(`/teams/${enc(args.team)}/policy`, { grants: args.grants });
    ctx.out.result(t, () => `team ${t.name} is granted: ${t.grants || 'nothing beyond the server\'s policy'}\n`);
  },
});

const QUOTAS = ['pods', 'gpus', 'vcpus', 'memoryGb', 'volumeGb'];

const quotaSet = defineCommand({
  name: 'set',
  description: "Set the team's quotas, replacing them (admin key): pods=, gpus=, gpus.<type>=, vcpus=, memoryGb=, volumeGb=, and overQuota=refuse|queue (a create or start over quota: refused, or waits until it fits)",
  args: [
    { name: 'team', description: 'team', required: true },
    { name: 'limits', description: 'comma-separated name=value ("" for none)', required: true },
  ],
  examples: ['berth team quota set red pods=10,gpus=4,vcpus=32,memoryGb=128,volumeGb=500', "berth team quota set red 'gpus.NVIDIA A100 80GB PCIe=2'", 'berth team quota set red gpus=4,overQuota=queue'],
  async handler({ args, ctx }) {
    const quota: Record<string, unknown> = {};
    const byType: Record<string, number> = {};
    for (const part of args.limits.split(',').map((p) => p.trim()).filter(Boolean)) {
      if (part.startsWith('overQuota=')) {
        const mode = part.slice('overQuota='.length);
        if (mode !== 'refuse' && mode !== 'queue') throw new UserError(`${part}: write overQuota=refuse or overQuota=queue`);
        quota.overQuota = mode;
        continue;
      }
      const [k, v] = [part.slice(0, part.indexOf('=')), Number(part.slice(part.indexOf('=') + 1))];
      if (!part.includes('=') || !Number.isFinite(v)) throw new UserError(`${part}: write name=number`);
      if (k.startsWith('gpus.')) byType[k.slice(5)] = v;
      else if (QUOTAS.includes(k)) quota[k] = v;
      else throw new UserError(`${k}: not a quota (${QUOTAS.join(', ')}, gpus.<type>)`);
    }
    if (Object.keys(byType).length) quota.gpusByType = byType;
    const t = await (await ctx.client()).put<TeamView>(`/teams/${enc(args.team)}/quota`, quota);
    ctx.out.result(t, () => `team ${t.name}'s quota: ${JSON.stringify(t.quota)}\n`);
  },
});

const audit = defineCommand({
  name: 'audit',
  description: "The team's audit log, newest first (its owners; any team's with an admin key)",
  args: [{ name: 'team', description: 'team (default: your key\'s)', required: false }],
  options: { limit: { kind: 'number', integer: true, flags: '--limit <n>', description: 'at most this many entries (default 100)' } },
  examples: ['berth team audit', 'berth team audit red --limit 20'],
  async handler({ args, opts, ctx }) {
    const res = await (await ctx.client()).get<{ entries: { at: string; user: string | null; action: string; objectId: string }[] }>('/audit', {
      ...(args.team ? { team: args.team } : {}),
      ...(opts.limit !== undefined ? { limit: String(opts.limit) } : {}),
    });
    ctx.out.result(res, () =>
      table(res.entries, [
        { header: 'AT', value: (e) => e.at },
        { header: 'USER', value: (e) => e.user ?? '-' },
        { header: 'ACTION', value: (e) => e.action },
        { header: 'OBJECT', value: (e) => e.objectId },
      ]),
    );
  },
});

export const teamCommands = defineGroup({
  name: 'team',
  aliases: ['teams'],
  description: 'Teams: members, pod security grants, quotas, the audit log',
  commands: [create, list, get, defineGroup({ name: 'policy', description: "The team's pod security grants", commands: [policySet] }), defineGroup({ name: 'quota', description: "The team's quotas", commands: [quotaSet] }), audit],
});

const userAdd = defineCommand({
  name: 'add',
  description: 'Add a user to a team, or change their role there; prints a new API key for them with --key',
  args: [{ name: 'user', description: 'user name', required: true }],
  options: {
    team: { kind: 'string', required: true, flags: '--team <team>', description: 'the team' },
    role: { kind: 'string', flags: '--role <role>', default: 'member', choices: ['owner', 'member', 'viewer'], description: 'owner: manages members; member: creates and uses; viewer: reads only' },
    key: { kind: 'boolean', flags: '--key', description: 'also make an API key for the user (shown once)' },
  },
  examples: ['berth user add ann --team red --role owner --key', 'berth user add vic --team red --role viewer'],
  async handler({ args, opts, ctx }) {
    const res = await (await ctx.client()).post<{ member: { user: string; team: string; role: string }; key?: string }>(`/teams/${enc(opts.team)}/members`, { user: args.user, role: opts.role, ...(opts.key ? { createKey: true } : {}) });
    if (!ctx.out.json) ctx.out.note(`${res.member.user} is ${res.member.role} of team ${res.member.team}${res.key ? '. Their API key, shown only now:' : ''}`);
    ctx.out.result(res, () => (res.key ? `${res.key}\n` : ''));
  },
});

const userRm = defineCommand({
  name: 'rm',
  description: 'Remove a user from a team; their keys for it stop working at once',
  args: [{ name: 'user', description: 'user name', required: true }],
  options: { team: { kind: 'string', required: true, flags: '--team <team>', description: 'the team' } },
  examples: ['berth user rm vic --team red'],
  async handler({ args, opts, ctx }) {
    await (await ctx.client()).delete(`/teams/${enc(opts.team)}/members/${enc(args.user)}`);
    ctx.out.result({ user: args.user, team: opts.team, removed: true }, () => `${args.user} removed from team ${opts.team}\n`);
  },
});

const userList = defineCommand({
  name: 'list',
  aliases: ['ls'],
  description: "A team's users and their roles",
  options: { team: { kind: 'string', required: true, flags: '--team <team>', description: 'the team' } },
  examples: ['berth user ls --team red'],
  async handler({ opts, ctx }) {
    const t = await (await ctx.client()).get<TeamView>(`/teams/${enc(opts.team)}`);
    const members = t.members ?? [];
    ctx.out.result({ members }, () => table(members, [{ header: 'USER', value: (m) => m.user }, { header: 'ROLE', value: (m) => m.role }]));
  },
});

export const userCommands = defineGroup({ name: 'user', aliases: ['users'], description: "Users: teams' members and their roles", commands: [userAdd, userList, userRm] });
