import { createHash } from 'node:crypto';
import { unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import { BerthError } from '../model/index.js';

/*
 * SQLite serves one server: a second `berth server` on the same data dir would run a second
 * leader (placement, deployments) beside the first and write the same file. The running server
 * holds `<dataDir>/server.sock`, a unix socket it listens on and answers with its pid. A second
 * server finds the address in use, connects, and is refused; a socket file nobody listens on (a
 * server killed with -9 leaves it) refuses the connection and is taken over. The kernel frees the
 * socket when the process dies, so unlike a pid file nothing can hold the lock after its holder.
 */

export const LOCK_SOCKET_NAME = 'server.sock';

/** Longest socket path that fits in sockaddr_un everywhere Berth runs (Linux allows 107 bytes). */
const MAX_SOCKET_PATH = 100;

/** How long a holder has to say its pid; one that is stopped (SIGSTOP) still holds the lock. */
const PROBE_TIMEOUT_MS = 1000;

export interface DataDirLock {
  /** Where the lock listens: the socket file, or an abstract address for a data dir with a long path. */
  readonly address: string;
  release(): Promise<void>;
}

/** Takes the data dir's single-server lock, or refuses with a CONFLICT that says who holds it. */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const file = join(dataDir, LOCK_SOCKET_NAME);
  // A path too long for a unix socket: an abstract one (Linux) named after the directory instead.
  const address = Buffer.byteLength(file) <= MAX_SOCKET_PATH ? file : `\0berth-${createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 32)}`;
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.end(`${process.pid}\n`);
  });
  // The lock never keeps the process alive by itself: a start that fails half-way still exits.
  server.unref();
  try {
    await listen(server, address);
  } catch (err) {
    if (errorCode(err) !== 'EADDRINUSE') throw err;
    const holder = await probe(address);
    if (holder.held) throw refused(dataDir, holder.pid);
    // Stale: whoever made it is gone. (Abstract addresses are never stale: the kernel drops them.)
    await unlink(file).catch((e: unknown) => {
      if (errorCode(e) !== 'ENOENT') throw e;
    });
    try {
      await listen(server, address);
    } catch (again) {
      // Another server starting at the same moment took it over first.
      if (errorCode(again) === 'EADDRINUSE') throw refused(dataDir, (await probe(address)).pid);
      throw again;
    }
  }
  return {
    address,
    // Closing a listening unix socket server removes its file.
    release: () => new Promise<void>((done) => server.close(() => done())),
  };
}

function refused(dataDir: string, pid: number | undefined): BerthError {
  return new BerthError(
    'CONFLICT',
    `another berth server is running on ${dataDir} (pid ${pid ?? 'unknown'}); SQLite serves one server: use --database-url postgres://… for several (docs/ha.md)`,
    { extra: { dataDir, ...(pid !== undefined ? { pid } : {}) } },
  );
}

function listen(server: Server, address: string): Promise<void> {
  return new Promise((done, fail) => {
    const onError = (err: Error) => fail(err);
    server.once('error', onError);
    server.listen(address, () => {
      server.off('error', onError);
      done();
    });
  });
}

/** Whether a server listens on `address`, and its pid when it says it in time. */
function probe(address: string): Promise<{ held: boolean; pid?: number }> {
  return new Promise((done) => {
    let text = '';
    let connected = false;
    const socket = createConnection(address);
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const pid = Number.parseInt(text, 10);
      done(connected ? { held: true, ...(Number.isInteger(pid) && pid > 0 ? { pid } : {}) } : { held: false });
    };
    const timer = setTimeout(finish, PROBE_TIMEOUT_MS);
    socket.setEncoding('utf8');
    socket.on('connect', () => (connected = true));
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('end', finish);
    socket.on('close', finish);
    // ECONNREFUSED (nobody listens) or ENOENT (the file went meanwhile): not held. Anything else
    // (EACCES: another user's server) cannot be told apart from a live holder, so it counts as one.
    socket.on('error', (err) => {
      if (errorCode(err) !== 'ECONNREFUSED' && errorCode(err) !== 'ENOENT') connected = true;
    });
  });
}

const errorCode = (err: unknown): string | undefined => (err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined);
