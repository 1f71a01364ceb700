import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Agent, request } from 'undici';
import type { Leadership } from '../control/leadership.js';
import { BerthError, LIMITS } from '../model/index.js';

/*
 * Followers forward writes to the leader (Nomad's model: a server that does not lead forwards each
 * write RPC to the one that does). Every server reads, streams and serves agents on its own; a
 * change — any POST, PUT, PATCH or DELETE of the APIs, and Marathon's deployments and queue, which
 * live in the leader's memory — is sent as it came (headers, body, the caller's key) to the leader's
 * advertised URL, and its answer is sent back as it comes. The leader authenticates, audits and
 * answers it as if it had been sent there. While no server leads (a failover: a few seconds) a
 * write waits for one, up to `waitMs`, then gets 503 NOT_LEADER, which clients may retry. A write
 * the leader could not be reached with (its connection refused: nothing was sent) is sent again to
 * the next leader within the same wait; one whose leader went away after it was sent is answered
 * 502 LEADER_GONE (not retryable) saying the change may have been made, since sending it again
 * could make it twice.
 */

/** Header a forwarded request carries: a server that gets one and does not lead answers 503, never forwards again. */
export const FORWARDED_HEADER = 'x-berth-forwarded-by';

const WRITE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** Hop-by-hop headers (RFC 9110 §7.6.1), and host: not passed on either way. */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host']);
/** Reads answered from the leader's memory. */
const LEADER_READS = /^\/(?:service\/)?marathon\/v2\/(?:deployments|queue)(?:\/|$)/;

/** Whether this request is the leader's to answer. */
export function isLeaderWork(req: Pick<FastifyRequest, 'method' | 'url' | 'headers'> & { routeOptions: { url?: string | undefined } }): boolean {
  const route = req.routeOptions.url;
  if (!route || req.headers.upgrade) return false;
  if (route.startsWith('/api/v1/agent/')) return false;
  if (WRITE.has(req.method)) return route.startsWith('/api/v1/') || route.startsWith('/runpod/') || /^\/(?:service\/)?marathon\//.test(route);
  return (req.method === 'GET' || req.method === 'HEAD') && LEADER_READS.test(route);
}

export interface ForwardOptions {
  leadership: Leadership;
  /** The servers' certificate (they share one): a leader is trusted when it shows the same. */
  tlsCert?: Buffer;
  /** How long a write waits for a leader during a failover. @default 8000 */
  waitMs?: number;
}

/** Adds the forwarding hook; register it before authentication (the leader authenticates). */
export function forwardToLeader(app: FastifyInstance, options: ForwardOptions): void {
  const { leadership } = options;
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, ...(options.tlsCert ? { connect: sameCertificate(options.tlsCert) } : {}) });
  app.addHook('onClose', async () => dispatcher.close());
  app.addHook('onRequest', async (req, reply) => {
    if (!isLeaderWork(req) || leadership.leads()) return;
    if (req.headers[FORWARDED_HEADER]) throw new BerthError('NOT_LEADER', 'this server was sent a write as the leader, and does not lead (any more); try again');
    const deadline = performance.now() + (options.waitMs ?? 8000);
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k) && k !== 'content-length') headers[k] = v;
    headers[FORWARDED_HEADER] = leadership.id;
    headers['x-forwarded-for'] = [req.headers['x-forwarded-for'], req.ip].filter(Boolean).join(', ');
    // Read whole (bounded as the API bounds it), so the same bytes can go to the next leader.
    const body = await readBody(req.raw, LIMITS.bodyBytes);
    let res: Awaited<ReturnType<typeof request>> | undefined;
    while (!res) {
      const leader = await leadership.waitForLeader(Math.max(0, deadline - performance.now()));
      if (!leader) throw new BerthError('NOT_LEADER', 'no server leads at the moment (a failover takes a few seconds); try again');
      if (leader.id === leadership.id) {
        // This server took the lead meanwhile, with the body already read: answer with 503, safe to retry.
        throw new BerthError('NOT_LEADER', 'this server took the lead while the request waited; try again');
      }
      try {
        res = await request(new URL(req.url, leader.url), { method: req.method as 'POST', headers, body: body.length > 0 ? body : null, dispatcher, headersTimeout: 0, bodyTimeout: 0 });
      } catch (err) {
        const code = (err as { code?: string }).code;
        // Refused: the request never reached it; the lease is about to move. Anything else: it may have been done.
        if (code === 'ECONNREFUSED' && performance.now() < deadline) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        // Refused past the wait: nothing was sent, retryable. Anything else: not NOT_LEADER, which
        // clients retry blindly; sending it again could make it twice.
        if (code === 'ECONNREFUSED') throw new BerthError('NOT_LEADER', `the leader (${leader.url}) went away before it answered (${(err as Error).message}); it was not made`, { cause: err });
        throw new BerthError('LEADER_GONE', `the leader (${leader.url}) went away before it answered (${(err as Error).message}); it may have been made: look before sending it again`, { cause: err });
      }
    }
    reply.hijack();
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined && !HOP.has(k)) out[k] = v;
    reply.raw.writeHead(res.statusCode, out);
    res.body.on('error', () => reply.raw.destroy());
    res.body.pipe(reply.raw);
  });
}

/** The request's body, whole; a body over `limit` is refused as the API refuses it. */
async function readBody(raw: NodeJS.ReadableStream, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of raw) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += b.length;
    if (size > limit) throw new BerthError('VALIDATION', `the body is over ${limit} bytes`);
    parts.push(b);
  }
  return Buffer.concat(parts);
}

/** An undici connector that trusts a server showing `cert`, the one every server of the cluster serves. */
function sameCertificate(cert: Buffer): Agent.Options['connect'] {
  const fingerprint = new X509Certificate(cert).fingerprint256;
  return (opts, callback) => {
    const socket: TLSSocket = tlsConnect({ host: opts.hostname, port: Number(opts.port) || 443, servername: opts.servername ?? undefined, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    socket.once('secureConnect', () => {
      if (socket.getPeerX509Certificate()?.fingerprint256 === fingerprint) return callback(null, socket);
      socket.destroy();
      callback(new Error('the leader does not show this cluster\'s certificate'), null);
    });
    socket.once('error', (err) => callback(err, null));
    return socket;
  };
}
