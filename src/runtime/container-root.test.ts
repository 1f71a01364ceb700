// openInRoot over a directory of the test's own standing in for a container's root, beside a
// "host" directory holding what no path may reach: links absolute and relative, at the end and on
// the way, `..`, loops, and files that are not regular.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { mkdir, mkdtemp, open, rm, symlink, utimes, writeFile, chmod, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { BerthError } from '../model/errors.js';
import { openInRoot, type OpenedFile } from './container-root.js';

const O_PATH = 0o10000000;

async function text(f: OpenedFile | undefined): Promise<string> {
  assert.ok(f, 'the file was opened');
  const parts: Buffer[] = [];
  for await (const c of f.content) parts.push(c as Buffer);
  return Buffer.concat(parts).toString();
}

const isKind = (kind: string) => (err: unknown) => err instanceof BerthError && err.kind === kind;

describe('openInRoot', { skip: process.platform !== 'linux' && 'Linux only' }, () => {
  let base: string;
  let rootDir: string;
  let host: string;
  let root: FileHandle;
  const read = (path: string) => openInRoot(root, path);

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'berth-root-test-'));
    rootDir = join(base, 'root');
    host = join(base, 'host');
    await mkdir(join(rootDir, 'etc'), { recursive: true });
    await mkdir(join(rootDir, 'a/b/c'), { recursive: true });
    await mkdir(host);
    await writeFile(join(rootDir, 'etc/passwd'), 'container passwd\n');
    await writeFile(join(host, 'secret'), 'host secret\n');
    // The host's path, as a file of the container too: reached through a link, it must be this one.
    await mkdir(join(rootDir, host), { recursive: true });
    await writeFile(join(rootDir, host, 'secret'), 'container copy\n');
    await writeFile(join(host, 'only-on-host'), 'host only\n');

    await symlink('/', join(rootDir, 'escape'));
    await symlink('../../../../../../../..', join(rootDir, 'a/b/up'));
    await symlink(join(host, 'only-on-host'), join(rootDir, 'host-only'));
    await symlink(join(base, 'host'), join(rootDir, 'a/hostdir'));
    await symlink('/etc/passwd', join(rootDir, 'final'));
    await symlink('passwd', join(rootDir, 'etc/alias'));
    await symlink('../../b', join(rootDir, 'a/b/c/back'));
    await symlink('loop2', join(rootDir, 'loop1'));
    await symlink('loop1', join(rootDir, 'loop2'));
    await writeFile(join(rootDir, 'empty'), '');
    await writeFile(join(rootDir, 'a/b/data'), 'data\n');
    await chmod(join(rootDir, 'a/b/data'), 0o640);
    await utimes(join(rootDir, 'a/b/data'), 1_700_000_000, 1_700_000_000);
    root = await open(rootDir, O_PATH | constants.O_DIRECTORY);
  });
  after(async () => {
    await root?.close();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('reads a file with its size, mode and time', async () => {
    const f = await read('/a/b/data');
    assert.equal(f?.size, 5);
    assert.equal(f?.mode, 0o100640);
    assert.equal(f?.mtimeMs, 1_700_000_000_000);
    assert.equal(await text(f), 'data\n');
    assert.equal(await text(await read('empty')), '');
  });

  it('resolves absolute links against the container root, at the end and on the way', async () => {
    assert.equal(await text(await read('/escape/etc/passwd')), 'container passwd\n');
    assert.equal(await text(await read('/final')), 'container passwd\n');
    assert.equal(await text(await read(`/escape${host}/secret`)), 'container copy\n');
    assert.equal(await text(await read('/a/hostdir/secret')), 'container copy\n');
  });

  it('resolves relative links and .. without climbing above the root', async () => {
    assert.equal(await text(await read('/a/b/up/etc/passwd')), 'container passwd\n');
    assert.equal(await text(await read(`/a/b/up${host}/secret`)), 'container copy\n');
    assert.equal(await text(await read('/../../../../etc/passwd')), 'container passwd\n');
    assert.equal(await text(await read('/a/../../../etc/./alias')), 'container passwd\n');
    assert.equal(await text(await read('/a/b/c/back/data')), 'data\n');
  });

  it('finds nothing where only the host has a file', async () => {
    await assert.rejects(read('/host-only'), isKind('NOT_FOUND'));
    await assert.rejects(read(join('/a/b/up', base, 'host/only-on-host')), isKind('NOT_FOUND'));
    await assert.rejects(read('/no/such/file'), isKind('NOT_FOUND'));
    await assert.rejects(read('/etc/passwd/below'), isKind('NOT_FOUND'));
  });

  it('refuses what is not a regular file, and link loops', async () => {
    await assert.rejects(read('/a/b'), isKind('VALIDATION'));
    await assert.rejects(read('/'), isKind('VALIDATION'));
    await assert.rejects(read('/escape'), isKind('VALIDATION'));
    await assert.rejects(read('/loop1'), isKind('VALIDATION'));
  });

  it('never opens a FIFO or a device node, which could block or act on the node', async () => {
    await promisify(execFile)('mkfifo', [join(rootDir, 'fifo')]);
    // A reader opening a FIFO with no writer would wait for ever: refused without opening it.
    await assert.rejects(read('/fifo'), isKind('VALIDATION'));
    if (process.getuid?.() === 0) {
      await promisify(execFile)('mknod', [join(rootDir, 'null'), 'c', '1', '3']);
      await assert.rejects(read('/null'), isKind('VALIDATION'));
    }
  });
});
