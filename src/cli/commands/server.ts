/** `berth server`: the all-in-one server (API, control plane and the local agent) in the foreground. */
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { normalizeUrl } from '../client.js';
import { DEFAULT_URL, readConfig, writeConfig, type CliConfig } from '../config.js';
import type { ListenPorts, RunningServer } from '../server.js';
import { UserError, type Output } from '../output.js';
import { parsePolicyGrants, type PodSecurityPolicy } from '../../model/policy.js';
import { defineCommand } from './define.js';
import { metricsIntervalMs } from './agent.js';
import { untilSignal } from './lifecycle.js';
import { BerthError, compileLifetime, type LifetimeInput, type Problem } from '../../model/index.js';
import { parseNfsFlag, type NfsExport } from '../../control/volume-backing.js';
import { lifetimeFrom } from './lifetime-flags.js';
import { DEFAULT_SERVER_NICE, isNice } from '../cpu-priority.js';
import { NODE_CONNECT_MODES, type NodeConnect } from '../../proxy/reach.js';

const capitalize = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

/** Names of this machine in a URL; the server's own URL says 127.0.0.1 when it listens on every address. */
const LOOPBACK = new Set(['127.0.0.1', '[::1]', 'localhost']);

export const server = defineCommand({
  name: 'server',
  description: 'Run the Berth server: API, control plane and (unless --no-agent) an agent for this machine',
  options: {
    dataDir: { kind: 'string', flags: '--data-dir <path>', env: 'BERTH_DATA_DIR', description: 'state, keys and the SQLite database (default: /var/lib/berth as root, else ~/.local/share/berth)' },
    port: { kind: 'number', integer: true, flags: '--port <port>', env: 'BERTH_PORT', default: 7700, description: 'API port' },
    host: { kind: 'string', flags: '--host <address>', env: 'BERTH_HOST', default: '0.0.0.0', description: 'address the API listens on' },
    databaseUrl: { kind: 'string', flags: '--database-url <url>', env: 'BERTH_DATABASE_URL', description: 'PostgreSQL URL (default: SQLite in the data dir); prefer the env var, argv shows in ps' },
    publicIp: { kind: 'string', flags: '--public-ip <address>', env: 'BERTH_PUBLIC_IP', description: "the address users reach pods' published ports at (default 127.0.0.1)" },
    bindAddress: { kind: 'string', flags: '--bind-address <address>', env: 'BERTH_BIND_ADDRESS', description: 'where published ports bind (default 0.0.0.0)' },
    gpuInventory: { kind: 'string', flags: '--gpu-inventory <file>', env: 'BERTH_GPU_INVENTORY', description: 'a JSON file declaring GPUs for a machine without them (shown as simulated)' },
    infraImage: { kind: 'string', flags: '--infra-image <image>', env: 'BERTH_INFRA_IMAGE', description: "the image holding a multi-container pod's network namespace (default: one built on the node from catatonit, no registry)" },
    catatonit: { kind: 'string', flags: '--catatonit <path>', env: 'BERTH_CATATONIT', description: 'the static catatonit binary the node builds its infra image from (default: looked for in /usr/bin, /usr/libexec/podman)' },
    defaultIdleStop: { kind: 'string', flags: '--default-idle-stop <duration>', env: 'BERTH_DEFAULT_IDLE_STOP', description: "new pods stop after this long unused unless they or their template say otherwise (30m, 2h; default: none)" },
    defaultIdleGpuThreshold: { kind: 'number', flags: '--default-idle-gpu-threshold <percent>', env: 'BERTH_DEFAULT_IDLE_GPU_THRESHOLD', description: 'for --default-idle-stop, a GPU at or above this utilization is in use (default 5)' },
    defaultIdleSignals: { kind: 'list', split: true, flags: '--default-idle-signals <signals>', env: 'BERTH_DEFAULT_IDLE_SIGNALS', description: 'for --default-idle-stop, what counts as use: gpu,ssh,terminal,proxy,port-forward (default all)' },
    defaultMaxRuntime: { kind: 'string', flags: '--default-max-runtime <duration>', env: 'BERTH_DEFAULT_MAX_RUNTIME', description: 'new pods stop after running this long unless they or their template say otherwise (8h; default: none)' },
    defaultTerminateAfterStopped: { kind: 'string', flags: '--default-terminate-after-stopped <duration>', env: 'BERTH_DEFAULT_TERMINATE_AFTER_STOPPED', description: 'new pods are terminated, volume disk and all, once stopped this long unless they say otherwise (7d; default: none)' },
    agent: { kind: 'boolean', negatable: true, flags: '--agent', env: 'BERTH_AGENT', description: 'run an agent for this machine (the default)', negatedDescription: 'run only the API and control plane (env BERTH_AGENT=false)' },
    proxy: { kind: 'boolean', negatable: true, flags: '--proxy', env: 'BERTH_PROXY', description: 'run the HTTP proxy to pods (the default)', negatedDescription: 'run no HTTP proxy' },
    proxyPort: { kind: 'number', integer: true, flags: '--proxy-port <port>', env: 'BERTH_PROXY_PORT', description: 'HTTP proxy port (default 7780; random when --port is 0)' },
    proxyDomain: { kind: 'string', flags: '--proxy-domain <domain>', env: 'BERTH_PROXY_DOMAIN', default: 'localhost', description: 'pods answer at {podId}-{port}.<domain> (point a wildcard DNS record here)' },
    proxyIdleTimeout: { kind: 'number', flags: '--proxy-idle-timeout <seconds>', env: 'BERTH_PROXY_IDLE_TIMEOUT', description: 'close proxied streams and WebSockets idle this long (default 0: never)' },
    proxyWorkers: { kind: 'number', integer: true, flags: '--proxy-workers <n>', env: 'BERTH_PROXY_WORKERS', description: 'proxy worker processes (default: one per CPU but one, at least one; 0: the proxy runs in the server process)' },
    nodeConnect: { kind: 'string', flags: '--node-connect <mode>', env: 'BERTH_NODE_CONNECT', default: 'auto', choices: [...NODE_CONNECT_MODES], description: "how the proxy reaches pods: auto (this machine's directly, other nodes through the channel their agent dialled), direct (every node's published ports: nodes are reachable from here), channel (every node through its channel)" },
    ssh: { kind: 'boolean', negatable: true, flags: '--ssh', env: 'BERTH_SSH', description: 'run the SSH gateway (the default)', negatedDescription: 'run no SSH gateway' },
    sshPort: { kind: 'number', integer: true, flags: '--ssh-port <port>', env: 'BERTH_SSH_PORT', description: 'SSH gateway port (default 2222; random when --port is 0)' },
    publicHost: { kind: 'string', flags: '--public-host <name>', env: 'BERTH_PUBLIC_HOST', description: 'the host name users reach this server at, shown in ssh commands (default: --public-ip, else localhost)' },
    tlsCert: { kind: 'string', flags: '--tls-cert <file>', env: 'BERTH_TLS_CERT', description: 'PEM certificate: the API and the proxy speak HTTPS (a wildcard *.<domain> covers the proxy)' },
    tlsKey: { kind: 'string', flags: '--tls-key <file>', env: 'BERTH_TLS_KEY', description: "the certificate's PEM private key" },
    allowHostPath: { kind: 'list', split: true, flags: '--allow-host-path <path>', env: 'BERTH_ALLOW_HOST_PATHS', description: 'a host directory pods may mount as a host volume (repeat, or comma-separate; default: none)' },
    nfs: { kind: 'list', flags: '--nfs <dc=server:/export[,options]>', env: 'BERTH_NFS', description: "shared storage for a data center's network volumes: an NFS export every node of it mounts (repeat per data center; the env var space-separates; default: none, each volume lives on one node; see docs/cluster.md)" },
    metricsInterval: { kind: 'number', flags: '--metrics-interval <seconds>', env: 'BERTH_METRICS_INTERVAL', description: "how often the local agent measures its pods' usage (default 10; 0: never)" },
    metricsToken: { kind: 'string', flags: '--metrics-token <token>', env: 'BERTH_METRICS_TOKEN', description: 'a bearer token that may read GET /metrics besides admin keys (prefer the env var, argv shows in ps)' },
    terminalGrace: { kind: 'number', flags: '--terminal-grace <seconds>', env: 'BERTH_TERMINAL_GRACE', description: 'a detached web terminal waits this long for a re-attach (a page reload) before its shell is hung up (default 300)' },
    auditRetention: { kind: 'number', flags: '--audit-retention <days>', env: 'BERTH_AUDIT_RETENTION', description: 'days the audit log keeps an entry (default 400; 0: for ever)' },
    podIsolation: { kind: 'boolean', negatable: true, flags: '--pod-isolation', env: 'BERTH_POD_ISOLATION', description: "keep pods off this node's own services with iptables INPUT rules (the default; needs root)", negatedDescription: 'add no INPUT rules: pods can reach services of the node (env BERTH_POD_ISOLATION=false)' },
    podPolicy: { kind: 'string', flags: '--pod-policy <grants>', env: 'BERTH_POD_POLICY', description: 'what every key\'s pods may ask beyond the baseline: host-network,host-path,named-networks,privileged,cap:<NAME>,host-ports=none|unprivileged|any (default: nothing; see docs/security.md)' },
    nodeTimeout: { kind: 'number', flags: '--node-timeout <seconds>', env: 'BERTH_NODE_TIMEOUT', description: 'a node whose agent is silent this long is NOT_READY (default 40; agents call at least every third of it)' },
    unreachableAfter: { kind: 'number', flags: '--unreachable-after <seconds>', env: 'BERTH_UNREACHABLE_AFTER', description: "how long after its node is NOT_READY an instance is placed again elsewhere, for pods without a Marathon unreachableStrategy (default 60; pods bound to the node's storage wait)" },
    advertiseUrl: { kind: 'string', flags: '--advertise-url <url>', env: 'BERTH_ADVERTISE_URL', description: 'several servers (--database-url): the URL other servers and agents reach this one at (default http(s)://<--host, else --public-host, else this host name>:<--port>; see docs/ha.md)' },
    leaderLease: { kind: 'number', flags: '--leader-lease <seconds>', env: 'BERTH_LEADER_LEASE', description: "several servers: how long the leader's lease lasts unrenewed; a killed leader is replaced within about this (default 3)" },
    nice: { kind: 'number', integer: true, flags: '--nice <n>', env: 'BERTH_NICE', default: DEFAULT_SERVER_NICE, description: "the server's CPU priority, as nice(1) (-20 first .. 19 last), for its threads and its session: the API answers while the machine is busy starting containers (needs root; see docs/cli.md)" },
    logLevel: { kind: 'string', flags: '--log-level <level>', env: 'BERTH_LOG_LEVEL', default: 'info', choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], description: 'log level' },
  },
  examples: [
    'berth server',
    'BERTH_DATA_DIR=/srv/berth berth server --port 8000 --public-ip 203.0.113.7',
    'berth server --proxy-domain pods.example.com --proxy-port 443 --tls-cert wildcard.pem --tls-key wildcard.key --public-host gpu1.example.com',
    'berth server --gpu-inventory gpus.json',
  ],
  async handler({ opts, ctx }) {
    // Loaded here, not at the top: every other command would otherwise pay for Fastify, Docker and the store.
    const { listenPorts, startServer } = await import('../server.js');
    const ports = listenPorts(opts);
    const clash = LISTENERS.flatMap((a, i) => LISTENERS.slice(i + 1).filter((b) => ports[a.key] && ports[a.key] === ports[b.key]).map((b) => [a, b] as const))[0];
    if (clash) throw new UserError(`${clash[0].flag} and ${clash[1].flag} are both ${ports[clash[0].key]}: ${clash[0].what} and ${clash[1].what} each need a port of their own`);
    if (opts.auditRetention !== undefined && opts.auditRetention < 0) throw new UserError(`--audit-retention must be 0 (keep for ever) or a number of days, not ${opts.auditRetention}`);
    const lifetimeDefault = serverLifetimeDefault(opts);
    const nfsExports = nfsExportsOf(opts.nfs);
    const running = await startServer({
      port: opts.port,
      host: opts.host,
      logLevel: opts.logLevel,
      ...(opts.dataDir !== undefined ? { dataDir: opts.dataDir } : {}),
      ...(opts.databaseUrl !== undefined ? { databaseUrl: opts.databaseUrl } : {}),
      ...(opts.publicIp !== undefined ? { publicIp: opts.publicIp } : {}),
      ...(opts.bindAddress !== undefined ? { bindAddress: opts.bindAddress } : {}),
      ...(opts.gpuInventory !== undefined ? { gpuInventory: opts.gpuInventory } : {}),
      ...(opts.infraImage !== undefined ? { infraImage: opts.infraImage } : {}),
      ...(opts.catatonit !== undefined ? { catatonitPath: opts.catatonit } : {}),
      ...(lifetimeDefault ? { lifetimeDefault } : {}),
      ...(opts.agent !== undefined ? { agent: opts.agent } : {}),
      ...(opts.proxy !== undefined ? { proxy: opts.proxy } : {}),
      ...(opts.proxyPort !== undefined ? { proxyPort: opts.proxyPort } : {}),
      proxyDomain: opts.proxyDomain,
      ...(opts.proxyIdleTimeout !== undefined ? { proxyIdleTimeoutSeconds: opts.proxyIdleTimeout } : {}),
      ...(opts.proxyWorkers !== undefined ? { proxyWorkers: opts.proxyWorkers } : {}),
      nodeConnect: opts.nodeConnect as NodeConnect,
      ...(opts.ssh !== undefined ? { ssh: opts.ssh } : {}),
      ...(opts.sshPort !== undefined ? { sshPort: opts.sshPort } : {}),
      ...(opts.publicHost !== undefined ? { publicHost: opts.publicHost } : {}),
      ...(opts.tlsCert !== undefined ? { tlsCert: opts.tlsCert } : {}),
      ...(opts.tlsKey !== undefined ? { tlsKey: opts.tlsKey } : {}),
      ...(opts.allowHostPath.length ? { allowHostPaths: opts.allowHostPath } : {}),
      ...(opts.metricsInterval !== undefined ? { metricsIntervalSeconds: metricsIntervalMs(opts.metricsInterval) / 1000 } : {}),
      ...(opts.metricsToken !== undefined ? { metricsToken: opts.metricsToken } : {}),
      ...(opts.terminalGrace !== undefined ? { terminalGraceSeconds: opts.terminalGrace } : {}),
      ...(opts.auditRetention !== undefined ? { auditRetentionDays: opts.auditRetention } : {}),
      ...(opts.podIsolation !== undefined ? { podIsolation: opts.podIsolation } : {}),
      ...(opts.podPolicy !== undefined ? { podPolicy: podPolicyOf(opts.podPolicy) } : {}),
      ...(nfsExports ? { nfsExports } : {}),
      ...(opts.nodeTimeout !== undefined ? { nodeTimeoutSeconds: positive('--node-timeout', opts.nodeTimeout) } : {}),
      ...(opts.unreachableAfter !== undefined ? { unreachableAfterSeconds: atLeastZero('--unreachable-after', opts.unreachableAfter) } : {}),
      ...(opts.advertiseUrl !== undefined ? { advertiseUrl: advertiseUrlOf(opts.advertiseUrl) } : {}),
      nice: niceOf(opts.nice),
      ...(opts.leaderLease !== undefined ? { leaderLeaseSeconds: atLeast('--leader-lease', opts.leaderLease, 1) } : {}),
    }).catch((err: unknown) => {
      throw systemError(err, opts.host, ports) ?? err;
    });
    const out = ctx.out;
    out.note(`Berth is listening on ${running.url} (data in ${running.dataDir}${running.agent ? '' : '; no local agent'})`);
    const { proxy, ssh } = running.endpoints;
    if (proxy) out.note(`HTTP proxy: ${proxy.scheme}://{podId}-{port}.${proxy.domain}:${proxy.port}/`);
    if (ssh) out.note(`SSH gateway: ssh -p ${ssh.port} {podId}@${ssh.host}`);
    if (running.adminKeyPath) adminKeyNote(out, running.adminKeyPath, running.url);
    await cliConfigNote(out, running, ctx.configPath);
    await untilSignal(out);
    await running.close();
    out.note('Berth stopped');
  },
});

/** `--nice`: -20..19, as nice(1). */
function niceOf(value: number): number {
  if (!isNice(value)) throw new UserError(`--nice must be a whole number from -20 to 19, as nice(1), not ${value}`);
  return value;
}

/** `--advertise-url`: an http(s) URL with a host, nothing after the port. */
function advertiseUrlOf(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UserError(`--advertise-url must be a URL such as http://10.0.0.5:7700, not "${value}"`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search || url.hash) throw new UserError(`--advertise-url must be http(s)://host[:port] with nothing after it, not "${value}"`);
  return url.origin;
}

function atLeast(flag: string, value: number, min: number): number {
  if (!(Number.isFinite(value) && value >= min)) throw new UserError(`${flag} must be a number of seconds, ${min} or more, not ${value}`);
  return value;
}

/** `--nfs us-east=10.0.0.5:/srv/berth,nfsvers=4.1`, once per data center. */
function nfsExportsOf(values: string[]): Record<string, NfsExport> | undefined {
  const out: Record<string, NfsExport> = {};
  for (const value of values.flatMap((v) => v.split(/\s+/)).filter(Boolean)) {
    let parsed: ReturnType<typeof parseNfsFlag>;
    try {
      parsed = parseNfsFlag(value);
    } catch (err) {
      if (err instanceof BerthError) throw new UserError(err.problems.map((p) => `${p.path}: ${p.message}`).join('; '));
      throw err;
    }
    if (out[parsed.dataCenter]) throw new UserError(`--nfs: data center ${parsed.dataCenter} is given twice; one export per data center`);
    out[parsed.dataCenter] = parsed.export;
  }
  return Object.keys(out).length ? out : undefined;
}

function podPolicyOf(text: string): Partial<PodSecurityPolicy> {
  const grant = parsePolicyGrants(text);
  if ('unknown' in grant) throw new UserError(`--pod-policy: unknown grant ${grant.unknown.join(', ')} (host-network, host-path, named-networks, privileged, cap:<NAME>, host-ports=none|unprivileged|any)`);
  return grant;
}

/** What the server listens with, in the order it opens them (so a port asked for twice fails at the later one). */
const LISTENERS = [
  { key: 'proxy', what: 'the HTTP proxy', flag: '--proxy-port', env: 'BERTH_PROXY_PORT', off: '--no-proxy' },
  { key: 'ssh', what: 'the SSH gateway', flag: '--ssh-port', env: 'BERTH_SSH_PORT', off: '--no-ssh' },
  { key: 'api', what: 'the API', flag: '--port', env: 'BERTH_PORT', off: undefined },
] as const;

/** The listener that asked for the port a listen error names; the API when the error does not say. */
function listenerOf(e: NodeJS.ErrnoException & { port?: number }, ports: ListenPorts): (typeof LISTENERS)[number] {
  return LISTENERS.find((l) => ports[l.key] !== undefined && ports[l.key] === e.port) ?? LISTENERS[2];
}

/** `pick another with --ssh-port (or BERTH_SSH_PORT), or run without the SSH gateway: --no-ssh` */
function moveIt(l: (typeof LISTENERS)[number]): string {
  return `pick another with ${l.flag} (or ${l.env})${l.off ? `, or run without ${l.what}: ${l.off}` : ''}`;
}

/** The machine said no (port taken, no permission on the data dir): the user can fix that. */
function systemError(err: unknown, host: string, ports: ListenPorts): UserError | undefined {
  const e = err as NodeJS.ErrnoException & { port?: number; address?: string };
  const listener = (): (typeof LISTENERS)[number] => listenerOf(e, ports);
  const where = (): string => `${e.address ?? host}:${e.port ?? ports[listener().key]}`;
  switch (e?.code) {
    case 'EADDRINUSE':
      return new UserError(`${where()}, the port of ${listener().what}, is already in use: is another Berth running? ${capitalize(moveIt(listener()))}`);
    case 'EADDRNOTAVAIL':
      return new UserError(`${host} is not an address of this machine (--host)`);
    case 'EACCES':
      if (e.syscall === 'listen') return new UserError(`cannot listen on ${where()} for ${listener().what}: permission denied (ports below 1024 need root); ${moveIt(listener())}`);
      return new UserError(`${e.message}; run as a user that may write there, or choose another --data-dir`);
    case 'EPERM':
    case 'EROFS':
      return new UserError(`${e.message}; run as a user that may write there, or choose another --data-dir`);
    default:
      return undefined;
  }
}

/** Where the admin key is, and how to use it. */
function adminKeyNote(out: Output, keyPath: string, url: string): void {
  out.note(
    [
      `The admin API key was written to ${keyPath}. Use it with:`,
      `  export BERTH_API_KEY=$(cat ${keyPath})`,
      `or save it for the berth CLI with:`,
      `  berth login --url ${url} --api-key "$(cat ${keyPath})"`,
    ].join('\n'),
  );
}

/**
 * The CLI config of the user who started the server: saved for this server on its first start when
 * there is none; otherwise left as it is, and when it is for another server (or holds a key this one
 * does not know) that is said, with the command that switches it here.
 */
async function cliConfigNote(out: Output, running: RunningServer, configPath: string): Promise<void> {
  const existing = await readConfig(configPath).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
  if (existing === undefined && running.adminKeyPath) {
    await writeConfig(configPath, { url: running.url, apiKey: (await readFile(running.adminKeyPath, 'utf8')).trim() });
    out.note(`Saved ${running.url} and the admin key in ${configPath}: \`berth pod list\` works on this machine as it is.`);
    return;
  }
  const problem = await configProblem(existing, running, configPath);
  if (!problem) return;
  const keyPath = running.adminKeyPath ?? join(running.dataDir, 'admin.key');
  const haveKey = await access(keyPath).then(
    () => true,
    () => false,
  );
  const login = haveKey ? `berth login --url ${running.url} --api-key "$(cat ${keyPath})"` : `berth login --url ${running.url}   # asks for an API key of this server`;
  out.note(`${problem}. To use this server with berth, run:\n  ${login}`);
}

/** Why the CLI config does not reach this server as it is; undefined when it does. */
async function configProblem(existing: CliConfig | Error | undefined, running: RunningServer, configPath: string): Promise<string | undefined> {
  if (existing instanceof Error) return `${existing.message}; the berth CLI config was left as it is`;
  if (existing === undefined) return `There is no berth CLI config (${configPath}) on this machine`;
  const configured = existing.url ?? DEFAULT_URL;
  if (!sameLocalServer(configured, running.url)) return `The berth CLI config ${configPath} is for another server (${configured}); it was left as it is`;
  if (!existing.apiKey) return `The berth CLI config ${configPath} is for this server but holds no API key; it was left as it is`;
  if (!(await knownKey(running, existing.apiKey))) return `The berth CLI config ${configPath} is for this server but holds a key it does not know (one of an earlier data dir?); it was left as it is`;
  return undefined;
}

/** Whether a configured URL reaches this server: the same URL, or a loopback name for it on the same port. */
function sameLocalServer(configured: string, url: string): boolean {
  let a: URL, b: URL;
  try {
    a = new URL(normalizeUrl(configured));
    b = new URL(url);
  } catch {
    return false;
  }
  if (a.protocol !== b.protocol || a.port !== b.port) return false;
  const host = (u: URL): string => (LOOPBACK.has(u.hostname) ? 'loopback' : u.hostname);
  return host(a) === host(b);
}

/** Whether this server takes the key: asked in-process, so neither TLS nor the network is in the way. */
async function knownKey(running: RunningServer, apiKey: string): Promise<boolean> {
  const res = await running.app.inject({ method: 'GET', url: '/api/v1/whoami', headers: { authorization: `Bearer ${apiKey}` } });
  return res.statusCode === 200;
}

/** The operator's lifetime policies for new pods, checked here so a wrong one stops the start with its reason. */
function serverLifetimeDefault(opts: { defaultIdleStop?: string | undefined; defaultIdleGpuThreshold?: number | undefined; defaultIdleSignals: string[]; defaultMaxRuntime?: string | undefined; defaultTerminateAfterStopped?: string | undefined }): LifetimeInput | undefined {
  const given = lifetimeFrom(
    { idleStop: opts.defaultIdleStop, idleGpuThreshold: opts.defaultIdleGpuThreshold, idleSignals: opts.defaultIdleSignals, maxRuntime: opts.defaultMaxRuntime, terminateAfterStopped: opts.defaultTerminateAfterStopped },
    '--default-',
  );
  if (!given) return undefined;
  const problems: Problem[] = [];
  compileLifetime(given, problems, 'default');
  if (problems.length) throw new UserError(`the default lifetime policies: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
  return given;
}


function positive(flag: string, v: number): number {
  if (!(v > 0)) throw new UserError(`${flag} must be a number of seconds above 0`);
  return v;
}

function atLeastZero(flag: string, v: number): number {
  if (!(v >= 0)) throw new UserError(`${flag} must be a number of seconds, 0 or more`);
  return v;
}
