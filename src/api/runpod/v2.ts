/**
 * RunPod REST v2 at /runpod/v2 (runpod/docs api-reference-v2/openapi.json): pods and their actions
 * and logs, templates, network volumes, registries, SSH keys and the catalog, over the same pods
 * and resources as the native API. Lists are wrapped (`{"pods": [...]}`), errors are problem+json.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BerthError, type PodAction } from '../../model/index.js';
import type { PodDetail } from '../../store/types.js';
import type { ApiDeps } from '../server.js';
import { cpuTypes, dataCenterList, gpuTypes, type CatalogState } from './catalog.js';
import { sendV2Problem, useErrors } from './errors.js';
import { fromV2Create, fromV2Template, fromV2Update } from './inputs.js';
import { streamPodLogs, type LogQuery } from './logs.js';
import * as S from './schemas.js';
import { Ignored, compileRunpodOptions, gatewayOf, queryList, refuseNotServed, type RunpodOptions } from './shared.js';
import { registryView, v2Actions, v2NetworkVolume, v2Pod, v2Template, type ViewContext } from './views.js';

type Req<P = unknown, Q = unknown, B = unknown> = FastifyRequest<{ Params: P; Querystring: Q; Body: B }>;
type IdReq<Q = unknown, B = unknown> = Req<S.IdParamsT, Q, B>;

const tags = { tags: ['runpod v2'] };

export async function registerRunpodV2(app: FastifyInstance, deps: ApiDeps, options: RunpodOptions = {}): Promise<void> {
  const { pods, resources, store } = deps;
  const opts = compileRunpodOptions(options);
  useErrors(app, sendV2Problem);

  const viewContext = async (req: FastifyRequest): Promise<ViewContext> => ({ nodes: new Map((await store.listNodes()).map((n) => [n.id as string, n])), opts, gateway: gatewayOf(deps.access, opts, req.hostname), ...(deps.usage ? { usage: (id) => deps.usage!.latestOf(id) } : {}), ...(deps.lifetimes ? { lifetime: (d) => deps.lifetimes!.view(d) } : {}) });
  const view = async (req: FastifyRequest, d: PodDetail) => v2Pod(d, await viewContext(req));

  // Pods
  app.get('/pods', { schema: { ...tags, summary: 'List pods' } }, async (req) => {
    const ctx = await viewContext(req);
    return { pods: (await pods.list(req.caller, {})).map((d) => v2Pod(d, ctx)) };
  });

  app.post('/pods', { schema: { ...tags, summary: 'Create a pod', body: S.V2CreatePod } }, async (req: Req<unknown, unknown, S.V2CreatePodT>, reply) => {
    const ignored = new Ignored();
    const template = req.body.templateId ? await resources.getTemplate(req.caller, req.body.templateId) : undefined;
    const input = fromV2Create(req.body, await store.listNodes(), template, ignored);
    let d: PodDetail;
    try {
      d = await pods.create(req.caller, input, { queueOverQuota: false, refuseUnplaceable: true });
    } catch (e) {
      // v2 answers "no machine can place this" with 400, as it does a broken rule.
      if (e instanceof BerthError && e.kind === 'NO_CAPACITY') throw new BerthError('NO_CAPACITY', e.message, { extra: { ...e.extra, httpStatus: 400 } });
      throw e;
    }
    return reply.code(201).headers(ignored.header()).send(await view(req, d));
  });

  app.get('/pods/:id', { schema: { ...tags, summary: 'Get a pod', params: S.IdParams } }, async (req: IdReq) => view(req, await pods.get(req.caller, req.params.id)));

  app.patch('/pods/:id', { schema: { ...tags, summary: 'Update a pod (any change but the name recreates its containers)', params: S.IdParams, body: S.V2UpdatePod } }, async (req: IdReq<unknown, S.V2UpdatePodT>, reply) => {
    const ignored = new Ignored();
    const current = await pods.get(req.caller, req.params.id);
    const d = await pods.update(req.caller, req.params.id, fromV2Update(req.body, current.spec, ignored));
    return reply.headers(ignored.header()).send(await view(req, d));
  });

  const terminate = async (req: IdReq, reply: FastifyReply) => {
    const d = await pods.get(req.caller, req.params.id);
    if (d.pod.status !== 'TERMINATED') await pods.act(req.caller, d.pod.id, 'terminate');
    return reply.code(204).send();
  };
  app.delete('/pods/:id', { schema: { ...tags, summary: 'Terminate a pod', params: S.IdParams } }, terminate);

  app.post('/pods/:id/action', { schema: { ...tags, summary: 'start | stop | restart | terminate; 409 with the allowed actions when the status forbids it', params: S.IdParams, body: S.V2PodAction } }, async (req: IdReq<unknown, { action: PodAction }>, reply) => {
    const ignored = new Ignored();
    ignored.unknown(req.body as Record<string, unknown>, ['action']);
    const { action } = req.body;
    const d = await pods.get(req.caller, req.params.id);
    const allowed = v2Actions(d.pod.status);
    if (!allowed.includes(action)) {
      throw new BerthError('ACTION_NOT_ALLOWED', `cannot ${action} pod ${d.pod.id} while it is ${d.pod.status}; allowed: ${allowed.join(', ') || 'none'}`, { extra: { podStatus: d.pod.status, actions: allowed } });
    }
    const after = await pods.act(req.caller, d.pod.id, action);
    if (action === 'terminate') return reply.code(204).headers(ignored.header()).send();
    return reply.headers(ignored.header()).send(await view(req, after));
  });

  app.get('/pods/:id/logs', { schema: { ...tags, summary: 'Pod logs as server-sent events', params: S.IdParams, querystring: S.V2Logs } }, async (req: IdReq<LogQuery>, reply) => {
    const d = await pods.get(req.caller, req.params.id);
    await streamPodLogs(req, reply, d, deps.resolver, req.query);
  });

  // Templates
  app.get('/templates', { schema: tags }, async (req) => ({ templates: (await resources.listTemplates(req.caller)).map(v2Template) }));
  app.post('/templates', { schema: { ...tags, body: S.V2CreateTemplate } }, async (req: Req<unknown, unknown, S.V2TemplateT>, reply) => {
    const ignored = new Ignored();
    const t = await resources.createTemplate(req.caller, fromV2Template(req.body, ignored));
    return reply.code(201).headers(ignored.header()).send(v2Template(t));
  });
  app.get('/templates/:id', { schema: { ...tags, params: S.IdParams } }, async (req: IdReq) => v2Template(await resources.getTemplate(req.caller, req.params.id)));
  app.patch('/templates/:id', { schema: { ...tags, params: S.IdParams, body: S.V2UpdateTemplate } }, async (req: IdReq<unknown, S.V2TemplateT>, reply) => {
    const ignored = new Ignored();
    const current = await resources.getTemplate(req.caller, req.params.id);
    const t = await resources.updateTemplate(req.caller, current.id, fromV2Template(req.body, ignored, current));
    return reply.headers(ignored.header()).send(v2Template(t));
  });
  app.delete('/templates/:id', { schema: { ...tags, params: S.IdParams } }, async (req: IdReq, reply) => {
    await resources.deleteTemplate(req.caller, req.params.id);
    return reply.code(204).send();
  });

  // Network volumes: one tier (a Docker volume on the data center's nodes), reported as STANDARD.
  app.get('/network-volumes', { schema: tags }, async (req) => ({ networkVolumes: (await resources.listNetworkVolumes(req.caller)).map(v2NetworkVolume) }));
  app.post('/network-volumes', { schema: { ...tags, body: S.V2CreateNetworkVolume } }, async (req: Req<unknown, unknown, { name: string; size: number; dataCenter: string; type?: string }>, reply) => {
    if (req.body.type === 'HIGH_PERFORMANCE') throw new BerthError('VALIDATION', 'Berth has one network volume tier, STANDARD', { problems: [{ path: '/type', message: 'must be STANDARD' }] });
    const ignored = new Ignored();
    ignored.unknown(req.body as Record<string, unknown>, ['name', 'size', 'dataCenter', 'type']);
    const v = await resources.createNetworkVolume(req.caller, { name: req.body.name, sizeGb: req.body.size, dataCenterId: req.body.dataCenter });
    return reply.code(201).headers(ignored.header()).send(v2NetworkVolume(v));
  });
  app.get('/network-volumes/:id', { schema: { ...tags, params: S.IdParams } }, async (req: IdReq) => v2NetworkVolume(await resources.getNetworkVolume(req.caller, req.params.id)));
  app.patch('/network-volumes/:id', { schema: { ...tags, params: S.IdParams, body: S.V2UpdateNetworkVolume } }, async (req: IdReq<unknown, { name?: string; size?: number }>) =>
    v2NetworkVolume(await resources.updateNetworkVolume(req.caller, req.params.id, { ...(req.body.name !== undefined ? { name: req.body.name } : {}), ...(req.body.size !== undefined ? { sizeGb: req.body.size } : {}) })),
  );
  app.delete('/network-volumes/:id', { schema: { ...tags, params: S.IdParams } }, async (req: IdReq, reply) => {
    await resources.deleteNetworkVolume(req.caller, req.params.id);
    return reply.code(204).send();
  });

  // Registries: write-only credentials.
  app.get('/registries', { schema: tags }, async (req) => ({ registries: (await resources.listRegistryAuths(req.caller)).map(registryView) }));
  app.post('/registries', { schema: { ...tags, body: S.V2CreateRegistry } }, async (req: Req<unknown, unknown, { name: string; username: string; password: string }>, reply) =>
    reply.code(201).send(registryView(await resources.createRegistryAuth(req.caller, req.body))),
  );
  app.get('/registries/:id', { schema: { ...tags, params: S.IdParams } }, async (req: IdReq) => registryView(await resources.getRegistryAuth(req.caller, req.params.id)));
  app.delete('/registries/:id', { schema: { ...tags, params: S.IdParams } }, async (req: IdReq, reply) => {
    await resources.deleteRegistryAuth(req.caller, req.params.id);
    return reply.code(204).send();
  });

  // The account's SSH keys: PUT replaces the whole set. RunPod's account is one user: their own
  // keys, not the other members' (a key of no user for a key acting for none).
  const ownKeys = async (req: FastifyRequest) => (await resources.listSshKeys(req.caller)).filter((k) => (k.user ?? null) === (req.caller.user ?? null));
  const sshKeys = async (req: FastifyRequest) => ({ keys: (await ownKeys(req)).map((k) => k.publicKey) });
  app.get('/account/ssh-keys', { schema: tags }, sshKeys);
  app.put('/account/ssh-keys', { schema: { ...tags, body: S.V2SshKeys } }, async (req: Req<unknown, unknown, { keys: string[] }>) => {
    const essence = (k: string) => k.trim().split(/\s+/).slice(0, 2).join(' ');
    const wanted = new Map(req.body.keys.map((k) => [essence(k), k.trim()]));
    const existing = await ownKeys(req);
    for (const k of existing) if (!wanted.has(essence(k.publicKey))) await resources.removeSshKey(req.caller, k.id);
    const have = new Set(existing.map((k) => essence(k.publicKey)));
    for (const [e, text] of wanted) if (!have.has(e)) await resources.addSshKey(req.caller, { publicKey: text });
    return sshKeys(req);
  });

  // Catalog: what the nodes have.
  const catalogState = async (): Promise<CatalogState> => {
    const [nodes, instances, list] = await Promise.all([store.listNodes(), store.listInstances({}), store.listPods({})]);
    const running = instances.filter((i) => i.goal === 'running' && i.nodeId);
    const specs = new Map(list.map((d) => [d.pod.id as string, d.spec]));
    const cpusUsed = new Map<string, number>();
    for (const i of running) cpusUsed.set(i.nodeId!, (cpusUsed.get(i.nodeId!) ?? 0) + (specs.get(i.podId)?.vcpuCount ?? 0));
    return { nodes, running, cpusUsed };
  };
  const wantsAvailability = (q: S.V2CatalogQueryT): boolean => {
    const include = queryList(q.include) ?? [];
    const bad = include.filter((i) => i !== 'AVAILABILITY');
    if (bad.length) throw new BerthError('VALIDATION', `unknown include ${bad.join(', ')}`, { problems: [{ path: 'query:/include', message: 'must be AVAILABILITY' }] });
    const product = queryList(q.product);
    if (include.length && !product) throw new BerthError('VALIDATION', 'include=AVAILABILITY needs product (POD, SERVERLESS or CLUSTER)', { problems: [{ path: 'query:/product', message: 'is required with include=AVAILABILITY' }] });
    if (!include.length && product) throw new BerthError('VALIDATION', 'product is valid only with include=AVAILABILITY', { problems: [{ path: 'query:/product', message: 'needs include=AVAILABILITY' }] });
    return include.length > 0;
  };
  const gpus = async (q: S.V2CatalogQueryT) => gpuTypes(await catalogState(), opts, { availability: wantsAvailability(q), count: q.count ?? 1 });
  const cpus = async (q: S.V2CatalogQueryT) => cpuTypes(await catalogState(), opts, { availability: wantsAvailability(q), vcpuCount: q.vcpuCount ?? 2 });
  const one = <T extends { id: string }>(list: T[], id: string, what: string): T => {
    const found = list.find((x) => x.id === id);
    if (!found) throw new BerthError('NOT_FOUND', `${what} ${id} not found`, { extra: { id } });
    return found;
  };
  const catalog = { ...tags, querystring: S.V2CatalogQuery };
  app.get('/catalog/gpus', { schema: catalog }, async (req: Req<unknown, S.V2CatalogQueryT>) => ({ gpus: await gpus(req.query) }));
  app.get('/catalog/gpus/:id', { schema: { ...catalog, params: S.IdParams } }, async (req: IdReq<S.V2CatalogQueryT>) => one(await gpus(req.query), req.params.id, 'GPU type'));
  app.get('/catalog/cpus', { schema: catalog }, async (req: Req<unknown, S.V2CatalogQueryT>) => ({ cpus: await cpus(req.query) }));
  app.get('/catalog/cpus/:id', { schema: { ...catalog, params: S.IdParams } }, async (req: IdReq<S.V2CatalogQueryT>) => one(await cpus(req.query), req.params.id, 'CPU type'));
  const centers = async (q: S.V2CatalogQueryT) => {
    const include = queryList(q.include) ?? [];
    const list = dataCenterList(await catalogState(), opts, include);
    const regions = queryList(q.regions);
    return list.filter((d) => (!regions || regions.includes(d.region)) && (q.globalNetwork === undefined || d.globalNetwork === q.globalNetwork));
  };
  app.get('/catalog/datacenters', { schema: catalog }, async (req: Req<unknown, S.V2CatalogQueryT>) => ({ dataCenters: await centers(req.query) }));
  app.get('/catalog/datacenters/:id', { schema: { ...catalog, params: S.IdParams } }, async (req: IdReq<S.V2CatalogQueryT>) => one(await centers({ include: req.query.include }), req.params.id, 'data center'));
  // Berth has no public template catalog: your templates are under /templates.
  app.get('/catalog/templates', { schema: tags }, async () => ({ templates: [] }));

  refuseNotServed(app, [
    ['/serverless', 'Serverless endpoints'],
    ['/clusters', 'Instant Clusters'],
    ['/billing', 'billing'],
  ]);
}
