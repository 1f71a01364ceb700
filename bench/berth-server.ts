/**
 * Runs one Berth server (startServer, as `berth server` does) for a benchmark in its own process, so
 * the load generator never shares its event loop. Not a benchmark (no `// bench:` line).
 *
 *   node dist/bench/berth-server.js --data-dir DIR [--no-agent] [--infra-image IMAGE] [--console-dir DIR]
 *
 * Prints one JSON line `{"url", "pid", "dataDir"}` once it listens; SIGTERM closes it.
 */

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
  logger: pino({ level: process.env.BERTH_BENCH_LOG ?? 'silent' }),
});
process.stdout.write(JSON.stringify({ url: server.url, pid: process.pid, dataDir, proxyPort: server.proxy?.port ?? null, sshPort: server.ssh?.port ?? null }) + '\n');

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
