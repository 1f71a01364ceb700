/**
 * TCP ports as users see them: `publicIp:externalPort` in the pod view, the same after a server
 * restart and after stop/start; and the proxy serving again after the restart from its rebuilt table.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

interface View {
  status: string;
  connection: { tcp: { port: number; address: string | null }[] };
}

function proxied(port: number, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(`${res.statusCode} ${body}`));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('TCP ports across restarts', () => {
  let dataDir: string;
  let t: TestServer | undefined;

  before(async () => {
    await ensureTestImage();
    dataDir = await mkdtemp(join(tmpdir(), 'berth-tcp-test-'));
  });
  after(async () => {
    await t?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps publicIp:externalPort across a server restart and a stop/start', async () => {
    t = await startTestServer({ dataDir });
    const created = await t.api<{ id: string }>('POST', '/api/v1/pods', { image: TEST_IMAGE, ports: ['22/tcp', '8080/http'], volumeGb: 0, command: ['sh', '-c', 'mkdir -p /www && echo up > /www/index.html && exec httpd -f -p 8080 -h /www'] });
    const id = created.body.id;
    const address = async (server: TestServer): Promise<string> =>
      waitFor('the TCP address', async () => {
        const v = (await server.api<View>('GET', `/api/v1/pods/${id}`)).body;
        return v.status === 'RUNNING' ? (v.connection.tcp[0]?.address ?? undefined) : undefined;
      }, 60_000);
    const first = await address(t);
    assert.match(first, /^127\.0\.0\.1:\d+$/);

    // The server goes away (not terminating its pods) and comes back on the same data dir.
    await t.server.close();
    t = await startTestServer({ dataDir });
    assert.equal(await address(t), first, 'same mapping after a restart');
    const proxyPort = t.server.proxy!.port;
    assert.equal(await waitFor('the proxy after the restart', async () => {
      const r = await proxied(proxyPort, `${id}-8080.localhost`);
      return r.startsWith('200') ? r : undefined;
    }), '200 up\n');

    await t.api('POST', `/api/v1/pods/${id}/stop`);
    await waitFor('the stop', async () => ((await t!.api<View>('GET', `/api/v1/pods/${id}`)).body.status === 'EXITED' ? true : undefined), 30_000);
    const stopped = (await t.api<View>('GET', `/api/v1/pods/${id}`)).body;
    assert.equal(stopped.connection.tcp[0]!.address, null, 'no address while stopped');
    await t.api('POST', `/api/v1/pods/${id}/start`);
    assert.equal(await address(t), first, 'same mapping after stop and start');
  });
});
