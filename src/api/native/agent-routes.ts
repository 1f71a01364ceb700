import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { InstanceReport, NodeRegistration } from '../../control/index.js';
import { BerthError, INSTANCE_STATES, type NodeId, type UsageReport } from '../../model/index.js';
import type { ApiDeps } from '../server.js';
import { WebSocketServer } from 'ws';
import { CHANNEL_SUBPROTOCOL } from '../../control/channel-protocol.js';
import { NodeChannels } from '../channel-accept.js';

const Gpu = Type.Object({ index: Type.Integer(), uuid: Type.String(), name: Type.String(), memoryMb: Type.Number() });

const Registration = Type.Object({
  nodeId: Type.Optional(Type.String({ minLength: 1 })),
  name: Type.String({ minLength: 1, maxLength: 253 }),
  publicIp: Type.String({ minLength: 1 }),
  labels: Type.Record(Type.String(), Type.String()),
  capacity: Type.Object({ cpus: Type.Number({ minimum: 0 }), memoryMb: Type.Number({ minimum: 0 }), gpus: Type.Array(Gpu), gpusSimulated: Type.Boolean() }),
  agentVersion: Type.String(),
});

/** The envelope is checked here; the observation's inner fields are the agent's own record of Docker. */
const Report = Type.Object({
  nodeId: Type.String({ minLength: 1 }),
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
  nodeId: Type.String({ minLength: 1 }),
  samples: Type.Array(
    Type.Object({
      instanceId: Type.String({ minLength: 1 }),
      usage: Type.Object({ at: Type.String({ minLength: 16 }), containers: Type.Array(Type.Object({ name: Type.String() })), gpus: Type.Array(Type.Object({ uuid: Type.String() })) }),
    }),
    { maxItems: 10_000 },
  ),
});

const ChannelQuery = Type.Object({ nodeId: Type.String({ minLength: 1 }) });

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
  // This plugin's own scope: the hook guards only the agent routes, before their bodies are looked at.
  app.addHook('onRequest', async (req) => {
    if (!req.caller.admin) throw new BerthError('FORBIDDEN', 'agents must use an admin API key');
  });
  const opts = (summary: string) => ({ schema: { tags: ['agents'], summary } });

  app.post('/agent/register', { schema: { ...opts('Register a node (or register again after a restart, with its nodeId)').schema, body: Registration } }, async (req: FastifyRequest<{ Body: NodeRegistration }>) =>
    agents.register(req.body),
  );

  app.get('/agent/watch', { schema: { tags: ['agents'], summary: 'Long-poll the node\'s assignments after a store revision', querystring: WatchQuery } }, async (req: FastifyRequest<{ Querystring: Static<typeof WatchQuery> }>) => {
    const ac = new AbortController();
    req.raw.on('close', () => ac.abort());
    return agents.watch(req.query.nodeId as NodeId, req.query.since, req.query.waitMs ?? 25_000, ac.signal);
  });

  // The node channel (docs/cluster.md): the agent's WebSocket, upgraded here by hand. The
  // @fastify/websocket plugin the access routes register routes every upgrade request through
  // Fastify, so this route gets it after the hooks above; the plugin's socket handling is its own scope's.
  const channels = new NodeChannels(agents, deps.logger.child({ part: 'node-channel' }));
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 2 ** 20, handleProtocols: (p: Set<string>) => (p.has(CHANNEL_SUBPROTOCOL) ? CHANNEL_SUBPROTOCOL : false) });
  app.addHook('preClose', async () => {
    channels.close();
    wss.close();
  });
  // A refused upgrade is answered over the raw socket, which nobody closes after: end it.
  app.addHook('onResponse', async (req, reply) => {
    if (req.headers.upgrade && reply.statusCode >= 400) req.raw.socket.end();
  });
  app.get('/agent/channel', { schema: { tags: ['agents'], summary: "The node's channel: a WebSocket (HTTP/2 inside) the agent opens, over which the server reaches the node's pods", querystring: ChannelQuery } }, async (req: FastifyRequest<{ Querystring: Static<typeof ChannelQuery> }>, reply) => {
    const nodeId = req.query.nodeId as NodeId;
    if (!(await deps.store.getNode(nodeId))) throw new BerthError('NOT_FOUND', `node ${nodeId} is not registered`);
    if (req.headers.upgrade?.toLowerCase() !== 'websocket') throw new BerthError('VALIDATION', 'the node channel is a WebSocket: ask with Upgrade: websocket');
    reply.hijack();
    const head = Object.getOwnPropertySymbols(req.raw).find((s) => s.description === 'ws-head');
    wss.handleUpgrade(req.raw, req.raw.socket, (head ? (req.raw as unknown as Record<symbol, Buffer>)[head] : undefined) ?? Buffer.alloc(0), (ws) => channels.accept(ws, nodeId));
  });

  app.post('/agent/report', { schema: { ...opts('Report what the node observes').schema, body: Report } }, async (req: FastifyRequest<{ Body: { nodeId: string; reports: InstanceReport[] } }>, reply) => {
    await agents.report(req.body.nodeId as NodeId, req.body.reports);
    return reply.code(204).send();
  });

  app.post('/agent/usage', { schema: { ...opts('Report the usage of the node\'s running instances (a batch per interval; moves no revision)').schema, body: Usage } }, async (req: FastifyRequest<{ Body: { nodeId: string; samples: UsageReport[] } }>, reply) => {
    await agents.reportUsage(req.body.nodeId as NodeId, req.body.samples);
    return reply.code(204).send();
  });
}
