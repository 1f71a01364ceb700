/**
 * The node channel end to end in one process: a real HTTP server whose upgrades become channels
 * (NodeChannels), a real dialer (NodeChannelDialer) serving a NodeAccess whose calls are recorded,
 * and RemoteNodeAccess calling across. What crosses: errors with their kind, a process's stdin,
 * stdout, stderr, exit code and resize, cancellation both ways, bytes intact, and a channel that
 * comes back after its server does.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { NodeChannelDialer } from '../agent/channel-dial.js';
import type { ExecStream, NodeAccess } from '../control/agent-protocol.js';
import { BerthError, type InstanceId, type NodeId } from '../model/index.js';
import { NodeChannels } from './channel-accept.js';

const log = pino({ level: 'silent' });
const NODE = 'n1' as NodeId;
const INST = 'p-0' as InstanceId;
const LOOPBACK = 'lo-0' as InstanceId;

async function waitUntil(check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** What the node side saw. */
const fileData = randomBytes(300_000);
const seen = { logsEnded: false, resized: '' as string, stdin: '' as string, execClosed: false, written: Buffer.alloc(0), podSocketClosed: false, holes: 0 };

function fakeAccess(podPort: () => number): NodeAccess {
  return {
    async *logs(_i, container) {
      if (container === 'missing') throw new BerthError('NOT_FOUND', 'no container missing', { extra: { container: 'missing' } });
      try {
        for (let n = 0; ; n++) {
          yield { stream: 'stdout' as const, time: new Date().toISOString(), text: `line ${n} ✓` };
          await new Promise((r) => setTimeout(r, 5));
        }
      } finally {
        seen.logsEnded = true;
      }
    },
    async exec(_i, _c, argv) {
      if (argv[0] === 'bad') throw new BerthError('VALIDATION', 'bad argv');
      if (argv[0] === 'crash') throw new Error('docker went away');
      return { exitCode: 3, stdout: argv.join(' '), stderr: '' };
    },
    async openExec(_i, _c, req): Promise<ExecStream> {
      const stdin = new PassThrough();
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let exit!: (code: number) => void;
      const exitCode = new Promise<number>((r) => (exit = r));
      stdin.on('data', (d: Buffer) => {
        seen.stdin += d.toString();
        stdout.write(d.toString().toUpperCase());
        if (!req.tty) stderr.write('err:' + d.toString());
      });
      stdin.on('end', () => {
        stdout.end();
        stderr.end();
        exit(7);
      });
      return { stdin, stdout, stderr, exitCode, resize: async (c, r) => void (seen.resized = `${c}x${r}`), close: () => void (seen.execClosed = true) };
    },
    async connect(_i, port) {
      if (port === 1) throw new BerthError('CONFLICT', 'nothing listens on port 1 in the pod');
      const { connect } = await import('node:net');
      return await new Promise<Socket>((resolve, reject) => {
        const s = connect(podPort(), '127.0.0.1', () => resolve(s));
        s.once('error', reject);
      });
    },
    async readFile(_i, _c, path) {
      if (path === '/none') throw new BerthError('NOT_FOUND', `${path} not found`);
      const data = fileData;
      return { size: data.length, content: Readable.from([data.subarray(0, 1000), data.subarray(1000)]) };
    },
    async writeFile(_i, _c, _p, content, size) {
      const chunks: Buffer[] = [];
      for await (const c of content) chunks.push(c as Buffer);
      seen.written = Buffer.concat(chunks);
      if (seen.written.length !== size) throw new BerthError('VALIDATION', 'short');
    },
    async statFile(_i, _c, path) {
      return { name: path, size: 1, mode: 0o100644, mtimeMs: 0, linkTarget: '' };
    },
    async hostAddress(i) {
      return i === LOOPBACK ? '127.0.0.1' : '172.17.0.1';
    },
    async openToPod() {
      seen.holes++;
      return async () => void seen.holes--;
    },
  };
}

describe('the node channel', () => {
  let http: Server;
  let channels: NodeChannels;
  let dialer: NodeChannelDialer;
  let pod: ReturnType<typeof createTcpServer>;
  let url = '';
  let current: NodeAccess | undefined;
  const agents = {
    setNodeAccess: (_n: NodeId, a: NodeAccess | undefined) => void (current = a),
    dropNodeAccess: (_n: NodeId, a: NodeAccess) => void (current === a ? (current = undefined) : undefined),
  };
  const access = (): NodeAccess => {
    assert.ok(current, 'the channel is open');
    return current;
  };

  const listen = async (port = 0): Promise<void> => {
    channels = new NodeChannels(agents as never, log, { pingMs: 1000 });
    http = createServer();
    http.on('upgrade', (_req, sock, head: Buffer) => channels.accept(sock, head, NODE));
    await new Promise<void>((r) => http.listen(port, '127.0.0.1', r));
    url = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
  };
  const stop = async (): Promise<void> => {
    channels.close();
    http.closeAllConnections();
    await new Promise((r) => http.close(r));
  };

  before(async () => {
    // The pod's TCP server: echoes upper-cased, and says when a connection to it closed.
    pod = createTcpServer((s) => {
      s.on('data', (d) => s.write(d.toString().toUpperCase()));
      s.on('end', () => s.end());
      s.on('close', () => void (seen.podSocketClosed = true));
    });
    await new Promise<void>((r) => pod.listen(0, '127.0.0.1', r));
    await listen();
    dialer = NodeChannelDialer.start({ server: url, token: 't', nodeId: NODE, access: fakeAccess(() => (pod.address() as { port: number }).port), logger: log });
    await dialer.whenConnected();
    await waitUntil(() => current !== undefined);
  });
  after(async () => {
    await dialer.close();
    await stop();
    pod.close();
  });

  it('keeps errors their kind, message and extra members', async () => {
    const bad = await access().exec(INST, undefined, ['bad'], 1000).catch((e: unknown) => e);
    assert.ok(bad instanceof BerthError);
    assert.equal(bad.kind, 'VALIDATION');
    assert.equal(bad.message, 'bad argv');
    const crash = await access().exec(INST, undefined, ['crash'], 1000).catch((e: unknown) => e);
    assert.equal((crash as BerthError).kind, 'RUNTIME');
    const logs = access().logs(INST, 'missing', {})[Symbol.asyncIterator]();
    const missing = await logs.next().catch((e: unknown) => e);
    assert.equal((missing as BerthError).kind, 'NOT_FOUND');
    assert.deepEqual((missing as BerthError).extra, { container: 'missing' });
    const none = await access().readFile(INST, undefined, '/none').catch((e: unknown) => e);
    assert.equal((none as BerthError).kind, 'NOT_FOUND');
    assert.deepEqual(await access().exec(INST, undefined, ['echo', 'ünïcode'], 1000), { exitCode: 3, stdout: 'echo ünïcode', stderr: '' });
    // A command as long as the gateway lets through (48 KiB), of characters that encode long.
    const long = '✓%'.repeat(16 * 1024);
    assert.equal((await access().exec(INST, undefined, ['echo', long], 1000)).stdout, `echo ${long}`);
    assert.equal(await access().hostAddress(INST), '172.17.0.1');
    assert.equal((await access().statFile(INST, undefined, '/x')).mode, 0o100644);
  });

  it('follows logs until the caller goes away, which ends the follow on the node', async () => {
    seen.logsEnded = false;
    const ac = new AbortController();
    const lines: string[] = [];
    for await (const l of access().logs(INST, undefined, { follow: true }, ac.signal)) {
      lines.push(l.text);
      if (lines.length === 5) ac.abort();
    }
    assert.deepEqual(lines.slice(0, 5), ['line 0 ✓', 'line 1 ✓', 'line 2 ✓', 'line 3 ✓', 'line 4 ✓']);
    await waitUntil(() => seen.logsEnded);
  });

  it('carries a process: stdin, stdout, stderr apart, EOF, exit code, resize', async () => {
    seen.stdin = '';
    const e = await access().openExec(INST, undefined, { argv: ['x'], tty: false });
    await e.resize(120, 40);
    assert.equal(seen.resized, '120x40');
    const out: string[] = [];
    const err: string[] = [];
    e.stdout.on('data', (d: Buffer) => out.push(d.toString()));
    e.stderr.on('data', (d: Buffer) => err.push(d.toString()));
    e.stdin.write('hello ');
    e.stdin.end('world');
    assert.equal(await e.exitCode, 7);
    await waitUntil(() => out.join('') === 'HELLO WORLD' && err.join('') === 'err:hello err:world');
    assert.equal(seen.stdin, 'hello world');
  });

  it('closes the process on the node when the caller closes it', async () => {
    seen.execClosed = false;
    const e = await access().openExec(INST, undefined, { argv: ['x'], tty: true });
    e.close();
    await waitUntil(() => seen.execClosed);
    assert.equal(await e.exitCode, -1);
  });

  it('connects into the pod; half-closes and resets cross', async () => {
    const refused = await access().connect(INST, 1).catch((e: unknown) => e);
    assert.equal((refused as BerthError).kind, 'CONFLICT');
    const s = await access().connect(INST, 8080);
    const got: string[] = [];
    s.on('data', (d: Buffer) => got.push(d.toString()));
    s.write('ping');
    await waitUntil(() => got.join('') === 'PING');
    // Our end of writing ends the pod's socket, which ends its own: the stream closes whole.
    const closed = new Promise((r) => s.once('close', r));
    s.end();
    await closed;
    seen.podSocketClosed = false;
    const t = await access().connect(INST, 8080);
    t.destroy();
    await waitUntil(() => seen.podSocketClosed);
  });

  it('moves files both ways intact', async () => {
    const data = fileData;
    const { size, content } = await access().readFile(INST, undefined, '/data');
    assert.equal(size, data.length);
    const chunks: Buffer[] = [];
    for await (const c of content) chunks.push(c as Buffer);
    assert.ok(Buffer.concat(chunks).equals(data));
    const big = randomBytes(20 * 2 ** 20);
    await access().writeFile(INST, undefined, '/f', Readable.from([big.subarray(0, 7), big.subarray(7)]), big.length, 0o644);
    assert.equal(createHash('sha256').update(seen.written).digest('hex'), createHash('sha256').update(big).digest('hex'));
    const short = await access().writeFile(INST, undefined, '/f', Readable.from([Buffer.from('abc')]), 10, 0o644).catch((e: unknown) => e);
    assert.equal((short as BerthError).kind, 'VALIDATION');
  });

  it('listens on the node for the pod and carries each connection back (ssh -R)', async () => {
    const l = await access().listenForPod!(LOOPBACK, 0, (socket) => {
      socket.on('data', (d: Buffer) => socket.end(`back:${d.toString()}`));
    });
    assert.equal(l.address, '127.0.0.1');
    assert.equal(seen.holes, 1, 'the firewall is opened for it');
    const { connect } = await import('node:net');
    for (const word of ['one', 'two']) {
      const got = await new Promise<string>((resolve, reject) => {
        const c = connect(l.port, '127.0.0.1', () => c.write(word));
        let text = '';
        c.on('data', (d: Buffer) => (text += d.toString()));
        c.on('end', () => resolve(text));
        c.on('error', reject);
      });
      assert.equal(got, `back:${word}`);
    }
    await l.close();
    await waitUntil(() => seen.holes === 0);
    const refused = await new Promise<boolean>((resolve) => {
      const c = connect(l.port, '127.0.0.1');
      c.on('connect', () => (c.destroy(), resolve(false)));
      c.on('error', () => resolve(true));
    });
    assert.ok(refused, 'the listener is closed with it');
  });

  it('is dialed again after its server went and came back, and calls then work', async () => {
    const port = Number(new URL(url).port);
    const before = current;
    await stop();
    await waitUntil(() => current === undefined);
    const unavailable = await before!.exec(INST, undefined, ['echo'], 1000).catch((e: unknown) => e);
    assert.equal((unavailable as BerthError).kind, 'NODE_UNAVAILABLE');
    await listen(port);
    await waitUntil(() => current !== undefined, 5000);
    assert.equal((await access().exec(INST, undefined, ['echo', 'again'], 1000)).stdout, 'echo again');
  });

  it('is not wedged by a network that stops carrying anything: the pings end it and the agent dials again', async () => {
    // A TCP relay between agent and server that, once cut, drops every byte of the connections it
    // has (as a pulled cable or a dropped NAT entry does) but relays new ones.
    // Only this agent's channel from here on.
    await dialer.close();
    await waitUntil(() => current === undefined);
    let cut = false;
    const relays = new Set<Socket>();
    const { connect } = await import('node:net');
    const relay = createTcpServer((inbound) => {
      const outbound = connect(Number(new URL(url).port), '127.0.0.1');
      const old = cut;
      for (const s of [inbound, outbound]) {
        s.on('error', () => undefined);
        relays.add(s);
      }
      inbound.on('data', (d: Buffer) => void (cut && !old ? undefined : outbound.write(d)));
      outbound.on('data', (d: Buffer) => void (cut && !old ? undefined : inbound.write(d)));
      inbound.on('close', () => outbound.destroy());
      outbound.on('close', () => inbound.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    const viaRelay = NodeChannelDialer.start({ server: `http://127.0.0.1:${(relay.address() as { port: number }).port}`, token: 't', nodeId: NODE, access: fakeAccess(() => 1), logger: log, pingMs: 200 });
    try {
      await viaRelay.whenConnected();
      await waitUntil(() => current !== undefined);
      const first = current;
      assert.equal((await first!.exec(INST, undefined, ['echo', 'relayed'], 1000)).stdout, 'echo relayed');
      let dials = 0;
      relay.on('connection', () => dials++);
      cut = true;
      // The server's pings (every 5 s here) or the agent's (every 200 ms) find the dead socket; the agent dials anew.
      await waitUntil(() => current !== undefined && current !== first, 15_000);
      assert.equal((await access().exec(INST, undefined, ['echo', 'after'], 1000)).stdout, 'echo after');
      assert.ok(dials >= 1, 'the agent dialed again');
    } finally {
      await viaRelay.close();
      for (const s of relays) s.destroy();
      relay.close();
    }
  });
});
