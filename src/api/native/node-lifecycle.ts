/** Cordon, uncordon and drain over HTTP (admin keys only); the node view's readiness fields. */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { NodeService } from '../../control/index.js';
import type { Node } from '../../model/index.js';

const NodeParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 253, description: 'The node id or name' }) });
type NodeReq = FastifyRequest<{ Params: Static<typeof NodeParams> }>;

/** What every node view says of its lifecycle: READY or NOT_READY (and since when), cordoned or not. */
export function nodeStateView(n: Node) {
  return {
    status: n.notReadySince ? ('NOT_READY' as const) : ('READY' as const),
    notReadySince: n.notReadySince ?? null,
    cordoned: n.cordoned ?? false,
  };
}

export async function registerNodeLifecycleRoutes(app: FastifyInstance, nodes: NodeService): Promise<void> {
  const schema = (summary: string) => ({ schema: { tags: ['nodes'], summary, params: NodeParams } });
  app.post('/nodes/:id/cordon', schema('Take no new instances on the node (admin); what runs there stays'), async (req: NodeReq) => {
    const n = await nodes.cordon(req.caller, req.params.id);
    return { ...n, ...nodeStateView(n) };
  });
  app.post('/nodes/:id/uncordon', schema('Let the node take new instances again (admin)'), async (req: NodeReq) => {
    const n = await nodes.uncordon(req.caller, req.params.id);
    return { ...n, ...nodeStateView(n) };
  });
  app.post('/nodes/:id/drain', schema('Cordon the node and move every instance that may leave it (admin): says what moved and what stays, and why'), async (req: NodeReq) => {
    const r = await nodes.drain(req.caller, req.params.id);
    return { node: { ...r.node, ...nodeStateView(r.node) }, moved: r.moved, stays: r.stays };
  });
}
