import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import type { WebSocket } from 'ws';
import type { ExecStream } from '../../control/agent-protocol.js';
import type { OwnerId } from '../../model/index.js';
import { compileTerminalSessionOptions, PID_MARK, shellWithPid, TerminalSessions, type HangUp } from './terminal-sessions.js';

/** An exec whose output the test writes, and whose exit the test decides. */
function fakeExec() {
  const stdout = new PassThrough();
  let exit!: (code: number) => void;
  const exitCode = new Promise<number>((r) => (exit = r));
  const resized: [number, number][] = [];
  const exec: ExecStream = { stdin: new PassThrough(), stdout, stderr: new PassThrough(), resize: async (c, r) => void resized.push([c, r]), exitCode, close: () => undefined };
  return { exec, stdout, exit, resized };
}

/** Enough of a ws WebSocket for a session: what it was sent, and a close that says so. */
class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  sent: (string | Buffer)[] = [];
  closedWith: number | undefined;
  send(data: string | Buffer): void {
    this.sent.push(data);
  }
  close(code = 1005): void {
    this.readyState = 3;
    this.closedWith = code;
    this.emit('close', code);
  }
  text(): string {
    return this.sent.filter((d): d is Buffer => Buffer.isBuffer(d)).map((b) => b.toString()).join('');
  }
  control(): Record<string, unknown>[] {
    return this.sent.filter((d): d is string => typeof d === 'string').map((s) => JSON.parse(s) as Record<string, unknown>);
  }
}
const ws = (s: FakeSocket) => s as unknown as WebSocket;
const tick = () => new Promise((r) => setImmediate(r));
const alice = 'alice' as OwnerId;

describe('terminal sessions', () => {
  it('starts the shell through a wrapper that prints its pid first, and keeps the login shell', () => {
    const argv = shellWithPid(['/bin/sh', '-c', 'exec /bin/sh -l']);
    assert.deepEqual(argv.slice(0, 2), ['/bin/sh', '-c']);
    assert.match(argv[2]!, /^printf '\\033]777;berth-pid=%s\\007' "\$\$"; exec \/bin\/sh -l$/);
  });

  it('cuts the pid mark out of the output, even split over chunks, and hangs up that pid', async () => {
    const sessions = new TerminalSessions(compileTerminalSessionOptions());
    const { exec, stdout, exit } = fakeExec();
    const calls: [string, string][] = [];
    const hangUp: HangUp = async (pid, signal) => {
      calls.push([pid, signal]);
      exit(129);
    };
    const s = sessions.open('pod1', alice, exec, false, hangUp);
    const sock = new FakeSocket();
    s.attach(ws(sock), false);
    stdout.write(Buffer.from(PID_MARK.slice(0, 5)));
    stdout.write(Buffer.from(`${PID_MARK.slice(5)}4242\x07/ # `));
    await tick();
    assert.equal(sock.text(), '/ # ');
    assert.deepEqual(sock.control(), [], 'an old client gets no session message');
    sock.close();
    await tick();
    assert.deepEqual(calls, [['4242', 'HUP']]);
    assert.equal(sessions.count(), 0);
  });

  it('replays at most the scrollback, from a line start, to a socket that re-attaches', async () => {
    const sessions = new TerminalSessions(compileTerminalSessionOptions({ scrollbackBytes: 64 }));
    const { exec, stdout, resized, exit } = fakeExec();
    const s = sessions.open('pod1', alice, exec, true, async () => exit(129));
    const first = new FakeSocket();
    s.attach(ws(first), false);
    stdout.write(Buffer.from(`${PID_MARK}7\x07`));
    for (let i = 0; i < 20; i++) stdout.write(Buffer.from(`line ${i}\r\n`));
    await tick();
    first.close(1001);
    assert.equal(s.state, 'detached');
    stdout.write(Buffer.from('while away\r\n'));
    await tick();

    assert.equal(sessions.find(s.id, 'pod1', 'bob' as OwnerId), undefined, "another owner's key finds nothing");
    assert.equal(sessions.find(s.id, 'pod2', alice), undefined, 'nor does another pod');
    const found = sessions.find(s.id, 'pod1', alice);
    assert.equal(found, s);
    await found.resize(120, 40);
    assert.deepEqual(resized, [[120, 40]]);
    const second = new FakeSocket();
    found.attach(ws(second), true);
    assert.deepEqual(second.control(), [{ type: 'session', id: s.id, graceSeconds: 300, reattached: true }]);
    const replay = second.text();
    assert.ok(replay.length <= 64);
    assert.match(replay, /^line \d+\r\n/);
    assert.match(replay, /while away\r\n$/);
    await s.hangUp();
  });

  it('keeps a bounded number per owner and pod: a new one hangs up the one detached longest', async () => {
    const sessions = new TerminalSessions(compileTerminalSessionOptions({ perPod: 2 }));
    const open = () => {
      const { exec } = fakeExec();
      const s = sessions.open('pod1', alice, exec, true, async () => undefined);
      const sock = new FakeSocket();
      s.attach(ws(sock), false);
      return { s, sock };
    };
    const a = open();
    const b = open();
    a.sock.close(1001);
    b.sock.close(1001);
    open();
    assert.equal(a.s.state, 'ended');
    assert.equal(b.s.state, 'detached');
    // Another owner's sessions on the same pod count apart.
    const { exec } = fakeExec();
    sessions.open('pod1', 'bob' as OwnerId, exec, true, async () => undefined);
    assert.equal(b.s.state, 'detached');
    await sessions.close();
    assert.equal(sessions.count(), 0);
  });

  it('detaches a socket that closed before it was attached', () => {
    const sessions = new TerminalSessions(compileTerminalSessionOptions());
    const s = sessions.open('pod1', alice, fakeExec().exec, true, async () => undefined);
    const sock = new FakeSocket();
    sock.readyState = 3;
    s.attach(ws(sock), false);
    assert.equal(s.state, 'detached');
    void s.hangUp();
  });

  it('hangs up a detached shell when the grace period ends', async () => {
    const sessions = new TerminalSessions({ graceMs: 30, perPod: 4, scrollbackBytes: 1024 });
    const { exec, stdout } = fakeExec();
    const hung: string[] = [];
    const s = sessions.open('pod1', alice, exec, true, async (pid) => void hung.push(pid));
    const sock = new FakeSocket();
    s.attach(ws(sock), false);
    stdout.write(Buffer.from(`${PID_MARK}99\x07`));
    await tick();
    sock.close(1001);
    assert.equal(s.state, 'detached');
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(s.state, 'ended');
    assert.deepEqual(hung.slice(0, 1), ['99']);
  });
});
