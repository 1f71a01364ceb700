/** `berth ssh <pod>`: OpenSSH's ssh to the pod through Berth's SSH gateway, with the pod's exact endpoint. */
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { PodView } from '../../api/views.js';
import { UserError } from '../output.js';
import { defineCommand } from './define.js';

const LOCAL = new Set(['localhost', '127.0.0.1', '::1']);

/**
 * The gateway host as this client should dial it: the server's configured public host, except that a
 * server left at the default `localhost` is reached at the host of the API URL the CLI uses.
 */
export function sshHost(configured: string, apiUrl: string): string {
  const apiHost = new URL(apiUrl).hostname.replace(/^\[|\]$/g, '');
  return LOCAL.has(configured) && !LOCAL.has(apiHost) ? apiHost : configured;
}

/**
 * Notes the gateway's host key, as the API reported it over the CLI's authenticated connection, in
 * Berth's own known_hosts file (beside the CLI's config): ssh then checks the gateway against it,
 * with no first-connection prompt and no trust on first use. Returns the file.
 */
export async function pinHostKey(configFile: string, host: string, port: number, hostKey: string): Promise<string> {
  const file = join(dirname(configFile), 'known_hosts');
  const pattern = port === 22 ? host : `[${host}]:${port}`;
  const lines = (await readFile(file, 'utf8').catch(() => '')).split('\n').filter((l) => l.trim() && l.split(' ')[0] !== pattern);
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, [...lines, `${pattern} ${hostKey}`].join('\n') + '\n', { mode: 0o600 });
  return file;
}

export const ssh = defineCommand({
  name: 'ssh',
  description: "Open a shell in a pod (or run a command) over the SSH gateway with your registered key (`berth ssh-key add`)",
  args: [
    { name: 'id', description: 'pod id', required: true },
    { name: 'command', description: 'a command to run instead of a shell, after --', variadic: true },
  ],
  options: {
    container: { kind: 'string', flags: '--container <name>', description: 'which container of a multi-container pod' },
    instance: { kind: 'number', integer: true, flags: '--instance <n>', description: 'which instance (default: the first running one)' },
    identity: { kind: 'string', flags: '-i, --identity <file>', description: 'the private key to use (passed to ssh -i)' },
    sshOption: { kind: 'list', flags: '--ssh-option <option>', description: 'an ssh -o option, e.g. StrictHostKeyChecking=accept-new (repeatable)' },
    print: { kind: 'boolean', flags: '--print', description: 'print the ssh command instead of running it' },
  },
  examples: ['berth ssh 2s56cp0pof1rmt', 'berth ssh 2s56cp0pof1rmt -- nvidia-smi', 'berth ssh 2s56cp0pof1rmt --container sidecar', 'berth ssh 2s56cp0pof1rmt --print'],
  async handler({ args, opts, ctx }) {
    const client = await ctx.client();
    const pod = await client.get<PodView>(`/pods/${encodeURIComponent(args.id)}`);
    const gw = pod.connection.ssh;
    if (!gw) throw new UserError(`the server at ${client.url} runs no SSH gateway`, 'Start it with `berth server` (the gateway is on by default; --ssh-port picks its port).');
    if (pod.status !== 'RUNNING') ctx.out.note(`pod ${pod.id} is ${pod.status}; the gateway will say so`);
    const user = `${pod.id}${opts.instance !== undefined ? `-${opts.instance}` : ''}${opts.container ? `.${opts.container}` : ''}`;
    const host = sshHost(gw.host, client.url);
    const command = (extra: string[]): string[] => [
      ...(gw.port !== 22 ? ['-p', String(gw.port)] : []),
      ...(opts.identity ? ['-i', opts.identity] : []),
      // The user's options first: ssh takes the first value it is given for an option.
      ...opts.sshOption.flatMap((o) => ['-o', o]),
      ...extra,
      `${user}@${host}`,
      ...(args.command.length ? ['--', ...args.command] : []),
    ];
    if (opts.print) {
      const argv = command([]);
      ctx.out.result({ command: ['ssh', ...argv] }, () => `ssh ${argv.map((a) => (/^[\w@.:/=-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')}\n`);
      return;
    }
    const argv = command(gw.hostKey ? ['-o', `UserKnownHostsFile="${await pinHostKey(ctx.configPath, host, gw.port, gw.hostKey)}"`, '-o', 'StrictHostKeyChecking=yes'] : []);
    return new Promise<number>((resolve, reject) => {
      const child = spawn('ssh', argv, { stdio: 'inherit' });
      child.once('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'ENOENT' ? new UserError('ssh is not installed here', 'Install OpenSSH\'s client (apt-get install openssh-client), or use `berth pod exec`.') : err),
      );
      child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    });
  },
});
