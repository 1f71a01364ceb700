/**
 * The one builder of RFC 9457 problem documents. Every part (the native API, RunPod's v2, the pod
 * proxy) answers an error with the catalogue's code and status; the parts differ only in members
 * their clients read differently, so each names its shape and writes the document its own way
 * (Fastify's reply, raw bytes on a socket).
 */
import { BerthError, ERRORS } from './errors.js';

/**
 * - `berth`: the native API: the catalogue's title, `retryable`, and `problems` with their paths.
 * - `runpod`: RunPod's v2: the HTTP reason phrase as `title`, `errors` as one string per problem.
 * - `proxy`: the pod proxy: `about:blank`, the message as `title` (what a browser or curl shows).
 */
export type ProblemShape = 'berth' | 'runpod' | 'proxy';

/** HTTP reason phrases, the `title`s RunPod's v2 problems carry ("Not Found", "Conflict"...). */
export const REASON_PHRASES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** Members that steer the answer and are not written into the document. */
const STEERING: Record<ProblemShape, readonly string[]> = {
  berth: ['httpStatus'],
  // RunPod's clients know no allowed actions; a 409's detail names the status.
  runpod: ['httpStatus', 'allowedActions'],
  proxy: ['httpStatus'],
};

export interface ProblemAnswer {
  status: number;
  body: Record<string, unknown>;
}

/**
 * The status and the problem document for an error: `status` when given (RunPod's 422 for a schema
 * violation), else `answerStatus`; `instance` is the request's URL.
 */
export function problemDocument(err: BerthError, shape: ProblemShape, at: { status?: number; instance?: string } = {}): ProblemAnswer {
  const status = at.status ?? answerStatus(err);
  // Extra members first: they may not replace the standard ones.
  const extra = Object.fromEntries(Object.entries(err.extra).filter(([k]) => !STEERING[shape].includes(k)));
  const problems = err.problems.length > 0;
  const body: Record<string, unknown> =
    shape === 'berth'
      ? { ...extra, type: problemType(err.code), title: ERRORS[err.kind].title, status, code: err.code, detail: err.message, instance: at.instance, retryable: err.retryable, ...(problems ? { problems: err.problems } : {}) }
      : shape === 'runpod'
        ? { ...extra, type: problemType(err.code), title: REASON_PHRASES[status] ?? err.code, status, detail: err.message, ...(problems ? { errors: err.problems.map((p) => `${p.path}: ${p.message}`) } : {}), code: err.code, instance: at.instance }
        : { ...extra, type: 'about:blank', title: err.message, status, code: err.code, detail: err.message };
  return { status, body };
}

export const problemType = (code: string): string => `https://berth.dev/errors/${code}`;

/** The catalogue's status, or the one a Fastify client error kept (413 for a body too large). */
export const answerStatus = (err: BerthError): number => (typeof err.extra.httpStatus === 'number' ? err.extra.httpStatus : err.status);
