// Thousands of malformed requests over the OpenAPI document the server serves and the RunPod and
// Marathon routes, on SQLite and (when BERTH_TEST_DATABASE_URL names one) PostgreSQL: no answer is
// a 5xx, nothing a refused request sent is stored, and /healthz answers throughout (issue 15).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BAD_IDS, BAD_QUERY, bodyText, CORE_BAD, CORE_BAD_QUERY, fullSample, mutate, pathsOf, pick, rng, sample, setAt, type Rand, type Schema } from './support/fuzz.js';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { waitFor, type TestServer } from './support/server.js';
import { storesToTest, type StoreServer } from './support/stores.js';

const SEED = Number(process.env.BERTH_FUZZ_SEED ?? 15);
/** Random requests, after the targeted ones (one bad value in one place of each operation, at most `TARGETED` in all). */
const REQUESTS = Number(process.env.BERTH_FUZZ_REQUESTS ?? 1500);
const TARGETED = Number(process.env.BERTH_FUZZ_TARGETED ?? 2500);
const CONCURRENCY = 8;

interface Op {
  method: string;
  /** With `{name}` for each path parameter. */
  path: string;
  query?: Schema;
  body?: Schema;
}

/** Routes the OpenAPI document hides: RunPod's and Marathon's, as their clients call them. */
const HIDDEN: Op[] = [
  { method: 'GET', path: '/runpod/v2/pods' },
  { method: 'POST', path: '/runpod/v2/pods', body: { type: 'object', properties: { name: {}, imageName: {}, gpuCount: { type: 'integer' }, volumeInGb: { type: 'integer' }, containerDiskInGb: { type: 'integer' }, ports: { type: 'array', items: {} }, env: { type: 'object' } } } },
  { method: 'GET', path: '/runpod/v2/pods/{id}' },
  { method: 'PATCH', path: '/runpod/v2/pods/{id}', body: { type: 'object', properties: { name: {}, imageName: {}, volumeInGb: { type: 'integer' } } } },
  { method: 'POST', path: '/runpod/v2/pods/{id}/stop' },
  { method: 'POST', path: '/runpod/v2/pods/{id}/start' },
  { method: 'DELETE', path: '/runpod/v2/pods/{id}' },
  { method: 'GET', path: '/runpod/v2/networkvolumes' },
  { method: 'POST', path: '/runpod/v2/networkvolumes', body: { type: 'object', properties: { name: {}, size: { type: 'integer' }, dataCenterId: {} } } },
  { method: 'GET', path: '/runpod/v2/templates' },
  { method: 'POST', path: '/runpod/v2/templates', body: { type: 'object', properties: { name: {}, imageName: {}, containerDiskInGb: { type: 'integer' }, readme: {} } } },
  { method: 'GET', path: '/runpod/v1/pods', query: { type: 'object', properties: { id: {}, limit: { type: 'integer' } } } },
  { method: 'POST', path: '/runpod/v1/pods', body: { type: 'object', properties: { name: {}, imageName: {}, gpuCount: { type: 'integer' }, cloudType: {} } } },
  { method: 'GET', path: '/v2/pods' },
  { method: 'POST', path: '/v2/pods', body: { type: 'object', properties: { id: {}, containers: { type: 'array', items: { type: 'object', properties: { name: {}, resources: { type: 'object', properties: { cpus: { type: 'number' }, mem: { type: 'number' } } }, image: { type: 'object', properties: { id: {}, kind: {} } }, exec: { type: 'object' } } } }, scaling: { type: 'object', properties: { instances: { type: 'integer' } } } } } },
  { method: 'GET', path: '/v2/pods/{id}' },
  { method: 'GET', path: '/v2/pods/{id}::status' },
  { method: 'GET', path: '/v2/pods/{id}::versions' },
  { method: 'PUT', path: '/v2/pods/{id}', body: { type: 'object', properties: { id: {}, containers: { type: 'array' } } } },
  { method: 'DELETE', path: '/v2/pods/{id}' },
  { method: 'GET', path: '/v2/deployments' },
  { method: 'DELETE', path: '/v2/deployments/{id}' },
  { method: 'GET', path: '/v2/queue' },
];

/** Every operation of the served document, with its query and body schemas. */
function opsOf(doc: { paths: Record<string, Record<string, { parameters?: { in: string; name: string; schema: Schema }[]; requestBody?: { content?: Record<string, { schema: Schema }> } }>> }): Op[] {
  const out: Op[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      // WebSockets, and the agents' long poll (which answers when it is due), are left to their own tests.
      if (path.endsWith('/terminal') || path.endsWith('/port-forward') || path.endsWith('/agent/watch')) continue;
      const query = op.parameters?.filter((p) => p.in === 'query');
      out.push({
        method: method.toUpperCase(),
        path,
        ...(query?.length ? { query: { type: 'object', properties: Object.fromEntries(query.map((p) => [p.name, p.schema])) } } : {}),
        ...(op.requestBody?.content?.['application/json'] ? { body: op.requestBody.content['application/json'].schema } : {}),
      });
    }
  }
  return out;
}

interface Outcome {
  method: string;
  url: string;
  status: number;
  body: string;
}

function requestOf(r: Rand, op: Op, podId: string): { method: string; url: string; body?: string } {
  const path = op.path.replace(/\{[^}]+\}/g, () => (r() < 0.3 ? podId : pick(r, BAD_IDS)));
  const params: string[] = [];
  if (op.query?.properties) {
    for (const name of Object.keys(op.query.properties)) if (r() < 0.5) params.push(`${name}=${pick(r, BAD_QUERY)}`);
  }
  if (r() < 0.1) params.push(`${pick(r, ['limit', 'since', 'tail', 'after', 'cursor'])}=${pick(r, BAD_QUERY)}`);
  const url = path + (params.length ? `?${params.join('&')}` : '');
  if (!['POST', 'PUT', 'PATCH'].includes(op.method)) return { method: op.method, url };
  const base = sample(r, op.body ?? { type: 'object' });
  const body = r() < 0.03 ? `{"a":"${'y'.repeat(2 ** 20 + 10)}"}` : r() < 0.03 ? '{not json' : bodyText(mutate(r, base));
  return { method: op.method, url, body };
}

/**
 * One bad value at a time, everything else plausible, against the running pod: the bad value, not
 * another field, is what reaches the handler. Each query parameter gets each bad query value; body
 * places (to depth 4) get a bad value each, drawn at random, up to `TARGETED` requests in all.
 * Operations that read or run in the pod come first, those that change or end it last.
 */
function targetedOf(r: Rand, ops: Op[], podId: string): { method: string; url: string; body?: string }[] {
  const rank = (op: Op) => (/\/(exec|logs)$/.test(op.path) ? 0 : op.method === 'DELETE' || /(terminate|stop|reset|restart)$/.test(op.path) ? 2 : 1);
  const out: { method: string; url: string; body?: string }[] = [];
  const bodies: { method: string; url: string; body?: string }[] = [];
  for (const op of [...ops].sort((a, b) => rank(a) - rank(b))) {
    const path = op.path.replace(/\{[^}]+\}/g, podId);
    for (const name of Object.keys(op.query?.properties ?? {})) for (const v of CORE_BAD_QUERY) out.push({ method: op.method, url: `${path}?${name}=${v}` });
    if (!['POST', 'PUT', 'PATCH'].includes(op.method)) continue;
    const base = fullSample(r, op.body ?? { type: 'object' });
    for (const at of pathsOf(base)) bodies.push({ method: op.method, url: path, body: bodyText(setAt(base, at, pick(r, CORE_BAD))) });
  }
  // Spread over the operations when there are more places than room, keeping their order.
  const keep = Math.max(0, TARGETED - out.length);
  const step = bodies.length / Math.max(1, keep);
  for (let i = 0; i < Math.min(keep, bodies.length); i++) out.push(bodies[Math.floor(i * step)]!);
  return out.sort((a, b) => rank({ method: a.method, path: a.url.split('?')[0]! }) - rank({ method: b.method, path: b.url.split('?')[0]! }));
}

async function send(t: TestServer, req: { method: string; url: string; body?: string }): Promise<Outcome> {
  const res = await fetch(t.url + req.url, {
    method: req.method,
    headers: { authorization: `Bearer ${t.key}`, ...(req.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(req.body !== undefined ? { body: req.body } : {}),
    signal: AbortSignal.timeout(5_000),
  });
  // Streams (logs with follow, events) answer their status at once and then stay open: read a little.
  let body = '';
  try {
    body = res.headers.get('content-type')?.startsWith('text/event-stream') ? '' : (await res.text()).slice(0, 64 * 1024);
  } catch {
    // timed out reading a stream: its status is what counts
  }
  if (res.body && !res.bodyUsed) await res.body.cancel().catch(() => undefined);
  return { method: req.method, url: req.url.slice(0, 200), status: res.status, body };
}

/** Ids of everything of a kind the server lists. */
async function listed(t: TestServer): Promise<Set<string>> {
  const ids = new Set<string>();
  const pods = await t.api<{ pods: { id: string }[] }>('GET', '/api/v1/pods?includeTerminated=true');
  for (const p of pods.body.pods) ids.add(p.id);
  const volumes = await t.api<{ networkVolumes: { id: string }[] }>('GET', '/api/v1/network-volumes');
  for (const v of volumes.body.networkVolumes) ids.add(v.id);
  const templates = await t.api<{ templates: { id: string }[] }>('GET', '/api/v1/templates');
  for (const x of templates.body.templates) ids.add(x.id);
  const keys = await t.api<{ keys: { id: string }[] }>('GET', '/api/v1/keys');
  for (const k of keys.body.keys) ids.add(k.id);
  return ids;
}

function fuzzSuite(open: () => Promise<StoreServer>): void {
  let t: TestServer;
  let cleanup: () => Promise<void>;
  let podId: string;
  before(async () => {
    await ensureTestImage();
    ({ t, cleanup } = await open());
    const created = await t.api<{ id: string }>('POST', '/api/v1/pods', { name: 'target', image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0, containerDiskGb: 1 });
    assert.equal(created.status, 201);
    podId = created.body.id;
    await waitFor('the target pod to run', async () => ((await t.api<{ status: string }>('GET', `/api/v1/pods/${podId}`)).body.status === 'RUNNING' ? true : undefined), 60_000);
  });
  after(async () => {
    await cleanup?.();
  });

  it(`answers ${TARGETED} targeted and ${REQUESTS} random malformed requests without a 5xx, stores nothing refused, and stays healthy`, async (ctx) => {
    const doc = (await t.api<Parameters<typeof opsOf>[0]>('GET', '/api/v1/openapi.json')).body;
    const ops = [...opsOf(doc), ...HIDDEN];
    assert.ok(ops.length > 40, `the document lists ${ops.length} operations`);
    const before = await listed(t);
    const r = rng(SEED);
    const requests = [...targetedOf(r, ops, podId), ...Array.from({ length: REQUESTS }, () => requestOf(r, pick(r, ops), podId))];
    const failures: Outcome[] = [];
    const created = new Set<string>();
    const statuses = new Map<number, number>();
    let next = 0;
    let marathonWrites = 0;
    const worker = async (): Promise<void> => {
      while (next < requests.length) {
        const req = requests[next++]!;
        let o: Outcome;
        try {
          o = await send(t, req);
        } catch (e) {
          o = { method: req.method, url: req.url.slice(0, 200), status: 599, body: String(e) };
        }
        statuses.set(o.status, (statuses.get(o.status) ?? 0) + 1);
        if (o.status >= 500) failures.push({ ...o, body: o.body.slice(0, 300) });
        // What a request that was accepted made: its id is allowed to be listed after.
        if (o.status < 300) for (const m of o.body.matchAll(/"id":"([^"]+)"/g)) created.add(m[1]!);
        // Marathon answers with the path id, not the pod's: counted instead.
        if (o.status < 300 && o.url.startsWith('/v2/pods') && (o.method === 'POST' || o.method === 'PUT')) marathonWrites++;
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const health = await fetch(`${t.url}/healthz`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(health.status, 200);
    assert.deepEqual(failures.slice(0, 10), [], `${failures.length} answers were 5xx; statuses: ${JSON.stringify([...statuses])}`);
    // Nothing refused left anything behind: every object listed now was there before or came from a 2xx.
    const stray = [...(await listed(t))].filter((id) => !before.has(id) && !created.has(id));
    assert.ok(stray.length <= marathonWrites, `objects listed that no accepted request created: ${stray.join(', ')}`);
    // Most requests are refused, as they should be; a run where none are says the generator broke.
    const refused = [...statuses].filter(([s]) => s >= 400 && s < 500).reduce((n, [, c]) => n + c, 0);
    ctx.diagnostic(`seed ${SEED}, ${ops.length} operations, statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}, ${created.size} ids created`);
    assert.ok(refused > requests.length / 2, `only ${refused} of ${requests.length} refused: ${JSON.stringify([...statuses])}`);
  });
}

for (const store of storesToTest()) {
  describe(`fuzz on ${store.name}`, () => fuzzSuite(() => store.open()));
}
if (!process.env.BERTH_TEST_DATABASE_URL) {
  describe('fuzz on PostgreSQL', { skip: 'set BERTH_TEST_DATABASE_URL (scripts/setup.sh: ensure_postgres) to fuzz on PostgreSQL' }, () => {});
}
