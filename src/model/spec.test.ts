import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BerthError, type Problem } from './errors.js';
import { parsePort } from './port-spec.js';
import { compilePodSpec } from './spec-compile.js';
import { mergeTemplate, specToInput } from './spec-input.js';
import { podPorts, type PodInput, type PodSpec } from './spec.js';

/** The problems compilePodSpec reports for `input`; fails when it compiles. */
function problemsOf(input: unknown): Problem[] {
  try {
    compilePodSpec(input as PodInput);
  } catch (e) {
    assert.ok(e instanceof BerthError, `expected a BerthError, got ${String(e)}`);
    assert.equal(e.code, 'BERTH_ERR_VALIDATION');
    assert.equal(e.status, 400);
    return e.problems;
  }
  assert.fail(`expected ${JSON.stringify(input)} to be refused`);
}

const paths = (problems: Problem[]): string[] => problems.map((p) => p.path).sort();

describe('compilePodSpec defaults', () => {
  it('gives a bare image the RunPod defaults', () => {
    const spec = compilePodSpec({ image: 'busybox:latest' });
    assert.deepEqual(spec, {
      name: 'my pod',
      containers: [{ name: 'main', image: 'busybox:latest', entrypoint: [], command: [], env: {}, secretEnv: {}, ports: [], endpoints: [], resources: { cpus: null, memoryMb: null, gpus: 0, diskMb: 0 }, volumeMounts: [], healthCheck: null, user: null, tty: false, killGracePeriodSeconds: null, labels: {} }],
      gpuCount: 0,
      gpuTypeIds: [],
      vcpuCount: null,
      memoryGb: null,
      containerDiskGb: 50,
      volumeGb: 20,
      volumeMountPath: '/workspace',
      networkVolumeId: null,
      registryAuthId: null,
      templateId: null,
      startSsh: true,
      restartPolicy: 'always',
      instances: 1,
      labels: {},
      backoff: { initialSeconds: 1, factor: 1.15, maxSeconds: 300 },
      volumes: [],
      network: { mode: 'bridge', name: null },
      secrets: {},
      constraints: [],
      upgrade: { minimumHealthCapacity: 1, maximumOverCapacity: 1 },
      killSelection: 'YOUNGEST_FIRST',
      marathon: null,
    } satisfies PodSpec);
  });

  it('keeps what the input gives over the defaults', () => {
    const spec = compilePodSpec({
      name: 'trainer',
      image: 'ghcr.io/acme/train@sha256:abc',
      entrypoint: ['python'],
      command: ['-m', 'train'],
      env: { EPOCHS: '3' },
      gpuCount: 2,
      gpuTypeIds: ['NVIDIA A100 80GB PCIe'],
      vcpuCount: 7.5,
      memoryGb: 0.5,
      containerDiskGb: 10,
      volumeGb: 0,
      volumeMountPath: '/data',
      networkVolumeId: 'nv1',
      registryAuthId: '',
      startSsh: false,
      restartPolicy: 'never',
      instances: 0,
      labels: { team: 'ml' },
    });
    assert.equal(spec.name, 'trainer');
    assert.deepEqual(
      { ...spec.containers[0], secretEnv: undefined, endpoints: undefined, resources: undefined, volumeMounts: undefined, healthCheck: undefined, user: undefined, tty: undefined, killGracePeriodSeconds: undefined, labels: undefined },
      { name: 'main', image: 'ghcr.io/acme/train@sha256:abc', entrypoint: ['python'], command: ['-m', 'train'], env: { EPOCHS: '3' }, ports: [], secretEnv: undefined, endpoints: undefined, resources: undefined, volumeMounts: undefined, healthCheck: undefined, user: undefined, tty: undefined, killGracePeriodSeconds: undefined, labels: undefined },
    );
    assert.equal(spec.gpuCount, 2);
    assert.deepEqual(spec.gpuTypeIds, ['NVIDIA A100 80GB PCIe']);
    assert.equal(spec.vcpuCount, 7.5);
    assert.equal(spec.memoryGb, 0.5);
    assert.equal(spec.containerDiskGb, 10);
    assert.equal(spec.volumeGb, 0);
    assert.equal(spec.volumeMountPath, '/data');
    assert.equal(spec.networkVolumeId, 'nv1');
    assert.equal(spec.registryAuthId, null, 'an empty id means none');
    assert.equal(spec.startSsh, false);
    assert.equal(spec.restartPolicy, 'never');
    assert.equal(spec.instances, 0);
    assert.deepEqual(spec.labels, { team: 'ml' });
  });

  it('gives each pod its own backoff object', () => {
    const a = compilePodSpec({ image: 'x' });
    a.backoff.maxSeconds = 1;
    assert.equal(compilePodSpec({ image: 'x' }).backoff.maxSeconds, 300);
  });

  it('names unnamed containers c0, c1, ...', () => {
    const spec = compilePodSpec({ containers: [{ image: 'a' }, { image: 'b', name: 'side' }, { image: 'c' }] });
    assert.deepEqual(spec.containers.map((c) => c.name), ['c0', 'side', 'c2']);
  });
});

describe('compilePodSpec validation', () => {
  it('collects every problem at once, each with its path', () => {
    const problems = problemsOf({
      name: '',
      containers: [{ name: 'web', image: 'nginx', ports: ['80/http'] }, { name: 'Bad_Name', ports: ['99999/http', 'x'], env: { '1BAD': 'v' } }],
      gpuCount: -1,
      gpuTypeIds: 'A100',
      vcpuCount: 0,
      memoryGb: Number.NaN,
      containerDiskGb: 0,
      volumeGb: 1.5,
      volumeMountPath: '/',
      restartPolicy: 'sometimes',
      instances: 1001,
      startSsh: 'yes',
      labels: { '': 'x' },
    });
    assert.deepEqual(paths(problems), [
      '/containerDiskGb',
      '/containers(1)/env/1BAD',
      '/containers(1)/image',
      '/containers(1)/name',
      '/containers(1)/ports(0)',
      '/containers(1)/ports(1)',
      '/gpuCount',
      '/gpuTypeIds',
      '/instances',
      '/labels/',
      '/memoryGb',
      '/name',
      '/restartPolicy',
      '/startSsh',
      '/vcpuCount',
      '/volumeGb',
      '/volumeMountPath',
    ]);
    const byPath = new Map(problems.map((p) => [p.path, p.message]));
    assert.equal(byPath.get('/gpuCount'), 'must be between 0 and 64');
    assert.equal(byPath.get('/volumeGb'), 'must be a whole number');
    assert.equal(byPath.get('/containers(1)/image'), 'is required');
    assert.match(byPath.get('/containers(1)/ports(0)')!, /99999 is out of range 1-65535/);
    assert.match(byPath.get('/containers(1)/ports(1)')!, /"x" is not a port/);
  });

  it('says in the error message every problem it found', () => {
    try {
      compilePodSpec({ gpuCount: 100 });
      assert.fail('should throw');
    } catch (e) {
      assert.ok(e instanceof BerthError);
      assert.match(e.message, /\/image: is required/);
      assert.match(e.message, /\/gpuCount: must be between 0 and 64/);
      assert.equal(e.retryable, false);
    }
  });

  it('refuses input that is not an object', () => {
    for (const input of [null, [], 'busybox']) assert.deepEqual(problemsOf(input), [{ path: '/', message: 'must be an object' }]);
  });

  it('requires an image for a single-container pod, with a top-level path', () => {
    assert.deepEqual(problemsOf({}), [{ path: '/image', message: 'is required' }]);
    assert.deepEqual(paths(problemsOf({ image: 'has space' })), ['/image']);
  });

  it('takes either image or containers, not both', () => {
    const problems = problemsOf({ image: 'a', containers: [{ image: 'b' }] });
    assert.deepEqual(problems, [{ path: '/image', message: 'set image on each container when giving containers' }]);
  });

  it('refuses every single-container field beside containers rather than dropping it', () => {
    const problems = problemsOf({ containers: [{ image: 'a' }], env: { A: '1' }, ports: ['80/http'], entrypoint: ['sh'], command: ['x'] });
    assert.deepEqual(paths(problems), ['/command', '/entrypoint', '/env', '/ports']);
    assert.equal(problems.find((p) => p.path === '/env')!.message, 'set env on each container when giving containers');
  });

  it('needs at least one container when containers is given', () => {
    assert.deepEqual(paths(problemsOf({ containers: [] })), ['/containers']);
  });

  it('refuses two containers with one name', () => {
    const problems = problemsOf({ containers: [{ name: 'a', image: 'x' }, { name: 'a', image: 'y' }] });
    assert.deepEqual(problems, [{ path: '/containers(1)/name', message: 'container name a is used twice' }]);
  });

  it('checks container names as DNS labels of at most 63 characters', () => {
    assert.equal(compilePodSpec({ containers: [{ name: 'a'.repeat(63), image: 'x' }] }).containers[0]!.name.length, 63);
    for (const name of ['a'.repeat(64), '-a', 'a-', 'A', 'a_b', '']) {
      assert.deepEqual(paths(problemsOf({ containers: [{ name, image: 'x' }] })), ['/containers(0)/name'], name);
    }
  });

  it('checks entrypoint and command are lists of strings', () => {
    assert.deepEqual(paths(problemsOf({ image: 'x', entrypoint: 'sh', command: [1] })), ['/command', '/entrypoint']);
  });

  it('refuses ids that are not strings', () => {
    assert.deepEqual(paths(problemsOf({ image: 'x', networkVolumeId: 5, registryAuthId: true, templateId: {} })), ['/networkVolumeId', '/registryAuthId', '/templateId']);
  });

  it('accepts fractional CPUs and memory within range, refuses out-of-range ones', () => {
    assert.equal(compilePodSpec({ image: 'x', vcpuCount: 0.01, memoryGb: 0.0625 }).vcpuCount, 0.01);
    assert.deepEqual(paths(problemsOf({ image: 'x', vcpuCount: 2000, memoryGb: 0.001 })), ['/memoryGb', '/vcpuCount']);
    assert.equal(compilePodSpec({ image: 'x', vcpuCount: null, memoryGb: null }).memoryGb, null);
  });
});

describe('compilePodSpec ports', () => {
  it('reads a list or RunPod\'s comma-separated string alike', () => {
    const want = [
      { port: 8888, protocol: 'http' },
      { port: 22, protocol: 'tcp' },
    ];
    assert.deepEqual(compilePodSpec({ image: 'x', ports: ['8888/http', '22/tcp'] }).containers[0]!.ports, want);
    assert.deepEqual(compilePodSpec({ image: 'x', ports: '8888/http,22/tcp' }).containers[0]!.ports, want);
    assert.deepEqual(compilePodSpec({ image: 'x', ports: ' 8888/http , 22/tcp ,' }).containers[0]!.ports, want);
    assert.deepEqual(compilePodSpec({ image: 'x', ports: '' }).containers[0]!.ports, []);
  });

  it('points at the offending entry of a list', () => {
    const problems = problemsOf({ image: 'x', ports: ['8888/http', '8888/udp', '0/tcp'] });
    assert.deepEqual(paths(problems), ['/ports(1)', '/ports(2)']);
    assert.deepEqual(paths(problemsOf({ image: 'x', ports: 'http/8888' })), ['/ports(0)']);
  });

  it('refuses a port listed twice, even with another protocol', () => {
    const problems = problemsOf({ image: 'x', ports: '8888/http,22/tcp,8888/tcp' });
    assert.deepEqual(problems, [{ path: '/ports(2)', message: 'port 8888 is listed twice' }]);
  });

  it('refuses one port published by two containers of a pod', () => {
    const problems = problemsOf({ containers: [{ image: 'a', ports: ['80/http'] }, { image: 'b', ports: '81/http,80/tcp' }] });
    assert.deepEqual(problems, [{ path: '/containers(1)/ports', message: 'port 80 is used by another container of the pod' }]);
  });

  it('splits RunPod strings found inside a list, as a schema layer may wrap them', () => {
    const ports = compilePodSpec({ image: 'x', ports: ['8888/http,22/tcp', '80/http'] }).containers[0]!.ports;
    assert.deepEqual(ports.map((p) => p.port), [8888, 22, 80]);
    assert.deepEqual(paths(problemsOf({ image: 'x', ports: ['8888/http,8888/tcp'] })), ['/ports(1)']);
  });

  it('refuses ports that are neither a list nor a string', () => {
    assert.deepEqual(problemsOf({ image: 'x', ports: 8888 }), [{ path: '/ports', message: 'must be a list of strings' }]);
  });

  it('parsePort bounds the port number', () => {
    assert.deepEqual(parsePort('1/tcp'), { port: 1, protocol: 'tcp' });
    assert.deepEqual(parsePort('65535/http'), { port: 65535, protocol: 'http' });
    assert.equal(typeof parsePort('0/tcp'), 'string');
    assert.equal(typeof parsePort('65536/tcp'), 'string');
    assert.equal(typeof parsePort('123456/tcp'), 'string');
    assert.equal(typeof parsePort('80'), 'string');
  });

  it('podPorts lists every container\'s ports', () => {
    const spec = compilePodSpec({ containers: [{ image: 'a', ports: ['80/http'] }, { image: 'b', ports: ['22/tcp'] }] });
    assert.deepEqual(podPorts(spec).map((p) => p.port), [80, 22]);
  });
});

describe('compilePodSpec env', () => {
  it('takes names of letters, digits and _ that do not start with a digit', () => {
    const env = { A: '1', _x: '2', snake_case_9: '', MiXeD: 'v=1,2' };
    assert.deepEqual(compilePodSpec({ image: 'x', env }).containers[0]!.env, env);
  });

  it('refuses bad names and non-string values, one problem each', () => {
    const problems = problemsOf({ image: 'x', env: { '9LIVES': 'a', 'WITH-DASH': 'b', 'WITH SPACE': 'c', '': 'd', NUM: 1, OK: 'fine' } });
    assert.deepEqual(paths(problems), ['/env/', '/env/9LIVES', '/env/NUM', '/env/WITH SPACE', '/env/WITH-DASH']);
    assert.equal(problems.find((p) => p.path === '/env/NUM')!.message, 'must be a string');
  });

  it('refuses env that is not an object', () => {
    assert.deepEqual(problemsOf({ image: 'x', env: ['A=1'] }), [{ path: '/env', message: 'must be an object of string values' }]);
  });

  it('checks each container\'s env under its own path', () => {
    assert.deepEqual(paths(problemsOf({ containers: [{ image: 'a', env: { OK: '1' } }, { image: 'b', env: { 'no-dash': '1' } }] })), ['/containers(1)/env/no-dash']);
  });
});

describe('mergeTemplate', () => {
  const template: PodInput = {
    image: 'pytorch:2',
    env: { A: 'template', B: 'template' },
    ports: ['8888/http'],
    gpuCount: 1,
    volumeGb: 100,
    labels: { from: 'template' },
  };

  it('merges env per key, the request winning', () => {
    const merged = mergeTemplate(template, { env: { B: 'request', C: 'request' } });
    assert.deepEqual(merged.env, { A: 'template', B: 'request', C: 'request' });
  });

  it('lets any other field of the request replace the template\'s whole', () => {
    const merged = mergeTemplate(template, { image: 'mine', ports: ['22/tcp'], gpuCount: 0, labels: { from: 'request' } });
    assert.equal(merged.image, 'mine');
    assert.deepEqual(merged.ports, ['22/tcp'], 'ports are replaced, not merged');
    assert.equal(merged.gpuCount, 0, 'a falsy value still overrides');
    assert.deepEqual(merged.labels, { from: 'request' }, 'labels are replaced, not merged');
    assert.equal(merged.volumeGb, 100);
  });

  it('does not let an undefined field override', () => {
    const merged = mergeTemplate(template, { image: undefined, gpuCount: undefined, env: undefined, name: 'n' });
    assert.equal(merged.image, 'pytorch:2');
    assert.equal(merged.gpuCount, 1);
    assert.deepEqual(merged.env, template.env);
    assert.equal(merged.name, 'n');
  });

  it('lets null override (null means "none" for ids and limits)', () => {
    const merged = mergeTemplate({ image: 'x', memoryGb: 8, networkVolumeId: 'nv' }, { memoryGb: null, networkVolumeId: null });
    assert.equal(merged.memoryGb, null);
    assert.equal(merged.networkVolumeId, null);
  });

  it('takes the request\'s env alone when the template has none, and leaves env out when neither has it', () => {
    assert.deepEqual(mergeTemplate({ image: 'x' }, { env: { A: '1' } }).env, { A: '1' });
    assert.equal('env' in mergeTemplate({ image: 'x' }, { name: 'n' }), false);
  });

  it('lets a request\'s containers replace a template\'s single-container form, its env going under each container\'s', () => {
    const merged = mergeTemplate({ image: 'pytorch:2', ports: ['8888/http'], command: ['x'], env: { A: 't', B: 't' }, gpuCount: 1 }, {
      containers: [
        { name: 'app', image: 'app:1', env: { B: 'app' } },
        { name: 'side', image: 'side:1' },
      ],
    });
    const spec = compilePodSpec(merged);
    assert.deepEqual(spec.containers.map((c) => [c.name, c.image, c.ports, c.command, c.env]), [
      ['app', 'app:1', [], [], { A: 't', B: 'app' }],
      ['side', 'side:1', [], [], { A: 't', B: 't' }],
    ]);
    assert.equal(spec.gpuCount, 1);
  });

  it('lets a request\'s image replace a template\'s containers', () => {
    const merged = mergeTemplate({ containers: [{ name: 'a', image: 'a:1' }, { name: 'b', image: 'b:1' }], volumeGb: 5 }, { image: 'solo:1' });
    const spec = compilePodSpec(merged);
    assert.deepEqual(spec.containers.map((c) => [c.name, c.image]), [['main', 'solo:1']]);
    assert.equal(spec.volumeGb, 5);
  });

  it('changes neither argument', () => {
    const t: PodInput = { image: 'x', env: { A: '1' } };
    const r: PodInput = { env: { B: '2' } };
    mergeTemplate(t, r);
    assert.deepEqual(t, { image: 'x', env: { A: '1' } });
    assert.deepEqual(r, { env: { B: '2' } });
  });
});

describe('specToInput', () => {
  const roundTrip = (input: PodInput): void => {
    const spec = compilePodSpec(input);
    assert.deepEqual(compilePodSpec(specToInput(spec)), spec);
  };

  it('round-trips a bare single-container spec', () => roundTrip({ image: 'busybox' }));

  it('round-trips a full single-container spec in the image form', () => {
    const input: PodInput = {
      name: 'jupyter',
      image: 'runpod/pytorch:2.1',
      entrypoint: ['bash', '-c'],
      command: ['start.sh'],
      env: { JUPYTER_PASSWORD: 'x' },
      ports: '8888/http,22/tcp',
      gpuCount: 1,
      gpuTypeIds: ['NVIDIA GeForce RTX 4090', 'NVIDIA RTX A6000'],
      vcpuCount: 4,
      memoryGb: 31.5,
      containerDiskGb: 30,
      volumeGb: 0,
      volumeMountPath: '/data',
      networkVolumeId: 'nv123',
      registryAuthId: 'ra123',
      templateId: 't123',
      startSsh: false,
      restartPolicy: 'on-failure',
      instances: 3,
      labels: { team: 'ml' },
    };
    roundTrip(input);
    const back = specToInput(compilePodSpec(input));
    assert.equal(back.image, 'runpod/pytorch:2.1');
    assert.deepEqual(back.ports, ['8888/http', '22/tcp']);
    assert.equal(back.containers, undefined);
  });

  it('round-trips a multi-container spec in the containers form', () => {
    const input: PodInput = {
      name: 'web',
      containers: [
        { name: 'app', image: 'app:1', command: ['serve'], env: { PORT: '8080' }, ports: ['8080/http'] },
        { name: 'sidecar', image: 'proxy:1', entrypoint: ['/proxy'], ports: '9000/tcp,9001/tcp' },
      ],
      memoryGb: 2,
    };
    roundTrip(input);
    const back = specToInput(compilePodSpec(input));
    assert.equal(back.image, undefined);
    assert.deepEqual(back.containers?.map((c) => c.ports), [['8080/http'], ['9000/tcp', '9001/tcp']]);
  });

  it('keeps the containers form for one container not named main', () => {
    const input: PodInput = { containers: [{ name: 'app', image: 'app:1' }] };
    roundTrip(input);
    assert.equal(specToInput(compilePodSpec(input)).containers?.[0]?.name, 'app');
  });

  it('gives an input that a partial update can be spread over', () => {
    const spec = compilePodSpec({ image: 'a', env: { A: '1' }, gpuCount: 1 });
    const updated = compilePodSpec({ ...specToInput(spec), image: 'b' });
    assert.deepEqual(updated, { ...spec, containers: [{ ...spec.containers[0]!, image: 'b' }] });
  });
});
