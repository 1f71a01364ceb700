import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { sseComment, sseFrame, SseStream, type SseOptions } from './sse.js';

describe('sseFrame', () => {
  it('writes id, event and data in that order, ending with a blank line', () => {
    assert.equal(sseFrame({ event: 'pod', id: 7, data: { a: 1 } }), 'id: 7\nevent: pod\ndata: {"a":1}\n\n');
    assert.equal(sseFrame({ id: '2024-01-01T00:00:00Z/000000000001', data: { line: 'x' } }), 'id: 2024-01-01T00:00:00Z/000000000001\ndata: {"line":"x"}\n\n');
    assert.equal(sseFrame({ event: 'deployment_info', data: { eventType: 'deployment_info' } }), 'event: deployment_info\ndata: {"eventType":"deployment_info"}\n\n');
  });

  it('gives each line of text data its own data: line, whatever the line ending', () => {
    assert.equal(sseFrame({ data: 'one\ntwo\r\nthree\rfour' }), 'data: one\ndata: two\ndata: three\ndata: four\n\n');
    assert.equal(sseFrame({ data: '' }), 'data: \n\n');
    assert.equal(sseFrame({ data: 'end\n' }), 'data: end\ndata: \n\n');
  });

  it('sends a JSON string with a newline inside on one line', () => {
    assert.equal(sseFrame({ data: { text: 'a\nb' } }), 'data: {"text":"a\\nb"}\n\n');
  });
});

describe('sseComment', () => {
  it('writes a named comment, or a bare colon', () => {
    assert.equal(sseComment('ping'), ': ping\n\n');
    assert.equal(sseComment(''), ':\n\n');
  });
});

describe('SseStream', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    server = undefined;
  });

  /** A loopback server that opens a stream per request and hands it to the test. */
  async function serve(opts: SseOptions): Promise<{ streams: SseStream[]; get: () => Promise<IncomingMessage> }> {
    const streams: SseStream[] = [];
    server = createServer((_req, res) => void streams.push(new SseStream(res, opts)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const get = async (): Promise<IncomingMessage> => {
      const req = request({ host: '127.0.0.1', port, path: '/', headers: { accept: 'text/event-stream' } });
      req.end();
      const [res] = (await once(req, 'response')) as [IncomingMessage];
      res.setEncoding('utf8');
      return res;
    };
    return { streams, get };
  }

  /** Everything the response has brought so far, and a wait until some text has come. */
  function reader(res: IncomingMessage): { seen: () => string; until: (text: string) => Promise<string> } {
    let text = '';
    res.on('data', (chunk: string) => {
      text += chunk;
      res.emit('seen');
    });
    const until = async (want: string): Promise<string> => {
      while (!text.includes(want)) await once(res, 'seen');
      return text;
    };
    return { seen: () => text, until };
  }

  it('writes the head, a hello comment and events as they are sent', async () => {
    const { streams, get } = await serve({ hello: 'berth' });
    const res = await get();
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.equal(res.headers['cache-control'], 'no-cache');
    assert.equal(res.headers['x-accel-buffering'], 'no');
    const read = reader(res);
    await read.until(': berth\n\n');
    streams[0]!.send({ event: 'log', data: 'first\nsecond' });
    streams[0]!.send({ event: 'pod', id: 3, data: { id: 'p' } });
    const text = await read.until('id: 3\nevent: pod\ndata: {"id":"p"}\n\n');
    assert.equal(text, ': berth\n\nevent: log\ndata: first\ndata: second\n\nid: 3\nevent: pod\ndata: {"id":"p"}\n\n');
    streams[0]!.end();
    if (!res.readableEnded) await once(res, 'end');
  });

  it('sends the head at once without a hello, in the content type asked for', async () => {
    const { get } = await serve({ contentType: 'text/event-stream' });
    const res = await get();
    assert.equal(res.headers['content-type'], 'text/event-stream');
  });

  it('writes its keep-alive comment while the stream is quiet', async () => {
    const { streams, get } = await serve({ keepAliveMs: 20, keepAlive: '' });
    const res = await get();
    const read = reader(res);
    await read.until(':\n\n:\n\n');
    streams[0]!.send({ data: 'after' });
    await read.until('data: after\n\n');
    assert.match(read.seen(), /^(:\n\n)+data: after\n\n/);
  });

  it('is closed once the client goes away, and then writes nothing', async () => {
    const { streams, get } = await serve({ keepAliveMs: 10 });
    const res = await get();
    const stream = streams[0]!;
    assert.equal(stream.closed.aborted, false);
    res.destroy();
    await once(stream.closed, 'abort');
    assert.equal(stream.send({ data: 'late' }), false);
    // The keep-alive stopped with it: no write after the close raises.
    await new Promise((r) => setTimeout(r, 30));
  });

  it('is closed after end(), and a send then writes nothing', async () => {
    const { streams, get } = await serve({});
    const res = await get();
    const stream = streams[0]!;
    res.resume();
    stream.end();
    assert.equal(stream.send({ data: 'late' }), false);
    await once(res, 'end');
    if (!stream.closed.aborted) await once(stream.closed, 'abort');
  });
});
