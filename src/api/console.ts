/**
 * The web console's files (the Vite build in `dist/web`), served at `/` beside the APIs. Files are
 * read once, at start, with a gzip copy of each that is worth compressing: the build is a few
 * hundred kilobytes and changes only with a new build (and a new server start).
 * Any other GET that is not an API path and asks for HTML gets `index.html`, so the console's own
 * routes (`/pods/2s56cp0pof1rmt`) load on a reload or a shared link.
 */
import { readdir, readFile } from 'node:fs/promises';
import { extname, join, relative, sep } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** Paths the console never answers (each root and everything under it): the APIs keep their own 401/404 answers there. */
const API_ROOTS = ['/api', '/runpod', '/marathon', '/service', '/v2', '/healthz', '/metrics'];

export const isApiPath = (url: string): boolean => {
  const path = url.split('?')[0] ?? url;
  return API_ROOTS.some((r) => path === r || path.startsWith(`${r}/`));
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

interface ConsoleFile {
  type: string;
  body: Buffer;
  gzip: Buffer | undefined;
  /** Vite names files under assets/ by their content hash: they never change under that name. */
  immutable: boolean;
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else if (e.isFile() && !e.name.startsWith('.')) out.push(p);
  }
  return out;
}

/** The console's files by URL path; undefined when `dir` has no build (no index.html). */
export async function loadConsole(dir: string): Promise<Map<string, ConsoleFile> | undefined> {
  let names: string[];
  try {
    names = await walk(dir);
  } catch {
    return undefined;
  }
  const files = new Map<string, ConsoleFile>();
  for (const p of names) {
    const url = '/' + relative(dir, p).split(sep).join('/');
    const body = await readFile(p);
    const type = TYPES[extname(p)] ?? 'application/octet-stream';
    const compressible = /text|javascript|json|svg/.test(type) && body.length > 512;
    files.set(url, { type, body, gzip: compressible ? gzipSync(body, { level: 9 }) : undefined, immutable: url.startsWith('/assets/') });
  }
  return files.has('/index.html') ? files : undefined;
}

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>Berth</title>
<p>The Berth console is not built on this server. Run <code>npm start</code> (or <code>npm run build:web</code>) and start the server again.
The APIs are at <code>/api/v1</code>.</p>\n`;

function send(req: FastifyRequest, reply: FastifyReply, f: ConsoleFile): FastifyReply {
  reply.header('content-type', f.type).header('cache-control', f.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
  reply.header('x-content-type-options', 'nosniff');
  if (f.gzip && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) return reply.header('content-encoding', 'gzip').header('vary', 'accept-encoding').send(f.gzip);
  return reply.send(f.body);
}

/** Whether a request is the console's: a GET (or HEAD) of a path outside the APIs. Needs no key. */
export const isConsoleRequest = (req: FastifyRequest): boolean => (req.method === 'GET' || req.method === 'HEAD') && !isApiPath(req.url);

export type ConsoleHandler = (req: FastifyRequest, reply: FastifyReply) => FastifyReply;

/**
 * Serves the console's page at `/` and returns the handler for the rest of its requests, which the
 * server's root not-found handler calls for console requests: a wildcard route would take the
 * unknown paths under /marathon/v2 and /runpod/v2 from their own not-found answers.
 */
export function registerConsole(app: FastifyInstance, files: Map<string, ConsoleFile> | undefined): ConsoleHandler {
  const index = files?.get('/index.html');
  const handler: ConsoleHandler = (req, reply) => {
    const raw = req.url.split('?')[0] ?? '/';
    let path = raw;
    try {
      path = decodeURIComponent(raw);
    } catch {
      // A malformed escape names no file: the app's page answers, as for any other route.
    }
    const file = files?.get(path);
    if (file && path !== '/index.html') return send(req, reply, file);
    if (!index) return reply.code(503).type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(NOT_BUILT);
    // A missing hashed asset is a 404, not the page: a browser holding an old index.html must not run HTML as JS.
    if (path.startsWith('/assets/')) return reply.code(404).type('text/plain; charset=utf-8').send(`no file ${path}\n`);
    return send(req, reply, index);
  };
  app.get('/', { schema: { hide: true } }, async (req, reply) => handler(req, reply));
  return handler;
}
