/**
 * A private PostgreSQL for one test run (or one benchmark): its own cluster in a temp dir, on a free
 * port, so a test may restart or stop the database without touching the shared one other test files
 * use. The binaries are the newest of /usr/lib/postgresql/<version>/bin, run as the `postgres` user
 * (`runuser`, as argv: PostgreSQL refuses to run as root).
 *
 * Trust authentication, and only from the addresses it listens on: the cluster is a throwaway on
 * this box. `fsync=off` (the box does not crash under a test; a restart, even `-m immediate`, loses
 * nothing committed, since synchronous_commit stays on).
 */
import { alive, freePort } from './clients.js';
import { execFile } from 'node:child_process';
import { chown, mkdtemp, readdir, readFile, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const PG_ROOT = '/usr/lib/postgresql';
const PREFIX = 'berth-pg-';

export interface PrivatePostgresOptions {
  /** Addresses it listens on besides 127.0.0.1 (e.g. the machines harness's hub address). @default none */
  listen?: string[];
  /** The database created for Berth. @default berth */
  database?: string;
}

export interface PrivatePostgres {
  /** `postgres://postgres@127.0.0.1:<port>/<database>` */
  url: string;
  /** The same database reached at another address it listens on. */
  urlAt(address: string): string;
  port: number;
  dir: string;
  /** `pg_ctl restart`: every connection is cut (`fast`: sessions ended cleanly; `immediate`: as a crash, recovered from WAL). Resolves once it answers again. */
  restart(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Stops it (its data stays; `start()` brings it back). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
  /** The server's log, for an error message. */
  log(): Promise<string>;
  /** Stops it and removes everything it wrote; never throws. */
  close(): Promise<void>;
}

/** The newest installed PostgreSQL's bin directory. */
export async function postgresBin(): Promise<string> {
  const versions = (await readdir(PG_ROOT).catch(() => [] as string[])).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  if (!versions[0]) throw new Error(`no PostgreSQL server under ${PG_ROOT}/<version>/bin (apt-get install postgresql)`);
  return join(PG_ROOT, versions[0], 'bin');
}


/** Runs a PostgreSQL program as the postgres user; its stdout, or an error with its stderr. */
async function asPostgres(bin: string, program: string, args: string[], timeoutMs = 120_000): Promise<string> {
  try {
    return (await run('runuser', ['-u', 'postgres', '--', join(bin, program), ...args], { timeout: timeoutMs })).stdout;
  } catch (e) {
    const err = e as Error & { stderr?: string; stdout?: string };
    throw new Error(`${program} ${args.join(' ')}: ${(err.stderr || err.stdout || err.message).trim()}`);
  }
}

/** initdb, configure, start, create the database. On any failure what was made is removed. */
export async function startPrivatePostgres(opts: PrivatePostgresOptions = {}): Promise<PrivatePostgres> {
  if (process.getuid?.() !== 0) throw new Error('a private PostgreSQL here needs root (to run its programs as the postgres user)');
  const bin = await postgresBin();
  const { uid, gid } = await postgresIds();
  await sweepPrivatePostgres(bin);
  const dir = await mkdtemp(join(tmpdir(), PREFIX));
  await writeFile(join(dir, 'owner'), String(process.pid));
  const data = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');
  const database = opts.database ?? 'berth';
  const listen = ['127.0.0.1', ...(opts.listen ?? [])];
  const port = await freePort();
  let started = false;

  const pgCtl = (args: string[], timeoutMs?: number) => asPostgres(bin, 'pg_ctl', ['-D', data, ...args], timeoutMs);
  const ready = async (): Promise<void> => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ok = await run(join(bin, 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port), '-d', 'postgres', '-U', 'postgres'], { timeout: 10_000 }).then(
        () => true,
        () => false,
      );
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`the private PostgreSQL on port ${port} did not answer in 60 s; its log ends:\n${tail(await readFile(logFile, 'utf8').catch(() => ''))}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  // -w waits for the start to finish; pg_isready then confirms it accepts connections on TCP.
  const start = async (): Promise<void> => {
    await pgCtl(['-l', logFile, '-w', '-t', '60', 'start']);
    started = true;
    await ready();
  };
  const stop = async (mode: 'fast' | 'immediate' = 'fast'): Promise<void> => {
    await pgCtl(['-w', '-t', '60', '-m', mode, 'stop']);
    started = false;
  };
  const close = async (): Promise<void> => {
    if (started) await stop('immediate').catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };

  try {
    await chown(dir, uid, gid);
    await asPostgres(bin, 'initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-instructions']);
    // Settings in the config, not pg_ctl's -o (which pg_ctl hands to a shell).
    await appendFile(
      join(data, 'postgresql.conf'),
      [
        '',
        '# berth test harness (test/support/postgres.ts)',
        `port = ${port}`,
        `listen_addresses = '${listen.join(',')}'`,
        `unix_socket_directories = '${dir}'`,
        'max_connections = 300',
        'fsync = off',
        'logging_collector = off',
        '',
      ].join('\n'),
    );
    await writeFile(join(data, 'pg_hba.conf'), ['local all all trust', ...listen.map((a) => `host all all ${a}/32 trust`), ''].join('\n'));
    await start();
    await asPostgres(bin, 'createdb', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', database]);
  } catch (err) {
    await close();
    throw err;
  }

  const urlAt = (address: string) => `postgres://postgres@${address}:${port}/${database}`;
  return {
    url: urlAt('127.0.0.1'),
    urlAt,
    port,
    dir,
    async restart(mode = 'fast') {
      await stop(mode);
      await start();
    },
    stop,
    start,
    log: () => readFile(logFile, 'utf8').catch(() => ''),
    close,
  };
}


/** Stops and removes the clusters of runs whose process is gone (killed before its close()). */
async function sweepPrivatePostgres(bin: string): Promise<void> {
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = join(tmpdir(), name);
    const owner = Number(await readFile(join(dir, 'owner'), 'utf8').catch(() => ''));
    if (!owner || alive(owner)) continue;
    await asPostgres(bin, 'pg_ctl', ['-D', join(dir, 'data'), '-m', 'immediate', '-w', 'stop'], 30_000).catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  const line = passwd.split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('no postgres user on this machine (apt-get install postgresql)');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

const tail = (text: string, lines = 30): string => text.split('\n').slice(-lines).join('\n');
