import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Static } from '@sinclair/typebox';
import { canSee, nodeLoads } from '../../control/index.js';
import { BerthError, POD_STATUSES, checkExec, compilePodSpec, toDockerTimestamp, idFromRequest, invalid, type Problem, type Node, type OwnerId, type PodAction, type PodId, type PodStatus } from '../../model/index.js';
import type { PodDetail } from '../../store/types.js';
import type { ApiDeps } from '../server.js';
import { problemsFromValidation } from '../problem.js';
import { openSse } from '../sse.js';
import { nodesKeyOf, podSummary, podView, PodViewCache } from '../views.js';
import * as S from './schemas.js';
import { podUsageView } from './pod-metrics.js';
import { registerSecretRoutes } from './secrets.js';
import { nodeStateView, registerNodeLifecycleRoutes } from './node-lifecycle.js';

type Req<P = unknown, Q = unknown, B = unknown> = FastifyRequest<{ Params: P; Querystring: Q; Body: B }>;

/**
 * Runs `fn` even when the schema found problems, so the answer lists the schema's problems and the
 * pod rules' problems together; nothing is written when there are any.
 */
async function withAllProblems<T>(req: FastifyRequest, fn: () => Promise<T>, whole = true): Promise<T> {
  const schemaError = req.validationError as (Error & { validation?: Parameters<typeof problemsFromValidation>[0] }) | undefined;
  if (!schemaError?.validation) return fn();
  const problems: Problem[] = problemsFromValidation(schemaError.validation, 'body');
  // A PATCH body is partial: the pod rules apply to it only merged with the pod, so only a create is compiled here.
  if (whole && typeof req.body === 'object' && req.body !== null && !Array.isArray(req.body)) {
    try {
      compilePodSpec(req.body);
    } catch (e) {
      if (!(e instanceof BerthError)) throw e;
      for (const p of e.problems) if (!problems.some((q) => q.path === p.path)) problems.push(p);
    }
  }
  throw invalid(problems);
}

/** The instance a logs or exec call means: `instance` by ordinal, else the first. */
export async function registerNativeRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { pods, resources, keys, store } = deps;
  const nodeMap = async (): Promise<Map<string, Node>> => new Map((await store.listNodes()).map((n) => [n.id, n]));
  const endpoints = deps.access?.endpoints;
  // A pod with a lifetime policy renders again when its idle clock moves; the others only on a change.
  const lifetimeOf = (d: PodDetail) => deps.lifetimes?.view(d);
  const lifetimeKey = (d: PodDetail) => (d.spec.lifetime ? JSON.stringify(lifetimeOf(d) ?? null) : '');
  const fullViews = new PodViewCache((d, n) => podView(d, n, endpoints, lifetimeOf(d)), undefined, lifetimeKey);
  const summaries = new PodViewCache((d, n) => podSummary(d, n, lifetimeOf(d)), undefined, lifetimeKey);
  const view = async (d: PodDetail) => podView(d, await nodeMap(), endpoints, lifetimeOf(d));
  const tags = (t: string) => ({ tags: [t] });

  // Pods
  app.post('/pods', { schema: { ...tags('pods'), summary: 'Create a pod', body: S.PodInput }, attachValidation: true }, async (req: Req<unknown, unknown, S.PodInputT>, reply) => {
    const d = await withAllProblems(req, () => pods.create(req.caller, req.body ?? {}));
    return reply.code(201).header('location', `/api/v1/pods/${d.pod.id}`).send(await view(d));
  });

  app.get('/pods', { schema: { ...tags('pods'), summary: 'List pods', querystring: S.ListPodsQuery } }, async (req: Req<unknown, Static<typeof S.ListPodsQuery>>, reply) => {
    const q = req.query;
    const status = q.status?.flatMap((s) => s.split(',')).map((s) => s.trim().toUpperCase()).filter(Boolean);
    const bad = status?.filter((s) => !POD_STATUSES.includes(s as PodStatus));
    if (bad?.length) throw new BerthError('VALIDATION', `unknown status ${bad.join(', ')}`, { problems: [{ path: 'query:/status', message: `must be one of ${POD_STATUSES.join(', ')}` }] });
    const limit = q.limit;
    const list = await pods.list(req.caller, {
      ...(status?.length ? { status: status as PodStatus[] } : {}),
      ...(q.name ? { name: q.name } : {}),
      ...(q.image ? { image: q.image } : {}),
      ...(q.nodeId ? { nodeId: idFromRequest.node(q.nodeId) } : {}),
      ...(q.includeTerminated ? { includeTerminated: true } : {}),
      ...(limit ? { limit: limit + 1 } : {}),
      ...(q.after ? { after: q.after as PodId } : {}),
    });
    const page = limit ? list.slice(0, limit) : list;
    const nodeList = await store.listNodes();
    const nodes = new Map(nodeList.map((n) => [n.id as string, n]));
    const key = nodesKeyOf(nodeList);
    const next = limit && list.length > limit ? page[page.length - 1]!.pod.id : null;
    const cache = q.view === 'full' ? fullViews : summaries;
    const { body, written } = cache.list(page, nodes, key, next);
    // 'finish': every byte is with the OS, and the buffer can take the next answer.
    reply.raw.once('finish', written);
    return reply.type('application/json; charset=utf-8').send(body);
  });

  app.get('/pods/:id', { schema: { ...tags('pods'), summary: 'Get a pod (with its latest usage)', params: S.PodIdParams } }, async (req: Req<{ id: string }>) => {
    const d = await pods.get(req.caller, req.params.id);
    return { ...(await view(d)), usage: podUsageView(deps, d.pod.id) };
  });

  app.patch('/pods/:id', { schema: { ...tags('pods'), summary: 'Change a pod: a new spec version; any change but the name recreates its containers', params: S.PodIdParams, body: S.PodInput }, attachValidation: true }, async (req: Req<{ id: string }, unknown, S.PodInputT>) =>
    view(await withAllProblems(req, () => pods.update(req.caller, req.params.id, req.body ?? {}), false)),
  );

  app.get(
    '/pods/:id/versions',
    { schema: { ...tags('pods'), summary: 'The spec versions of a pod, oldest first, a page at a time; kept after terminate (version 1 and the newest 100)', params: S.PodIdParams, querystring: S.VersionsQuery } },
    async (req: Req<{ id: string }, Static<typeof S.VersionsQuery>>) => {
      const limit = req.query.limit ?? S.VERSIONS_PAGE_DEFAULT;
      const after = req.query.cursor === undefined ? undefined : Number(req.query.cursor);
      if (after !== undefined && !(Number.isInteger(after) && after >= 0 && after <= 2 ** 31 - 1)) throw invalid([{ path: 'query:/cursor', message: 'must be the `next` of the previous page' }]);
      const list = await pods.versions(req.caller, req.params.id, { limit: limit + 1, ...(after !== undefined ? { after } : {}) });
      const page = list.slice(0, limit);
      return { versions: page, next: list.length > limit ? String(page[page.length - 1]!.version) : null };
    },
  );

  for (const action of ['start', 'stop', 'restart', 'reset', 'terminate'] as PodAction[]) {
    app.post(`/pods/:id/${action}`, { schema: { ...tags('pods'), summary: `${action[0]!.toUpperCase()}${action.slice(1)} a pod`, params: S.PodIdParams, body: S.ActionBody } }, async (req: Req<{ id: string }, unknown, Static<typeof S.ActionBody>>) =>
      view(await pods.act(req.caller, req.params.id, action, req.body ?? {})),
    );
  }
  app.post('/pods/:id/keep-alive', { schema: { ...tags('pods'), summary: 'Keep a pod from its idle stop and maximum running time for N hours from now (0: no longer)', params: S.PodIdParams, body: S.KeepAliveBody } }, async (req: Req<{ id: string }, unknown, Static<typeof S.KeepAliveBody>>) => {
    if (!deps.lifetimes) throw new BerthError('CONFLICT', 'this server runs no lifetime controller');
    return view(await deps.lifetimes.keepAlive(req.caller, req.params.id, req.body.hours));
  });
  app.delete('/pods/:id', { schema: { ...tags('pods'), summary: 'Terminate a pod (same as POST /pods/{id}/terminate)', params: S.PodIdParams } }, async (req: Req<{ id: string }>) =>
    view(await pods.act(req.caller, req.params.id, 'terminate')),
  );

  app.get('/pods/:id/logs', { schema: { ...tags('pods'), summary: 'Pod logs as server-sent events (event "log", then "end")', params: S.PodIdParams, querystring: S.LogsQuery } }, async (req: Req<{ id: string }, Static<typeof S.LogsQuery>>, reply) => {
    const { instance: inst, access } = await deps.resolver.resolve(req.caller, req.params.id, { instance: req.query.instance });
    const since = req.query.since;
    if (since !== undefined && toDockerTimestamp(since) === null) throw invalid([{ path: 'query:/since', message: 'must be Unix seconds or an RFC 3339 time' }]);
    const ac = new AbortController();
    req.raw.on('close', () => ac.abort());
    const it = access.logs(inst.id, req.query.container, { tail: req.query.tail ?? 100, follow: req.query.follow ?? false, ...(since ? { since } : {}) }, ac.signal)[Symbol.asyncIterator]();
    // Wait briefly for the first line so "no container" is a proper error, but answer a quiet
    // container's follower at once rather than when its first line comes.
    const pending = it.next();
    const early = await Promise.race([pending, new Promise<'quiet'>((r) => setTimeout(() => r('quiet'), 250))]);
    const sse = openSse(reply, { hello: 'berth' });
    try {
      let r = early === 'quiet' ? await pending : early;
      while (!r.done && !sse.closed.aborted) {
        sse.send({ event: 'log', data: r.value });
        r = await it.next();
      }
      if (!sse.closed.aborted) sse.send({ event: 'end', data: { reason: 'the container stopped or the stream ended' } });
    } catch (e) {
      if (!sse.closed.aborted) sse.send({ event: 'error', data: { message: (e as Error).message } });
    } finally {
      await it.return?.();
      sse.end();
    }
  });

  app.post('/pods/:id/exec', { schema: { ...tags('pods'), summary: 'Run a command in a pod; answers with its output and exit code', params: S.PodIdParams, body: S.ExecBody } }, async (req: Req<{ id: string }, unknown, Static<typeof S.ExecBody>>) => {
    checkExec(req.body.command);
    const { instance: inst, access } = await deps.resolver.resolve(req.caller, req.params.id, { instance: req.body.instance, running: true, interactive: true });
    deps.lifetimes?.activity.touch(inst.podId, 'terminal');
    return access.exec(inst.id, req.body.container, req.body.command, (req.body.timeoutSeconds ?? 60) * 1000);
  });

  // Events: every pod change as it is committed; `Last-Event-ID` or ?since= resumes.
  app.get('/events', { schema: { ...tags('events'), summary: 'Pod changes as server-sent events (event "pod"); ?pod= for one pod', querystring: { type: 'object', properties: { since: { type: 'integer' }, pod: { type: 'string' } } } } }, async (req: Req<unknown, { since?: number; pod?: string }>, reply) => {
    const since = req.query.since ?? Number(req.headers['last-event-id'] ?? NaN);
    const only = req.query.pod;
    const sse = openSse(reply, { hello: 'berth' });
    let queue = Promise.resolve();
    const sendPod = (id: string, revision: number) => {
      if (only && id !== only) return;
      queue = queue
        .then(async () => {
          const d = await store.getPod(id as PodId);
          if (!d || !canSee(req.caller, d.pod.owner) || sse.closed.aborted) return;
          sse.send({ event: 'pod', id: revision, data: await view(d) });
        })
        // One failed read must not end the stream, nor go unhandled.
        .catch((err: unknown) => req.log.warn({ err, pod: id }, 'event not sent'));
    };
    const off = store.onChange((c) => {
      if (c.kind === 'pod' || c.kind === 'instance') sendPod(c.kind === 'pod' ? c.id : c.id.replace(/-\d+$/, ''), c.revision);
    });
    // A lifetime policy acting: the why, as it happens (the pod's own event follows with its status message).
    const offLifetime = deps.lifetimes?.onEvent((e) => {
      if ((only && e.podId !== only) || !canSee(req.caller, e.owner as OwnerId) || sse.closed.aborted) return;
      queue = queue.then(() => void sse.send({ event: 'lifetime', data: e }));
    });
    if (Number.isFinite(since)) {
      const latest = new Map<string, number>();
      for (let cursor = since; ; ) {
        const page = await store.changesSince(cursor, 10_000);
        for (const c of page) {
          const id = c.kind === 'pod' ? c.id : c.kind === 'instance' ? c.id.replace(/-\d+$/, '') : undefined;
          if (id) latest.set(id, c.revision);
        }
        if (page.length < 10_000) break;
        cursor = page[page.length - 1]!.revision;
      }
      for (const [id, revision] of [...latest].sort((a, b) => a[1] - b[1])) sendPod(id, revision);
    }
    sse.closed.addEventListener('abort', () => {
      off();
      offLifetime?.();
      sse.end();
    });
  });

  // Nodes
  app.get('/nodes', { schema: { ...tags('nodes'), summary: 'Nodes with capacity, what is allocated, and GPUs' } }, async () => {
    const [nodes, instances, all] = await Promise.all([store.listNodes(), store.listInstances({}), store.listPods({})]);
    const specs = new Map(all.map((d) => [d.pod.id as string, d.spec]));
    // The scheduler's own arithmetic, so what /nodes calls allocated is what placement sees as taken.
    const loads = nodeLoads(nodes, instances, (i) => specs.get(i.podId));
    return {
      nodes: nodes.map((n) => {
        const load = loads.get(n.id)!;
        return {
          ...n,
          ...nodeStateView(n),
          gpus: n.capacity.gpus.map((g) => ({ ...g, simulated: n.capacity.gpusSimulated, inUse: load.gpuUuids.has(g.uuid) })),
          allocated: { cpus: load.cpus, memoryMb: load.memoryMb, gpus: load.gpuUuids.size },
          instances: instances.filter((i) => i.nodeId === n.id && i.goal === 'running').length,
        };
      }),
    };
  });

  // Network volumes
  app.post('/network-volumes', { schema: { ...tags('network volumes'), body: S.NetworkVolumeInput } }, async (req: Req<unknown, unknown, Static<typeof S.NetworkVolumeInput>>, reply) =>
    reply.code(201).send(await resources.createNetworkVolume(req.caller, req.body ?? {})),
  );
  app.get('/network-volumes', { schema: tags('network volumes') }, async (req) => ({ networkVolumes: await resources.listNetworkVolumes(req.caller) }));
  app.get('/network-volumes/:id', { schema: { ...tags('network volumes'), params: S.IdParams } }, async (req: Req<{ id: string }>) => resources.getNetworkVolume(req.caller, req.params.id));
  app.patch('/network-volumes/:id', { schema: { ...tags('network volumes'), params: S.IdParams, body: S.NetworkVolumeInput } }, async (req: Req<{ id: string }, unknown, Static<typeof S.NetworkVolumeInput>>) =>
    resources.updateNetworkVolume(req.caller, req.params.id, req.body ?? {}),
  );
  app.delete('/network-volumes/:id', { schema: { ...tags('network volumes'), params: S.IdParams } }, async (req: Req<{ id: string }>, reply) => {
    await resources.deleteNetworkVolume(req.caller, req.params.id);
    return reply.code(204).send();
  });

  // Templates
  app.post('/templates', { schema: { ...tags('templates'), body: S.TemplateInput } }, async (req: Req<unknown, unknown, Static<typeof S.TemplateInput>>, reply) =>
    reply.code(201).send(await resources.createTemplate(req.caller, req.body ?? {})),
  );
  app.get('/templates', { schema: tags('templates') }, async (req) => ({ templates: await resources.listTemplates(req.caller) }));
  app.get('/templates/:id', { schema: { ...tags('templates'), params: S.IdParams } }, async (req: Req<{ id: string }>) => resources.getTemplate(req.caller, req.params.id));
  app.patch('/templates/:id', { schema: { ...tags('templates'), params: S.IdParams, body: S.TemplateInput } }, async (req: Req<{ id: string }, unknown, Static<typeof S.TemplateInput>>) =>
    resources.updateTemplate(req.caller, req.params.id, req.body ?? {}),
  );
  app.delete('/templates/:id', { schema: { ...tags('templates'), params: S.IdParams } }, async (req: Req<{ id: string }>, reply) => {
    await resources.deleteTemplate(req.caller, req.params.id);
    return reply.code(204).send();
  });

  // Registry credentials: the password goes in and never comes out.
  const authView = (r: { id: string; name: string; username: string; createdAt: string }) => ({ id: r.id, name: r.name, username: r.username, createdAt: r.createdAt });
  app.post('/registry-auths', { schema: { ...tags('registry credentials'), body: S.RegistryAuthInput } }, async (req: Req<unknown, unknown, Static<typeof S.RegistryAuthInput>>, reply) =>
    reply.code(201).send(authView(await resources.createRegistryAuth(req.caller, req.body ?? {}))),
  );
  app.get('/registry-auths', { schema: tags('registry credentials') }, async (req) => ({ registryAuths: (await resources.listRegistryAuths(req.caller)).map(authView) }));
  app.get('/registry-auths/:id', { schema: { ...tags('registry credentials'), params: S.IdParams } }, async (req: Req<{ id: string }>) => authView(await resources.getRegistryAuth(req.caller, req.params.id)));
  app.delete('/registry-auths/:id', { schema: { ...tags('registry credentials'), params: S.IdParams } }, async (req: Req<{ id: string }>, reply) => {
    await resources.deleteRegistryAuth(req.caller, req.params.id);
    return reply.code(204).send();
  });

  // Secrets: values go in and never come out.
  await registerSecretRoutes(app, deps.secrets);
  if (deps.nodes) await registerNodeLifecycleRoutes(app, deps.nodes);

  // The account's SSH public keys
  app.post('/ssh-keys', { schema: { ...tags('ssh keys'), body: S.SshKeyInput } }, async (req: Req<unknown, unknown, Static<typeof S.SshKeyInput>>, reply) =>
    reply.code(201).send(await resources.addSshKey(req.caller, req.body ?? {})),
  );
  app.get('/ssh-keys', { schema: tags('ssh keys') }, async (req) => ({ sshKeys: await resources.listSshKeys(req.caller) }));
  app.delete('/ssh-keys/:id', { schema: { ...tags('ssh keys'), params: S.IdParams } }, async (req: Req<{ id: string }>, reply) => {
    await resources.removeSshKey(req.caller, req.params.id);
    return reply.code(204).send();
  });

  // API keys: the secret is shown once, at creation.
  const keyView = (k: { id: string; name: string; owner: string; prefix: string; admin: boolean; user?: string | null; createdAt: string; lastUsedAt: string | null }) => ({
    id: k.id,
    name: k.name,
    owner: k.owner,
    prefix: k.prefix,
    admin: k.admin,
    user: k.user ?? null,
    createdAt: k.createdAt,
    lastUsedAt: k.lastUsedAt,
  });
  app.post('/keys', { schema: { ...tags('api keys'), body: S.ApiKeyInput } }, async (req: Req<unknown, unknown, Static<typeof S.ApiKeyInput>>, reply) => {
    const { key, secret } = await keys.create(req.caller, req.body);
    return reply.code(201).send({ ...keyView(key), key: secret });
  });
  app.get('/keys', { schema: tags('api keys') }, async (req) => ({ keys: (await keys.list(req.caller)).map(keyView) }));
  app.delete('/keys/:id', { schema: { ...tags('api keys'), params: S.IdParams } }, async (req: Req<{ id: string }>, reply) => {
    await keys.remove(req.caller, idFromRequest.apiKey(req.params.id));
    return reply.code(204).send();
  });
  app.get('/whoami', { schema: tags('api keys') }, async (req) => req.caller);
}
