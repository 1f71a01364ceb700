/** `GET /api/v1/cluster`: the servers on this database and which one leads (docs/ha.md). */
import type { FastifyInstance } from 'fastify';
import { requireAdmin } from '../../control/caller.js';
import { SERVER_SEEN_WITHIN_MS, type Leadership } from '../../control/leadership.js';
import type { Store } from '../../store/types.js';

export async function registerClusterRoutes(app: FastifyInstance, deps: { store: Store; leadership: Leadership }): Promise<void> {
  const { store, leadership } = deps;
  app.get('/cluster', { schema: { tags: ['cluster'], summary: 'The servers on this database and which leads (admin key)' } }, async (req) => {
    requireAdmin(req.caller, 'see the cluster');
    const leader = leadership.leader() ?? null;
    const listed = store.dialect === 'postgres' ? await store.listServers(SERVER_SEEN_WITHIN_MS) : [];
    const servers = listed.length > 0 ? listed : [{ id: leadership.id, url: leadership.url, startedAt: null, ageMs: 0 }];
    return {
      self: { id: leadership.id, url: leadership.url, leader: leadership.leads() },
      leader,
      servers: servers.map((s) => ({ ...s, leader: s.id === leader?.id })),
    };
  });
}
