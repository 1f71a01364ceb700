/** `berth ssh-key ...`: the public keys pods get in PUBLIC_KEY and the SSH gateway accepts. */
import type { SshKey } from '../../model/index.js';
import { age, details, table } from '../output.js';
import { defineCommand, defineGroup } from './define.js';
import { readText } from './input.js';

const add = defineCommand({
  name: 'add',
  description: 'Register an OpenSSH public key (a .pub file, or - for stdin)',
  args: [{ name: 'file', description: 'the public key file, e.g. ~/.ssh/id_ed25519.pub, or -', required: true }],
  options: { name: { kind: 'string', flags: '--name <name>', description: "a name (default: the key's comment)" } },
  examples: ['berth ssh-key add ~/.ssh/id_ed25519.pub', 'cat key.pub | berth ssh-key add --name laptop -'],
  async handler({ args, opts, ctx }) {
    const publicKey = (await readText(args.file)).trim();
    const client = await ctx.client();
    const k = await client.post<SshKey>('/ssh-keys', { publicKey, ...(opts.name !== undefined ? { name: opts.name } : {}) });
    ctx.out.result(k, () => details([['ID', k.id], ['Name', k.name], ['Fingerprint', k.fingerprint]]));
  },
});

const list = defineCommand({
  name: 'list',
  aliases: ['ls'],
  description: 'List your SSH public keys',
  examples: ['berth ssh-key list'],
  async handler({ ctx }) {
    const client = await ctx.client();
    const res = await client.get<{ sshKeys: SshKey[] }>('/ssh-keys');
    const now = Date.now();
    ctx.out.result(res, () =>
      table(res.sshKeys, [
        { header: 'ID', value: (k) => k.id },
        { header: 'NAME', value: (k) => k.name },
        { header: 'USER', value: (k) => k.user ?? '-' },
        { header: 'FINGERPRINT', value: (k) => k.fingerprint },
        { header: 'AGE', value: (k) => age(k.createdAt, now) },
      ]),
    );
  },
});

const rm = defineCommand({
  name: 'rm',
  aliases: ['delete'],
  description: 'Remove an SSH public key by id or fingerprint',
  args: [{ name: 'key', description: 'key id or SHA256:... fingerprint', required: true }],
  examples: ['berth ssh-key rm SHA256:1D7...'],
  async handler({ args, ctx }) {
    const client = await ctx.client();
    await client.delete(`/ssh-keys/${encodeURIComponent(args.key)}`);
    ctx.out.result({ id: args.key, deleted: true }, () => `ssh key ${args.key} removed\n`);
  },
});

export const sshKeyCommands = defineGroup({
  name: 'ssh-key',
  aliases: ['ssh-keys'],
  description: 'SSH public keys for your pods',
  commands: [add, list, rm],
});
