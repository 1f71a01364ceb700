// Issue 15's findings, one by one, on SQLite and PostgreSQL: each was a 5xx or a wedged pod, and
// each is a 4xx now, with the pod and the server still usable after.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LIMITS } from '../src/model/index.js';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { waitFor, type TestServer } from './support/server.js';
import { storesToTest, type StoreServer } from './support/stores.js';

interface PodView {
  id: string;
  status: string;
  specVersion: number;
}

/** A raw request: the body as given, not JSON-encoded by the helper. */
async function raw(t: TestServer, method: string, path: string, body?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(t.url + path, {
    method,
    headers: { authorization: `Bearer ${t.key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

interface VersionPage {
  versions: { version: number }[];
  next: string | null;
}

const is4xx = (status: number, what: string) => assert.ok(status >= 400 && status < 500, `${what}: answered ${status}`);

for (const store of storesToTest()) {
  describe(`bad input on ${store.name}`, () => {
    let s: StoreServer;
    let t: TestServer;
    let podId: string;
    before(async () => {
      await ensureTestImage();
      s = await store.open();
      t = s.t;
      const created = await t.api<PodView>('POST', '/api/v1/pods', { name: 'target', image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0, containerDiskGb: 1 });
      assert.equal(created.status, 201);
      podId = created.body.id;
      await waitFor('the pod to run', async () => ((await t.api<PodView>('GET', `/api/v1/pods/${podId}`)).body.status === 'RUNNING' ? true : undefined), 60_000);
    });
    after(async () => {
      await s?.cleanup();
    });

    it('refuses numbers no column holds: limit=1e309, sizeGb 1e308, a raw 1e309', async () => {
      for (const q of ['1e309', 'Infinity', '99999999999999999999', 'NaN']) is4xx((await raw(t, 'GET', `/api/v1/pods?limit=${q}`)).status, `limit=${q}`);
      is4xx((await raw(t, 'POST', '/api/v1/network-volumes', '{"name":"v","sizeGb":1e308}')).status, 'sizeGb 1e308');
      is4xx((await raw(t, 'POST', '/api/v1/pods', `{"image":"${TEST_IMAGE}","gpuCount":1e309}`)).status, 'gpuCount 1e309');
      is4xx((await raw(t, 'POST', '/runpod/v2/networkvolumes', '{"name":"v","size":1e308,"dataCenterId":"local"}')).status, 'RunPod size 1e308');
    });

    it('refuses JSON nested past the limit before anything walks it', async () => {
      const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
      for (const path of ['/api/v1/pods', '/api/v1/templates', '/runpod/v2/pods', '/v2/pods']) {
        const res = await raw(t, 'POST', path, `{"name":${deep},"env":{"A":${deep}}}`);
        is4xx(res.status, `deep JSON to ${path}`);
      }
      const page = await raw(t, 'POST', '/api/v1/pods', `{"labels":${'{"a":'.repeat(LIMITS.jsonDepth + 1)}1${'}'.repeat(LIMITS.jsonDepth + 1)}}`);
      assert.equal(page.status, 400);
      assert.match(String(page.body.detail), /deeper than/);
    });

    it('checks shapes before use: volumeMounts as an object', async () => {
      const res = await t.api<{ problems: { path: string }[] }>('POST', '/api/v1/pods', { containers: [{ name: 'a', image: TEST_IMAGE, volumeMounts: {} }] });
      assert.equal(res.status, 400);
      assert.ok(res.body.problems.some((p) => p.path.includes('volumeMounts')));
    });

    it('refuses a body over the size limit with 413', async () => {
      const res = await raw(t, 'POST', '/api/v1/templates', JSON.stringify({ name: 't', readme: 'x'.repeat(LIMITS.bodyBytes) }));
      assert.equal(res.status, 413);
    });

    it('refuses NUL bytes in path ids (404), queries and JSON strings (400), and long owner names', async () => {
      assert.equal((await raw(t, 'GET', '/api/v1/pods/abc%00def')).status, 404);
      is4xx((await raw(t, 'GET', `/api/v1/pods/${'x'.repeat(300)}`)).status, 'a 300-character id');
      assert.equal((await raw(t, 'GET', '/api/v1/pods/not-a-pod-id')).status, 404);
      assert.equal((await raw(t, 'GET', '/api/v1/templates/a%00')).status, 404);
      is4xx((await raw(t, 'GET', '/runpod/v2/pods/a%00b')).status, 'RunPod NUL id');
      is4xx((await raw(t, 'GET', '/v2/pods/a%00b')).status, 'Marathon NUL id');
      assert.equal((await raw(t, 'GET', '/api/v1/pods?name=a%00b')).status, 400);
      assert.equal((await t.api('POST', '/api/v1/templates', { name: 'a\u0000b' })).status, 400);
      assert.equal((await t.api('POST', '/api/v1/pods', { image: TEST_IMAGE, env: { A: 'a\u0000b' } })).status, 400);
      assert.equal((await t.api('POST', '/api/v1/keys', { name: 'k', owner: 'o'.repeat(256 * 1024) })).status, 400);
      assert.equal((await t.api('POST', '/api/v1/keys', { name: 'n'.repeat(256 * 1024) })).status, 400);
      assert.equal((await t.api('POST', '/runpod/v2/templates', { name: 'n'.repeat(256 * 1024), imageName: TEST_IMAGE })).status >= 500, false);
      // None of it was stored.
      const templates = await t.api<{ templates: unknown[] }>('GET', '/api/v1/templates');
      assert.equal(templates.body.templates.length, 0);
    });

    it('checks logs `since` and exec timeouts before Docker sees them', async () => {
      assert.equal((await raw(t, 'GET', `/api/v1/pods/${podId}/logs?since=99999999999999999999`)).status, 400);
      assert.equal((await raw(t, 'POST', `/api/v1/pods/${podId}/exec`, '{"command":["true"],"timeoutSeconds":"Infinity"}')).status, 400);
      assert.equal((await raw(t, 'POST', `/api/v1/pods/${podId}/exec`, '{"command":["true"],"timeoutSeconds":1e309}')).status, 400);
      is4xx((await raw(t, 'GET', `/runpod/v2/pods/${podId}/logs?since=99999999999999999999`)).status, 'RunPod logs since');
    });

    it('refuses a 256 KiB exec argument with a 4xx naming the limit; the pod still execs and terminates', async () => {
      const big = await t.api<{ detail: string; problems: { path: string }[] }>('POST', `/api/v1/pods/${podId}/exec`, { command: ['echo', 'x'.repeat(256 * 1024)] });
      assert.equal(big.status, 400);
      assert.match(big.body.detail, /longer than \d+ characters|at most \d+/);
      const justOver = await t.api<{ detail: string }>('POST', `/api/v1/pods/${podId}/exec`, { command: ['echo', 'x'.repeat(LIMITS.execArgBytes + 1)] });
      assert.equal(justOver.status, 400);
      assert.match(justOver.body.detail, new RegExp(String(LIMITS.execArgBytes)));
      // Just under the limit runs, and the pod is not wedged.
      const under = await t.api<{ exitCode: number; stdout: string }>('POST', `/api/v1/pods/${podId}/exec`, { command: ['sh', '-c', 'echo ${#1}', 'x', 'y'.repeat(LIMITS.execArgBytes - 100)], timeoutSeconds: 20 });
      assert.equal(under.status, 200);
      assert.equal(under.body.stdout.trim(), String(LIMITS.execArgBytes - 100));
      // A health check's exec is held to the same limit.
      const check = await t.api<{ problems: { path: string }[] }>('POST', '/api/v1/pods', { containers: [{ name: 'a', image: TEST_IMAGE, healthCheck: { kind: 'exec', argv: ['echo', 'x'.repeat(256 * 1024 - 10)] } }] });
      is4xx(check.status, 'a health check with a 256 KiB argument');
    });

    it('keeps at most 4 MiB of an exec\'s output in its answer', async () => {
      const res = await t.api<{ exitCode: number; stdout: string; truncated?: boolean }>('POST', `/api/v1/pods/${podId}/exec`, { command: ['sh', '-c', 'head -c 20000000 /dev/zero'], timeoutSeconds: 60 });
      assert.equal(res.status, 200);
      assert.equal(res.body.stdout.length, LIMITS.execOutputBytes);
      assert.equal(res.body.truncated, true);
    });

    it('keeps a bounded spec history and pages /versions', async () => {
      const updates = 130;
      for (let i = 1; i <= updates; i++) assert.equal((await t.api('PATCH', `/api/v1/pods/${podId}`, { name: `n${i}` })).status, 200);
      const pod = (await t.api<PodView>('GET', `/api/v1/pods/${podId}`)).body;
      assert.equal(pod.specVersion, updates + 1);
      const seen: number[] = [];
      for (let cursor: string | null = ''; cursor !== null; ) {
        const page: { status: number; body: VersionPage } = await t.api<VersionPage>('GET', `/api/v1/pods/${podId}/versions?limit=40${cursor ? `&cursor=${cursor}` : ''}`);
        assert.equal(page.status, 200);
        assert.ok(page.body.versions.length <= 40);
        seen.push(...page.body.versions.map((v) => v.version));
        cursor = page.body.next;
      }
      // Version 1 (which dates the pod) and the newest 100.
      assert.equal(seen.length, 101);
      assert.equal(seen[0], 1);
      assert.equal(seen[1], updates + 1 - 99);
      assert.equal(seen.at(-1), updates + 1);
      assert.equal((await t.api<{ versions: unknown[] }>('GET', `/api/v1/pods/${podId}/versions`)).body.versions.length, 20);
      is4xx((await raw(t, 'GET', `/api/v1/pods/${podId}/versions?limit=1000`)).status, 'a page over the maximum');
      is4xx((await raw(t, 'GET', `/api/v1/pods/${podId}/versions?cursor=x`)).status, 'a cursor that is not one');
    });

    it('terminates the pod after all of it', async () => {
      assert.equal((await t.api('DELETE', `/api/v1/pods/${podId}`)).status, 200);
      await waitFor('the containers to go', async () => ((await t.server.store.listInstances({ podId: podId as never })).length === 0 ? true : undefined), 30_000);
    });
  });
}

describe('a pod updated 10,000 times', () => {
  let s: StoreServer;
  before(async () => {
    s = await storesToTest()[0]!.open({ agent: false });
  });
  after(async () => {
    await s?.cleanup();
  });

  it('keeps 101 versions, pages them, and /healthz answers meanwhile', async () => {
    const { t } = s;
    const created = await t.api<PodView>('POST', '/api/v1/pods', { image: TEST_IMAGE, volumeGb: 0 });
    const id = created.body.id;
    let healthy = 0;
    let done = false;
    const probe = (async () => {
      while (!done) {
        if ((await fetch(`${t.url}/healthz`)).status === 200) healthy++;
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const total = 10_000;
    // The first 9,800 versions are written the way a PATCH writes them (addPodVersion, which prunes),
    // straight to the store: 10,000 HTTP round trips take minutes on a shared test machine. The last
    // 200 are PATCHes, each a change (the env) as a fuzzer's were.
    const detail = (await t.server.store.getPod(id as never))!;
    for (let i = 2; i <= total - 200; i++) await t.server.store.addPodVersion(detail.pod.id, { ...detail.spec, containers: detail.spec.containers.map((c) => ({ ...c, env: { I: String(i), PAD: 'p'.repeat(2000) } })) });
    for (let i = total - 199; i <= total; i++) {
      const res = await t.api('PATCH', `/api/v1/pods/${id}`, { env: { I: String(i), PAD: 'p'.repeat(2000) } });
      assert.equal(res.status, 200);
    }
    done = true;
    await probe;
    assert.ok(healthy > 0, '/healthz answered during the updates');
    const pod = (await t.api<PodView>('GET', `/api/v1/pods/${id}`)).body;
    assert.equal(pod.specVersion, total);
    const stored = await t.server.store.listPodVersions(id as never);
    assert.equal(stored.length, 101);
    const page = await t.api<{ versions: { version: number }[]; next: string | null }>('GET', `/api/v1/pods/${id}/versions?limit=100`);
    assert.equal(page.body.versions.length, 100);
    assert.equal(page.body.next, String(page.body.versions.at(-1)!.version));
    const last = await t.api<{ versions: { version: number }[]; next: string | null }>('GET', `/api/v1/pods/${id}/versions?cursor=${page.body.next}`);
    assert.deepEqual(last.body.versions.map((v) => v.version), [total]);
    assert.equal(last.body.next, null);
    assert.equal((await fetch(`${t.url}/healthz`)).status, 200);
  });
});
