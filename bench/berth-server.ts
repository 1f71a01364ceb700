/**
 * Runs one Berth server (startServer, as `berth server` does) for a benchmark in its own process, so
 * the load generator never shares its event loop. Not a benchmark (no `// bench:` line).
 *
 *   node dist/bench/berth-server.js --data-dir DIR [--no-agent] [--infra-image IMAGE] [--console-dir DIR] [--nice N]
 *
 * Prints one JSON line `{"url", "pid", "dataDir"}` once it listens; SIGTERM closes it.
 */

import { monitorEventLoopDelay } from 'node:perf_hooks';
import pino from 'pino';
import { startServer } from '../src/cli/server.js';

const args = process.argv.slice(2);
const at = args.indexOf('--data-dir');
const dataDir = at >= 0 ? args[at + 1] : undefined;
if (!dataDir) {
  process.stderr.write('usage: berth-server.js --data-dir DIR [--no-agent]\n');
  process.exit(2);
}

const server = await startServer({
  dataDir,
  port: 0,
  host: '127.0.0.1',
  agent: !args.includes('--no-agent'),
  // Multi-container pods' infra image: a locally built one where no registry can be reached.
  ...(args.includes('--infra-image') ? { infraImage: args[args.indexOf('--infra-image') + 1]! } : {}),
  // The web console's files (the console bench adds its baseline page to a copy of them).
  ...(args.includes('--console-dir') ? { consoleDir: args[args.indexOf('--console-dir') + 1]! } : {}),
  stopTimeoutSeconds: 1,
  // --nice N: the server's CPU priority, as `berth server --nice` (whose default the burst bench passes).
  ...(args.includes('--nice') ? { nice: Number(args[args.indexOf('--nice') + 1]) } : {}),
  // BERTH_BENCH_METRICS_INTERVAL: --metrics-interval (0: no usage sampling), for A/B runs.
  ...(process.env.BERTH_BENCH_METRICS_INTERVAL ? { metricsIntervalSeconds: Number(process.env.BERTH_BENCH_METRICS_INTERVAL) } : {}),
  logger: pino({ level: process.env.BERTH_BENCH_LOG ?? 'silent' }),
});
process.stdout.write(JSON.stringify({ url: server.url, pid: process.pid, dataDir, proxyPort: server.proxy?.port ?? null, sshPort: server.ssh?.port ?? null }) + '\n');

// BERTH_BENCH_LOOP_DELAY=1: the event loop's delay (p50, p99, max) every 5 s on stderr, to tell a
// server that blocks its own loop from one the machine gives too little CPU.
if (process.env.BERTH_BENCH_LOOP_DELAY) {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  setInterval(() => {
    const ms = (n: number): string => (n / 1e6).toFixed(1);
    process.stderr.write(`[berth-server] loop delay p50 ${ms(delay.percentile(50))} p99 ${ms(delay.percentile(99))} max ${ms(delay.max)} ms\n`);
    delay.reset();
  }, 5000).unref();
}

let closing = false;
const close = (): void => {
  if (closing) return;
  closing = true;
  server.close().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`close failed: ${String(err)}\n`);
      process.exit(1);
    },
  );
};
process.on('SIGTERM', close);
process.on('SIGINT', close);
