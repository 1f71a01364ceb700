// SQLite serves one server (src/cli/data-dir-lock.ts): a second `berth server` on the same data dir
// is refused with a clear error; after the first stops, or when it died and left its socket behind,
// a new one starts.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { BerthError } from '../src/model/index.js';
import { lockDataDir, LOCK_SOCKET_NAME } from '../src/cli/data-dir-lock.js';
import { startTestServer } from './support/server.js';

const LOCK_MODULE = fileURLToPath(new URL('../src/cli/data-dir-lock.js', import.meta.url));

const refusedBy = (pid: number) => (err: unknown) => {
  assert.ok(err instanceof BerthError, String(err));
  assert.equal(err.kind, 'CONFLICT');
  assert.match(err.message, new RegExp(`another berth server is running on .* \\(pid ${pid}\\)`));
  assert.match(err.message, /SQLite serves one server: use --database-url postgres:\/\/… for several \(docs\/ha\.md\)/);
  return true;
};

describe('one server per SQLite data dir', () => {
  it('refuses a second server on the same data dir, and starts one after the first stops', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'berth-lock-'));
    try {
      const first = await startTestServer({ agent: false, dataDir });
      try {
        await assert.rejects(startTestServer({ agent: false, dataDir }), refusedBy(process.pid));
        assert.equal((await first.api('GET', '/api/v1/pods')).status, 200, 'the first server is untouched');
      } finally {
        await first.close();
      }
      await assert.rejects(stat(join(dataDir, LOCK_SOCKET_NAME)), /ENOENT/, 'a clean stop removes the socket');
      const next = await startTestServer({ agent: false, dataDir });
      await next.close();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('takes over the socket a killed server left behind', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'berth-lock-'));
    // Another process holds the lock, as a running server would, and is then killed with -9.
    const holder = spawn(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(LOCK_MODULE)}); await m.lockDataDir(process.argv[1]); console.log('locked'); setInterval(() => {}, 1000);`, dataDir], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((done, fail) => {
        holder.stdout.on('data', (b: Buffer) => b.toString().includes('locked') && done());
        holder.once('exit', (code) => fail(new Error(`the lock holder exited (${code})`)));
      });
      await assert.rejects(startTestServer({ agent: false, dataDir }), refusedBy(holder.pid!));
      const gone = new Promise((done) => holder.once('exit', done));
      holder.kill('SIGKILL');
      await gone;
      assert.ok((await stat(join(dataDir, LOCK_SOCKET_NAME))).isSocket(), 'the dead server left its socket file');
      const server = await startTestServer({ agent: false, dataDir });
      await server.close();
    } finally {
      holder.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('names a data dir whose path is too long for a socket by an abstract address', async () => {
    const dataDir = join(await mkdtemp(join(tmpdir(), 'berth-lock-')), 'x'.repeat(120));
    const lock = await lockDataDir(dataDir);
    try {
      assert.ok(lock.address.startsWith('\0'));
      await assert.rejects(lockDataDir(dataDir), refusedBy(process.pid));
    } finally {
      await lock.release();
    }
    const again = await lockDataDir(dataDir);
    await again.release();
    await rm(join(dataDir, '..'), { recursive: true, force: true });
  });

  it('is not taken with a database URL', { skip: process.env.BERTH_TEST_DATABASE_URL ? false : 'set BERTH_TEST_DATABASE_URL' }, async () => {
    // Several servers on one PostgreSQL are the point: no single-server lock there.
    const { postgresSchema } = await import('./support/stores.js');
    const pg = await postgresSchema(process.env.BERTH_TEST_DATABASE_URL!);
    const dataDir = await mkdtemp(join(tmpdir(), 'berth-lock-'));
    try {
      const a = await startTestServer({ agent: false, dataDir, databaseUrl: pg.url });
      await assert.rejects(stat(join(dataDir, LOCK_SOCKET_NAME)), /ENOENT/);
      await a.close();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
      await pg.drop();
    }
  });
});
