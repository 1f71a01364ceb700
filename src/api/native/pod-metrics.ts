import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { BerthError, summarizeUsage, type PodId } from '../../model/index.js';
import type { ApiDeps } from '../server.js';

const MetricsQuery = Type.Object({
  since: Type.Optional(Type.String({ description: 'an ISO time, or a duration back from now: `90s`, `30m`, `6h`, `1d`. @default 1h; the history keeps 24 h' })),
});

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `since` as an ISO time: an ISO time as given, or a duration back from `now`. */
export function parseSince(since: string | undefined, now = Date.now()): string {
  if (since === undefined || since === '') return new Date(now - 3_600_000).toISOString();
  const d = /^(\d+(?:\.\d+)?)([smhd])$/.exec(since.trim());
  if (d) return new Date(now - Number(d[1]) * UNITS[d[2]!]!).toISOString();
  const t = Date.parse(since);
  if (Number.isNaN(t)) throw new BerthError('VALIDATION', `since "${since}" is neither an ISO time nor a duration like 30m`, { problems: [{ path: 'query:/since', message: 'must be an ISO time or a duration (90s, 30m, 6h, 1d)' }] });
  return new Date(t).toISOString();
}

/** The pod's latest usage for its views: a summary and each instance's sample; null when nothing runs or nothing was measured. */
export function podUsageView(deps: Pick<ApiDeps, 'usage'>, podId: PodId) {
  const latest = deps.usage?.latestOf(podId) ?? [];
  const summary = summarizeUsage(latest);
  return summary ? { ...summary, instances: latest } : null;
}

/** `GET /api/v1/pods/{id}/metrics`: the latest usage and the history (one sample per instance per minute); `GET /api/v1/usage`: the latest of all my running pods. */
export async function registerPodMetricsRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.get('/usage', { schema: { tags: ['pods'], summary: "The latest usage of the caller's running pods (an admin's: everyone's), for `berth pod top`" } }, async (req) => {
    const running = await deps.pods.list(req.caller, { status: ['RUNNING'] });
    return { pods: running.map((d) => ({ id: d.pod.id, name: d.pod.name, owner: d.pod.owner, status: d.pod.status, gpuCount: d.spec.gpuCount, usage: podUsageView(deps, d.pod.id) })) };
  });

  app.get(
    '/pods/:id/metrics',
    {
      schema: {
        tags: ['pods'],
        summary: "A pod's usage: the latest sample of each running instance and the history since `since` (one sample per instance per minute, kept 24 h)",
        params: Type.Object({ id: Type.String() }),
        querystring: MetricsQuery,
      },
    },
    async (req: FastifyRequest<{ Params: { id: string }; Querystring: Static<typeof MetricsQuery> }>) => {
      const since = parseSince(req.query.since);
      const d = await deps.pods.get(req.caller, req.params.id);
      const samples = deps.usage ? await deps.usage.history(d.pod.id, since) : [];
      return {
        podId: d.pod.id,
        status: d.pod.status,
        since,
        resolutionSeconds: 60,
        latest: podUsageView(deps, d.pod.id),
        samples: samples.map((s) => ({ instanceId: s.instanceId, nodeId: s.nodeId, ...s.usage })),
      };
    },
  );
}
