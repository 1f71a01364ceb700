import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChunkedEnd, parseRequestHead, parseResponseHead } from './http1.js';

const head = (...lines: string[]): string => lines.join('\r\n');

describe('parseRequestHead', () => {
  it('reads a plain request and keeps its lines for the pod', () => {
    const h = parseRequestHead(head('GET /a?b=1 HTTP/1.1', 'Host: abc-8080.localhost:7780', 'Accept: */*', 'Cookie: x=1'));
    assert.ok(h);
    assert.equal(h.method, 'GET');
    assert.equal(h.target, '/a?b=1');
    assert.equal(h.host, 'abc-8080.localhost:7780');
    assert.equal(h.contentLength, 0);
    assert.equal(h.close, false);
    assert.equal(h.accept, '*/*');
    assert.equal(h.lines, 'GET /a?b=1 HTTP/1.1\r\nHost: abc-8080.localhost:7780\r\nAccept: */*\r\nCookie: x=1\r\n');
  });

  it('drops hop-by-hop and X-Forwarded-* lines, collecting X-Forwarded-For', () => {
    const h = parseRequestHead(
      head('POST / HTTP/1.1', 'host: h', 'Connection: keep-alive, close', 'Keep-Alive: 5', 'TE: trailers', 'X-Forwarded-For: 1.2.3.4', 'x-forwarded-for: 5.6.7.8', 'X-Forwarded-Proto: https', 'Proxy-Authorization: x', 'Content-Length: 12', 'X-Other: y'),
    );
    assert.ok(h);
    assert.equal(h.close, true);
    assert.equal(h.contentLength, 12);
    assert.equal(h.forwardedFor, '1.2.3.4, 5.6.7.8');
    assert.equal(h.lines, 'POST / HTTP/1.1\r\nhost: h\r\nContent-Length: 12\r\nX-Other: y\r\n');
  });

  it('leaves to Node anything it is not sure of', () => {
    const slow = [
      head('GET / HTTP/1.0', 'Host: h'),
      head('GET http://h/ HTTP/1.1', 'Host: h'),
      head('GET * HTTP/1.1', 'Host: h'),
      head('CONNECT h:443 HTTP/1.1', 'Host: h'),
      head('GET / HTTP/1.1'),
      head('GET / HTTP/1.1', 'Host: h', 'Host: i'),
      head('GET / HTTP/1.1', 'Host: h', 'Transfer-Encoding: chunked'),
      head('GET / HTTP/1.1', 'Host: h', 'Upgrade: websocket', 'Connection: Upgrade'),
      head('GET / HTTP/1.1', 'Host: h', 'Connection: upgrade'),
      head('PUT / HTTP/1.1', 'Host: h', 'Expect: 100-continue', 'Content-Length: 3'),
      head('POST / HTTP/1.1', 'Host: h', 'Content-Length: 3', 'Content-Length: 3'),
      head('POST / HTTP/1.1', 'Host: h', 'Content-Length: -3'),
      head('POST / HTTP/1.1', 'Host: h', 'Content-Length: 3x'),
      head('GET / HTTP/1.1', 'Host: h', ' folded: line'),
      head('GET / HTTP/1.1', 'Host: h', 'Bad Name: x'),
      head('GET / HTTP/1.1', 'Host: h', 'no colon'),
      'GET / HTTP/1.1\nHost: h',
      head('GET / HTTP/1.1', 'Host: h\rX: y'),
      head('GET / HTTP/1.1', 'Host: h', 'X: a\x00b'),
      head('GET /a b HTTP/1.1', 'Host: h'),
      head('GET /\x80 HTTP/1.1', 'Host: h'),
      head('G(T / HTTP/1.1', 'Host: h'),
    ];
    for (const text of slow) assert.equal(parseRequestHead(text), undefined, JSON.stringify(text));
  });

  it('trims only spaces and tabs around values', () => {
    const h = parseRequestHead(head('GET / HTTP/1.1', 'Host:\t h \t'));
    assert.equal(h?.host, 'h');
  });
});

describe('parseResponseHead', () => {
  it('frames by Content-Length and drops Connection and Keep-Alive', () => {
    const r = parseResponseHead(head('HTTP/1.1 200 OK', 'Content-Type: text/plain', 'Connection: keep-alive', 'Keep-Alive: timeout=5', 'Content-Length: 19'), 'GET');
    assert.equal(r.status, 200);
    assert.equal(r.framing, 'length');
    assert.equal(r.contentLength, 19);
    assert.equal(r.upstreamCloses, false);
    assert.equal(r.lines, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n');
  });

  it('passes a chunked body on chunked and drops a Content-Length beside it', () => {
    const r = parseResponseHead(head('HTTP/1.1 200 OK', 'Transfer-Encoding: chunked', 'Content-Length: 5'), 'GET');
    assert.equal(r.framing, 'chunked');
    assert.equal(r.lines, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n');
  });

  it('has no body for HEAD, 1xx, 204 and 304, whatever the head says', () => {
    assert.equal(parseResponseHead(head('HTTP/1.1 200 OK', 'Content-Length: 10'), 'HEAD').framing, 'none');
    assert.equal(parseResponseHead(head('HTTP/1.1 204 No Content'), 'GET').framing, 'none');
    assert.equal(parseResponseHead(head('HTTP/1.1 304 Not Modified', 'Transfer-Encoding: chunked'), 'GET').framing, 'none');
    assert.equal(parseResponseHead('HTTP/1.1 103 Early Hints', 'GET').framing, 'none');
  });

  it('reads to the close without a length, and knows when the pod closes', () => {
    const r = parseResponseHead(head('HTTP/1.1 200 OK', 'Content-Type: text/event-stream'), 'GET');
    assert.equal(r.framing, 'close');
    assert.equal(r.upstreamCloses, true);
    assert.equal(parseResponseHead(head('HTTP/1.1 200 OK', 'Connection: close', 'Content-Length: 1'), 'GET').upstreamCloses, true);
    const old = parseResponseHead(head('HTTP/1.0 200 OK', 'Content-Length: 1'), 'GET');
    assert.equal(old.upstreamCloses, true);
    assert.equal(old.lines, 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n');
    assert.equal(parseResponseHead(head('HTTP/1.0 200 OK', 'Connection: Keep-Alive', 'Content-Length: 1'), 'GET').upstreamCloses, false);
    assert.equal(parseResponseHead(head('HTTP/1.1 200 OK', 'Transfer-Encoding: gzip'), 'GET').framing, 'close');
  });

  it('accepts a list of equal lengths and refuses what cannot be framed safely', () => {
    assert.equal(parseResponseHead(head('HTTP/1.1 200 OK', 'Content-Length: 5, 5'), 'GET').contentLength, 5);
    for (const bad of [
      head('HTTP/1.1 200 OK', 'Content-Length: 5', 'Content-Length: 6'),
      head('HTTP/1.1 200 OK', 'Content-Length: five'),
      head('HTTP/2 200', 'Content-Length: 5'),
      head('ICY 200 OK'),
      head('HTTP/1.1 200 OK', 'X: a\nContent-Length: 0'),
      head('HTTP/1.1 200 OK', ' folded'),
    ]) {
      assert.throws(() => parseResponseHead(bad, 'GET'), Error, JSON.stringify(bad));
    }
  });
});

describe('ChunkedEnd', () => {
  const body = Buffer.from('5;name=x\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n');

  it('finds the end in one buffer and leaves what follows', () => {
    const withMore = Buffer.concat([body, Buffer.from('HTTP/1.1 200')]);
    assert.equal(new ChunkedEnd().feed(withMore), body.length);
  });

  it('finds the end byte by byte', () => {
    const c = new ChunkedEnd();
    for (let i = 0; i < body.length - 1; i++) assert.equal(c.feed(body.subarray(i, i + 1)), -1, `at ${i}`);
    assert.equal(c.feed(body.subarray(body.length - 1)), 1);
  });

  it('ends at the last chunk with no trailers', () => {
    assert.equal(new ChunkedEnd().feed(Buffer.from('3\r\nabc\r\n0\r\n\r\n')), 13);
  });

  it('throws on a malformed body', () => {
    for (const bad of ['x\r\n', '3\r\nabcd\r\n', '3\nabc', '\r\n', '3\r\nabc\r\n0\r\n\rx', '1234567890abc\r\n']) {
      assert.throws(() => new ChunkedEnd().feed(Buffer.from(bad)), Error, JSON.stringify(bad));
    }
  });
});
