/**
 * The api-list baseline: a minimal Fastify server (no logger, no auth, no store) that answers the
 * same routes with the very bytes Berth answered, read once at start and held as buffers (a string
 * would be measured and encoded again on every answer: work a floor should not do). It is the floor
 * for an HTTP round trip carrying that response on this machine. Not a benchmark (no `// bench:` line).
 *
 *   node dist/bench/baseline-server.js --list FILE --page FILE --create FILE
 *
 * GET /api/v1/pods answers FILE of --list (or of --page when ?limit= is given); POST /api/v1/pods
 * parses the JSON body as Fastify does and answers 201 with FILE of --create. Prints one JSON line
 * `{"url", "pid"}` once it listens; SIGTERM closes it.
 */

import { readFile } from 'node:fs/promises';
import Fastify from 'fastify';

const args = process.argv.slice(2);
const arg = (name: string): string => {
  const i = args.indexOf(name);
  const v = i >= 0 ? args[i + 1] : undefined;
  if (!v) {
    process.stderr.write('usage: baseline-server.js --list FILE --page FILE --create FILE\n');
    process.exit(2);
  }
  return v;
};

const [list, page, created] = await Promise.all([readFile(arg('--list')), readFile(arg('--page')), readFile(arg('--create'))]);

const app = Fastify({ logger: false, bodyLimit: 8 * 2 ** 20 });
const JSON_TYPE = 'application/json; charset=utf-8';
app.get('/api/v1/pods', async (req, reply) => {
  const limited = typeof req.query === 'object' && req.query !== null && 'limit' in req.query;
  return reply.type(JSON_TYPE).send(limited ? page : list);
});
app.post('/api/v1/pods', async (_req, reply) => reply.code(201).type(JSON_TYPE).send(created));

await app.listen({ port: 0, host: '127.0.0.1' });
const bound = app.server.address();
const port = typeof bound === 'object' && bound ? bound.port : 0;
process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${port}`, pid: process.pid }) + '\n');

const close = (): void => {
  app.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', close);
process.on('SIGINT', close);
