import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { getPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { claimCpuPriority, isNice, readAutogroup, sessionOf, type PriorityClaim } from './cpu-priority.js';

const SELF = '/proc/self/autogroup';

describe('reading /proc', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-autogroup-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("reads the session group's nice from the kernel's line", () => {
    writeFileSync(join(dir, 'autogroup'), '/autogroup-38638 nice -10\n');
    assert.equal(readAutogroup(join(dir, 'autogroup')), -10);
    writeFileSync(join(dir, 'autogroup'), '/autogroup-7 nice 0\n');
    assert.equal(readAutogroup(join(dir, 'autogroup')), 0);
    assert.equal(readAutogroup(join(dir, 'none')), null);
  });

  it('reads the session from stat, whatever the name holds', () => {
    writeFileSync(join(dir, 'stat'), '4242 (node (x) y) S 1 4200 4100 0 -1 4194560 0 0\n');
    assert.equal(sessionOf(join(dir, 'stat')), 4100);
    assert.equal(sessionOf(join(dir, 'none')), null);
  });
});

describe('isNice', () => {
  it('takes whole numbers from -20 to 19', () => {
    assert.ok([-20, -10, 0, 19].every(isNice));
    assert.ok(![-21, 20, 1.5, Number.NaN].some(isNice));
  });
});

describe('claimCpuPriority', () => {
  it("sets a session leader's thread and session group, and says so", async () => {
    // A process of its own, in a session of its own (as a service runs): a nice above this one's is
    // allowed to anyone, and nothing here is touched.
    const target = Math.min(19, Math.max(0, getPriority()) + 3);
    const module = new URL('./cpu-priority.js', import.meta.url).href;
    // Whether the child's session has a group of its own is the child's to say: a process in the
    // kernel's first session (a container's, say) has none to show, while its setsid child has one.
    const script = `const m = await import(${JSON.stringify(module)}); const before = m.readAutogroup('/proc/self/autogroup'); process.stdout.write(JSON.stringify({ before, claim: m.claimCpuPriority(${target}) }));`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 0);
    const { before, claim } = JSON.parse(out) as { before: number | null; claim: PriorityClaim };
    assert.deepEqual(claim, { nice: target, thread: target, autogroup: before === null ? null : target });
  });

  it("leaves a session it does not lead alone, and sets its thread's nice", () => {
    const thread = getPriority();
    const group = readAutogroup(SELF);
    if (sessionOf('/proc/self/stat') === process.pid) return; // the test runner leads its session: the case above
    // The nice it has: always allowed, and nothing changes.
    const claim = claimCpuPriority(thread);
    assert.equal(claim.refused, undefined);
    assert.equal(claim.thread, thread);
    assert.equal(claim.autogroup, group);
    if (group !== null) assert.match(claim.sessionLeftAlone ?? '', /shares session/);
    assert.equal(readAutogroup(SELF), group);
  });

  it('leaves the session group alone where the kernel has none', () => {
    const claim = claimCpuPriority(getPriority(), { autogroup: '/proc/self/no-such-autogroup' });
    assert.equal(claim.autogroup, null);
    assert.equal(claim.sessionLeftAlone, undefined);
    assert.equal(claim.refused, undefined);
  });
});
