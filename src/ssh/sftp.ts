/**
 * An SFTP server (protocol 3, as OpenSSH's sftp and scp speak it) whose files live in a pod, so no
 * image needs sftp-server or sshd. The client's first look at a path (LSTAT or STAT) starts one
 * command in the container for it (PATH_SCRIPT) that answers the looks and, if the client then
 * opens the file for writing, streams the upload in (`cat` into a temp file beside the target,
 * renamed into place at close). Without a shell, or when the writes do not come front to back, an
 * upload is spooled to a temp file on the gateway and put into the container whole at close. A
 * download streams the file out of a tar from Docker's archive API. Metadata (listings, mkdir,
 * rename...) uses small commands run in the container.
 *
 * One file by choice (~850 lines): the session's handles (read, spooled write, streamed write,
 * directory) share one handle table, the order in which CLOSE and a broken connection finish them,
 * and what the session learned of the image (no stat, no shell); split, those rules would be spread
 * over files that are only right together. What stands apart is beside it: the script run in the
 * container and its parsers (path-script.ts), and ssh2's channel internals (sftp-channel.ts).
 */
import { randomBytes } from 'node:crypto';
import { open, rm, mkdtemp, type FileHandle } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from 'pino';
import ssh2 from 'ssh2';
import type { Attributes, FileEntry, SFTPWrapper } from 'ssh2';
import type { ExecStream, NodeAccess } from '../control/agent-protocol.js';
import { BerthError, type InstanceId } from '../model/index.js';
import { longname, parseStatLine, PATH_SCRIPT, readLines, saysDone, STAT_FORMAT, TRAILER } from './path-script.js';
import { exitStatus } from './sftp-channel.js';

const { OPEN_MODE, STATUS_CODE } = ssh2.utils.sftp;

/** Read-ahead kept per download before the tar stream is paused. */
const READ_AHEAD = 8 * 2 ** 20;
const EXEC_TIMEOUT_MS = 60_000;
/** Uploads reach the spool file in writes of this size, and at most this much waits for the disk. */
const SPOOL_CHUNK = 2 ** 20;
const SPOOL_QUEUE = 16 * 2 ** 20;

interface ReadHandle {
  kind: 'read';
  path: string;
  size: number;
  content: Readable;
  /**
   * Aborts the archive request if it has not ended: a tar stream left paused (a client that closes
   * a file it has not read to the end) holds Docker's lock on the container, and every exec and
   * inspect of it waits until the request goes.
   */
  abort: AbortController;
  /** Offset of the first byte in `chunks`. */
  start: number;
  chunks: Buffer[];
  buffered: number;
  ended: boolean;
  failed: Error | undefined;
  waiting: { reqId: number; offset: number; len: number }[];
}

interface WriteHandle {
  kind: 'write';
  path: string;
  file: FileHandle;
  spool: string;
  mode: number;
  /** A modification time FSETSTAT asked for (scp -p), set after the file is in place. */
  mtime: number | undefined;
  /** A write or prefill failed: report it at close. */
  error: Error | undefined;
  pending: Promise<unknown>;
  openedAt: number;
  /** Contiguous writes not yet handed to the spool file, from `bufStart`. */
  buf: Buffer[];
  bufStart: number;
  bufLen: number;
  /** Bytes handed to the spool file and not yet written. */
  inFlight: number;
  /** The last acknowledgement waiting, which the next write's waits for (see inOrder). */
  acks: Promise<void> | undefined;
}

/**
 * An upload streamed straight into the container (PATH_SCRIPT): `cat > temp` with the bytes on its
 * stdin, so the copy into the pod overlaps the transfer and nothing is spooled; the temp file is
 * renamed into place at close, so a broken upload leaves the old file whole. Writes must come front
 * to back (OpenSSH's do; a few out of order are held until the gap fills).
 *
 * A file opened without truncation keeps its bytes past the written part: OpenSSH's scp and sftp
 * open an existing target that way and set its size with FSETSTAT after the last write. Both are
 * applied at close, in the container: the old file's tail appended, the size set.
 */
interface StreamHandle {
  kind: 'stream';
  path: string;
  temp: string;
  /** Proves to PATH_SCRIPT that the trailer is the gateway's, written at close. */
  token: string;
  exec: ExecStream;
  /** Bytes written so far: the offset the next write must have. */
  position: number;
  /** Writes ahead of `position`, by offset: each is acknowledged once sent, after the one that filled its gap. */
  early: Map<number, { data: Buffer; sent: () => void }>;
  earlyBytes: number;
  /** The old file's bytes in [position, tail) are still part of the file (0: nothing kept). */
  tail: number;
  /** The size FSETSTAT asked for, applied at close. */
  size: number | undefined;
  /** What the script said on stderr, kept as it comes. */
  script: Script;
  mode: number | undefined;
  mtime: number | undefined;
  error: Error | undefined;
  /** Set when the first write was not at 0 on a kept file: the upload went to the spool path instead. */
  spooled: Promise<WriteHandle> | undefined;
  /** The last acknowledgement waiting, which the next write's waits for (see inOrder). */
  acks: Promise<void> | undefined;
  /** Writes waiting for the queue into the pod to shrink wait on this one; `release` lets them go. */
  room: Promise<void> | undefined;
  release: (() => void) | undefined;
  /** The stdin is corked until the event loop has handled this batch of writes. */
  corked: boolean;
}

interface DirHandle {
  kind: 'dir';
  path: string;
  sent: boolean;
}

type Handle = ReadHandle | WriteHandle | StreamHandle | DirHandle;

/** A path's attributes, or why stat gave none. */
type Look = { attrs: Attributes } | { error: string };

/** PATH_SCRIPT started for a path: it has printed the path's lstat and stat and waits for `go`. */
interface Script {
  path: string;
  temp: string;
  token: string;
  exec: ExecStream;
  lstat: Look;
  stat: Look;
  stderr: string;
  /** Resolves when the script says the upload is in place; `placed` says so too. */
  done: Promise<void>;
  placed: boolean;
}

/** How long a script started by a look at a path waits for the OPEN that may follow it. */
const SCRIPT_WAIT_MS = 2000;

/**
 * A streamed upload's queue into the pod (Docker's exec stream): writes are acknowledged at once
 * until it holds more than STREAM_HIGH, then once it is down to STREAM_LOW.
 */
const STREAM_HIGH = 2 ** 20;
const STREAM_LOW = STREAM_HIGH / 2;
/** Out-of-order writes held for a streamed upload before it gives up. */
const EARLY_LIMIT = 64 * 2 ** 20;


export interface SftpTarget {
  access: NodeAccess;
  instanceId: InstanceId;
  container: string | undefined;
  logger: Logger;
}

/** Serves one SFTP channel until the client closes it. */
export class SftpSession {
  private readonly handles = new Map<number, Handle>();
  private nextHandle = 1;
  private home: Promise<string> | undefined;
  private spoolDir: Promise<string> | undefined;
  /** The image has no `stat` (learnt at the first try): attributes come from the archive API alone. */
  private noStat = false;

  constructor(
    private readonly sftp: SFTPWrapper,
    private readonly t: SftpTarget,
  ) {
    const on = (event: string, fn: (reqId: number, ...args: never[]) => Promise<void>): void => {
      sftp.on(event, (reqId: number, ...args: never[]) => {
        fn.call(this, reqId, ...args).catch((err: unknown) => this.fail(reqId, err));
      });
    };
    on('OPEN', this.onOpen);
    on('READ', this.onRead);
    on('WRITE', this.onWrite);
    on('CLOSE', this.onClose);
    on('FSTAT', this.onFstat);
    on('FSETSTAT', this.onFsetstat);
    on('OPENDIR', this.onOpendir);
    on('READDIR', this.onReaddir);
    on('STAT', (reqId: number, path: string) => this.onStat(reqId, path, true));
    on('LSTAT', (reqId: number, path: string) => this.onStat(reqId, path, false));
    on('SETSTAT', this.onSetstat);
    on('REALPATH', this.onRealpath);
    on('MKDIR', (reqId: number, path: string) => this.simple(reqId, ['mkdir', '--', path]));
    on('RMDIR', (reqId: number, path: string) => this.simple(reqId, ['rmdir', '--', path]));
    on('REMOVE', (reqId: number, path: string) => this.simple(reqId, ['rm', '--', path]));
    on('RENAME', (reqId: number, from: string, to: string) => this.simple(reqId, ['mv', '-f', '--', from, to]));
    on('SYMLINK', (reqId: number, link: string, target: string) => this.simple(reqId, ['ln', '-s', '--', target, link]));
    on('READLINK', this.onReadlink);
    // The client's EOF ends the session: answer with ours so it can exit.
    sftp.on('end', () => {
      exitStatus(sftp, 0);
      sftp.end();
      void this.closeAll();
    });
    sftp.on('close', () => void this.closeAll());
  }

  private async closeAll(): Promise<void> {
    this.dropScript();
    for (const [id, h] of this.handles) {
      this.handles.delete(id);
      if (h.kind === 'read') this.stopRead(h);
      // A broken upload leaves the old file as it was: only the temp file or the spool goes.
      if (h.kind === 'stream') {
        h.exec.close();
        await this.removeTemp(h);
        if (h.spooled) await h.spooled.then((w) => this.dropSpool(w), () => undefined);
      }
      if (h.kind === 'write') await this.dropSpool(h);
    }
    if (this.spoolDir) await rm(await this.spoolDir, { recursive: true, force: true }).catch(() => undefined);
  }

  private stopRead(h: ReadHandle): void {
    if (!h.ended) h.abort.abort();
    h.content.destroy();
  }

  private async removeTemp(h: StreamHandle): Promise<void> {
    await this.t.access.exec(this.t.instanceId, this.t.container, ['rm', '-f', '--', h.temp], EXEC_TIMEOUT_MS).catch(() => undefined);
  }

  private async dropSpool(h: WriteHandle): Promise<void> {
    await h.file.close().catch(() => undefined);
    await rm(h.spool, { force: true });
  }

  /** The handle a request names; an upload that moved to the spool path answers as its spool. */
  private async handleFor(buf: Buffer): Promise<[number, Handle | undefined]> {
    const [id, h] = this.handleOf(buf);
    return h?.kind === 'stream' && h.spooled ? [id, await h.spooled] : [id, h];
  }

  private fail(reqId: number, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    const code =
      err instanceof BerthError && err.kind === 'NOT_FOUND'
        ? STATUS_CODE.NO_SUCH_FILE
        : /no such file|not found|does not exist|can't stat/i.test(message)
          ? STATUS_CODE.NO_SUCH_FILE
          : /permission denied|read-only/i.test(message)
            ? STATUS_CODE.PERMISSION_DENIED
            : STATUS_CODE.FAILURE;
    this.t.logger.debug({ err: message }, 'sftp request failed');
    this.sftp.status(reqId, code, message.split('\n')[0]);
  }

  private handleOf(buf: Buffer): [number, Handle | undefined] {
    const id = buf.length === 4 ? buf.readUInt32BE(0) : -1;
    return [id, this.handles.get(id)];
  }

  private newHandle(h: Handle): Buffer {
    const id = this.nextHandle++;
    this.handles.set(id, h);
    const b = Buffer.alloc(4);
    b.writeUInt32BE(id);
    return b;
  }

  private async run(argv: string[]): Promise<string> {
    const r = await this.t.access.exec(this.t.instanceId, this.t.container, argv, EXEC_TIMEOUT_MS);
    if (r.exitCode !== 0) throw new Error((r.stderr.trim() || `${argv[0]} exited with ${r.exitCode}`).replace(/^[a-z]+: /, ''));
    return r.stdout;
  }

  private async simple(reqId: number, argv: string[]): Promise<void> {
    await this.run(argv);
    this.sftp.status(reqId, STATUS_CODE.OK);
  }

  private async stat(path: string, follow: boolean): Promise<Attributes> {
    if (this.noStat) return this.archiveStat(path, follow);
    const argv = ['stat', ...(follow ? ['-L'] : []), '-c', STAT_FORMAT, '--', path];
    const r = await this.t.access.exec(this.t.instanceId, this.t.container, argv, EXEC_TIMEOUT_MS);
    // 126/127: no `stat` in the image (distroless, FROM scratch): Docker's archive API knows the rest but the owner.
    if (r.exitCode === 126 || r.exitCode === 127) {
      this.noStat = true;
      return this.archiveStat(path, follow);
    }
    if (r.exitCode !== 0) throw new Error((r.stderr.trim() || `stat exited with ${r.exitCode}`).replace(/^[a-z]+: /, ''));
    const parsed = parseStatLine(r.stdout.split('\n')[0] ?? '');
    if (!parsed) throw new Error(`cannot stat ${path}`);
    return parsed.attrs;
  }

  /** A path's size, mode and time from the archive API; owner and group read as root. */
  private async archiveStat(path: string, follow: boolean): Promise<Attributes> {
    let st = await this.t.access.statFile!(this.t.instanceId, this.t.container, path);
    // Docker gives a link's target resolved in the container: one more look follows it.
    if (follow && st.linkTarget) st = await this.t.access.statFile!(this.t.instanceId, this.t.container, posix.resolve(posix.dirname(path), st.linkTarget));
    const time = Math.floor(st.mtimeMs / 1000);
    return { mode: st.mode, size: st.size, uid: 0, gid: 0, atime: time, mtime: time };
  }

  private async onStat(reqId: number, path: string, follow: boolean): Promise<void> {
    // Answered by the path's script, which then waits a moment for the OPEN that may follow.
    const script = (this.waiting?.script.path === path ? this.waiting.script : undefined) ?? (await this.startScript(path));
    if (!script) return void this.sftp.attrs(reqId, await this.stat(path, follow));
    this.keepScript(script);
    const look = follow ? script.stat : script.lstat;
    if ('error' in look) throw new Error(look.error);
    this.sftp.attrs(reqId, look.attrs);
  }

  /** The script kept after a look at a path, for an OPEN of that path. */
  private waiting: { script: Script; timer: NodeJS.Timeout } | undefined;

  /** Keeps `script` waiting, from now, in place of any other. */
  private keepScript(script: Script): void {
    if (this.waiting?.script === script) clearTimeout(this.waiting.timer);
    else this.dropScript();
    const timer = setTimeout(() => this.dropScript(), SCRIPT_WAIT_MS);
    timer.unref();
    this.waiting = { script, timer };
  }

  /** The waiting script if it is for `path`; another one is let go. */
  private takeScript(path: string): Script | undefined {
    const w = this.waiting;
    if (w?.script.path !== path) return void this.dropScript();
    clearTimeout(w.timer);
    this.waiting = undefined;
    return w.script;
  }

  /** Ends the waiting script: without `go` it stops having touched nothing. */
  private dropScript(): void {
    if (!this.waiting) return;
    clearTimeout(this.waiting.timer);
    this.waiting.script.exec.stdin.end();
    this.waiting = undefined;
  }

  /**
   * Starts PATH_SCRIPT for `path` and reads the lstat and stat lines it prints first; undefined
   * when the image has no shell to run it, or no `stat` (then looks are answered as without a
   * script, and the spool path, which needs neither, takes uploads).
   */
  private async startScript(path: string): Promise<Script | undefined> {
    if (this.streamable === false) return undefined;
    const temp = posix.join(posix.dirname(path), `.${posix.basename(path)}.berth-${randomBytes(4).toString('hex')}`);
    const token = randomBytes(16).toString('hex');
    const exec = await this.t.access.openExec(this.t.instanceId, this.t.container, { argv: ['sh', '-c', PATH_SCRIPT, 'sh', temp, path, token], tty: false });
    const script: Script = { path, temp, token, exec, lstat: { error: '' }, stat: { error: '' }, stderr: '', done: Promise.resolve(), placed: false };
    exec.stderr.on('data', (d: Buffer) => void (script.stderr += d.toString()));
    const [first, second] = await readLines(exec.stdout, 2);
    const look = (line: string | undefined): Look | undefined => {
      if (line?.startsWith('- ')) return { error: line.slice(2).replace(/^[a-z]+: /, '') || `cannot stat ${path}` };
      const attrs = line !== undefined ? parseStatLine(line)?.attrs : undefined;
      return attrs ? { attrs } : undefined;
    };
    const lstat = look(first);
    const stat = look(second);
    // An image with a shell but no stat says so for each look ("sh: stat: not found").
    const noStat = [lstat, stat].some((l) => l && 'error' in l && /\bstat: not found|applet not found/.test(l.error));
    if (!lstat || !stat || noStat) {
      // Not the script's lines: it did not run, or cannot look.
      exec.close();
      const code = noStat ? 127 : await exec.exitCode;
      // 126/127: no `sh` to run (an image of one static binary), or no `stat`.
      if (code === 126 || code === 127) return void (this.streamable = false);
      throw new Error(script.stderr.trim() || first || `cannot run a command in the pod (exit ${code})`);
    }
    Object.assign(script, { lstat, stat });
    this.streamable = true;
    return script;
  }

  private async onRealpath(reqId: number, path: string): Promise<void> {
    this.home ??= this.run(['sh', '-c', 'cd ~ 2>/dev/null && pwd || echo /']).then((s) => s.trim() || '/', () => '/');
    const full = posix.resolve(await this.home, path || '.');
    this.sftp.name(reqId, [{ filename: full, longname: full, attrs: {} as Attributes }]);
  }

  private async onReadlink(reqId: number, path: string): Promise<void> {
    const target = (await this.run(['readlink', '--', path])).replace(/\n$/, '');
    this.sftp.name(reqId, [{ filename: target, longname: target, attrs: {} as Attributes }]);
  }

  private async setstat(path: string, attrs: Partial<Attributes>): Promise<void> {
    // dd truncates (or extends) its output at the seek offset: POSIX, in busybox and coreutils alike.
    if (attrs.size !== undefined) await this.run(['dd', 'if=/dev/null', `of=${path}`, 'bs=1', `seek=${attrs.size}`, 'count=0']);
    if (attrs.mode !== undefined) await this.run(['chmod', (attrs.mode & 0o7777).toString(8), '--', path]);
    if (attrs.mtime !== undefined) {
      // Times are a courtesy (scp -p): busybox and GNU touch read this form; a refusal is not an error.
      const d = new Date(attrs.mtime * 1000).toISOString().replace('T', ' ').slice(0, 19);
      await this.t.access.exec(this.t.instanceId, this.t.container, ['touch', '-c', '-d', d, '--', path], EXEC_TIMEOUT_MS).catch(() => undefined);
    }
  }

  private async onSetstat(reqId: number, path: string, attrs: Partial<Attributes>): Promise<void> {
    await this.setstat(path, attrs);
    this.sftp.status(reqId, STATUS_CODE.OK);
  }

  private async onFsetstat(reqId: number, handle: Buffer, attrs: Partial<Attributes>): Promise<void> {
    const [, h] = await this.handleFor(handle);
    if (!h) return void this.sftp.status(reqId, STATUS_CODE.FAILURE, 'no such handle');
    // An upload's file is in place only after close: the mode and time are kept for then.
    if (h.kind === 'write' || h.kind === 'stream') {
      if (attrs.mode !== undefined) h.mode = attrs.mode & 0o7777;
      if (attrs.mtime !== undefined) h.mtime = attrs.mtime;
      if (attrs.size !== undefined) this.resize(h, attrs.size);
      return void this.sftp.status(reqId, STATUS_CODE.OK);
    }
    await this.setstat(h.path, attrs);
    this.sftp.status(reqId, STATUS_CODE.OK);
  }

  /** FSETSTAT's size on an upload: OpenSSH sets the size after the last write, cutting what was longer. */
  private resize(h: WriteHandle | StreamHandle, size: number): void {
    if (h.kind === 'stream') {
      h.size = size;
      h.tail = Math.min(h.tail, size);
      return;
    }
    this.flush(h);
    h.pending = h.pending.then(() => h.file.truncate(size)).catch((err: Error) => (h.error ??= err));
  }

  private async onFstat(reqId: number, handle: Buffer): Promise<void> {
    const [, h] = await this.handleFor(handle);
    if (!h) return void this.sftp.status(reqId, STATUS_CODE.FAILURE, 'no such handle');
    if (h.kind === 'read') return void this.sftp.attrs(reqId, { mode: 0o100644, uid: 0, gid: 0, size: h.size, atime: 0, mtime: 0 });
    if (h.kind === 'stream') return void this.sftp.attrs(reqId, { mode: 0o100000 | (h.mode ?? 0o644), uid: 0, gid: 0, size: h.size ?? Math.max(h.position, h.tail), atime: 0, mtime: 0 });
    if (h.kind === 'write') {
      this.flush(h);
      await h.pending;
      const st = await h.file.stat();
      return void this.sftp.attrs(reqId, { mode: 0o100000 | h.mode, uid: 0, gid: 0, size: st.size, atime: Math.floor(st.atimeMs / 1000), mtime: Math.floor(st.mtimeMs / 1000) });
    }
    this.sftp.attrs(reqId, await this.stat(h.path, true));
  }

  private async onOpen(reqId: number, path: string, flags: number, attrs: Partial<Attributes>): Promise<void> {
    const writing = (flags & OPEN_MODE.WRITE) !== 0 || (flags & OPEN_MODE.APPEND) !== 0;
    if (!writing) return void this.sftp.handle(reqId, this.newHandle(await this.openRead(path)));
    if ((flags & OPEN_MODE.EXCL) !== 0) {
      const exists = await this.stat(path, false).then(() => true, () => false);
      if (exists) return void this.sftp.status(reqId, STATUS_CODE.FAILURE, `${path} already exists`);
    }
    const stream = (flags & (OPEN_MODE.READ | OPEN_MODE.APPEND)) === 0 && this.streamable !== false ? await this.openStream(path, flags, attrs) : undefined;
    if (stream) return void this.sftp.handle(reqId, this.newHandle(stream));
    const existing = await this.stat(path, true).catch(() => undefined);
    if (!existing && (flags & OPEN_MODE.CREAT) === 0) return void this.sftp.status(reqId, STATUS_CODE.NO_SUCH_FILE, `${path}: no such file`);
    // The upload replaces the target at close: that must not be a directory, a device or a FIFO.
    if (existing && (existing.mode & 0o170000) !== 0o100000) return void this.sftp.status(reqId, STATUS_CODE.FAILURE, `${path}: not a regular file`);
    const mode = existing ? existing.mode & 0o7777 : attrs.mode !== undefined ? attrs.mode & 0o7777 : 0o644;
    const h = await this.openSpool(path, mode, existing && (flags & OPEN_MODE.TRUNC) === 0 ? existing.size : 0);
    this.sftp.handle(reqId, this.newHandle(h));
  }

  /**
   * A download, from the node's `readFile`: read on the node through the container's root where the
   * agent can (a running container), else out of a tar from Docker's archive API. Streamed from the
   * path's script with `cat` instead, it skipped the archive's start-up (a helper process, 100-250
   * ms) but was slower than even the archive: Docker's exec stream passes each byte through one
   * process more (containerd's shim), 0.8-0.9 s of Docker's CPU per 200 MB against 0.45-0.5 s for
   * the archive (scp downloads of 200 MB, alternating on one server: 2.0-2.6 s against 1.7-2.1 s).
   */
  private async openRead(path: string): Promise<ReadHandle> {
    const look = this.waiting?.script.path === path ? this.waiting.script.lstat : undefined;
    this.dropScript();
    // The archive API hands a symbolic link over as the link (the read on the node follows it, inside
    // the container); sshd, and so the client, read what it points to.
    const regular = look && 'attrs' in look && (look.attrs.mode & 0o170000) === 0o100000;
    const source = regular ? path : await this.followLinks(path);
    const abort = new AbortController();
    const { size, content } = await this.t.access.readFile(this.t.instanceId, this.t.container, source, abort.signal);
    const h: ReadHandle = { kind: 'read', path, size, content, abort, start: 0, chunks: [], buffered: 0, ended: false, failed: undefined, waiting: [] };
    content.on('data', (c: Buffer) => {
      h.chunks.push(c);
      h.buffered += c.length;
      if (h.buffered > READ_AHEAD) content.pause();
      this.serveReads(h);
    });
    content.once('end', () => {
      h.ended = true;
      this.serveReads(h);
    });
    content.once('error', (err) => {
      h.failed = err;
      this.serveReads(h);
    });
    return h;
  }

  /** Where `path` leads past its symbolic links, asked of the archive API (no command runs); `path` itself when it is none or not there. */
  private async followLinks(path: string): Promise<string> {
    let at = path;
    for (let hops = 0; hops < 40; hops++) {
      const st = await this.t.access.statFile(this.t.instanceId, this.t.container, at).catch(() => undefined);
      if (!st?.linkTarget) return at;
      at = posix.resolve(posix.dirname(at), st.linkTarget);
    }
    throw new Error(`${path}: too many levels of symbolic links`);
  }

  /** Whether the image has the shell and `stat` that PATH_SCRIPT needs; known after the first try. */
  private streamable: boolean | undefined;

  /**
   * An upload into the script that a STAT of this path left waiting, or one started now. A file
   * there keeps its mode (the mode asked for applies to a file created, as with open(2)) and,
   * opened without truncation, its bytes past what is written. Undefined when the image has no
   * shell; a refusal (not a regular file, no such file without CREAT) is thrown.
   */
  private async openStream(path: string, flags: number, attrs: Partial<Attributes>): Promise<StreamHandle | undefined> {
    const script = this.takeScript(path) ?? (await this.startScript(path));
    if (!script) return undefined;
    const existing = 'attrs' in script.stat ? script.stat.attrs : undefined;
    // The upload replaces the target at close: that must not be a directory, a device or a FIFO.
    const refusal = existing && (existing.mode & 0o170000) !== 0o100000 ? `${path}: not a regular file` : !existing && (flags & OPEN_MODE.CREAT) === 0 ? `${path}: no such file` : undefined;
    if (refusal) {
      script.exec.stdin.end();
      throw new Error(refusal);
    }
    const { exec, temp, token } = script;
    exec.stdin.write('go\n');
    script.done = saysDone(exec.stdout, `done ${token}\n`).then(() => void (script.placed = true));
    const mode = existing ? existing.mode & 0o7777 : attrs.mode !== undefined ? attrs.mode & 0o7777 : undefined;
    const keep = existing && (flags & OPEN_MODE.TRUNC) === 0 ? existing.size : 0;
    const h: StreamHandle = { kind: 'stream', path, temp, token, exec, position: 0, early: new Map(), earlyBytes: 0, tail: keep, size: undefined, script, mode, mtime: undefined, error: undefined, spooled: undefined, acks: undefined, room: undefined, release: undefined, corked: false };
    (exec.stdin as NodeJS.WritableStream & { on(e: 'error', f: (err: Error) => void): void }).on('error', (err: Error) => (h.error ??= err));
    return h;
  }

  /** An upload spooled on the gateway, put into the container at close; `keep` bytes of the old file are read in first. */
  private async openSpool(path: string, mode: number, keep: number): Promise<WriteHandle> {
    this.spoolDir ??= mkdtemp(join(tmpdir(), 'berth-sftp-'));
    const spool = join(await this.spoolDir, `${this.nextHandle}-${randomBytes(4).toString('hex')}`);
    const file = await open(spool, 'w+', 0o600);
    const h: WriteHandle = { kind: 'write', path, file, spool, mode, mtime: undefined, error: undefined, pending: Promise.resolve(), openedAt: Date.now(), buf: [], bufStart: 0, bufLen: 0, inFlight: 0, acks: undefined };
    if (keep > 0) {
      // Opened without truncation: writes land over the file's current bytes.
      h.pending = (async () => {
        const { content } = await this.t.access.readFile!(this.t.instanceId, this.t.container, path);
        let pos = 0;
        for await (const c of content as AsyncIterable<Buffer>) {
          await file.write(c, 0, c.length, pos);
          pos += c.length;
        }
      })().catch((err: Error) => (h.error = err));
    }
    return h;
  }

  /** Answers queued reads from the buffered front of the download, in order, and drops what is behind them. */
  private serveReads(h: ReadHandle): void {
    while (h.waiting.length > 0) {
      const r = h.waiting[0]!;
      if (r.offset < h.start) {
        h.waiting.shift();
        this.sftp.status(r.reqId, STATUS_CODE.FAILURE, 'the gateway reads files front to back; this offset was passed already');
        continue;
      }
      const have = h.start + h.buffered;
      if (r.offset >= h.size || (h.ended && r.offset >= have)) {
        h.waiting.shift();
        this.sftp.status(r.reqId, STATUS_CODE.EOF);
        continue;
      }
      if (h.failed) {
        h.waiting.shift();
        this.sftp.status(r.reqId, STATUS_CODE.FAILURE, h.failed.message);
        continue;
      }
      const end = Math.min(r.offset + r.len, h.size);
      if (end > have && !h.ended) break;
      h.waiting.shift();
      this.sftp.data(r.reqId, this.take(h, r.offset, Math.min(end, have)));
    }
    if (h.buffered <= READ_AHEAD && !h.ended) h.content.resume();
  }

  /** Bytes [from, to) of the buffer; everything before `from` is dropped. */
  private take(h: ReadHandle, from: number, to: number): Buffer {
    let skip = from - h.start;
    while (h.chunks.length && skip >= h.chunks[0]!.length) {
      skip -= h.chunks[0]!.length;
      h.start += h.chunks[0]!.length;
      h.buffered -= h.chunks[0]!.length;
      h.chunks.shift();
    }
    if (skip > 0) {
      h.chunks[0] = h.chunks[0]!.subarray(skip);
      h.start += skip;
      h.buffered -= skip;
    }
    const want = to - from;
    const first = h.chunks[0]!;
    if (first.length >= want) return first.subarray(0, want);
    const parts: Buffer[] = [];
    let got = 0;
    for (const c of h.chunks) {
      if (got >= want) break;
      parts.push(c.subarray(0, Math.min(c.length, want - got)));
      got += parts[parts.length - 1]!.length;
    }
    return Buffer.concat(parts, got);
  }

  private async onRead(reqId: number, handle: Buffer, offset: number, len: number): Promise<void> {
    const [, found] = this.handleOf(handle);
    const h = found?.kind === 'stream' && found.spooled ? await found.spooled : found;
    if (!h || h.kind === 'dir' || h.kind === 'stream') return void this.sftp.status(reqId, STATUS_CODE.FAILURE, h?.kind === 'stream' ? 'an upload streamed into the pod cannot be read back before it is closed' : 'no such file handle');
    if (h.kind === 'write') {
      this.flush(h);
      await h.pending;
      const buf = Buffer.alloc(len);
      const { bytesRead } = await h.file.read(buf, 0, len, offset);
      return void (bytesRead === 0 ? this.sftp.status(reqId, STATUS_CODE.EOF) : this.sftp.data(reqId, buf.subarray(0, bytesRead)));
    }
    h.waiting.push({ reqId, offset, len });
    if (h.waiting.length > 1 && h.waiting[h.waiting.length - 2]!.offset > offset) h.waiting.sort((a, b) => a.offset - b.offset);
    this.serveReads(h);
  }

  private async streamWrite(h: StreamHandle, offset: number, data: Buffer): Promise<void> {
    if ((h.exec.stdin as Partial<Writable>).destroyed) h.error ??= new Error(`the stream into the pod closed before ${h.path} was written`);
    if (h.error) throw h.error;
    if (offset < h.position) throw new Error('this upload goes straight into the pod, front to back: a write behind what was written is not possible');
    if (h.size !== undefined && h.size < h.position) throw new Error('this upload goes straight into the pod: a write after the file was cut short of what was written is not possible');
    if (offset > h.position) {
      if (h.earlyBytes + data.length > EARLY_LIMIT) throw new Error('writes came too far out of order for an upload streamed into the pod');
      h.earlyBytes += data.length;
      await new Promise<void>((sent) => h.early.set(offset, { data, sent }));
      return this.inOrder(h, undefined);
    }
    this.send(h, data);
    let filled = false;
    for (let next = h.early.get(h.position); next; next = h.early.get(h.position)) {
      h.early.delete(h.position);
      h.earlyBytes -= next.data.length;
      this.send(h, next.data);
      next.sent();
      filled = true;
    }
    if (h.size !== undefined && h.position > h.size) h.size = h.position;
    // Acknowledged at once while the queue into the pod is short, so that the client keeps sending
    // and the pod's side always has bytes to take; past STREAM_HIGH, once it is down to STREAM_LOW.
    // A write that let held ones go is answered before them: it joins the chain of answers first.
    const full = (h.exec.stdin as Partial<Writable>).writableLength! > STREAM_HIGH;
    await this.inOrder(h, full ? this.room(h) : filled ? Promise.resolve() : undefined);
    if (h.error) throw h.error;
  }

  /**
   * Waits for `ready`, and for every write before this one to be acknowledged: OpenSSH's client
   * takes an acknowledgement that overtakes an earlier one for a gap and, at the end, cuts the file
   * there with FSETSTAT (its "highwater"), so acknowledgements must leave in the order writes came.
   */
  private inOrder(h: StreamHandle | WriteHandle, ready: Promise<unknown> | undefined): Promise<void> {
    if (!ready && !h.acks) return Promise.resolve();
    const mine: Promise<void> = (h.acks ?? Promise.resolve()).then(() => ready).then(
      () => undefined,
      () => undefined,
    );
    h.acks = mine;
    // Reactions run in the order they were added: this one before the caller's, so a write that
    // comes after sees no chain only once every write before it is answered.
    void mine.then(() => {
      if (h.acks === mine) h.acks = undefined;
    });
    return mine;
  }

  private send(h: StreamHandle, data: Buffer): void {
    this.gather(h);
    const stdin = h.exec.stdin as Writable;
    stdin.write(data, (err) => {
      if (err) h.error ??= err;
      if (h.release && stdin.writableLength <= STREAM_LOW) h.release();
    });
    h.position += data.length;
  }

  /**
   * Writes to the exec's stdin gathered per turn of the event loop, one system call for what one
   * batch of SSH packets brought instead of one per 32 KiB.
   */
  private gather(h: StreamHandle): void {
    const stdin = h.exec.stdin as NodeJS.WritableStream & Partial<Pick<Writable, 'cork' | 'uncork'>>;
    if (h.corked || !stdin.cork || !stdin.uncork) return;
    h.corked = true;
    stdin.cork();
    setImmediate(() => {
      h.corked = false;
      stdin.uncork!();
    });
  }

  private room(h: StreamHandle): Promise<void> {
    h.room ??= new Promise<void>((resolve) => {
      const stdin = h.exec.stdin;
      // A broken stream takes no more: the writes waiting fail, and so does the upload at close.
      const closed = (): void => {
        h.error ??= new Error(`the stream into the pod closed before ${h.path} was written`);
        h.release?.();
      };
      h.release = () => {
        stdin.off('close', closed);
        h.room = undefined;
        h.release = undefined;
        resolve();
      };
      stdin.on('close', closed);
    });
    return h.room;
  }

  /**
   * A file kept open without truncation whose first write is not at its start is being patched, not
   * replaced: the bytes already streamed are none, so the upload moves to the spool path, which
   * reads the old file in first.
   */
  private async toSpool(h: StreamHandle): Promise<WriteHandle> {
    h.exec.close();
    await this.removeTemp(h);
    const w = await this.openSpool(h.path, h.mode ?? 0o644, h.tail);
    w.mtime = h.mtime;
    if (h.size !== undefined) this.resize(w, h.size);
    return w;
  }

  /**
   * Ends the stream with the trailer that tells PATH_SCRIPT to finish: keep the old file's tail,
   * set the size FSETSTAT asked for (checked: a short tail must not pass) and the mode, and rename
   * the temp file into place. OpenSSH's uploads need only the last two.
   */
  private async streamClose(h: StreamHandle): Promise<void> {
    if (h.early.size > 0) h.error ??= new Error('the upload has a gap: some writes never came');
    if (h.error) {
      // Ended without the trailer: the script removes its temp file.
      h.exec.close();
      throw h.error;
    }
    const kept = Math.max(0, h.tail - h.position);
    const size = h.size ?? h.position + kept;
    const fields = [h.token, h.position, h.position + 1, kept, kept > 0 || size !== h.position ? size : '-', h.mode !== undefined ? h.mode.toString(8) : '-'];
    h.exec.stdin.end(Buffer.from(fields.join(' ').padEnd(TRAILER - 1) + '\n'));
    await Promise.race([h.script.done, h.exec.exitCode]);
    if (h.script.placed) return;
    const code = await h.exec.exitCode;
    if (h.script.placed) return;
    if (h.error) throw h.error;
    throw new Error(h.script.stderr.trim().split('\n').pop()?.replace(h.temp, h.path) || `writing ${h.path} failed (exit ${code})`);
  }

  /**
   * Writes are acknowledged once queued, not once on disk: each spool write is a thread-pool round
   * trip, and waiting for one before acknowledging the next caps a pipelined upload at a few dozen
   * MB/s. Contiguous writes are gathered into 1 MiB spool writes; a failure is reported on the next
   * write and at close, which is when the file reaches the pod anyway.
   */
  private async onWrite(reqId: number, handle: Buffer, offset: number, data: Buffer): Promise<void> {
    const [, found] = this.handleOf(handle);
    if (found?.kind === 'stream' && !found.spooled) {
      if (found.position === 0 && offset !== 0 && found.tail > 0 && found.early.size === 0) {
        found.spooled = this.toSpool(found);
      } else {
        await this.streamWrite(found, offset, data);
        return void this.sftp.status(reqId, STATUS_CODE.OK);
      }
    }
    const h = found?.kind === 'stream' ? await found.spooled : found;
    if (!h || h.kind !== 'write') return void this.sftp.status(reqId, STATUS_CODE.FAILURE, 'no such file handle open for writing');
    if (h.error) throw h.error;
    if (h.bufLen > 0 && offset !== h.bufStart + h.bufLen) this.flush(h);
    if (h.bufLen === 0) h.bufStart = offset;
    h.buf.push(data);
    h.bufLen += data.length;
    if (h.bufLen >= SPOOL_CHUNK) this.flush(h);
    // Backpressure: the client waits once this much is queued for the disk.
    await this.inOrder(h, h.inFlight > SPOOL_QUEUE ? h.pending : undefined);
    if (h.error) throw h.error;
    this.sftp.status(reqId, STATUS_CODE.OK);
  }

  private flush(h: WriteHandle): void {
    if (h.bufLen === 0) return;
    const chunk = h.buf.length === 1 ? h.buf[0]! : Buffer.concat(h.buf, h.bufLen);
    const at = h.bufStart;
    h.buf = [];
    h.bufLen = 0;
    h.inFlight += chunk.length;
    h.pending = h.pending
      .then(() => h.file.write(chunk, 0, chunk.length, at))
      .catch((err: Error) => (h.error ??= err))
      .finally(() => (h.inFlight -= chunk.length));
  }

  private async onClose(reqId: number, handle: Buffer): Promise<void> {
    const [id, h] = await this.handleFor(handle);
    if (!h) return void this.sftp.status(reqId, STATUS_CODE.FAILURE, 'no such handle');
    this.handles.delete(id);
    if (h.kind === 'read') this.stopRead(h);
    if (h.kind === 'stream') await this.streamClose(h);
    if (h.kind === 'write') {
      try {
        this.flush(h);
        await h.pending;
        if (h.error) throw h.error;
        const { size } = await h.file.stat();
        await h.file.close();
        const start = Date.now();
        await this.t.access.writeFile!(this.t.instanceId, this.t.container, h.path, createReadStream(h.spool, { highWaterMark: 1 << 20 }), size, h.mode);
        this.t.logger.debug({ path: h.path, bytes: size, openedMs: start - h.openedAt, putMs: Date.now() - start }, 'sftp upload stored');
      } finally {
        await this.dropSpool(h);
      }
    }
    if ((h.kind === 'stream' || h.kind === 'write') && h.mtime !== undefined) await this.setstat(h.path, { mtime: h.mtime });
    this.sftp.status(reqId, STATUS_CODE.OK);
  }

  private async onOpendir(reqId: number, path: string): Promise<void> {
    const attrs = await this.stat(path, true);
    if ((attrs.mode & 0o170000) !== 0o040000) return void this.sftp.status(reqId, STATUS_CODE.FAILURE, `${path} is not a directory`);
    this.sftp.handle(reqId, this.newHandle({ kind: 'dir', path, sent: false }));
  }

  private async onReaddir(reqId: number, handle: Buffer): Promise<void> {
    const [, h] = this.handleOf(handle);
    if (!h || h.kind !== 'dir') return void this.sftp.status(reqId, STATUS_CODE.FAILURE, 'no such directory handle');
    if (h.sent) return void this.sftp.status(reqId, STATUS_CODE.EOF);
    h.sent = true;
    // One command for the whole listing; a glob that matches nothing stays literal and fails to stat, which is dropped.
    const r = await this.t.access.exec(this.t.instanceId, this.t.container, ['sh', '-c', `cd -- "$1" && exec stat -c '${STAT_FORMAT}' -- .* *`, 'sh', h.path], EXEC_TIMEOUT_MS);
    const entries: FileEntry[] = [];
    for (const line of r.stdout.split('\n')) {
      const parsed = parseStatLine(line);
      if (!parsed) continue;
      entries.push({ filename: parsed.name, longname: longname(parsed.name, parsed.attrs), attrs: parsed.attrs });
    }
    if (entries.length === 0 && r.exitCode !== 0 && !/No such file|can't stat|cannot stat/i.test(r.stderr)) throw new Error(r.stderr.trim() || `cannot list ${h.path}`);
    this.sftp.name(reqId, entries);
  }
}
