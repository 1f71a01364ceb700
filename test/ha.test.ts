/**
 * Several servers, one PostgreSQL (issue 12, docs/ha.md), end to end: three real `berth server`
 * processes on a private PostgreSQL of this run (test/support/postgres.ts, so restarting it harms no
 * other test file), two machines (test/support/machines.ts: agents in network namespaces with their
 * own dockerd, simulated GPUs) joined through one server. What it shows:
 * - a pod created through one server is seen, logged (native and RunPod logs), exec'd and reached
 *   over SSH through the others;
 * - kill -9 of the leader during 50 concurrent GPU pod creates and a running Marathon deployment:
 *   every acknowledged pod exists exactly once, no GPU is held by two instances meant to run, the
 *   deployment finishes under its own id;
 * - a leader paused (SIGSTOP) past its lease and resumed leads no more (fencing): it says it is a
 *   follower, and creates sent to it are placed by the new leader, no GPU doubled;
 * - a server restarted re-joins as a follower (after a clean stop of the leader too, which hands over);
 * - the database restarted: every server reconnects, and a change made through one server around the
 *   restart reaches another's views and its `/api/v1/events` stream (resumed from its last revision).
 *
 * Clients retry as careful clients do (test/support/ha-client.ts): a 503 NOT_LEADER or a refused
 * connection during a failover is fine when the create was not acknowledged.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { readSse } from '../src/cli/client.js';
import { spawnRun, sshOptions } from './support/clients.js';
import { EventFollower } from './support/event-stream.js';
import { createCarefully, podsNamed, type CreateOutcome } from './support/ha-client.js';
import { HaServers, type HaServer } from './support/ha-servers.js';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { Machines } from './support/machines.js';
import { startPrivatePostgres, type PrivatePostgres } from './support/postgres.js';
import { waitFor } from './support/server.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Generous: the box running the tests is loaded. */
const WAIT = 180_000;
const A100 = 'NVIDIA A100 80GB PCIe';
const GPUS_PER_MACHINE = 4;
const M = '/marathon/v2';

interface InstanceView {
  id: string;
  nodeId: string | null;
  goal: string;
  state: string;
  gpus: { uuid: string }[];
}
interface PodView {
  id: string;
  name: string;
  status: string;
  instances: InstanceView[];
}
interface NodeView {
  id: string;
  name: string;
  status: string;
}
interface MarathonStatus {
  status: string;
  spec: { version: string };
  instances: { status: string; specReference: string }[];
}
interface Deployment {
  id: string;
  affectedPods: string[];
}

describe('three servers on one PostgreSQL, two machines', { timeout: 2_400_000 }, () => {
  let pg: PrivatePostgres | undefined;
  let machines: Machines | undefined;
  let cluster: HaServers | undefined;
  let image = '';
  let dir = '';
  let failed = false;

  const c = (): HaServers => cluster!;
  const s = (i: number): HaServer => c().server(i);
  /** Runs a test's body; on failure the servers' and the database's logs are printed. */
  const logged = (fn: () => Promise<void>) => async () => {
    try {
      await fn();
    } catch (err) {
      failed = true;
      throw err;
    }
  };
  /** Every server running and answering again (one killed or paused by an earlier test comes back). */
  const allUp = async (): Promise<void> => {
    for (const x of c().list) {
      if (x.running && !x.live) x.sigcont();
      if (!x.running) await x.start();
    }
  };
  /** A server that answers, other than `not`. */
  const another = (...not: number[]): HaServer => {
    const x = c().live().find((y) => !not.includes(y.index));
    if (!x) throw new Error(`no live server besides ${not.join(', ')}`);
    return x;
  };
  const pod = async (via: HaServer, id: string) => {
    const r = await via.api<PodView>('GET', `/api/v1/pods/${id}`);
    assert.equal(r.status, 200, `GET /api/v1/pods/${id} on server ${via.index}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  /** Every pod, with its instances, as one live server lists them. */
  const allPods = async (via: HaServer): Promise<PodView[]> => {
    const r = await via.api<{ pods: PodView[]; next: string | null }>('GET', '/api/v1/pods?view=full&limit=10000');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.pods;
  };
  /** GPU UUIDs held by more than one instance meant to run. */
  const doubledGpus = (pods: PodView[]): string[] => {
    const holders = new Map<string, string[]>();
    for (const p of pods) for (const i of p.instances) if (i.goal === 'running') for (const g of i.gpus) holders.set(g.uuid, [...(holders.get(g.uuid) ?? []), i.id]);
    return [...holders].filter(([, ids]) => ids.length > 1).map(([uuid, ids]) => `${uuid}: ${ids.join(', ')}`);
  };
  /**
   * GPU UUIDs that two running containers on the machines' own Docker were given (NVIDIA_VISIBLE_DEVICES),
   * each holder named with its pod, instance and container start, and what the store says of the instance.
   */
  const gpusInTwoContainers = async (): Promise<string[]> => {
    const holders = new Map<string, { machine: string; pod: string; instance: string; started: string }[]>();
    for (const m of machines!.list) {
      for (const info of await m.docker.listContainers({ filters: { label: ['berth.pod'], status: ['running'] } })) {
        if (info.Labels['berth.kind'] === 'infra') continue;
        const inspected = await m.docker.getContainer(info.Id).inspect().catch(() => undefined);
        const devices = inspected?.Config.Env.find((e) => e.startsWith('NVIDIA_VISIBLE_DEVICES='))?.split('=')[1] ?? '';
        const holder = { machine: m.name, pod: info.Labels['berth.pod'] ?? '?', instance: info.Labels['berth.instance'] ?? '?', started: inspected?.State.StartedAt ?? '?' };
        for (const uuid of devices.split(',').filter((d) => d.startsWith('GPU-'))) holders.set(uuid, [...(holders.get(uuid) ?? []), holder]);
      }
    }
    const doubled = [...holders].filter(([, h]) => h.length > 1);
    if (doubled.length === 0) return [];
    const pods = new Map((await allPods(another())).map((p) => [p.id, p]));
    const describe = (h: { machine: string; pod: string; instance: string; started: string }): string => {
      const p = pods.get(h.pod);
      const i = p?.instances.find((x) => x.id === h.instance);
      return `${h.machine}:${h.pod} (${p ? `${p.name} ${p.status}` : 'no such pod'}; instance ${h.instance} ${i ? `goal ${i.goal} state ${i.state}` : 'not in the store'}; container started ${h.started})`;
    };
    return doubled.map(([uuid, h]) => `${uuid}: ${h.map(describe).join(', ')} at ${new Date().toISOString()}`);
  };
  const gpuPod = (name: string) => ({ name, image, command: ['sleep', '3600'], gpuCount: 1, volumeGb: 0 });
  const terminateAll = async (prefix: string): Promise<void> => {
    const via = another();
    for (const p of await allPods(via)) if (p.name.startsWith(prefix) && p.status !== 'TERMINATED') await via.api('POST', `/api/v1/pods/${p.id}/terminate`);
    await waitFor(`pods ${prefix}* to release their GPUs`, async () => ((await allPods(another())).some((p) => p.name.startsWith(prefix) && p.instances.some((i) => i.goal === 'running')) ? undefined : true), WAIT);
  };
  /** Every acknowledged create exists exactly once by name; no name twice at all. */
  const exactlyOnce = async (names: string[], outcomes: CreateOutcome[]): Promise<void> => {
    const all = await allPods(another());
    const count = new Map<string, number>();
    for (const p of all) count.set(p.name, (count.get(p.name) ?? 0) + 1);
    names.forEach((name, i) => {
      const o = outcomes[i]!;
      const n = count.get(name) ?? 0;
      if (o.acknowledged) assert.equal(n, 1, `${name} was acknowledged (${o.id}, via server ${o.via}) but exists ${n} times; the client saw: ${o.problems.join('; ')}`);
      else assert.ok(n <= 1, `${name} (never acknowledged) exists ${n} times; the client saw: ${o.problems.join('; ')}`);
    });
  };

  before(async () => {
    await ensureTestImage();
    dir = await mkdtemp(join(tmpdir(), 'berth-ssh-ha-'));
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id')]);
    pg = await startPrivatePostgres();
    const gpus = (m: number) => Array.from({ length: GPUS_PER_MACHINE }, (_, i) => ({ name: A100, uuid: `GPU-m${m}-${i}` }));
    machines = await Machines.start([
      { name: 'machine-1', gpus: gpus(1) },
      { name: 'machine-2', gpus: gpus(2) },
    ]);
    image = await machines.publish(TEST_IMAGE);
    // Servers only: the pods run on the machines. They listen on the hub address, which the machines reach.
    cluster = await HaServers.start({ databaseUrl: pg.url, host: machines.address, args: ['--no-agent'] });
    assert.equal((await s(0).api('POST', '/api/v1/ssh-keys', { publicKey: await readFile(join(dir, 'id.pub'), 'utf8') })).status, 201);
    // Joined through one server, as an operator would; the agents learn the others from it.
    await machines.startAgents({ server: s(0).url, token: await c().joinToken(0) });
    await waitFor('both nodes READY, as another server sees them', async () => {
      const r = await s(1).api<{ nodes: NodeView[] }>('GET', '/api/v1/nodes');
      return r.body.nodes.filter((n) => n.status === 'READY').length === 2 ? true : undefined;
    }, WAIT);
  });

  after(async () => {
    try {
      if (failed) {
        await cluster?.dumpLogs();
        for (const m of machines?.list ?? []) process.stderr.write(`\n---- agent of ${m.name} ends:\n${(await m.agentLog()).split('\n').slice(-30).join('\n')}\n`);
        process.stderr.write(`\n---- the private PostgreSQL's log ends:\n${((await pg?.log()) ?? '').split('\n').slice(-30).join('\n')}\n`);
      }
    } finally {
      await cluster?.close();
      await machines?.close();
      await pg?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  });

  it('a pod created through one server is seen, logged, exec\'d and reached over SSH through the others', logged(async () => {
    const made = await s(0).api<PodView>('POST', '/api/v1/pods', { name: 'ha-seen', image, volumeGb: 0, command: ['sh', '-c', 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.5; done'] });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const id = made.body.id;
    await waitFor(`${id} RUNNING as server 1 sees it`, async () => {
      const p = await pod(s(1), id);
      return p.status === 'RUNNING' && p.instances.some((i) => i.goal === 'running' && i.state === 'running') ? p : undefined;
    }, WAIT);

    // Server 0, which the agents joined through, first: it shows the test's own ways in work.
    for (const via of [s(0), s(1), s(2)]) {
      // Exec first: it needs the agent's channel on this server (agents connect to every server).
      const exec = await waitFor(`exec in ${id} through server ${via.index} (it needs the node's channel there: agents connect to every server)`, async () => {
        const r = await via.api<{ exitCode: number; stdout: string }>('POST', `/api/v1/pods/${id}/exec`, { command: ['sh', '-c', 'echo via-exec; exit 3'] });
        if (r.status !== 200) throw new Error(`${r.status} ${JSON.stringify(r.body)}`);
        return r.body;
      }, 60_000);
      assert.deepEqual([exec.exitCode, exec.stdout], [3, 'via-exec\n']);

      for (const path of [`/api/v1/pods/${id}/logs?tail=20`, `/runpod/v2/pods/${id}/logs?tail=20`]) {
        const line = await waitFor(`a log line of ${id} from ${path} on server ${via.index}`, () => firstTick(via, path), 60_000);
        assert.match(line, /tick \d+/);
      }

      const ran = await waitFor(`ssh to ${id} through server ${via.index}'s gateway`, async () => {
        const r = await spawnRun('ssh', [...sshOptions(join(dir, 'id')), '-p', String(via.sshPort), `${id}@${via.host}`, '--', 'echo via-ssh-$((40+2))'], undefined, 30_000);
        return r.code === 0 ? r : undefined;
      }, 60_000);
      assert.equal(ran.stdout.trim(), 'via-ssh-42');
    }
    assert.ok((await s(2).api('POST', `/api/v1/pods/${id}/terminate`)).status < 300);
  }));

  it('kill -9 of the leader during 50 concurrent GPU creates and a Marathon deployment: each acknowledged pod once, no GPU twice, the deployment finishes under its own id', logged(async () => {
    await allUp();
    const leader = await c().leader();
    const [f1, f2] = c().list.filter((x) => x.index !== leader);
    const path = '/ha/web';
    const marathonPod = (version: string, extra: Record<string, unknown> = {}) => ({
      id: path,
      containers: [{ name: 'main', image: { kind: 'DOCKER', id: image }, exec: { command: { shell: 'touch /tmp/started; sleep 8; touch /tmp/ready; exec sleep 3600' } }, resources: { cpus: 0.1, mem: 32 }, ...extra }],
      networks: [{ mode: 'container/bridge' }],
      environment: { VERSION: version },
    });
    const m = <T,>(via: HaServer, method: string, p: string, body?: unknown) => via.api<T>(method, M + p, body);
    const v1 = await m<{ version: string }>(f1!, 'POST', '/pods', marathonPod('1'));
    assert.equal(v1.status, 201, JSON.stringify(v1.body));
    await waitFor(`${path} STABLE`, async () => ((await m<MarathonStatus>(f2!, 'GET', `/pods${path}::status`)).body.status === 'STABLE' ? true : undefined), WAIT);
    // Version 2 turns healthy only 8 s after its start: its deployment is running when the leader dies.
    const slowHealth = { healthCheck: { exec: { command: { shell: 'test -f /tmp/ready' } }, gracePeriodSeconds: 120, intervalSeconds: 2, timeoutSeconds: 1, delaySeconds: 0 } };
    const v2 = await m<{ version: string }>(f1!, 'PUT', `/pods${path}`, marathonPod('2', slowHealth));
    assert.equal(v2.status, 200, JSON.stringify(v2.body));
    const deploymentId = v2.headers.get('marathon-deployment-id');
    assert.ok(deploymentId, 'the update answered with its deployment id');
    assert.ok((await m<Deployment[]>(f2!, 'GET', '/deployments')).body.some((d) => d.id === deploymentId), 'the deployment runs');

    // 50 creates at once, spread over the three servers; the leader dies once a few are acknowledged.
    const names = Array.from({ length: 50 }, (_, i) => `ha-burst-${i}`);
    let acked = 0;
    const creates = names.map((name, i) =>
      createCarefully(c(), gpuPod(name), { first: i % 3 }).then((o) => {
        if (o.acknowledged) acked++;
        return o;
      }),
    );
    const t0 = Date.now();
    while (acked < 5 && Date.now() - t0 < 5_000) await sleep(20);
    await s(leader).kill9();
    const outcomes = await Promise.all(creates);
    const newLeader = await c().leader(60_000);
    assert.notEqual(newLeader, leader);
    assert.ok(outcomes.filter((o) => o.acknowledged).length > 0, 'some creates were acknowledged');
    await exactlyOnce(names, outcomes);

    // The GPUs: all eight handed out (more pods than GPUs), none to two instances.
    const total = 2 * GPUS_PER_MACHINE;
    const settled = await waitFor(`${total} GPUs handed out`, async () => {
      const pods = await allPods(another());
      const held = pods.flatMap((p) => p.instances.filter((i) => i.goal === 'running').flatMap((i) => i.gpus));
      return held.length >= total ? pods : undefined;
    }, WAIT);
    assert.deepEqual(doubledGpus(settled), []);
    assert.deepEqual(await gpusInTwoContainers(), [], 'no GPU is given to two running containers on the machines');

    // The deployment: finished under its own id (no other deployment took over the pod), the pod on version 2.
    await waitFor(`deployment ${deploymentId} finished`, async () => {
      const list = (await m<Deployment[]>(another(), 'GET', '/deployments')).body;
      const others = list.filter((d) => d.affectedPods.includes(path) && d.id !== deploymentId);
      assert.deepEqual(others.map((d) => d.id), [], `another deployment took over ${path}`);
      return list.some((d) => d.id === deploymentId) ? undefined : true;
    }, WAIT);
    const status = (await m<MarathonStatus>(another(), 'GET', `/pods${path}::status`)).body;
    assert.equal(status.status, 'STABLE');
    assert.equal(status.spec.version, v2.body.version);
    assert.ok(status.instances.length > 0 && status.instances.every((i) => i.specReference.endsWith(`::versions/${v2.body.version}`)), JSON.stringify(status.instances));

    assert.equal((await m(another(), 'DELETE', `/pods${path}`)).status, 202);
    await terminateAll('ha-burst-');
  }));

  it('a leader paused past its lease and resumed leads no more: it says so, and what is sent to it is placed by the new leader, no GPU twice', logged(async () => {
    await allUp();
    const old = s(await c().leader());
    const before = (await old.cluster()).leader!;
    old.sigstop();
    // The others elect a new leader once the lease (3 s) runs out; the paused one is not asked.
    const leader = s(await c().leader(60_000));
    assert.notEqual(leader.index, old.index);
    // Creates sent to the paused server wait in its sockets and are read the moment it resumes,
    // when it may still think it leads: fencing must stop it from placing them itself.
    const names = Array.from({ length: 6 }, (_, i) => `ha-paused-${i}`);
    const creates = names.map((name) => createCarefully(c(), gpuPod(name), { only: old, timeoutMs: 90_000 }));
    await sleep(1_500);
    old.sigcont();
    const outcomes = await Promise.all(creates);

    await waitFor(`server ${old.index} saying it follows server ${leader.index}`, async () => {
      const v = await old.cluster();
      return !v.self.leader && v.leader?.id === (await leader.cluster()).self.id ? v : undefined;
    }, 30_000);
    const now = (await leader.cluster()).leader!;
    assert.ok(now.epoch > before.epoch, `the new leader's epoch ${now.epoch} is past the old one's ${before.epoch}`);
    assert.equal(await c().leader(), leader.index);
    await exactlyOnce(names, outcomes);
    for (const [i, o] of outcomes.entries()) {
      if (!o.acknowledged) continue;
      await waitFor(`${names[i]} placed`, async () => ((await pod(leader, o.id)).instances.some((x) => x.goal === 'running' && x.nodeId && x.gpus.length === 1) ? true : undefined), WAIT);
    }
    assert.deepEqual(doubledGpus(await allPods(leader)), []);
    assert.deepEqual(await gpusInTwoContainers(), [], 'no GPU is given to two running containers on the machines');
    await terminateAll('ha-paused-');
  }));

  it('a server restarted re-joins as a follower; a leader stopped cleanly hands over and comes back a follower', logged(async () => {
    await allUp();
    const leader = await c().leader();
    const follower = s((leader + 1) % 3);
    await follower.restart();
    assert.equal(await c().leader(30_000), leader, 'a follower coming back does not take the lead');
    const view = await follower.cluster();
    assert.equal(view.self.leader, false);
    // Its earlier start's entry ages out of the list (seen in the last 10 s); the new one is in it.
    await waitFor(`three servers listed, server ${follower.index}'s new start among them`, async () => {
      const v = await follower.cluster();
      return v.servers.length === 3 && v.servers.some((x) => x.id === v.self.id) ? true : undefined;
    }, 30_000);

    const old = s(leader);
    await old.stop();
    const next = await c().leader(30_000);
    assert.notEqual(next, leader);
    await old.start();
    assert.equal(await c().leader(30_000), next);
    assert.equal((await old.cluster()).self.leader, false);
  }));

  it('the database restarted: every server reconnects and resyncs, and no change made around the restart is missed', logged(async () => {
    await allUp();
    const a = s(await c().leader());
    const b = another(a.index);
    const events = new EventFollower(b.url, c().key);
    try {
      await events.ready;
      // Writes through A before, during and after the restart; the restart starts after the fourth.
      const names = Array.from({ length: 12 }, (_, i) => `ha-db-${i}`);
      const outcomes: CreateOutcome[] = [];
      let restart: Promise<void> | undefined;
      for (const [i, name] of names.entries()) {
        if (i === 4) restart = pg!.restart('fast');
        outcomes.push(await createCarefully(c(), { name, image, command: ['sleep', '3600'], volumeGb: 0 }, { only: a, timeoutMs: 90_000 }));
        await sleep(300);
      }
      await restart;
      // And a change after it: the first pod stopped.
      const first = outcomes[0]!;
      assert.ok(first.acknowledged);
      const stopped = await a.api('POST', `/api/v1/pods/${first.id}/stop`);
      assert.equal(stopped.status, 200, JSON.stringify(stopped.body));

      for (const x of c().list) assert.ok(x.running, `server ${x.index} exited when the database restarted`);
      await exactlyOnce(names, outcomes);
      const ids = (await Promise.all(names.map((n) => podsNamed(c(), n)))).flat().map((p) => p.id);
      assert.equal(ids.length, names.length, 'every create went through in the end');
      for (const id of ids) {
        await waitFor(`${id} in server ${b.index}'s GET`, async () => ((await b.api('GET', `/api/v1/pods/${id}`)).status === 200 ? true : undefined), 30_000);
        await events.waitFor(`pod ${id}`, (e) => e.event === 'pod' && e.data.id === id, 30_000);
      }
      await waitFor(`the stop of ${first.id} in server ${b.index}'s GET`, async () => ((await pod(b, first.id)).instances.every((i) => i.goal !== 'running') ? true : undefined), 30_000);
      await events.waitFor(`the stop of ${first.id}`, (e) => e.event === 'pod' && e.data.id === first.id && (e.data.instances as InstanceView[]).every((i) => i.goal !== 'running'), 30_000);
      // Every server reads the database again, and they agree on a leader.
      await c().leader(60_000);
      for (const x of c().list) assert.equal((await x.api('GET', `/api/v1/pods/${first.id}`)).status, 200, `server ${x.index} reads the database`);
    } finally {
      await events.close();
    }
    await terminateAll('ha-db-');
  }));
});

/** The first `tick N` line of a log stream (native or RunPod), or undefined when the stream ends or fails without one. */
async function firstTick(via: HaServer, path: string): Promise<string | undefined> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 20_000);
  try {
    const res = await fetch(via.url + path, { headers: { authorization: `Bearer ${via.key}`, accept: 'text/event-stream' }, signal: ac.signal });
    if (res.status !== 200 || !res.body) return undefined;
    for await (const e of readSse(res.body, ac.signal)) {
      const m = /tick \d+/.exec(String(e.data));
      if (m) return m[0];
      if (e.event === 'error') return undefined;
    }
    return undefined;
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}
