import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BerthError, invalid, type Problem } from '../../model/index.js';
import { problemsFromValidation, toBerthError } from '../problem.js';

/** HTTP reason phrases, the `title`s RunPod's v2 problems carry ("Not Found", "Conflict"...). */
const TITLES: Record<number, string> = {
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
};

const line = (p: Problem): string => `${p.path}: ${p.message}`;

type AjvIssues = Parameters<typeof problemsFromValidation>[0];

/**
 * Schema violations as a person reads them: a value outside an `enum` names the allowed ones (ajv
 * says only "must be equal to one of the allowed values"), and a wrong type at the same path is
 * that one mistake said twice, so it is left out.
 */
function readableIssues(issues: AjvIssues): AjvIssues {
  const enums = new Set(issues.filter((i) => i.keyword === 'enum').map((i) => i.instancePath));
  return issues
    .filter((i) => !(i.keyword === 'type' && enums.has(i.instancePath)))
    .map((i) => (i.keyword === 'enum' && Array.isArray(i.params.allowedValues) ? { ...i, message: `must be one of ${i.params.allowedValues.join(', ')}` } : i));
}

/**
 * The error, its HTTP status and its problems: a request that breaks the schema answers
 * `schemaStatus` (v2's 422, v1's 400) listing each violation; other failures keep Berth's status.
 */
function classify(err: unknown, schemaStatus: number): { be: BerthError; status: number; problems: Problem[] } {
  const fe = err as FastifyError & { validation?: AjvIssues; validationContext?: string };
  if (fe.validation) {
    const problems = problemsFromValidation(readableIssues(fe.validation), fe.validationContext ?? 'body');
    return { be: invalid(problems), status: schemaStatus, problems };
  }
  const be = toBerthError(err);
  const status = typeof be.extra.httpStatus === 'number' ? be.extra.httpStatus : be.status;
  return { be, status, problems: be.problems };
}

/**
 * REST v2's errors: RFC 9457 `application/problem+json` with `title`, `status`, `detail` and, for a
 * body that breaks the contract, `errors` (one string per violation), plus Berth's stable `code`.
 */
export function sendV2Problem(req: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const { be, status, problems } = classify(err, 422);
  if (be.kind === 'INTERNAL') req.log.error({ err }, 'request failed');
  const { httpStatus: _h, allowedActions: _a, ...extra } = be.extra;
  return reply
    .code(status)
    .type('application/problem+json')
    .send({
      // Extra members first: they may not replace the standard ones.
      ...extra,
      type: `https://berth.dev/errors/${be.code}`,
      title: TITLES[status] ?? be.code,
      status,
      detail: be.message,
      ...(problems.length ? { errors: problems.map(line) } : {}),
      code: be.code,
      instance: req.url,
    });
}

/** REST v1's errors: `{"message": "..."}` with the status. */
export function sendV1Error(req: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const { be, status } = classify(err, 400);
  if (be.kind === 'INTERNAL') req.log.error({ err }, 'request failed');
  return reply.code(status).type('application/json; charset=utf-8').send({ message: be.message });
}

/**
 * Gives a plugin scope its API's error shape. Fastify runs a scope's error handler for the errors of
 * its routes, the global API-key check included, so a bad key under /runpod/v1 answers `{"message"}`.
 */
export function useErrors(app: FastifyInstance, send: (req: FastifyRequest, reply: FastifyReply, err: unknown) => FastifyReply): void {
  app.setErrorHandler((err, req, reply) => send(req, reply, err));
  app.setNotFoundHandler((req, reply) => send(req, reply, new BerthError('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`)));
}
