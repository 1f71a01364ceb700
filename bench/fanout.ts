// bench: fanout — a write on one of three servers → its event on another server's /api/v1/events, p50/p99 over 200 writes (goal p99 ≤ 100 ms), vs the same write → the event on the writing server's own stream
/**
 * Three real `berth server` processes on a private PostgreSQL, no agents, one node written into the
 * store (bench/ha-cluster.ts says why). Server A is the leader (the server that commits the write, so
 * the figure is the change relay's and not write forwarding's); server B is a follower. Both
 * `GET /api/v1/events` streams are open, read by this process.
 *
 * `--writes` (200) times, one after the other: a pod created through A's API (`POST /api/v1/pods`);
 * the time from sending the request until the pod's first event arrives on B's stream, and — the
 * baseline, the same write — on A's own stream. Both include the request's own work (validation,
 * the write, placement) up to its commit: the difference between them is what carrying the change to
 * another server costs.
 *
 *   npm run bench -- fanout [--writes 200]
 */
import { EventFollower } from '../test/support/event-stream.js';
import { fmt, intArg, log, quantile, sleep, summary, verdict } from './common.js';
import { benchPod, startHaBenchCluster } from './ha-cluster.js';

const WRITES = intArg('--writes', 200);
const GOAL_P99_MS = 100;

async function main(): Promise<void> {
  const cluster = await startHaBenchCluster(3);
  const { servers } = cluster;
  const streams: EventFollower[] = [];
  try {
    const a = servers.server(await servers.leader(60_000));
    const b = servers.list.find((s) => s.index !== a.index)!;
    log(`A (writes, leader): server ${a.index}; B (reads): server ${b.index}`);
    const onA = new EventFollower(a.url, servers.key);
    const onB = new EventFollower(b.url, servers.key);
    streams.push(onA, onB);
    await Promise.all([onA.ready, onB.ready]);

    const local: number[] = [];
    const remote: number[] = [];
    const warm = 10;
    for (let i = -warm; i < WRITES; i++) {
      const name = `fanout-${process.pid}-${i + warm}`;
      const match = (e: { event: string; data: Record<string, unknown> }) => e.event === 'pod' && e.data.name === name;
      const t0 = performance.now();
      const [seenA, seenB, made] = await Promise.all([onA.waitFor(name, match, 30_000), onB.waitFor(name, match, 30_000), a.api('POST', '/api/v1/pods', benchPod(name))]);
      if (made.status !== 201) throw new Error(`create ${name} through A: ${made.status} ${JSON.stringify(made.body)}`);
      // The first few warm the paths up and are not counted.
      if (i >= 0) {
        local.push(seenA.at - t0);
        remote.push(seenB.at - t0);
      }
      await sleep(5);
    }
    if (onA.reconnects || onB.reconnects) log(`the streams were opened again ${onA.reconnects} (A) and ${onB.reconnects} (B) times`);

    const [l50, l99, r50, r99] = [quantile(local, 0.5), quantile(local, 0.99), quantile(remote, 0.5), quantile(remote, 0.99)];
    summary('fanout', [
      ['servers', '3 on one PostgreSQL (private, this run); A the leader, B a follower'],
      ['writes', `${WRITES} pod creates through A, one at a time (after ${warm} not counted)`],
      ['write → event on A (baseline)', `p50 ${fmt(l50)}, p99 ${fmt(l99)}, max ${fmt(Math.max(...local))}`],
      ['write → event on B', `p50 ${fmt(r50)}, p99 ${fmt(r99)}, max ${fmt(Math.max(...remote))}; goal p99 ≤ ${fmt(GOAL_P99_MS, 0)}: ${verdict(r99, GOAL_P99_MS)}`],
      ['B / A', `p50 ${(r50 / l50).toFixed(2)}×, p99 ${(r99 / l99).toFixed(2)}×`],
    ]);
  } catch (err) {
    await servers.dumpLogs(30);
    throw err;
  } finally {
    await Promise.all(streams.map((s) => s.close()));
    await cluster.close();
  }
}

await main();
