/**
 * Just enough HTTP/1.1 for the proxy's fast path: a strict reader of request heads (anything it is
 * not sure of is left to Node's own parser, see fast-path.ts), a reader of the pod's response heads,
 * and a tracker that finds the end of a chunked body without decoding it. Pure functions over
 * strings and buffers, so they are tested on their own.
 */

/** Where the fast path stops looking for the end of a request head; Node's parser answers 431 beyond. */
export const MAX_HEAD_BYTES = 16 * 1024;

/** A request head the fast path can forward as it is, give or take the hop-by-hop lines. */
export interface RequestHead {
  method: string;
  /** Origin-form target: `/path?query`. */
  target: string;
  /** The Host header's value. */
  host: string;
  /** Bytes of body that follow the head (0: none). */
  contentLength: number;
  /** `Connection: close`: the connection ends after this exchange. */
  close: boolean;
  /** The Accept header's value, to answer errors in the form asked for. */
  accept: string;
  /** The X-Forwarded-For values the client sent, joined, or '' when none. */
  forwardedFor: string;
  /**
   * The request line and the header lines to send upstream, each ending in CRLF, without the
   * hop-by-hop and X-Forwarded-* lines and without the blank line that ends the head.
   */
  lines: string;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const ORIGIN_FORM = /^\/[\x21-\x7e]*$/;
/** Control characters other than HTAB, CR and LF: a request head with one goes to Node's parser (400). */
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;
const DIGITS = /^\d{1,15}$/;

/** Hop-by-hop request headers (RFC 9110 §7.6.1) and the X-Forwarded-* the proxy writes itself. */
const DROP_REQUEST = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'proxy-authorization', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);
/** Request headers that send a request to Node's full parser instead (bodies of unknown length, upgrades, 100-continue). */
const SLOW_REQUEST = new Set(['transfer-encoding', 'upgrade', 'expect']);

/** Trims optional whitespace (SP, HTAB) only: String.trim also eats U+00A0, a latin1 byte here. */
export function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 32 || s.charCodeAt(a) === 9)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 32 || s.charCodeAt(b - 1) === 9)) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

function hasToken(list: string, token: string): boolean {
  // Mostly a single value: no array for it.
  if (list.indexOf(',') < 0) return trimOws(list).toLowerCase() === token;
  for (const part of list.split(',')) if (trimOws(part).toLowerCase() === token) return true;
  return false;
}

/**
 * No bare CR or LF in the line [at, end): a head is CRLF lines, and a lone CR or LF is where two
 * parsers could disagree on where a header ends.
 */
function plainLine(head: string, at: number, end: number): boolean {
  const cr = head.indexOf('\r', at);
  const lf = head.indexOf('\n', at);
  return (cr < 0 || cr >= end) && (lf < 0 || lf > end);
}

/** A header name and its colon, at a position: `NAME.lastIndex = at; NAME.test(head)`. */
const NAME = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+:/y;

/** A table of the name lengths worth a closer look, so most header lines cost no lowercasing. */
function lengthTable(names: Iterable<string>): Uint8Array {
  const t = new Uint8Array(32);
  for (const n of names) t[n.length] = 1;
  return t;
}

const REQUEST_NAMES = lengthTable([...DROP_REQUEST, ...SLOW_REQUEST, 'host', 'content-length', 'accept']);

/**
 * The head without some of its lines, each line ending in CRLF. `drops` holds [from, to) ranges,
 * ascending, each a line with the CRLF before it (the first line is never dropped).
 */
function keepLines(head: string, drops: number[]): string {
  if (drops.length === 0) return head + '\r\n';
  let out = '';
  let from = 0;
  for (let i = 0; i < drops.length; i += 2) {
    out += head.slice(from, drops[i]);
    from = drops[i + 1]!;
  }
  return out + head.slice(from) + '\r\n';
}

/**
 * Reads a request head (latin1, without its final CRLFCRLF). Undefined means "not for the fast
 * path": a version other than 1.1, a target that is not origin-form, a body of unknown length,
 * an upgrade, Expect, a missing or doubled Host or Content-Length, or anything malformed; Node's
 * parser then has the whole connection and answers as it always has.
 */
export function parseRequestHead(head: string): RequestHead | undefined {
  if (CONTROL.test(head)) return undefined;
  const n = head.length;
  const lineEnd = head.indexOf('\r\n');
  if (!plainLine(head, 0, lineEnd < 0 ? n : lineEnd)) return undefined;
  const requestLine = lineEnd < 0 ? head : head.slice(0, lineEnd);
  const sp1 = requestLine.indexOf(' ');
  const sp2 = requestLine.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || requestLine.indexOf(' ', sp2 + 1) >= 0) return undefined;
  if (requestLine.slice(sp2 + 1) !== 'HTTP/1.1') return undefined;
  const method = requestLine.slice(0, sp1);
  const target = requestLine.slice(sp1 + 1, sp2);
  if (!TOKEN.test(method) || !ORIGIN_FORM.test(target)) return undefined;

  let host: string | undefined;
  let contentLength: number | undefined;
  let close = false;
  let accept = '';
  let forwardedFor = '';
  const drops: number[] = [];
  let at = lineEnd < 0 ? n : lineEnd + 2;
  while (at < n) {
    let end = head.indexOf('\r\n', at);
    if (end < 0) end = n;
    if (!plainLine(head, at, end)) return undefined;
    // A name and a colon, or Node's parser decides (no name, obs-fold, a space before the colon).
    NAME.lastIndex = at;
    if (!NAME.test(head)) return undefined;
    const colon = NAME.lastIndex - 1;
    if (colon >= end) return undefined;
    const length = colon - at;
    if (length < 32 && REQUEST_NAMES[length] === 1) {
      const lower = head.slice(at, colon).toLowerCase();
      // Plain comparisons first: a Set lookup hashes the new string.
      if (lower === 'host') {
        if (host !== undefined) return undefined;
        host = trimOws(head.slice(colon + 1, end));
      } else if (SLOW_REQUEST.has(lower)) return undefined;
      else if (lower === 'content-length') {
        const v = trimOws(head.slice(colon + 1, end));
        if (contentLength !== undefined || !DIGITS.test(v)) return undefined;
        contentLength = Number(v);
      } else if (lower === 'accept') {
        accept = trimOws(head.slice(colon + 1, end));
      } else if (DROP_REQUEST.has(lower)) {
        if (lower === 'connection') {
          const v = head.slice(colon + 1, end);
          if (hasToken(v, 'upgrade')) return undefined;
          if (hasToken(v, 'close')) close = true;
        } else if (lower === 'x-forwarded-for') {
          const v = trimOws(head.slice(colon + 1, end));
          forwardedFor = forwardedFor ? `${forwardedFor}, ${v}` : v;
        }
        drops.push(at - 2, end);
      }
    }
    at = end + 2;
  }
  if (!host) return undefined;
  return { method, target, host, contentLength: contentLength ?? 0, close, accept, forwardedFor, lines: keepLines(head, drops) };
}

/** How the end of a response body is found. */
export type Framing = 'none' | 'length' | 'chunked' | 'close';

/** A response head from the pod, ready for the client. */
export interface ResponseHead {
  status: number;
  framing: Framing;
  /** Body bytes for framing 'length'. */
  contentLength: number;
  /** The pod will close the connection after this response: do not pool it. */
  upstreamCloses: boolean;
  /**
   * The status line (always HTTP/1.1) and header lines for the client, each ending in CRLF, without
   * the hop-by-hop lines and without the blank line that ends the head.
   */
  lines: string;
}

/** Hop-by-hop response headers, never passed to the client. */
const DROP_RESPONSE = new Set(['connection', 'keep-alive', 'proxy-connection', 'trailer', 'upgrade']);
const RESPONSE_NAMES = lengthTable([...DROP_RESPONSE, 'content-length', 'transfer-encoding']);
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: [^\r\n]*)?$/;

/**
 * Reads a response head (latin1, without its final CRLFCRLF). Throws an Error saying what is wrong
 * when the pod's answer cannot be framed safely (the proxy then answers 502).
 */
export function parseResponseHead(head: string, requestMethod: string): ResponseHead {
  const n = head.length;
  const lineEnd = head.indexOf('\r\n');
  const statusLine = lineEnd < 0 ? head : head.slice(0, lineEnd);
  const m = STATUS_LINE.exec(statusLine);
  if (!m) throw new Error(`not an HTTP/1.x status line: ${JSON.stringify(statusLine.slice(0, 80))}`);
  const http10 = m[1] === '0';
  const status = Number(m[2]);
  let contentLength: number | undefined;
  let transferEncoding: string | undefined;
  let connection = '';
  const drops: number[] = [];
  const lengthLines: number[] = [];
  let at = lineEnd < 0 ? n : lineEnd + 2;
  while (at < n) {
    let end = head.indexOf('\r\n', at);
    if (end < 0) end = n;
    if (!plainLine(head, at, end)) throw new Error('the response head has a bare CR or LF');
    NAME.lastIndex = at;
    if (!NAME.test(head) || NAME.lastIndex - 1 >= end) throw new Error(`a response header line is not "name: value": ${JSON.stringify(head.slice(at, Math.min(end, at + 40)))}`);
    const colon = NAME.lastIndex - 1;
    const length = colon - at;
    if (length < 32 && RESPONSE_NAMES[length] === 1) {
      const lower = head.slice(at, colon).toLowerCase();
      if (lower === 'content-length') {
        // `5, 5` (a list of equal values) is tolerated as RFC 9110 §8.6 allows; different values are not.
        const value = head.slice(colon + 1, end);
        for (const part of value.indexOf(',') < 0 ? [value] : value.split(',')) {
          const v = trimOws(part);
          if (!DIGITS.test(v) || (contentLength !== undefined && contentLength !== Number(v))) throw new Error('the response has an invalid or conflicting Content-Length');
          contentLength = Number(v);
        }
        lengthLines.push(at - 2, end);
      } else if (lower === 'transfer-encoding') {
        const v = trimOws(head.slice(colon + 1, end));
        transferEncoding = transferEncoding ? `${transferEncoding}, ${v}` : v;
      } else if (lower === 'connection') {
        connection = connection ? `${connection},${head.slice(colon + 1, end)}` : head.slice(colon + 1, end);
        drops.push(at - 2, end);
      } else if (DROP_RESPONSE.has(lower)) drops.push(at - 2, end);
    }
    at = end + 2;
  }
  const upstreamCloses = http10 ? !hasToken(connection, 'keep-alive') : hasToken(connection, 'close');
  let framing: Framing;
  if (requestMethod === 'HEAD' || status < 200 || status === 204 || status === 304) framing = 'none';
  else if (transferEncoding !== undefined) {
    const codings = transferEncoding.split(',');
    framing = trimOws(codings[codings.length - 1]!).toLowerCase() === 'chunked' ? 'chunked' : 'close';
  } else if (contentLength !== undefined) framing = 'length';
  else framing = 'close';
  // With Transfer-Encoding, a Content-Length is wrong and is not passed on (RFC 9112 §6.3).
  if (transferEncoding !== undefined && lengthLines.length > 0) {
    drops.push(...lengthLines);
    sortRanges(drops);
  }
  const lines = keepLines(head, drops);
  return { status, framing, contentLength: contentLength ?? 0, upstreamCloses: upstreamCloses || framing === 'close', lines: http10 ? `HTTP/1.1${lines.slice(8)}` : lines };
}

/** Sorts [from, to) pairs by `from`. */
function sortRanges(flat: number[]): void {
  const pairs: [number, number][] = [];
  for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i]!, flat[i + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  flat.length = 0;
  for (const [a, b] of pairs) flat.push(a, b);
}

const enum Chunk {
  Size,
  Extension,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  Trailer,
  TrailerLf,
  FinalLf,
  Done,
}

/**
 * Finds where a chunked body ends while its bytes pass through untouched: a state machine over
 * chunk sizes, extensions and trailers that skips the data itself.
 */
export class ChunkedEnd {
  private state = Chunk.Size;
  private size = 0;
  private digits = 0;
  private remaining = 0;

  /**
   * Reads `buf` from `start`. Returns the index just past the body's last byte when the body ends
   * in this buffer, -1 when it goes on; throws on a malformed body.
   */
  feed(buf: Buffer, start = 0): number {
    let i = start;
    const n = buf.length;
    while (i < n) {
      switch (this.state) {
        case Chunk.Data: {
          const take = Math.min(this.remaining, n - i);
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) this.state = Chunk.DataCr;
          continue;
        }
        case Chunk.Size: {
          const c = buf[i]!;
          const v = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
          if (v >= 0) {
            if (++this.digits > 12) throw new Error('a chunk size is too large');
            this.size = this.size * 16 + v;
          } else if (this.digits === 0) throw new Error('a chunk size is missing');
          else if (c === 13) this.state = Chunk.SizeLf;
          else if (c === 59 || c === 32 || c === 9) this.state = Chunk.Extension;
          else throw new Error('a chunk size is malformed');
          break;
        }
        case Chunk.Extension:
          if (buf[i] === 13) this.state = Chunk.SizeLf;
          else if (buf[i] === 10) throw new Error('a chunk extension has a bare LF');
          break;
        case Chunk.SizeLf:
          if (buf[i] !== 10) throw new Error('a chunk size line lacks its LF');
          if (this.size === 0) this.state = Chunk.TrailerStart;
          else {
            this.remaining = this.size;
            this.state = Chunk.Data;
          }
          this.size = 0;
          this.digits = 0;
          break;
        case Chunk.DataCr:
          if (buf[i] !== 13) throw new Error('chunk data overruns its size');
          this.state = Chunk.DataLf;
          break;
        case Chunk.DataLf:
          if (buf[i] !== 10) throw new Error('chunk data lacks its CRLF');
          this.state = Chunk.Size;
          break;
        case Chunk.TrailerStart:
          this.state = buf[i] === 13 ? Chunk.FinalLf : Chunk.Trailer;
          break;
        case Chunk.Trailer:
          if (buf[i] === 13) this.state = Chunk.TrailerLf;
          break;
        case Chunk.TrailerLf:
          if (buf[i] !== 10) throw new Error('a trailer line lacks its LF');
          this.state = Chunk.TrailerStart;
          break;
        case Chunk.FinalLf:
          if (buf[i] !== 10) throw new Error('the last chunk lacks its final LF');
          this.state = Chunk.Done;
          return i + 1;
        case Chunk.Done:
          return i;
      }
      i++;
    }
    return this.state === Chunk.Done ? i : -1;
  }
}
