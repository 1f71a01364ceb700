import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { answerStatus, BerthError, invalid, problemDocument } from '../../model/index.js';
import { problemsFromValidation, toBerthError, writeProblem } from '../problem.js';

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
function classify(err: unknown, schemaStatus: number): { be: BerthError; status: number } {
  const fe = err as FastifyError & { validation?: AjvIssues; validationContext?: string };
  if (fe.validation) return { be: invalid(problemsFromValidation(readableIssues(fe.validation), fe.validationContext ?? 'body')), status: schemaStatus };
  const be = toBerthError(err);
  return { be, status: answerStatus(be) };
}

/**
 * REST v2's errors: RFC 9457 `application/problem+json` with `title`, `status`, `detail` and, for a
 * body that breaks the contract, `errors` (one string per violation), plus Berth's stable `code`.
 */
export function sendV2Problem(req: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const { be, status } = classify(err, 422);
  if (be.kind === 'INTERNAL') req.log.error({ err }, 'request failed');
  return writeProblem(reply, problemDocument(be, 'runpod', { status, instance: req.url }));
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
