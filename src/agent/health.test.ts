import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { HealthCheckSpec } from '../model/index.js';
import { HealthMonitor, httpCheck, tcpCheck } from './health.js';

const check = (over: Partial<HealthCheckSpec>): HealthCheckSpec => ({
  kind: 'exec',
  endpoint: null,
  path: null,
  scheme: 'HTTP',
  argv: ['true'],
  gracePeriodSeconds: 0,
  intervalSeconds: 1,
  timeoutSeconds: 0,
  maxConsecutiveFailures: 3,
  delaySeconds: 0,
  ...over,
});

const until = async (what: string, ok: () => boolean, ms = 5_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('httpCheck and tcpCheck', () => {
  let http: Server;
  let port = 0;
  before(async () => {
    http = createHttpServer((req, res) => {
      if (req.url === '/ok') return res.writeHead(200).end('fine');
      if (req.url === '/moved') return res.writeHead(302, { location: '/ok' }).end();
      if (req.url === '/hang') return; // never answers
      res.writeHead(503).end('down');
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    port = (http.address() as AddressInfo).port;
  });
  after(() => {
    http.closeAllConnections();
    http.close();
  });

  it('counts 200-399 as healthy and anything else, a refusal or a timeout as not', async () => {
    const addr = { host: '127.0.0.1', port };
    assert.equal(await httpCheck('HTTP', addr, '/ok', 1_000), true);
    assert.equal(await httpCheck('HTTP', addr, '/moved', 1_000), true, 'a redirect is healthy, as in Marathon');
    assert.equal(await httpCheck('HTTP', addr, '/broken', 1_000), false);
    assert.equal(await httpCheck('HTTP', addr, '/hang', 200), false);
    const closed = await unusedPort();
    assert.equal(await httpCheck('HTTP', { host: '127.0.0.1', port: closed }, '/', 1_000), false);
  });

  it('tcp: a connection accepted is healthy', async () => {
    assert.equal(await tcpCheck({ host: '127.0.0.1', port }, 1_000), true);
    assert.equal(await tcpCheck({ host: '127.0.0.1', port: await unusedPort() }, 1_000), false);
  });
});

describe('HealthMonitor', () => {
  it('replaces after maxConsecutiveFailures failures in a row, reporting each failure', async () => {
    let changes = 0;
    let condemned: [string, number] | undefined;
    const m = new HealthMonitor({
      targets: [{ container: 'web', containerId: 'c1', check: check({ maxConsecutiveFailures: 2 }) }],
      exec: async () => ({ exitCode: 1 }),
      startedAtMs: Date.now(),
      onChange: () => changes++,
      onUnhealthy: (c, n) => (condemned = [c, n]),
    });
    await until('condemned', () => condemned !== undefined);
    assert.deepEqual(condemned, ['web', 2]);
    assert.equal(changes, 1, 'the first failure was reported; the second condemned the instance');
    assert.deepEqual(m.verdict('c1'), { healthy: false, failures: 2 });
    assert.equal(m.active, false, 'the monitor stops once it condemned the instance');
    assert.equal(m.verdict('other'), undefined);
  });

  it('ignores failures inside the grace period until the first success, then counts them', async () => {
    let ok = false;
    let condemned = false;
    const m = new HealthMonitor({
      targets: [{ container: 'web', containerId: 'c1', check: check({ gracePeriodSeconds: 600, maxConsecutiveFailures: 1 }) }],
      exec: async () => ({ exitCode: ok ? 0 : 1 }),
      startedAtMs: Date.now(),
      onChange: () => undefined,
      onUnhealthy: () => (condemned = true),
    });
    try {
      await new Promise((r) => setTimeout(r, 1_300));
      assert.deepEqual(m.verdict('c1'), { healthy: null, failures: 0 }, 'two failures inside the grace period count for nothing');
      ok = true;
      await until('healthy', () => m.verdict('c1')?.healthy === true);
      ok = false;
      await until('condemned after the first success', () => condemned);
    } finally {
      m.stop();
    }
  });

  it('checks a service still starting again soon, not an interval later, while its failures are ignored', async () => {
    let up = false;
    setTimeout(() => (up = true), 300);
    const m = new HealthMonitor({
      targets: [{ container: 'web', containerId: 'c1', check: check({ gracePeriodSeconds: 300, intervalSeconds: 60, timeoutSeconds: 20 }) }],
      exec: async () => ({ exitCode: up ? 0 : 1 }),
      startedAtMs: Date.now(),
      onChange: () => undefined,
      onUnhealthy: () => assert.fail('nothing counted inside the grace period'),
    });
    try {
      // With a 60 s interval, a verdict within the wait shows the retry came sooner.
      await until('healthy', () => m.verdict('c1')?.healthy === true, 10_000);
    } finally {
      m.stop();
    }
  });

  it('an exec check that throws is a failure; a stopped monitor runs no more checks', async () => {
    let calls = 0;
    const m = new HealthMonitor({
      targets: [{ container: 'web', containerId: 'c1', check: check({ maxConsecutiveFailures: 0 }) }],
      exec: async () => {
        calls++;
        throw new Error('no such container');
      },
      startedAtMs: Date.now(),
      onChange: () => undefined,
      onUnhealthy: () => assert.fail('maxConsecutiveFailures 0 never condemns'),
    });
    await until('a failure', () => (m.verdict('c1')?.failures ?? 0) >= 1);
    m.stop();
    const seen = calls;
    await new Promise((r) => setTimeout(r, 1_200));
    assert.equal(calls, seen);
  });
});

function unusedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createTcpServer();
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
}
