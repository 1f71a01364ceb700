/**
 * RunPod's own client, unchanged, pointed at Berth: the official MCP server from npm
 * (`@runpod/mcp-server`). 4.0.0 speaks REST v2 through RunPod's bundled TypeScript API SDK and takes
 * its base URL from RUNPOD_API_BASE_URL; 3.4.0 (installed as `@runpod/mcp-server-v1`) still speaks
 * REST v1 with RUNPOD_REST_VERSION=v1 and RUNPOD_REST_API_URL. Real pods on the real Docker daemon.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { McpClient, mcpEntry } from './support/runpod-mcp.js';
import { containersOf, ensureSleeperImage, nativeStatus } from './support/runpod-fixtures.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

interface V2Pod {
  id: string;
  status: string;
  actions: string[];
  image: string;
}
interface V1Pod {
  id: string;
  desiredStatus: string;
  imageName: string;
}

describe('RunPod official clients against Berth', () => {
  let t: TestServer;
  let image: string;
  before(async () => {
    image = await ensureSleeperImage();
    t = await startTestServer();
  });
  after(async () => t?.close());

  it('@runpod/mcp-server 4.0.0 (REST v2): creates, lists, stops, starts, reads logs of and terminates a real pod', async () => {
    // A dead end for any host but Berth: GraphQL and Serverless URLs point at a closed local path.
    const mcp = await McpClient.start(mcpEntry('@runpod/mcp-server'), {
      RUNPOD_API_KEY: t.key,
      RUNPOD_API_BASE_URL: `${t.url}/runpod`,
      RUNPOD_PUBLIC_GRAPHQL_URL: `${t.url}/nowhere`,
      RUNPOD_AUTHED_GRAPHQL_URL: `${t.url}/nowhere`,
      RUNPOD_SERVERLESS_API_URL: `${t.url}/nowhere`,
    });
    try {
      const tools = (await mcp.tools()).map((x) => x.name);
      for (const name of ['create-pod', 'list-pods', 'get-pod', 'pod-action', 'delete-pod', 'stream-pod-logs']) assert.ok(tools.includes(name), `the client offers ${name}`);

      const created = await mcp.call<V2Pod>('create-pod', {
        body: { name: 'mcp-v2', image, args: "sh -c 'echo hello from berth; exec sleep 3600'", cpu: { id: 'cpu3c', vcpuCount: 2 }, ports: ['8888/http'], env: { FROM: 'mcp' } },
      });
      assert.equal(created.isError, false, JSON.stringify(created.payload));
      const id = created.payload.id;
      assert.match(id, /^[0-9a-z]{14}$/);
      assert.ok(['PROVISIONING', 'STARTING', 'RUNNING'].includes(created.payload.status));

      const running = await waitFor('RUNNING through get-pod', async () => {
        const r = await mcp.call<V2Pod>('get-pod', { id });
        return r.payload.status === 'RUNNING' ? r.payload : undefined;
      });
      assert.deepEqual(running.actions, ['stop', 'restart', 'terminate']);

      const listed = await mcp.call<{ pods: V2Pod[] }>('list-pods', {});
      assert.equal(listed.isError, false);
      assert.ok(listed.payload.pods.some((p) => p.id === id && p.image === image));

      const logs = await mcp.call<{ lines?: { line?: string; source?: string }[] }>('stream-pod-logs', { podId: id, maxWaitMs: 1500 });
      assert.equal(logs.isError, false, JSON.stringify(logs.payload));
      assert.match(JSON.stringify(logs.payload), /hello from berth/);

      const stopped = await mcp.call<V2Pod>('pod-action', { id, body: { action: 'stop' } });
      assert.equal(stopped.isError, false, JSON.stringify(stopped.payload));
      assert.equal(stopped.payload.id, id);
      await nativeStatus(t, id, 'EXITED');
      assert.equal((await containersOf(id)).length, 0, 'a stopped pod has no container');

      // Not allowed while EXITED: the client sees the 409 and the actions it may take.
      const refused = await mcp.call<{ status?: number; actions?: string[] }>('pod-action', { id, body: { action: 'restart' } });
      assert.equal(refused.isError, true);
      assert.match(JSON.stringify(refused.payload), /409|Conflict/);

      const started = await mcp.call<V2Pod>('pod-action', { id, body: { action: 'start' } });
      assert.equal(started.isError, false, JSON.stringify(started.payload));
      await nativeStatus(t, id, 'RUNNING');

      const gone = await mcp.call('delete-pod', { id });
      assert.equal(gone.isError, false, JSON.stringify(gone.payload));
      await nativeStatus(t, id, 'TERMINATED');
      assert.equal((await mcp.call<V2Pod>('get-pod', { id })).payload.status, 'TERMINATED');
      await waitFor('containers removed', async () => ((await containersOf(id)).length === 0 ? true : undefined));
    } finally {
      await mcp.close();
    }
  });

  it('@runpod/mcp-server 3.4.0 (REST v1): creates, lists, stops, starts and deletes a real pod', async () => {
    const mcp = await McpClient.start(mcpEntry('@runpod/mcp-server-v1'), {
      RUNPOD_API_KEY: t.key,
      RUNPOD_REST_VERSION: 'v1',
      RUNPOD_REST_API_URL: `${t.url}/runpod/v1`,
      RUNPOD_REST_V2_API_URL: `${t.url}/runpod/v2`,
      RUNPOD_PUBLIC_GRAPHQL_URL: `${t.url}/nowhere`,
      RUNPOD_AUTHED_GRAPHQL_URL: `${t.url}/nowhere`,
      RUNPOD_SERVERLESS_API_URL: `${t.url}/nowhere`,
    });
    try {
      const created = await mcp.call<V1Pod>('create-pod', { name: 'mcp-v1', imageName: image, computeType: 'CPU', ports: ['22/tcp'], env: { FROM: 'mcp-v1' } });
      assert.equal(created.isError, false, JSON.stringify(created.payload));
      const id = created.payload.id;
      assert.equal(created.payload.imageName, image);
      await nativeStatus(t, id, 'RUNNING');

      const listed = await mcp.call<{ items?: V1Pod[] } | V1Pod[]>('list-pods', { computeType: 'CPU', name: 'mcp-v1' });
      assert.equal(listed.isError, false, JSON.stringify(listed.payload));
      const items = Array.isArray(listed.payload) ? listed.payload : (listed.payload.items ?? []);
      assert.deepEqual(
        items.map((p) => p.id),
        [id],
      );

      const stopped = await mcp.call<V1Pod>('stop-pod', { podId: id });
      assert.equal(stopped.isError, false, JSON.stringify(stopped.payload));
      assert.equal(stopped.payload.desiredStatus, 'EXITED', 'v1 stop answers the pod, as runpodctl expects');
      await nativeStatus(t, id, 'EXITED');

      const started = await mcp.call<V1Pod>('start-pod', { podId: id });
      assert.equal(started.isError, false, JSON.stringify(started.payload));
      assert.equal(started.payload.desiredStatus, 'RUNNING');
      await nativeStatus(t, id, 'RUNNING');

      const deleted = await mcp.call('delete-pod', { podId: id });
      assert.equal(deleted.isError, false, JSON.stringify(deleted.payload));
      await nativeStatus(t, id, 'TERMINATED');
      await waitFor('containers removed', async () => ((await containersOf(id)).length === 0 ? true : undefined));
    } finally {
      await mcp.close();
    }
  });
});
