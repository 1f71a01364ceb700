/**
 * Pinning the server's certificate, as k3s' secure token does: a join token made by a server with TLS
 * carries the SHA-256 of its certificate, and the agent checks the certificate the server presents
 * against it before anything is sent. A self-signed certificate then works without a CA; a
 * certificate that is not the pinned one is refused whatever CA signed it.
 */
import { isIP } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { Agent } from 'undici';
import { normalFingerprint } from '../model/index.js';

/** The server presented another certificate than the one pinned. */
export class CertificateMismatch extends Error {
  constructor(
    readonly expected: string,
    readonly presented: string,
  ) {
    super(`the server's TLS certificate is not the one the join token pinned (sha256 ${presented}, expected ${expected}): another server is answering, or the server's certificate was changed (then join again with a new token)`);
    this.name = 'CertificateMismatch';
  }
}

/**
 * Opens a TLS connection and hands it over only once the peer's certificate is the pinned one; the
 * handshake is all that crossed before. For any client that can take a connected socket (undici
 * below; a WebSocket client's `createConnection` can wait on it first).
 */
export function connectPinned(host: string, port: number, fingerprint: string, timeoutMs = 30_000): Promise<TLSSocket> {
  const expected = normalFingerprint(fingerprint);
  const hostname = host.replace(/^\[(.*)\]$/, '$1');
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], ...(isIP(hostname) ? {} : { servername: hostname }) });
    const timer = setTimeout(() => socket.destroy(new Error(`no TLS handshake with ${host}:${port} in ${timeoutMs / 1000}s`)), timeoutMs);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const presented = normalFingerprint(socket.getPeerCertificate().fingerprint256 ?? '');
      if (presented !== expected) {
        const err = new CertificateMismatch(expected, presented);
        socket.destroy();
        reject(err);
        return;
      }
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

/** An undici dispatcher whose every connection is pinned to `fingerprint` (https only). */
export function pinnedDispatcher(fingerprint: string): Agent {
  return new Agent({
    connect: (opts, callback) => {
      if (opts.protocol !== 'https:') {
        callback(new Error('the join token pins a TLS certificate: the server must be given as https://'), null);
        return;
      }
      connectPinned(opts.hostname, Number(opts.port) || 443, fingerprint).then(
        (socket) => callback(null, socket),
        (err: Error) => callback(err, null),
      );
    },
  });
}
