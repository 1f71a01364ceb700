/**
 * The web terminal: a WebSocket to a shell with a PTY in a pod, for the console. Binary messages
 * are terminal bytes both ways; text messages are JSON control: `{"type":"resize","cols":120,"rows":40}`
 * from the client, `{"type":"exit","exitCode":0}` (or `{"type":"error","message":...}`) from the server
 * before it closes.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { ExecStream } from '../../control/agent-protocol.js';
import { lacksShell, LOGIN_SHELL, NO_SHELL } from '../../control/shell.js';
import { BerthError } from '../../model/index.js';
import type { ApiDeps } from '../server.js';

export interface TerminalQuery {
  container?: string;
  instance?: number;
  cols?: number;
  rows?: number;
}

/** Pause the shell's output while this much is queued for a slow browser. */
const HIGH_WATER = 1 * 2 ** 20;

export function registerTerminal(app: FastifyInstance, deps: ApiDeps): void {
  app.get(
    '/pods/:id/terminal',
    {
      websocket: true,
      schema: {
        tags: ['pods'],
        summary: 'A shell with a PTY in the pod, over a WebSocket (binary: terminal bytes; text: JSON resize/exit)',
        params: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
        querystring: { type: 'object', properties: { container: { type: 'string' }, instance: { type: 'integer', minimum: 0 }, cols: { type: 'integer', minimum: 1, maximum: 1000 }, rows: { type: 'integer', minimum: 1, maximum: 1000 } } },
      },
      preHandler: async (req: FastifyRequest<{ Params: { id: string }; Querystring: TerminalQuery }>) => {
        // Settled before the upgrade, so refusals are plain HTTP answers.
        const { instance: inst, access } = await deps.resolver.resolve(req.caller, req.params.id, { instance: req.query.instance, running: true, interactive: true });
        void deps.audit.record(req.caller, 'terminal.session', 'pod', req.params.id, { instance: inst.ordinal });
        if (await lacksShell(access, inst.id, req.query.container)) throw new BerthError('VALIDATION', `${NO_SHELL}; use \`berth pod exec\` with one of its programs`);
        (req as unknown as { exec: Promise<ExecStream> }).exec = access.openExec(inst.id, req.query.container, { argv: LOGIN_SHELL, tty: true, env: { TERM: 'xterm-256color' }, cols: req.query.cols ?? 80, rows: req.query.rows ?? 24 });
        // Failing here (no such container) answers the upgrade request with a problem document.
        await (req as unknown as { exec: Promise<ExecStream> }).exec;
      },
    },
    async (socket: WebSocket, req: FastifyRequest) => {
      const exec = await (req as unknown as { exec: Promise<ExecStream> }).exec;
      exec.stdout.on('data', (chunk: Buffer) => {
        socket.send(chunk, { binary: true });
        if (socket.bufferedAmount > HIGH_WATER) {
          exec.stdout.pause();
          const wait = setInterval(() => {
            if (socket.bufferedAmount > HIGH_WATER / 4 && socket.readyState === socket.OPEN) return;
            clearInterval(wait);
            exec.stdout.resume();
          }, 20);
        }
      });
      exec.stdout.on('end', () => {
        void exec.exitCode.then((exitCode) => {
          if (socket.readyState !== socket.OPEN) return;
          socket.send(JSON.stringify({ type: 'exit', exitCode }));
          socket.close(1000, 'the shell exited');
        });
      });
      socket.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) return void exec.stdin.write(data);
        let msg: unknown;
        try {
          msg = JSON.parse(data.toString('utf8'));
        } catch {
          return void socket.send(JSON.stringify({ type: 'error', message: 'text messages are JSON: {"type":"resize","cols":N,"rows":N} or {"type":"input","data":"..."}' }));
        }
        if (typeof msg !== 'object' || msg === null) return;
        const m = msg as { type?: unknown; cols?: unknown; rows?: unknown; data?: unknown };
        if (m.type === 'resize' && typeof m.cols === 'number' && typeof m.rows === 'number') void exec.resize(m.cols, m.rows);
        else if (m.type === 'input' && typeof m.data === 'string') exec.stdin.write(m.data);
      });
      socket.on('close', () => exec.close());
    },
  );
}
