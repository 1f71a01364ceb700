/**
 * The set-up the HA benchmarks share (failover, fanout): a private PostgreSQL (test/support/postgres.ts,
 * needs root and the postgresql package), three real `berth server` processes on it
 * (test/support/ha-servers.ts) with no local agent, and one node for placements to land on.
 * Not a benchmark itself (no `// bench:` line).
 *
 * The node is written into the store as an agent's registration writes it (as bench/scheduler.ts
 * writes its nodes), with no agent behind it: placement is what these benchmarks time, not a
 * container start, and an agent on this box would add Docker's noise to every figure. The servers
 * get `--node-timeout 86400` so the silent node stays READY for the run.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DATA_CENTER_LABEL, DEFAULT_DATA_CENTER } from '../src/control/agents.js';
import type { NodeId } from '../src/model/index.js';
import { openStore } from '../src/store/index.js';
import { HaServers } from '../test/support/ha-servers.js';
import { startPrivatePostgres, type PrivatePostgres } from '../test/support/postgres.js';
import { log } from './common.js';

export interface HaBenchCluster {
  pg: PrivatePostgres;
  servers: HaServers;
  nodeId: NodeId;
  close(): Promise<void>;
}

export async function startHaBenchCluster(count = 3): Promise<HaBenchCluster> {
  const pg = await startPrivatePostgres();
  let servers: HaServers | undefined;
  const scratch = await mkdtemp(join(tmpdir(), 'berth-bench-ha-'));
  const close = async (): Promise<void> => {
    await servers?.close();
    await pg.close();
    await rm(scratch, { recursive: true, force: true });
  };
  try {
    log(`private PostgreSQL on port ${pg.port}`);
    servers = await HaServers.start({ databaseUrl: pg.url, count, args: ['--no-agent', '--node-timeout', '86400'], logLevel: process.env.BERTH_BENCH_LOG ?? 'warn' });
    log(`${count} servers: ${servers.list.map((s) => s.url).join(' ')}`);
    const nodeId = await addNode(pg.url, scratch);
    return { pg, servers, nodeId, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** One big CPU node, READY, as its agent's registration would write it. */
async function addNode(databaseUrl: string, scratch: string): Promise<NodeId> {
  const store = await openStore({ dataDir: scratch, databaseUrl });
  const id = 'nbenchha0001' as NodeId;
  const at = new Date().toISOString();
  try {
    await store.transaction((tx) =>
      tx.upsertNode({
        id,
        name: 'bench-node',
        publicIp: '127.0.0.1',
        labels: { [DATA_CENTER_LABEL]: DEFAULT_DATA_CENTER },
        capacity: { cpus: 100_000, memoryMb: 100_000 * 1024, gpus: [], gpusSimulated: false },
        agentVersion: 'bench',
        registeredAt: at,
        lastSeenAt: at,
      }),
    );
  } finally {
    await store.close();
  }
  return id;
}

/** A pod that places on the bench node and asks for little. */
export const benchPod = (name: string) => ({ name, image: 'busybox', command: ['sleep', '3600'], vcpuCount: 1, memoryGb: 1, volumeGb: 0 });
