/**
 * An SFTP server (protocol 3, as OpenSSH's sftp and scp speak it) whose files live in a pod, so no
 * image needs sftp-server or sshd. File contents travel through Docker's archive API: a download
 * streams the file out of a tar; an upload is spooled to a temp file on the gateway (SFTP writes
 * come at offsets and the size is known only at close) and put into the container whole at close.
 * Metadata (stat, listings, mkdir, rename...) uses small commands run in the container.
 */
import { randomBytes } from 'node:crypto';
import { open, rm, mkdtemp, type FileHandle } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import ssh2 from 'ssh2';
import type { Attributes, FileEntry, SFTPWrapper } from 'ssh2';
import type { InteractiveExec, NodeAccess } from '../control/agent-protocol.js';
import { BerthError, type InstanceId } from '../model/index.js';

const { OPEN_MODE, STATUS_CODE } = ssh2.utils.sftp;

/** `%f` raw mode in hex, size, uid, gid, atime, mtime, then the name: GNU and busybox stat both read this. */
const STAT_FORMAT = '%f %s %u %g %X %Y %n';
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
}

/**
 * An upload streamed straight into the container: `cat > path` with the bytes on its stdin, so the
 * copy into the pod overlaps the transfer and nothing is spooled. Used for a new or truncated file
 * when the image has a shell; writes must then come front to back (OpenSSH's do; a few out of
 * order are held until the gap fills).
 */
interface StreamHandle {
  kind: 'stream';
  path: string;
  temp: string;
  exec: InteractiveExec;
  /** Bytes written so far: the offset the next write must have. */
  position: number;
  early: Map<number, Buffer>;
  earlyBytes: number;
  stderr: string;
  mode: number | undefined;
  error: Error | undefined;
}

interface DirHandle {
  kind: 'dir';
  path: string;
  sent: boolean;
}

type Handle = ReadHandle | WriteHandle | StreamHandle | DirHandle;

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
    for (const [id, h] of this.handles) {
      this.handles.delete(id);
      if (h.kind === 'read') h.content.destroy();
      if (h.kind === 'stream') {
        h.exec.close();
        await this.t.access.exec(this.t.instanceId, this.t.container, ['rm', '-f', '--', h.temp], EXEC_TIMEOUT_MS).catch(() => undefined);
      }
      if (h.kind === 'write') {
        await h.file.close().catch(() => undefined);
        await rm(h.spool, { force: true });
      }
    }
    if (this.spoolDir) await rm(await this.spoolDir, { recursive: true, force: true }).catch(() => undefined);
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
    const out = await this.run(['stat', ...(follow ? ['-L'] : []), '-c', STAT_FORMAT, '--', path]);
    const parsed = parseStatLine(out.split('\n')[0] ?? '');
    if (!parsed) throw new Error(`cannot stat ${path}`);
    return parsed.attrs;
  }

  private async onStat(reqId: number, path: string, follow: boolean): Promise<void> {
    this.sftp.attrs(reqId, await this.stat(path, follow));
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
    const [, h] = this.handleOf(handle);
    if (!h) return void this.sftp.status(reqId, STATUS_CODE.FAILURE, 'no such handle');
    // An upload's file exists in the container only after close: keep the mode for then.
    if (h.kind === 'write' || h.kind === 'stream') {
      if (attrs.mode !== undefined) h.mode = attrs.mode & 0o7777;
      return void this.sftp.status(reqId, STATUS_CODE.OK);
    }
    await this.setstat(h.path, attrs);
    this.sftp.status(reqId, STATUS_CODE.OK);
  }

  private async onFstat(reqId: number, handle: Buffer): Promise<void> {
    const [, h] = this.handleOf(handle);
    if (!h) return void this.sftp.status(reqId, STATUS_CODE.FAILURE, 'no such handle');
    if (h.kind === 'read') return void this.sftp.attrs(reqId, { mode: 0o100644, uid: 0, gid: 0, size: h.size, atime: 0, mtime: 0 });
    if (h.kind === 'stream') return void this.sftp.attrs(reqId, { mode: 0o100000 | (h.mode ?? 0o644), uid: 0, gid: 0, size: h.position, atime: 0, mtime: 0 });
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
    if (!writing) {
      const { size, content } = await this.t.access.readFile!(this.t.instanceId, this.t.container, path);
      const h: ReadHandle = { kind: 'read', path, size, content, start: 0, chunks: [], buffered: 0, ended: false, failed: undefined, waiting: [] };
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
      return void this.sftp.handle(reqId, this.newHandle(h));
    }
    if ((flags & OPEN_MODE.EXCL) !== 0) {
      const exists = await this.stat(path, false).then(() => true, () => false);
      if (exists) return void this.sftp.status(reqId, STATUS_CODE.FAILURE, `${path} already exists`);
    }
    const existing = (flags & OPEN_MODE.TRUNC) === 0 ? await this.stat(path, true).catch(() => undefined) : undefined;
    if (!existing && (flags & OPEN_MODE.CREAT) === 0 && (flags & OPEN_MODE.TRUNC) === 0) return void this.sftp.status(reqId, STATUS_CODE.NO_SUCH_FILE, `${path}: no such file`);
    if ((!existing || existing.size === 0) && (flags & OPEN_MODE.READ) === 0 && (await this.canStream())) {
      // Into a temp name beside the file, renamed over it at close: the old file stays whole if the
      // upload breaks, and ext4 does not flush a truncated-then-rewritten file on close.
      const temp = posix.join(posix.dirname(path), `.${posix.basename(path)}.berth-${randomBytes(4).toString('hex')}`);
      const exec = await this.t.access.openExec!(this.t.instanceId, this.t.container, { argv: ['sh', '-c', 'exec cat > "$1"', 'sh', temp], tty: false });
      const h: StreamHandle = { kind: 'stream', path, temp, exec, position: 0, early: new Map(), earlyBytes: 0, stderr: '', mode: attrs.mode !== undefined ? attrs.mode & 0o7777 : undefined, error: undefined };
      exec.stderr.on('data', (d: Buffer) => (h.stderr += d.toString()));
      exec.stdout.resume();
      (exec.stdin as NodeJS.WritableStream & { on(e: 'error', f: (err: Error) => void): void }).on('error', (err: Error) => (h.error ??= err));
      return void this.sftp.handle(reqId, this.newHandle(h));
    }
    this.spoolDir ??= mkdtemp(join(tmpdir(), 'berth-sftp-'));
    const spool = join(await this.spoolDir, String(this.nextHandle));
    const file = await open(spool, 'w+', 0o600);
    const h: WriteHandle = { kind: 'write', path, file, spool, mode: attrs.mode !== undefined ? attrs.mode & 0o7777 : existing ? existing.mode & 0o7777 : 0o644, error: undefined, pending: Promise.resolve(), openedAt: Date.now(), buf: [], bufStart: 0, bufLen: 0, inFlight: 0 };
    if (existing && existing.size > 0) {
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
    this.sftp.handle(reqId, this.newHandle(h));
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
    const [, h] = this.handleOf(handle);
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

  private streamable: Promise<boolean> | undefined;

  /** Whether the container has `sh` and `cat` to stream uploads into; asked once per session. */
  private canStream(): Promise<boolean> {
    this.streamable ??= this.t.access.openExec
      ? this.t.access.exec(this.t.instanceId, this.t.container, ['sh', '-c', 'command -v cat'], EXEC_TIMEOUT_MS).then((r) => r.exitCode === 0, () => false)
      : Promise.resolve(false);
    return this.streamable;
  }

  private async streamWrite(h: StreamHandle, offset: number, data: Buffer): Promise<void> {
    if (h.error) throw h.error;
    if (offset < h.position) throw new Error('this upload goes straight into the pod, front to back: a write behind what was written is not possible');
    if (offset > h.position) {
      if (h.earlyBytes + data.length > EARLY_LIMIT) throw new Error('writes came too far out of order for an upload streamed into the pod');
      h.early.set(offset, data);
      h.earlyBytes += data.length;
      return;
    }
    let ok = h.exec.stdin.write(data);
    h.position += data.length;
    for (let next = h.early.get(h.position); next; next = h.early.get(h.position)) {
      h.early.delete(h.position);
      h.earlyBytes -= next.length;
      ok = h.exec.stdin.write(next) && ok;
      h.position += next.length;
    }
    // Acknowledge once the pod's side has room: the client's window of requests is the buffer.
    if (!ok) await new Promise<void>((resolve) => h.exec.stdin.once('drain', () => resolve()));
  }

  private async streamClose(h: StreamHandle): Promise<void> {
    if (h.early.size > 0) h.error ??= new Error('the upload has a gap: some writes never came');
    h.exec.stdin.end();
    const code = await h.exec.exitCode;
    try {
      if (h.error) throw h.error;
      if (code !== 0) throw new Error(h.stderr.trim().replace(/^sh: /, '').replace(h.temp, h.path) || `writing ${h.path} failed (exit ${code})`);
      if (h.mode !== undefined) await this.run(['chmod', h.mode.toString(8), '--', h.temp]);
      await this.run(['mv', '-f', '--', h.temp, h.path]);
    } catch (err) {
      await this.t.access.exec(this.t.instanceId, this.t.container, ['rm', '-f', '--', h.temp], EXEC_TIMEOUT_MS).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Writes are acknowledged once queued, not once on disk: each spool write is a thread-pool round
   * trip, and waiting for one before acknowledging the next caps a pipelined upload at a few dozen
   * MB/s. Contiguous writes are gathered into 1 MiB spool writes; a failure is reported on the next
   * write and at close, which is when the file reaches the pod anyway.
   */
  private async onWrite(reqId: number, handle: Buffer, offset: number, data: Buffer): Promise<void> {
    const [, h] = this.handleOf(handle);
    if (h?.kind === 'stream') {
      await this.streamWrite(h, offset, data);
      return void this.sftp.status(reqId, STATUS_CODE.OK);
    }
    if (!h || h.kind !== 'write') return void this.sftp.status(reqId, STATUS_CODE.FAILURE, 'no such file handle open for writing');
    if (h.error) throw h.error;
    if (h.bufLen > 0 && offset !== h.bufStart + h.bufLen) this.flush(h);
    if (h.bufLen === 0) h.bufStart = offset;
    h.buf.push(data);
    h.bufLen += data.length;
    if (h.bufLen >= SPOOL_CHUNK) this.flush(h);
    // Backpressure: the client waits once this much is queued for the disk.
    if (h.inFlight > SPOOL_QUEUE) await h.pending;
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
    const [id, h] = this.handleOf(handle);
    if (!h) return void this.sftp.status(reqId, STATUS_CODE.FAILURE, 'no such handle');
    this.handles.delete(id);
    if (h.kind === 'read') h.content.destroy();
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
        await h.file.close().catch(() => undefined);
        await rm(h.spool, { force: true });
      }
    }
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

/**
 * Sends exit-status on the SFTP channel before it closes, as sshd does when sftp-server exits: scp
 * exits 1 without one. ssh2 offers no call for it on an SFTP stream, so this reaches its channel.
 */
function exitStatus(sftp: SFTPWrapper, code: number): void {
  const s = sftp as unknown as { _protocol?: { exitStatus?(id: number, code: number): void }; outgoing?: { id: number; state: string } };
  if (s.outgoing?.state === 'open' && typeof s._protocol?.exitStatus === 'function') s._protocol.exitStatus(s.outgoing.id, code);
}

function parseStatLine(line: string): { name: string; attrs: Attributes } | undefined {
  const m = /^([0-9a-f]+) (\d+) (\d+) (\d+) (\d+) (\d+) (.*)$/.exec(line);
  if (!m) return undefined;
  const name = m[7]!.replace(/^\.\//, '');
  return { name, attrs: { mode: parseInt(m[1]!, 16), size: Number(m[2]), uid: Number(m[3]), gid: Number(m[4]), atime: Number(m[5]), mtime: Number(m[6]) } };
}

/** `ls -l`-style line, which sftp's `ls -l` shows as it is. */
function longname(name: string, a: Attributes): string {
  const type = { 0o040000: 'd', 0o120000: 'l', 0o020000: 'c', 0o060000: 'b', 0o010000: 'p', 0o140000: 's' }[a.mode & 0o170000] ?? '-';
  const rwx = (bits: number): string => `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${bits & 1 ? 'x' : '-'}`;
  const perms = type + rwx((a.mode >> 6) & 7) + rwx((a.mode >> 3) & 7) + rwx(a.mode & 7);
  const date = new Date(a.mtime * 1000).toISOString().slice(0, 16).replace('T', ' ');
  return `${perms}    1 ${String(a.uid).padEnd(8)} ${String(a.gid).padEnd(8)} ${String(a.size).padStart(10)} ${date} ${name}`;
}
