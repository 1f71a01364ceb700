/**
 * `berth apply -f pod.json`: a Marathon pod definition, created or updated through the server's
 * Marathon API (/marathon/v2), and with --wait followed until Marathon calls it STABLE.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { normalizeUrl } from '../client.js';
import { UserError, type Output } from '../output.js';
import { defineCommand } from './define.js';
import { readJsonObject } from './input.js';

const MARATHON_BASE = '/marathon/v2';
const POLL_MS = 1000;

interface MarathonAnswer {
  status: number;
  headers: Headers;
  body: unknown;
}

/** Marathon's error document: a message and, for a refused definition, each path with its errors. */
interface MarathonError {
  message?: string;
  details?: { path?: string; errors?: string[] }[];
}

/** What `GET /v2/pods/{id}::status` says, as much as the progress lines use. */
interface PodStatus {
  id: string;
  status: string;
  statusSince?: string;
  message?: string;
  instances?: { id: string; status: string; agentHostname?: string; message?: string }[];
}

/** A refused definition: Marathon's message, then each path and its errors, one per line. */
export class DefinitionRefused extends UserError {
  constructor(
    readonly status: number,
    readonly error: MarathonError,
  ) {
    super(error.message ?? `HTTP ${status}`);
    this.name = 'DefinitionRefused';
  }

  override render(): string[] {
    const lines = [`error: ${this.message}`];
    for (const d of this.error.details ?? []) for (const e of d.errors?.length ? d.errors : ['(no reason given)']) lines.push(`  ${d.path ?? '/'}: ${e}`);
    return lines;
  }
}

/** A Marathon path id in the URL: `/shop/web` → `shop/web`, each segment escaped. */
export function podPath(id: string): string {
  return id
    .replace(/^\/+/, '')
    .split('/')
    .map(encodeURIComponent)
    .join('/');
}

/** The definition's id, absolute as Marathon writes it. */
function definitionId(def: Record<string, unknown>, source: string): string {
  const id = def.id;
  if (typeof id !== 'string' || id.replace(/\//g, '') === '') throw new UserError(`${source}: the pod definition needs an "id", like "/my-pod"`);
  return id.startsWith('/') ? id : `/${id}`;
}

class MarathonClient {
  constructor(
    private readonly url: string,
    private readonly apiKey: string,
  ) {}

  async send(method: string, path: string, body?: unknown): Promise<MarathonAnswer> {
    const headers: Record<string, string> = { accept: 'application/json', authorization: `Bearer ${this.apiKey}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(this.url + MARATHON_BASE + path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    } catch (err) {
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err);
      throw new UserError(`cannot reach Berth at ${this.url}: ${cause}`);
    }
    const text = await res.text();
    let parsed: unknown = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = { message: `HTTP ${res.status}: ${text.trim().slice(0, 200)}` };
    }
    return { status: res.status, headers: res.headers, body: parsed };
  }

  /** An answer that is not 2xx as the error the user sees. */
  failure(what: string, a: MarathonAnswer): UserError {
    const err = (typeof a.body === 'object' && a.body !== null ? a.body : {}) as MarathonError & { detail?: string };
    if (a.status === 400 || a.status === 422) return new DefinitionRefused(a.status, err);
    if (a.status === 409) return new UserError(`${what}: ${err.message ?? 'a deployment is in progress'}`, 'wait for it to finish, or pass --force to replace it');
    if (a.status === 401 || a.status === 403) return new UserError(`${what}: the server refused the API key (HTTP ${a.status})`, 'run `berth login` or set BERTH_API_KEY');
    const reason = err.message ?? err.detail;
    return new UserError(`${what}: HTTP ${a.status}${reason ? `: ${reason}` : ''}`);
  }
}

/** `STAGING: 1 of 2 instances stable (abc STABLE on node-1, def STAGING)` */
function progressLine(s: PodStatus): string {
  const inst = s.instances ?? [];
  const stable = inst.filter((i) => i.status === 'STABLE').length;
  const each = inst.map((i) => `${i.id} ${i.status}${i.agentHostname ? ` on ${i.agentHostname}` : ''}${i.message ? ` (${i.message})` : ''}`);
  return `${s.status}: ${stable} of ${inst.length} instance${inst.length === 1 ? '' : 's'} stable${each.length ? ` (${each.join(', ')})` : ''}`;
}

/**
 * Polls the pod's status until it is STABLE and its deployment is no longer running (an update's old
 * instances are STABLE before the rollout replaces them). Prints each change of the progress line.
 */
async function waitStable(marathon: MarathonClient, out: Output, id: string, deploymentId: string | null, timeoutS: number | undefined): Promise<PodStatus> {
  const deadline = timeoutS !== undefined ? Date.now() + timeoutS * 1000 : Infinity;
  let last = '';
  let trouble: string | undefined;
  for (;;) {
    const a = await marathon.send('GET', `/pods/${podPath(id)}::status`);
    if (a.status !== 200) throw marathon.failure(`the status of pod ${id}`, a);
    const status = a.body as PodStatus;
    const line = progressLine(status);
    if (line !== last) out.note(line);
    last = line;
    if (status.status === 'STABLE' && !(await deploymentRunning(marathon, deploymentId))) return status;
    trouble = troubleOf(status) ?? trouble;
    if (Date.now() >= deadline) {
      // A retry in progress (STAGING, "pulling ...") says less than the failure before it.
      const retrying = status.instances?.some((i) => i.status === 'STAGING' || i.status === 'PENDING');
      const why = troubleOf(status) ?? (retrying ? trouble : undefined) ?? status.message;
      throw new UserError(`pod ${id} is not STABLE after ${timeoutS}s (it is ${status.status}${why ? `: ${why}` : ''}); it keeps deploying`);
    }
    await sleep(POLL_MS);
  }
}

/** What keeps instances from being stable, in the server's words: the messages of failed (TERMINAL) or unhealthy (DEGRADED) instances, each once. */
function troubleOf(s: PodStatus): string | undefined {
  const messages = new Set((s.instances ?? []).filter((i) => (i.status === 'TERMINAL' || i.status === 'DEGRADED') && i.message).map((i) => i.message!));
  return messages.size ? [...messages].join('; ') : undefined;
}

/** Whether the deployment is still listed; a server without the deployments list counts as done. */
async function deploymentRunning(marathon: MarathonClient, deploymentId: string | null): Promise<boolean> {
  if (!deploymentId) return false;
  const a = await marathon.send('GET', '/deployments');
  return a.status === 200 && Array.isArray(a.body) && a.body.some((d: { id?: unknown }) => d?.id === deploymentId);
}

export const apply = defineCommand({
  name: 'apply',
  description: 'Create or update a pod from a Marathon pod definition (JSON), through the Marathon API',
  options: {
    file: { kind: 'string', required: true, flags: '-f, --file <path>', description: 'the pod definition; - for stdin' },
    wait: { kind: 'boolean', flags: '--wait', description: 'wait until the pod is STABLE, showing its instances' },
    force: { kind: 'boolean', flags: '--force', description: "replace a deployment of this pod that is still in progress (Marathon's ?force=true)" },
    timeout: { kind: 'number', flags: '--timeout <seconds>', description: 'with --wait: stop waiting after this long (the deployment goes on); exit code 1' },
  },
  examples: ['berth apply -f pod.json', 'berth apply -f pod.json --wait', 'cat pod.json | berth apply -f - --force'],
  async handler({ opts, ctx }) {
    const def = await readJsonObject(opts.file);
    const id = definitionId(def, opts.file === '-' ? 'stdin' : opts.file);
    // ctx.client() checks that there is a key, with its own advice when there is none.
    const client = await ctx.client();
    const { apiKey } = await ctx.connection();
    const marathon = new MarathonClient(normalizeUrl(client.url), apiKey!);

    // Marathon's PUT creates or replaces alike; whether the pod was there says which this was.
    const before = await marathon.send('GET', `/pods/${podPath(id)}`);
    if (before.status !== 200 && before.status !== 404) throw marathon.failure(`pod ${id}`, before);
    const put = await marathon.send('PUT', `/pods/${podPath(id)}${opts.force ? '?force=true' : ''}`, def);
    // Marathon's PUT never answers 404: this is a Berth without the Marathon API.
    if (put.status === 404) throw new UserError(`the server at ${client.url} does not serve the Marathon API at ${MARATHON_BASE}`);
    if (put.status < 200 || put.status > 299) throw marathon.failure(`pod ${id}`, put);
    const created = put.status === 201 || before.status === 404;
    const deploymentId = put.headers.get('marathon-deployment-id');
    const summary = `pod ${id} ${created ? 'created' : 'updated'}${deploymentId ? ` (deployment ${deploymentId})` : ''}`;

    if (!opts.wait) {
      ctx.out.result({ id, created, deploymentId, pod: put.body }, () => `${summary}\n`);
      return;
    }
    ctx.out.note(`${summary}; waiting for it to be STABLE (Ctrl-C stops waiting, the deployment goes on)`);
    const status = await waitStable(marathon, ctx.out, id, deploymentId, opts.timeout);
    ctx.out.result({ id, created, deploymentId, pod: put.body, status }, () => `${summary}\n${progressLine(status)}\n`);
  },
});
