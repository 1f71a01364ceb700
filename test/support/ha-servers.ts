/**
 * Several real `berth server` processes on one PostgreSQL (docs/ha.md), for the HA tests and
 * benchmarks: each a child process of its own (so it can be killed with -9, paused with SIGSTOP,
 * stopped and started again), with its own data dir, its own free API, proxy and SSH ports, its log
 * in a file of its own dir, and its API advertised at `http://<host>:<port>`.
 *
 * Only the first server starts on an empty database, so it is the one that writes `admin.key`; the
 * others share its keys through the database, and the harness keeps the key it read.
 *
 * Nothing here decides what the product must do: `leader()` only reads `GET /api/v1/cluster` on
 * every server that runs, and fails at once, saying so, where that view does not exist.
 */
import { alive, exited, freePort } from './clients.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = new URL('../../../bin/berth.js', import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PREFIX = 'berth-ha-';

/** What `GET /api/v1/cluster` answers (the admin view of docs/ha.md). */
export interface ClusterView {
  self: { id: string; url: string; leader: boolean };
  leader: { id: string; url: string; epoch: number } | null;
  servers: { id: string; url: string; startedAt: string; ageMs: number; leader: boolean }[];
}

export interface ApiReply<T> {
  status: number;
  body: T;
  headers: Headers;
}

export interface HaServersOptions {
  /** @default 3 */
  count?: number;
  /** The PostgreSQL every server uses (passed as BERTH_DATABASE_URL: argv shows in ps). */
  databaseUrl: string;
  /** The address every server listens on and advertises (the machines harness's hub address, for agents in namespaces). @default 127.0.0.1 */
  host?: string;
  /** `--leader-lease` in seconds, where the product has the flag. @default the product's (3) */
  leaderLeaseSeconds?: number;
  /** More `berth server` flags for every server, as argv (e.g. `['--no-agent']`, `['--node-timeout', '6']`). */
  args?: string[];
  /** @default warn, or $BERTH_TEST_LOG */
  logLevel?: string;
}



/**
 * Kills the servers of runs whose process is gone (killed before its close()) and removes their
 * dirs. A pid is killed only while its command line still names its dir (pids are reused).
 */
async function sweepServers(): Promise<void> {
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    if (!name.startsWith(PREFIX)) continue;
    const root = join(tmpdir(), name);
    const owner = Number(await readFile(join(root, 'owner'), 'utf8').catch(() => ''));
    if (!owner || alive(owner)) continue;
    for (const s of await readdir(root).catch(() => [] as string[])) {
      const pid = Number(await readFile(join(root, s, 'pid'), 'utf8').catch(() => ''));
      const cmdline = pid ? await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '') : '';
      if (cmdline.includes(root)) process.kill(pid, 'SIGKILL');
    }
    await rm(root, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Every child started by any HaServers of this process, killed if the process exits without closing them. */
const children = new Set<ChildProcess>();
let exitHook = false;
function track(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const c of children) c.kill('SIGKILL');
    });
  }
}

export class HaServer {
  readonly url: string;
  readonly dataDir: string;
  readonly logPath: string;
  private child: ChildProcess | undefined;
  private paused = false;
  /** The admin key (set by HaServers once the first server wrote it). */
  key = '';

  constructor(
    /** 0-based. */
    readonly index: number,
    readonly dir: string,
    readonly host: string,
    readonly port: number,
    readonly proxyPort: number,
    readonly sshPort: number,
    private readonly argv: string[],
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.url = `http://${host}:${port}`;
    this.dataDir = join(dir, 'data');
    this.logPath = join(dir, 'server.log');
  }

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  /** The process runs (paused or not). */
  get running(): boolean {
    const c = this.child;
    return !!c && c.exitCode === null && c.signalCode === null;
  }

  /** How it stands, for a message: `running`, `paused`, `exited with code 1`, `killed by SIGKILL`, `not started`. */
  get exitStatus(): string {
    const c = this.child;
    if (!c) return 'not started';
    if (this.running) return this.paused ? 'paused' : 'running';
    return c.signalCode ? `killed by ${c.signalCode}` : `exited with code ${c.exitCode}`;
  }

  /** It runs and is not paused: it can answer. */
  get live(): boolean {
    return this.running && !this.paused;
  }

  /** Starts the process and waits until it says it listens. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`server ${this.index} is already running`);
    await mkdir(this.dir, { recursive: true });
    const out = await open(this.logPath, 'a');
    const from = (await out.stat()).size;
    const child = spawn(process.execPath, [BIN, 'server', ...this.argv], { stdio: ['ignore', out.fd, out.fd], env: this.env });
    await out.close();
    track(child);
    await writeFile(join(this.dir, 'pid'), String(child.pid));
    this.child = child;
    this.paused = false;
    const deadline = Date.now() + 90_000;
    for (;;) {
      const text = (await readFile(this.logPath, 'utf8').catch(() => '')).slice(from);
      if (text.includes('Berth is listening on')) return;
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`server ${this.index} exited (${child.exitCode ?? child.signalCode}) while starting; ${this.logPath} ends:\n${await this.logTail()}`);
      if (Date.now() > deadline) throw new Error(`server ${this.index} did not listen in 90 s; ${this.logPath} ends:\n${await this.logTail()}`);
      await sleep(100);
    }
  }

  /** kill -9; resolves once the process is gone. */
  async kill9(): Promise<void> {
    const c = this.child;
    if (!c || !this.running) throw new Error(`server ${this.index} is not running`);
    c.kill('SIGKILL');
    await exited(c, 10_000);
    this.paused = false;
  }

  /** SIGSTOP: the process holds its sockets and answers nothing, as in a long pause. */
  sigstop(): void {
    if (!this.running) throw new Error(`server ${this.index} is not running`);
    process.kill(this.child!.pid!, 'SIGSTOP');
    this.paused = true;
  }

  sigcont(): void {
    if (!this.running) throw new Error(`server ${this.index} is not running`);
    process.kill(this.child!.pid!, 'SIGCONT');
    this.paused = false;
  }

  /** Stops it as an operator would: SIGTERM (a leader resigns), SIGKILL if it is not gone in 20 s. */
  async stop(): Promise<void> {
    const c = this.child;
    if (!c || !this.running) return;
    if (this.paused) this.sigcont();
    c.kill('SIGTERM');
    if (!(await exited(c, 20_000))) {
      c.kill('SIGKILL');
      await exited(c, 5_000);
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** A JSON request with the admin key. Throws on a connection error or after `timeoutMs` (a paused server answers nothing). */
  async api<T = unknown>(method: string, path: string, body?: unknown, opts: { timeoutMs?: number; key?: string } = {}): Promise<ApiReply<T>> {
    const res = await fetch(this.url + path, {
      method,
      headers: { authorization: `Bearer ${opts.key ?? this.key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: kept as text
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  }

  /** Its `GET /api/v1/cluster`; a clear error where the product has no such view. */
  async cluster(timeoutMs = 10_000): Promise<ClusterView> {
    const r = await this.api<ClusterView>('GET', '/api/v1/cluster', undefined, { timeoutMs });
    if (r.status === 404) throw new MissingProductError(`server ${this.index} answers GET /api/v1/cluster with 404: this build has no cluster view (HA leadership is not in it)`);
    if (r.status !== 200) throw new Error(`server ${this.index}: GET /api/v1/cluster answered ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  async logTail(lines = 40): Promise<string> {
    const text = await readFile(this.logPath, 'utf8').catch(() => '');
    return text.split('\n').slice(-lines).join('\n');
  }
}

/** A product part the test needs is not in this build: no point waiting for it. */
export class MissingProductError extends Error {}

export class HaServers {
  private constructor(
    readonly root: string,
    readonly list: HaServer[],
    /** HA flags `berth server` lacks in this build (the harness left them out). */
  ) {}

  /** Starts the servers: the first alone (it migrates the database and writes the admin key), then the rest together. */
  static async start(opts: HaServersOptions): Promise<HaServers> {
    const host = opts.host ?? '127.0.0.1';
    await sweepServers();
    const root = await mkdtemp(join(tmpdir(), PREFIX));
    await writeFile(join(root, 'owner'), String(process.pid));
    const list: HaServer[] = [];
    for (let i = 0; i < (opts.count ?? 3); i++) {
      const [port, proxyPort, sshPort] = [await freePort(host), await freePort(host), await freePort(host)];
      const dir = join(root, `s${i}`);
      const argv = [
        '--data-dir', join(dir, 'data'),
        '--host', host,
        '--port', String(port),
        '--proxy-port', String(proxyPort),
        '--ssh-port', String(sshPort),
        '--public-host', host,
        // One process per server: the box runs three of them besides agents.
        '--proxy-workers', '0',
        '--log-level', opts.logLevel ?? process.env.BERTH_TEST_LOG ?? 'warn',
        '--advertise-url', `http://${host}:${port}`,
        ...(opts.leaderLeaseSeconds !== undefined ? ['--leader-lease', String(opts.leaderLeaseSeconds)] : []),
        ...(opts.args ?? []),
      ];
      // The CLI config (`berth server` offers to write one) kept out of $HOME.
      const env = { ...process.env, BERTH_DATABASE_URL: opts.databaseUrl, XDG_CONFIG_HOME: join(dir, 'config') };
      list.push(new HaServer(i, dir, host, port, proxyPort, sshPort, argv, env));
    }
    const servers = new HaServers(root, list);
    try {
      await list[0]!.start();
      const key = (await readFile(join(list[0]!.dataDir, 'admin.key'), 'utf8')).trim();
      for (const s of list) s.key = key;
      await Promise.all(list.slice(1).map((s) => s.start()));
      return servers;
    } catch (err) {
      await servers.close();
      throw err;
    }
  }

  get key(): string {
    return this.list[0]!.key;
  }

  server(i: number): HaServer {
    const s = this.list[i];
    if (!s) throw new Error(`no server ${i}`);
    return s;
  }

  /** The servers that run and are not paused. */
  live(): HaServer[] {
    return this.list.filter((s) => s.live);
  }

  /**
   * The index of the leader every live server agrees on: one says it leads, every other names it as
   * leader. Polls until they agree; fails after `timeoutMs` with what each said, at once where the
   * product has no cluster view.
   */
  async leader(timeoutMs = 30_000, among: HaServer[] = this.live()): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown[] = [];
    for (;;) {
      const views = await Promise.all(
        among.map(async (s) => {
          try {
            return { s, view: await s.cluster(5_000) };
          } catch (err) {
            if (err instanceof MissingProductError) throw err;
            return { s, error: String(err) };
          }
        }),
      );
      last = views.map((v) => ('view' in v ? { server: v.s.index, self: v.view!.self, leader: v.view!.leader } : { server: v.s.index, error: v.error }));
      const answered = views.filter((v): v is { s: HaServer; view: ClusterView } => 'view' in v && !!v.view);
      const leaders = answered.filter((v) => v.view.self.leader);
      if (answered.length === among.length && leaders.length === 1) {
        const id = leaders[0]!.view.self.id;
        if (answered.every((v) => v.view.leader?.id === id)) return leaders[0]!.s.index;
      }
      if (Date.now() > deadline) throw new Error(`the live servers did not agree on one leader in ${timeoutMs} ms; they said: ${JSON.stringify(last)}`);
      await sleep(100);
    }
  }

  /** A join token created through server `i`, for `berth agent --token`. */
  async joinToken(i = 0): Promise<string> {
    const made = await this.server(i).api<{ token: string }>('POST', '/api/v1/tokens', { description: 'ha test machines' });
    if (made.status !== 201) throw new Error(`no join token: ${made.status} ${JSON.stringify(made.body)}`);
    return made.body.token;
  }

  /** The last lines of every server's log on stderr (call it when a test fails). */
  async dumpLogs(lines = 60): Promise<void> {
    for (const s of this.list) {
      const size = await stat(s.logPath).then((x) => x.size, () => 0);
      process.stderr.write(`\n---- server ${s.index} (${s.url}, ${s.running ? (s.live ? 'running' : 'paused') : 'not running'}), ${s.logPath} (${size} bytes) ends:\n${await s.logTail(lines)}\n`);
    }
  }

  /** Stops every server (paused ones resumed first) and removes their dirs (kept with BERTH_TEST_KEEP=1, logs and all); never throws. */
  async close(): Promise<void> {
    await Promise.all(this.list.map((s) => s.stop().catch(() => undefined)));
    if (process.env.BERTH_TEST_KEEP === '1') process.stderr.write(`kept the servers' dirs in ${this.root}\n`);
    else await rm(this.root, { recursive: true, force: true }).catch(() => undefined);
  }
}
