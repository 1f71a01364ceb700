/**
 * Pods that cannot reach each other across teams nor the node: real pods, a real wget from inside
 * them. Each owner's pods are on their own Docker network (`berth-t-<owner>`); the node's INPUT rules
 * keep pods off the node's services (the API listens on 0.0.0.0 here, so the gateway address would
 * reach it); the proxy still reaches a private port with the key.
 */
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

const docker = new Docker();

/** A WebSocket upgrade through the proxy: the HTTP status it was answered with, or 101, or 0 when the connection closed with no answer. */
function upgrade(port: number, host: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      resolve(101);
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** One request to the proxy with the given Host, resolving to the status. */
function proxied(port: number, host: string, key?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host, ...(key ? { authorization: `Bearer ${key}` } : {}) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('pod network isolation', () => {
  let t: TestServer;
  const keys: Record<string, string> = {};
  const pods: Record<string, string> = {};
  let apiPort: number;

  const exec = async (pod: string, command: string[], key: string): Promise<{ exitCode: number; stdout: string; stderr: string }> => {
    const res = await t.api<{ exitCode: number; stdout: string; stderr: string }>('POST', `/api/v1/pods/${pod}/exec`, { command, timeoutSeconds: 30 }, key);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };
  // busybox's own -T crashes the Debian static build; timeout(1) bounds it instead.
  const wget = (pod: string, key: string, url: string) => exec(pod, ['timeout', '4', 'wget', '-q', '-O', '-', url], key);
  const addressOf = async (pod: string): Promise<{ ip: string; gateway: string; network: string }> => {
    const [c] = await docker.listContainers({ filters: { label: [`berth.pod=${pod}`] } });
    const nets = (await docker.getContainer(c!.Id).inspect()).NetworkSettings.Networks;
    const [network, n] = Object.entries(nets)[0]!;
    return { ip: n.IPAddress, gateway: n.Gateway, network };
  };

  before(async () => {
    await ensureTestImage(docker);
    // The API on every address, as a real server: a pod must still not reach it.
    t = await startTestServer({ host: '0.0.0.0', ssh: false, proxyWorkers: 0 });
    apiPort = t.server.port;
    for (const [name, owner] of [['a1', 'team-a'], ['a2', 'team-a'], ['b1', 'team-b']] as const) {
      const made = await t.api<{ key: string }>('POST', '/api/v1/keys', { name, owner });
      keys[name] = made.body.key;
    }
    const serve = ['sh', '-c', 'echo hello-from-a > /www/index.html && exec httpd -f -p 8080 -h /www'];
    for (const [name, command] of [['a1', serve], ['a2', ['sleep', '3600']], ['b1', ['sleep', '3600']]] as const) {
      const made = await t.api<{ id: string }>('POST', '/api/v1/pods', { name, image: TEST_IMAGE, command, ports: ['8080/http:private'], volumeGb: 0 }, keys[name]);
      assert.equal(made.status, 201, JSON.stringify(made.body));
      pods[name] = made.body.id;
    }
    for (const name of Object.keys(pods)) {
      await waitFor(`${name} to run`, async () => ((await t.api<{ status: string }>('GET', `/api/v1/pods/${pods[name]}`, undefined, keys[name])).body.status === 'RUNNING' ? true : undefined), 60_000);
    }
  });
  after(async () => {
    await t?.close();
  });

  it("puts each team's pods on the team's own network", async () => {
    const [a1, a2, b1] = await Promise.all([addressOf(pods.a1!), addressOf(pods.a2!), addressOf(pods.b1!)]);
    assert.equal(a1.network, 'berth-t-team-a');
    assert.equal(a2.network, 'berth-t-team-a');
    assert.equal(b1.network, 'berth-t-team-b');
  });

  it("reaches a pod of the same team by IP, not another team's", async () => {
    const { ip } = await addressOf(pods.a1!);
    const same = await waitFor('a1 to serve', async () => {
      const r = await wget(pods.a2!, keys.a2!, `http://${ip}:8080/`);
      return r.exitCode === 0 ? r : undefined;
    });
    assert.match(same.stdout, /hello-from-a/);
    const other = await wget(pods.b1!, keys.b1!, `http://${ip}:8080/`);
    assert.notEqual(other.exitCode, 0, 'team b reached team a by IP');
  });

  it("cannot reach the node's services: the API on the gateway address nor on the node's other addresses", async () => {
    const { gateway } = await addressOf(pods.b1!);
    // The API does answer on the gateway address from the node itself.
    assert.equal((await fetch(`http://${gateway}:${apiPort}/healthz`)).status, 200);
    const fromPod = await wget(pods.b1!, keys.b1!, `http://${gateway}:${apiPort}/healthz`);
    assert.notEqual(fromPod.exitCode, 0, 'a pod reached the API on its gateway');
    const nodeIps = Object.values(networkInterfaces()).flat().filter((i) => i && i.family === 'IPv4' && !i.internal).map((i) => i!.address);
    for (const ip of nodeIps) {
      const r = await wget(pods.b1!, keys.b1!, `http://${ip}:${apiPort}/healthz`);
      assert.notEqual(r.exitCode, 0, `a pod reached the API at ${ip}`);
    }
    const loopback = await wget(pods.b1!, keys.b1!, `http://127.0.0.1:${apiPort}/healthz`);
    assert.notEqual(loopback.exitCode, 0);
  });

  it("still serves a pod's private port through the proxy, with its owner's key only", async () => {
    const port = t.server.proxy!.port;
    const host = `${pods.a1}-8080.localhost:${port}`;
    assert.equal(await waitFor('the proxy to reach a1', async () => ((await proxied(port, host, keys.a1)) === 200 ? 200 : undefined), 30_000), 200);
    assert.equal(await proxied(port, host), 401);
    assert.equal(await upgrade(port, host), 401, 'a refused WebSocket upgrade is answered, not closed');
    assert.notEqual(await proxied(port, host, keys.b1), 200);
  });
});
