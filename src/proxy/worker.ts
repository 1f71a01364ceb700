/**
 * A proxy worker process (forked by workers.ts): a ProxyEngine answering the client connections
 * the server passes it, routes from its copy of the server's table, private-port checks asked of
 * the server. It logs through the server, and it ends when the server does: its IPC channel
 * closing means the server is gone, whichever way it went.
 */
import { Socket, type SocketConstructorOpts } from 'node:net';
import pino, { type Logger } from 'pino';
import { proxyCounts } from './counters.js';
import { ProxyEngine } from './engine.js';
import { RouteView } from './routes.js';
import { RemoteAccess, type FromWorker, type ToWorker } from './worker-ipc.js';

if (!process.send) {
  process.stderr.write('the proxy worker is started by berth server, not by hand\n');
  process.exit(2);
}

const send = (m: FromWorker): void => {
  if (process.connected) process.send!(m);
};
const routes = new RouteView();
const access = new RemoteAccess(send);
let engine: ProxyEngine | undefined;
let log: Logger | undefined;
let originsQueued = false;

process.on('disconnect', () => process.exit(0));

// The pods used go to the server batched, once a second: nothing crosses per request.
const used = new Set<string>();
setInterval(() => {
  if (used.size === 0) return;
  send({ t: 'used', pods: [...used] });
  used.clear();
}, 1000).unref();

// The counters go to the server once a second when they moved: nothing crosses per request.
let sentCounts = '';
setInterval(() => {
  const text = JSON.stringify(proxyCounts);
  if (text === sentCounts) return;
  sentCounts = text;
  send({ t: 'counts', counts: { ...proxyCounts } });
}, 1000).unref();
process.on('uncaughtException', (err) => {
  log?.fatal({ err }, 'proxy worker failed');
  process.exitCode = 1;
  // Let the log line go out over IPC before the process ends.
  setImmediate(() => process.exit(1));
});

/** After route changes, once per turn: close connections to pods that no longer serve. */
function queueOrigins(): void {
  if (originsQueued) return;
  originsQueued = true;
  setImmediate(() => {
    originsQueued = false;
    engine?.keepOrigins(routes.origins());
  });
}

process.on('message', (m: ToWorker, handle?: unknown) => {
  switch (m.t) {
    case 'conn':
      if (handle instanceof Socket) {
        if (engine) engine.accept(handle);
        else handle.destroy();
      } else if (typeof handle === 'object' && handle !== null) {
        // A bare handle: the server's socket around it is closed, so this process must take it.
        if (engine) engine.acceptHandle(handle);
        else new Socket({ handle } as SocketConstructorOpts).destroy();
      }
      return;
    case 'route':
      routes.set(m.podId, m.route);
      queueOrigins();
      return;
    case 'answer':
      access.answer(m);
      return;
    case 'init': {
      const s = m.settings;
      log = pino({ level: s.logLevel, base: { worker: s.index } }, { write: (line: string) => send({ t: 'log', line }) });
      routes.reset(m.routes);
      engine = new ProxyEngine({
        routes,
        access,
        logger: log,
        domain: s.domain,
        idleTimeoutMs: s.idleTimeoutMs,
        onUse: (podId) => used.add(podId),
        ...(s.relay ? { relay: s.relay } : {}),
        ...(s.tls ? { tls: { cert: Buffer.from(s.tls.cert, 'base64'), key: Buffer.from(s.tls.key, 'base64') } } : {}),
      });
      send({ t: 'ready' });
      return;
    }
  }
});
