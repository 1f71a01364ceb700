/**
 * Parsers for the byte streams the Docker Engine API answers with. Each is fed chunks as they arrive:
 * a chunk boundary may fall anywhere (inside a frame header, a JSON string, a UTF-8 sequence), so
 * every parser keeps what it has not yet been able to use.
 */

import type { LogLine } from './types.js';

export type StreamKind = 'stdout' | 'stderr';

export interface Frame {
  stream: StreamKind;
  payload: Buffer;
}

/**
 * Splits Docker's multiplexed stream (containers without a TTY: logs, attach, exec) into frames:
 * an 8-byte header `[type, 0, 0, 0, size(uint32 BE)]` followed by `size` bytes.
 */
export class FrameDemuxer {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: Frame[] = [];
    let offset = 0;
    while (this.pending.length - offset >= 8) {
      const type = this.pending[offset];
      const size = this.pending.readUInt32BE(offset + 4);
      if (this.pending.length - offset - 8 < size) break;
      const payload = this.pending.subarray(offset + 8, offset + 8 + size);
      // Type 0 is stdin echoed back (only with a TTY-less attach of stdin); Docker writes it as stdout.
      frames.push({ stream: type === 2 ? 'stderr' : 'stdout', payload });
      offset += 8 + size;
    }
    this.pending = this.pending.subarray(offset);
    return frames;
  }

  /** Bytes left over at the end of the stream: a truncated frame. */
  get leftover(): number {
    return this.pending.length;
  }
}

/**
 * Cuts a stream of JSON objects into the text of each object, whether they arrive one per line
 * (Docker), several per chunk, or split across chunks. Tracks string and escape state so a brace
 * inside a string value (a label, a command line) does not end an object early. Returns text, not
 * values, so a caller can read a field JSON.parse would round (`timeNano` exceeds 2^53).
 */
export class JsonObjectSplitter {
  private text = '';
  private scanned = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private start = -1;
  private readonly decoder = new TextDecoder('utf-8');

  push(chunk: Buffer | string): string[] {
    this.text += typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    const out: string[] = [];
    let consumed = 0;
    for (let i = this.scanned; i < this.text.length; i++) {
      const c = this.text[i];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
        continue;
      }
      if (c === '"') {
        if (this.depth > 0) this.inString = true;
      } else if (c === '{') {
        if (this.depth === 0) this.start = i;
        this.depth++;
      } else if (c === '}' && this.depth > 0) {
        this.depth--;
        if (this.depth === 0) {
          out.push(this.text.slice(this.start, i + 1));
          consumed = i + 1;
          this.start = -1;
        }
      }
    }
    if (this.depth === 0) {
      // Nothing open: whatever lies between objects (newlines) is noise.
      this.text = '';
      this.scanned = 0;
    } else {
      this.text = this.text.slice(Math.max(consumed, this.start));
      this.start = 0;
      this.scanned = this.text.length;
    }
    return out;
  }
}

// Docker stamps each line with RFC3339Nano (`2024-05-01T10:00:00.123456789Z`) and one space.
const TIMESTAMP = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) /;

/** Docker's timestamp at the start of `text` and the length of it with its space; null when absent. */
export function leadingTimestamp(text: string): { time: string; length: number } | null {
  const m = TIMESTAMP.exec(text);
  if (!m?.[1]) return null;
  return { time: m[1], length: m[0].length };
}

interface Carry {
  parts: Buffer[];
  /** The stamp of the message the carried bytes began; unused for raw output. */
  time: string;
  raw: boolean;
}

/**
 * Turns log output fetched with `timestamps=true` into lines. Multiplexed frames each hold one log
 * message starting with its timestamp; Docker cuts messages longer than 16 KiB into several frames
 * without a trailing newline, each stamped again, so a continuation's stamp is dropped and the first
 * stamp kept. Raw (TTY) output has no frames, so chunk boundaries are arbitrary and each line's
 * stamp is read where the line starts. Bytes are joined before decoding so a UTF-8 sequence cut by
 * a frame or chunk boundary survives.
 */
export class LogLineSplitter {
  private readonly carry: Record<StreamKind, Carry | null> = { stdout: null, stderr: null };
  private readonly fallbackTime: () => string;

  constructor(fallbackTime: () => string = () => new Date().toISOString()) {
    this.fallbackTime = fallbackTime;
  }

  /** One message from a multiplexed stream. */
  pushFrame(frame: Frame): LogLine[] {
    let payload = frame.payload;
    // The stamp is ASCII, so latin1 maps its bytes to characters one to one.
    const stamp = leadingTimestamp(payload.subarray(0, 40).toString('latin1'));
    if (stamp) payload = payload.subarray(stamp.length);
    const open = this.carry[frame.stream];
    if (open) {
      open.parts.push(payload);
    } else {
      this.carry[frame.stream] = { parts: [payload], time: stamp?.time ?? this.fallbackTime(), raw: false };
    }
    return this.drain(frame.stream);
  }

  /** A chunk of raw (TTY) output, where every line starts with its stamp. */
  pushRaw(chunk: Buffer): LogLine[] {
    const open = this.carry.stdout;
    if (open) open.parts.push(chunk);
    else this.carry.stdout = { parts: [chunk], time: '', raw: true };
    return this.drain('stdout');
  }

  /** Whatever is left without a final newline, when the stream ends. */
  end(): LogLine[] {
    const out: LogLine[] = [];
    for (const stream of ['stdout', 'stderr'] as const) {
      const open = this.carry[stream];
      this.carry[stream] = null;
      if (!open) continue;
      const buf = Buffer.concat(open.parts);
      if (buf.length > 0) out.push(this.line(stream, buf, open));
    }
    return out;
  }

  private drain(stream: StreamKind): LogLine[] {
    const open = this.carry[stream];
    if (!open) return [];
    const buf = open.parts.length === 1 ? open.parts[0]! : Buffer.concat(open.parts);
    const out: LogLine[] = [];
    let start = 0;
    let nl: number;
    while ((nl = buf.indexOf(0x0a, start)) !== -1) {
      // Several lines in one frame share the frame's stamp; raw lines carry their own.
      out.push(this.line(stream, buf.subarray(start, nl), open));
      start = nl + 1;
    }
    if (start >= buf.length) this.carry[stream] = null;
    else open.parts = [buf.subarray(start)];
    return out;
  }

  private line(stream: StreamKind, bytes: Buffer, carry: Carry): LogLine {
    let text = bytes.toString('utf8');
    // A TTY turns \n into \r\n.
    if (carry.raw && text.endsWith('\r')) text = text.slice(0, -1);
    if (!carry.raw) return { stream, time: carry.time, text };
    const stamp = leadingTimestamp(text);
    if (stamp) return { stream, time: stamp.time, text: text.slice(stamp.length) };
    return { stream, time: this.fallbackTime(), text };
  }
}

/** Parses the exit code out of the list API's `Status` text, e.g. `Exited (137) 5 minutes ago`. */
export function exitCodeFromStatus(status: string): number | null {
  const m = /^Exited \((-?\d+)\)/.exec(status);
  return m?.[1] !== undefined ? Number(m[1]) : null;
}

export { nanosToDockerTimestamp, toDockerTimestamp } from '../model/timestamps.js';
