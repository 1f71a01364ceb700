import swagger from '@fastify/swagger';
import type { Leadership } from '../control/leadership.js';
import { forwardToLeader } from './forward.js';
import { registerClusterRoutes } from './native/cluster.js';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AgentService, Caller, DeploymentService, InstanceResolver, KeyService, NodeService, PodService, ResourceService, UsageService, LifetimeController } from '../control/index.js';
import type { AccessEndpoints, ProxyTokens } from '../control/access.js';
import type { JoinTokenService } from '../control/join-tokens.js';
import type { NodeCredentialService } from '../control/node-credentials.js';
import type { AuditLog } from '../control/audit.js';
import type { SecretService } from '../control/secrets.js';
import { BerthError, LIMITS, inputProblem, invalid, isPodId, parseJsonBounded } from '../model/index.js';
import type { TeamService } from '../control/teams.js';
import type { Store } from '../store/types.js';
import { isConsoleRequest, loadConsole, registerConsole } from './console.js';
import { registerAccessRoutes } from './native/access.js';
import { registerAgentRoutes } from './native/agent-routes.js';
import { authenticateNode, isAgentRoute, JOIN_ROUTE, refuseNodeCredential } from './native/node-auth.js';
import { registerTokenRoutes } from './native/tokens.js';
import { registerPodMetricsRoutes } from './native/pod-metrics.js';
import { registerNativeRoutes } from './native/routes.js';
import { ServerMetrics, type MetricsOptions } from './prometheus.js';
import type { TerminalSessionOptions } from './native/terminal-sessions.js';
import { registerTeamRoutes } from './native/teams.js';
import { jsonErrorWithoutText, sendProblem, toBerthError } from './problem.js';
import { registerRunpodV1, registerRunpodV2 } from './runpod/index.js';
import { registerMarathon } from './marathon/routes.js';

export interface ApiDeps {
  store: Store;
  pods: PodService;
  /** Cordon, uncordon and drain. */
  nodes?: NodeService;
  /** Marathon pods and their rollouts. */
  deployments: DeploymentService;
  resources: ResourceService;
  secrets: SecretService;
  keys: KeyService;
  teams: TeamService;
  /** Records every change the API answers, and interactive sessions. */
  audit: AuditLog;
  agents: AgentService;
  /** Join tokens, which machines' agents exchange for node credentials. */
  joinTokens: JoinTokenService;
  /** The node authorizer's credentials (api/native/node-auth.ts), and removing nodes. */
  nodeCredentials: NodeCredentialService;
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
  /** Who leads: a follower forwards writes to the leader (forward.ts); `GET /api/v1/cluster` shows it. */
  leadership: Leadership;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller;
  }
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

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
      info: { title: 'Berth API', version: '1', description: 'Pods on your own machines. Every route but /healthz takes `Authorization: Bearer <API key>`; the agent endpoints (/api/v1/agent/*) take a node credential instead.' },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' }, nodeCredential: { type: 'http', scheme: 'bearer', description: 'a node credential (`bnc_…`), which an agent gets at its join: the agent endpoints take it and nothing else does' } } },
      security: [{ apiKey: [] }],
    },
  });

  // Before authentication: a follower sends writes on as they came, and the leader authenticates them.
  forwardToLeader(app, { leadership: deps.leadership, ...(deps.https ? { tlsCert: deps.https.cert } : {}) });
  app.decorateRequest('caller', null as unknown as Caller);
  app.addHook('onRequest', async (req) => {
    const route = req.routeOptions.url ?? '';
    if (OPEN.has(route)) return;
    // The console's page and files: the key is asked for by the page, and sent by it on each API call.
    if (isConsoleRequest(req)) return;
    // The agent endpoints: the node authorizer's (native/node-auth.ts), not API keys.
    if (isAgentRoute(req)) {
      if (route !== JOIN_ROUTE) await authenticateNode(req, deps.nodeCredentials);
      return;
    }
    const secret = bearer(req);
    refuseNodeCredential(secret);
    const caller = secret ? await deps.keys.authenticate(secret) : undefined;
    if (!caller) throw new BerthError('UNAUTHORIZED', secret ? 'the API key is not valid' : 'send an API key as "Authorization: Bearer <key>"');
    req.caller = caller;
  });

  // The audit log: every change any API answered with success, once it has.
  app.addHook('onSend', async (req, reply, payload) => {
    // A refused WebSocket upgrade is answered with its problem, then the connection is closed (the
    // upgrade machinery gives the socket up): say so, or a client reusing it meets a hang-up.
    if (req.headers.upgrade && reply.statusCode >= 400) reply.header('connection', 'close');
    if (!MUTATING.has(req.method) || !req.caller || reply.statusCode >= 400) return payload;
    const route = req.routeOptions.url ?? req.url.split('?')[0] ?? '';
    if (route.startsWith('/api/v1/agent/')) return payload;
    const params = (req.params ?? {}) as Record<string, string | undefined>;
    let objectId = params.id ?? params.name ?? params['*'] ?? params.path;
    if (!objectId && typeof payload === 'string' && payload.startsWith('{')) {
      const made = JSON.parse(payload) as { id?: string; name?: string };
      objectId = made.id ?? made.name;
    }
    const objectType = /^\/(?:api\/v1|runpod\/v[12]|(?:service\/)?marathon\/v2)\/([^/]+)/.exec(route)?.[1] ?? route;
    const body = req.body as { command?: unknown; user?: unknown; role?: unknown } | undefined;
    const detail: Record<string, unknown> = { status: reply.statusCode };
    if (route.endsWith('/exec') && Array.isArray(body?.command)) detail.command = (body.command as unknown[]).slice(0, 32).map((a) => String(a).slice(0, 256));
    if (objectType === 'teams' && body?.user !== undefined) Object.assign(detail, { user: body.user, role: body.role });
    // A change to a team goes in that team's log, where its owners read it; so does the operator's change to a team's pod.
    const team = objectType === 'teams' && params.name ? params.name : await podTeam(deps, req.caller, objectType, params.id);
    await deps.audit.record(req.caller, `${req.method} ${route}`, objectType, objectId ?? '', detail, team);
    return payload;
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
  await app.register(async (scope) => registerTeamRoutes(scope, deps), { prefix: '/api/v1' });
  await app.register(async (scope) => registerTokenRoutes(scope, deps), { prefix: '/api/v1' });
  await app.register(async (scope) => registerClusterRoutes(scope, deps), { prefix: '/api/v1' });
  await app.register(async (scope) => registerRunpodV1(scope, deps), { prefix: '/runpod/v1' });
  await app.register(async (scope) => registerRunpodV2(scope, deps), { prefix: '/runpod/v2' });
  await registerMarathon(app, deps);
  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return app;
}

/**
 * Whose log a change to a pod goes in: the caller's team, but an admin key acting on a team's pod
 * (by id: native and RunPod routes) writes in the pod's team's log, where its owners read it, with
 * the admin key's id as who.
 */
async function podTeam(deps: ApiDeps, caller: Caller, objectType: string, id: string | undefined): Promise<string> {
  if (!caller.admin || objectType !== 'pods' || !id || !isPodId(id)) return caller.owner;
  const detail = await deps.store.getPod(id).catch(() => undefined);
  return detail?.pod.owner ?? caller.owner;
}
