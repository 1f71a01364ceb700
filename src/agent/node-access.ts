/**
 * Interactive access to the pods of this node (logs, exec, a PTY, a TCP stream, files) over the
 * local runtime: what the control plane reaches an agent in its own process through.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import type { Assignment, ExecRequest, ExecStream, NodeAccess } from '../control/agent-protocol.js';
import { BerthError, type InstanceId, type NodeId, type PathStat } from '../model/index.js';
import { firstFileOfTar, singleFileTar } from '../runtime/tar.js';
import type { ContainerInfo, InteractiveRuntime, Runtime } from '../runtime/types.js';
import type { PodNetworks } from './pod-network.js';
import { isInfra, jsonLabel, LABELS } from './labels.js';

/** The runtime's interactive side; CONFLICT where the runtime has none. */
export function interactiveRuntime(runtime: Runtime): InteractiveRuntime {
  const r = runtime as Runtime & Partial<InteractiveRuntime>;
  if (!r.openExec || !r.containerAddress || !r.containerGateway || !r.getArchive || !r.putArchive) throw new BerthError('CONFLICT', "this node's runtime offers no interactive access");
  return r as InteractiveRuntime;
}

export class LocalNodeAccess implements NodeAccess {
  /** `assignmentOf` gives the instance's current assignment: its spec names the default container and the network mode. */
  constructor(
    private readonly runtime: Runtime,
    private readonly nodeId: NodeId,
    private readonly assignmentOf: (id: InstanceId) => Assignment | undefined,
    /** The node's pod networks, for holes in their firewall (ssh -R). */
    private readonly networks?: PodNetworks,
  ) {}

  private containerOf(instanceId: InstanceId, name: string | undefined): Promise<ContainerInfo> {
    // Docker lists newest first; the default is the spec's first container.
    const wanted = name ?? this.assignmentOf(instanceId)?.spec.containers[0]?.name;
    return this.runtime.listContainers({ [LABELS.instance]: instanceId, [LABELS.node]: this.nodeId }).then((list) => {
      const c = wanted ? list.find((x) => x.labels[LABELS.container] === wanted) : list.find((x) => !isInfra(x));
      if (!c) throw new BerthError('CONFLICT', name ? `container ${name} of ${instanceId} does not exist` : `instance ${instanceId} has no container now`);
      return c;
    });
  }

  async *logs(instanceId: InstanceId, container: string | undefined, opts: { tail?: number; since?: string; follow?: boolean }, signal?: AbortSignal) {
    const c = await this.containerOf(instanceId, container);
    yield* this.runtime.logs(c.id, opts, signal);
  }

  async exec(instanceId: InstanceId, container: string | undefined, argv: string[], timeoutMs: number) {
    const c = await this.containerOf(instanceId, container);
    if (c.state !== 'running') throw new BerthError('CONFLICT', `container ${c.labels[LABELS.container] ?? c.name} is not running`);
    return this.runtime.exec(c.id, argv, { timeoutMs });
  }

  private async runningContainer(instanceId: InstanceId, container: string | undefined): Promise<ContainerInfo> {
    const c = await this.containerOf(instanceId, container);
    if (c.state !== 'running') throw new BerthError('CONFLICT', `container ${c.labels[LABELS.container] ?? c.name} is not running`);
    return c;
  }

  async openExec(instanceId: InstanceId, container: string | undefined, req: ExecRequest): Promise<ExecStream> {
    const c = await this.runningContainer(instanceId, container);
    return interactiveRuntime(this.runtime).openExec(c.id, {
      argv: req.argv,
      tty: req.tty,
      env: Object.entries(req.env ?? {}).map(([k, v]) => `${k}=${v}`),
      ...(req.cols ? { cols: req.cols } : {}),
      ...(req.rows ? { rows: req.rows } : {}),
    });
  }

  /**
   * Connects to the pod's address on its Docker network (every container shares one namespace); with
   * host networking, to the node's loopback on the port the container listens on.
   */
  async connect(instanceId: InstanceId, port: number): Promise<Socket> {
    const c = await this.runningContainer(instanceId, undefined);
    const a = this.assignmentOf(instanceId);
    let ip: string | undefined;
    let target = port;
    if (a?.spec.network.mode === 'host') {
      ip = '127.0.0.1';
      const holder = (await this.runtime.listContainers({ [LABELS.instance]: instanceId, [LABELS.node]: this.nodeId })).find(isInfra) ?? c;
      target = jsonLabel(holder, LABELS.ports)[String(port)] ?? port;
    } else {
      ip = await interactiveRuntime(this.runtime).containerAddress(c.id);
    }
    if (!ip) throw new BerthError('CONFLICT', `instance ${instanceId} has no network address`);
    const host = ip;
    return new Promise((resolve, reject) => {
      const socket = tcpConnect({ host, port: target, noDelay: true });
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', (err: NodeJS.ErrnoException) => {
        reject(new BerthError('CONFLICT', err.code === 'ECONNREFUSED' ? `nothing listens on port ${port} in the pod` : `cannot connect to port ${port} in the pod: ${err.message}`, { cause: err }));
      });
    });
  }

  async openToPod(instanceId: InstanceId, address: string, port: number): Promise<() => Promise<void>> {
    return (await this.networks?.openHole(this.assignmentOf(instanceId)?.podNetwork ?? undefined, address, port)) ?? (async () => undefined);
  }

  async hostAddress(instanceId: InstanceId): Promise<string> {
    const c = await this.runningContainer(instanceId, undefined);
    // On the node's own network the node is the loopback.
    if (this.assignmentOf(instanceId)?.spec.network.mode === 'host') return '127.0.0.1';
    const gw = await interactiveRuntime(this.runtime).containerGateway(c.id);
    if (!gw) throw new BerthError('CONFLICT', `instance ${instanceId} is on no network the node can listen on`);
    return gw;
  }

  /**
   * Read on the node through the container's root where the runtime can (a running container, the
   * agent root on the node): at 200 MB, Docker's archive stream cost its daemon 0.5 s of CPU and
   * kept scp downloads at half of sshd's. The archive API stays for the rest: a stopped container
   * (its files are still there, but no process whose root to read through), an agent that is not
   * root or not in the node's pid namespace.
   */
  async readFile(instanceId: InstanceId, container: string | undefined, path: string, signal?: AbortSignal): Promise<{ size: number; content: Readable }> {
    const c = await this.containerOf(instanceId, container);
    const rt = interactiveRuntime(this.runtime);
    const direct = c.state === 'running' ? await rt.openFile?.(c.id, path) : undefined;
    if (direct) {
      const { size, content } = direct;
      if (signal?.aborted) content.destroy();
      else signal?.addEventListener('abort', () => content.destroy(), { once: true });
      return { size, content };
    }
    const tar = await rt.getArchive(c.id, path, signal);
    try {
      const file = await firstFileOfTar(tar);
      return { size: file.size, content: file.content };
    } catch (err) {
      if (err instanceof BerthError) throw err;
      throw new BerthError('VALIDATION', `${path}: ${(err as Error).message}`, { cause: err, extra: { path } });
    }
  }

  async statFile(instanceId: InstanceId, container: string | undefined, path: string): Promise<PathStat> {
    const c = await this.containerOf(instanceId, container);
    return interactiveRuntime(this.runtime).statPath(c.id, path);
  }

  async writeFile(instanceId: InstanceId, container: string | undefined, path: string, content: Readable, size: number, mode: number): Promise<void> {
    const c = await this.containerOf(instanceId, container);
    const tar = singleFileTar(posix.basename(path), size, mode, Date.now() / 1000, content);
    await interactiveRuntime(this.runtime).putArchive(c.id, posix.dirname(path), tar);
  }
}
