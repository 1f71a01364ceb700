/** `berth server`: the all-in-one server (API, control plane and the local agent) in the foreground. */
import { readFile } from 'node:fs/promises';
import { readConfig, writeConfig } from '../config.js';
import { UserError, type Output } from '../output.js';
import { defineCommand } from './define.js';
import { untilSignal } from './lifecycle.js';

const LOCAL_HOSTS = new Set(['0.0.0.0', '::', '127.0.0.1', '::1', 'localhost']);

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
    agent: { kind: 'boolean', negatable: true, flags: '--agent', env: 'BERTH_AGENT', description: 'run an agent for this machine (the default)', negatedDescription: 'run only the API and control plane (env BERTH_AGENT=false)' },
    proxy: { kind: 'boolean', negatable: true, flags: '--proxy', env: 'BERTH_PROXY', description: 'run the HTTP proxy to pods (the default)', negatedDescription: 'run no HTTP proxy' },
    proxyPort: { kind: 'number', integer: true, flags: '--proxy-port <port>', env: 'BERTH_PROXY_PORT', description: 'HTTP proxy port (default 7780; random when --port is 0)' },
    proxyDomain: { kind: 'string', flags: '--proxy-domain <domain>', env: 'BERTH_PROXY_DOMAIN', default: 'localhost', description: 'pods answer at {podId}-{port}.<domain> (point a wildcard DNS record here)' },
    proxyIdleTimeout: { kind: 'number', flags: '--proxy-idle-timeout <seconds>', env: 'BERTH_PROXY_IDLE_TIMEOUT', description: 'close proxied streams and WebSockets idle this long (default 0: never)' },
    proxyWorkers: { kind: 'number', integer: true, flags: '--proxy-workers <n>', env: 'BERTH_PROXY_WORKERS', description: 'proxy worker processes (default: one per CPU but one, at least one; 0: the proxy runs in the server process)' },
    ssh: { kind: 'boolean', negatable: true, flags: '--ssh', env: 'BERTH_SSH', description: 'run the SSH gateway (the default)', negatedDescription: 'run no SSH gateway' },
    sshPort: { kind: 'number', integer: true, flags: '--ssh-port <port>', env: 'BERTH_SSH_PORT', description: 'SSH gateway port (default 2222; random when --port is 0)' },
    publicHost: { kind: 'string', flags: '--public-host <name>', env: 'BERTH_PUBLIC_HOST', description: 'the host name users reach this server at, shown in ssh commands (default: --public-ip, else localhost)' },
    tlsCert: { kind: 'string', flags: '--tls-cert <file>', env: 'BERTH_TLS_CERT', description: 'PEM certificate: the API and the proxy speak HTTPS (a wildcard *.<domain> covers the proxy)' },
    tlsKey: { kind: 'string', flags: '--tls-key <file>', env: 'BERTH_TLS_KEY', description: "the certificate's PEM private key" },
    allowHostPath: { kind: 'list', split: true, flags: '--allow-host-path <path>', env: 'BERTH_ALLOW_HOST_PATHS', description: 'a host directory pods may mount as a host volume (repeat, or comma-separate; default: none)' },
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
    const { startServer } = await import('../server.js');
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
      ...(opts.agent !== undefined ? { agent: opts.agent } : {}),
      ...(opts.proxy !== undefined ? { proxy: opts.proxy } : {}),
      ...(opts.proxyPort !== undefined ? { proxyPort: opts.proxyPort } : {}),
      proxyDomain: opts.proxyDomain,
      ...(opts.proxyIdleTimeout !== undefined ? { proxyIdleTimeoutSeconds: opts.proxyIdleTimeout } : {}),
      ...(opts.proxyWorkers !== undefined ? { proxyWorkers: opts.proxyWorkers } : {}),
      ...(opts.ssh !== undefined ? { ssh: opts.ssh } : {}),
      ...(opts.sshPort !== undefined ? { sshPort: opts.sshPort } : {}),
      ...(opts.publicHost !== undefined ? { publicHost: opts.publicHost } : {}),
      ...(opts.tlsCert !== undefined ? { tlsCert: opts.tlsCert } : {}),
      ...(opts.tlsKey !== undefined ? { tlsKey: opts.tlsKey } : {}),
      ...(opts.allowHostPath.length ? { allowHostPaths: opts.allowHostPath } : {}),
    }).catch((err: unknown) => {
      throw systemError(err, opts.host, opts.port) ?? err;
    });
    const out = ctx.out;
    out.note(`Berth is listening on ${running.url} (data in ${running.dataDir}${running.agent ? '' : '; no local agent'})`);
    const { proxy, ssh } = running.endpoints;
    if (proxy) out.note(`HTTP proxy: ${proxy.scheme}://{podId}-{port}.${proxy.domain}:${proxy.port}/`);
    if (ssh) out.note(`SSH gateway: ssh -p ${ssh.port} {podId}@${ssh.host}`);
    if (running.adminKeyPath) {
      const localUrl = LOCAL_HOSTS.has(opts.host) ? `http://127.0.0.1:${running.port}` : running.url;
      await firstStart(out, running.adminKeyPath, localUrl, ctx.configPath);
    }
    await untilSignal(out);
    await running.close();
    out.note('Berth stopped');
  },
});

/** The machine said no (port taken, no permission on the data dir): the user can fix that. */
function systemError(err: unknown, host: string, port: number): UserError | undefined {
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'EADDRINUSE':
      return new UserError(`${host}:${port} is already in use: is another Berth running? Pick another with --port`);
    case 'EADDRNOTAVAIL':
      return new UserError(`${host} is not an address of this machine (--host)`);
    case 'EACCES':
      if (e.syscall === 'listen') return new UserError(`cannot listen on ${host}:${port}: permission denied (ports below 1024 need root); pick another --port`);
      return new UserError(`${e.message}; run as a user that may write there, or choose another --data-dir`);
    case 'EPERM':
    case 'EROFS':
      return new UserError(`${e.message}; run as a user that may write there, or choose another --data-dir`);
    default:
      return undefined;
  }
}

/** Says where the admin key is and saves a CLI config for this server when there is none yet. */
async function firstStart(out: Output, keyPath: string, url: string, configPath: string): Promise<void> {
  out.note(
    [
      `The admin API key was written to ${keyPath}. Use it with:`,
      `  export BERTH_API_KEY=$(cat ${keyPath})`,
      `or save it for the berth CLI with:`,
      `  berth login --url ${url} --api-key "$(cat ${keyPath})"`,
    ].join('\n'),
  );
  const existing = await readConfig(configPath).catch(() => null);
  if (existing !== undefined) return;
  const apiKey = (await readFile(keyPath, 'utf8')).trim();
  await writeConfig(configPath, { url, apiKey });
  out.note(`Saved ${url} and the admin key in ${configPath}: \`berth pod list\` works on this machine as it is.`);
}
