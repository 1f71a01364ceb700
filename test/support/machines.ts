/**
 * Machines for multi-node tests: each Berth agent on a "machine" of its own, on this one box.
 *
 * A run takes a /16 of its own, 10.<run>.0.0/16 (claimed by creating `/var/lib/berth-machines/<run>`,
 * so two test processes never share one), and puts the hub address 10.<run>.0.1 on the host's
 * loopback: the server and the registry listen there, and every machine reaches it.
 *
 * Machine n is:
 * - a network namespace `berth-m-<run>-<n>` joined to the host by a veth pair, `bm<run>-<n>` on the
 *   host (10.<run>.<n>.1/24, the machine's gateway) and `eth0` inside (10.<run>.<n>.2/24), IPv6 off;
 * - its own `dockerd` in that namespace, with its own `--data-root` (under /var/lib, on the host
 *   Docker's filesystem, so overlay2 works), `--exec-root`, socket, pid file, bridge (`--bip
 *   10.<run>.<128+n>.1/24`) and `--cgroup-parent`, trusting the run's registry over plain HTTP. It is
 *   entered with `nsenter --net` rather than `ip netns exec`: the latter remounts /sys for the
 *   namespace, which hides the cgroup mounts dockerd needs;
 * - a firewall in the namespace: INPUT accepts loopback and replies and rejects the rest;
 *   DOCKER-USER rejects new connections coming in on eth0, so ports its pods publish (DNAT'ed and
 *   forwarded, never seen by INPUT) cannot be dialled either. The machine dials out; nothing dials it.
 * - a real `berth agent` process in the namespace, talking to its own dockerd through DOCKER_HOST.
 *
 * Images come as they would for a user: the run's registry (Debian's docker-registry) on the hub, the
 * image pushed there from the host's Docker (`publish`), pods naming `10.<run>.0.1:<port>/…`. Nothing
 * is loaded into a machine's daemon by hand.
 *
 * `close()` takes everything down (agents, containers, daemons, namespaces, veths, cgroups, files,
 * the hub address, the registry); a killed run is swept by scripts/test.sh's exit trap and by the next
 * cluster's start (machine-sweep.ts).
 */
import { exited, freePort } from './clients.js';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { hubAddress, hubLabel, MACHINES_ROOT, nsName, sweepMachine, sweepMachines, sweepRun, vethName } from './machine-sweep.js';

export { sweepMachines } from './machine-sweep.js';

const run = promisify(execFile);
const BIN = new URL('../../../bin/berth.js', import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function sh(file: string, args: string[], timeoutMs = 60_000): Promise<string> {
  try {
    return (await run(file, args, { timeout: timeoutMs })).stdout;
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new Error(`${file} ${args.join(' ')}: ${err.stderr?.trim() || err.message}`);
  }
}

/** The last lines of a log file, for an error message. */
async function tail(path: string, lines = 25): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.split('\n').slice(-lines).join('\n');
}

/** A simulated GPU in a machine's declared inventory (src/agent/gpus.ts). */
export interface SimulatedGpu {
  name: string;
  memoryMb?: number;
  /** @default GPU-<node name>-<index> */
  uuid?: string;
}

export interface MachineSpec {
  /** The node's name. @default machine-<n> */
  name?: string;
  /** Its declared GPUs (shown as simulated). @default none */
  gpus?: SimulatedGpu[];
  /** Node labels (`--label`). */
  labels?: Record<string, string>;
  /** More `berth agent` flags, as argv. */
  agentArgs?: string[];
}

/** How an agent joins: the server's URL (on the hub address) and its credential. */
export interface JoinOptions {
  server: string;
  token: string;
}

export class Machine {
  readonly ns: string;
  /** The machine's address (its pods' published ports show it). */
  readonly ip: string;
  /** The host's side of the veth. */
  readonly gateway: string;
  readonly veth: string;
  readonly dir: string;
  readonly socket: string;
  /** A client of this machine's own dockerd. */
  readonly docker: Docker;
  private daemon: ChildProcess | undefined;
  private agent: ChildProcess | undefined;
  private joined: JoinOptions | undefined;
  /** The node id the agent printed when it joined. */
  nodeId: string | undefined;

  constructor(
    readonly runId: number,
    readonly n: number,
    readonly name: string,
    readonly spec: MachineSpec,
  ) {
    this.ns = nsName(runId, n);
    this.ip = `10.${runId}.${n}.2`;
    this.gateway = `10.${runId}.${n}.1`;
    this.veth = vethName(runId, n);
    this.dir = join(MACHINES_ROOT, String(runId), `m${n}`);
    this.socket = join(this.dir, 'docker.sock');
    this.docker = new Docker({ socketPath: this.socket });
  }

  /** argv run inside the machine's network namespace (and nothing else of it: same files, same cgroups). */
  inside(argv: string[]): string[] {
    return [`--net=/run/netns/${this.ns}`, '--', ...argv];
  }

  /** Runs a command on the machine (in its network namespace); its stdout. Fails on a non-zero exit or after `timeoutMs`. */
  async exec(argv: string[], timeoutMs = 60_000): Promise<string> {
    return sh('nsenter', this.inside(argv), timeoutMs);
  }

  /** Namespace, veth, addresses and routes; dockerd started and answering; the firewall in place. */
  async boot(registry: string): Promise<void> {
    await mkdir(join(this.dir, 'agent'), { recursive: true });
    await sh('ip', ['netns', 'add', this.ns]);
    await this.exec(['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    const peer = `${this.veth}p`;
    await sh('ip', ['link', 'add', this.veth, 'type', 'veth', 'peer', 'name', peer]);
    await sh('ip', ['link', 'set', peer, 'netns', this.ns]);
    await sh('ip', ['-n', this.ns, 'link', 'set', peer, 'name', 'eth0']);
    await sh('ip', ['-n', this.ns, 'addr', 'add', `${this.ip}/24`, 'dev', 'eth0']);
    await sh('ip', ['-n', this.ns, 'link', 'set', 'lo', 'up']);
    await sh('ip', ['-n', this.ns, 'link', 'set', 'eth0', 'up']);
    await sh('ip', ['-n', this.ns, 'route', 'add', 'default', 'via', this.gateway]);
    await sh('ip', ['addr', 'add', `${this.gateway}/24`, 'dev', this.veth]);
    await sh('ip', ['link', 'set', this.veth, 'up']);
    for (const rule of [
      ['-A', 'INPUT', '-i', 'lo', '-j', 'ACCEPT'],
      ['-A', 'INPUT', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'],
      ['-A', 'INPUT', '-j', 'REJECT'],
    ]) await this.exec(['iptables', '-w', '5', ...rule]);

    await this.startDaemon(registry);
    // Docker made DOCKER-USER (first in FORWARD) as it started; published ports are forwarded, not INPUT.
    await this.exec(['iptables', '-w', '5', '-I', 'DOCKER-USER', '1', '-i', 'eth0', '-m', 'conntrack', '--ctstate', 'NEW', '-j', 'REJECT']);
  }

  private async startDaemon(registry: string): Promise<void> {
    const log = join(this.dir, 'dockerd.log');
    const out = await open(log, 'a');
    const argv = [
      'dockerd',
      '--data-root', join(this.dir, 'data'),
      '--exec-root', join(this.dir, 'exec'),
      '--pidfile', join(this.dir, 'docker.pid'),
      '-H', `unix://${this.socket}`,
      '--bip', `10.${this.runId}.${128 + this.n}.1/24`,
      '--cgroup-parent', this.ns,
      '--insecure-registry', registry,
      '--log-level', 'warn',
    ];
    this.daemon = spawn('nsenter', this.inside(argv), { detached: true, stdio: ['ignore', out.fd, out.fd] });
    await out.close();
    const daemon = this.daemon;
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (daemon.exitCode !== null || daemon.signalCode !== null) {
        throw new Error(`dockerd of ${this.name} exited (${daemon.exitCode ?? daemon.signalCode}) while starting; ${log} ends:\n${await tail(log)}`);
      }
      if (await this.docker.ping().then(() => true, () => false)) return;
      if (Date.now() > deadline) throw new Error(`dockerd of ${this.name} did not answer on ${this.socket} in 90 s; ${log} ends:\n${await tail(log)}`);
      await sleep(200);
    }
  }

  /**
   * Starts `berth agent` on the machine and waits until it has joined. The one place that says how an
   * agent joins: its flags, its credential, its Docker.
   */
  async startAgent(join_: JoinOptions): Promise<void> {
    if (this.agent && this.agent.exitCode === null && this.agent.signalCode === null) throw new Error(`the agent of ${this.name} is already running`);
    this.joined = join_;
    let inventory: string[] = [];
    if (this.spec.gpus) {
      const file = join(this.dir, 'gpus.json');
      const gpus = this.spec.gpus.map((g, i) => ({ index: i, uuid: g.uuid ?? `GPU-${this.name}-${i}`, name: g.name, memoryMb: g.memoryMb ?? 81920 }));
      await writeFile(file, JSON.stringify({ gpus }));
      inventory = ['--gpu-inventory', file];
    }
    const labels = Object.entries(this.spec.labels ?? {}).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
    const argv = [process.execPath, BIN, 'agent', '--server', join_.server, '--data-dir', join(this.dir, 'agent'), '--name', this.name, '--public-ip', this.ip, '--metrics-interval', '0', ...inventory, ...labels, ...(this.spec.agentArgs ?? [])];
    const log = join(this.dir, 'agent.log');
    const out = await open(log, 'a');
    const start = (await out.stat()).size;
    const agent = spawn('nsenter', this.inside(argv), {
      stdio: ['ignore', out.fd, out.fd],
      // The credential in the environment, not argv (ps shows argv); the CLI's config kept out of $HOME.
      env: { ...process.env, BERTH_TOKEN: join_.token, DOCKER_HOST: `unix://${this.socket}`, XDG_CONFIG_HOME: join(this.dir, 'config'), BERTH_LOG_LEVEL: process.env.BERTH_TEST_LOG ?? 'warn' },
    });
    await out.close();
    this.agent = agent;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const text = (await readFile(log, 'utf8').catch(() => '')).slice(start);
      const m = /joined \S+ as node ([a-z0-9]+)/.exec(text);
      if (m) {
        this.nodeId = m[1];
        return;
      }
      if (agent.exitCode !== null || agent.signalCode !== null) throw new Error(`the agent of ${this.name} exited (${agent.exitCode ?? agent.signalCode}) before joining; ${log} ends:\n${await tail(log)}`);
      if (Date.now() > deadline) throw new Error(`the agent of ${this.name} did not join in 60 s; ${log} ends:\n${await tail(log)}`);
      await sleep(100);
    }
  }

  /** The agent's log so far (stdout and stderr of every start). */
  agentLog(): Promise<string> {
    return readFile(join(this.dir, 'agent.log'), 'utf8').catch(() => '');
  }

  /** kill -9 of the agent process; its pods keep running under its dockerd. */
  async kill9Agent(): Promise<void> {
    const agent = this.agent;
    if (!agent || agent.exitCode !== null || agent.signalCode !== null) throw new Error(`the agent of ${this.name} is not running`);
    agent.kill('SIGKILL');
    await exited(agent, 10_000);
  }

  /** Stops the agent as an operator would (SIGTERM; SIGKILL after 20 s). Its pods keep running. */
  async stopAgent(): Promise<void> {
    const agent = this.agent;
    if (!agent) return;
    if (agent.exitCode === null && agent.signalCode === null) {
      agent.kill('SIGTERM');
      if (!(await exited(agent, 20_000))) {
        agent.kill('SIGKILL');
        await exited(agent, 5_000);
      }
    }
  }

  /** Starts the agent again as it last joined (stopping it first if it runs). */
  async restartAgent(): Promise<void> {
    if (!this.joined) throw new Error(`the agent of ${this.name} never started`);
    await this.stopAgent();
    await this.startAgent(this.joined);
  }

  /** Cuts the machine off: its veth goes down, so nothing passes either way (connections hang, as on a lost link). */
  async cut(): Promise<void> {
    await sh('ip', ['link', 'set', this.veth, 'down']);
  }

  /** Undoes `cut()`. */
  async restore(): Promise<void> {
    await sh('ip', ['link', 'set', this.veth, 'up']);
  }

  /** The containers of one pod on this machine's Docker (all, stopped ones included). */
  async podContainers(podId: string): Promise<Docker.ContainerInfo[]> {
    return this.docker.listContainers({ all: true, filters: { label: [`berth.pod=${podId}`] } });
  }

  /** Stops the agent, removes the containers, stops dockerd, then sweeps whatever is left. */
  async close(): Promise<void> {
    await this.stopAgent().catch(() => undefined);
    const daemon = this.daemon;
    if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
      try {
        const all = await this.docker.listContainers({ all: true });
        await Promise.all(all.map((c) => this.docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined)));
      } catch {
        // the daemon is not answering: the sweep kills its containers by cgroup
      }
      daemon.kill('SIGTERM');
      if (!(await exited(daemon, 30_000))) daemon.kill('SIGKILL');
    }
    await sweepMachine(this.runId, this.n);
  }
}

/** Addresses in use on the host, to keep a run's /16 clear of them. */
async function hostRoutes(): Promise<string> {
  return (await sh('ip', ['-4', '-o', 'route', 'show', 'table', 'all'])) + (await sh('ip', ['-4', '-o', 'addr', 'show']));
}

/** Claims a free 10.<run>.0.0/16 by creating its directory (atomic across processes). */
async function claimRun(): Promise<number> {
  await mkdir(MACHINES_ROOT, { recursive: true });
  const used = await hostRoutes();
  for (let tries = 0; tries < 100; tries++) {
    const runId = 64 + Math.floor(Math.random() * 190);
    if (new RegExp(`\\b10\\.${runId}\\.`).test(used)) continue;
    try {
      await mkdir(join(MACHINES_ROOT, String(runId)));
    } catch {
      continue;
    }
    await writeFile(join(MACHINES_ROOT, String(runId), 'owner'), String(process.pid));
    return runId;
  }
  throw new Error('no free 10.x.0.0/16 for test machines');
}


/** Several machines, the hub address they reach the host at, and the registry they pull from. */
export class Machines {
  private registryProcess: ChildProcess | undefined;
  private published: string[] = [];

  private constructor(
    readonly runId: number,
    /** The host's address on every machine's route: the server listens here (`startTestServer({ host })`). */
    readonly address: string,
    /** `address:port` of the run's registry. */
    readonly registry: string,
    readonly list: Machine[],
  ) {}

  /** Starts the machines (in parallel) and the registry; on any failure everything made so far goes. */
  static async start(specs: MachineSpec[]): Promise<Machines> {
    if (process.getuid?.() !== 0) throw new Error('test machines need root: network namespaces, veths, iptables and a dockerd each');
    await sweepMachines(true);
    const runId = await claimRun();
    const address = hubAddress(runId);
    const list = specs.map((s, i) => new Machine(runId, i + 1, s.name ?? `machine-${i + 1}`, s));
    let machines: Machines | undefined;
    try {
      await sh('ip', ['addr', 'add', `${address}/32`, 'dev', 'lo', 'label', hubLabel(runId)]);
      const port = await freePort(address);
      machines = new Machines(runId, address, `${address}:${port}`, list);
      // All settle before any failure is thrown: nothing may still be booting while close() sweeps.
      const started = await Promise.allSettled([machines.startRegistry(port), ...list.map((m) => m.boot(`${address}:${port}`))]);
      const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      return machines;
    } catch (err) {
      await (machines ? machines.close() : Promise.all(list.map((m) => sweepMachine(runId, m.n))).then(() => sweepRun(runId)));
      throw err;
    }
  }

  private async startRegistry(port: number): Promise<void> {
    const dir = join(MACHINES_ROOT, String(this.runId), 'registry');
    await mkdir(dir, { recursive: true });
    const config = join(dir, 'config.yml');
    await writeFile(config, ['version: 0.1', 'log: {level: error}', `storage: {filesystem: {rootdirectory: ${join(dir, 'data')}}}`, `http: {addr: "${this.address}:${port}"}`].join('\n'));
    const log = join(dir, 'registry.log');
    const out = await open(log, 'a');
    const registry = spawn('docker-registry', ['serve', config], { detached: true, stdio: ['ignore', out.fd, out.fd] });
    await out.close();
    this.registryProcess = registry;
    await writeFile(join(MACHINES_ROOT, String(this.runId), 'registry.pid'), String(registry.pid));
    const deadline = Date.now() + 30_000;
    while (!(await fetch(`http://${this.registry}/v2/`).then((r) => r.ok, () => false))) {
      if (registry.exitCode !== null) throw new Error(`docker-registry exited (${registry.exitCode}); ${log} ends:\n${await tail(log)}`);
      if (Date.now() > deadline) throw new Error(`docker-registry did not answer at ${this.registry} in 30 s; ${log} ends:\n${await tail(log)}`);
      await sleep(100);
    }
  }

  /**
   * Pushes an image of the host's Docker to the run's registry and returns the name pods use
   * (`<registry>/<repository>:<tag>`). The host keeps that name too, as `docker tag` leaves it
   * for whoever pushes. The host's daemon trusts plain HTTP only on loopback, so the push goes
   * through a loopback port forwarded to the registry for its duration.
   */
  async publish(image: string, docker: Docker = new Docker()): Promise<string> {
    const [repo, tag = 'latest'] = image.split(/:(?=[^/:]+$)/) as [string, string?];
    const relay = net.createServer((client) => {
      const upstream = net.connect(Number(this.registry.split(':')[1]), this.address);
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    const loopback = `127.0.0.1:${(relay.address() as net.AddressInfo).port}/${repo}`;
    try {
      await docker.getImage(image).tag({ repo: loopback, tag });
      // The registry asks for no login; Docker's API still wants an X-Registry-Auth header.
      const stream = await docker.getImage(`${loopback}:${tag}`).push({ authconfig: { serveraddress: loopback.split('/')[0]! } });
      await new Promise<void>((resolve, reject) =>
        docker.modem.followProgress(stream, (err: Error | null, out: { error?: string }[]) => {
          const failed = out?.find((o) => o.error);
          if (err || failed) reject(err ?? new Error(`push of ${image} failed: ${failed!.error}`));
          else resolve();
        }),
      );
    } finally {
      await docker.getImage(`${loopback}:${tag}`).remove({ noprune: true }).catch(() => undefined);
      relay.close();
    }
    const name = `${this.registry}/${repo}`;
    await docker.getImage(image).tag({ repo: name, tag });
    this.published.push(`${name}:${tag}`);
    return `${name}:${tag}`;
  }

  /** Every machine's agent joins (in parallel). */
  async startAgents(join_: JoinOptions): Promise<void> {
    await Promise.all(this.list.map((m) => m.startAgent(join_)));
  }

  /** Machine by its 1-based number, as named. */
  machine(n: number): Machine {
    const m = this.list[n - 1];
    if (!m) throw new Error(`no machine ${n}`);
    return m;
  }

  /** Takes every machine, the registry and the hub address down; never throws. */
  async close(): Promise<void> {
    await Promise.all(this.list.map((m) => m.close().catch(() => sweepMachine(this.runId, m.n))));
    this.registryProcess?.kill('SIGKILL');
    const host = new Docker();
    for (const name of this.published) await host.getImage(name).remove({ noprune: true }).catch(() => undefined);
    await sweepRun(this.runId).catch(() => undefined);
  }
}
