import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { Agent } from '../agent/agent.js';
import { buildApi } from '../api/server.js';
import { AgentService, KeyService, PodService, ResourceService, Sealer } from '../control/index.js';
import { DockerRuntime } from '../runtime/docker.js';
import { openStore } from '../store/index.js';
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
}

export interface RunningServer {
  url: string;
  port: number;
  dataDir: string;
  /** Set when this start created the admin key. */
  adminKeyPath: string | undefined;
  app: FastifyInstance;
  store: Store;
  agent: Agent | undefined;
  close(): Promise<void>;
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

  // Check Docker first: a missing daemon is a plain message, before anything is written.
  const runtime = options.agent === false ? undefined : await DockerRuntime.create();
  if (runtime) await runtime.ping();

  const store = await openStore({ dataDir, ...(options.databaseUrl ? { databaseUrl: options.databaseUrl } : {}), logger });
  const sealer = await Sealer.open(dataDir);
  const keys = new KeyService(store);
  const pods = new PodService(store);
  const agents = new AgentService(store, pods, sealer);
  const resources = new ResourceService(store, sealer, () => agents.wakeAll());
  const app = await buildApi({ store, pods, resources, keys, agents, logger });
  const port = options.port ?? 7700;
  const host = options.host ?? '0.0.0.0';
  try {
    await app.listen({ port, host });
  } catch (err) {
    agents.close();
    await store.close();
    throw err;
  }
  // After listen: a start that fails on a taken port leaves no key nobody was told about.
  const adminKeyPath = await keys.bootstrap(dataDir);
  const bound = app.server.address();
  const actualPort = typeof bound === 'object' && bound ? bound.port : port;
  const local = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const url = `http://${local}:${actualPort}`;

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
    });
    agents.setNodeAccess(agent.id, agent);
  }
  // A slow safety net for pods waiting for resources; joins and frees already trigger placement.
  const placer = setInterval(() => void pods.placeWaiting().catch((err: unknown) => logger.warn({ err }, 'placement pass failed')), 10_000);
  placer.unref();

  return {
    url,
    port: actualPort,
    dataDir,
    adminKeyPath,
    app,
    store,
    agent,
    async close() {
      clearInterval(placer);
      await agent?.close();
      agents.close();
      await app.close();
      await store.close();
    },
  };
}
