/**
 * Commands run inside a container: one that collects its output (`exec`) and one whose streams are
 * handed back, with stdin and an optional PTY (`openExec`).
 */

import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import { BerthError } from '../model/errors.js';
import { checkExec, LIMITS } from '../model/limits.js';
import { fail, type Daemon } from './daemon.js';
import { FrameDemuxer } from './streams.js';
import type { ExecResult, ExecStream, ExecStreamOptions } from './types.js';

/**
 * Runs argv in the running container and collects its output. Docker cannot kill an exec'd
 * process, so on timeout this stops waiting, closes the stream and throws; the process may linger.
 */
export async function exec(daemon: Daemon, id: string, argv: string[], opts: { timeoutMs?: number; env?: string[] } = {}): Promise<ExecResult> {
  // Every caller checks first; this is the last line before an argv that would wedge the container.
  checkExec(argv, opts.env);
  let socket: Socket | undefined;
  let timedOut = false;
  const run = async (): Promise<ExecResult> => {
    const exec = await daemon.docker.getContainer(id).exec({
      Cmd: argv,
      AttachStdout: true,
      AttachStderr: true,
      AttachStdin: false,
      Tty: false,
      ...(opts.env && opts.env.length > 0 ? { Env: opts.env } : {}),
    });
    const stream = (await exec.start({ hijack: true, stdin: false })) as Socket;
    if (timedOut) {
      stream.destroy();
      throw new Error('timed out');
    }
    socket = stream;
    // Output is kept up to a bound per stream and the rest drained: `cat /dev/zero` must not grow the server without end.
    const out: Record<'stdout' | 'stderr', Buffer[]> = { stdout: [], stderr: [] };
    const kept = { stdout: 0, stderr: 0 };
    let truncated = false;
    const demux = new FrameDemuxer();
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      for (const f of demux.push(chunk)) {
        const room = LIMITS.execOutputBytes - kept[f.stream];
        if (f.payload.length > room) truncated = true;
        if (room <= 0) continue;
        const part = f.payload.length > room ? f.payload.subarray(0, room) : f.payload;
        out[f.stream].push(part);
        kept[f.stream] += part.length;
      }
    }
    stream.destroy();
    return {
      exitCode: await exitCodeOf(exec),
      stdout: Buffer.concat(out.stdout).toString('utf8'),
      stderr: Buffer.concat(out.stderr).toString('utf8'),
      ...(truncated ? { truncated: true as const } : {}),
    };
  };
  const running = run();
  if (!opts.timeoutMs || !Number.isFinite(opts.timeoutMs)) {
    try {
      return await running;
    } catch (err) {
      throw fail(daemon, err, `exec in container ${id}`, 'container', id);
    }
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      socket?.destroy();
      reject(new BerthError('RUNTIME', `command timed out after ${opts.timeoutMs} ms: ${argv.join(' ')}`));
    }, opts.timeoutMs);
  });
  // The losing side of the race must not surface as an unhandled rejection.
  running.catch(() => undefined);
  try {
    return await Promise.race([running, timeout]);
  } catch (err) {
    if (err instanceof BerthError) throw err;
    throw fail(daemon, err, `exec in container ${id}`, 'container', id);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts argv with stdin attached and hands back its streams. With a PTY the output is raw and
 * resizable; without, Docker multiplexes stdout and stderr in frames, split here.
 */
export async function openExec(daemon: Daemon, id: string, opts: ExecStreamOptions): Promise<ExecStream> {
  checkExec(opts.argv, opts.env);
  let exec: Docker.Exec;
  let socket: Socket;
  try {
    exec = await daemon.docker.getContainer(id).exec({
      Cmd: opts.argv,
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      Tty: opts.tty,
      ...(opts.env && opts.env.length > 0 ? { Env: opts.env } : {}),
      ...(opts.workingDir ? { WorkingDir: opts.workingDir } : {}),
    });
    socket = (await exec.start({ hijack: true, stdin: true, Tty: opts.tty })) as Socket;
  } catch (err) {
    throw fail(daemon, err, `exec in container ${id}`, 'container', id);
  }
  socket.setNoDelay(true);
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  if (opts.tty) {
    socket.pipe(stdout);
  } else {
    const demux = new FrameDemuxer();
    socket.on('data', (chunk: Buffer) => {
      let full = false;
      for (const f of demux.push(chunk)) full = !(f.stream === 'stderr' ? stderr : stdout).write(f.payload) || full;
      if (full) {
        socket.pause();
        const resume = (): void => {
          if (stdout.writableNeedDrain || stderr.writableNeedDrain) return;
          stdout.off('drain', resume);
          stderr.off('drain', resume);
          socket.resume();
        };
        stdout.on('drain', resume);
        stderr.on('drain', resume);
      }
    });
    socket.on('end', () => {
      stdout.end();
      stderr.end();
    });
  }
  socket.on('error', () => undefined);
  socket.on('close', () => {
    if (!stdout.writableEnded) stdout.end();
    if (!stderr.writableEnded) stderr.end();
  });
  // Listen before any await: a quick command can end while the first resize is on its way.
  const exitCode = new Promise<number>((resolve) => {
    socket.once('close', () => {
      exitCodeOf(exec).then(resolve, () => resolve(-1));
    });
  });
  const resize = async (cols: number, rows: number): Promise<void> => {
    if (!opts.tty || cols <= 0 || rows <= 0) return;
    try {
      await exec.resize({ h: rows, w: cols });
    } catch {
      // The process may have ended a moment ago: a resize then has nothing to do.
    }
  };
  if (opts.cols && opts.rows) await resize(opts.cols, opts.rows);
  return { stdin: socket, stdout, stderr, resize, exitCode, close: () => socket.destroy() };
}

/** The exec's exit code once its stream has closed; -1 when Docker never says. */
async function exitCodeOf(exec: Docker.Exec): Promise<number> {
  // The stream closes as the process exits; the exit code can land a moment later.
  let info = await exec.inspect();
  for (let i = 0; i < 40 && (info.Running || info.ExitCode === null); i++) {
    await sleep(25);
    info = await exec.inspect();
  }
  return info.ExitCode ?? -1;
}
