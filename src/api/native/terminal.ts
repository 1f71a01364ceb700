/**
 * The web terminal: a WebSocket to a shell with a PTY in a pod, for the console. Binary messages
 * are terminal bytes both ways; text messages are JSON control: `{"type":"resize","cols":120,"rows":40}`
 * from the client, `{"type":"exit","exitCode":0}` (or `{"type":"error","message":...}`) from the server
 * before it closes.
 *
 * With `?session=new` the shell outlives its socket: the server first says `{"type":"session","id":...}`,
 * and a socket opened with `?session=<id>` within the grace period re-attaches to the same shell,
 * its recent output replayed (terminal-sessions.ts). Without `session`, as before: the shell ends
 * with its socket.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { ExecStream, NodeAccess } from '../../control/agent-protocol.js';
import { lacksShell, LOGIN_SHELL, NO_SHELL } from '../../control/shell.js';
import { BerthError, type InstanceId } from '../../model/index.js';
import type { ApiDeps } from '../server.js';
import { compileTerminalSessionOptions, shellWithPid, TerminalSessions, type HangUp, type TerminalSession } from './terminal-sessions.js';

export interface TerminalQuery {
  container?: string;
  instance?: number;
  cols?: number;
  rows?: number;
  session?: string;
}

/** What the pre-handler settled before the upgrade: a new shell, or a session to re-attach. */
type Prepared = { kind: 'new'; session: TerminalSession } | { kind: 'reattach'; session: TerminalSession };

/** `kill -<signal> <pid>` beside the shell, through sh's builtin (an image may have no kill program). */
function hangUpVia(access: NodeAccess, instanceId: InstanceId, container: string | undefined): HangUp {
  return async (pid, signal) => {
    const k = await access.openExec(instanceId, container, { argv: ['/bin/sh', '-c', 'kill -s "$1" "$2"', 'sh', signal, pid], tty: false });
    k.stdin.end();
    await Promise.race([k.exitCode, new Promise((r) => setTimeout(r, 5000).unref())]);
    k.close();
  };
}

export function registerTerminal(app: FastifyInstance, deps: ApiDeps): void {
  const sessions = new TerminalSessions(compileTerminalSessionOptions(deps.terminalSessions));
  app.addHook('onClose', () => sessions.close());
  app.get(
    '/pods/:id/terminal',
    {
      websocket: true,
      schema: {
        tags: ['pods'],
        summary: 'A shell with a PTY in the pod, over a WebSocket (binary: terminal bytes; text: JSON resize/exit); ?session=new keeps it for a re-attach with ?session=<id>',
        params: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
        querystring: {
          type: 'object',
          properties: {
            container: { type: 'string' },
            instance: { type: 'integer', minimum: 0 },
            cols: { type: 'integer', minimum: 1, maximum: 1000 },
            rows: { type: 'integer', minimum: 1, maximum: 1000 },
            session: { type: 'string', maxLength: 64 },
          },
        },
      },
      preHandler: async (req: FastifyRequest<{ Params: { id: string }; Querystring: TerminalQuery }>) => {
        // Settled before the upgrade, so refusals are plain HTTP answers.
        const { detail, instance: inst, access } = await deps.resolver.resolve(req.caller, req.params.id, { instance: req.query.instance, running: true, interactive: true });
        void deps.audit.record(req.caller, 'terminal.session', 'pod', req.params.id, { instance: inst.ordinal });
        const { session: asked, container, cols, rows } = req.query;
        let prepared: Prepared;
        if (asked && asked !== 'new') {
          // The owner's key again: a session opened by another owner is not found, whoever asks.
          const found = sessions.find(asked, detail.pod.id, req.caller.owner);
          if (!found) throw new BerthError('NOT_FOUND', `no terminal session ${asked} on pod ${detail.pod.id}: it ended, or was detached longer than ${sessions.opts.graceMs / 1000} s; open a new one`);
          if (cols && rows) await found.resize(cols, rows);
          prepared = { kind: 'reattach', session: found };
        } else {
          if (await lacksShell(access, inst.id, container)) throw new BerthError('VALIDATION', `${NO_SHELL}; use \`berth pod exec\` with one of its programs`);
          // Failing here (no such container) answers the upgrade request with a problem document.
          const exec: ExecStream = await access.openExec(inst.id, container, { argv: shellWithPid(LOGIN_SHELL), tty: true, env: { TERM: 'xterm-256color' }, cols: cols ?? 80, rows: rows ?? 24 });
          prepared = { kind: 'new', session: sessions.open(detail.pod.id, req.caller.owner, exec, asked === 'new', hangUpVia(access, inst.id, container)) };
        }
        (req as unknown as { terminal: Prepared }).terminal = prepared;
      },
    },
    (socket: WebSocket, req: FastifyRequest<{ Params: { id: string } }>) => {
      const { kind, session } = (req as unknown as { terminal: Prepared }).terminal;
      if (session.state === 'ended') return void socket.close(1000, 'the shell exited');
      // The pod is in use while a terminal is attached to it (the idle policy's `terminal` signal).
      const release = deps.lifetimes?.activity.open(req.params.id, 'terminal');
      if (release) socket.once('close', release);
      session.attach(socket, kind === 'reattach');
    },
  );
}
