/**
 * Web terminals that survive a page reload: `?session=new` keeps the shell when its socket closes,
 * `?session=<id>` re-attaches to the same shell with its recent output replayed, only for the key's
 * owner; a detached shell is hung up after the grace period; clients that send no `session` keep
 * the old behaviour (the shell ends with the socket).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

interface Term {
  ws: WebSocket;
  /** Every binary byte received so far, as text. */
  text: () => string;
  /** Text messages received so far, parsed. */
  control: Record<string, unknown>[];
}

function open(url: string, key: string): Promise<Term> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['berth.terminal', `bearer.${key}`]);
    let text = '';
    const control: Record<string, unknown>[] = [];
    ws.on('message', (d: Buffer, binary: boolean) => (binary ? (text += d.toString()) : control.push(JSON.parse(d.toString()) as Record<string, unknown>)));
    ws.once('open', () => resolve({ ws, text: () => text, control }));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => {
        req.destroy();
        reject(Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), { status: res.statusCode, body }));
      });
    });
    ws.once('error', reject);
  });
}

const until = (what: string, t: Term, pattern: RegExp) => waitFor(what, async () => (pattern.test(t.text()) ? t.text() : undefined), 10_000);
const closed = (t: Term) => new Promise<number>((r) => (t.ws.readyState === t.ws.CLOSED ? r(0) : t.ws.once('close', (code) => r(code))));
const type = (t: Term, s: string) => t.ws.send(Buffer.from(s), { binary: true });

describe('web terminal sessions', () => {
  let t: TestServer;
  let podId: string;
  let base: string;

  before(async () => {
    await ensureTestImage();
    t = await startTestServer({ terminalGraceSeconds: 2 });
    const created = await t.api<{ id: string }>('POST', '/api/v1/pods', { image: TEST_IMAGE, volumeGb: 0, command: ['sleep', '3600'] });
    podId = created.body.id;
    base = `${t.url.replace(/^http/, 'ws')}/api/v1/pods/${podId}/terminal`;
    await waitFor('the pod to run', async () => ((await t.api<{ status: string }>('GET', `/api/v1/pods/${podId}`)).body.status === 'RUNNING' ? true : undefined), 60_000);
  });
  after(() => t?.close());

  /** Whether process `pid` lives in the pod. */
  const alive = async (pid: string) => (await t.api<{ exitCode: number }>('POST', `/api/v1/pods/${podId}/exec`, { command: ['kill', '-0', pid] })).body.exitCode === 0;

  it('re-attaches to the same shell after its socket closed, replaying the screen', async () => {
    const first = await open(`${base}?session=new&cols=100&rows=30`, t.key);
    await waitFor('the session id', async () => (first.control[0] ? true : undefined));
    const hello = first.control[0] as { type: string; id: string; graceSeconds: number; reattached: boolean };
    assert.equal(hello.type, 'session');
    assert.equal(hello.graceSeconds, 2);
    assert.equal(hello.reattached, false);
    type(first, 'export X=42; echo pid=$$.\n');
    const pid = /pid=(\d+)\./.exec(await until('the pid', first, /pid=\d+\./))![1]!;
    // The wrapper's pid mark never reaches the client.
    assert.doesNotMatch(first.text(), /berth-pid/);
    first.ws.close(1001); // what a page reload sends
    await closed(first);

    const again = await open(`${base}?session=${hello.id}&cols=120&rows=40`, t.key);
    await waitFor('the session', async () => (again.control[0] ? true : undefined));
    assert.deepEqual(again.control[0], { type: 'session', id: hello.id, graceSeconds: 2, reattached: true });
    // The replay holds what the screen showed before.
    await until('the replay', again, /pid=\d+\./);
    type(again, 'echo X=$X pid=$$ size=$(stty size)\n');
    await until('the same shell', again, new RegExp(`X=42 pid=${pid} size=40 120`));
    again.ws.close();
    await closed(again);
  });

  it("refuses another owner's key, even an admin's, and a session of another pod", async () => {
    const mine = await open(`${base}?session=new`, t.key);
    await waitFor('the session id', async () => (mine.control[0] ? true : undefined));
    const id = (mine.control[0] as { id: string }).id;
    const stranger = await t.api<{ key: string }>('POST', '/api/v1/keys', { name: 'stranger', owner: 'stranger' });
    await assert.rejects(open(`${base}?session=${id}`, stranger.body.key), (e: { status?: number }) => e.status === 404);
    // An admin of another owner sees the pod, but not the session: it is its opener's.
    const otherAdmin = await t.api<{ key: string }>('POST', '/api/v1/keys', { name: 'other admin', owner: 'ops', admin: true });
    await assert.rejects(open(`${base}?session=${id}`, otherAdmin.body.key), (e: { status?: number; body?: string }) => e.status === 404 && /no terminal session/.test(e.body ?? ''));
    // While refused, the session is still attached and works.
    type(mine, 'echo still-$((40+2))\n');
    await until('the shell', mine, /still-42/);
    const other = await t.api<{ id: string }>('POST', '/api/v1/pods', { image: TEST_IMAGE, volumeGb: 0, command: ['sleep', '3600'] });
    await waitFor('it to run', async () => ((await t.api<{ status: string }>('GET', `/api/v1/pods/${other.body.id}`)).body.status === 'RUNNING' ? true : undefined), 60_000);
    const otherUrl = `${t.url.replace(/^http/, 'ws')}/api/v1/pods/${other.body.id}/terminal`;
    await assert.rejects(open(`${otherUrl}?session=${id}`, t.key), (e: { status?: number }) => e.status === 404);
    // A second socket with the owner's key takes the session over; the first is told why.
    const takeover = await open(`${base}?session=${id}`, t.key);
    assert.equal(await closed(mine), 4001);
    type(takeover, 'echo taken-$((1+1))\n');
    await until('the shell', takeover, /taken-2/);
    // {"type":"close"} ends the session for good.
    takeover.ws.send(JSON.stringify({ type: 'close' }));
    await closed(takeover);
    await assert.rejects(open(`${base}?session=${id}`, t.key), (e: { status?: number }) => e.status === 404);
  });

  it('hangs up a detached shell after the grace period', async () => {
    const term = await open(`${base}?session=new`, t.key);
    await waitFor('the session id', async () => (term.control[0] ? true : undefined));
    const id = (term.control[0] as { id: string }).id;
    type(term, 'echo pid=$$.\n');
    const pid = /pid=(\d+)\./.exec(await until('the pid', term, /pid=\d+\./))![1]!;
    term.ws.close();
    await closed(term);
    assert.ok(await alive(pid), 'the detached shell lives through the grace period');
    await waitFor('the shell to be hung up', async () => ((await alive(pid)) ? undefined : true), 15_000);
    await assert.rejects(open(`${base}?session=${id}`, t.key), (e: { status?: number }) => e.status === 404);
  });

  it('without ?session, the shell ends with its socket, as before', async () => {
    const term = await open(base, t.key);
    type(term, 'echo pid=$$.\n');
    const pid = /pid=(\d+)\./.exec(await until('the pid', term, /pid=\d+\./))![1]!;
    assert.equal(term.control.length, 0, 'no session message for an old client');
    term.ws.close();
    await closed(term);
    await waitFor('the shell to be hung up', async () => ((await alive(pid)) ? undefined : true), 10_000);
  });
});
