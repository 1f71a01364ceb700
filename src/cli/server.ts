import { mkdir, readFile } from 'node:fs/promises';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino, { type Logger } from 'pino';
import { Agent } from '../agent/agent.js';
import { claimCpuPriority } from './cpu-priority.js';
import { buildApi } from '../api/server.js';
import { ProxyTokens, type AccessEndpoints } from '../control/access.js';
import { AgentService, certificateFingerprint, DeploymentController, InstanceResolver, JoinTokenService, KeyService, NodeCredentialService, PodService, ResourceService, Sealer, UsageService, LifetimeController, NodeMonitor, NodeService, DEFAULT_NODE_TIMEOUT_MS, DEFAULT_UNREACHABLE_AFTER_MS, LeaseLeadership, SoloLeadership, DEFAULT_LEASE_TTL_MS, LeaderWork, ClusterBus, SERVER_SEEN_WITHIN_MS } from '../control/index.js';
import { SecretService } from '../control/secrets.js';
import { VolumeBacking, type NfsExport } from '../control/volume-backing.js';
import { AuditLog } from '../control/audit.js';
import { lockDataDir } from './data-dir-lock.js';
import { TeamService } from '../control/teams.js';
import { ProxyServer } from '../proxy/proxy.js';
import type { NodeConnect } from '../proxy/reach.js';
import type { NodeId } from '../model/index.js';
import { SshGateway } from '../ssh/gateway.js';
import { DockerRuntime } from '../runtime/docker.js';
import { BerthError } from '../model/errors.js';
import type { LifetimeInput } from '../model/lifetime.js';
import type { PodSecurityPolicy } from '../model/policy.js';
import { openStore } from '../store/index.js';
import { shareClusterKeys } from './cluster-keys.js';
import { LocalAgentChannels } from './local-agent-channels.js';
import type { Store } from '../store/types.js';
import type { FastifyInstance } from 'fastify';

export interface ServerOptions {
  /** @default $BERTH_DATA_DIR, else /var/lib/berth as root, else ~/.local/share/berth */
  dataDir?: string;
  /** @default 7700 */
  port?: number;
  /** @default 0.0.0.0 */
  host?: string;
  /** PostgreSQL URL; absent: SQLite in the data dir. */
  databaseUrl?: string;
  /** Run the local agent (all-in-one). @default true */
  agent?: boolean;
  /** The address users reach published ports at. @default 127.0.0.1 */
  publicIp?: string;
  /** Where published ports bind. @default 0.0.0.0 */
  bindAddress?: string;
  /** A JSON file declaring GPUs for a machine without them (shown as simulated). */
  gpuInventory?: string;
  /** @default info */
  logLevel?: string;
  logger?: Logger;
  /** Agent's stop grace in seconds. @default 10 */
  stopTimeoutSeconds?: number;
  /** The image of multi-container pods' infra container. @default the node's own, built from catatonit */
  infraImage?: string;
  /** Where catatonit is, for the node's own infra image. @default the usual places */
  catatonitPath?: string;
  /** Run the HTTP proxy. @default true */
  proxy?: boolean;
  /** @default 7780; 0 when `port` is 0 (a random API port picks random proxy and SSH ports too) */
  proxyPort?: number;
  /** Pod hosts are `{podId}-{port}.{proxyDomain}`. @default localhost */
  proxyDomain?: string;
  /** Close proxied streams and WebSockets idle this long; 0: never. @default 0 */
  proxyIdleTimeoutSeconds?: number;
  /** Proxy worker processes; 0: the proxy runs in the server process. @default one per CPU */
  proxyWorkers?: number;
  /** How the proxy reaches pods: published ports, or through the node's NodeAccess (proxy/reach.ts). @default auto */
  nodeConnect?: NodeConnect;
  /** Run the SSH gateway. @default true */
  ssh?: boolean;
  /** @default 2222; 0 when `port` is 0 */
  sshPort?: number;
  /** The host name users reach this server at, in the ssh command. @default publicIp, else localhost */
  publicHost?: string;
  /** PEM certificate (a wildcard for `*.{proxyDomain}` covers the proxy) and key: the API and the proxy speak HTTPS. */
  tlsCert?: string;
  tlsKey?: string;
  /** Host paths pods may mount as `host` volumes (each path or anything under it). @default none */
  allowHostPaths?: string[];
  /** Lifetime policies for pods created from now on, under a template's and the request's (docs/lifetimes.md). @default none */
  lifetimeDefault?: LifetimeInput;
  /** How often the local agent measures its pods' usage; 0: never. @default 10 */
  metricsIntervalSeconds?: number;
  /** The server's nice and its session group's (cpu-priority.ts); `berth server` passes DEFAULT_SERVER_NICE. @default left as it is */
  nice?: number;
  /** A bearer token that may read `GET /metrics` besides admin keys. @default none: admin keys only */
  metricsToken?: string;
  /** The web console's build, served at `/`. @default dist/web beside this program (what `npm run build:web` writes) */
  consoleDir?: string;
  /** A detached web terminal (`?session=new`) waits this long for a re-attach before its shell is hung up. @default 300 */
  terminalGraceSeconds?: number;
  /** Spec versions kept per pod besides version 1 (older ones are deleted). @default 100 */
  specVersionsKept?: number;
  /** Keep pods off the node's own services with INPUT rules (docs/security.md). @default true */
  podIsolation?: boolean;
  /** What every key's pods may ask beyond the baseline pod security policy. @default nothing */
  podPolicy?: Partial<PodSecurityPolicy>;
  /** Days the audit log keeps an entry; 0: for ever. @default 400 */
  auditRetentionDays?: number;
  /** Shared storage for network volumes: an NFS export per data center (`--nfs dc=server:/path`); other data centers keep each volume on one node. @default none */
  nfsExports?: Record<string, NfsExport>;
  /** A node whose agent is silent this long is NOT_READY; watches are held at most a third of it. @default 40 */
  nodeTimeoutSeconds?: number;
  /** How long after NOT_READY an instance of a pod without a Marathon unreachable strategy is placed again elsewhere. @default 60 */
  unreachableAfterSeconds?: number;
  /** Several servers (PostgreSQL): the URL the other servers and the agents reach this one at. @default http(s)://<publicHost, else the bound address, else the host name>:<port> */
  advertiseUrl?: string;
  /** Several servers: how long the leader's lease lasts unrenewed (a killed leader is replaced within about this). @default 3 */
  leaderLeaseSeconds?: number;
}

/** Where `npm run build:web` puts the console: dist/web, two folders up from dist/src/cli. */
export const DEFAULT_CONSOLE_DIR = fileURLToPath(new URL('../../web', import.meta.url));

export interface RunningServer {
  url: string;
  port: number;
  dataDir: string;
  /** Set when this start created the admin key. */
  adminKeyPath: string | undefined;
  app: FastifyInstance;
  store: Store;
  /** What running instances use (latest samples, history): what the idle policy and /metrics read. */
  usage: UsageService;
  /** The lifetime policies' controller and the activity it judges pods on. */
  lifetimes: LifetimeController;
  agent: Agent | undefined;
  proxy: ProxyServer | undefined;
  ssh: SshGateway | undefined;
  /** Where users reach pods: filled with the ports actually bound. */
  endpoints: AccessEndpoints;
  close(): Promise<void>;
}

/** The ports the server listens on; `undefined` for a listener that is off, 0 for any free port. */
export interface ListenPorts {
  api: number;
  proxy: number | undefined;
  ssh: number | undefined;
}

/** The ports `options` ask for, defaults filled in: a random API port (0) makes the proxy's and the gateway's random too. */
export function listenPorts(options: Pick<ServerOptions, 'port' | 'proxy' | 'proxyPort' | 'ssh' | 'sshPort'>): ListenPorts {
  const api = options.port ?? 7700;
  return {
    api,
    proxy: options.proxy === false ? undefined : (options.proxyPort ?? (api === 0 ? 0 : 7780)),
    ssh: options.ssh === false ? undefined : (options.sshPort ?? (api === 0 ? 0 : 2222)),
  };
}

export function defaultDataDir(): string {
  if (process.env.BERTH_DATA_DIR) return process.env.BERTH_DATA_DIR;
  return process.getuid?.() === 0 ? '/var/lib/berth' : join(homedir(), '.local', 'share', 'berth');
}

/** `berth server`: store, control plane, API and (by default) the local agent in one process. */
export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const dataDir = options.dataDir ?? defaultDataDir();
  const logger = options.logger ?? pino({ level: options.logLevel ?? 'info' });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (options.nice !== undefined) {
    // Before the proxy's workers and the gateway start: what the server starts inherits it.
    const claim = claimCpuPriority(options.nice);
    if (claim.refused) logger.warn(claim, 'the server could not take its CPU priority (it needs root or CAP_SYS_NICE) and runs as it was');
    else if (claim.sessionLeftAlone) logger.info(claim, "the server's threads took their CPU priority; its session's was left alone (run it as a service, or under setsid, for the whole of --nice)");
    else logger.debug(claim, 'CPU priority taken');
  }

  // Check Docker first: a missing daemon is a plain message, before anything is written.
  const runtime = options.agent === false ? undefined : await DockerRuntime.create();
  if (runtime) await runtime.ping();

  // SQLite serves one server: a second one on this data dir is refused (data-dir-lock.ts).
  const dirLock = options.databaseUrl ? undefined : await lockDataDir(dataDir);
  const store = await openStore({ dataDir, ...(options.databaseUrl ? { databaseUrl: options.databaseUrl } : {}), logger });
  await shareClusterKeys(store, dataDir);
  // One server on SQLite always leads; several on PostgreSQL race for the lease (docs/ha.md).
  const leadership = store.dialect === 'postgres' ? new LeaseLeadership(store, { ttlMs: Math.round((options.leaderLeaseSeconds ?? DEFAULT_LEASE_TTL_MS / 1000) * 1000), logger: logger.child({ part: 'leader' }) }) : new SoloLeadership();
  const sealer = await Sealer.open(dataDir);
  const keys = new KeyService(store);
  const volumeBacking = new VolumeBacking(Object.entries(options.nfsExports ?? {}));
  const nodeTimeoutMs = Math.round((options.nodeTimeoutSeconds ?? DEFAULT_NODE_TIMEOUT_MS / 1000) * 1000);
  const unreachableAfterMs = Math.round((options.unreachableAfterSeconds ?? DEFAULT_UNREACHABLE_AFTER_MS / 1000) * 1000);
  const pods = new PodService(store, { leadership, volumeBacking, unreachableAfterMs, hostVolumeRoots: options.allowHostPaths ?? [], ...(options.lifetimeDefault ? { lifetimeDefault: options.lifetimeDefault } : {}), ...(options.specVersionsKept ? { specVersionsKept: options.specVersionsKept } : {}), ...(options.podPolicy ? { podPolicy: options.podPolicy } : {}) });
  const deployments = new DeploymentController(store, pods, { leadership });
  const usage = new UsageService(store, { logger: logger.child({ part: 'usage' }) });
  const agents = new AgentService(store, pods, sealer, usage, volumeBacking, Math.max(100, Math.floor(nodeTimeoutMs / 3)));
  // Agents dial every server seen heartbeating (this one among them); none on SQLite: they keep the URL they were given.
  agents.setServers(async () => (await store.listServers(SERVER_SEEN_WITHIN_MS).catch(() => [])).map(({ id, url }) => ({ id, url })));
  const nodeMonitor = new NodeMonitor(store, pods, { leadership, nodeTimeoutMs, unreachableAfterMs, logger: logger.child({ part: 'nodes' }) });
  const nodes = new NodeService(store, pods);
  const lifetimes = new LifetimeController(store, pods, { usage, logger: logger.child({ part: 'lifetimes' }) });
  const resolver = new InstanceResolver(pods, agents);
  // Several servers: usage samples and activity reach every server (the leader's idle policy among
  // them), and so do the leader's events; a secret, registry credential or network volume changed
  // wakes agents' watches on every server.
  const bus = store.dialect === 'postgres' ? new ClusterBus(store, leadership.id, { usage, activity: lifetimes.activity, deployments, lifetimes, wake: () => agents.wakeAll(), logger: logger.child({ part: 'bus' }) }) : undefined;
  const wakeAgents = (): void => {
    agents.wakeAll();
    bus?.wakeAgents();
  };
  const resources = new ResourceService(store, sealer, wakeAgents, volumeBacking);
  const secrets = new SecretService(store, sealer, wakeAgents);
  const teams = new TeamService(store);
  const audit = new AuditLog(store, { log: logger.child({ part: 'audit' }), ...(options.auditRetentionDays !== undefined ? { retentionDays: options.auditRetentionDays } : {}) });
  const ports = listenPorts(options);
  const port = ports.api;
  const host = options.host ?? '0.0.0.0';
  const tls = await readTls(options);
  const nodeCredentials = new NodeCredentialService(store, pods, agents);
  const joinTokens = new JoinTokenService(store, agents, nodeCredentials, tls ? { serverFingerprint: certificateFingerprint(tls.cert) } : {});
  const tokens = await ProxyTokens.open(dataDir);
  if (store.dialect === 'postgres') tokens.claim = (nonce, expiresAt) => store.claimOnce(nonce, expiresAt);
  const endpoints: AccessEndpoints = {};
  let proxy: ProxyServer | undefined;
  let ssh: SshGateway | undefined;
  let app: FastifyInstance;
  try {
    // Proxy and gateway first: their bound ports go into every pod view the API renders.
    if (ports.proxy !== undefined) {
      // The local agent's node, as its last run registered it: `auto` reaches it directly from the start.
      const localNode = runtime ? await readFile(join(dataDir, 'agent', 'node-id'), 'utf8').then((s) => s.trim() as NodeId, () => undefined) : undefined;
      proxy = await ProxyServer.start({
        store,
        keys,
        tokens,
        logger: logger.child({ part: 'proxy' }),
        port: ports.proxy,
        host,
        domain: options.proxyDomain ?? 'localhost',
        idleTimeoutMs: (options.proxyIdleTimeoutSeconds ?? 0) * 1000,
        ...(options.proxyWorkers !== undefined ? { workers: options.proxyWorkers } : {}),
        ...(tls ? { tls } : {}),
        activity: lifetimes.activity,
        nodeConnect: options.nodeConnect ?? 'auto',
        nodeAccess: (id) => agents.nodeAccess(id),
        ...(localNode ? { localNode } : {}),
      });
      endpoints.proxy = { scheme: tls ? 'https' : 'http', domain: options.proxyDomain ?? 'localhost', port: proxy.port };
    }
    if (ports.ssh !== undefined) {
      ssh = await SshGateway.start({ store, resolver, audit, logger: logger.child({ part: 'ssh' }), dataDir, port: ports.ssh, host, activity: lifetimes.activity });
      endpoints.ssh = { host: options.publicHost ?? options.publicIp ?? 'localhost', port: ssh.port, hostKey: ssh.hostKey };
    }
    app = await buildApi({ leadership, store, pods, nodes, deployments, resources, secrets, keys, teams, audit, agents, joinTokens, nodeCredentials, usage, lifetimes, resolver, logger, access: { endpoints, tokens }, metrics: { ...(options.metricsToken ? { token: options.metricsToken } : {}), ...(proxy ? { proxy } : {}), ...(ssh ? { ssh } : {}) }, consoleDir: options.consoleDir ?? DEFAULT_CONSOLE_DIR, ...(options.terminalGraceSeconds !== undefined ? { terminalSessions: { graceSeconds: options.terminalGraceSeconds } } : {}), ...(tls ? { https: tls } : {}) });
    await app.listen({ port, host });
  } catch (err) {
    await proxy?.close();
    await ssh?.close();
    agents.close();
    usage.close();
    await deployments.close();
    await store.close();
    await dirLock?.release();
    throw err;
  }
  // After listen: a start that fails on a taken port leaves no key nobody was told about.
  const adminKeyPath = await keys.bootstrap(dataDir);
  const bound = app.server.address();
  const actualPort = typeof bound === 'object' && bound ? bound.port : port;
  const local = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const url = `${tls ? 'https' : 'http'}://${local}:${actualPort}`;
  const advertised = options.advertiseUrl ?? `${tls ? 'https' : 'http'}://${advertisedHost(host, options.publicHost)}:${actualPort}`;

  let agent: Agent | undefined;
  if (runtime) {
    agent = await Agent.create({
      channel: agents,
      runtime,
      logger: logger.child({ part: 'agent' }),
      dataDir: join(dataDir, 'agent'),
      ...(options.publicIp ? { publicIp: options.publicIp } : {}),
      ...(options.bindAddress ? { bindAddress: options.bindAddress } : {}),
      ...(options.gpuInventory ? { gpuInventoryPath: options.gpuInventory } : {}),
      ...(options.stopTimeoutSeconds !== undefined ? { stopTimeoutSeconds: options.stopTimeoutSeconds } : {}),
      ...(options.infraImage ? { infraImage: options.infraImage } : {}),
      ...(options.catatonitPath ? { catatonitPath: options.catatonitPath } : {}),
      ...(options.metricsIntervalSeconds !== undefined ? { usageIntervalMs: Math.round(options.metricsIntervalSeconds * 1000) } : {}),
      ...(options.podIsolation === false ? { isolatePods: false } : {}),
    });
    agents.setNodeAccess(agent.id, agent.access);
    proxy?.setLocalNode(agent.id);
    nodeCredentials.markLocal(agent.id);
  }
  // The leader's work: placement, deployments, lost nodes, lifetimes, pruning. One server always
  // leads; of several, whichever holds the lease, and it stops the moment it loses it.
  const leaderWork = new LeaderWork({ store, pods, deployments, lifetimes, nodeMonitor, logger, multiServer: leadership instanceof LeaseLeadership });
  leadership.onChange((leading) => void leaderWork.set(leading));
  if (leadership instanceof LeaseLeadership) await leadership.start(advertised);
  else {
    leadership.url = advertised;
    await leaderWork.set(true);
  }
  // Several servers: the others reach this server's own node through channels its agent holds to them.
  const localChannels =
    agent && leadership instanceof LeaseLeadership
      ? await LocalAgentChannels.start({ store, agent, selfId: leadership.id, credentials: nodeCredentials, dataDir: join(dataDir, 'agent'), fingerprint: tls ? certificateFingerprint(tls.cert) : null, logger: logger.child({ part: 'agent-channels' }) })
      : undefined;
  return {
    url,
    port: actualPort,
    dataDir,
    adminKeyPath,
    app,
    store,
    usage,
    lifetimes,
    agent,
    proxy,
    ssh,
    endpoints,
    async close() {
      // Resign first: another server leads at once, while this one closes the rest.
      if (leadership instanceof LeaseLeadership) await leadership.close();
      await localChannels?.close();
      await leaderWork.set(false);
      bus?.close();
      audit.close();
      await ssh?.close();
      await proxy?.close();
      await agent?.close();
      agents.close();
      usage.close();
      await deployments.close();
      await app.close();
      await store.close();
      await dirLock?.release();
    },
  };
}

/** The host part of the advertised URL: the address bound to, when it is one; else the public host name; else this machine's name. */
function advertisedHost(bound: string, publicHost: string | undefined): string {
  if (bound !== '0.0.0.0' && bound !== '::') return bound.includes(':') ? `[${bound}]` : bound;
  return publicHost ?? hostname();
}

async function readTls(options: ServerOptions): Promise<{ cert: Buffer; key: Buffer } | undefined> {
  if (!options.tlsCert && !options.tlsKey) return undefined;
  if (!options.tlsCert || !options.tlsKey) throw new BerthError('VALIDATION', 'give both --tls-cert and --tls-key, or neither');
  return { cert: await readFile(options.tlsCert), key: await readFile(options.tlsKey) };
}
