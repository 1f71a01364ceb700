/**
 * The proxy's worker processes, seen from the server: forked at start, fed the route table (a
 * snapshot, then every change as it is made) and handed the client connections the server
 * accepts (round-robin; the socket handle travels over IPC, as node:cluster does it). Nothing
 * crosses per request, except a private port's checks: the worker asks, the server answers from
 * its key service and token secret. A worker that dies is started again; close() ends them all,
 * and a worker whose server is gone ends itself (worker.ts).
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { addCounts, zeroCounts, type ProxyCounts } from './counters.js';
import { socketHandle } from './engine.js';
import type { ProxyAccess } from './gate.js';
import { routeData, type RouteTable } from './routes.js';
import { answerQuestion, type FromWorker, type ToWorker, type WorkerSettings } from './worker-ipc.js';

const WORKER_ENTRY = fileURLToPath(new URL('./worker.js', import.meta.url));
/** A worker must be ready this soon after it is forked. */
const START_TIMEOUT_MS = 30_000;
/** Connections accepted while no worker is ready wait, up to this many. */
const MAX_WAITING = 1024;
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 10_000;
/** A worker that ran this long before dying is restarted at once, not after a growing pause. */
const STABLE_MS = 30_000;
const STOP_GRACE_MS = 3_000;

export interface WorkerPoolOptions {
  count: number;
  routes: RouteTable;
  access: ProxyAccess;
  logger: Logger;
  settings: Omit<WorkerSettings, 'index' | 'logLevel'>;
  /** Told the pods the workers routed requests to, a batch a second per worker. */
  onUse?: (podIds: string[]) => void;
}

interface Slot {
  index: number;
  child: ChildProcess | undefined;
  ready: boolean;
  startedAt: number;
  failures: number;
  restart: NodeJS.Timeout | undefined;
  /** The worker's last counters. */
  counts: ProxyCounts;
}

export class WorkerPool {
  private readonly slots: Slot[];
  private readonly waiting: Socket[] = [];
  private readonly unwatch: () => void;
  private nextSlot = 0;
  private closing = false;
  /** The last counters of workers that ended: the totals never go back when one is replaced. */
  private readonly retired = zeroCounts();

  private constructor(private readonly opts: WorkerPoolOptions) {
    this.slots = Array.from({ length: opts.count }, (_, index) => ({ index, child: undefined, ready: false, startedAt: 0, failures: 0, restart: undefined, counts: zeroCounts() }));
    this.unwatch = opts.routes.watch((podId, route) => this.broadcast({ t: 'route', podId, route: route ? routeData(route) : null }));
  }

  /** Forks the workers and resolves once every one is ready; a worker that cannot start fails the start. */
  static async start(opts: WorkerPoolOptions): Promise<WorkerPool> {
    const pool = new WorkerPool(opts);
    try {
      await Promise.all(pool.slots.map((s) => pool.spawn(s)));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /** The workers' counters added up, as of their last report (at most a second old). */
  counts(): ProxyCounts {
    const sum = addCounts(zeroCounts(), this.retired);
    for (const s of this.slots) addCounts(sum, s.counts);
    return sum;
  }

  /** Process ids of the running workers. */
  pids(): number[] {
    return this.slots.flatMap((s) => (s.child?.pid !== undefined && s.child.exitCode === null ? [s.child.pid] : []));
  }

  /** Gives a newly accepted client connection (paused, nothing read) to the next ready worker. */
  hand(socket: Socket): void {
    const n = this.slots.length;
    for (let i = 0; i < n; i++) {
      const slot = this.slots[(this.nextSlot + i) % n]!;
      if (!slot.ready || !slot.child?.connected) continue;
      this.nextSlot = (slot.index + 1) % n;
      const child = slot.child;
      // The bare handle where it can be had (the worker wraps it in a socket reading into a buffer
      // of its own), else the socket, which Node closes here once it is sent.
      const handle = socketHandle(socket);
      child.send({ t: 'conn' } satisfies ToWorker, (handle ?? socket) as Socket, (err) => {
        // The worker went away in between: another one takes it.
        if (err) return void (!socket.destroyed && this.hand(socket));
        // The worker holds its own copy of the descriptor now; closing this one leaves the connection open.
        if (handle) socket.destroy();
      });
      return;
    }
    if (this.closing || this.waiting.length >= MAX_WAITING) return void socket.destroy();
    socket.once('close', () => {
      const i = this.waiting.indexOf(socket);
      if (i >= 0) this.waiting.splice(i, 1);
    });
    this.waiting.push(socket);
  }

  async close(): Promise<void> {
    this.closing = true;
    this.unwatch();
    for (const s of this.waiting.splice(0)) s.destroy();
    await Promise.all(
      this.slots.map(async (slot) => {
        clearTimeout(slot.restart);
        slot.ready = false;
        const child = slot.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  private broadcast(m: ToWorker): void {
    for (const s of this.slots) if (s.child?.connected) s.child.send(m);
  }

  /** Forks one worker into its slot; resolves when it is ready, rejects when it dies first. */
  private spawn(slot: Slot): Promise<void> {
    const log = this.opts.logger;
    const child = fork(WORKER_ENTRY, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' });
    slot.child = child;
    slot.ready = false;
    slot.startedAt = Date.now();
    const workerLog = log.child({ worker: slot.index, workerPid: child.pid });
    child.send({
      t: 'init',
      settings: { ...this.opts.settings, index: slot.index, logLevel: log.level },
      routes: this.opts.routes.snapshot(),
    } satisfies ToWorker);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`proxy worker ${slot.index} did not start in ${START_TIMEOUT_MS / 1000} s`));
        child.kill('SIGKILL');
      }, START_TIMEOUT_MS);
      child.on('message', (m: FromWorker) => {
        switch (m.t) {
          case 'ready':
            clearTimeout(timer);
            slot.ready = true;
            resolve();
            for (const s of this.waiting.splice(0)) this.hand(s);
            return;
          case 'log':
            relayLog(workerLog, m.line);
            return;
          case 'used':
            this.opts.onUse?.(m.pods);
            return;
          case 'counts':
            slot.counts = m.counts;
            return;
          case 'ask': {
            const { id, t: _t, ...q } = m;
            answerQuestion(this.opts.access, q).then(
              (value) => child.connected && child.send({ t: 'answer', id, value } satisfies ToWorker),
              (err: unknown) => child.connected && child.send({ t: 'answer', id, error: err instanceof Error ? err.message : String(err) } satisfies ToWorker),
            );
            return;
          }
        }
      });
      child.on('error', (err) => workerLog.warn({ err }, 'proxy worker process error'));
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        const wasReady = slot.ready;
        slot.ready = false;
        addCounts(this.retired, slot.counts);
        slot.counts = zeroCounts();
        if (slot.child === child) slot.child = undefined;
        if (!wasReady) reject(new Error(`proxy worker ${slot.index} exited before it was ready (${signal ?? `code ${code}`})`));
        if (this.closing) return;
        const ranFor = Date.now() - slot.startedAt;
        slot.failures = ranFor > STABLE_MS ? 0 : slot.failures + 1;
        const delay = slot.failures === 0 ? 0 : Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** (slot.failures - 1));
        workerLog.warn({ code, signal, restartInMs: delay }, 'proxy worker exited; starting another');
        slot.restart = setTimeout(() => {
          slot.restart = undefined;
          if (!this.closing) this.spawn(slot).catch((err: unknown) => workerLog.warn({ err }, 'proxy worker failed to start'));
        }, delay);
      });
    });
  }
}

/** A worker's pino line, logged again by the server's logger at its level. */
function relayLog(log: Logger, line: string): void {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return void log.info({ line }, 'proxy worker said');
  }
  const { level, msg, time: _time, pid: _pid, hostname: _host, worker: _worker, ...rest } = rec;
  const label = (typeof level === 'number' ? log.levels.labels[level] : undefined) ?? 'info';
  const fn = log[label as 'info'].bind(log);
  fn(rest, typeof msg === 'string' ? msg : '');
}
