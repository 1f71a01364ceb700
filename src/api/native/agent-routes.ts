import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { InstanceReport, NodeRegistration } from '../../control/index.js';
import { BerthError, type NodeId } from '../../model/index.js';
import type { ApiDeps } from '../server.js';

const WatchQuery = Type.Object({
  nodeId: Type.String(),
  since: Type.Integer({ minimum: 0 }),
  waitMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 60_000, description: '@default 25000' })),
});

/**
 * The agent protocol over HTTP, for `berth agent` on other machines: the same calls the in-process
 * agent makes. Agents pull; the server never connects to them. Only admin keys may act as agents.
 */
export async function registerAgentRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { agents } = deps;
  // This plugin's own scope: the hook guards only the agent routes.
  app.addHook('preHandler', async (req) => {
    if (!req.caller.admin) throw new BerthError('FORBIDDEN', 'agents must use an admin API key');
  });
  const opts = (summary: string) => ({ schema: { tags: ['agents'], summary } });

  app.post('/agent/register', opts('Register a node (or register again after a restart, with its nodeId)'), async (req: FastifyRequest<{ Body: NodeRegistration }>) =>
    agents.register(req.body),
  );

  app.get('/agent/watch', { schema: { tags: ['agents'], summary: 'Long-poll the node\'s assignments after a store revision', querystring: WatchQuery } }, async (req: FastifyRequest<{ Querystring: Static<typeof WatchQuery> }>) => {
    const ac = new AbortController();
    req.raw.on('close', () => ac.abort());
    return agents.watch(req.query.nodeId as NodeId, req.query.since, req.query.waitMs ?? 25_000, ac.signal);
  });

  app.post('/agent/report', opts('Report what the node observes'), async (req: FastifyRequest<{ Body: { nodeId: string; reports: InstanceReport[] } }>, reply) => {
    await agents.report(req.body.nodeId as NodeId, req.body.reports ?? []);
    return reply.code(204).send();
  });
}
