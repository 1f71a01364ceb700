/**
 * The node channel's byte pipe: a WebSocket as the Duplex HTTP/2 runs over, and the pings that tell
 * either end the other is gone. Both ends use it (the agent as the WebSocket client, the API as its
 * server). Written for throughput rather than taken from `ws`'s createWebSocketStream: HTTP/2 hands
 * over a frame's header and its data as separate buffers, and one message per buffer would double
 * the messages; here what the session writes in one go is one message.
 */
import { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/** Below this many bytes queued on the socket a write is taken at once; above, the writer waits for it to drain. */
const SEND_HIGH_WATER = 4 * 2 ** 20;

export function webSocketDuplex(ws: WebSocket): Duplex {
  const send = (data: Buffer, cb: (err?: Error | null) => void): void => {
    if (ws.readyState !== ws.OPEN) return cb(new Error('the node channel is closed'));
    if (ws.bufferedAmount < SEND_HIGH_WATER) {
      ws.send(data, { binary: true, compress: false });
      cb();
    } else {
      ws.send(data, { binary: true, compress: false }, (err) => cb(err ?? null));
    }
  };
  const duplex = new Duplex({
    allowHalfOpen: false,
    readableHighWaterMark: 4 * 2 ** 20,
    writableHighWaterMark: 1 * 2 ** 20,
    read() {
      if (ws.isPaused) ws.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      send(chunk, cb);
    },
    writev(chunks, cb) {
      send(chunks.length === 1 ? (chunks[0]!.chunk as Buffer) : Buffer.concat(chunks.map((c) => c.chunk as Buffer)), cb);
    },
    final(cb) {
      ws.close(1000);
      cb();
    },
    destroy(err, cb) {
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.terminate();
      cb(err);
    },
  });
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) return;
    if (!duplex.push(data)) ws.pause();
  });
  ws.once('close', () => {
    duplex.push(null);
    duplex.destroy();
  });
  ws.on('error', (err) => duplex.destroy(err));
  // A failed socket is seen by the session on it as its close; the error itself must not go unheard.
  duplex.on('error', () => undefined);
  return duplex;
}

/**
 * Pings every `intervalMs`; a socket that has answered nothing (no pong, no message) for two
 * intervals is terminated, so a cut network ends in a `close` rather than a channel that hangs.
 * Returns the function that stops it.
 */
export function keepAlive(ws: WebSocket, intervalMs: number): () => void {
  let heard = Date.now();
  const alive = (): void => {
    heard = Date.now();
  };
  ws.on('pong', alive);
  ws.on('message', alive);
  const timer = setInterval(() => {
    if (Date.now() - heard > 2 * intervalMs) return void ws.terminate();
    if (ws.readyState === ws.OPEN) ws.ping();
  }, intervalMs);
  timer.unref();
  const stop = (): void => {
    clearInterval(timer);
    ws.off('pong', alive);
    ws.off('message', alive);
  };
  ws.once('close', stop);
  return stop;
}
