/**
 * The secret store over HTTP: values go in with PUT and never come out of any route (the agent that
 * runs a pod gets them over the agent protocol). Names hold slashes (`db/password`), so the routes
 * take the rest of the path as the name.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { SECRET_VALUE_MAX_BYTES, type SecretService } from '../../control/secrets.js';

const SecretMeta = Type.Object(
  {
    name: Type.String({ description: 'e.g. db/password' }),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time', description: 'When the value was last set' }),
  },
  { description: 'A secret without its value: no route ever answers the value' },
);

const SecretInput = Type.Object(
  { value: Type.String({ description: `The value, at most ${SECRET_VALUE_MAX_BYTES} bytes of UTF-8; stored encrypted, never returned` }) },
  { additionalProperties: false },
);

const NameParams = Type.Object({
  '*': Type.String({ description: 'The secret name: segments of [A-Za-z0-9_.-] separated by "/", at most 255 characters (e.g. db/password)' }),
});

type NameReq<B = unknown> = FastifyRequest<{ Params: Static<typeof NameParams>; Body: B }>;

export async function registerSecretRoutes(app: FastifyInstance, secrets: SecretService): Promise<void> {
  const tags = ['secrets'];

  app.put(
    '/secrets/*',
    {
      schema: {
        tags,
        summary: 'Set a secret: creates it (201) or replaces its value (200)',
        description: 'Pods name it in `secrets` (`{"db": "db/password"}`) and use it as `secretEnv` or a `secret` volume. The value is sealed with AES-256-GCM at rest.',
        params: NameParams,
        body: SecretInput,
        response: { 200: SecretMeta, 201: SecretMeta },
      },
    },
    async (req: NameReq<Static<typeof SecretInput>>, reply) => {
      const { secret, created } = await secrets.put(req.caller, req.params['*'], req.body.value);
      return reply.code(created ? 201 : 200).send(secret);
    },
  );

  app.get('/secrets', { schema: { tags, summary: "List the caller's secrets (names and times only)", response: { 200: Type.Object({ secrets: Type.Array(SecretMeta) }) } } }, async (req) => ({
    secrets: await secrets.list(req.caller),
  }));

  app.get(
    '/secrets/*',
    { schema: { tags, summary: "A secret's name and times (never its value)", params: NameParams, response: { 200: SecretMeta } } },
    async (req: NameReq) => secrets.get(req.caller, req.params['*']),
  );

  app.delete(
    '/secrets/*',
    {
      schema: {
        tags,
        summary: 'Delete a secret',
        description: 'Running pods keep the value they were started with; pods started later go without it (their status says so).',
        params: NameParams,
        response: { 204: Type.Null({ description: 'Deleted' }) },
      },
    },
    async (req: NameReq, reply) => {
      await secrets.remove(req.caller, req.params['*']);
      return reply.code(204).send();
    },
  );
}
