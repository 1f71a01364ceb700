/**
 * Reaching pods through the API: the web terminal, a TCP tunnel to a pod's port over a WebSocket
 * (what `berth port-forward` uses), and one-time links for private proxy ports.
 */
import websocket from '@fastify/websocket';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { createWebSocketStream, type WebSocket } from 'ws';
import type { Duplex } from 'node:stream';
import { PROXY_LOGIN_PATH, proxyUrl } from '../../control/access.js';
import { BerthError, podPorts, type PodId } from '../../model/index.js';
import type { ApiDeps } from '../server.js';
import { registerTerminal } from './terminal.js';

export async function registerAccessRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  await app.register(websocket, {
    options: {
      // A browser sends its key as a `bearer.<key>` subprotocol beside the one it speaks: never echo the key back.
      handleProtocols: (protocols: Set<string>) => [...protocols].find((p) => !p.startsWith('bearer.')) ?? false,
      maxPayload: 16 * 2 ** 20,
    },
  });
  // A refused upgrade (no key, no such pod) is answered over the raw socket, which nobody closes
  // after: end it, or the client hangs and the server cannot shut down.
  app.addHook('onResponse', async (req, reply) => {
    if (req.headers.upgrade && reply.statusCode >= 400) req.raw.socket.end();
  });
  registerTerminal(app, deps);

  app.get(
    '/pods/:id/ports/:port/tunnel',
    {
      websocket: true,
      schema: {
        tags: ['pods'],
        summary: "A TCP connection to a port inside the pod, carried as binary WebSocket messages (berth port-forward)",
        params: { type: 'object', properties: { id: { type: 'string' }, port: { type: 'integer', minimum: 1, maximum: 65535 } }, required: ['id', 'port'] },
        querystring: { type: 'object', properties: { instance: { type: 'integer', minimum: 0 } } },
      },
      preHandler: async (req: FastifyRequest<{ Params: { id: string; port: number }; Querystring: { instance?: number } }>) => {
        const { instance: inst, access } = await deps.resolver.resolve(req.caller, req.params.id, { instance: req.query.instance, running: true, interactive: true });
        void deps.audit.record(req.caller, 'port-forward.session', 'pod', req.params.id, { instance: inst.ordinal, port: req.params.port });
        // Connect before the upgrade: "nothing listens" is then a plain 409 the CLI can show.
        (req as unknown as { upstream: Duplex }).upstream = await access.connect(inst.id, req.params.port);
      },
    },
    (socket: WebSocket, req: FastifyRequest<{ Params: { id: string } }>) => {
      const upstream = (req as unknown as { upstream: Duplex }).upstream;
      // The pod is in use while the tunnel is open (the idle policy's `port-forward` signal).
      const release = deps.lifetimes?.activity.open(req.params.id, 'port-forward');
      if (release) socket.once('close', release);
      const ws = createWebSocketStream(socket);
      ws.pipe(upstream).pipe(ws);
      ws.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.terminate());
      ws.on('close', () => upstream.destroy());
      upstream.on('close', () => socket.close());
    },
  );

  app.post(
    '/pods/:id/proxy-link',
    {
      schema: {
        tags: ['pods'],
        summary: 'A one-time link (five minutes) that opens an http port through the proxy and sets a cookie for it: how a browser reaches a private port',
        params: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
        body: { type: 'object', properties: { port: { type: 'integer', minimum: 1, maximum: 65535 }, path: { type: 'string' } }, required: ['port'] },
      },
    },
    async (req: FastifyRequest<{ Params: { id: string }; Body: { port: number; path?: string } }>) => {
      const access = deps.access;
      if (!access?.endpoints.proxy) throw new BerthError('CONFLICT', 'this server runs no HTTP proxy');
      const d = await deps.pods.get(req.caller, req.params.id);
      const port = podPorts(d.spec).find((p) => p.port === req.body.port);
      if (!port || port.protocol !== 'http') throw new BerthError('VALIDATION', `pod ${d.pod.id} has no http port ${req.body.port}`, { problems: [{ path: '/port', message: 'is not an http port of the pod' }] });
      const { token, expiresAt } = access.tokens.link(d.pod.id as PodId, port.port, d.pod.owner);
      const next = req.body.path && req.body.path.startsWith('/') ? `&next=${encodeURIComponent(req.body.path)}` : '';
      const base = proxyUrl(access.endpoints.proxy, d.pod.id, port.port);
      return { url: `${base.replace(/\/$/, '')}${PROXY_LOGIN_PATH}?token=${token}${next}`, expiresAt: new Date(expiresAt).toISOString(), private: port.private === true };
    },
  );
}
