import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

interface Reply<T = unknown> {
  status: number;
  body: T;
  headers: Headers;
}
interface PodStatus {
  id: string;
  status: string;
  spec: Record<string, unknown> & { version: string; scaling: { instances: number } };
  instances: {
    id: string;
    status: string;
    agentHostname?: string;
    specReference: string;
    containers: { name: string; status: string; conditions: { name: string; value: string }[]; endpoints: { name: string; allocatedHostPort?: number; healthy?: boolean }[] }[];
  }[];
}
interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

/** A GET through Berth's proxy with the pod's host name (`*.localhost` need not resolve here). */
function viaProxy(port: number, host: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const M = '/marathon/v2';
const resources = { cpus: 0.1, mem: 32 };
const image = { kind: 'DOCKER', id: TEST_IMAGE };

/** Two containers in one network namespace: the sidecar's health check reaches the web server on localhost. */
const webPod = {
  id: '/web/duo',
  containers: [
    {
      name: 'web',
      image,
      exec: { command: { shell: 'mkdir -p /www && echo hello-marathon > /www/index.html && exec httpd -f -p 8080 -h /www' } },
      resources,
      endpoints: [{ name: 'http', containerPort: 8080, hostPort: 0, protocol: ['http'] }],
      healthCheck: { http: { endpoint: 'http', path: '/index.html' }, gracePeriodSeconds: 30, intervalSeconds: 2, timeoutSeconds: 1, delaySeconds: 0 },
    },
    {
      name: 'sidecar',
      image,
      exec: { command: { shell: 'exec sleep 3600' } },
      resources,
      healthCheck: { exec: { command: { shell: 'wget -q -O- http://127.0.0.1:8080/index.html | grep -q hello-marathon' } }, gracePeriodSeconds: 30, intervalSeconds: 2, timeoutSeconds: 1, delaySeconds: 0 },
    },
  ],
  networks: [{ mode: 'container/bridge' }],
};

const sleeper = (extra: Record<string, unknown> = {}, container: Record<string, unknown> = {}) => ({
  id: '/batch/sleeper',
  containers: [{ name: 'main', image, exec: { command: { shell: 'exec sleep 3600' } }, resources, ...container }],
  networks: [{ mode: 'container/bridge' }],
  ...extra,
});
/** A version that never becomes healthy within the test, so its deployment holds the pod. */
const neverHealthy = { healthCheck: { exec: { command: { shell: 'false' } }, gracePeriodSeconds: 600, intervalSeconds: 5, timeoutSeconds: 1, delaySeconds: 0 } };

describe('Marathon API on a real server', () => {
  let t: TestServer;
  const events: SseEvent[] = [];
  const stream = new AbortController();

  const m = async <T = unknown>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply<T>> => {
    const res = await fetch(t.url + path, {
      method,
      headers: { authorization: `Bearer ${t.key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // Not JSON: kept as text.
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  };
  const status = (path: string) => m<PodStatus>('GET', `${M}/pods${path}::status`);
  const stable = (path: string, instances = 1) =>
    waitFor(
      `${path} STABLE with ${instances}`,
      async () => {
        const s = await status(path);
        return s.body.status === 'STABLE' && s.body.instances.length === instances && !(await m<{ affectedPods: string[] }[]>('GET', `${M}/deployments`)).body.some((d) => d.affectedPods.includes(path)) ? s.body : undefined;
      },
      90_000,
    );

  /** Reads the event stream into `events` in the background. */
  async function follow(): Promise<void> {
    const res = await fetch(`${t.url}${M}/events`, { headers: { authorization: `Bearer ${t.key}`, accept: 'text/event-stream' }, signal: stream.signal });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    void (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          buffer += decoder.decode(value, { stream: true });
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const frame = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event = /^event: (.*)$/m.exec(frame)?.[1];
            const data = /^data: (.*)$/m.exec(frame)?.[1];
            if (event && data) events.push({ event, data: JSON.parse(data) as Record<string, unknown> });
          }
        }
      } catch {
        // Aborted at the end of the suite.
      }
    })();
    await waitFor('event_stream_attached', async () => (events.some((e) => e.event === 'event_stream_attached') ? true : undefined));
  }

  before(async () => {
    await ensureTestImage();
    t = await startTestServer();
    await follow();
  });
  after(async () => {
    stream.abort();
    await t?.close();
  });

  it('answers at /marathon/v2 and /service/marathon/v2, with an API key as Bearer or as a DC/OS token', async () => {
    const info = await m<{ name: string; version: string; http_config: { http_port: number } }>('GET', `${M}/info`);
    assert.equal(info.status, 200);
    assert.equal(info.body.name, 'marathon');
    assert.match(info.body.version, /^1\.\d+\.\d+$/);
    const dcos = await m<{ name: string }>('GET', '/service/marathon/v2/info', undefined, { authorization: `token=${t.key}` });
    assert.equal(dcos.status, 200);
    assert.equal(dcos.body.name, 'marathon');
    const anonymous = await fetch(`${t.url}${M}/pods`);
    assert.equal(anonymous.status, 401);
    assert.ok(((await anonymous.json()) as { message: string }).message);
    assert.equal((await m('HEAD', `${M}/pods`)).status, 200);
    assert.deepEqual((await m('GET', '/service/marathon/v2/pods')).body, []);
  });

  it("refuses what Marathon refuses, with Marathon's bodies", async () => {
    const bad = await m<{ message: string; details: string }>('POST', `${M}/pods`, '{"id": ');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.message, 'Invalid JSON');
    assert.equal(typeof bad.body.details, 'string');
    const empty = await m<{ message: string }>('POST', `${M}/pods`, '');
    assert.equal(empty.status, 400);
    assert.equal(empty.body.message, 'Please specify data in JSON format');
    const shape = await m('POST', `${M}/pods`, { id: '/x', containers: [{ name: 'Bad_Name', resources }] });
    assert.equal(shape.status, 422);
    assert.deepEqual(shape.body, { message: 'Invalid JSON', details: [{ path: '/containers(0)/name', errors: ['error.pattern'] }] });
    const semantic = await m('POST', '/service/marathon/v2/pods', sleeper({}, { endpoints: [{ name: 'a', hostPort: 9000 }, { name: 'a', hostPort: 9000 }] }));
    assert.equal(semantic.status, 422);
    assert.deepEqual(semantic.body, { message: 'Object is not valid', details: [{ path: '/', errors: ['endpoint names nust be unique across all containers', 'host ports must be unique across all containers'] }] });
    const berth = await m<{ message: string; details: { path: string; errors: string[] }[] }>('POST', `${M}/pods`, sleeper({ volumes: [{ name: 'etc', host: '/etc' }] }, { volumeMounts: [{ name: 'etc', mountPath: '/mnt/etc' }] }));
    assert.equal(berth.status, 422, 'host volumes are off unless the operator allows them');
    assert.equal(berth.body.details[0]?.path, '/volumes(0)/host');
    const missing = await m('GET', `${M}/pods/no/such/pod`);
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.body, { message: "Pod '/no/such/pod' does not exist", details: [] });
    assert.equal((await m('GET', `${M}/pods/no/such/pod::status`)).status, 404);
    const mismatch = await m('PUT', `${M}/pods/foo`, sleeper({ id: '/bla' }));
    assert.equal(mismatch.status, 400);
    assert.deepEqual(mismatch.body, { message: "'/foo' does not match definition's id ('/bla')" });
    assert.equal((await m('GET', `${M}/events`)).status, 405, 'the event stream wants Accept: text/event-stream');
  });

  it('runs a pod of two containers that talk over localhost, and reports it STABLE', async () => {
    const created = await m<Record<string, unknown> & { version: string }>('POST', `${M}/pods`, webPod);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.headers.get('location'), `${M}/pods/web/duo`);
    const deploymentId = created.headers.get('marathon-deployment-id');
    assert.match(deploymentId ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(created.body.id, '/web/duo');
    assert.deepEqual((created.body.scheduling as Record<string, unknown>).backoff, { backoff: 1, backoffFactor: 1.15, maxLaunchDelay: 300 });
    assert.deepEqual((created.body.containers as { resources: unknown }[])[0]!.resources, { cpus: 0.1, mem: 32, disk: 0, gpus: 0 });

    const dup = await m('POST', `${M}/pods`, webPod);
    assert.equal(dup.status, 409);
    assert.deepEqual(dup.body, { message: 'A pod with id [/web/duo] already exists.' });

    const s = await stable('/web/duo');
    const [inst] = s.instances;
    assert.equal(inst!.status, 'STABLE');
    assert.match(inst!.id, /^web_duo\.instance-/);
    assert.equal(inst!.specReference, `/v2/pods/web/duo::versions/${created.body.version}`);
    assert.deepEqual(
      inst!.containers.map((c) => [c.name, c.status, c.conditions.map((k) => `${k.name}=${k.value}`)]),
      [
        ['web', 'TASK_RUNNING', ['healthy=true']],
        ['sidecar', 'TASK_RUNNING', ['healthy=true']],
      ],
      'the sidecar is healthy only if it reached the web server on localhost',
    );
    const endpoint = inst!.containers[0]!.endpoints[0]!;
    assert.equal(endpoint.name, 'http');
    assert.equal(endpoint.healthy, true);
    assert.ok(endpoint.allocatedHostPort, 'the host port the node allocated');
    const page = await waitFor('the web server on its host port', async () => {
      const res = await fetch(`http://${inst!.agentHostname}:${endpoint.allocatedHostPort}/index.html`).catch(() => undefined);
      return res?.ok ? res.text() : undefined;
    });
    assert.equal(page.trim(), 'hello-marathon');

    // The http endpoint is served by the proxy at {podId}-{containerPort}, and the pod's native view links it.
    const native = (await m<{ pods: { id: string; marathonId: string | null }[] }>('GET', '/api/v1/pods')).body.pods.find((p) => p.marathonId === '/web/duo')!;
    const proxyPort = t.server.proxy!.port;
    const url = `http://${native.id}-8080.localhost:${proxyPort}/`;
    const view = await m<{ connection: { http: { port: number; url: string; private: boolean }[] } }>('GET', `/api/v1/pods/${native.id}`);
    assert.deepEqual(view.body.connection.http, [{ port: 8080, url, private: false }]);
    const proxied = await waitFor('the web server through the proxy', async () => {
      const res = await viaProxy(proxyPort, new URL(url).host, '/index.html').catch(() => undefined);
      return res?.status === 200 ? res.body : undefined;
    });
    assert.equal(proxied.trim(), 'hello-marathon');

    const got = await m('GET', `${M}/pods/web/duo`);
    assert.deepEqual(got.body, created.body, 'GET answers with the normalized definition');
    assert.deepEqual(s.spec, created.body);
    assert.deepEqual((await m('GET', `${M}/pods`)).body, [created.body]);
    const all = await m<PodStatus[]>('GET', `${M}/pods/::status`);
    assert.deepEqual(
      all.body.map((p) => [p.id, p.status]),
      [['/web/duo', 'STABLE']],
    );

    const created1 = events.findIndex((e) => e.event === 'pod_created_event' && e.data.uri === '/v2/pods/web/duo');
    const success = events.findIndex((e) => e.event === 'deployment_success' && e.data.id === deploymentId);
    assert.ok(created1 >= 0, 'pod_created_event');
    assert.ok(success > created1, 'deployment_success after pod_created_event');
    assert.ok(events.some((e) => e.event === 'instance_changed_event' && e.data.runSpecId === '/web/duo' && e.data.condition === 'Running'));

    const del = await m('DELETE', `${M}/pods/web/duo`);
    assert.equal(del.status, 202);
    assert.ok(del.headers.get('marathon-deployment-id'));
  });

  it('versions, scales, locks and rolls back a pod through its deployments', async () => {
    const path = '/batch/sleeper';
    const v1 = await m<{ version: string }>('POST', `${M}/pods`, sleeper());
    assert.equal(v1.status, 201);
    await stable(path);

    // A new version and the one before it.
    const v2 = await m<{ version: string }>('PUT', `${M}/pods${path}`, sleeper({ environment: { COLOR: 'blue' } }));
    assert.equal(v2.status, 200);
    assert.ok(v2.headers.get('marathon-deployment-id'));
    await stable(path);
    const versions = await m<string[]>('GET', `${M}/pods${path}::versions`);
    assert.deepEqual(versions.body, [v1.body.version, v2.body.version]);
    const old = await m<Record<string, unknown>>('GET', `${M}/pods${path}::versions/${v1.body.version}`);
    assert.equal(old.status, 200);
    assert.deepEqual(old.body, v1.body);
    assert.equal((await m('GET', `${M}/pods${path}::versions/2001-01-01T00:00:00.000Z`)).status, 404);

    // Scale up and down through scaling.instances.
    assert.equal((await m('PUT', `${M}/pods${path}`, sleeper({ environment: { COLOR: 'blue' }, scaling: { kind: 'fixed', instances: 2 } }))).status, 200);
    const two = await stable(path, 2);
    assert.equal(two.spec.scaling.instances, 2);
    assert.equal((await m('PUT', `${M}/pods${path}`, sleeper({ environment: { COLOR: 'blue' } }))).status, 200);
    await stable(path, 1);

    // A deployment that cannot finish holds the pod: another change is refused, then rolled back.
    const stuck = await m('PUT', `${M}/pods${path}`, sleeper({ environment: { COLOR: 'blue' } }, neverHealthy));
    const held = stuck.headers.get('marathon-deployment-id')!;
    const locked = await m('PUT', `${M}/pods${path}`, sleeper({ environment: { COLOR: 'green' } }));
    assert.equal(locked.status, 409);
    assert.deepEqual(locked.body, {
      message: `App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/${held}'.`,
      deployments: [{ id: held }],
    });
    const listed = await m<{ id: string; affectedPods: string[]; steps: unknown[] }[]>('GET', `${M}/deployments`);
    assert.deepEqual(listed.body.find((d) => d.id === held)?.affectedPods, [path]);
    const rollback = await m<{ deploymentId: string; version: string }>('DELETE', `${M}/deployments/${held}`);
    assert.equal(rollback.status, 200);
    assert.equal(rollback.headers.get('marathon-deployment-id'), rollback.body.deploymentId);
    const back = await stable(path);
    assert.deepEqual(back.spec.environment, { COLOR: 'blue' });
    assert.equal((back.spec.containers as { healthCheck?: unknown }[])[0]!.healthCheck, undefined, 'the version before the stuck one');
    assert.ok(events.some((e) => e.event === 'deployment_failed' && e.data.id === held));

    // force=true takes the pod from a deployment that holds it.
    const stuck2 = await m('PUT', `${M}/pods${path}`, sleeper({}, neverHealthy));
    assert.equal(stuck2.status, 200);
    const forced = await m('PUT', `${M}/pods${path}?force=true`, sleeper({ environment: { COLOR: 'green' } }));
    assert.equal(forced.status, 200);
    await stable(path);

    // A forced cancel stops a deployment where it is, without a rollback.
    const stuck3 = await m<{ version: string }>('PUT', `${M}/pods${path}`, sleeper({ labels: { stuck: 'yes' } }, neverHealthy));
    const third = stuck3.headers.get('marathon-deployment-id')!;
    const stop = await m('DELETE', `${M}/deployments/${third}?force=true`);
    assert.equal(stop.status, 202);
    assert.ok(!(await m<{ id: string }[]>('GET', `${M}/deployments`)).body.some((d) => d.id === third));
    assert.equal((await m<{ version: string }>('GET', `${M}/pods${path}`)).body.version, stuck3.body.version, 'the pod stays at the version it was moving to');
    assert.equal((await m('DELETE', `${M}/deployments/${third}`)).status, 404);

    // Deleted: gone for GET, its history kept for the next pod at the same path.
    const count = (await m<string[]>('GET', `${M}/pods${path}::versions`)).body.length;
    assert.equal((await m('DELETE', `${M}/pods${path}?force=true`)).status, 202);
    assert.equal((await m('GET', `${M}/pods${path}`)).status, 404);
    assert.ok(events.some((e) => e.event === 'pod_deleted_event' && e.data.uri === `/v2/pods${path}`));
    assert.equal((await m('POST', `${M}/pods`, sleeper())).status, 201);
    const history = await m<string[]>('GET', `${M}/pods${path}::versions`);
    assert.equal(history.body.length, count + 1);
    assert.equal(history.body[0], v1.body.version);
    assert.equal((await m('DELETE', `${M}/pods${path}?force=true`)).status, 202);
  });

  it('kills an instance, which comes back under the same id', async () => {
    const path = '/kill/me';
    const put = await m('PUT', `${M}/pods${path}`, sleeper({ id: path }));
    assert.equal(put.status, 200, 'PUT creates a pod that is not there');
    assert.ok(put.headers.get('marathon-deployment-id'));
    const before = await stable(path);
    const id = before.instances[0]!.id;
    const killed = await m<{ instanceId: string; state: { goal: string }; unreachableStrategy: unknown }>('DELETE', `${M}/pods${path}::instances/${id}`);
    assert.equal(killed.status, 200, JSON.stringify(killed.body));
    assert.equal(killed.body.instanceId, id);
    assert.equal(killed.body.state.goal, 'Running');
    assert.deepEqual(killed.body.unreachableStrategy, { inactiveAfterSeconds: 0, expungeAfterSeconds: 0 });
    const after = await stable(path);
    assert.equal(after.instances[0]!.id, id);
    assert.equal((await m('DELETE', `${M}/pods${path}::instances/${path.slice(1).replace('/', '_')}.instance-nope`)).status, 404);
    assert.equal((await m('DELETE', `${M}/pods${path}::instances/not-an-instance-id`)).status, 422);
    const many = await m<{ instanceId: string }[]>('DELETE', `${M}/pods${path}::instances`, [id, 'kill_me.instance-unknown-9']);
    assert.equal(many.status, 200);
    assert.deepEqual(
      many.body.map((i) => i.instanceId),
      [id],
      'unknown ids are left out',
    );
    await stable(path);
    assert.equal((await m('DELETE', `${M}/pods${path}`)).status, 202);
  });

  it('queues a pod no node may take, with the reason', async () => {
    const path = '/waits/forever';
    // A stream that asked for one event type hears nothing else.
    const filtered = new AbortController();
    const res = await fetch(`${t.url}${M}/events?event_type=pod_created_event`, { headers: { authorization: `Bearer ${t.key}`, accept: 'text/event-stream' }, signal: filtered.signal });
    const first = (async () => {
      const reader = res.body!.getReader();
      let text = '';
      // Up to the first event; keep-alive comments (`:`) are not events.
      while (!/^event: .*\n.*\n\n/m.test(text)) text += new TextDecoder().decode((await reader.read()).value);
      return text.slice(text.indexOf('event: '));
    })();
    const created = await m('POST', `${M}/pods`, sleeper({ id: path, scheduling: { placement: { constraints: [{ fieldName: 'rack', operator: 'CLUSTER', value: 'r9' }] } } }));
    assert.equal(created.status, 201);
    const frame = await first;
    filtered.abort();
    assert.match(frame, /^event: pod_created_event\ndata: /);
    assert.equal((JSON.parse(frame.split('data: ')[1]!) as { uri: string }).uri, `/v2/pods${path}`);
    const queue = await waitFor('the queue entry', async () => {
      const q = await m<{ queue: { pod: { id: string }; count: number; processedOffersSummary: { rejectSummaryLastOffers: { reason: string }[] } }[] }>('GET', `${M}/queue`);
      return q.body.queue.find((e) => e.pod.id === path);
    });
    assert.equal(queue.count, 1);
    assert.deepEqual(
      queue.processedOffersSummary.rejectSummaryLastOffers.map((r) => r.reason),
      ['UnfulfilledConstraint'],
      JSON.stringify(queue),
    );
    const s = await status(path);
    assert.equal(s.body.status, 'DEGRADED');
    assert.equal(s.body.instances[0]!.status, 'PENDING');
    assert.equal((await m('DELETE', `${M}/pods${path}?force=true`)).status, 202);
  });

  it('says why a pod cannot start: its status, its instances, the queue and the event stream', async () => {
    const path = '/broken/pull';
    // Nothing listens on port 1: the pull fails at once, again after each backoff.
    const created = await m('POST', `${M}/pods`, sleeper({ id: path }, { image: { kind: 'DOCKER', id: '127.0.0.1:1/berth-test/nothing:1' } }));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    // The agent's words for it may change; they name the image.
    const pullFailed = /127\.0\.0\.1:1\/berth-test\/nothing:1/;
    const failing = await waitFor('the pull failure in the status', async () => {
      const s = await m<PodStatus & { message?: string; instances: { message?: string }[] }>('GET', `${M}/pods${path}::status`);
      return s.body.instances[0]?.status === 'TERMINAL' ? s.body : undefined;
    }, 60_000);
    assert.equal(failing.status, 'DEGRADED');
    assert.match(failing.message ?? '', pullFailed, 'the pod says why');
    assert.match(failing.instances[0]!.message ?? '', pullFailed, 'the instance says why');
    assert.deepEqual(
      failing.instances[0]!.containers.map((c) => c.status),
      ['TASK_FAILED'],
    );

    const entry = await waitFor('the queue entry', async () => {
      const q = await m<{ queue: { pod: { id: string }; count: number; delay: { timeLeftSeconds: number; overdue: boolean }; message?: string }[] }>('GET', `${M}/queue`);
      return q.body.queue.find((e) => e.pod.id === path);
    }, 60_000);
    assert.equal(entry.count, 1);
    assert.match(entry.message ?? '', pullFailed);
    assert.equal(typeof entry.delay.timeLeftSeconds, 'number');
    assert.equal(entry.delay.overdue, entry.delay.timeLeftSeconds === 0);

    const update = await waitFor('a status_update_event saying why', async () =>
      events.find((e) => e.event === 'status_update_event' && e.data.appId === path && e.data.taskStatus === 'TASK_FAILED'),
    );
    assert.match(String(update.data.message), pullFailed);
    assert.match(String(update.data.taskId), /^broken_pull\.instance-.*\.main$/);
    assert.ok(events.some((e) => e.event === 'instance_changed_event' && e.data.runSpecId === path && e.data.condition === 'Failed'));
    assert.equal((await m('DELETE', `${M}/pods${path}?force=true`)).status, 202);
  });

  it("keeps owners apart: pods, lists and events of another owner's key are not seen", async () => {
    const made = await m<{ key: string }>('POST', '/api/v1/keys', { name: 'alice', owner: 'alice' });
    assert.equal(made.status, 201);
    const alice = { authorization: `Bearer ${made.body.key}` };
    const unplaceable = { scheduling: { placement: { constraints: [{ fieldName: 'rack', operator: 'CLUSTER', value: 'r9' }] } } };
    const res = await fetch(`${t.url}${M}/events?event_type=pod_created_event`, { headers: { ...alice, accept: 'text/event-stream' } });
    const reader = res.body!.getReader();
    assert.equal((await m('POST', `${M}/pods`, sleeper({ id: '/admin/only', ...unplaceable }))).status, 201);
    assert.equal((await m('POST', `${M}/pods`, sleeper({ id: '/alice/own', ...unplaceable }), alice)).status, 201);
    let text = '';
    while (!/^event: .*\n.*\n\n/m.test(text)) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    assert.match(text, /"uri":"\/v2\/pods\/alice\/own"/, "alice hears of her pod first, not of the admin's");
    assert.deepEqual(
      (await m<{ id: string }[]>('GET', `${M}/pods`, undefined, alice)).body.map((p) => p.id),
      ['/alice/own'],
    );
    assert.equal((await m('GET', `${M}/pods/admin/only`, undefined, alice)).status, 404);
    const all = (await m<{ id: string }[]>('GET', `${M}/pods`)).body.map((p) => p.id);
    assert.ok(all.includes('/alice/own') && all.includes('/admin/only'), 'an admin key sees every pod');
    assert.equal((await m('DELETE', `${M}/pods/alice/own?force=true`, undefined, alice)).status, 202);
    assert.equal((await m('DELETE', `${M}/pods/admin/only?force=true`)).status, 202);
  });
});
