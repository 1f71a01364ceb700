import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { compilePodSpec, type PodSpec } from '../../model/index.js';
import { toPodInput } from './convert.js';
import type { MarathonPod } from './schema.js';
import { definitionFromSpec, withDefinition } from './synthesize.js';
import { parseDefinition } from './validate.js';
import { definitionOf, podView } from './views.js';

// dist/src/api/marathon → the repository root.
const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..', '..');
const FIXTURES = join(ROOT, 'test', 'fixtures', 'marathon');
const fixture = (name: string): unknown => JSON.parse(readFileSync(join(FIXTURES, name), 'utf8'));

const read = (json: unknown): MarathonPod => {
  const p = parseDefinition(json);
  if (!p.ok) assert.fail(`expected a valid definition, got ${JSON.stringify(p.body)}`);
  return p.pod;
};
const specOf = (json: unknown): PodSpec => compilePodSpec(toPodInput(read(json)));
/** The spec without the stored definition, which is the document it was converted from. */
const modelled = (s: PodSpec): PodSpec => ({ ...s, marathon: s.marathon ? { id: s.marathon.id } : null });

/** What the examples leave out: secrets in env and volumes, constraints, tty, tcp and exec checks, argv commands, a persistent volume. */
const everything = {
  id: '/shop/everything',
  labels: { team: 'shop' },
  user: 'nobody',
  environment: { SHARED: 'yes', TOKEN: { secret: 'token' } },
  secrets: { token: { source: '/shop/token' }, cert: { source: 'shop/cert' } },
  volumes: [{ name: 'data', persistent: { size: 64 } }, { name: 'cert', secret: 'cert' }, { name: 'scratch' }, { name: 'logs', host: '/var/log' }],
  containers: [
    {
      name: 'web',
      exec: { command: { argv: ['/usr/bin/server', '--port', '8080'] }, overrideEntrypoint: true },
      resources: { cpus: 0.5, mem: 256, disk: 2048, gpus: 1 },
      resourceLimits: { cpus: 2, mem: 'unlimited' },
      endpoints: [{ name: 'http', hostPort: 0, protocol: ['HTTP'], labels: { VIP_0: '/shop:80' } }],
      image: { kind: 'DOCKER', id: 'registry.example/web:1.2' },
      environment: { PORT: '8080' },
      user: 'www',
      healthCheck: { tcp: { endpoint: 'http' }, gracePeriodSeconds: 10, intervalSeconds: 7, maxConsecutiveFailures: 2, timeoutSeconds: 6, delaySeconds: 1 },
      volumeMounts: [
        { name: 'data', mountPath: 'data' },
        { name: 'cert', mountPath: '/etc/cert', readOnly: true },
      ],
      labels: { role: 'frontend' },
      lifecycle: { killGracePeriodSeconds: 12.5 },
      tty: true,
    },
    {
      name: 'sidecar',
      exec: { command: { argv: ['tail', '-f', '/dev/null'] } },
      resources: { cpus: 0.25, mem: 64 },
      healthCheck: { exec: { command: { shell: 'test -e /tmp/ok' } }, intervalSeconds: 30 },
      volumeMounts: [
        { name: 'scratch', mountPath: '/scratch' },
        { name: 'logs', mountPath: '/logs', readOnly: true },
      ],
    },
  ],
  networks: [{ mode: 'host' }],
  scaling: { kind: 'fixed', instances: 3 },
  scheduling: {
    backoff: { backoff: 2, backoffFactor: 1.5, maxLaunchDelay: 600 },
    upgrade: { minimumHealthCapacity: 0.5, maximumOverCapacity: 0 },
    placement: { constraints: [{ fieldName: 'hostname', operator: 'UNIQUE' }, { fieldName: '@zone', operator: 'GROUP_BY', value: '2' }] },
    killSelection: 'OLDEST_FIRST',
  },
};

describe('definitions written from a spec', () => {
  const examples: [string, unknown][] = [
    ...readdirSync(FIXTURES)
      .filter((f) => f.endsWith('.json'))
      .map((f): [string, unknown] => [f, fixture(f)]),
    ['everything the spec models', everything],
  ];
  for (const [name, json] of examples) {
    it(`gives back the spec of ${name}`, () => {
      const spec = specOf(json);
      const written = definitionFromSpec(spec, spec.marathon!.id);
      // Through JSON and Marathon's reader and validation, as a client would send it back.
      const again = specOf(JSON.parse(JSON.stringify(written)));
      assert.deepEqual(modelled(again), modelled(spec));
    });
  }

  it('writes what Marathon shows for each field the spec models', () => {
    const def = definitionFromSpec(specOf(everything), '/shop/everything');
    const [web, sidecar] = def.containers;
    assert.deepEqual(web!.exec, { command: { argv: ['/usr/bin/server', '--port', '8080'] }, overrideEntrypoint: true });
    assert.deepEqual(web!.resources, { cpus: 0.5, mem: 256, disk: 2048, gpus: 1 });
    assert.deepEqual(web!.resourceLimits, { cpus: 2, mem: 'unlimited' });
    assert.deepEqual(web!.environment, { SHARED: 'yes', PORT: '8080', TOKEN: { secret: 'token' } }, 'MESOS_SANDBOX, set for the relative mount, is not shown');
    assert.deepEqual(web!.volumeMounts, [
      { name: 'data', mountPath: 'data', readOnly: false },
      { name: 'cert', mountPath: '/etc/cert', readOnly: true },
    ]);
    assert.deepEqual(web!.healthCheck, { tcp: { endpoint: 'http' }, gracePeriodSeconds: 10, intervalSeconds: 7, maxConsecutiveFailures: 2, timeoutSeconds: 6, delaySeconds: 1 });
    assert.deepEqual(web!.endpoints, [{ name: 'http', hostPort: 0, protocol: ['http'], labels: { VIP_0: '/shop:80' } }]);
    assert.equal(web!.user, 'www');
    assert.equal(web!.tty, true);
    assert.deepEqual(web!.lifecycle, { killGracePeriodSeconds: 12.5 });
    assert.deepEqual(web!.labels, { role: 'frontend' });
    assert.equal(sidecar!.user, 'nobody', "the pod's user, on the container it applies to");
    assert.deepEqual(sidecar!.healthCheck?.exec, { command: { shell: 'test -e /tmp/ok' } });
    assert.deepEqual(sidecar!.exec, { command: { argv: ['tail', '-f', '/dev/null'] } });
    assert.deepEqual(def.secrets, { token: { source: 'shop/token' }, cert: { source: 'shop/cert' } });
    assert.deepEqual(def.volumes, [{ name: 'data', persistent: { type: 'root', size: 64 } }, { name: 'cert', secret: 'cert' }, { name: 'scratch' }, { name: 'logs', host: '/var/log' }]);
    assert.deepEqual(def.scheduling, {
      backoff: { backoff: 2, backoffFactor: 1.5, maxLaunchDelay: 600 },
      upgrade: { minimumHealthCapacity: 0.5, maximumOverCapacity: 0 },
      placement: { constraints: [{ fieldName: 'hostname', operator: 'UNIQUE' }, { fieldName: '@zone', operator: 'GROUP_BY', value: '2' }] },
      killSelection: 'OLDEST_FIRST',
      unreachableStrategy: 'disabled',
    });
    assert.deepEqual(def.executorResources, { cpus: 0.1, mem: 32, disk: 10 });
    assert.deepEqual(def.scaling, { kind: 'fixed', instances: 3 });
    assert.deepEqual(def.networks, [{ mode: 'host' }]);
  });

  it("gives the executor what the containers' requests leave of the pod's reservation", () => {
    const own = { ...everything, containers: everything.containers.map(({ resourceLimits: _r, ...c }) => c), executorResources: { cpus: 0.2, mem: 64, disk: 10 } };
    const def = definitionFromSpec(specOf(own), own.id);
    assert.deepEqual(def.executorResources, { cpus: 0.2, mem: 64, disk: 10 });
    assert.deepEqual(def.containers[0]!.resources, { cpus: 0.5, mem: 256, disk: 2048, gpus: 1 });
    assert.equal(def.containers[0]!.resourceLimits, undefined);
  });

  it('shows a native pod with its reservation shared by its containers and no limits of their own', () => {
    const spec = compilePodSpec({ name: 'native', image: 'busybox', env: { A: '1' }, ports: ['8888/http'], vcpuCount: 2, memoryGb: 4, containerDiskGb: 20 });
    const def = read(definitionFromSpec(spec, '/abc'));
    assert.equal(def.id, '/abc');
    const [main] = def.containers;
    assert.deepEqual(main!.resources, { cpus: 1.9, mem: 4064, disk: 20480, gpus: 0 });
    assert.deepEqual(main!.resourceLimits, { cpus: 'unlimited', mem: 'unlimited' });
    assert.deepEqual(def.executorResources, { cpus: 0.1, mem: 32, disk: 10 });
    assert.deepEqual(main!.endpoints, [{ name: 'http-8888', containerPort: 8888, hostPort: 0, protocol: ['http'] }]);
    assert.deepEqual(main!.environment, { A: '1' });
    assert.deepEqual(def.networks, [{ mode: 'container/bridge' }]);
    const again = compilePodSpec(toPodInput(def));
    assert.equal(again.vcpuCount, 2);
    assert.equal(again.memoryGb, 4);
    assert.equal(again.containerDiskGb, 20);
  });

  it('writes the definition of a Marathon pod whose stored one was dropped, under its Marathon id', () => {
    const spec = specOf(fixture('pod-with-healthcheck.json'));
    const changed: PodSpec = { ...spec, containers: spec.containers.map((c) => ({ ...c, image: 'nginx:1.27' })), marathon: { id: spec.marathon!.id } };
    const shown = withDefinition(changed, 'x1y2z3');
    assert.equal(shown.marathon?.id, spec.marathon!.id);
    assert.equal(definitionOf(shown).containers[0]!.image?.id, 'nginx:1.27');
    assert.equal(definitionOf(changed).id, spec.marathon!.id, 'views write it too');
    assert.equal((podView(changed, '2024-01-01T00:00:00.000Z').containers as { image: { id: string } }[])[0]!.image.id, 'nginx:1.27');
    assert.equal(withDefinition(spec, 'x1y2z3'), spec, 'a stored definition is kept as it is');
  });
});
