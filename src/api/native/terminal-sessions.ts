/**
 * Web terminal sessions that outlive their WebSocket: a page reload closes the socket, and the shell
 * waits, detached, for a new socket to re-attach by the session's id (a RunPod complaint: a reload
 * there kills the shell). A detached shell is hung up after the grace period; a bounded scrollback
 * is replayed on re-attach so the screen is right again.
 *
 * A session belongs to the owner of the key that opened it and to one pod: a re-attach is checked
 * against both, so another user's key finds nothing, as it would for a pod it cannot see.
 */
import { randomBytes } from 'node:crypto';
import type { WebSocket } from 'ws';
import type { ExecStream } from '../../control/agent-protocol.js';
import type { OwnerId } from '../../model/index.js';

export interface TerminalSessionOptions {
  /** How long a detached shell waits for a re-attach before it is hung up. @default 300 (5 minutes) */
  graceSeconds?: number;
  /** Re-attachable sessions one owner may hold on one pod; opening one more hangs up the oldest detached one. @default 4 */
  perPod?: number;
  /** Output kept for the replay on re-attach. @default 256 KiB */
  scrollbackBytes?: number;
}

export interface CompiledTerminalSessionOptions {
  graceMs: number;
  perPod: number;
  scrollbackBytes: number;
}

export function compileTerminalSessionOptions(o: TerminalSessionOptions = {}): CompiledTerminalSessionOptions {
  return { graceMs: (o.graceSeconds ?? 300) * 1000, perPod: o.perPod ?? 4, scrollbackBytes: o.scrollbackBytes ?? 256 * 1024 };
}

/** Pause the shell's output while this much is queued for a slow browser. */
const HIGH_WATER = 1 * 2 ** 20;

/**
 * The shell is started by a wrapper that writes its own pid as an OSC sequence first, so that it can
 * be hung up later (Docker cannot kill an exec). `exec` keeps the pid: it is the shell's.
 * The sequence is cut out of the output before anyone sees it.
 */
export const PID_MARK = '\x1b]777;berth-pid=';
const PID_MARK_END = '\x07';
export function shellWithPid(loginShell: string[]): string[] {
  const [sh, flag, script] = loginShell;
  return [sh!, flag!, `printf '\\033]777;berth-pid=%s\\007' "$$"; ${script!}`];
}

export type SessionState = 'attached' | 'detached' | 'ended';

/** What a session needs to hang its shell up: runs `kill -<signal> <pid>` beside it. */
export type HangUp = (pid: string, signal: 'HUP' | 'KILL') => Promise<void>;

export class TerminalSession {
  readonly id = randomBytes(18).toString('base64url');
  state: SessionState = 'attached';
  private socket: WebSocket | undefined;
  private scrollback: Buffer[] = [];
  private scrollbackSize = 0;
  private scrollbackTrimmed = false;
  private pid: string | undefined;
  /** Output before the pid mark was seen whole (at most a few dozen bytes). */
  private head: Buffer | undefined = Buffer.alloc(0);
  private graceTimer: NodeJS.Timeout | undefined;
  private paused: NodeJS.Timeout | undefined;
  readonly createdAt = Date.now();
  detachedAt = 0;

  constructor(
    readonly podId: string,
    readonly owner: OwnerId,
    readonly exec: ExecStream,
    /** Re-attachable: kept after its socket closes. A session of an old client is hung up at once. */
    readonly keep: boolean,
    private readonly opts: CompiledTerminalSessionOptions,
    private readonly hangUpShell: HangUp,
    private readonly onEnd: (s: TerminalSession) => void,
  ) {
    exec.stdout.on('data', (chunk: Buffer) => this.output(chunk));
    exec.stdout.on('end', () => {
      void exec.exitCode.then((exitCode) => {
        const s = this.socket;
        this.end();
        if (!s || s.readyState !== s.OPEN) return;
        s.send(JSON.stringify({ type: 'exit', exitCode }));
        s.close(1000, 'the shell exited');
      });
    });
  }

  /** Takes over `socket`: a socket already attached (a tab that did not close yet) is closed, saying why. */
  attach(socket: WebSocket, replay: boolean): void {
    const previous = this.socket;
    this.socket = socket;
    this.state = 'attached';
    clearTimeout(this.graceTimer);
    if (previous && previous !== socket) previous.close(4001, 'the terminal session was attached elsewhere');
    if (this.keep) socket.send(JSON.stringify({ type: 'session', id: this.id, graceSeconds: this.opts.graceMs / 1000, reattached: replay }));
    if (replay && this.scrollbackSize > 0) socket.send(this.replay(), { binary: true });
    socket.on('message', (data: Buffer, isBinary: boolean) => this.input(socket, data, isBinary));
    socket.on('close', () => this.detach(socket));
    // Closed before it was handed over (the client left during the upgrade): no close event will come.
    if (socket.readyState !== socket.OPEN) this.detach(socket);
  }

  private replay(): Buffer {
    const all = Buffer.concat(this.scrollback);
    if (!this.scrollbackTrimmed) return all;
    // The ring was cut somewhere: start at a line, not in the middle of an escape sequence.
    const nl = all.indexOf(0x0a);
    return nl >= 0 ? all.subarray(nl + 1) : all;
  }

  private output(chunk: Buffer): void {
    if (this.head) {
      // The wrapper's pid mark comes first; hold output until it has been seen whole.
      const text = Buffer.concat([this.head, chunk]);
      const start = text.indexOf(PID_MARK);
      const end = start >= 0 ? text.indexOf(PID_MARK_END, start) : -1;
      if (end >= 0) {
        this.pid = text.subarray(start + PID_MARK.length, end).toString('latin1');
        chunk = Buffer.concat([text.subarray(0, start), text.subarray(end + 1)]);
        this.head = undefined;
      } else if (text.length < 64) {
        this.head = text;
        return;
      } else {
        chunk = text;
        this.head = undefined;
      }
      if (chunk.length === 0) return;
    }
    this.remember(chunk);
    const s = this.socket;
    if (!s || s.readyState !== s.OPEN) return;
    s.send(chunk, { binary: true });
    if (s.bufferedAmount > HIGH_WATER && !this.paused) {
      this.exec.stdout.pause();
      this.paused = setInterval(() => {
        if (s.bufferedAmount > HIGH_WATER / 4 && s.readyState === s.OPEN) return;
        clearInterval(this.paused);
        this.paused = undefined;
        this.exec.stdout.resume();
      }, 20);
    }
  }

  private remember(chunk: Buffer): void {
    if (!this.keep) return;
    this.scrollback.push(chunk);
    this.scrollbackSize += chunk.length;
    while (this.scrollbackSize > this.opts.scrollbackBytes && this.scrollback.length > 0) {
      const first = this.scrollback[0]!;
      const over = this.scrollbackSize - this.opts.scrollbackBytes;
      if (first.length <= over) {
        this.scrollback.shift();
        this.scrollbackSize -= first.length;
      } else {
        this.scrollback[0] = first.subarray(over);
        this.scrollbackSize -= over;
      }
      this.scrollbackTrimmed = true;
    }
  }

  private input(socket: WebSocket, data: Buffer, isBinary: boolean): void {
    if (socket !== this.socket) return;
    if (isBinary) return void this.exec.stdin.write(data);
    let msg: unknown;
    try {
      msg = JSON.parse(data.toString('utf8'));
    } catch {
      return void socket.send(JSON.stringify({ type: 'error', message: 'text messages are JSON: {"type":"resize","cols":N,"rows":N}, {"type":"input","data":"..."} or {"type":"close"}' }));
    }
    if (typeof msg !== 'object' || msg === null) return;
    const m = msg as { type?: unknown; cols?: unknown; rows?: unknown; data?: unknown };
    if (m.type === 'resize' && typeof m.cols === 'number' && typeof m.rows === 'number') void this.resize(m.cols, m.rows);
    else if (m.type === 'input' && typeof m.data === 'string') this.exec.stdin.write(m.data);
    else if (m.type === 'close') void this.hangUp();
  }

  resize(cols: number, rows: number): Promise<void> {
    return this.exec.resize(cols, rows).catch(() => undefined);
  }

  private detach(socket: WebSocket): void {
    if (socket !== this.socket || this.state === 'ended') return;
    this.socket = undefined;
    if (this.paused) {
      clearInterval(this.paused);
      this.paused = undefined;
      this.exec.stdout.resume();
    }
    if (!this.keep) return void this.hangUp();
    this.state = 'detached';
    this.detachedAt = Date.now();
    this.graceTimer = setTimeout(() => void this.hangUp(), this.opts.graceMs);
    this.graceTimer.unref();
  }

  /** Ends the shell as a terminal hang-up would (SIGHUP, then SIGKILL if it lingers), then forgets it. */
  async hangUp(): Promise<void> {
    if (this.state === 'ended') return;
    const socket = this.socket;
    this.end();
    socket?.close(1000, 'the terminal session was closed');
    if (this.pid) {
      const exited = this.exec.exitCode.then(() => true);
      await this.hangUpShell(this.pid, 'HUP').catch(() => undefined);
      const gone = await Promise.race([exited, new Promise<false>((r) => setTimeout(() => r(false), 3000).unref())]);
      if (!gone) await this.hangUpShell(this.pid, 'KILL').catch(() => undefined);
    }
    this.exec.close();
  }

  private end(): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    clearTimeout(this.graceTimer);
    clearInterval(this.paused);
    this.onEnd(this);
  }
}

/** Every terminal session of this server, by id. */
export class TerminalSessions {
  private readonly sessions = new Map<string, TerminalSession>();
  constructor(readonly opts: CompiledTerminalSessionOptions) {}

  /** A new session on `exec`; for a re-attachable one, the owner's oldest detached session on the pod is hung up past the bound. */
  open(podId: string, owner: OwnerId, exec: ExecStream, keep: boolean, hangUp: HangUp): TerminalSession {
    if (keep) {
      const mine = [...this.sessions.values()].filter((s) => s.keep && s.podId === podId && s.owner === owner);
      const detached = mine.filter((s) => s.state === 'detached').sort((a, b) => a.detachedAt - b.detachedAt);
      for (let over = mine.length + 1 - this.opts.perPod; over > 0 && detached.length > 0; over--) void detached.shift()!.hangUp();
    }
    const s = new TerminalSession(podId, owner, exec, keep, this.opts, hangUp, (ended) => this.sessions.delete(ended.id));
    this.sessions.set(s.id, s);
    return s;
  }

  /** The session `id` if it is on `podId` and was opened by `owner`'s key; undefined otherwise, whichever it is. */
  find(id: string, podId: string, owner: OwnerId): TerminalSession | undefined {
    const s = this.sessions.get(id);
    return s && s.podId === podId && s.owner === owner && s.state !== 'ended' ? s : undefined;
  }

  /** Sessions open now (attached or detached), for tests and the bound. */
  count(podId?: string): number {
    return [...this.sessions.values()].filter((s) => podId === undefined || s.podId === podId).length;
  }

  /** Hangs up every shell (the server is closing). */
  async close(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => s.hangUp()));
  }
}
