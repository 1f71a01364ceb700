/**
 * Just enough of the tar format (POSIX ustar with pax records) for Docker's archive API to carry one
 * file each way: a writer that frames a stream of known size, and a reader that finds the first
 * regular file in a stream and hands its bytes on without holding them.
 */
import { PassThrough, type Readable } from 'node:stream';

const BLOCK = 512;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function paxRecord(key: string, value: string): string {
  // The length prefix counts itself: grow it until it is stable.
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return `${len}${body}`;
}

/** Who owns an unpacked file; root when absent. */
export interface TarOwner {
  uid: number;
  gid: number;
}

function header(name: string, size: number, mode: number, mtimeS: number, type: string, owner: TarOwner = { uid: 0, gid: 0 }): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name.slice(0, 100), 0, 'utf8');
  h.write(octal(mode & 0o7777, 8), 100, 'ascii');
  h.write(octal(owner.uid, 8), 108, 'ascii');
  h.write(octal(owner.gid, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(Math.floor(mtimeS), 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(type, 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

/** A tar stream holding one regular file `name` whose `size` bytes come from `content`. */
export function singleFileTar(name: string, size: number, mode: number, mtimeS: number, content: Readable, owner?: TarOwner): Readable {
  const out = new PassThrough();
  const pax: string[] = [];
  // ustar's name field is 100 bytes and its size field 8 GiB: longer ones go in a pax header.
  if (Buffer.byteLength(name) > 100) pax.push(paxRecord('path', name));
  if (size >= 8 * 2 ** 30) pax.push(paxRecord('size', String(size)));
  if (pax.length) {
    const body = Buffer.from(pax.join(''), 'utf8');
    out.write(header('PaxHeader', body.length, 0o644, mtimeS, 'x'));
    out.write(Buffer.concat([body, Buffer.alloc((BLOCK - (body.length % BLOCK)) % BLOCK)]));
  }
  out.write(header(name, size >= 8 * 2 ** 30 ? 0 : size, mode, mtimeS, '0', owner));
  let sent = 0;
  content.on('data', (chunk: Buffer) => {
    sent += chunk.length;
    if (!out.write(chunk)) {
      content.pause();
      out.once('drain', () => content.resume());
    }
  });
  content.once('error', (err) => out.destroy(err));
  content.once('end', () => {
    if (sent !== size) return out.destroy(new Error(`the file changed while it was copied: ${sent} bytes, expected ${size}`));
    out.end(Buffer.concat([Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK), Buffer.alloc(2 * BLOCK)]));
  });
  return out;
}

/** One small file held in memory, e.g. of a build context. */
export interface ContextFile {
  name: string;
  content: Buffer;
  /** @default 0o644 */
  mode?: number;
}

/** A tar archive of a few small files held in memory: a build context for Docker's `/build`. */
export function contextTar(files: readonly ContextFile[]): Readable {
  const out = new PassThrough();
  const blocks: Buffer[] = [];
  for (const f of files) {
    if (Buffer.byteLength(f.name) > 100) throw new Error(`context file name too long: ${f.name}`);
    blocks.push(header(f.name, f.content.length, f.mode ?? 0o644, 0, '0'), f.content, Buffer.alloc((BLOCK - (f.content.length % BLOCK)) % BLOCK));
  }
  out.end(Buffer.concat([...blocks, Buffer.alloc(2 * BLOCK)]));
  return out;
}

export interface TarFile {
  name: string;
  size: number;
  /** The file's bytes, streamed as they arrive. */
  content: Readable;
}

function parseOctal(buf: Buffer): number {
  // Base-256 (GNU) for sizes past 8 GiB: high bit set in the first byte.
  if (buf[0]! & 0x80) {
    let v = 0;
    for (let i = 1; i < buf.length; i++) v = v * 256 + buf[i]!;
    return v;
  }
  const text = buf.toString('ascii').replace(/\0.*$/s, '').trim();
  return text ? parseInt(text, 8) : 0;
}

function parsePax(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length) {
    const space = body.indexOf(0x20, i);
    if (space < 0) break;
    const len = Number(body.subarray(i, space).toString('ascii'));
    if (!len) break;
    const rec = body.subarray(space + 1, i + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

/**
 * Reads a tar stream up to its first regular file and resolves with that file's content as a
 * stream; the rest of the archive is drained. Rejects when the archive holds no regular file (a
 * directory, say) — `kind` then names what it found.
 */
export function firstFileOfTar(tar: NodeJS.ReadableStream): Promise<TarFile> {
  return new Promise((resolve, reject) => {
    let pending: Buffer = Buffer.alloc(0);
    let state: 'header' | 'skip' | 'pax' | 'file' | 'done' = 'header';
    let left = 0;
    let padding = 0;
    let pax: Record<string, string> = {};
    let paxBody: Buffer[] = [];
    let paxType = 'x';
    let content: PassThrough | undefined;
    let settled = false;
    const fail = (err: Error): void => {
      if (!settled) {
        settled = true;
        reject(err);
      } else content?.destroy(err);
      (tar as Readable).destroy?.();
    };
    const onData = (chunk: Buffer): void => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (pending.length > 0) {
        if (state === 'done') {
          pending = Buffer.alloc(0);
          return;
        }
        if (state === 'file') {
          const take = Math.min(left, pending.length);
          if (take > 0) {
            const more = content!.write(pending.subarray(0, take));
            pending = pending.subarray(take);
            left -= take;
            if (!more) {
              (tar as Readable).pause();
              content!.once('drain', () => (tar as Readable).resume());
            }
          }
          if (left === 0) {
            content!.end();
            state = 'done';
            (tar as Readable).resume();
          }
          if (take === 0) return;
          continue;
        }
        if (state === 'skip' || state === 'pax') {
          const take = Math.min(left + padding, pending.length);
          if (state === 'pax') paxBody.push(pending.subarray(0, Math.min(take, left)));
          pending = pending.subarray(take);
          const fromBody = Math.min(take, left);
          left -= fromBody;
          padding -= take - fromBody;
          if (left === 0 && padding === 0) {
            if (state === 'pax') {
              const body = Buffer.concat(paxBody);
              // 'x' applies to the next entry; 'L' is a GNU long name; 'g' (global) is of no use here.
              if (paxType === 'x') pax = { ...pax, ...parsePax(body) };
              else if (paxType === 'L') pax = { ...pax, path: body.toString('utf8').replace(/\0.*$/s, '') };
            }
            paxBody = [];
            state = 'header';
          }
          continue;
        }
        if (pending.length < BLOCK) return;
        const h = pending.subarray(0, BLOCK);
        pending = pending.subarray(BLOCK);
        if (h.every((b) => b === 0)) {
          state = 'done';
          if (!settled) fail(new Error('the archive holds no regular file'));
          return;
        }
        const type = String.fromCharCode(h[156] || 0x30);
        const size = pax.size !== undefined ? Number(pax.size) : parseOctal(h.subarray(124, 136));
        const name = pax.path ?? h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
        left = size;
        padding = (BLOCK - (size % BLOCK)) % BLOCK;
        if (type === 'x' || type === 'g' || type === 'L') {
          state = 'pax';
          paxType = type;
          paxBody = [];
          continue;
        }
        pax = {};
        if (type === '0' || type === '\0' || type === '7') {
          content = new PassThrough();
          state = 'file';
          settled = true;
          resolve({ name, size, content });
          if (size === 0) {
            content.end();
            state = 'done';
          }
          continue;
        }
        const kind = type === '5' ? 'a directory' : type === '2' ? 'a symbolic link' : `an entry of type ${type}`;
        state = 'done';
        fail(Object.assign(new Error(`${name} is ${kind}, not a regular file`), { kind }));
        return;
      }
    };
    tar.on('data', onData);
    tar.once('error', (err: Error) => fail(err));
    tar.once('end', () => {
      if (state === 'file') content?.destroy(new Error('the archive ended inside the file'));
      else if (!settled) fail(new Error('the archive ended before any file'));
    });
  });
}

/** Collects a stream whose total is known to be small. */
export async function streamToBuffer(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}
