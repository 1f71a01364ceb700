/** Teams, their members, their policy and quotas, and the audit log, under /api/v1. */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuditLog } from '../../control/audit.js';
import type { KeyService } from '../../control/keys.js';
import type { TeamService } from '../../control/teams.js';
import { formatPolicy, widenPolicy, BASELINE_POLICY, type Team, type TeamRole } from '../../model/index.js';

const Role = Type.Union([Type.Literal('owner'), Type.Literal('member'), Type.Literal('viewer')]);
const Quota = Type.Object(
  {
    gpus: Type.Optional(Type.Number({ minimum: 0, description: 'GPUs of pods meant to run' })),
    gpusByType: Type.Optional(Type.Record(Type.String(), Type.Integer({ minimum: 0 }), { description: 'GPU type → GPUs of pods that may land on it' })),
    vcpus: Type.Optional(Type.Number({ minimum: 0, description: 'vCPUs reserved by pods meant to run (pods must then reserve theirs)' })),
    memoryGb: Type.Optional(Type.Number({ minimum: 0, description: 'memory reserved by pods meant to run (pods must then reserve theirs)' })),
    pods: Type.Optional(Type.Integer({ minimum: 0, description: 'pods not terminated' })),
    volumeGb: Type.Optional(Type.Number({ minimum: 0, description: 'volume disks of live pods and network volumes' })),
    overQuota: Type.Optional(Type.Union([Type.Literal('refuse'), Type.Literal('queue')], { description: 'a create or start over a quota: refused with 403 (refuse, the default) or accepted to wait until the team\'s usage falls (queue): a create unplaced (RunPod\'s API refuses a create), a start stopped on its node' })),
  },
  { additionalProperties: false, description: 'An absent field: no limit' },
);
const TeamName = Type.Object({ name: Type.String() });
const MemberInput = Type.Object(
  { user: Type.String({ minLength: 1 }), role: Role, createKey: Type.Optional(Type.Boolean({ description: 'also make an API key for the user (shown once)' })) },
  { additionalProperties: false },
);
const PolicyInput = Type.Object({ grants: Type.String({ description: 'host-network,host-path,named-networks,privileged,cap:<NAME>,host-ports=none|unprivileged|any; "" grants nothing beyond the server' }) }, { additionalProperties: false });
const AuditQuery = Type.Object({
  team: Type.Optional(Type.String()),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: '@default 100' })),
  before: Type.Optional(Type.String({ description: 'an entry\'s `at`: older entries' })),
});

type Req<P = unknown, B = unknown, Q = unknown> = FastifyRequest<{ Params: P; Body: B; Querystring: Q }>;

const teamView = (t: Team) => ({ name: t.name, grants: formatPolicy(widenPolicy({ ...BASELINE_POLICY, hostPorts: 'none' }, t.policy)).replace(/,?host-ports=none$/, ''), policy: t.policy, quota: t.quota, createdAt: t.createdAt });

export async function registerTeamRoutes(app: FastifyInstance, deps: { teams: TeamService; keys: KeyService; audit: AuditLog }): Promise<void> {
  const { teams, keys, audit } = deps;
  const tags = ['teams'];
  app.post('/teams', { schema: { tags, summary: 'Create a team (admin key)', body: TeamName } }, async (req: Req<unknown, Static<typeof TeamName>>, reply) => reply.code(201).send(teamView(await teams.create(req.caller, req.body.name))));
  app.get('/teams', { schema: { tags, summary: 'The teams the key sees: its own, or all for an admin key' } }, async (req) => ({ teams: (await teams.list(req.caller)).map(teamView) }));
  app.get('/teams/:name', { schema: { tags, summary: 'A team with its members', params: TeamName } }, async (req: Req<Static<typeof TeamName>>) => {
    const { team, members } = await teams.get(req.caller, req.params.name);
    return { ...teamView(team), members };
  });
  app.put('/teams/:name/policy', { schema: { tags, summary: "Set what the team's pods are granted beyond the server's pod security policy (admin key)", params: TeamName, body: PolicyInput } }, async (req: Req<Static<typeof TeamName>, Static<typeof PolicyInput>>) =>
    teamView(await teams.setPolicy(req.caller, req.params.name, req.body.grants)),
  );
  app.put('/teams/:name/quota', { schema: { tags, summary: "Set the team's quotas, replacing them (admin key)", params: TeamName, body: Quota } }, async (req: Req<Static<typeof TeamName>, Static<typeof Quota>>) =>
    teamView(await teams.setQuota(req.caller, req.params.name, req.body)),
  );
  app.post('/teams/:name/members', { schema: { tags, summary: "Add a user to the team or change their role (the team's owners, admin key)", params: TeamName, body: MemberInput } }, async (req: Req<Static<typeof TeamName>, Static<typeof MemberInput>>, reply) => {
    const member = await teams.setMember(req.caller, req.params.name, req.body.user, req.body.role as TeamRole);
    if (!req.body.createKey) return reply.code(201).send({ member });
    const { key, secret } = await keys.create(req.caller, { name: member.user, owner: member.team, user: member.user });
    return reply.code(201).send({ member, key: secret, keyId: key.id });
  });
  app.delete('/teams/:name/members/:user', { schema: { tags, summary: 'Remove a user from the team; their keys stop working', params: Type.Object({ name: Type.String(), user: Type.String() }) } }, async (req: Req<{ name: string; user: string }>, reply) => {
    await teams.removeMember(req.caller, req.params.name, req.params.user);
    return reply.code(204).send();
  });
  app.get('/audit', { schema: { tags: ['audit'], summary: "The audit log, newest first: the key's team's (its owners), any team's or all (admin key)", querystring: AuditQuery } }, async (req: Req<unknown, unknown, Static<typeof AuditQuery>>) => ({
    entries: await audit.list(req.caller, req.query),
  }));
}
