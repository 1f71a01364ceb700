import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import type { PodView } from './support/pod-view.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

const WEB = ['sh', '-c', 'mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www'];
/** Small timings: a check every 2 s, 1 s to answer, failures counted from the start. */
const FAST = { delaySeconds: 0, intervalSeconds: 2, timeoutSeconds: 1, gracePeriodSeconds: 0 };

describe('health checks run by the agent', () => {
  let t: TestServer;
  before(async () => {
    await ensureTestImage();
    t = await startTestServer();
  });
  after(async () => t?.close());

  const get = async (id: string) => (await t.api<PodView>('GET', `/api/v1/pods/${id}`)).body;
  const container = (p: PodView, name: string) => p.instances[0]?.containers.find((c) => c.name === name);

  it('reports passing http and exec checks as healthy', async () => {
    const created = await t.api<PodView>('POST', '/api/v1/pods', {
      name: 'healthy',
      volumeGb: 0,
      containers: [
        { name: 'web', image: TEST_IMAGE, command: WEB, endpoints: [{ name: 'http', containerPort: 8080 }], healthCheck: { kind: 'http', endpoint: 'http', path: '/index.html', maxConsecutiveFailures: 3, ...FAST } },
        { name: 'side', image: TEST_IMAGE, command: ['sleep', '3600'], healthCheck: { kind: 'exec', argv: ['sh', '-c', 'test -d /tmp'], maxConsecutiveFailures: 3, ...FAST } },
        { name: 'plain', image: TEST_IMAGE, command: ['sleep', '3600'] },
      ],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    const pod = await waitFor(
      'both checks healthy',
      async () => {
        const p = await get(id);
        return container(p, 'web')?.healthy === true && container(p, 'side')?.healthy === true ? p : undefined;
      },
      30_000,
    );
    assert.equal(pod.status, 'RUNNING');
    assert.equal(container(pod, 'web')?.healthFailures, 0);
    assert.equal(container(pod, 'plain')?.healthy, undefined, 'a container without a check has no verdict');
    await t.api('POST', `/api/v1/pods/${id}/terminate`);
  });

  it('replaces the whole instance when a check keeps failing', async () => {
    const created = await t.api<PodView>('POST', '/api/v1/pods', {
      name: 'unhealthy',
      volumeGb: 0,
      backoff: { initialSeconds: 0.5 },
      containers: [
        // Nothing listens on 9999.
        { name: 'web', image: TEST_IMAGE, command: WEB, endpoints: [{ name: 'dead', containerPort: 9999 }], healthCheck: { kind: 'http', endpoint: 'dead', maxConsecutiveFailures: 2, ...FAST } },
        { name: 'side', image: TEST_IMAGE, command: ['sleep', '3600'] },
      ],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    const first = await waitFor('running', async () => {
      const p = await get(id);
      return p.status === 'RUNNING' && p.instances[0]?.containers.every((c) => c.containerId) ? p : undefined;
    });
    const before = first.instances[0]!.containers.map((c) => c.containerId);
    const messages = new Set<string>();
    let failuresSeen = 0;
    await waitFor(
      'every container replaced',
      async () => {
        const p = await get(id);
        if (p.instances[0]?.message) messages.add(p.instances[0].message);
        failuresSeen = Math.max(failuresSeen, container(p, 'web')?.healthFailures ?? 0);
        const ids = p.instances[0]?.containers.map((c) => c.containerId) ?? [];
        return ids.length === 2 && ids.every((x) => x && !before.includes(x)) ? p : undefined;
      },
      40_000,
    );
    assert.ok(failuresSeen >= 1, 'failed checks were reported');
    assert.ok(
      [...messages].some((m) => /container web failed 2 health checks in a row; replacing the instance/.test(m)),
      `the reason was reported: ${[...messages].join(' | ')}`,
    );
    await t.api('POST', `/api/v1/pods/${id}/terminate`);
  });

  it('replaces a single-container pod on failing tcp checks too', async () => {
    const created = await t.api<PodView>('POST', '/api/v1/pods', {
      name: 'lonely',
      volumeGb: 0,
      backoff: { initialSeconds: 0.5 },
      containers: [{ name: 'main', image: TEST_IMAGE, command: ['sleep', '3600'], endpoints: [{ name: 'db', containerPort: 5432 }], healthCheck: { kind: 'tcp', endpoint: 'db', maxConsecutiveFailures: 1, ...FAST } }],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    const first = await waitFor('running', async () => {
      const p = await get(id);
      return p.status === 'RUNNING' && container(p, 'main')?.containerId ? p : undefined;
    });
    const before = container(first, 'main')!.containerId;
    await waitFor(
      'the container replaced',
      async () => {
        const c = container(await get(id), 'main');
        return c?.containerId && c.containerId !== before ? c : undefined;
      },
      30_000,
    );
    await t.api('POST', `/api/v1/pods/${id}/terminate`);
  });
});
