/**
 * What a careful API client of several servers does during a failover, for the HA tests and
 * benchmarks: a create goes to one server and, when it is not acknowledged, is sent again — at once
 * when it surely was not committed (the connection was refused: it reached no server; a 503
 * NOT_LEADER: refused before any write), and only after looking the pod up by name when it may have
 * been (a connection cut mid-request, a timeout, another 5xx). It never sends the same create twice
 * blindly, so a duplicate pod is the servers' doing, not the client's.
 */
import type { HaServer, HaServers } from './ha-servers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface PodRef {
  id: string;
  name: string;
}

export type CreateOutcome =
  /** A 201: the pod must exist exactly once. */
  | { acknowledged: true; id: string; via: number; attempts: number; problems: string[] }
  /** Never acknowledged; `existed`: an unanswered attempt had in fact created it (found by name). */
  | { acknowledged: false; existed: boolean; attempts: number; problems: string[] };

/** Whether a fetch failure is a refused connection (nothing was sent to any server). */
export function refused(err: unknown): boolean {
  const cause = (err as { cause?: { code?: string; errors?: { code?: string }[] } }).cause;
  return cause?.code === 'ECONNREFUSED' || !!cause?.errors?.every((e) => e.code === 'ECONNREFUSED');
}

/** Whether a problem answer is NOT_LEADER (503, retryable: nothing was written). */
export function notLeader(status: number, body: unknown): boolean {
  return status === 503 && typeof body === 'object' && body !== null && String((body as { code?: unknown }).code ?? '').endsWith('NOT_LEADER');
}

/** Pods with `name` (terminated ones too) as a live server lists them; retried across servers until one answers. */
export async function podsNamed(cluster: HaServers, name: string, timeoutMs = 60_000): Promise<PodRef[]> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (let k = 0; ; k++) {
    const live = cluster.live();
    const s = live[k % Math.max(1, live.length)];
    if (s) {
      try {
        const r = await s.api<{ pods: PodRef[] }>('GET', `/api/v1/pods?name=${encodeURIComponent(name)}&includeTerminated=true&limit=1000`, undefined, { timeoutMs: 10_000 });
        if (r.status === 200) return r.body.pods.filter((p) => p.name === name);
        last = `${r.status} ${JSON.stringify(r.body)}`;
      } catch (err) {
        last = String(err);
      }
    }
    if (!s) last = `no server is running (${cluster.list.map((x) => `server ${x.index} ${x.exitStatus}`).join(', ')})`;
    if (Date.now() > deadline || !cluster.list.some((x) => x.running)) throw new Error(`could not list pods named ${name} on any live server in ${timeoutMs} ms: ${last}`);
    await sleep(250);
  }
}

export interface CreateOptions {
  /** Which server to try first (an index; the next live ones after it). @default 0 */
  first?: number;
  /** Only this server (a client that knows one server's URL). */
  only?: HaServer;
  /** Give up (unacknowledged) after this long. @default 120 s */
  timeoutMs?: number;
  /** The pause before sending a refused create again. @default 300 ms */
  retryMs?: number;
  /** After an unanswered create, the pause before looking it up by name (so it is no longer in flight). @default 1000 ms */
  lookAfterMs?: number;
}

/** Creates the pod named `body.name`, as a careful client would during a failover (see the top of this file). */
export async function createCarefully(cluster: HaServers, body: { name: string } & Record<string, unknown>, opts: CreateOptions = {}): Promise<CreateOutcome> {
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  const problems: string[] = [];
  let attempts = 0;
  for (let k = opts.first ?? 0; Date.now() < deadline; k++) {
    const s = opts.only ?? cluster.list[k % cluster.list.length]!;
    if (!s.running) {
      if (opts.only || !cluster.list.some((x) => x.running)) throw new Error(`create of ${body.name}: ${cluster.list.filter((x) => !x.running).map((x) => `server ${x.index} ${x.exitStatus}`).join(', ')} (see the servers' logs)`);
      await sleep(50);
      continue;
    }
    attempts++;
    let status: number;
    let answer: unknown;
    try {
      const r = await s.api<{ id: string }>('POST', '/api/v1/pods', body, { timeoutMs: 30_000 });
      if (r.status === 201) return { acknowledged: true, id: r.body.id, via: s.index, attempts, problems };
      status = r.status;
      answer = r.body;
    } catch (err) {
      if (refused(err)) {
        problems.push(`server ${s.index}: connection refused`);
        await sleep(opts.retryMs ?? 300);
        continue;
      }
      status = 0;
      answer = String((err as { cause?: unknown }).cause ?? err);
    }
    problems.push(`server ${s.index}: ${status || 'no answer'} ${JSON.stringify(answer).slice(0, 300)}`);
    if (status >= 400 && status < 500) throw new Error(`create of ${body.name} refused by server ${s.index}: ${status} ${JSON.stringify(answer)}`);
    if (!notLeader(status, answer)) {
      // It may have been written: look before sending it again (after a pause, so it is not still in flight).
      await sleep(opts.lookAfterMs ?? 1_000);
      if ((await podsNamed(cluster, body.name)).length > 0) return { acknowledged: false, existed: true, attempts, problems };
    }
    await sleep(opts.retryMs ?? 300);
  }
  return { acknowledged: false, existed: (await podsNamed(cluster, body.name).catch(() => [])).length > 0, attempts, problems };
}
