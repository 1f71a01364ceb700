/** `berth agent`: joins this machine to a Berth server and runs the pods placed on it. */
import { join } from 'node:path';
import { BerthError } from '../../model/index.js';
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
    server: { kind: 'list', split: true, flags: '--server <url>', env: 'BERTH_SERVER', description: "the server to join, e.g. https://10.0.0.1:7700; several servers of one cluster: repeat, or comma-separate (the first reachable is used; the agent then learns every server and connects to each). Default after the join: the ones joined" },
    token: { kind: 'string', flags: '--token <token>', env: 'BERTH_TOKEN', description: 'a join token of that server (`berth token create`), for the first start only; prefer the env var, argv shows in ps' },
    dataDir: { kind: 'string', flags: '--data-dir <path>', env: 'BERTH_DATA_DIR', description: "where the agent keeps its node credential and node id, in agent/ (default: the server's default data dir)" },
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
  examples: ['BERTH_TOKEN=<join token> berth agent --server https://10.0.0.1:7700 --public-ip 10.0.0.2', 'berth agent   # later starts: the stored credential'],
  async handler({ opts, ctx }) {
    const { startAgent } = await import('../agent.js');
    const { defaultDataDir } = await import('../server.js');
    let revoked!: (err: Error) => void;
    const refused = new Promise<Error>((resolve) => (revoked = resolve));
    let running;
    try {
      running = await startAgent({
        ...(opts.server.length ? { server: opts.server } : {}),
        ...(opts.token !== undefined ? { token: opts.token } : {}),
        note: (m) => ctx.out.note(m),
        onRevoked: revoked,
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
    } catch (err) {
      // Refused (a token expired, revoked or used up; a removed node), or a server that is not the pinned one: say so and stop, no retrying.
      if (err instanceof BerthError && err.kind !== 'INTERNAL') throw new UserError(err.message);
      throw err;
    }
    ctx.out.note(`running as node ${running.id}`);
    const stop = await Promise.race([untilSignal(ctx.out).then(() => undefined), refused]);
    await running.close();
    if (stop) throw new UserError(`${stop.message}\nthe server refused this node's credential: the node was removed (berth node rm). The agent stopped; its pods keep running on this machine until removed. To join again, remove ${join(opts.dataDir ?? defaultDataDir(), 'agent', 'credential.json')} and start with a new join token.`);
    ctx.out.note('agent stopped; its pods keep running and are adopted again at the next start');
  },
});
