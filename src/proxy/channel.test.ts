import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { NodeAccess } from '../control/agent-protocol.js';
import { BerthError, type InstanceId } from '../model/index.js';
import { ChannelRelay, dialRelay, relayAnswer, relayReady } from './channel.js';
import type { Upstream } from './routes.js';

/** A NodeAccess whose connect() reaches a port on this machine, as the in-process agent's reaches the pod. */
const loopbackAccess = (): NodeAccess =>
  ({
    connect: (_id: InstanceId, port: number) =>
      new Promise((resolve, reject) => {
        const s = connect(port, '127.0.0.1');
        s.once('connect', () => resolve(s));
        s.once('error', (err: NodeJS.ErrnoException) => reject(new BerthError('CONFLICT', err.code === 'ECONNREFUSED' ? `nothing listens on port ${port} in the pod` : err.message, { cause: err })));
      }),
  }) as unknown as NodeAccess;

const upstream = (port: number): Upstream => ({ instanceId: 'abcdefghijklmn-0' as InstanceId, origin: `http://abcdefghijklmn-0.channel:${port}`, via: 'channel', host: 'node1', port });

describe('the channel relay', () => {
  let relay: ChannelRelay;
  let echo: Server;
  let echoPort = 0;

  before(async () => {
    echo = createServer((s: Socket) => s.pipe(s));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    echoPort = (echo.address() as { port: number }).port;
    relay = await ChannelRelay.start(() => loopbackAccess(), pino({ level: 'silent' }));
  });
  after(async () => {
    await relay.close();
    echo.close();
  });

  it('joins a dialled socket to the connection NodeAccess opens, bytes sent before the answer included', async () => {
    const s = dialRelay(relay.address, upstream(echoPort));
    s.write('early ');
    await relayReady(s);
    s.write('and late');
    let got = '';
    s.setEncoding('latin1');
    await new Promise<void>((resolve) => {
      s.on('data', (d: string) => {
        got += d;
        if (got === 'early and late') resolve();
      });
      s.resume(); // relayReady leaves the socket paused for its reader
    });
    assert.equal(relay.open, 1);
    s.destroy();
    for (let i = 0; i < 100 && relay.open > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(relay.open, 0, 'closing the socket closes the connection into the pod');
  });

  it("answers a failed connect with its errno, as a direct connection's", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const s = dialRelay(relay.address, upstream(port));
    await assert.rejects(relayReady(s), (err: Error & { code?: string }) => err.code === 'ECONNREFUSED' && /nothing listens on port/.test(err.message));
    s.destroy();
  });

  it('closes a connection with the wrong secret without a word', async () => {
    const s = dialRelay({ ...relay.address, secret: 'not-the-secret' }, upstream(echoPort));
    await assert.rejects(relayReady(s), (err: Error & { code?: string }) => err.code === 'ECONNRESET');
    assert.equal(relay.open, 0);
  });

  it('reads the answer line in pieces', () => {
    assert.equal(relayAnswer('o'), undefined);
    assert.deepEqual(relayAnswer('ok\nHTTP'), { ok: true, end: 3 });
    const failed = relayAnswer('err ECONNREFUSED nothing listens\n');
    assert.ok(failed && !failed.ok && (failed.err as Error & { code: string }).code === 'ECONNREFUSED');
  });
});
