import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { compilePodSpec } from '../../model/index.js';
import { marathonProblem, toPodInput } from './convert.js';
import { readPod } from './read.js';
import type { MarathonPod } from './schema.js';
import { parseDefinition, validateUpdate } from './validate.js';

// dist/src/api/marathon → the repository root.
const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..', '..');
const FIXTURES = join(ROOT, 'test', 'fixtures', 'marathon');
const fixture = (name: string): Record<string, unknown> => JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as Record<string, unknown>;

const ok = (json: unknown): MarathonPod => {
  const p = parseDefinition(json);
  if (!p.ok) assert.fail(`expected a valid definition, got ${JSON.stringify(p.body)}`);
  return p.pod;
};
const body = (json: unknown): unknown => {
  const p = parseDefinition(json);
  if (p.ok) assert.fail('expected the definition to be refused');
  return p.body;
};

const minimal = (extra: Record<string, unknown> = {}, container: Record<string, unknown> = {}) => ({
  id: '/simplepod',
  containers: [{ name: 'sleep1', exec: { command: { shell: 'sleep 1000' } }, resources: { cpus: 0.1, mem: 32 }, ...container }],
  networks: [{ mode: 'host' }],
  ...extra,
});

describe('Marathon pod definitions: the DC/OS documentation examples', () => {
  const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.json'));
  it('has the examples', () => assert.ok(files.length >= 10, files.join(', ')));
  for (const file of files) {
    it(`accepts ${file} and compiles it into a Berth spec`, () => {
      const pod = ok(fixture(file));
      const spec = compilePodSpec(toPodInput(pod));
      assert.equal(spec.marathon?.id, pod.id);
      assert.equal(spec.containers.length, pod.containers.length);
      assert.deepEqual(spec.marathon?.definition, JSON.parse(JSON.stringify(pod)), 'the stored definition is the normalized one');
    });
  }
});

describe('Marathon pod definitions: normalization', () => {
  it('fills in what Marathon returns after POSTing the minimum', () => {
    assert.deepEqual(ok(minimal()), {
      id: '/simplepod',
      containers: [{ name: 'sleep1', exec: { command: { shell: 'sleep 1000' } }, resources: { cpus: 0.1, mem: 32, disk: 0, gpus: 0 } }],
      networks: [{ mode: 'host' }],
      scaling: { kind: 'fixed', instances: 1 },
      scheduling: {
        backoff: { backoff: 1, backoffFactor: 1.15, maxLaunchDelay: 300 },
        upgrade: { minimumHealthCapacity: 1, maximumOverCapacity: 1 },
        killSelection: 'YOUNGEST_FIRST',
        unreachableStrategy: { inactiveAfterSeconds: 0, expungeAfterSeconds: 0 },
      },
      executorResources: { cpus: 0.1, mem: 32, disk: 10 },
      role: '*',
    });
  });

  it('drops version and unknown fields, writes enums canonically, omits empty collections', () => {
    const pod = ok(fixture('pod-with-multiple-containers.json'));
    assert.equal(pod.version, undefined);
    assert.deepEqual(pod.scaling, { kind: 'fixed', instances: 10 });
    assert.equal(pod.scheduling.killSelection, 'YOUNGEST_FIRST');
    assert.deepEqual(pod.scheduling.backoff, { backoff: 1, backoffFactor: 1.15, maxLaunchDelay: 300 }, 'maxLaunchDelaySeconds is not a pod field');
    assert.deepEqual(pod.scheduling.unreachableStrategy, { inactiveAfterSeconds: 900, expungeAfterSeconds: 604800 });
    const test = ok(fixture('test-pod.json'));
    assert.equal('secrets' in test, false);
    assert.equal('placement' in test.scheduling, false);
    assert.equal('endpoints' in test.containers[2]!, false);
    assert.deepEqual(test.networks, [{ name: 'dcos', mode: 'container', labels: { net_label: 'net' } }]);
    const enums = ok(minimal({ scaling: { kind: 'FIXED' } }, { image: { kind: 'docker', id: 'busybox' }, endpoints: [{ name: 'web', protocol: ['http'] }], healthCheck: { http: { endpoint: 'web', scheme: 'https' } } }));
    assert.equal(enums.containers[0]!.image?.kind, 'DOCKER');
    assert.equal(enums.containers[0]!.healthCheck?.http?.scheme, 'HTTPS');
    assert.deepEqual(enums.scaling, { kind: 'fixed', instances: 1 });
  });

  it('makes the id canonical and absolute', () => {
    assert.equal(ok(minimal({ id: '/group/sub/../pod' })).id, '/group/pod');
    assert.equal(ok(minimal({ id: '/a/b/' })).id, '/a/b');
  });

  it('gives endpoints hostPort 0 unless the pod is on a container network', () => {
    const host = ok(minimal({}, { endpoints: [{ name: 'web' }, { name: 'fixed', hostPort: 8080 }] }));
    assert.deepEqual(host.containers[0]!.endpoints, [{ name: 'web', hostPort: 0 }, { name: 'fixed', hostPort: 8080 }]);
    const none = ok(minimal({ networks: [] }, { endpoints: [{ name: 'web', containerPort: 80 }] }));
    assert.deepEqual(none.containers[0]!.endpoints, [{ name: 'web', containerPort: 80, hostPort: 0 }]);
    assert.equal('networks' in none, false, 'an empty list is omitted');
    const bridge = ok(minimal({ networks: [{ mode: 'container/bridge' }] }, { endpoints: [{ name: 'web', containerPort: 80 }] }));
    assert.equal(bridge.containers[0]!.endpoints![0]!.hostPort, 0);
    const container = ok(fixture('pod-with-endpoint.json'));
    assert.deepEqual(container.containers[0]!.endpoints, [{ name: 'web', containerPort: 80, protocol: ['http'] }]);
  });

  it('echoes resources with disk and gpus, health checks and mounts with their defaults', () => {
    const pod = ok(fixture('pod-with-healthcheck.json'));
    assert.deepEqual(pod.containers[0]!.healthCheck, { http: { endpoint: 'web', path: '/', scheme: 'HTTP' }, gracePeriodSeconds: 300, intervalSeconds: 60, maxConsecutiveFailures: 3, timeoutSeconds: 20, delaySeconds: 15 });
    const vol = ok(fixture('with-ephemeral-vol.json'));
    assert.deepEqual(vol.containers[0]!.volumeMounts, [{ name: 'v1', mountPath: 'jdef-v1', readOnly: false }]);
    const complete = ok(fixture('complete-pod.json'));
    assert.deepEqual(complete.containers[0]!.artifacts, [{ uri: 'https://ftp.gnu.org/gnu/glibc/glibc-2.25.tar.gz', extract: true, executable: false, cache: true, destPath: 'glibc-2.25.tar.gz' }]);
    assert.deepEqual(complete.containers[0]!.resourceLimits, { cpus: 'unlimited', mem: 1024 });
  });

  it('gives a resident pod in-place upgrades and no unreachable strategy, unless it says otherwise', () => {
    const vol = { volumes: [{ name: 'data', persistent: { size: 10 } }] };
    const mount = { volumeMounts: [{ name: 'data', mountPath: 'data' }] };
    const pod = ok(minimal(vol, mount));
    assert.deepEqual(pod.scheduling.upgrade, { minimumHealthCapacity: 0.5, maximumOverCapacity: 0 });
    assert.equal(pod.scheduling.unreachableStrategy, 'disabled');
    assert.deepEqual(pod.volumes, [{ name: 'data', persistent: { type: 'root', size: 10 } }]);
    assert.deepEqual(ok(fixture('persistent-volume-pod.json')).scheduling.upgrade, { minimumHealthCapacity: 0, maximumOverCapacity: 0 });
  });
});

describe('Marathon pod definitions: shape errors (422 Invalid JSON)', () => {
  const cases: [string, unknown, unknown][] = [
    ['missing id and containers', {}, [{ path: '/id', errors: ['error.path.missing'] }, { path: '/containers', errors: ['error.path.missing'] }]],
    ['a body that is not an object', [], [{ path: '/id', errors: ['error.path.missing'] }, { path: '/containers', errors: ['error.path.missing'] }]],
    ['a bad container name', minimal({}, { name: 'Bad_Name' }), [{ path: '/containers(0)/name', errors: ['error.pattern'] }]],
    ['a name too long', minimal({}, { name: 'a'.repeat(64) }), [{ path: '/containers(0)/name', errors: ['error.maxLength'] }]],
    ['no containers', minimal({ containers: [] }), [{ path: '/containers', errors: ['error.minLength'] }]],
    ['no resources', minimal({}, { resources: undefined }), [{ path: '/containers(0)/resources', errors: ['error.path.missing'] }]],
    ['a string for cpus', minimal({}, { resources: { cpus: 'x' } }), [{ path: '/containers(0)/resources/cpus', errors: ['error.expected.jsnumber'] }]],
    ['a number for an id', minimal({ id: 5 }), [{ path: '/id', errors: ['error.expected.jsstring'] }]],
    ['null for a required field', minimal({ id: null }), [{ path: '/id', errors: ['error.expected.jsstring'] }]],
    ['an id with capitals', minimal({ id: '/Foo' }), [{ path: '/id', errors: ['error.pattern'] }]],
    ['cpus below the minimum', minimal({}, { resources: { cpus: 0, mem: 32 } }), [{ path: '/containers(0)/resources/cpus', errors: ['error.min'] }]],
    ['executor memory below 32', minimal({ executorResources: { mem: 16 } }), [{ path: '/executorResources/mem', errors: ['error.min'] }]],
    ['gpus not whole', minimal({}, { resources: { cpus: 1, mem: 32, gpus: 0.5 } }), [{ path: '/containers(0)/resources/gpus', errors: ['error.expected.int'] }]],
    ['an unknown network mode', minimal({ networks: [{ mode: 'overlay' }] }), [{ path: '/networks(0)/mode', errors: ['error.unknown.enum.literal'] }]],
    ['an unknown kill selection', minimal({ scheduling: { killSelection: 'RANDOM' } }), [{ path: '/scheduling/killSelection', errors: ['error.unknown.enum.literal'] }]],
    ['upgrade above 1', minimal({ scheduling: { upgrade: { maximumOverCapacity: 1.5 } } }), [{ path: '/scheduling/upgrade/maximumOverCapacity', errors: ['error.max'] }]],
    ['negative instances', minimal({ scaling: { kind: 'fixed', instances: -1 } }), [{ path: '/scaling/instances', errors: ['error.min'] }]],
    ['scaling without kind', minimal({ scaling: { instances: 2 } }), [{ path: '/scaling/kind', errors: ['error.path.missing'] }]],
    ['an environment name with a space', minimal({ environment: { 'bad variable name': 'x' } }), [{ path: '/environment/bad variable name', errors: ['error.pattern'] }]],
    ['a number in the environment', minimal({}, { environment: { N: 1 } }), [{ path: '/containers(0)/environment/N', errors: ['error.expected.jsstring'] }]],
    ['an empty shell command', minimal({}, { exec: { command: { shell: '' } } }), [{ path: '/containers(0)/exec/command/shell', errors: ['error.minLength'] }]],
    ['a command with neither shell nor argv', minimal({}, { exec: { command: {} } }), [{ path: '/containers(0)/exec/command/argv', errors: ['error.path.missing'] }]],
    ['an image without id', minimal({}, { image: { kind: 'DOCKER' } }), [{ path: '/containers(0)/image/id', errors: ['error.path.missing'] }]],
    ['a port out of range', minimal({}, { endpoints: [{ name: 'web', hostPort: 70000 }] }), [{ path: '/containers(0)/endpoints(0)/hostPort', errors: ['error.max'] }]],
    ['labels that are not strings', minimal({ labels: { a: true } }), [{ path: '/labels/a', errors: ['error.expected.jsstring'] }]],
    ['a constraint with an unknown operator', minimal({ scheduling: { placement: { constraints: [{ fieldName: 'hostname', operator: 'NEAR' }] } } }), [{ path: '/scheduling/placement/constraints(0)/operator', errors: ['error.unknown.enum.literal'] }]],
    ['a persistent volume without size', minimal({ volumes: [{ name: 'v', persistent: {} }] }), [{ path: '/volumes(0)/persistent/size', errors: ['error.path.missing'] }]],
    ['a boolean that is a string', minimal({}, { tty: 'yes' }), [{ path: '/containers(0)/tty', errors: ['error.expected.jsboolean'] }]],
    [
      'several errors at once, in field order',
      { id: '/x', containers: [{ name: 'A', resources: { cpus: -1 } }], scaling: { kind: 'fixed', instances: 'two' } },
      [
        { path: '/containers(0)/name', errors: ['error.pattern'] },
        { path: '/containers(0)/resources/cpus', errors: ['error.min'] },
        { path: '/scaling/instances', errors: ['error.expected.jsnumber'] },
      ],
    ],
  ];
  for (const [what, json, details] of cases) {
    it(what, () => assert.deepEqual(body(json), { message: 'Invalid JSON', details }));
  }
});

describe('Marathon pod definitions: semantic errors (422 Object is not valid)', () => {
  const ep = (name: string, extra: Record<string, unknown> = {}) => ({ name, ...extra });
  const cases: [string, unknown, unknown][] = [
    ['an id that is only the root', minimal({ id: '/' }), [{ path: '/id', errors: ['Path must contain at least one path element'] }]],
    ['a relative id', minimal({ id: 'some/foo' }), [{ path: '/id', errors: ['Path needs to be absolute'] }]],
    ['an id ending in a reserved word', minimal({ id: '/foo/versions' }), [{ path: '/id', errors: ['must not end with any of the following reserved keywords: restart, tasks, versions, ., ..'] }]],
    ['an empty user', minimal({ user: '' }), [{ path: '/user', errors: ['must not be empty'] }]],
    [
      'two containers with one name',
      { ...minimal(), containers: [minimal().containers[0], minimal().containers[0]] },
      [{ path: '/containers', errors: ['container names must be unique'] }],
    ],
    [
      'an endpoint name twice',
      minimal({}, { endpoints: [ep('endpoint', { hostPort: 123 }), ep('endpoint', { hostPort: 124 })] }),
      [{ path: '/', errors: ['endpoint names nust be unique across all containers'] }],
    ],
    ['a host port twice', minimal({}, { endpoints: [ep('e1', { hostPort: 123 }), ep('e2', { hostPort: 123 })] }), [{ path: '/', errors: ['host ports must be unique across all containers'] }]],
    [
      'a container port twice',
      minimal({ networks: [{ mode: 'container', name: 'net' }] }, { endpoints: [ep('e1', { containerPort: 123 }), ep('e2', { containerPort: 123 })] }),
      [{ path: '/', errors: ['container ports must be unique across all containers'] }],
    ],
    ['a container port with host networking', minimal({}, { endpoints: [ep('web', { containerPort: 80 })] }), [{ path: '/containers(0)/endpoints(0)/containerPort', errors: ['is not allowed when using host-mode networking'] }]],
    [
      'no container port with container networking',
      minimal({ networks: [{ mode: 'container', name: 'net' }] }, { endpoints: [ep('name1', { hostPort: 123 })] }),
      [{ path: '/containers(0)/endpoints(0)/containerPort', errors: ['is required when using container-mode networking'] }],
    ],
    ['a protocol twice', minimal({}, { endpoints: [ep('web', { protocol: ['tcp', 'tcp'] })] }), [{ path: '/containers(0)/endpoints(0)/protocol', errors: ['Duplicate protocols within the same endpoint are not allowed'] }]],
    [
      'a volume name twice',
      minimal({ volumes: [{ name: 'volume' }, { name: 'volume' }] }, { volumeMounts: [{ name: 'volume', mountPath: '/bla' }] }),
      [{ path: '/volumes', errors: ['volume names must be unique'] }],
    ],
    ['a volume nobody mounts', minimal({ volumes: [{ name: 'lonely' }] }), [{ path: '/volumes(0)', errors: ['volume must be referenced by at least one container'] }]],
    ['a mount of no volume', minimal({}, { volumeMounts: [{ name: 'ghost', mountPath: '/x' }] }), [{ path: '/containers(0)/volumeMounts(0)/name', errors: ['Referenced Volume in VolumeMount should exist'] }]],
    [
      'a health check timeout not below its interval (the RAML example pod.json)',
      minimal({}, { endpoints: [ep('web')], healthCheck: { http: { endpoint: 'web' }, intervalSeconds: 2, timeoutSeconds: 20 } }),
      [{ path: '/containers(0)/healthCheck/timeoutSeconds', errors: ['got 20, expected less than 2'] }],
    ],
    [
      'a health check on another container\'s endpoint',
      { ...minimal(), containers: [{ ...minimal().containers[0], healthCheck: { tcp: { endpoint: 'web' } } }, { name: 'other', resources: { cpus: 0.1, mem: 32 }, endpoints: [ep('web')] }] },
      [{ path: '/containers(0)/healthCheck/tcp/endpoint', errors: ['contained in the container endpoints'] }],
    ],
    [
      'a health check of two kinds',
      minimal({}, { endpoints: [ep('web')], healthCheck: { http: { endpoint: 'web' }, tcp: { endpoint: 'web' } } }),
      [{ path: '/containers(0)/healthCheck', errors: ['Only one of http, tcp, or command may be specified'] }],
    ],
    ['a health check of no kind', minimal({}, { healthCheck: {} }), [{ path: '/containers(0)/healthCheck', errors: ['Only one of http, tcp, or command may be specified'] }]],
    ['a host network with a name', minimal({ networks: [{ mode: 'host', name: 'foo' }] }), [{ path: '/networks', errors: ['Host networks may not have names or labels'] }]],
    ['a bridge network with a name', minimal({ networks: [{ mode: 'container/bridge', name: 'foo' }] }), [{ path: '/networks', errors: ['Bridge networks may not have names'] }]],
    [
      'host and container networks together',
      minimal({ networks: [{ mode: 'host' }, { mode: 'container', name: 'a' }] }),
      [{ path: '/networks', errors: ['May specify a single host network, single bridge network, or else 1-to-n container networks'] }],
    ],
    ['the same network twice', minimal({ networks: [{ mode: 'container', name: 'a' }, { mode: 'container', name: 'a' }] }), [{ path: '/networks', errors: ['Duplicate networks are not allowed', 'Berth joins a pod to one container network: give at most one'] }]],
    [
      'two container networks (Berth joins one)',
      minimal({ networks: [{ mode: 'container', name: 'a' }, { mode: 'container', name: 'b' }] }),
      [{ path: '/networks', errors: ['Berth joins a pod to one container network: give at most one'] }],
    ],
    ['UNIQUE with a value', minimal({ scheduling: { placement: { constraints: [{ fieldName: 'hostname', operator: 'UNIQUE', value: 'x' }] } } }), [{ path: '/scheduling/placement/constraints(0)', errors: ['UNIQUE does not accept a value'] }]],
    ['MAX_PER without a number', minimal({ scheduling: { placement: { constraints: [{ fieldName: 'rack', operator: 'MAX_PER' }] } } }), [{ path: '/scheduling/placement/constraints(0)', errors: ['MAX_PER requires an integer value'] }]],
    ['LIKE without a value', minimal({ scheduling: { placement: { constraints: [{ fieldName: 'rack', operator: 'LIKE' }] } } }), [{ path: '/scheduling/placement/constraints(0)', errors: ['LIKE and UNLIKE require a non-empty, regular expression value'] }]],
    ['LIKE with a broken pattern', minimal({ scheduling: { placement: { constraints: [{ fieldName: 'rack', operator: 'LIKE', value: '[' }] } } }), [{ path: '/scheduling/placement/constraints(0)', errors: ['is not a valid regular expression'] }]],
    ['GROUP_BY with a word', minimal({ scheduling: { placement: { constraints: [{ fieldName: 'rack', operator: 'GROUP_BY', value: 'many' }] } } }), [{ path: '/scheduling/placement/constraints(0)', errors: ['GROUP BY must define an integer value or else no value at all'] }]],
    ['a constraint without a field', minimal({ scheduling: { placement: { constraints: [{ fieldName: '', operator: 'CLUSTER' }] } } }), [{ path: '/scheduling/placement/constraints(0)', errors: ['missing field for constraint declaration'] }]],
    ['an env var naming no secret', minimal({ environment: { DB: { secret: 'nope' } } }), [{ path: '/environment/DB/secret', errors: ['references an undefined secret'] }]],
    [
      'a secret volume naming no secret',
      minimal({ volumes: [{ name: 'cert', secret: 'tls' }] }, { volumeMounts: [{ name: 'cert', mountPath: '/etc/tls' }] }),
      [{ path: '/volumes(0)/secret', errors: ['volume.secret must refer to an existing secret'] }],
    ],
    ['a pull config naming no secret', minimal({}, { image: { kind: 'DOCKER', id: 'x', pullConfig: { secret: 'cfg' } } }), [{ path: '/containers(0)/image/pullConfig', errors: ['pullConfig.secret must refer to an existing secret'] }]],
    ['a memory limit below the request', minimal({}, { resources: { cpus: 1, mem: 128 }, resourceLimits: { mem: 100 } }), [{ path: '/containers(0)/resourceLimits/mem', errors: ['resource limit must be greater than or equal to requested resource (128.0)'] }]],
    [
      'a resident pod that may run over capacity',
      minimal({ volumes: [{ name: 'v', persistent: { size: 1 } }], scheduling: { upgrade: { minimumHealthCapacity: 0, maximumOverCapacity: 0.1 }, unreachableStrategy: 'disabled' } }, { volumeMounts: [{ name: 'v', mountPath: 'v' }] }),
      [{ path: '/upgrade/maximumOverCapacity', errors: ['got 0.1, expected 0.0'] }],
    ],
    [
      'a resident pod with an unreachable strategy',
      minimal({ volumes: [{ name: 'v', persistent: { size: 1 } }], scheduling: { unreachableStrategy: { inactiveAfterSeconds: 0 } } }, { volumeMounts: [{ name: 'v', mountPath: 'v' }] }),
      [{ path: '/', errors: ['unreachableStrategy must be disabled for pods with persistent volumes'] }],
    ],
    ['seccomp on the pod', minimal({ linuxInfo: { seccomp: { unconfined: true } } }), [{ path: '/linuxInfo/seccomp', errors: ['Seccomp configuration on executor level is not supported'] }]],
    ['a role with a slash', minimal({ scheduling: { placement: { acceptedResourceRoles: ['a/b'] } } }), [{ path: '/scheduling/placement/acceptedResourceRoles', errors: ['A role name must not include a slash (\\x2f) character.'] }]],
  ];
  for (const [what, json, details] of cases) {
    it(what, () => assert.deepEqual(body(json), { message: 'Object is not valid', details }));
  }

  it('groups several messages under one path', () => {
    const b = body(minimal({}, { endpoints: [ep('a', { hostPort: 1 }), ep('a', { hostPort: 1 })] })) as { details: unknown[] };
    assert.deepEqual(b.details, [{ path: '/', errors: ['endpoint names nust be unique across all containers', 'host ports must be unique across all containers'] }]);
  });

  it('refuses resident updates that change resources, ports or volumes', () => {
    const resident = (cpus: number, size: number) => ok(minimal({ volumes: [{ name: 'v', persistent: { size } }] }, { resources: { cpus, mem: 32 }, volumeMounts: [{ name: 'v', mountPath: 'v' }] }));
    assert.deepEqual(validateUpdate(resident(0.1, 1), resident(0.1, 1)), []);
    assert.deepEqual(validateUpdate(resident(0.1, 1), resident(0.2, 2)), [{ path: '/', errors: ['persistent volumes cannot be updated', 'cpus cannot be updated if a pod has persistent volumes'] }]);
    assert.deepEqual(validateUpdate(ok(minimal()), ok(minimal({}, { resources: { cpus: 2, mem: 64 } }))), [], 'a pod without persistent volumes may change anything');
  });

  it('reads before it validates: a shape error hides semantic ones', () => {
    assert.equal((body(minimal({ id: '/', user: 5 })) as { message: string }).message, 'Invalid JSON');
    assert.equal(readPod(minimal({ id: '/' })).ok, true);
  });
});

describe('Marathon pod definitions as Berth pods', () => {
  it('sums container and executor resources into the pod reservation', () => {
    const input = toPodInput(ok(fixture('pod-with-multiple-containers.json')));
    assert.equal(input.vcpuCount, 0.13);
    assert.equal(input.memoryGb, (3 * 32 + 32) / 1024);
    assert.equal(input.gpuCount, 0);
    assert.equal(input.instances, 10);
    assert.equal(input.containerDiskGb, 50, 'no disk asked for: the default container disk');
    assert.equal(input.volumeGb, 0);
    assert.equal(input.startSsh, false);
    assert.equal(input.restartPolicy, 'always');
    assert.equal(input.name, '/pod-with-multiple-containers');
    assert.deepEqual(input.backoff, { initialSeconds: 1, factor: 1.15, maxSeconds: 300 });
    assert.deepEqual(input.network, { mode: 'host', name: null });
    const withDisk = toPodInput(ok(minimal({}, { resources: { cpus: 1, mem: 64, disk: 1500 } })));
    assert.equal(withDisk.containerDiskGb, 2);
  });

  it('runs a shell command in place of the image entrypoint, argv as its command', () => {
    const shell = toPodInput(ok(minimal()), { defaultImage: 'busybox:1' }).containers![0]!;
    assert.deepEqual([shell.image, shell.entrypoint, shell.command], ['busybox:1', ['/bin/sh', '-c', 'sleep 1000'], []]);
    const argv = toPodInput(ok(minimal({}, { exec: { command: { argv: ['sleep', '5'] } }, image: { kind: 'DOCKER', id: 'img' } }))).containers![0]!;
    assert.deepEqual([argv.image, argv.entrypoint, argv.command], ['img', [], ['sleep', '5']]);
    const over = toPodInput(ok(minimal({}, { exec: { command: { argv: ['/bin/sleep', '5'] }, overrideEntrypoint: true } }))).containers![0]!;
    assert.deepEqual([over.entrypoint, over.command], [['/bin/sleep'], ['5']]);
  });

  it('maps endpoints, health checks, limits, user and the kill grace period', () => {
    const pod = ok(fixture('complete-pod.json'));
    const input = toPodInput(pod);
    const c = input.containers![0]!;
    assert.deepEqual(c.endpoints, [{ name: 'http-endpoint', containerPort: 80, hostPort: 0, protocols: ['http'], labels: {} }]);
    assert.deepEqual(c.healthCheck, { kind: 'http', endpoint: 'http-endpoint', path: '/', scheme: 'HTTP', argv: [], gracePeriodSeconds: 30, intervalSeconds: 5, timeoutSeconds: 4, maxConsecutiveFailures: 3, delaySeconds: 2 });
    assert.deepEqual(c.resources, { cpus: null, memoryMb: 1024, gpus: 0, diskMb: 0 });
    assert.equal(c.user, 'root');
    assert.equal(c.killGracePeriodSeconds, 60);
    assert.deepEqual(c.volumeMounts, [{ name: 'etc', mountPath: '/mnt/etc', readOnly: true }]);
    assert.deepEqual(input.volumes, [{ name: 'etc', kind: 'host', hostPath: '/etc' }]);
    assert.deepEqual(input.network, { mode: 'container', name: 'dcos' });
    assert.deepEqual(input.labels, { owner: 'zeus', note: 'Away from olympus' });
    assert.deepEqual(c.env, { XPS1: 'Test' }, "Marathon's own variables are the agent's to set");
    const exec = toPodInput(ok(minimal({}, { healthCheck: { exec: { command: { shell: 'test -f /ok' } }, intervalSeconds: 5, timeoutSeconds: 2 } }))).containers![0]!;
    assert.deepEqual(exec.healthCheck?.argv, ['/bin/sh', '-c', 'test -f /ok']);
  });

  it('mounts relative paths under the Mesos sandbox and starts shell commands there', () => {
    const input = toPodInput(ok(fixture('with-ephemeral-vol.json')));
    const [ct1, ct2] = input.containers!;
    assert.deepEqual(input.volumes, [{ name: 'v1', kind: 'ephemeral' }]);
    assert.deepEqual(ct1!.volumeMounts, [{ name: 'v1', mountPath: '/mnt/mesos/sandbox/jdef-v1', readOnly: false }]);
    assert.deepEqual(ct2!.volumeMounts, [{ name: 'v1', mountPath: '/mnt/mesos/sandbox/etc', readOnly: false }]);
    assert.equal(ct2!.env!.MESOS_SANDBOX, '/mnt/mesos/sandbox');
    assert.deepEqual(ct2!.entrypoint, ['/bin/sh', '-c', 'cd /mnt/mesos/sandbox && while true; do cat ./etc/clock; sleep 1; done']);
  });

  it('maps networks: host to host, none to host where the policy grants it, container/bridge to bridge, container to a named network', () => {
    const none = toPodInput(ok(minimal({ networks: undefined })));
    assert.equal(none.network, undefined);
    assert.equal(none.hostNetworkByDefault, true);
    assert.deepEqual(toPodInput(ok(minimal({ networks: [{ mode: 'host' }] }))).network, { mode: 'host', name: null });
    assert.deepEqual(toPodInput(ok(minimal({ networks: [{ mode: 'container/bridge' }] }))).network, { mode: 'bridge', name: null });
    assert.deepEqual(toPodInput(ok(fixture('pod-with-endpoint.json'))).network, { mode: 'container', name: null });
  });

  it('keeps secrets as references: env, volumes and pod secrets name the store, never a value', () => {
    const pod = ok(
      minimal(
        { secrets: { db: { source: '/db/password' }, tls: { source: 'certs/tls' } }, environment: { DB_PASSWORD: { secret: 'db' }, PLAIN: 'x' }, volumes: [{ name: 'cert', secret: 'tls' }] },
        { volumeMounts: [{ name: 'cert', mountPath: '/etc/tls/cert.pem' }], environment: { PLAIN: 'y' } },
      ),
    );
    const input = toPodInput(pod);
    assert.deepEqual(input.secrets, { db: 'db/password', tls: 'certs/tls' });
    assert.deepEqual(input.containers![0]!.secretEnv, { DB_PASSWORD: 'db' });
    assert.equal(input.containers![0]!.env!.PLAIN, 'y', "the container's variable wins");
    assert.deepEqual(input.volumes, [{ name: 'cert', kind: 'secret', secret: 'tls' }]);
    compilePodSpec(input);
  });

  it('maps scheduling: constraints, upgrade, kill selection, persistent volumes', () => {
    const pod = ok(
      minimal(
        {
          volumes: [{ name: 'data', persistent: { size: 100 } }],
          scheduling: { placement: { constraints: [{ fieldName: '@hostname', operator: 'UNIQUE' }, { fieldName: 'rack', operator: 'MAX_PER', value: '2' }] }, killSelection: 'oldest_first' },
        },
        { volumeMounts: [{ name: 'data', mountPath: '/data' }] },
      ),
    );
    const input = toPodInput(pod);
    assert.deepEqual(input.constraints, [
      { field: '@hostname', operator: 'UNIQUE', value: null },
      { field: 'rack', operator: 'MAX_PER', value: '2' },
    ]);
    assert.deepEqual(input.upgrade, { minimumHealthCapacity: 0.5, maximumOverCapacity: 0 });
    assert.equal(input.killSelection, 'OLDEST_FIRST');
    assert.deepEqual(input.volumes, [{ name: 'data', kind: 'persistent', sizeMb: 100 }]);
  });

  it('puts Berth\'s problems back at Marathon paths', () => {
    assert.deepEqual(marathonProblem({ path: '/containers(1)/resources/memoryMb', message: 'm' }), { path: '/containers(1)/resources/mem', message: 'm' });
    assert.deepEqual(marathonProblem({ path: '/containers(0)/env/X', message: 'm' }), { path: '/containers(0)/environment/X', message: 'm' });
    assert.deepEqual(marathonProblem({ path: '/backoff/factor', message: 'm' }), { path: '/scheduling/backoff/backoffFactor', message: 'm' });
    assert.deepEqual(marathonProblem({ path: '/volumes(2)/hostPath', message: 'm' }), { path: '/volumes(2)/host', message: 'm' });
    assert.deepEqual(marathonProblem({ path: '/memoryGb', message: 'must be between 0.0625 and 16384' }), { path: '/', message: "the containers' and the executor's mem together, in GB: must be between 0.0625 and 16384" });
    assert.deepEqual(marathonProblem({ path: '/somethingNew', message: 'm' }), { path: '/', message: 'somethingNew: m' });
  });
});
