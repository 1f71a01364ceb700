/**
 * RunPod REST v1 at /runpod/v1 (runpod/docs api-reference/openapi.json), for runpodctl and older
 * scripts: pods, network volumes, templates and container registry auth. Lists are bare arrays,
 * errors `{"message": "..."}`, and every pod action answers with the pod (runpodctl parses it).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DESIRED_AFTER, allowedActions, idFromRequest, type PodAction } from '../../model/index.js';
import type { PodDetail } from '../../store/types.js';
import type { ApiDeps } from '../server.js';
import { sendV1Error, useErrors } from './errors.js';
import { fromV1Create, fromV1Template, fromV1Update } from './inputs.js';
import * as S from './schemas.js';
import { Ignored, compileRunpodOptions, gatewayOf, dataCenterOf, flavorOf, queryList, refuseNotServed, type RunpodOptions } from './shared.js';
import { registryView, v1NetworkVolume, v1Pod, v1Template, type V1Extras, type ViewContext } from './views.js';

type Req<P = unknown, Q = unknown, B = unknown> = FastifyRequest<{ Params: P; Querystring: Q; Body: B }>;
type IdReq<Q = unknown, B = unknown> = Req<S.IdParamsT, Q, B>;

const tags = { tags: ['runpod v1'] };

export async function registerRunpodV1(app: FastifyInstance, deps: ApiDeps, options: RunpodOptions = {}): Promise<void> {
  const { pods, resources, store } = deps;
  const opts = compileRunpodOptions(options);
  useErrors(app, sendV1Error);

  const viewContext = async (req: FastifyRequest): Promise<ViewContext> => ({ nodes: new Map((await store.listNodes()).map((n) => [n.id as string, n])), opts, gateway: gatewayOf(deps.access, opts, req.hostname), ...(deps.usage ? { usage: (id) => deps.usage!.latestOf(id) } : {}), ...(deps.lifetimes ? { lifetime: (d) => deps.lifetimes!.view(d) } : {}) });

  /** The `include*` expansions: looked up only when asked for. */
  const extrasOf = async (req: FastifyRequest, d: PodDetail, q: S.V1GetPodT): Promise<V1Extras> => {
    const extras: V1Extras = { machine: q.includeMachine === true, savingsPlans: q.includeSavingsPlans === true };
    if (q.includeNetworkVolume && d.spec.networkVolumeId) extras.networkVolume = await resources.getNetworkVolume(req.caller, d.spec.networkVolumeId).catch(() => undefined);
    if (q.includeTemplate && d.spec.templateId) extras.template = await resources.getTemplate(req.caller, d.spec.templateId).catch(() => undefined);
    return extras;
  };
  const view = async (req: FastifyRequest, d: PodDetail, q: S.V1GetPodT = {}) => v1Pod(d, await viewContext(req), await extrasOf(req, d, q));

  // Pods
  app.post('/pods', { schema: { ...tags, summary: 'Create a pod', body: S.V1CreatePod } }, async (req: Req<unknown, unknown, S.V1CreatePodT>, reply) => {
    const ignored = new Ignored();
    const d = await pods.create(req.caller, fromV1Create(req.body, await store.listNodes(), ignored), { queueOverQuota: false, refuseUnplaceable: true });
    return reply.code(201).headers(ignored.header()).send(await view(req, d));
  });

  app.get('/pods', { schema: { ...tags, summary: 'List pods', querystring: S.V1ListPods } }, async (req: Req<unknown, S.V1ListPodsT>) => {
    const q = req.query;
    // Berth runs no Serverless workers: a list of an endpoint's workers is empty.
    if (q.endpointId) return [];
    const ctx = await viewContext(req);
    const gpuTypeIds = queryList(q.gpuTypeId);
    const flavors = queryList(q.cpuFlavorId);
    const dcs = queryList(q.dataCenterId);
    const list = await pods.list(req.caller, {
      ...(q.id ? { ids: [idFromRequest.pod(q.id)] } : {}),
      ...(q.name ? { name: q.name } : {}),
      ...(q.imageName ? { image: q.imageName } : {}),
      ...(q.desiredStatus === 'TERMINATED' ? { includeTerminated: true } : {}),
    });
    const pass = (d: PodDetail): boolean => {
      const { spec, pod } = d;
      const gpu = spec.gpuCount > 0;
      if (q.desiredStatus && pod.desiredStatus !== q.desiredStatus) return false;
      if (q.computeType && (q.computeType === 'GPU') !== gpu) return false;
      if (flavors && (gpu || !flavors.includes(flavorOf(spec).id))) return false;
      if (gpuTypeIds) {
        const node = pod.nodeId ? ctx.nodes.get(pod.nodeId) : undefined;
        const held = node?.capacity.gpus.filter((g) => d.instances.some((i) => i.gpuUuids.includes(g.uuid))).map((g) => g.name) ?? [];
        const names = held.length ? held : spec.gpuTypeIds;
        if (!gpu || !names.some((n) => gpuTypeIds.includes(n))) return false;
      }
      if (dcs && !dcs.includes(dataCenterOf(pod.nodeId ? ctx.nodes.get(pod.nodeId) : undefined) ?? '')) return false;
      if (q.networkVolumeId && spec.networkVolumeId !== q.networkVolumeId) return false;
      if (q.templateId && spec.templateId !== q.templateId) return false;
      return true;
    };
    return Promise.all(list.filter(pass).map(async (d) => v1Pod(d, ctx, await extrasOf(req, d, q))));
  });

  app.get('/pods/:id', { schema: { ...tags, summary: 'Get a pod', params: S.IdParams, querystring: S.V1GetPod } }, async (req: IdReq<S.V1GetPodT>) => view(req, await pods.get(req.caller, req.params.id), req.query));

  const update = async (req: IdReq<unknown, S.V1UpdatePodT>, reply: FastifyReply) => {
    const ignored = new Ignored();
    const d = await pods.update(req.caller, req.params.id, fromV1Update(req.body, ignored));
    return reply.headers(ignored.header()).send(await view(req, d));
  };
  const updateSchema = { schema: { ...tags, summary: 'Update a pod (resets it, as RunPod: only /workspace survives)', params: S.IdParams, body: S.V1UpdatePod } };
  app.patch('/pods/:id', updateSchema, update);
  app.post('/pods/:id/update', updateSchema, update);

  app.delete('/pods/:id', { schema: { ...tags, summary: 'Terminate a pod', params: S.IdParams } }, async (req: IdReq, reply) => {
    const d = await pods.get(req.caller, req.params.id);
    if (d.pod.status !== 'TERMINATED') await pods.act(req.caller, d.pod.id, 'terminate');
    return reply.code(204).send();
  });

  for (const action of ['start', 'stop', 'reset', 'restart'] as PodAction[]) {
    app.post(`/pods/:id/${action}`, { schema: { ...tags, summary: `${action} a pod; answers the pod`, params: S.IdParams } }, async (req: IdReq) => {
      const d = await pods.get(req.caller, req.params.id);
      // Starting a running pod or stopping a stopped one is already done: answer the pod, as RunPod's
      // GraphQL podResume/podStop do, rather than failing a script that runs twice.
      const done = (action === 'start' || action === 'stop') && d.pod.desiredStatus === DESIRED_AFTER[action] && !allowedActions(d.pod.status).includes(action);
      return view(req, done ? d : await pods.act(req.caller, d.pod.id, action));
    });
  }

  // Network volumes
  app.post('/networkvolumes', { schema: { ...tags, body: S.V1CreateNetworkVolume } }, async (req: Req<unknown, unknown, { name: string; size: number; dataCenterId: string }>) =>
    v1NetworkVolume(await resources.createNetworkVolume(req.caller, { name: req.body.name, sizeGb: req.body.size, dataCenterId: req.body.dataCenterId })),
  );
  app.get('/networkvolumes', { schema: tags }, async (req) => (await resources.listNetworkVolumes(req.caller)).map(v1NetworkVolume));
  app.get('/networkvolumes/:id', { schema: { ...tags, params: S.IdParams } }, async (req: IdReq) => v1NetworkVolume(await resources.getNetworkVolume(req.caller, req.params.id)));
  const updateVolume = async (req: IdReq<unknown, { name?: string; size?: number }>) =>
    v1NetworkVolume(await resources.updateNetworkVolume(req.caller, req.params.id, { ...(req.body.name !== undefined ? { name: req.body.name } : {}), ...(req.body.size !== undefined ? { sizeGb: req.body.size } : {}) }));
  app.patch('/networkvolumes/:id', { schema: { ...tags, params: S.IdParams, body: S.V1UpdateNetworkVolume } }, updateVolume);
  app.post('/networkvolumes/:id/update', { schema: { ...tags, params: S.IdParams, body: S.V1UpdateNetworkVolume } }, updateVolume);
  app.delete('/networkvolumes/:id', { schema: { ...tags, params: S.IdParams } }, async (req: IdReq, reply) => {
    await resources.deleteNetworkVolume(req.caller, req.params.id);
    return reply.code(204).send();
  });

  // Templates: only the caller's own; there are no public or RunPod templates to include.
  app.post('/templates', { schema: { ...tags, body: S.V1CreateTemplate } }, async (req: Req<unknown, unknown, S.V1TemplateT>, reply) => {
    const ignored = new Ignored();
    const t = await resources.createTemplate(req.caller, fromV1Template(req.body, ignored));
    return reply.headers(ignored.header()).send(v1Template(t));
  });
  app.get('/templates', { schema: tags }, async (req) => (await resources.listTemplates(req.caller)).map(v1Template));
  app.get('/templates/:id', { schema: { ...tags, params: S.IdParams } }, async (req: IdReq) => v1Template(await resources.getTemplate(req.caller, req.params.id)));
  const updateTemplate = async (req: IdReq<unknown, S.V1TemplateT>, reply: FastifyReply) => {
    const ignored = new Ignored();
    const current = await resources.getTemplate(req.caller, req.params.id);
    const t = await resources.updateTemplate(req.caller, current.id, fromV1Template(req.body, ignored, current));
    return reply.headers(ignored.header()).send(v1Template(t));
  };
  app.patch('/templates/:id', { schema: { ...tags, params: S.IdParams, body: S.V1UpdateTemplate } }, updateTemplate);
  app.post('/templates/:id/update', { schema: { ...tags, params: S.IdParams, body: S.V1UpdateTemplate } }, updateTemplate);
  app.delete('/templates/:id', { schema: { ...tags, params: S.IdParams } }, async (req: IdReq, reply) => {
    await resources.deleteTemplate(req.caller, req.params.id);
    return reply.code(204).send();
  });

  // Container registry auth: write-only credentials, no update.
  app.post('/containerregistryauth', { schema: { ...tags, body: S.V1CreateRegistryAuth } }, async (req: Req<unknown, unknown, { name: string; username: string; password: string }>) =>
    registryView(await resources.createRegistryAuth(req.caller, req.body)),
  );
  app.get('/containerregistryauth', { schema: tags }, async (req) => (await resources.listRegistryAuths(req.caller)).map(registryView));
  app.get('/containerregistryauth/:id', { schema: { ...tags, params: S.IdParams } }, async (req: IdReq) => registryView(await resources.getRegistryAuth(req.caller, req.params.id)));
  app.delete('/containerregistryauth/:id', { schema: { ...tags, params: S.IdParams } }, async (req: IdReq, reply) => {
    await resources.deleteRegistryAuth(req.caller, req.params.id);
    return reply.code(204).send();
  });

  refuseNotServed(app, [
    ['/endpoints', 'Serverless endpoints'],
    ['/billing', 'billing'],
  ]);
}
