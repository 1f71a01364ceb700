// Every API call the console makes goes through `request`: the key as a bearer token, JSON in and
// out, problem+json turned into an ApiError worded as the API worded it.
import { connection } from './connection';

/** One problem of a validation error: the field's path (`/gpuCount`, `/containers(0)/image`) and what is wrong with it. */
export interface FieldProblem {
  path: string;
  message: string;
}

/** An answer of 4xx/5xx, as the API words it (RFC 9457 problem document). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string | undefined,
    readonly code: string | undefined,
    readonly problems: FieldProblem[],
    readonly retryable: boolean,
  ) {
    super(detail ?? title);
  }
}

/** The server did not answer at all (down, restarting, the network gone). */
export class ServerUnreachable extends Error {
  constructor(cause: unknown) {
    super(`the Berth server does not answer (${cause instanceof Error ? cause.message : String(cause)})`);
  }
}

async function toApiError(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  let p: { title?: string; detail?: string; code?: string; problems?: FieldProblem[]; retryable?: boolean } = {};
  try {
    p = JSON.parse(text) as typeof p;
  } catch {
    p = { title: res.statusText || `HTTP ${res.status}`, detail: text.trim() || undefined };
  }
  return new ApiError(res.status, p.title ?? `HTTP ${res.status}`, p.detail, p.code, Array.isArray(p.problems) ? p.problems : [], p.retryable === true);
}

export interface RequestOptions {
  body?: unknown;
  signal?: AbortSignal;
}

/** Calls the API (`path` under /api/v1) with `key`; throws ApiError or ServerUnreachable. */
export async function request<T>(key: string, method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    connection.down();
    throw new ServerUnreachable(e);
  }
  connection.up();
  if (!res.ok) throw await toApiError(res);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

/** The API client bound to one key: what pages use (through `useApi`). */
export interface Api {
  key: string;
  get<T>(path: string, signal?: AbortSignal): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<T>;
  patch<T>(path: string, body: unknown): Promise<T>;
  put<T>(path: string, body: unknown): Promise<T>;
  del(path: string): Promise<void>;
}

export function createApi(key: string): Api {
  return {
    key,
    get: (path, signal) => request(key, 'GET', path, signal ? { signal } : {}),
    post: (path, body) => request(key, 'POST', path, { body: body ?? {} }),
    patch: (path, body) => request(key, 'PATCH', path, { body }),
    put: (path, body) => request(key, 'PUT', path, { body }),
    del: (path) => request(key, 'DELETE', path),
  };
}
