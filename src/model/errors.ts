/**
 * One catalogue of errors with stable codes. `status` is the HTTP status the API answers with;
 * `retryable` tells a caller (the agent's reconcile loop, the CLI) whether trying again can help.
 */
export const ERRORS = {
  VALIDATION: { status: 400, title: 'Invalid request', retryable: false },
  UNAUTHORIZED: { status: 401, title: 'Missing or invalid API key', retryable: false },
  FORBIDDEN: { status: 403, title: 'Not allowed', retryable: false },
  POLICY_DENIED: { status: 403, title: 'Refused by the pod security policy', retryable: false },
  QUOTA_EXCEEDED: { status: 403, title: "The team's quota would be crossed", retryable: false },
  NOT_FOUND: { status: 404, title: 'Not found', retryable: false },
  POD_NOT_FOUND: { status: 404, title: 'Pod not found', retryable: false },
  ACTION_NOT_ALLOWED: { status: 409, title: 'Action not allowed in the current status', retryable: false },
  CONFLICT: { status: 409, title: 'Conflict', retryable: false },
  NO_CAPACITY: { status: 409, title: 'Not enough free resources', retryable: true },
  NODE_UNAVAILABLE: { status: 503, title: 'The pod\'s node is not reachable', retryable: true },
  RUNTIME: { status: 502, title: 'The container runtime failed', retryable: true },
  INTERNAL: { status: 500, title: 'Internal error', retryable: false },
  NOT_LEADER: { status: 503, title: 'This server is not the leader', retryable: true },
  /** A write forwarded to the leader, which went away before it answered: it may have been made, so not retryable blindly. */
  LEADER_GONE: { status: 502, title: 'The leader went away before it answered', retryable: false },
  // The pod proxy's answers ({podId}-{port}.<domain>).
  NO_HOST: { status: 400, title: 'No Host header', retryable: false },
  PORT_NOT_EXPOSED: { status: 404, title: 'The pod does not expose the port', retryable: false },
  PORT_NOT_HTTP: { status: 404, title: 'The port is not an http port', retryable: false },
  POD_NOT_RUNNING: { status: 503, title: 'The pod is not running', retryable: true },
  INSTANCE_NOT_RUNNING: { status: 503, title: 'The instance is not running', retryable: true },
  NO_RUNNING_INSTANCE: { status: 503, title: 'No instance of the pod is running', retryable: true },
  UPSTREAM_FAILED: { status: 502, title: 'The pod did not answer', retryable: true },
  UPSTREAM_TIMEOUT: { status: 504, title: 'The pod did not answer in time', retryable: true },
} as const;

export type ErrorKind = keyof typeof ERRORS;

export interface Problem {
  /** JSON-pointer-like path to the offending field, e.g. `/containers(0)/name` or `/gpuCount`. */
  path: string;
  message: string;
}

export class BerthError extends Error {
  readonly kind: ErrorKind;
  readonly code: string;
  readonly status: number;
  readonly retryable: boolean;
  readonly problems: Problem[];
  /** Extra members for the problem+json body (e.g. `allowedActions`). */
  readonly extra: Record<string, unknown>;

  constructor(kind: ErrorKind, message?: string, opts: { problems?: Problem[]; extra?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message ?? ERRORS[kind].title, { cause: opts.cause });
    this.name = 'BerthError';
    this.kind = kind;
    this.code = `BERTH_ERR_${kind}`;
    this.status = ERRORS[kind].status;
    this.retryable = ERRORS[kind].retryable;
    this.problems = opts.problems ?? [];
    this.extra = opts.extra ?? {};
  }
}

export const notFound = (what: string, id: string): BerthError =>
  new BerthError(what === 'pod' ? 'POD_NOT_FOUND' : 'NOT_FOUND', `${what} ${id} not found`, { extra: { id } });

export const invalid = (problems: Problem[]): BerthError =>
  new BerthError('VALIDATION', problems.map((p) => `${p.path}: ${p.message}`).join('; '), { problems });
