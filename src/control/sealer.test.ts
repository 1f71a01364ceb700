import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Sealer } from './sealer.js';

let root: string;
let n = 0;
const freshDir = async (): Promise<string> => mkdtemp(join(root, `d${n++}-`));

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'berth-sealer-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** `sealed` with one character of part `part` (0: version, 1: iv, 2: tag, 3: body) changed. */
function tamper(sealed: string, part: number): string {
  const parts = sealed.split('.');
  const p = parts[part]!;
  const bytes = Buffer.from(p, 'base64');
  bytes[0] = bytes[0]! ^ 0x01;
  parts[part] = bytes.toString('base64');
  return parts.join('.');
}

describe('Sealer', () => {
  it('opens what it sealed, whatever the text', () => {
    const s = Sealer.fromKey(randomBytes(32));
    for (const text of ['hunter2', '', 'pässwörd 🔑', 'x'.repeat(10_000), 'a.b.c']) assert.equal(s.open(s.seal(text)), text);
  });

  it('seals the same text differently each time and never in the clear', () => {
    const s = Sealer.fromKey(randomBytes(32));
    const a = s.seal('registry-password');
    const b = s.seal('registry-password');
    assert.notEqual(a, b, 'a fresh IV per seal');
    assert.match(a, /^v1\.[A-Za-z0-9+/=]+\.[A-Za-z0-9+/=]+\.[A-Za-z0-9+/=]*$/);
    assert.ok(!a.includes('registry-password'));
    assert.ok(!Buffer.from(a.split('.')[3]!, 'base64').toString('utf8').includes('registry'));
  });

  it('throws on any change to iv, tag or body', () => {
    const s = Sealer.fromKey(randomBytes(32));
    const sealed = s.seal('secret value');
    for (const part of [1, 2, 3]) assert.throws(() => s.open(tamper(sealed, part)), `part ${part}`);
  });

  it('throws on a truncated body or a missing part', () => {
    const s = Sealer.fromKey(randomBytes(32));
    const [v, iv, tag, body] = s.seal('secret value').split('.');
    assert.throws(() => s.open([v, iv, tag, body!.slice(0, 4)].join('.')));
    assert.throws(() => s.open([v, iv, tag].join('.')), /not a sealed value/);
    assert.throws(() => s.open(['v2', iv, tag, body].join('.')), /not a sealed value/);
    assert.throws(() => s.open('hunter2'), /not a sealed value/);
  });

  it('throws when opened under another key', () => {
    const sealed = Sealer.fromKey(randomBytes(32)).seal('secret');
    assert.throws(() => Sealer.fromKey(randomBytes(32)).open(sealed));
  });

  it('creates <dataDir>/secret.key with mode 0600 on first open', async () => {
    const dir = await freshDir();
    const s = await Sealer.open(dir);
    const path = join(dir, 'secret.key');
    const st = await stat(path);
    assert.equal(st.mode & 0o777, 0o600);
    const key = Buffer.from((await readFile(path, 'utf8')).trim(), 'base64');
    assert.equal(key.length, 32, 'an AES-256 key');
    assert.equal(Sealer.fromKey(key).open(s.seal('x')), 'x', 'the file holds the key in use');
  });

  it('reuses the key on later opens, so sealed values survive a restart', async () => {
    const dir = await freshDir();
    const sealed = (await Sealer.open(dir)).seal('kept across restarts');
    const before = await readFile(join(dir, 'secret.key'), 'utf8');
    const again = await Sealer.open(dir);
    assert.equal(again.open(sealed), 'kept across restarts');
    assert.equal(await readFile(join(dir, 'secret.key'), 'utf8'), before);
  });

  it('uses a key file that is already there', async () => {
    const dir = await freshDir();
    const key = randomBytes(32);
    await writeFile(join(dir, 'secret.key'), key.toString('base64') + '\n', { mode: 0o600 });
    const sealed = Sealer.fromKey(key).seal('from an operator-provided key');
    assert.equal((await Sealer.open(dir)).open(sealed), 'from an operator-provided key');
  });

  it('gives sealers opened at the same moment on one data dir the same key', async () => {
    const dir = await freshDir();
    const sealers = await Promise.all(Array.from({ length: 8 }, () => Sealer.open(dir)));
    const sealed = sealers[0]!.seal('one key for all');
    for (const s of sealers) assert.equal(s.open(sealed), 'one key for all');
  });

  it('fails to open on a data dir that does not exist, rather than inventing a key elsewhere', async () => {
    await assert.rejects(Sealer.open(join(root, 'missing', 'deeper')), { code: 'ENOENT' });
  });
});
