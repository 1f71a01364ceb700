/**
 * The pod security policy on a real server: an ordinary key's host network, host path, privileged
 * mode, added capabilities and low fixed host ports are refused through the native and Marathon
 * APIs, naming the field and the grant; an admin key and a server that grants them pass; Marathon's
 * "no networks" runs on the pod network for a key without host-network rights.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

interface Problem {
  status: number;
  code: string;
  detail: string;
  problems?: { path: string; message: string }[];
}

const docker = new Docker();
const sleeper = (extra: Record<string, unknown> = {}, container: Record<string, unknown> = {}) => ({
  name: 'p',
  containers: [{ name: 'main', image: TEST_IMAGE, command: ['sleep', '3600'], ...container }],
  volumeGb: 0,
  ...extra,
});

const RISKY: [string, Record<string, unknown>, Record<string, unknown>, string][] = [
  ['host network', { network: { mode: 'host' } }, {}, '/network/mode'],
  ['the Docker network host', { network: { mode: 'container', name: 'host' } }, {}, '/network/mode'],
  ['a named Docker network', { network: { mode: 'container', name: 'bridge' } }, {}, '/network/name'],
  ['a host path', { volumes: [{ name: 'h', kind: 'host', hostPath: '/tmp' }] }, { volumeMounts: [{ name: 'h', mountPath: '/h' }] }, '/volumes(0)/hostPath'],
  ['privileged mode', {}, { privileged: true }, '/containers(0)/privileged'],
  ['an added capability', {}, { capAdd: ['NET_ADMIN'] }, '/containers(0)/capAdd(0)'],
  ['a fixed host port below 1024', {}, { endpoints: [{ name: 'web', containerPort: 80, hostPort: 80 }] }, '/containers(0)/endpoints(0)/hostPort'],
];

async function memberKey(t: TestServer, owner: string): Promise<string> {
  const made = await t.api<{ key: string }>('POST', '/api/v1/keys', { name: owner, owner });
  assert.equal(made.status, 201);
  return made.body.key;
}

describe('pod security policy', () => {
  let t: TestServer;
  let granted: TestServer;
  let member: string;
  before(async () => {
    await ensureTestImage(docker);
    [t, granted] = await Promise.all([
      startTestServer({ allowHostPaths: ['/tmp'], proxy: false, ssh: false }),
      startTestServer({ allowHostPaths: ['/tmp'], proxy: false, ssh: false, podPolicy: { hostNetwork: true, hostPath: true, namedNetworks: true, privileged: true, capabilities: ['NET_ADMIN'], hostPorts: 'any' } }),
    ]);
    member = await memberKey(t, 'alice');
  });
  after(async () => {
    await Promise.all([t?.close(), granted?.close()]);
  });

  for (const [what, pod, container, path] of RISKY) {
    it(`refuses ${what} for an ordinary key, and lets the admin key and a granting server have it`, async () => {
      const body = sleeper({ ...pod, instances: 0 }, container);
      const refused = await t.api<Problem>('POST', '/api/v1/pods', body, member);
      assert.equal(refused.status, 403, JSON.stringify(refused.body));
      assert.equal(refused.body.code, 'BERTH_ERR_POLICY_DENIED');
      assert.deepEqual(refused.body.problems?.map((p) => p.path), [path]);
      assert.match(refused.body.detail, /refused by the pod security policy/);
      assert.equal((await t.api<{ pods: unknown[] }>('GET', '/api/v1/pods', undefined, member)).body.pods.length, 0, 'nothing written');
      assert.equal((await t.api('POST', '/api/v1/pods', body)).status, 201, 'admin key');
      const other = await memberKey(granted, 'bob');
      assert.equal((await granted.api('POST', '/api/v1/pods', body, other)).status, 201, 'granted by the server');
    });
  }

  it('refuses an update that asks for what the create could not', async () => {
    const made = await t.api<{ id: string }>('POST', '/api/v1/pods', sleeper({ instances: 0 }), member);
    assert.equal(made.status, 201);
    const patched = await t.api<Problem>('PATCH', `/api/v1/pods/${made.body.id}`, { network: { mode: 'host' } }, member);
    assert.equal(patched.status, 403);
    assert.equal(patched.body.code, 'BERTH_ERR_POLICY_DENIED');
  });

  // Privileged mode is accepted above but not run here: test machines may be sandboxes where runc cannot.
  it('runs a granted pod with the capability added', async () => {
    const other = await memberKey(granted, 'carol');
    const made = await granted.api<{ id: string }>('POST', '/api/v1/pods', sleeper({}, { capAdd: ['NET_ADMIN'] }), other);
    assert.equal(made.status, 201);
    await waitFor('the pod to run', async () => {
      const v = await granted.api<{ status: string; statusMessage: string | null }>('GET', `/api/v1/pods/${made.body.id}`, undefined, other);
      assert.notEqual(v.body.status, 'ERROR', v.body.statusMessage ?? '');
      return v.body.status === 'RUNNING' ? true : undefined;
    }, 60_000);
    const [c] = await docker.listContainers({ filters: { label: [`berth.pod=${made.body.id}`] } });
    const info = await docker.getContainer(c!.Id).inspect();
    assert.equal(info.HostConfig.Privileged, false);
    assert.deepEqual(info.HostConfig.CapAdd, ['NET_ADMIN']);
  });

  it("Marathon: host networks are refused; no networks is the pod network for an ordinary key, the host's for the admin", async () => {
    const pod = (id: string, networks?: unknown[]) => ({
      id,
      containers: [{ name: 'main', image: { kind: 'DOCKER', id: TEST_IMAGE }, exec: { command: { shell: 'sleep 3600' } }, resources: { cpus: 0.1, mem: 32 } }],
      scaling: { kind: 'fixed', instances: 0 },
      ...(networks ? { networks } : {}),
    });
    const hostNet = await t.api<{ message?: string }>('POST', '/marathon/v2/pods', pod('/policy/host', [{ mode: 'host' }]), member);
    assert.equal(hostNet.status, 403, JSON.stringify(hostNet.body));
    assert.match(JSON.stringify(hostNet.body), /pod security policy/);
    const implicit = await t.api('POST', '/marathon/v2/pods', pod('/policy/implicit'), member);
    assert.equal(implicit.status, 201, JSON.stringify(implicit.body));
    assert.equal((await t.api('POST', '/marathon/v2/pods', pod('/policy/admin'))).status, 201);
    const modeOf = async (name: string): Promise<string | undefined> => {
      const list = (await t.api<{ pods: { id: string; name: string }[] }>('GET', '/api/v1/pods')).body.pods;
      const id = list.find((p) => p.name === name)?.id;
      return (await t.api<{ spec: { network: { mode: string } } }>('GET', `/api/v1/pods/${id}`)).body.spec.network.mode;
    };
    assert.equal(await modeOf('/policy/implicit'), 'bridge');
    assert.equal(await modeOf('/policy/admin'), 'host');
  });
});
