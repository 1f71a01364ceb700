/**
 * The node authorizer, as Kubernetes' node authorizer: every agent endpoint (`/api/v1/agent/*` but
 * the join itself) is called with a node credential, and acts for that credential's node only. API
 * keys, admin ones included, are refused there; node credentials are refused everywhere else.
 * `buildApi`'s request hook calls `authenticateNode` for every route under AGENT_PREFIX — WebSocket
 * routes included — so a route added there is guarded without doing anything, and reads `req.nodeId`.
 */
import type { FastifyRequest } from 'fastify';
import { NodeCredentialService } from '../../control/node-credentials.js';
import { BerthError, type NodeId } from '../../model/index.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The node an agent endpoint's caller is, from its credential; set on the agent routes only. */
    nodeId: NodeId;
  }
}

export const AGENT_PREFIX = '/api/v1/agent/';
/** Authenticated by the join token in its body: the one agent route that takes no node credential. */
export const JOIN_ROUTE = '/api/v1/agent/join';

/** Whether a route (its pattern, or the raw path when no route matched) is an agent endpoint. */
export const isAgentRoute = (req: FastifyRequest): boolean => (req.routeOptions.url ?? req.url).startsWith(AGENT_PREFIX);

/** The credential from `Authorization: Bearer <credential>`: agents are programs, and set the header. */
function credentialOf(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  return h?.startsWith('Bearer ') ? h.slice(7).trim() : undefined;
}

/** Authenticates the agent endpoint's caller as a node, sets `req.nodeId` and returns it; 401 or 403 otherwise. */
export async function authenticateNode(req: FastifyRequest, credentials: NodeCredentialService): Promise<NodeId> {
  const secret = credentialOf(req);
  if (!secret) throw new BerthError('UNAUTHORIZED', 'the agent endpoints take a node credential as "Authorization: Bearer <credential>"; a machine gets one by joining with a join token (`berth agent --server URL --token T`)');
  if (!NodeCredentialService.looksLikeCredential(secret)) {
    throw new BerthError('FORBIDDEN', 'API keys, admin keys included, are refused on the agent endpoints: join the machine with a join token (`berth token create` on the server, then `berth agent --server URL --token T`)', { extra: { reason: 'not-a-node-credential' } });
  }
  const nodeId = await credentials.authenticate(secret);
  if (!nodeId) throw new BerthError('UNAUTHORIZED', 'the node credential is not valid: its node was removed (`berth node rm`) or it never existed; join the machine again with a new join token', { extra: { reason: 'revoked' } });
  req.nodeId = nodeId;
  return nodeId;
}

/** Refuses a request naming a node (body or query) other than its credential's own; returns the caller's node. */
export function ownNode(req: FastifyRequest, named: string | undefined): NodeId {
  if (named !== undefined && named !== req.nodeId) throw new BerthError('FORBIDDEN', `the credential of node ${req.nodeId} acts for that node only, not for node ${named}`, { extra: { reason: 'other-node' } });
  return req.nodeId;
}

/** Refuses a node credential on the other routes: it is not an API key. */
export function refuseNodeCredential(secret: string | undefined): void {
  if (secret && NodeCredentialService.looksLikeCredential(secret)) {
    throw new BerthError('FORBIDDEN', 'a node credential serves only the agent endpoints (/api/v1/agent/*): it is not an API key', { extra: { reason: 'node-credential' } });
  }
}
