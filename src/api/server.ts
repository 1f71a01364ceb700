import swagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AgentService, Caller, DeploymentService, InstanceResolver, KeyService, PodService, ResourceService, UsageService, LifetimeController } from '../control/index.js';
import type { AccessEndpoints, ProxyTokens } from '../control/access.js';
import type { SecretService } from '../control/secrets.js';
import { BerthError, LIMITS, inputProblem, invalid, parseJsonBounded } from '../model/index.js';
import type { Store } from '../store/types.js';
import { isConsoleRequest, loadConsole, registerConsole } from './console.js';
import { registerAccessRoutes } from './native/access.js';
import { registerAgentRoutes } from './native/agent-routes.js';
import { registerPodMetricsRoutes } from './native/pod-metrics.js';
import { registerNativeRoutes } from './native/routes.js';
import { ServerMetrics, type MetricsOptions } from './prometheus.js';
import type { TerminalSessionOptions } from './native/terminal-sessions.js';
import { jsonErrorWithoutText, sendProblem, toBerthError } from './problem.js';
import { registerRunpodV1, registerRunpodV2 } from './runpod/index.js';
import { registerMarathon } from './marathon/routes.js';

export interface ApiDeps {
  store: Store;
  pods: PodService;
  /** Marathon pods and their rollouts. */
  deployments: DeploymentService;
  resources: ResourceService;
  secrets: SecretService;
  keys: KeyService;
  agents: AgentService;
  /** What running instances use: the latest samples and the history. */
  usage?: UsageService;
  /** The lifetime policies: when each pod stops and why, keep-alives, the activity the access routes report. */
  lifetimes?: LifetimeController;
  /** Finds a pod's instance and its node's access for logs, exec, terminals and tunnels. */
  resolver: InstanceResolver;
  logger: Logger;
  /** The proxy's and SSH gateway's public endpoints (for connection details) and private ports' tokens. */
  access?: { endpoints: AccessEndpoints; tokens: ProxyTokens };
  /** Serve the API over TLS. */
  https?: { cert: Buffer; key: Buffer };
  /** `GET /metrics`: the metrics token, and the proxy's and gateway's counters. */
  metrics?: MetricsOptions;
  /** The web console's build (index.html and assets/), served at `/`; without one `/` says the console is not built. */
  consoleDir?: string;
  /** Re-attachable web terminals: grace period, bound per pod, scrollback. */
  terminalSessions?: TerminalSessionOptions;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller;
  }
}

/** Routes that answer without a key. */
const OPEN = new Set(['/healthz', '/metrics']);

export function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (h?.startsWith('Bearer ')) return h.slice(7).trim();
  // Browsers cannot set headers on a WebSocket: the key may come as a `bearer.<key>` subprotocol.
  const proto = req.headers['sec-websocket-protocol'];
  if (proto) return proto.split(',').map((p) => p.trim()).find((p) => p.startsWith('bearer.'))?.slice(7);
  return undefined;
}

/**
 * The edge check (`inputProblem`) over a request's parts. A path parameter that cannot be stored
 * names nothing that exists: not found, without asking the store.
 */
export function checkEdge(req: FastifyRequest): void {
  const params = inputProblem(req.params);
  if (params) throw new BerthError('NOT_FOUND', `no such object: a path parameter ${params.message}`);
  const problem = inputProblem(req.query, 'query:') ?? inputProblem(req.body);
  if (problem) throw invalid([problem]);
}

export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: { allErrors: true, coerceTypes: 'array', removeAdditional: false, useDefaults: true } },
    bodyLimit: LIMITS.bodyBytes,
    ...(deps.https ? { https: deps.https } : {}),
  });

  // Clients send `Content-Type: application/json` with no body on GET, DELETE and actions: take it as `{}`.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, {});
    try {
      done(null, parseJsonBounded(text));
    } catch (e) {
      if (e instanceof BerthError) return done(e, undefined);
      done(new BerthError('VALIDATION', `the body is not valid JSON: ${jsonErrorWithoutText((e as Error).message)}`, { problems: [{ path: '/', message: 'is not valid JSON' }] }), undefined);
    }
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Berth API', version: '1', description: 'Pods on your own machines. Every route but /healthz takes `Authorization: Bearer <API key>`.' },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } },
      security: [{ apiKey: [] }],
    },
  });

  app.decorateRequest('caller', null as unknown as Caller);
  app.addHook('onRequest', async (req) => {
    const route = req.routeOptions.url ?? '';
    if (OPEN.has(route)) return;
    // The console's page and files: the key is asked for by the page, and sent by it on each API call.
    if (isConsoleRequest(req)) return;
    const secret = bearer(req);
    const caller = secret ? await deps.keys.authenticate(secret) : undefined;
    if (!caller) throw new BerthError('UNAUTHORIZED', secret ? 'the API key is not valid' : 'send an API key as "Authorization: Bearer <key>"');
    req.caller = caller;
  });

  // A POST with no body at all (curl -X POST, runpodctl's actions) is an empty object, as with an empty JSON body.
  // Then what no store or runtime can take is refused before the schema or a handler reads it.
  app.addHook('preValidation', async (req) => {
    if (req.body === undefined && (req.method === 'POST' || req.method === 'PATCH' || req.method === 'PUT')) req.body = {};
    checkEdge(req);
  });
  // The schema coerces strings ("1e309" → Infinity, "Infinity" → Infinity): checked again after.
  app.addHook('preHandler', async (req) => {
    const problem = inputProblem(req.query, 'query:') ?? inputProblem(req.body);
    if (problem) throw invalid([problem]);
  });

  app.setErrorHandler((err, req, reply) => {
    const be = toBerthError(err);
    if (be.kind === 'INTERNAL') req.log.error({ err }, 'request failed');
    return sendProblem(req, reply, be);
  });
  app.get('/healthz', { schema: { hide: true } }, async () => ({ ok: true }));
  const consoleFiles = registerConsole(app, deps.consoleDir ? await loadConsole(deps.consoleDir) : undefined);
  // Outside the APIs' prefixes (which answer their own 404s), a GET is the console's: its files, or its page for its own routes.
  app.setNotFoundHandler((req, reply) => (isConsoleRequest(req) ? consoleFiles(req, reply) : sendProblem(req, reply, new BerthError('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`))));

  const metrics = new ServerMetrics(deps, deps.metrics);
  metrics.hook(app);
  // Checks its own key: the metrics token is no API key.
  app.get('/metrics', { schema: { tags: ['metrics'], summary: 'Prometheus metrics (text format): admin keys or the --metrics-token (see docs/metrics.md)' } }, (req, reply) => metrics.serve(req, reply, bearer(req)));
  await app.register(async (scope) => registerNativeRoutes(scope, deps), { prefix: '/api/v1' });
  await app.register(async (scope) => registerAgentRoutes(scope, deps), { prefix: '/api/v1' });
  await app.register(async (scope) => registerPodMetricsRoutes(scope, deps), { prefix: '/api/v1' });
  await app.register(async (scope) => registerAccessRoutes(scope, deps), { prefix: '/api/v1' });
  await app.register(async (scope) => registerRunpodV1(scope, deps), { prefix: '/runpod/v1' });
  await app.register(async (scope) => registerRunpodV2(scope, deps), { prefix: '/runpod/v2' });
  await registerMarathon(app, deps);
  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return app;
}
