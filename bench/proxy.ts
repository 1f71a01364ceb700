// bench: proxy — wrk through Berth's proxy vs nginx as a reverse proxy vs direct, keep-alive, 64 connections (targets: req/s ≥ 0.8 × nginx, p99 ≤ nginx p99 + 2 ms); --remote: through the node's channel vs the local proxy (target ≥ 0.7×)
/**
 * The proxy's hot path under load. One pod serves a small fixed response (nginx in the pod: see
 * upstream-image.ts for why not busybox httpd). wrk (Debian's) drives 64 keep-alive connections
 * over 2 threads at:
 *
 *   direct   the pod's published port (127.0.0.1:<hostPort>), no proxy at all;
 *   berth    Berth's proxy, `Host: {podId}-8080.localhost`, of `berth server` run as a user runs it
 *            (bin/berth.js), in a child process: worker processes, one per CPU unless
 *            `--proxy-workers N` is given here and passed on;
 *   nginx    Debian's nginx as the equivalent reverse proxy to the same published port, at its best:
 *            worker_processes auto, upstream keepalive (without a request cap per connection),
 *            access_log off, proxy_buffering off, the same X-Forwarded-* headers Berth adds.
 *
 * Both proxies reach the pod the same way (the published port, through Docker's port forwarding), so
 * the difference between them is the proxies' own work. Rounds are interleaved (direct, berth,
 * nginx, then the next round in another order) and the median of the rounds is reported. Everything
 * runs on this machine: on a 2-core box wrk, Docker's userland proxy, the pod's nginx and the proxy
 * under test share the cores, which is part of what the figures say. Other work on the machine moves
 * req/s a lot; the CPU time each proxy spends per request (its processes' user + system time from
 * /proc over the run, divided by the requests) moves much less, and is reported beside them.
 *
 *   npm run bench -- proxy [--rounds 3] [--seconds 10] [--connections 64] [--proxy-workers N]
 *
 * `--remote`: the proxy reaching a pod through its node's NodeAccess (`--node-connect channel`: the
 * way to nodes that accept no inbound connection) against the local proxy reaching the same pod at
 * its published port (`--node-connect direct`), in the same run. One `berth server` on fixed ports
 * and one data dir is restarted with the other flag between measurements (the pod keeps running:
 * the agent adopts it again), the order alternating per round. The server runs with `--no-agent`
 * and the pod lives on a `berth agent` process that joined it with a join token and serves its
 * NodeAccess over its node channel, which it dials again across the server's restarts: the remote
 * figure. `--local-node` puts the pod on the server's own node instead (the channel path is then
 * the proxy's relay to the local NodeAccess, without the node channel).
 *
 *   npm run bench -- proxy --remote [--local-node] [--rounds 3] [--seconds 10] [--connections 64] [--proxy-workers N]
 */
import { freePort } from '../src/agent/ports.js';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { apiClient, BENCH_DIR, intArg, log, median, sleep, stopper, summary } from './common.js';
import { ensureUpstreamImage, UPSTREAM_BODY } from './upstream-image.js';

const run = promisify(execFile);
const ROUNDS = intArg('--rounds', 3);
const SECONDS = intArg('--seconds', 10);
const CONNECTIONS = intArg('--connections', 64);
const THREADS = 2;
/** Passed to `berth server --proxy-workers` when given; absent, Berth's default (one per CPU but one). */
const WORKERS = process.argv.includes('--proxy-workers') ? intArg('--proxy-workers', 0) : undefined;

interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  requests: number;
  /** CPU time of the proxy's processes per request, µs; NaN for direct. */
  cpuUs: number;
  /** The part of cpuUs spent in the first process (Berth's server process, nginx's master). */
  rootCpuUs: number;
}

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** [pid, ppid, user + system ticks] of every process, from /proc. */
async function processTable(): Promise<[number, number, number][]> {
  const out: [number, number, number][] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    // The command name (field 2) may hold spaces: the fields after it start past its last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f.length > 13) out.push([Number(name), Number(f[1]), Number(f[11]) + Number(f[12])]);
  }
  return out;
}

/** The CPU ticks used so far by `root` and its descendants (`rootTicks`: by `root` alone), and how many processes that is. */
async function treeTicks(root: number): Promise<{ ticks: number; rootTicks: number; processes: number }> {
  const table = await processTable();
  const tree = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of table) {
      if (tree.has(ppid) && !tree.has(pid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  const inTree = table.filter(([pid]) => tree.has(pid));
  return { ticks: inTree.reduce((a, [, , t]) => a + t, 0), rootTicks: inTree.find(([pid]) => pid === root)?.[2] ?? 0, processes: inTree.length };
}

/** Milliseconds from wrk's `1.23ms`, `456.00us`, `1.02s`. */
function duration(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60_000;
}

async function wrk(url: string, host: string | undefined, seconds: number, proxyPid?: number): Promise<WrkResult> {
  const args = ['-t', String(THREADS), '-c', String(CONNECTIONS), '-d', `${seconds}s`, '--latency', ...(host ? ['-H', `Host: ${host}`] : []), url];
  const before = proxyPid ? await treeTicks(proxyPid) : undefined;
  const { stdout } = await run('wrk', args, { maxBuffer: 1 << 20 });
  const after = proxyPid ? await treeTicks(proxyPid) : undefined;
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1]);
  const perRequest = (ticks: number): number => ((ticks / CLOCK_TICKS) * 1e6) / requests;
  const cpuUs = before && after ? perRequest(after.ticks - before.ticks) : NaN;
  const rootCpuUs = before && after ? perRequest(after.rootTicks - before.rootTicks) : NaN;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const p50 = duration(/^\s+50%\s+(\S+)/m.exec(stdout)?.[1] ?? '');
  const p99 = duration(/^\s+99%\s+(\S+)/m.exec(stdout)?.[1] ?? '');
  const errs = /Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const errors = Number(errs?.[1] ?? 0) + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  if (!Number.isFinite(rps)) throw new Error(`wrk printed no rate:\n${stdout}`);
  return { rps, p50, p99, errors, requests, cpuUs, rootCpuUs };
}

/** fetch cannot set Host; node:http can. */
function statusOf(port: number, host: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}


interface Berth {
  url: string;
  proxyPort: number;
  pid: number;
  stop(): Promise<void>;
}

const BIN = join(BENCH_DIR, '..', '..', 'bin', 'berth.js');

/** `berth server` from bin/berth.js, as a user starts it: no agent flags, a temporary data dir, random ports unless `extra` names some. */
async function startBerth(work: string, extra: string[] = []): Promise<Berth> {
  const args = [BIN, 'server', '--data-dir', join(work, 'data'), '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn', ...(WORKERS !== undefined ? ['--proxy-workers', String(WORKERS)] : []), ...extra];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, XDG_CONFIG_HOME: work, BERTH_URL: '', BERTH_API_KEY: '' } });
  const stop = stopper(child);
  let stderr = '';
  const started = await new Promise<{ url: string; proxyPort: number }>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`berth server exited with code ${code}:\n${stderr}`)));
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString();
      const url = /listening on (http:\/\/[\d.]+:\d+)/.exec(stderr)?.[1];
      const proxyPort = /HTTP proxy: http:\/\/\S+:(\d+)\//.exec(stderr)?.[1];
      if (url && proxyPort) resolve({ url, proxyPort: Number(proxyPort) });
    });
  });
  return {
    ...started,
    pid: child.pid!,
    stop,
  };
}

/** nginx as the reference reverse proxy, in its own prefix with its own config. */
async function startNginx(dir: string, upstreamPort: number): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort('127.0.0.1');
  const conf = `worker_processes auto;
daemon off;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/f; uwsgi_temp_path ${dir}/u; scgi_temp_path ${dir}/s;
  keepalive_requests 1000000;
  upstream pod { server 127.0.0.1:${upstreamPort}; keepalive 128; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://pod;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_buffering off;
    }
  }
}
`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  const child = spawn('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text().then((t) => t === UPSTREAM_BODY), () => false);
    if (ok) return { port, child };
    await sleep(50);
  }
  child.kill();
  throw new Error('nginx did not start');
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'berth-bench-proxy-'));
  let server: Berth | undefined;
  let nginx: ChildProcess | undefined;
  let podId: string | undefined;
  let api: ReturnType<typeof apiClient> | undefined;
  try {
    const image = await ensureUpstreamImage();
    server = await startBerth(work);
    const proxyPort = server.proxyPort;
    const key = (await readFile(join(work, 'data', 'admin.key'), 'utf8')).trim();
    api = apiClient(server.url, key);
    const created = await api<{ id: string }>('POST', '/api/v1/pods', { name: 'bench-upstream', image, ports: ['8080/http'], volumeGb: 0 });
    if (created.status !== 201) throw new Error(`create answered ${created.status}: ${JSON.stringify(created.body)}`);
    podId = created.body.id;
    const hostHeader = `${podId}-8080.localhost:${proxyPort}`;
    let hostPort = 0;
    for (let i = 0; i < 600 && !hostPort; i++) {
      const pod = await api<{ status: string; portMappings: Record<string, number> }>('GET', `/api/v1/pods/${podId}`);
      if (pod.body.status === 'ERROR') throw new Error('the upstream pod failed');
      const ready = pod.body.status === 'RUNNING' && pod.body.portMappings['8080'];
      const through = ready ? (await statusOf(proxyPort, hostHeader)) === 200 : false;
      if (ready && through) hostPort = pod.body.portMappings['8080']!;
      else await sleep(100);
    }
    if (!hostPort) throw new Error('the upstream pod did not come up');
    const ng = await startNginx(work, hostPort);
    nginx = ng.child;
    log(`pod ${podId} serves on 127.0.0.1:${hostPort}; berth proxy :${proxyPort}; nginx :${ng.port}`);

    const berthPid = server.pid;
    const nginxPid = ng.child.pid!;
    const targets = {
      direct: () => wrk(`http://127.0.0.1:${hostPort}/`, undefined, SECONDS),
      berth: () => wrk(`http://127.0.0.1:${proxyPort}/`, hostHeader, SECONDS, berthPid),
      nginx: () => wrk(`http://127.0.0.1:${ng.port}/`, hostHeader, SECONDS, nginxPid),
    };
    type Name = keyof typeof targets;
    // Warm-up: connections, JIT, pools.
    for (const name of Object.keys(targets) as Name[]) await (name === 'direct' ? wrk(`http://127.0.0.1:${hostPort}/`, undefined, 3) : wrk(name === 'berth' ? `http://127.0.0.1:${proxyPort}/` : `http://127.0.0.1:${ng.port}/`, hostHeader, 3));
    const results: Record<Name, WrkResult[]> = { direct: [], berth: [], nginx: [] };
    const orders: Name[][] = [
      ['direct', 'berth', 'nginx'],
      ['nginx', 'berth', 'direct'],
      ['berth', 'nginx', 'direct'],
    ];
    for (let r = 0; r < ROUNDS; r++) {
      for (const name of orders[r % orders.length]!) {
        const res = await targets[name]();
        results[name].push(res);
        log(`round ${r + 1} ${name.padEnd(6)} ${res.rps.toFixed(0).padStart(7)} req/s  p50 ${res.p50.toFixed(2)} ms  p99 ${res.p99.toFixed(2)} ms${Number.isNaN(res.cpuUs) ? '' : `  ${res.cpuUs.toFixed(1)} µs CPU/req (${res.rootCpuUs.toFixed(1)} in the first process)`}${res.errors ? `  errors ${res.errors}` : ''}`);
      }
    }
    const med = (name: Name, f: keyof WrkResult): number => median(results[name].map((x) => x[f]));
    const ratio = med('berth', 'rps') / med('nginx', 'rps');
    const p99Gap = med('berth', 'p99') - med('nginx', 'p99');
    const line = (name: Name): string => `${med(name, 'rps').toFixed(0)} req/s  p50 ${med(name, 'p50').toFixed(2)} ms  p99 ${med(name, 'p99').toFixed(2)} ms  (rounds: ${results[name].map((x) => x.rps.toFixed(0)).join(', ')} req/s${results[name].some((x) => x.errors) ? `; errors ${results[name].map((x) => x.errors).join(', ')}` : ''})`;
    const processes = { berth: (await treeTicks(berthPid)).processes, nginx: (await treeTicks(nginxPid)).processes };
    const cpu = (name: 'berth' | 'nginx'): string => `${med(name, 'cpuUs').toFixed(1)} µs  (rounds: ${results[name].map((x) => x.cpuUs.toFixed(1)).join(', ')}; ${processes[name]} processes)`;
    summary('proxy', [
      ['load', `wrk -t${THREADS} -c${CONNECTIONS} -d${SECONDS}s --latency, keep-alive; ${ROUNDS} interleaved rounds after a 3 s warm-up each; medians`],
      ['upstream', `${image} in a pod, "${UPSTREAM_BODY.trim()}" (${UPSTREAM_BODY.length} bytes)`],
      ['berth server', `bin/berth.js server${WORKERS !== undefined ? ` --proxy-workers ${WORKERS}` : ''}: ${processes.berth - 1} proxy worker processes${WORKERS === undefined ? ' (the default: one per CPU but one)' : ''}`],
      ['nginx', `worker_processes auto: ${processes.nginx - 1} workers`],
      ['direct (published port)', line('direct')],
      ['berth proxy', line('berth')],
      ['nginx reverse proxy', line('nginx')],
      ['berth/nginx req/s (target ≥ 0.8)', `${ratio.toFixed(2)}  ${ratio >= 0.8 ? 'PASS' : 'MISS'}`],
      ['berth p99 - nginx p99 (target ≤ 2 ms)', `${p99Gap >= 0 ? '+' : ''}${p99Gap.toFixed(2)} ms  ${p99Gap <= 2 ? 'PASS' : 'MISS'}`],
      ['berth/direct req/s', (med('berth', 'rps') / med('direct', 'rps')).toFixed(2)],
      ['berth proxy CPU per request', cpu('berth')],
      ['nginx CPU per request', cpu('nginx')],
      ['berth/nginx CPU per request', (med('berth', 'cpuUs') / med('nginx', 'cpuUs')).toFixed(2)],
    ]);
  } finally {
    nginx?.kill('SIGQUIT');
    if (api && podId) await api('POST', `/api/v1/pods/${podId}/terminate`, {}).catch(() => undefined);
    await sleep(500);
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

/** How the remote bench's server reaches the pod: `local` is the proxy as it reaches its own node (the published port). */
type Reach = 'local' | 'channel';
const AGENT_PROCESS = !process.argv.includes('--local-node');

async function mainRemote(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'berth-bench-proxy-remote-'));
  // Fixed ports: the server is restarted between measurements, and an agent process dials it again.
  const ports = { api: await freePort('127.0.0.1'), proxy: await freePort('127.0.0.1'), ssh: await freePort('127.0.0.1') };
  const fixed = ['--port', String(ports.api), '--proxy-port', String(ports.proxy), '--ssh-port', String(ports.ssh), ...(AGENT_PROCESS ? ['--no-agent'] : [])];
  let server: Berth | undefined;
  let serving: Reach | undefined;
  let stopAgent: (() => Promise<void>) | undefined;
  let podId: string | undefined;
  let key = '';
  const api = (): ReturnType<typeof apiClient> => apiClient(server!.url, key);
  /** The server with `reach`, restarted if it runs with the other; resolves once the pod answers through its proxy. */
  const serve = async (reach: Reach): Promise<void> => {
    if (serving === reach && server) return;
    await server?.stop();
    server = await startBerth(work, [...fixed, '--node-connect', reach === 'local' ? 'direct' : 'channel']);
    serving = reach;
    key ||= (await readFile(join(work, 'data', 'admin.key'), 'utf8')).trim();
    if (!podId) return;
    for (let i = 0; i < 600; i++) {
      if ((await statusOf(ports.proxy, `${podId}-8080.localhost:${ports.proxy}`)) === 200) return;
      await sleep(100);
    }
    throw new Error(`the pod did not answer through the proxy (${reach})`);
  };
  try {
    const image = await ensureUpstreamImage();
    await serve('local');
    if (AGENT_PROCESS) {
      // The remote machine: its own agent process, joined with a join token.
      const joined = await api()<{ token: string }>('POST', '/api/v1/tokens', { description: 'bench remote machine', maxUses: 1 });
      const agent = spawn(process.execPath, [BIN, 'agent', '--server', server!.url, '--data-dir', join(work, 'agent'), '--name', 'bench-remote', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, BERTH_TOKEN: joined.body.token } });
      stopAgent = stopper(agent);
    }
    const created = await api()<{ id: string }>('POST', '/api/v1/pods', { name: 'bench-upstream', image, ports: ['8080/http'], volumeGb: 0 });
    if (created.status !== 201) throw new Error(`create answered ${created.status}: ${JSON.stringify(created.body)}`);
    podId = created.body.id;
    const hostHeader = `${podId}-8080.localhost:${ports.proxy}`;
    for (let i = 0; i < 600 && (await statusOf(ports.proxy, hostHeader)) !== 200; i++) await sleep(100);
    log(`pod ${podId}; berth proxy :${ports.proxy}; node ${AGENT_PROCESS ? 'an agent process' : "the server's own"}`);

    const results: Record<Reach, WrkResult[]> = { local: [], channel: [] };
    const orders: Reach[][] = [
      ['local', 'channel'],
      ['channel', 'local'],
    ];
    for (let r = 0; r < ROUNDS; r++) {
      for (const reach of orders[r % orders.length]!) {
        await serve(reach);
        await wrk(`http://127.0.0.1:${ports.proxy}/`, hostHeader, 3); // warm-up: connections, JIT, pools
        const res = await wrk(`http://127.0.0.1:${ports.proxy}/`, hostHeader, SECONDS, server!.pid);
        results[reach].push(res);
        log(`round ${r + 1} ${reach.padEnd(7)} ${res.rps.toFixed(0).padStart(7)} req/s  p50 ${res.p50.toFixed(2)} ms  p99 ${res.p99.toFixed(2)} ms  ${res.cpuUs.toFixed(1)} µs CPU/req (${res.rootCpuUs.toFixed(1)} in the server process)${res.errors ? `  errors ${res.errors}` : ''}`);
      }
    }
    const med = (name: Reach, f: keyof WrkResult): number => median(results[name].map((x) => x[f]));
    const line = (name: Reach): string => `${med(name, 'rps').toFixed(0)} req/s  p50 ${med(name, 'p50').toFixed(2)} ms  p99 ${med(name, 'p99').toFixed(2)} ms  CPU ${med(name, 'cpuUs').toFixed(1)} µs/req, ${med(name, 'rootCpuUs').toFixed(1)} of it in the server process  (rounds: ${results[name].map((x) => x.rps.toFixed(0)).join(', ')} req/s${results[name].some((x) => x.errors) ? `; errors ${results[name].map((x) => x.errors).join(', ')}` : ''})`;
    const ratio = med('channel', 'rps') / med('local', 'rps');
    const processes = (await treeTicks(server!.pid)).processes;
    summary('proxy --remote', [
      ['load', `wrk -t${THREADS} -c${CONNECTIONS} -d${SECONDS}s --latency, keep-alive; ${ROUNDS} rounds, the order alternating, a 3 s warm-up before each; medians`],
      ['upstream', `${image} in a pod on ${AGENT_PROCESS ? 'a berth agent process (--no-agent server)' : "the server's own node"}, "${UPSTREAM_BODY.trim()}" (${UPSTREAM_BODY.length} bytes)`],
      ['berth server', `bin/berth.js server${WORKERS !== undefined ? ` --proxy-workers ${WORKERS}` : ''}: ${processes - 1} proxy worker processes`],
      ['local proxy (--node-connect direct)', line('local')],
      ['through NodeAccess (--node-connect channel)', line('channel')],
      ['channel/local req/s (target ≥ 0.7)', `${ratio.toFixed(2)}  ${ratio >= 0.7 ? 'PASS' : 'MISS'}`],
      ['channel/local CPU per request', (med('channel', 'cpuUs') / med('local', 'cpuUs')).toFixed(2)],
    ]);
  } finally {
    if (server && podId) await api()('POST', `/api/v1/pods/${podId}/terminate`, {}).catch(() => undefined);
    await sleep(AGENT_PROCESS ? 3000 : 500);
    await server?.stop();
    await stopAgent?.();
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv.includes('--remote')) await mainRemote();
else await main();
