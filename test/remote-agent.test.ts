import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { startAgent, type RunningAgent } from '../src/cli/agent.js';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

interface NodeView {
  id: string;
  name: string;
}
interface PodView {
  id: string;
  status: string;
  nodeId: string;
}

describe('an agent joined over HTTP', () => {
  let t: TestServer;
  let agent: RunningAgent | undefined;
  let dir = '';
  before(async () => {
    await ensureTestImage();
    t = await startTestServer({ agent: false });
    dir = await mkdtemp(join(tmpdir(), 'berth-agent-'));
  });
  after(async () => {
    await t?.close();
    await agent?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('registers, runs the pods placed on it, and reports their status', async () => {
    const waiting = await t.api<PodView>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0 });
    assert.equal(waiting.status, 201);
    assert.equal(waiting.body.status, 'PROVISIONING', 'no node yet: the pod waits');

    const { token } = (await t.api<{ token: string }>('POST', '/api/v1/tokens', { maxUses: 1, description: 'second machine' })).body;
    agent = await startAgent({ server: t.url, token, dataDir: dir, name: 'second-machine', logger: pino({ level: 'silent' }) });
    const nodes = (await t.api<{ nodes: NodeView[] }>('GET', '/api/v1/nodes')).body.nodes;
    assert.deepEqual(nodes.map((n) => n.name), ['second-machine']);

    const running = await waitFor('placed and running', async () => {
      const p = (await t.api<PodView>('GET', `/api/v1/pods/${waiting.body.id}`)).body;
      return p.status === 'RUNNING' ? p : undefined;
    });
    assert.equal(running.nodeId, nodes[0]!.id);
    await t.api('POST', `/api/v1/pods/${waiting.body.id}/stop`);
    await waitFor('stopped', async () => ((await t.api<PodView>('GET', `/api/v1/pods/${waiting.body.id}`)).body.status === 'EXITED' ? true : undefined));

    const refused = await fetch(`${t.url}/api/v1/agent/register`, { method: 'POST', headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(refused.status, 403, 'API keys, admin ones included, do not act as agents');
    const { credential } = JSON.parse(await readFile(join(dir, 'agent', 'credential.json'), 'utf8')) as { credential: string };
    const malformed = await fetch(`${t.url}/api/v1/agent/report`, {
      method: 'POST',
      headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
      body: JSON.stringify({ nodeId: nodes[0]!.id, reports: [{ instanceId: 'x-0', observation: { state: 'dancing' } }] }),
    });
    assert.equal(malformed.status, 400, 'a malformed report is refused, not stored');
  });
});
