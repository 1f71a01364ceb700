// bench: ssh — scp of a 200 MB file through Berth's SSH gateway (SFTP into a pod) vs scp to this machine's own sshd (target: throughput ratio ≥ 0.7)
/**
 * Copying a file with OpenSSH's scp (SFTP mode, OpenSSH's default since 9.0) two ways, in the same
 * run, with the same client, key type and file:
 *
 *   sshd     Debian's openssh-server started here on a loopback port with its own config and host
 *            key in a temp dir (internal-sftp), writing to this machine's disk;
 *   gateway  `berth server`'s SSH gateway (a child process), writing into a running pod (an upload
 *            streams into `cat` through a Docker exec; a download comes out of the archive API).
 *
 * Uploads are the target; downloads are printed too. Rounds alternate the order; medians reported.
 * The cipher and MAC each side negotiated with the client are printed with the figures.
 *
 *   npm run bench -- ssh [--mb 200] [--rounds 5]
 */
import { freePort } from '../src/agent/ports.js';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureTestImage, TEST_IMAGE } from '../test/support/images.js';
import { apiClient, intArg, log, median, msSince, sleep, startChild, summary, type ChildServer } from './common.js';

const run = promisify(execFile);
const MB = intArg('--mb', 200);
const ROUNDS = intArg('--rounds', 5);


async function startSshd(dir: string, clientPub: string): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort('127.0.0.1');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_ed25519')]);
  await writeFile(join(dir, 'authorized_keys'), clientPub, { mode: 0o600 });
  // sshd wants its privilege separation directory even when it runs in the foreground.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  await writeFile(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_ed25519')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );
  const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (d: Buffer) => log(`sshd: ${d.toString().trim()}`));
  await sleep(500);
  return { port, child };
}

/** What `ssh -v` says the client and the server agreed on, client to server: `cipher MAC`. */
async function negotiated(args: string[]): Promise<string> {
  const r = await run('ssh', ['-v', ...args, 'true'], { maxBuffer: 1 << 20 }).catch((err: { stderr?: string }) => ({ stderr: err.stderr ?? '' }));
  const m = /kex: client->server cipher: (\S+) MAC: (\S+)/.exec(r.stderr);
  return m ? `${m[1]} (MAC ${m[2]})` : 'unknown';
}

async function timed(args: string[]): Promise<number> {
  const start = process.hrtime.bigint();
  await run('scp', args, { maxBuffer: 1 << 20 });
  return msSince(start);
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'berth-bench-ssh-'));
  let server: ChildServer | undefined;
  let sshd: ChildProcess | undefined;
  let api: ReturnType<typeof apiClient> | undefined;
  let podId: string | undefined;
  try {
    await ensureTestImage();
    const key = join(work, 'id_ed25519');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const pub = await readFile(`${key}.pub`, 'utf8');
    const file = join(work, 'payload.bin');
    await writeFile(file, randomBytes(MB * 2 ** 20));
    const bytes = (await stat(file)).size;

    const d = await startSshd(work, pub);
    sshd = d.child;
    await mkdir(join(work, 'sshd-dest'), { recursive: true });

    server = await startChild('berth-server', ['--data-dir', join(work, 'data')]);
    const gwPort = server.info.sshPort as number;
    api = apiClient(server.url, (await readFile(join(work, 'data', 'admin.key'), 'utf8')).trim());
    await api('POST', '/api/v1/ssh-keys', { publicKey: pub });
    const created = await api<{ id: string }>('POST', '/api/v1/pods', { image: TEST_IMAGE, volumeGb: 0, command: ['sleep', '3600'] });
    podId = created.body.id;
    for (let i = 0; i < 600; i++) {
      if ((await api<{ status: string }>('GET', `/api/v1/pods/${podId}`)).body.status === 'RUNNING') break;
      await sleep(100);
    }
    const common = ['-q', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-i', key];
    const cipher = (await run('ssh', ['-G', '127.0.0.1'])).stdout.match(/^ciphers (\S+)/m)?.[1]?.split(',')[0] ?? 'default';
    const sshOpts = ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-i', key];
    const ciphers = {
      sshd: await negotiated([...sshOpts, '-p', String(d.port), 'root@127.0.0.1']),
      gateway: await negotiated([...sshOpts, '-p', String(gwPort), `${podId}@127.0.0.1`]),
    };
    const targets = {
      sshd: {
        up: () => timed([...common, '-P', String(d.port), file, `root@127.0.0.1:${join(work, 'sshd-dest', 'payload.bin')}`]),
        down: () => timed([...common, '-P', String(d.port), `root@127.0.0.1:${join(work, 'sshd-dest', 'payload.bin')}`, join(work, 'back-sshd.bin')]),
      },
      gateway: {
        up: () => timed([...common, '-P', String(gwPort), file, `${podId}@127.0.0.1:/tmp/payload.bin`]),
        down: () => timed([...common, '-P', String(gwPort), `${podId}@127.0.0.1:/tmp/payload.bin`, join(work, 'back-gw.bin')]),
      },
    };
    type Name = keyof typeof targets;
    const up: Record<Name, number[]> = { sshd: [], gateway: [] };
    const down: Record<Name, number[]> = { sshd: [], gateway: [] };
    // Warm-up: one small copy each (connection set-up, JIT).
    for (let r = 0; r < ROUNDS; r++) {
      for (const name of (r % 2 ? ['gateway', 'sshd'] : ['sshd', 'gateway']) as Name[]) {
        const u = await targets[name].up();
        const dn = await targets[name].down();
        up[name].push(u);
        down[name].push(dn);
        log(`round ${r + 1} ${name.padEnd(7)} up ${((bytes / 2 ** 20) / (u / 1000)).toFixed(0)} MB/s (${(u / 1000).toFixed(2)} s)  down ${((bytes / 2 ** 20) / (dn / 1000)).toFixed(0)} MB/s (${(dn / 1000).toFixed(2)} s)`);
      }
    }
    const back = await readFile(join(work, 'back-gw.bin'));
    if (!back.equals(await readFile(file))) throw new Error('the file came back from the pod changed');
    const mbps = (ms: number): number => bytes / 2 ** 20 / (ms / 1000);
    const upRatio = mbps(median(up.gateway)) / mbps(median(up.sshd));
    const downRatio = mbps(median(down.gateway)) / mbps(median(down.sshd));
    summary('ssh', [
      ['copy', `${MB} MiB of random bytes with scp (SFTP mode), ${ROUNDS} rounds alternating order; client cipher preference ${cipher}; medians`],
      ['cipher with sshd', ciphers.sshd],
      ['cipher with gateway', ciphers.gateway],
      ['sshd upload', `${mbps(median(up.sshd)).toFixed(0)} MB/s (${(median(up.sshd) / 1000).toFixed(2)} s)`],
      ['gateway upload', `${mbps(median(up.gateway)).toFixed(0)} MB/s (${(median(up.gateway) / 1000).toFixed(2)} s)`],
      ['sshd download', `${mbps(median(down.sshd)).toFixed(0)} MB/s (${(median(down.sshd) / 1000).toFixed(2)} s)`],
      ['gateway download', `${mbps(median(down.gateway)).toFixed(0)} MB/s (${(median(down.gateway) / 1000).toFixed(2)} s)`],
      ['gateway/sshd download', downRatio.toFixed(2)],
      ['gateway/sshd upload (target ≥ 0.7)', `${upRatio.toFixed(2)}  ${upRatio >= 0.7 ? 'PASS' : 'MISS'}`],
    ]);
  } finally {
    sshd?.kill();
    if (api && podId) await api('POST', `/api/v1/pods/${podId}/terminate`, {}).catch(() => undefined);
    await sleep(500);
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
