import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { BerthError, invalid, problemDocument, type Problem, type ProblemAnswer } from '../model/index.js';

/** ajv's `/containers/0/name` → our `/containers(0)/name`. */
export function ajvPath(instancePath: string, missing?: string): string {
  const p = instancePath.replace(/\/(\d+)(?=\/|$)/g, '($1)');
  return (missing ? `${p}/${missing}` : p) || '/';
}

interface AjvIssue {
  instancePath: string;
  message?: string;
  keyword: string;
  params: Record<string, unknown>;
}

/** Every schema problem with its path, not just the first. */
export function problemsFromValidation(errors: AjvIssue[], context: string): Problem[] {
  return errors.map((e) => {
    const missing = e.keyword === 'required' ? String(e.params.missingProperty) : undefined;
    const path = ajvPath(e.instancePath, missing);
    // One prefix for query-string problems wherever they are found: `query:/limit`.
    if (context === 'querystring') context = 'query';
    const message = e.keyword === 'required' ? 'is required' : e.keyword === 'additionalProperties' ? `unknown field ${String(e.params.additionalProperty)}` : (e.message ?? 'is invalid');
    return { path: context === 'body' ? path : `${context}:${path}`, message };
  });
}

/** A BerthError for anything thrown in a handler: validation, our own, Fastify's, or a bug. */
export function toBerthError(err: unknown): BerthError {
  if (err instanceof BerthError) return err;
  const fe = err as FastifyError & { validation?: AjvIssue[]; validationContext?: string };
  if (fe.validation) return invalid(problemsFromValidation(fe.validation, fe.validationContext ?? 'body'));
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    // Fastify's own client errors: bad JSON, a body too large, an unsupported content type.
    const kind = fe.statusCode === 404 ? 'NOT_FOUND' : fe.statusCode === 401 ? 'UNAUTHORIZED' : 'VALIDATION';
    return new BerthError(kind, fe.message, { extra: { httpStatus: fe.statusCode } });
  }
  return new BerthError('INTERNAL', 'internal error; the server log has the details', { cause: err });
}

/** RFC 9457 problem+json with our stable code. */
export function sendProblem(req: FastifyRequest, reply: FastifyReply, err: BerthError): FastifyReply {
  return writeProblem(reply, problemDocument(err, 'berth', { instance: req.url }));
}

/** Writes a problem document built by `problemDocument` as the reply. */
export function writeProblem(reply: FastifyReply, problem: ProblemAnswer): FastifyReply {
  return reply.code(problem.status).type('application/problem+json').send(problem.body);
}

/**
 * V8's JSON errors quote the text they failed on (`Unexpected token 'h', "{"value": hunter2}" is
 * not valid JSON`): the body may hold a secret, so nothing of it is kept.
 */
export function jsonErrorWithoutText(message: string): string {
  const bare = message
    .replace(/,? ".*" is not valid JSON$/s, '')
    .replace(/^Unexpected token '.'/s, 'Unexpected token')
    .replace(/^Unexpected non-whitespace character/, 'Unexpected text');
  return bare.includes('"') ? 'not valid JSON' : bare;
}
