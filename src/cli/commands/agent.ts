/** `berth agent`: joins this machine to a Berth server and runs the pods placed on it. */
import { UserError } from '../output.js';
import { defineCommand } from './define.js';
import { keyValues } from './input.js';
import { untilSignal } from './lifecycle.js';

/** `--metrics-interval` in seconds, checked. */
export function metricsIntervalMs(seconds: number): number {
  if (!(seconds >= 0) || (seconds > 0 && seconds < 0.1)) throw new UserError('--metrics-interval is seconds: 0 (never) or at least 0.1');
  return Math.round(seconds * 1000);
}

export const agent = defineCommand({
  name: 'agent',
  description: "Join this machine to a Berth server: its pods run on this machine's Docker",
  options: {
    server: { kind: 'string', flags: '--server <url>', env: 'BERTH_SERVER', description: 'the server to join, e.g. http://10.0.0.1:7700' },
    token: { kind: 'string', flags: '--token <key>', env: 'BERTH_TOKEN', description: "an admin API key of that server; prefer the env var, argv shows in ps" },
    dataDir: { kind: 'string', flags: '--data-dir <path>', env: 'BERTH_DATA_DIR', description: "where the agent keeps its node id (default: the server's default data dir)" },
    name: { kind: 'string', flags: '--name <name>', env: 'BERTH_NODE_NAME', description: 'node name (default: the host name)' },
    publicIp: { kind: 'string', flags: '--public-ip <address>', env: 'BERTH_PUBLIC_IP', description: "the address users reach this machine's published ports at" },
    bindAddress: { kind: 'string', flags: '--bind-address <address>', env: 'BERTH_BIND_ADDRESS', description: 'where published ports bind (default 0.0.0.0)' },
    gpuInventory: { kind: 'string', flags: '--gpu-inventory <file>', env: 'BERTH_GPU_INVENTORY', description: 'a JSON file declaring GPUs for a machine without them (shown as simulated)' },
    infraImage: { kind: 'string', flags: '--infra-image <image>', env: 'BERTH_INFRA_IMAGE', description: "the image holding a multi-container pod's network namespace (default: one built on the node from catatonit, no registry)" },
    catatonit: { kind: 'string', flags: '--catatonit <path>', env: 'BERTH_CATATONIT', description: 'the static catatonit binary the node builds its infra image from (default: looked for in /usr/bin, /usr/libexec/podman)' },
    metricsInterval: { kind: 'number', flags: '--metrics-interval <seconds>', env: 'BERTH_METRICS_INTERVAL', description: "how often the agent measures its pods' usage and sends it (default 10; 0: never)" },
    label: { kind: 'list', flags: '--label <KEY=VALUE>', description: 'node label, e.g. berth.io/datacenter=eu-1 (repeatable)' },
    logLevel: { kind: 'string', flags: '--log-level <level>', env: 'BERTH_LOG_LEVEL', default: 'info', choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], description: 'log level' },
  },
  examples: ['BERTH_TOKEN=$(cat admin.key) berth agent --server http://10.0.0.1:7700 --public-ip 10.0.0.2'],
  async handler({ opts, ctx }) {
    if (!opts.server) throw new UserError('--server is required (or BERTH_SERVER): the URL of the Berth server to join');
    if (!opts.token) throw new UserError('--token is required (or BERTH_TOKEN): an admin API key of the server');
    const { startAgent } = await import('../agent.js');
    const running = await startAgent({
      server: opts.server,
      token: opts.token,
      logLevel: opts.logLevel,
      ...(opts.dataDir !== undefined ? { dataDir: opts.dataDir } : {}),
      ...(opts.name !== undefined ? { name: opts.name } : {}),
      ...(opts.publicIp !== undefined ? { publicIp: opts.publicIp } : {}),
      ...(opts.bindAddress !== undefined ? { bindAddress: opts.bindAddress } : {}),
      ...(opts.gpuInventory !== undefined ? { gpuInventory: opts.gpuInventory } : {}),
      ...(opts.infraImage !== undefined ? { infraImage: opts.infraImage } : {}),
      ...(opts.catatonit !== undefined ? { catatonitPath: opts.catatonit } : {}),
      ...(opts.label.length ? { labels: keyValues('--label', opts.label) } : {}),
      ...(opts.metricsInterval !== undefined ? { usageIntervalMs: metricsIntervalMs(opts.metricsInterval) } : {}),
    });
    ctx.out.note(`joined ${opts.server} as node ${running.id}`);
    await untilSignal(ctx.out);
    await running.close();
    ctx.out.note('agent stopped; its pods keep running and are adopted again at the next start');
  },
});
