/**
 * `berth port-forward <pod> 8888`: a local port whose connections reach a port inside the pod,
 * through the API (a WebSocket per connection), with nothing but the API key: no SSH key needed.
 */
import { createServer, type Socket } from 'node:net';
import WebSocket, { createWebSocketStream } from 'ws';
import type { PodView } from '../../api/views.js';
import { API_BASE } from '../client.js';
import { UserError } from '../output.js';
import { defineCommand } from './define.js';
import { untilSignal } from './lifecycle.js';

/** `8888` or `18888:8888` (local:remote). */
export function parseForward(spec: string): { local: number; remote: number } {
  const m = /^(?:(\d{1,5}):)?(\d{1,5})$/.exec(spec);
  const local = Number(m?.[1] ?? m?.[2]);
  const remote = Number(m?.[2]);
  if (!m || local > 65535 || remote < 1 || remote > 65535) throw new UserError(`"${spec}" is not a port: write 8888, or 18888:8888 for local:remote`);
  return { local, remote };
}

export const portForward = defineCommand({
  name: 'port-forward',
  description: 'Forward local ports to ports inside a pod until Ctrl-C (any port the pod listens on, exposed or not)',
  args: [
    { name: 'id', description: 'pod id', required: true },
    { name: 'ports', description: 'PORT or LOCAL:REMOTE, one or more', required: true, variadic: true },
  ],
  options: {
    address: { kind: 'string', flags: '--address <ip>', default: '127.0.0.1', description: 'local address to listen on' },
    instance: { kind: 'number', integer: true, flags: '--instance <n>', description: 'which instance (default 0)' },
  },
  examples: ['berth port-forward 2s56cp0pof1rmt 8888', 'berth port-forward 2s56cp0pof1rmt 18888:8888 6006'],
  async handler({ args, opts, ctx }) {
    const forwards = args.ports.map(parseForward);
    const client = await ctx.client();
    const { apiKey } = await ctx.connection();
    const pod = await client.get<PodView>(`/pods/${encodeURIComponent(args.id)}`);
    if (pod.status !== 'RUNNING') throw new UserError(`pod ${pod.id} is ${pod.status}; start it first (berth pod start ${pod.id})`);
    const base = client.url.replace(/^http/, 'ws') + API_BASE;
    const servers = await Promise.all(
      forwards.map(
        ({ local, remote }) =>
          new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
            const server = createServer((socket: Socket) => {
              const ws = new WebSocket(`${base}/pods/${pod.id}/ports/${remote}/tunnel${opts.instance !== undefined ? `?instance=${opts.instance}` : ''}`, { headers: { authorization: `Bearer ${apiKey ?? ''}` } });
              ws.once('unexpected-response', (req, res) => {
                let body = '';
                res.on('data', (d: Buffer) => (body += d.toString()));
                res.on('end', () => {
                  req.destroy();
                  let detail = body;
                  try {
                    detail = (JSON.parse(body) as { detail?: string }).detail ?? body;
                  } catch {
                    // not a problem document
                  }
                  ctx.out.note(`port ${remote}: ${detail.trim() || `HTTP ${res.statusCode}`}`);
                  socket.destroy();
                });
              });
              ws.once('open', () => {
                const stream = createWebSocketStream(ws);
                stream.pipe(socket).pipe(stream);
                stream.on('error', () => socket.destroy());
                socket.on('error', () => ws.terminate());
              });
              ws.once('error', () => socket.destroy());
              socket.once('close', () => ws.close());
            });
            server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? new UserError(`${opts.address}:${local} is in use; pick another local port (${local + 10000}:${remote})`) : err));
            server.listen(local, opts.address, () => {
              ctx.out.note(`Forwarding ${opts.address}:${local} -> ${pod.id}:${remote}`);
              resolve(server);
            });
          }),
      ),
    );
    await untilSignal(ctx.out);
    for (const s of servers) s.close();
  },
});
