/**
 * Shared pieces of the benchmarks: timing, percentiles, a server in a child process, an API client
 * over global fetch (undici, keep-alive), a server-sent events reader, and the summary block.
 * Not a benchmark itself (no `// bench:` line), so `npm run bench` does not list it.
 */

import type Docker from 'dockerode';
import { readSse, type SseEvent } from '../src/cli/client.js';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** dist/bench, where the compiled entry scripts lie beside this file. */
export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));

/** Milliseconds since `start` (a `process.hrtime.bigint()` reading). */
export const msSince = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e6;

/** The q-quantile (0..1) by nearest rank on a sorted copy: p99 of 100 samples is the 99th smallest. */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}

export const median = (samples: readonly number[]): number => {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

export const fmt = (ms: number, digits = 1): string => `${ms.toFixed(digits)} ms`;

export function stats(samples: readonly number[]): { n: number; min: number; p50: number; p90: number; p95: number; p99: number; max: number; mean: number } {
  return {
    n: samples.length,
    min: Math.min(...samples),
    p50: median(samples),
    p90: quantile(samples, 0.9),
    p95: quantile(samples, 0.95),
    p99: quantile(samples, 0.99),
    max: Math.max(...samples),
    mean: samples.reduce((a, b) => a + b, 0) / samples.length,
  };
}

/** One line describing the machine, for the summary. */
export function machine(): string {
  const c = cpus();
  return `${c.length} cores (${c[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}, ${process.platform}`;
}

/** VmRSS (resident memory) of a process in MiB, from /proc; NaN where /proc is not there. */
export async function rssMiB(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** The commit measured, `-dirty` when the working tree had changes; `unknown` outside a git checkout. */
export function revision(): string {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty'], { cwd: join(BENCH_DIR, '..', '..'), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

/** Prints the final block every benchmark ends with: a banner, then `label: value` lines. */
export function summary(title: string, lines: [string, string][]): void {
  const width = Math.max(...lines.map(([k]) => k.length));
  const out = ['', `==== ${title} — summary ====`, `date: ${new Date().toISOString()}`, `machine: ${machine()}`, `code: ${revision()}`, `load average now: ${loadavg().map((l) => l.toFixed(2)).join(' ')} (1/5/15 min; other work on the machine shows here)`];
  for (const [k, v] of lines) out.push(`${k.padEnd(width)}  ${v}`);
  out.push('');
  process.stdout.write(out.join('\n') + '\n');
}

export const log = (msg: string): void => {
  process.stderr.write(`[bench] ${msg}\n`);
};

export interface ChildServer {
  url: string;
  pid: number;
  child: ChildProcess;
  /** Extra fields the entry script printed with its URL. */
  info: Record<string, unknown>;
  stop(): Promise<void>;
}

/**
 * Runs `node dist/bench/<script>.js args...` and waits for its first stdout line, a JSON object with
 * `url`. The server then runs on its own event loop, apart from the load generator.
 */
export async function startChild(script: string, args: string[], env: NodeJS.ProcessEnv = {}, opts: { ownSession?: boolean } = {}): Promise<ChildServer> {
  // BERTH_BENCH_NODE_ARGS: Node flags for the child only (`--cpu-prof --cpu-prof-dir=DIR`: NODE_OPTIONS refuses them).
  const nodeArgs = (process.env.BERTH_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  // ownSession: a session of its own, as a service has (Linux schedules each session as a group).
  const child = spawn(process.execPath, [...nodeArgs, join(BENCH_DIR, `${script}.js`), ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env }, detached: opts.ownSession ?? false });
  // A child in a session of its own misses the terminal's ^C: it goes when this process does.
  if (opts.ownSession) process.once('exit', () => child.kill('SIGTERM'));
  const lines = createInterface({ input: child.stdout! });
  // The first line that is a JSON object with a url; anything else it prints (before or after: NODE_OPTIONS=--trace-gc, say) goes to our stderr.
  let info: Record<string, unknown> | undefined;
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => {
      if (!info) reject(new Error(`${script} exited with code ${code} before it printed its URL`));
    });
    child.once('error', reject);
    lines.on('line', (l) => {
      if (!info && l.startsWith('{')) {
        const parsed = JSON.parse(l) as Record<string, unknown>;
        if (typeof parsed.url === 'string') {
          info = parsed;
          return resolve();
        }
      }
      log(`${script}: ${l}`);
    });
  });
  if (!info) throw new Error(`${script} printed no url`);
  return { url: info.url as string, pid: child.pid!, child, info, stop: stopper(child) };
}

/** Ends a child server: SIGTERM, then SIGKILL if it is not gone in 20 s. Call it before the child exits. */
export function stopper(child: ChildProcess): () => Promise<void> {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  };
}

export interface ApiResult<T> {
  status: number;
  body: T;
  ms: number;
}

/** A JSON client with a Bearer key over global fetch, whose undici dispatcher keeps connections alive. */
export function apiClient(base: string, key: string) {
  return async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<ApiResult<T>> {
    const start = process.hrtime.bigint();
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    const ms = msSince(start);
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T, ms };
  };
}

/**
 * Opens a server-sent events stream and calls `onEvent` for each event as it arrives, with the CLI's
 * SSE reader. Resolves once the response headers are in; `close()` ends it.
 */
export async function openEvents(url: string, key: string, onEvent: (e: SseEvent) => void): Promise<{ close: () => void; done: Promise<void> }> {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' }, signal: ac.signal });
  if (res.status !== 200 || !res.body) throw new Error(`GET ${url} answered ${res.status}`);
  const body = res.body;
  const done = (async () => {
    for await (const e of readSse(body, ac.signal)) onEvent(e);
  })();
  return { close: () => ac.abort(), done };
}

/** `--name N` from the command line, a whole number, or `fallback`. */
export function intArg(name: string, fallback: number, min = 0): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < min) throw new Error(`${name} takes a whole number${min < 0 ? ` from ${min}` : ''}`);
  return v;
}

/** Runs `fn` over `items` with at most `concurrency` at once. */
export async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  });
  await Promise.all(workers);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `ratio` with a verdict against a ceiling. */
export const verdict = (value: number, ceiling: number): string => (value <= ceiling ? 'PASS' : `MISS (over by ${(((value - ceiling) / ceiling) * 100).toFixed(0)}%)`);

/** Waits until Docker holds no container and no volume with `label` (a pod's, or a node's). */
export async function gone(docker: Docker, label: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const [containers, volumes] = await Promise.all([docker.listContainers({ all: true, filters: { label: [label] } }), docker.listVolumes({ filters: { label: [label] } })]);
    if (containers.length === 0 && (volumes.Volumes ?? []).length === 0) return;
    await sleep(50);
  }
  throw new Error(`containers or volumes with ${label} still exist after ${timeoutMs} ms`);
}

/** The docker CLI's fixed cost per call (process start, config, one API round trip), `n` times: for reading a CLI baseline. */
export async function dockerCliCost(n = 5): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = process.hrtime.bigint();
    execFileSync('docker', ['version', '--format', '{{.Server.Version}}'], { stdio: 'ignore' });
    out.push(msSince(start));
  }
  return out;
}
