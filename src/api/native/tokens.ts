/** Join tokens (`/api/v1/tokens`) and removing a node (`DELETE /api/v1/nodes/{id}`): the operator's side of joining machines. */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { JoinTokenService } from '../../control/join-tokens.js';
import type { NodeCredentialService } from '../../control/node-credentials.js';
import { idFromRequest, joinTokenRefusal, type JoinToken, type JoinTokenId } from '../../model/index.js';

const TokenInput = Type.Object(
  {
    description: Type.Optional(Type.String({ maxLength: 256 })),
    labels: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: 253 }), Type.String({ maxLength: 253 }), { maxProperties: 64, description: 'put on every node that joins with the token' })),
    ttlSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 * 365 * 86_400, description: 'seconds until it expires; 0: never. @default 86400 (24 hours)' })),
    maxUses: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'how many machines may join with it. @default unlimited until it expires' })),
  },
  { additionalProperties: false },
);
const IdParams = Type.Object({ id: Type.String() });
const RemoveQuery = Type.Object({ force: Type.Optional(Type.Boolean({ description: 'remove it even with instances placed on it: their pods are placed again elsewhere' })) });

type Req<P = unknown, B = unknown, Q = unknown> = FastifyRequest<{ Params: P; Body: B; Querystring: Q }>;

/** What the API shows of a token: never its hash. */
export const tokenView = (t: JoinToken, now = Date.now()) => ({
  id: t.id,
  description: t.description,
  labels: t.labels,
  maxUses: t.maxUses,
  uses: t.uses,
  status: joinTokenRefusal(t, now) ?? 'active',
  expiresAt: t.expiresAt,
  revokedAt: t.revokedAt,
  createdAt: t.createdAt,
  lastUsedAt: t.lastUsedAt,
});

export async function registerTokenRoutes(app: FastifyInstance, deps: { joinTokens: JoinTokenService; nodeCredentials: NodeCredentialService }): Promise<void> {
  const { joinTokens, nodeCredentials } = deps;
  const tags = ['join tokens'];
  app.post('/tokens', { schema: { tags, summary: 'Make a join token (admin key); the token is shown only in this answer', body: TokenInput } }, async (req: Req<unknown, Static<typeof TokenInput>>, reply) => {
    const { token, secret } = await joinTokens.create(req.caller, req.body);
    return reply.code(201).send({ ...tokenView(token), token: secret });
  });
  app.get('/tokens', { schema: { tags, summary: 'The join tokens, live, expired and revoked (admin key)' } }, async (req) => ({ tokens: (await joinTokens.list(req.caller)).map((t) => tokenView(t)) }));
  app.delete('/tokens/:id', { schema: { tags, summary: 'Revoke a join token (admin key); nodes that joined with it stay', params: IdParams } }, async (req: Req<Static<typeof IdParams>>, reply) => {
    await joinTokens.revoke(req.caller, req.params.id as JoinTokenId);
    return reply.code(204).send();
  });
  app.delete('/nodes/:id', { schema: { tags: ['nodes'], summary: "Remove a node and revoke its credential (admin key); refused while it has instances, unless force", params: IdParams, querystring: RemoveQuery } }, async (req: Req<Static<typeof IdParams>, unknown, Static<typeof RemoveQuery>>) => {
    const { unplaced } = await nodeCredentials.removeNode(req.caller, idFromRequest.node(req.params.id), req.query.force ?? false);
    return { id: req.params.id, removed: true, unplaced };
  });
}
