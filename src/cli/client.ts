/**
 * A small typed client of the native API (/api/v1) on Node's own fetch, with a reader for its
 * server-sent event streams. Every 4xx and 5xx becomes an ApiError carrying the server's problem
 * document, so the CLI shows the server's own words.
 */
import { UserError } from './output.js';

export const API_BASE = '/api/v1';

/** RFC 9457 problem+json as the Berth API answers errors. */
export interface ProblemDocument {
  type?: string;
  title?: string;
  status?: number;
  code?: string;
  detail?: string;
  retryable?: boolean;
  problems?: { path: string; message: string }[];
  allowedActions?: string[];
  [extra: string]: unknown;
}

/** The server said no: its detail, each problem with its path, and what is allowed instead. */
export class ApiError extends UserError {
  constructor(
    readonly status: number,
    readonly problem: ProblemDocument,
    hint?: string,
  ) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`, hint);
    this.name = 'ApiError';
  }

  get code(): string | undefined {
    return this.problem.code;
  }

  override render(): string[] {
    const problems = this.problem.problems ?? [];
    // A validation detail is the problems joined with "; ": show the title once and each problem on its own line.
    const joined = problems.map((p) => `${p.path}: ${p.message}`).join('; ');
    const headline = problems.length && this.message === joined ? (this.problem.title ?? 'Invalid request') : this.message;
    const lines = [`error: ${headline}`, ...problems.map((p) => `  ${p.path}: ${p.message}`)];
    if (Array.isArray(this.problem.allowedActions)) lines.push(`allowed actions: ${this.problem.allowedActions.join(', ') || 'none'}`);
    if (this.hint) lines.push(this.hint);
    return lines;
  }
}

export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

export type Query = Record<string, string | number | boolean | readonly string[] | undefined>;

export interface RequestOptions {
  body?: unknown;
  query?: Query;
  signal?: AbortSignal;
}

export interface ClientOptions {
  url: string;
  apiKey: string | undefined;
  /** Where the key came from (`--api-key`, `BERTH_API_KEY`, the config file), named when the server refuses it. */
  keySource?: string;
}

export class BerthClient {
  readonly url: string;
  private readonly apiKey: string | undefined;
  private readonly keySource: string | undefined;

  constructor(opts: ClientOptions) {
    this.url = normalizeUrl(opts.url);
    this.apiKey = opts.apiKey;
    this.keySource = opts.keySource;
  }

  get<T>(path: string, query?: Query, signal?: AbortSignal): Promise<T> {
    return this.request<T>('GET', path, { ...(query ? { query } : {}), ...(signal ? { signal } : {}) });
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, { body: body ?? {} });
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, { body });
  }

  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body });
  }

  delete<T = undefined>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  /** One JSON request; resolves to the parsed body (undefined for 204). */
  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, opts, 'application/json');
    const text = await res.text();
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new UserError(`Berth at ${this.url} answered ${method} ${path} with something that is not JSON: ${text.slice(0, 200)}`);
    }
  }

  /**
   * Opens a server-sent event stream. Resolves once the server has answered 200 (so a refused
   * request is an ApiError, not an empty stream); the events follow until the stream ends or `signal` aborts.
   */
  async stream(path: string, query: Query = {}, signal?: AbortSignal): Promise<AsyncGenerator<SseEvent>> {
    const res = await this.send('GET', path, { query, ...(signal ? { signal } : {}) }, 'text/event-stream');
    if (!res.body) throw new UserError(`Berth at ${this.url} answered ${path} without a body`);
    if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      await res.body.cancel();
      throw new UserError(`Berth at ${this.url} answered ${path} with ${res.headers.get('content-type') ?? 'no content type'}, not an event stream`);
    }
    return readSse(res.body, signal);
  }

  private async send(method: string, path: string, opts: RequestOptions, accept: string): Promise<Response> {
    const url = this.url + API_BASE + path + queryString(opts.query);
    const headers: Record<string, string> = { accept: `${accept}, application/problem+json` };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, { method, headers, ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}), ...(opts.signal ? { signal: opts.signal } : {}) });
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? err;
      throw new UserError(`cannot reach Berth at ${this.url}: ${networkReason(err)}`);
    }
    if (res.ok) return res;
    throw await this.apiError(res);
  }

  private async apiError(res: Response): Promise<ApiError> {
    const text = await res.text().catch(() => '');
    let problem: ProblemDocument;
    try {
      const parsed: unknown = JSON.parse(text);
      problem = typeof parsed === 'object' && parsed !== null ? (parsed as ProblemDocument) : { detail: text };
    } catch {
      // Not Berth answering (a proxy, another service on the port): show what came back.
      problem = { status: res.status, detail: `HTTP ${res.status} ${res.statusText}${text ? `: ${text.trim().slice(0, 200)}` : ''}` };
    }
    const hint = res.status === 401 ? `(the API key came from ${this.keySource ?? 'nowhere'}; run \`berth login\` or set BERTH_API_KEY)` : undefined;
    return new ApiError(res.status, problem, hint);
  }
}

/** `host:7700` → `http://host:7700`; no trailing slash. */
export function normalizeUrl(url: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `http://${url}`;
  return withScheme.replace(/\/+$/, '');
}

function queryString(query: Query | undefined): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const item of v) params.append(k, item);
    else params.append(k, String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : '';
}

/** fetch's "fetch failed" hides the useful part (ECONNREFUSED, ENOTFOUND) in `cause`. */
function networkReason(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  if (cause instanceof AggregateError && cause.errors.length) return networkReason(cause.errors[0]);
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code && !cause.message.includes(code) ? `${code}: ${cause.message}` : cause.message;
  }
  return String(cause);
}

/**
 * Parses a text/event-stream body into events: `event:`, `data:` (joined with newlines) and `id:`
 * fields, dispatched at each blank line; comments (`: ping`) are skipped.
 */
export async function* readSse(body: AsyncIterable<Uint8Array>, signal?: AbortSignal): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  let event = '';
  let data: string[] = [];
  let id: string | undefined;
  try {
    for await (const chunk of body) {
      buffer += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        // A CR at the end of a chunk may be the first half of a CRLF: wait for the next chunk.
        if (nl === buffer.length - 1 && buffer[nl] === '\r') break;
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1));
        if (line === '') {
          if (data.length) yield { event: event || 'message', data: data.join('\n'), ...(id !== undefined ? { id } : {}) };
          event = '';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id') id = value;
      }
    }
  } catch (err) {
    // Aborting is how a caller stops following; the stream just ends.
    if (signal?.aborted) return;
    throw new UserError(`the event stream broke: ${networkReason(err)}`);
  }
}
