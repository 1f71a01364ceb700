// bench: failover — kill -9 of the leader of three servers → the first placement by the new one (goal ≤ 5 s), and the same after a clean stop (goal ≤ 1 s), medians of 10, vs a create → placed with a steady leader
/**
 * Three real `berth server` processes on a private PostgreSQL, no agents, one node written into the
 * store (bench/ha-cluster.ts says why). Every figure is the time from a moment to the first read,
 * through a surviving follower, that shows a new pod's instance on the node:
 *
 * - steady (the baseline, same run): from a create sent to a follower (forwarded to the leader) with
 *   a steady leader;
 * - kill -9: from SIGKILL of the leader, a create sent at once to a follower and sent again as a
 *   careful client does while no server leads (test/support/ha-client.ts: at once after a 503
 *   NOT_LEADER or a refused connection, after a look-up by name otherwise);
 * - clean stop: the same from SIGTERM of the leader (it resigns and tells the others).
 *
 * After each failover round the old leader is started again (it joins as a follower) and the run
 * waits until all three agree on a leader. Medians of `--rounds` (10) each; the figures are printed
 * with their goals, and as ratios to the steady placement.
 *
 *   npm run bench -- failover [--rounds 10]
 */
import { createCarefully } from '../test/support/ha-client.js';
import type { HaServer, HaServers } from '../test/support/ha-servers.js';
import { fmt, intArg, log, median, sleep, summary, verdict } from './common.js';
import { benchPod, startHaBenchCluster } from './ha-cluster.js';

const ROUNDS = intArg('--rounds', 10);
const KILL_GOAL_MS = 5_000;
const STOP_GOAL_MS = 1_000;
/** How often the surviving server is read while waiting for the placement. */
const POLL_MS = 10;

let serial = 0;

/** Creates a pod through `via` (carefully) and resolves with the time from `t0` until `via` shows its instance on a node. */
async function placedAfter(servers: HaServers, via: HaServer, t0: number): Promise<number> {
  const name = `failover-${process.pid}-${serial++}`;
  const made = await createCarefully(servers, benchPod(name), { only: via, retryMs: 50, lookAfterMs: 250, timeoutMs: 60_000 });
  if (!made.acknowledged && !made.existed) throw new Error(`${name} was not created in 60 s: ${made.problems.slice(-5).join('; ')}`);
  const id = made.acknowledged ? made.id : undefined;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const path = id ? `/api/v1/pods/${id}` : `/api/v1/pods?name=${name}&view=full`;
    const r = await via.api<{ instances?: { nodeId: string | null }[]; pods?: { instances: { nodeId: string | null }[] }[] }>('GET', path).catch(() => undefined);
    const instances = r?.status === 200 ? (r.body.instances ?? r.body.pods?.[0]?.instances ?? []) : [];
    if (instances.some((i) => i.nodeId)) return performance.now() - t0;
    if (Date.now() > deadline) throw new Error(`${name} was not placed in 60 s`);
    await sleep(POLL_MS);
  }
}

/** Waits until every running server agrees on a leader; its index. */
async function settled(servers: HaServers): Promise<number> {
  return servers.leader(60_000);
}

async function failoverRound(servers: HaServers, how: 'kill' | 'stop'): Promise<number> {
  const leader = servers.server(await settled(servers));
  const via = servers.list.find((s) => s.index !== leader.index && s.live)!;
  const t0 = performance.now();
  // Both send their signal before their first await: the create below follows it at once.
  const gone = how === 'kill' ? leader.kill9() : leader.stop();
  const ms = await placedAfter(servers, via, t0);
  await gone;
  await leader.start();
  return ms;
}

async function main(): Promise<void> {
  const cluster = await startHaBenchCluster(3);
  const { servers } = cluster;
  try {
    const first = await settled(servers);
    log(`leader: server ${first}`);
    // One create to warm every path (connections, the leader's caches) before anything is timed.
    await placedAfter(servers, servers.list.find((s) => s.index !== first)!, performance.now());

    const steady: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const leader = await settled(servers);
      const via = servers.list.find((s) => s.index !== leader)!;
      steady.push(await placedAfter(servers, via, performance.now()));
    }
    log(`steady placement: median ${fmt(median(steady))} (${steady.map((x) => x.toFixed(0)).join(', ')})`);

    const kill: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      kill.push(await failoverRound(servers, 'kill'));
      log(`kill -9 round ${i + 1}: ${fmt(kill[i]!)}`);
    }
    const stop: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      stop.push(await failoverRound(servers, 'stop'));
      log(`clean stop round ${i + 1}: ${fmt(stop[i]!)}`);
    }

    const base = median(steady);
    const k = median(kill);
    const s = median(stop);
    summary('failover', [
      ['servers', `3 on one PostgreSQL (private, this run), leader lease: the product's default`],
      ['steady create → placed (baseline)', `median ${fmt(base)} of ${ROUNDS} (min ${fmt(Math.min(...steady))}, max ${fmt(Math.max(...steady))})`],
      ['kill -9 → first placement', `median ${fmt(k)} of ${ROUNDS} (min ${fmt(Math.min(...kill))}, max ${fmt(Math.max(...kill))}); goal ≤ ${fmt(KILL_GOAL_MS, 0)}: ${verdict(k, KILL_GOAL_MS)}`],
      ['clean stop → first placement', `median ${fmt(s)} of ${ROUNDS} (min ${fmt(Math.min(...stop))}, max ${fmt(Math.max(...stop))}); goal ≤ ${fmt(STOP_GOAL_MS, 0)}: ${verdict(s, STOP_GOAL_MS)}`],
      ['kill -9 / steady', `${(k / base).toFixed(1)}×`],
      ['clean stop / steady', `${(s / base).toFixed(1)}×`],
    ]);
  } catch (err) {
    await servers.dumpLogs(30);
    throw err;
  } finally {
    await cluster.close();
  }
}

await main();
