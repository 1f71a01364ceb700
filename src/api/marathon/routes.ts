/**
 * Marathon's REST API for pods at /marathon/v2 and /service/marathon/v2 (as DC/OS proxies it):
 * `/v2/pods` and its `::status`, `::versions` and `::instances` suffixes, `/v2/deployments`,
 * `/v2/events`, `/v2/queue` and `/v2/info`, with Marathon's status codes, headers and error bodies.
 * Pods are Berth pods whose spec carries the Marathon definition; the deployment service rolls them.
 */
import type { Leadership } from '../../control/leadership.js';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { canSee, type Caller, type DeploymentService, type LifetimeController } from '../../control/index.js';
import { BerthError, parseJsonBounded, type Instance, type OwnerId, type PodId } from '../../model/index.js';
import { jsonErrorWithoutText } from '../problem.js';
import { openSse } from '../sse.js';
import type { PodDetail, Store } from '../../store/types.js';
import { DEFAULT_IMAGE, marathonProblem, toPodInput } from './convert.js';
import { EVENT_STREAM, MarathonEventBus } from './events.js';
import { berthInstanceId, canonicalPath, INSTANCE_ID } from './paths.js';
import { parseDefinition, validateUpdate, type Violation } from './validate.js';
import { withDefinition } from './synthesize.js';
import { definitionOf, deploymentView, infoView, instanceView, podStatusView, podView, queueEntry, versionTime, waitingInstances, type PodContext } from './views.js';

export interface MarathonDeps {
  store: Store;
  deployments: DeploymentService;
  /** The lifetime policies: a Marathon pod they terminate is announced on the bus as a DELETE would be. */
  lifetimes?: Pick<LifetimeController, 'onEvent'>;
  /** Which server leads (several servers, docs/ha.md): what `/v2/info` and `/v2/leader` name. */
  leadership?: Pick<Leadership, 'leader'>;
}

export interface MarathonOptions {
  /** The image of containers that name none (Mesos would run them on the agent's filesystem). @default busybox:latest */
  defaultImage?: string;
  /** The Marathon version `/v2/info` reports; clients check it for pod support (1.4+). @default 1.10.17 */
  marathonVersion?: string;
}

/** Where the API answers, as DC/OS's admin router mounts Marathon and as Berth does on its own. */
export const MARATHON_PREFIXES = ['/marathon/v2', '/service/marathon/v2'];

const DEPLOYMENT_HEADER = 'Marathon-Deployment-Id';

/** An answer in Marathon's own shape, thrown from a handler. */
export class MarathonReply extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(typeof body === 'object' && body && 'message' in body ? String(body.message) : `HTTP ${status}`);
  }
}

const notFound = (path: string) => new MarathonReply(404, { message: `Pod '${path}' does not exist`, details: [] });

/** A request body that was not sent (Fastify has already made `{}` of it). */
const EMPTY = Object.freeze({ empty: true });
const noBody = (req: FastifyRequest): boolean => {
  const h = req.headers;
  return req.body === EMPTY || (h['transfer-encoding'] === undefined && (h['content-length'] === undefined || h['content-length'] === '0'));
};

function berthVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/**
 * The DC/OS CLI sends `Authorization: token=<key>`; Berth's key check reads `Bearer <key>`. The
 * header is rewritten as the request arrives, before any hook, for Marathon's paths only.
 */
export function acceptDcosTokens(server: Server): void {
  server.prependListener('request', (req: IncomingMessage) => {
    const auth = req.headers.authorization;
    if (!auth?.startsWith('token=') || !MARATHON_PREFIXES.some((p) => req.url?.startsWith(`${p}/`) || req.url === p)) return;
    req.headers.authorization = `Bearer ${auth.slice('token='.length).trim()}`;
  });
}

/** Marathon's body for Berth's errors, with its status. */
function marathonError(err: unknown): MarathonReply {
  if (err instanceof MarathonReply) return err;
  const fe = err as { statusCode?: number; message?: string; code?: string };
  if (!(err instanceof BerthError)) {
    if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new MarathonReply(413, { message: fe.message });
    if (typeof fe.statusCode === 'number' && fe.statusCode < 500) return new MarathonReply(fe.statusCode, { message: fe.message });
    return new MarathonReply(500, { message: 'internal error; the server log has the details' });
  }
  switch (err.kind) {
    case 'UNAUTHORIZED':
      return new MarathonReply(401, { message: err.message });
    case 'FORBIDDEN':
      return new MarathonReply(403, { message: err.message });
    case 'POLICY_DENIED':
      return new MarathonReply(403, { message: err.message, details: grouped(err.problems.map(marathonProblem)) });
    case 'NOT_FOUND':
    case 'POD_NOT_FOUND':
      return new MarathonReply(404, { message: notFoundMessage(err), details: [] });
    case 'CONFLICT': {
      const { deployments, duplicate, path } = err.extra;
      if (Array.isArray(deployments)) {
        const [holder] = deployments as { id: string }[];
        return new MarathonReply(409, { message: `App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/${holder?.id}'.`, deployments });
      }
      if (duplicate) return new MarathonReply(409, { message: `A pod with id [${String(path)}] already exists.` });
      return new MarathonReply(409, { message: err.message });
    }
    case 'VALIDATION':
      if (err.problems.length) return new MarathonReply(422, { message: 'Object is not valid', details: grouped(err.problems.map(marathonProblem)) });
      return new MarathonReply(422, { message: err.message });
    case 'NO_CAPACITY':
      return new MarathonReply(422, { message: 'Object is not valid', details: [{ path: '/', errors: [err.message] }] });
    case 'ACTION_NOT_ALLOWED':
      return new MarathonReply(409, { message: err.message });
    default:
      return new MarathonReply(err.status, { message: err.message });
  }
}

/** What the deployment service did not find (`extra.path`, `extra.deploymentId`), as Marathon says it. */
function notFoundMessage(err: BerthError): string {
  const { path, deploymentId } = err.extra;
  if (typeof deploymentId === 'string') return `DeploymentPlan ${deploymentId} does not exist`;
  if (typeof path === 'string') return `Pod '${path}' does not exist`;
  return err.message;
}

function grouped(problems: { path: string; message: string }[]): Violation[] {
  const out = new Map<string, string[]>();
  for (const p of problems) out.set(p.path, [...(out.get(p.path) ?? []), p.message]);
  return [...out].map(([path, errors]) => ({ path, errors }));
}

const flag = (v: unknown): boolean => v === 'true' || v === '' || v === '1';
const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : typeof v === 'string' ? [v] : []);

/** `{id}`, `{id}::status`, `::versions[/{v}]`, `::instances[/{instanceId}]`; the id may hold slashes. */
interface PodsPath {
  id: string;
  suffix: 'none' | 'status' | 'versions' | 'instances';
  arg: string | null;
}
function parsePodsPath(rest: string): PodsPath | null {
  const at = rest.indexOf('::');
  const id = canonicalPath(at < 0 ? rest : rest.slice(0, at));
  if (at < 0) return { id, suffix: 'none', arg: null };
  const [suffix, ...arg] = rest.slice(at + 2).split('/');
  if (suffix !== 'status' && suffix !== 'versions' && suffix !== 'instances') return null;
  return { id, suffix, arg: arg.length ? arg.join('/') : null };
}

interface Ctx {
  deps: MarathonDeps;
  bus: MarathonEventBus;
  defaultImage: string;
  marathonVersion: string;
}

/** Everything a pod's views need, read once. */
async function contextOf(ctx: Ctx, given: PodDetail): Promise<PodContext> {
  const { store, deployments } = ctx.deps;
  // A pod made through another API gets a definition written from its spec, under /<podId>.
  const detail = { ...given, spec: withDefinition(given.spec, given.pod.id) };
  const versions = new Map((await store.listPodVersions(detail.pod.id)).map((v) => [v.version, { ...v, spec: withDefinition(v.spec, v.podId) }]));
  const nodes = new Map((await store.listNodes()).map((n) => [n.id as string, n]));
  const deleting = detail.pod.desiredStatus === 'TERMINATED' || deployments.deployments().some((d) => d.podId === detail.pod.id && d.action === 'StopPod');
  return { detail, versions, nodes, deleting, waitReason: deployments.waitReason(detail.pod.id), now: new Date().toISOString() };
}

async function view(ctx: Ctx, detail: PodDetail): Promise<Record<string, unknown>> {
  const c = await contextOf(ctx, detail);
  return podView(c.detail.spec, versionTime(c, detail.pod.specVersion));
}

async function findPod(ctx: Ctx, caller: Caller, path: string): Promise<PodDetail> {
  const d = await ctx.deps.deployments.find(caller, path);
  if (!d) throw notFound(path);
  return d;
}

/** The body of a POST or PUT, normalized and validated, or Marathon's 400/422. */
function definitionFrom(req: FastifyRequest) {
  if (noBody(req)) throw new MarathonReply(400, { message: 'Please specify data in JSON format', details: 'No content to map due to end-of-input' });
  const parsed = parseDefinition(req.body);
  if (!parsed.ok) throw new MarathonReply(422, parsed.body);
  return parsed.pod;
}

function podEvent(ctx: Ctx, req: FastifyRequest, eventType: string, path: string, owner: OwnerId): void {
  ctx.bus.publish({ eventType, clientIp: req.ip, uri: `/v2/pods${path}` }, owner);
}

async function createPod(ctx: Ctx, req: FastifyRequest, reply: FastifyReply, prefix: string) {
  const pod = definitionFrom(req);
  const input = toPodInput(pod, { defaultImage: ctx.defaultImage });
  const force = flag((req.query as Record<string, unknown>).force);
  const { detail, deployment } = await ctx.deps.deployments.apply(req.caller, input, { force, mustBeNew: true });
  podEvent(ctx, req, 'pod_created_event', pod.id, detail.pod.owner);
  return reply
    .code(201)
    .header('Location', `${prefix}/pods${pod.id}`)
    .header(DEPLOYMENT_HEADER, deployment.id)
    .send(await view(ctx, detail));
}

async function updatePod(ctx: Ctx, req: FastifyRequest, reply: FastifyReply, path: string) {
  const pod = definitionFrom(req);
  if (pod.id !== path) throw new MarathonReply(400, { message: `'${path}' does not match definition's id ('${pod.id}')` });
  const existing = await ctx.deps.deployments.find(req.caller, path);
  if (existing) {
    const violations = validateUpdate(definitionOf(withDefinition(existing.spec, existing.pod.id)), pod);
    if (violations.length) throw new MarathonReply(422, { message: 'Object is not valid', details: violations });
  }
  const force = flag((req.query as Record<string, unknown>).force);
  const { detail, deployment, created } = await ctx.deps.deployments.apply(req.caller, toPodInput(pod, { defaultImage: ctx.defaultImage }), { force, mustBeNew: false });
  podEvent(ctx, req, created ? 'pod_created_event' : 'pod_updated_event', pod.id, detail.pod.owner);
  return reply.code(200).header(DEPLOYMENT_HEADER, deployment.id).send(await view(ctx, detail));
}

async function getVersion(ctx: Ctx, caller: Caller, path: string, version: string) {
  const wanted = Date.parse(version);
  const v = Number.isNaN(wanted) ? undefined : (await ctx.deps.deployments.history(caller, path)).find((x) => Date.parse(x.createdAt) === wanted);
  if (!v) throw notFound(path);
  return podView(withDefinition(v.spec, v.podId), v.createdAt);
}

/** Kills instances by their Marathon ids; with `wipe` they are replaced rather than restarted. */
async function killInstances(ctx: Ctx, req: FastifyRequest, path: string, ids: string[]): Promise<unknown[]> {
  const detail = await ctx.deps.deployments.find(req.caller, path);
  if (!detail) throw new MarathonReply(404, { message: `Path '${path}' does not exist` });
  const berthIds = ids.map((id) => berthInstanceId(path, id)).filter((id): id is string => id !== null);
  const wipe = flag((req.query as Record<string, unknown>).wipe);
  const killed = await ctx.deps.deployments.killInstances(req.caller, path, berthIds, { wipe }).catch((e: unknown) => {
    // The pod went away since it was found above.
    throw e instanceof BerthError && e.kind === 'NOT_FOUND' && e.extra.path === path ? new MarathonReply(404, { message: `Path '${path}' does not exist`, details: [] }) : e;
  });
  const c = await contextOf(ctx, detail);
  return killed.map((inst: Instance) => instanceView(c, inst));
}

async function podsWildcard(ctx: Ctx, req: FastifyRequest, reply: FastifyReply, prefix: string) {
  const rest = (req.params as { '*': string })['*'] ?? '';
  const parsed = parsePodsPath(rest);
  if (!parsed) throw new MarathonReply(404, { message: 'URI not found' });
  const { id, suffix, arg } = parsed;
  const { caller } = req;
  const m = req.method;

  if (suffix === 'status' && id === '/' && m === 'GET') {
    const all = await ctx.deps.deployments.list(caller);
    return Promise.all(all.map(async (d) => podStatusView(await contextOf(ctx, d))));
  }
  if (id === '/' && suffix === 'none') {
    if (m === 'GET') return listPods(ctx, caller);
    if (m === 'POST') return createPod(ctx, req, reply, prefix);
  }
  switch (`${m} ${suffix}${arg !== null ? '/' : ''}`) {
    case 'GET none':
      return view(ctx, await findPod(ctx, caller, id));
    case 'PUT none':
      return updatePod(ctx, req, reply, id);
    case 'DELETE none': {
      const deployment = await ctx.deps.deployments.remove(caller, id, { force: flag((req.query as Record<string, unknown>).force) });
      const owner = (await ctx.deps.store.getPod(deployment.podId as PodId))?.pod.owner ?? caller.owner;
      podEvent(ctx, req, 'pod_deleted_event', id, owner);
      return reply.code(202).header(DEPLOYMENT_HEADER, deployment.id).send();
    }
    case 'GET status':
      return reply.header('cache-control', 'no-cache, no-store, must-revalidate').send(podStatusView(await contextOf(ctx, await findPod(ctx, caller, id))));
    case 'GET versions':
      await findPod(ctx, caller, id);
      return (await ctx.deps.deployments.history(caller, id)).map((v) => v.createdAt);
    case 'GET versions/':
      return getVersion(ctx, caller, id, arg!);
    case 'DELETE instances/': {
      if (!INSTANCE_ID.test(arg!)) throw new MarathonReply(422, { message: `'${arg}' is not a valid instance id` });
      const [killed] = await killInstances(ctx, req, id, [arg!]);
      if (!killed) throw new MarathonReply(404, { message: `Task '${arg}' does not exist` });
      return killed;
    }
    case 'DELETE instances': {
      const ids = req.body === EMPTY ? [] : req.body;
      if (!Array.isArray(ids) || ids.some((x) => typeof x !== 'string')) throw new MarathonReply(400, { message: 'Please specify data in JSON format', details: 'expected a list of instance ids' });
      const bad = (ids as string[]).find((x) => !INSTANCE_ID.test(x));
      if (bad) throw new MarathonReply(422, { message: `'${bad}' is not a valid instance id` });
      return killInstances(ctx, req, id, ids as string[]);
    }
  }
  throw new MarathonReply(405, { message: 'HTTP 405 Method Not Allowed' });
}

async function listPods(ctx: Ctx, caller: Caller) {
  const all = await ctx.deps.deployments.list(caller);
  return Promise.all(all.map((d) => view(ctx, d)));
}

/** Deployments of pods the caller may see. */
async function visibleDeployments(ctx: Ctx, caller: Caller) {
  const out = [];
  for (const d of ctx.deps.deployments.deployments()) {
    const detail = await ctx.deps.store.getPod(d.podId as PodId);
    if (!detail || canSee(caller, detail.pod.owner)) out.push(d);
  }
  return out;
}

/** One API prefix: its body parser, error shape and routes. */
function routes(app: FastifyInstance, ctx: Ctx, prefix: string): void {
  // Marathon's bodies for bad JSON, and a body of any content type read as JSON, as curl -d sends it.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, EMPTY);
    try {
      done(null, parseJsonBounded(text));
    } catch (e) {
      if (e instanceof BerthError) return done(e, undefined);
      done(new MarathonReply(400, { message: 'Invalid JSON', details: jsonErrorWithoutText((e as Error).message) }), undefined);
    }
  });
  app.setErrorHandler((err, req, reply) => {
    const r = marathonError(err);
    if (r.status >= 500) req.log.error({ err }, 'marathon request failed');
    return reply.code(r.status).type('application/json; charset=utf-8').send(r.body);
  });
  app.setNotFoundHandler((_req, reply) => reply.code(404).type('application/json; charset=utf-8').send({ message: 'URI not found' }));

  const hide = { schema: { hide: true } };
  app.head('/pods', hide, async (_req, reply) => reply.code(200).send());
  app.get('/pods', hide, async (req) => listPods(ctx, req.caller));
  app.post('/pods', hide, async (req, reply) => createPod(ctx, req, reply, prefix));
  for (const method of ['GET', 'PUT', 'DELETE', 'POST'] as const) {
    app.route({ method, url: '/pods/*', ...hide, handler: (req, reply) => podsWildcard(ctx, req, reply, prefix) });
  }

  app.get('/deployments', hide, async (req) => (await visibleDeployments(ctx, req.caller)).map(deploymentView));
  app.delete('/deployments/:id', hide, async (req, reply) => {
    const { id } = req.params as { id: string };
    const force = flag((req.query as Record<string, unknown>).force);
    const rollback = await ctx.deps.deployments.cancel(req.caller, id, { force });
    if (force || !rollback) return reply.code(202).send();
    return reply.code(200).header(DEPLOYMENT_HEADER, rollback.id).send({ deploymentId: rollback.id, version: rollback.version });
  });

  app.get('/events', hide, async (req, reply) => {
    if (!String(req.headers.accept ?? '').includes('text/event-stream')) throw new MarathonReply(405, { message: 'HTTP 405 Method Not Allowed' });
    // The head goes out now, not with the first event: a filtered stream may stay quiet for long.
    ctx.bus.attach(openSse(reply, EVENT_STREAM), req.caller, req.ip, list((req.query as Record<string, unknown>).event_type));
  });

  app.get('/queue', hide, async (req) => {
    const queue = [];
    for (const d of await ctx.deps.deployments.list(req.caller)) {
      // Most pods have nothing waiting: their context (versions, nodes) is read only for those that do.
      const startWaits = d.pod.desiredStatus === 'RUNNING' && d.instances.some((i) => i.goal === 'stopped');
      if (!startWaits && !d.instances.some((i) => i.goal === 'running' && (i.nodeId === null || i.observed?.state === 'failed' || i.observed?.state === 'exited'))) continue;
      const c = await contextOf(ctx, d);
      const waiting = waitingInstances(c);
      if (waiting.length) queue.push(queueEntry(c, waiting, c.waitReason ?? null));
    }
    return { queue };
  });

  /** The leader's host:port, as Marathon names its leader; this server's Host when there is one server. */
  const leaderHost = (req: FastifyRequest): string | undefined => {
    const leader = ctx.deps.leadership?.leader();
    // Epoch 0: one server (SQLite), which leads under whatever name it was reached by.
    if (!ctx.deps.leadership || leader?.epoch === 0) return req.headers.host ?? 'localhost';
    return leader ? new URL(leader.url).host : undefined;
  };
  app.get('/leader', hide, async (req, reply) => {
    const leader = leaderHost(req);
    if (!leader) return reply.code(404).send({ message: 'There is no leader' });
    return { leader };
  });

  app.get('/info', hide, async (req) => {
    const port = req.server.server.address();
    return infoView({
      version: ctx.marathonVersion,
      berthVersion: berthVersion(),
      leader: leaderHost(req) ?? req.headers.host ?? 'localhost',
      httpPort: typeof port === 'object' && port ? port.port : 0,
      https: req.protocol === 'https',
    });
  });
}

/**
 * Mounts the Marathon API on the server under both prefixes. Call it from `buildApi` after the
 * API-key hook is in place; the key check applies as everywhere else.
 */
export async function registerMarathon(app: FastifyInstance, deps: MarathonDeps, options: MarathonOptions = {}): Promise<void> {
  const bus = new MarathonEventBus(deps.deployments, deps.store);
  // A terminate by a lifetime policy is Marathon's pod_deleted_event (nobody's request: no clientIp);
  // a stop needs nothing of its own, its instances' events say it.
  const offLifetimes = deps.lifetimes?.onEvent((e) => {
    if (e.action !== 'terminate') return;
    void deps.store.getPod(e.podId).then((d) => {
      const path = d?.spec.marathon?.id;
      if (path) bus.publish({ eventType: 'pod_deleted_event', clientIp: null, uri: `/v2/pods${path}`, reason: e.message }, d.pod.owner);
    }, () => undefined);
  });
  app.addHook('preClose', async () => {
    offLifetimes?.();
    bus.close();
  });
  acceptDcosTokens(app.server);
  const ctx: Ctx = { deps, bus, defaultImage: options.defaultImage ?? DEFAULT_IMAGE, marathonVersion: options.marathonVersion ?? '1.10.17' };
  for (const prefix of MARATHON_PREFIXES) await app.register(async (scope) => routes(scope, ctx, prefix), { prefix });
}
