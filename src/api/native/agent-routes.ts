import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { InstanceReport, NodeRegistration } from '../../control/index.js';
import { BerthError, INSTANCE_STATES, type UsageReport } from '../../model/index.js';
import type { ApiDeps } from '../server.js';
import { CHANNEL_UPGRADE } from '../../control/channel-protocol.js';
import { NodeChannels } from '../channel-accept.js';
import { ownNode } from './node-auth.js';

const Gpu = Type.Object({ index: Type.Integer(), uuid: Type.String(), name: Type.String(), memoryMb: Type.Number() });

const Registration = Type.Object({
  nodeId: Type.Optional(Type.String({ minLength: 1, description: "the credential's node; another node's id is refused" })),
  name: Type.String({ minLength: 1, maxLength: 253 }),
  publicIp: Type.String({ minLength: 1 }),
  labels: Type.Record(Type.String(), Type.String()),
  capacity: Type.Object({ cpus: Type.Number({ minimum: 0 }), memoryMb: Type.Number({ minimum: 0 }), gpus: Type.Array(Gpu), gpusSimulated: Type.Boolean() }),
  agentVersion: Type.String(),
});

/** The envelope is checked here; the observation's inner fields are the agent's own record of Docker. */
const Report = Type.Object({
  nodeId: Type.Optional(Type.String({ minLength: 1, description: "the credential's node; another node's id is refused" })),
  reports: Type.Array(
    Type.Object({
      instanceId: Type.String({ minLength: 1 }),
      observation: Type.Object({
        state: Type.Union(INSTANCE_STATES.map((s) => Type.Literal(s))),
        message: Type.Union([Type.String(), Type.Null()]),
        exitCode: Type.Union([Type.Integer(), Type.Null()]),
        ports: Type.Record(Type.String(), Type.Integer({ minimum: 1, maximum: 65535 })),
        containers: Type.Array(Type.Object({ name: Type.String() })),
        updatedAt: Type.String(),
      }),
    }),
  ),
});

/** A node's usage batch; each sample's figures are the agent's own measurement (model/usage.ts). */
const Usage = Type.Object({
  nodeId: Type.Optional(Type.String({ minLength: 1, description: "the credential's node; another node's id is refused" })),
  samples: Type.Array(
    Type.Object({
      instanceId: Type.String({ minLength: 1 }),
      usage: Type.Object({ at: Type.String({ minLength: 16 }), containers: Type.Array(Type.Object({ name: Type.String() })), gpus: Type.Array(Type.Object({ uuid: Type.String() })) }),
    }),
    { maxItems: 10_000 },
  ),
});

const ChannelQuery = Type.Object({ nodeId: Type.Optional(Type.String({ minLength: 1, description: "the credential's node; another node's id is refused" })) });

const WatchQuery = Type.Object({
  nodeId: Type.Optional(Type.String({ description: "the credential's node; another node's id is refused" })),
  since: Type.Integer({ minimum: 0 }),
  waitMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 60_000, description: '@default 25000' })),
  changesOnly: Type.Optional(Type.Boolean({ description: "the agent keeps the last answer's assignments: the answer may carry only the changed ones (its `partial` says so)" })),
});

const Join = Type.Object({
  token: Type.String({ minLength: 1, maxLength: 512, description: 'a join token (`berth token create`)' }),
  registration: Registration,
});

/** The node credential, not an API key: see api/native/node-auth.ts. */
const NODE_SECURITY = [{ nodeCredential: [] }];

/**
 * The agent protocol over HTTP, for `berth agent` on other machines: the same calls the in-process
 * agent makes. Agents pull; the server never connects to them. A machine joins with a join token and
 * gets a credential of its node; every other call here is made with that credential (buildApi's hook
 * authenticates it and sets `req.nodeId`) and acts for that node only.
 */
export async function registerAgentRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { agents, joinTokens } = deps;
  const opts = (summary: string) => ({ schema: { tags: ['agents'], summary, security: NODE_SECURITY } });

  app.post(
    '/agent/join',
    { schema: { tags: ['agents'], summary: "Join a machine: a join token (no Authorization) for a new node and a credential of that node only (shown once)", security: [], body: Join } },
    async (req: FastifyRequest<{ Body: { token: string; registration: NodeRegistration } }>, reply) => reply.code(201).send(await joinTokens.join(req.body.token, req.body.registration)),
  );

  app.post('/agent/register', { schema: { ...opts("Register the credential's node again (after an agent restart)").schema, body: Registration } }, async (req: FastifyRequest<{ Body: NodeRegistration }>) =>
    agents.register({ ...req.body, nodeId: ownNode(req, req.body.nodeId) }),
  );

  app.get('/agent/watch', { schema: { ...opts("Long-poll the node's assignments after a store revision").schema, querystring: WatchQuery } }, async (req: FastifyRequest<{ Querystring: Static<typeof WatchQuery> }>) => {
    const nodeId = ownNode(req, req.query.nodeId);
    const ac = new AbortController();
    req.raw.on('close', () => ac.abort());
    return agents.watch(nodeId, req.query.since, req.query.waitMs ?? 25_000, ac.signal, req.query.changesOnly ?? false);
  });

  // Agents connect to every server (docs/cluster.md, "Several servers"): this tells them which.
  app.get('/agent/servers', opts("The cluster's servers, each with the URL it advertises: the agent holds a node channel to each and fails its calls over between them (empty: one server)"), async () => ({
    servers: await agents.servers(),
  }));

  // The node channel (docs/cluster.md): the agent's request, upgraded here by hand to HTTP/2 on
  // its socket. The @fastify/websocket plugin the access routes register routes every upgrade
  // request through Fastify (whatever its Upgrade: token), so this route gets it after the hooks
  // above, with the socket and what was read past the request (the plugin's 'ws-head').
  const channels = new NodeChannels(agents, deps.logger.child({ part: 'node-channel' }));
  app.addHook('preClose', async () => channels.close());
  // A refused upgrade is answered over the raw socket, which nobody closes after: end it.
  app.addHook('onResponse', async (req, reply) => {
    if (req.headers.upgrade && reply.statusCode >= 400) req.raw.socket.end();
  });
  app.get('/agent/channel', { schema: { tags: ['agents'], summary: `The node's channel: the agent's connection, upgraded (Upgrade: ${CHANNEL_UPGRADE}) to HTTP/2 on which the server reaches the node's pods`, querystring: ChannelQuery } }, async (req: FastifyRequest<{ Querystring: Static<typeof ChannelQuery> }>, reply) => {
    const nodeId = ownNode(req, req.query.nodeId);
    if (!(await deps.store.getNode(nodeId))) throw new BerthError('NOT_FOUND', `node ${nodeId} is not registered`);
    if (req.headers.upgrade?.toLowerCase() !== CHANNEL_UPGRADE) throw new BerthError('VALIDATION', `the node channel is an upgrade: ask with Connection: Upgrade and Upgrade: ${CHANNEL_UPGRADE}`);
    reply.hijack();
    const head = Object.getOwnPropertySymbols(req.raw).find((s) => s.description === 'ws-head');
    channels.accept(req.raw.socket, head ? (req.raw as unknown as Record<symbol, Buffer | undefined>)[head] : undefined, nodeId);
  });

  // Reports of instances not placed on the node are ignored, not refused: one moved off it since its last watch must not fail the batch.
  app.post('/agent/report', { schema: { ...opts("Report what the node observes (of its own instances; others' are ignored)").schema, body: Report } }, async (req: FastifyRequest<{ Body: { nodeId?: string; reports: InstanceReport[] } }>, reply) => {
    await agents.report(ownNode(req, req.body.nodeId), req.body.reports);
    return reply.code(204).send();
  });

  app.post('/agent/usage', { schema: { ...opts('Report the usage of the node\'s running instances (a batch per interval; moves no revision)').schema, body: Usage } }, async (req: FastifyRequest<{ Body: { nodeId?: string; samples: UsageReport[] } }>, reply) => {
    await agents.reportUsage(ownNode(req, req.body.nodeId), req.body.samples);
    return reply.code(204).send();
  });
}
