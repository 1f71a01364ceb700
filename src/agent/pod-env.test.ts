import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePodSpec, type PodInput } from '../model/index.js';
import { endpointEnv, envName, labelEnv, marathonContainerEnv, secretEnv } from './pod-env.js';

const pod = (input: PodInput) => compilePodSpec({ volumeGb: 0, ...input });

describe('pod env', () => {
  it('names variables as Marathon does', () => {
    assert.equal(envName('http'), 'HTTP');
    assert.equal(envName('metrics-port'), 'METRICS_PORT');
    assert.equal(envName('a.b/c_d'), 'A_B_C_D');
  });

  it('endpoint env with bridge networking: ENDPOINT_ is the container port', () => {
    const spec = pod({
      containers: [
        { name: 'web', image: 'x', endpoints: [{ name: 'http', containerPort: 8080, hostPort: 0 }, { name: 'admin', containerPort: 9000 }] },
        { name: 'side', image: 'x', endpoints: [{ name: 'raw', hostPort: 31000 }] },
      ],
    });
    assert.deepEqual(endpointEnv(spec, { http: 32001, raw: 31000 }), {
      ENDPOINT_HTTP: '8080',
      EP_HOST_HTTP: '32001',
      EP_CONTAINER_HTTP: '8080',
      ENDPOINT_ADMIN: '9000',
      EP_CONTAINER_ADMIN: '9000',
      // No container port: published on the same number, as Marathon does.
      ENDPOINT_RAW: '31000',
      EP_HOST_RAW: '31000',
      EP_CONTAINER_RAW: '31000',
    });
  });

  it('endpoint env with host networking: ENDPOINT_ is the host port', () => {
    const spec = pod({ network: { mode: 'host' }, containers: [{ name: 'web', image: 'x', endpoints: [{ name: 'http', hostPort: 0 }, { name: 'fixed', containerPort: 80, hostPort: 8081 }] }] });
    assert.deepEqual(endpointEnv(spec, { http: 40000, fixed: 8081 }), {
      ENDPOINT_HTTP: '40000',
      EP_HOST_HTTP: '40000',
      ENDPOINT_FIXED: '8081',
      EP_HOST_FIXED: '8081',
      EP_CONTAINER_FIXED: '80',
    });
  });

  it('labels: the list of names and one variable each', () => {
    assert.deepEqual(labelEnv({ HAPROXY_GROUP: 'external', owner: 'me' }), {
      MARATHON_APP_LABEL_HAPROXY_GROUP: 'external',
      MARATHON_APP_LABEL_OWNER: 'me',
      MARATHON_APP_LABELS: 'HAPROXY_GROUP OWNER',
    });
    assert.deepEqual(labelEnv({ BIG: 'x'.repeat(600) }), { MARATHON_APP_LABELS: '' }, 'values Mesos would refuse are left out');
  });

  it("a container's Marathon env: its id, resources, the task id and the node", () => {
    const spec = pod({
      vcpuCount: 2,
      memoryGb: 1,
      marathon: { id: '/prod/web', definition: {} },
      labels: { TIER: 'front' },
      containers: [
        { name: 'web', image: 'x', resources: { cpus: 0.5, memoryMb: 128, diskMb: 10, gpus: 0 } },
        { name: 'side', image: 'x' },
      ],
    });
    const web = marathonContainerEnv(spec, spec.containers[0]!, { instanceId: 'p1-0', nodeName: 'node-a' });
    assert.deepEqual(web, {
      MARATHON_APP_ID: '/prod/web',
      MARATHON_CONTAINER_ID: 'web',
      MARATHON_CONTAINER_RESOURCE_CPUS: '0.5',
      MARATHON_CONTAINER_RESOURCE_MEM: '128',
      MARATHON_CONTAINER_RESOURCE_DISK: '10',
      MARATHON_CONTAINER_RESOURCE_GPUS: '0',
      HOST: 'node-a',
      MESOS_TASK_ID: 'p1-0.web',
      MARATHON_APP_LABELS: 'TIER',
      MARATHON_APP_LABEL_TIER: 'front',
    });
    const side = marathonContainerEnv(spec, spec.containers[1]!, { instanceId: 'p1-0', nodeName: 'node-a' });
    assert.equal(side.MARATHON_CONTAINER_RESOURCE_CPUS, '2', "the pod's limit when the container has none");
    assert.equal(side.MARATHON_CONTAINER_RESOURCE_MEM, '1024');
  });

  it('secret env: the value of the pod secret each variable names', () => {
    const spec = pod({ secrets: { db: 'prod/db-password' }, containers: [{ name: 'web', image: 'x', secretEnv: { DB_PASSWORD: 'db' } }] });
    assert.deepEqual(secretEnv(spec.containers[0]!, { db: 's3cret' }), { DB_PASSWORD: 's3cret' });
    assert.deepEqual(secretEnv(spec.containers[0]!, {}), {});
  });
});
