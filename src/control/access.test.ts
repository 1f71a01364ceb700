import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePodSpec, type PodInput } from '../model/index.js';
import { httpPorts } from './access.js';

const ep = (name: string, containerPort: number | null, hostPort: number | null, protocols: string[]) => ({ name, containerPort, hostPort, protocols });

describe('httpPorts', () => {
  it('lists RunPod-style http ports, private ones marked, and leaves tcp ports out', () => {
    const spec = compilePodSpec({ image: 'busybox', ports: '8888/http,22/tcp,8000/http:private' } as PodInput);
    assert.deepEqual(httpPorts(spec), [
      { port: 8888, private: false, endpoint: null },
      { port: 8000, private: true, endpoint: null },
    ]);
  });

  it('lists Marathon endpoints with an http protocol at their container port, once, after the ports', () => {
    const spec = compilePodSpec({
      containers: [
        {
          name: 'web',
          image: 'nginx',
          ports: ['9000/http'],
          endpoints: [ep('web', 80, 0, ['http']), ep('again', 9000, 0, ['HTTP']), ep('admin', 81, 0, ['tcp'])],
        },
        { name: 'side', image: 'busybox', endpoints: [ep('metrics', 9100, 31000, ['tcp', 'http']), ep('inside', 9200, null, ['http'])] },
      ],
    } as PodInput);
    assert.deepEqual(httpPorts(spec), [
      { port: 9000, private: false, endpoint: null },
      { port: 80, private: false, endpoint: 'web' },
      { port: 9100, private: false, endpoint: 'metrics' },
    ], 'tcp-only endpoints and endpoints the node does not publish (no host port) are left out');
  });

  it('on host networking, lists an endpoint at its fixed host port, where the container listens', () => {
    const spec = compilePodSpec({
      network: { mode: 'host' },
      containers: [{ name: 'web', image: 'nginx', endpoints: [ep('fixed', null, 8080, ['http']), ep('any', null, 0, ['http'])] }],
    } as PodInput);
    assert.deepEqual(httpPorts(spec), [{ port: 8080, private: false, endpoint: 'fixed' }], 'a port the node picks has no fixed URL');
  });
});
