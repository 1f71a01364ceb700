/** `berth registry ...`: credentials for private image registries. */
import { age, details, table, UserError } from '../output.js';
import { defineCommand, defineGroup } from './define.js';
import { readSecret } from './input.js';

interface RegistryAuthView {
  id: string;
  name: string;
  username: string;
  createdAt: string;
}

const add = defineCommand({
  name: 'add',
  aliases: ['create'],
  description: 'Save registry credentials; pods pull with them via `--registry-auth <id>`',
  options: {
    name: { kind: 'string', required: true, flags: '--name <name>', description: 'a name for these credentials' },
    username: { kind: 'string', required: true, flags: '--username <user>', description: 'registry user name' },
    passwordStdin: { kind: 'boolean', flags: '--password-stdin', description: 'read the password (or token) from stdin' },
  },
  examples: ['echo "$GHCR_TOKEN" | berth registry add --name ghcr --username me --password-stdin'],
  async handler({ opts, ctx }) {
    if (!opts.passwordStdin && !process.stdin.isTTY) throw new UserError('give the password on stdin with --password-stdin');
    // No --password flag: a password in argv shows in `ps` to every user of the machine.
    const password = await readSecret('Password: ');
    if (!password) throw new UserError('the password is empty');
    const client = await ctx.client();
    const r = await client.post<RegistryAuthView>('/registry-auths', { name: opts.name, username: opts.username, password });
    ctx.out.result(r, () => details([['ID', r.id], ['Name', r.name], ['Username', r.username]]));
  },
});

const list = defineCommand({
  name: 'list',
  aliases: ['ls'],
  description: 'List registry credentials (passwords are never shown)',
  examples: ['berth registry list'],
  async handler({ ctx }) {
    const client = await ctx.client();
    const res = await client.get<{ registryAuths: RegistryAuthView[] }>('/registry-auths');
    const now = Date.now();
    ctx.out.result(res, () =>
      table(res.registryAuths, [
        { header: 'ID', value: (r) => r.id },
        { header: 'NAME', value: (r) => r.name },
        { header: 'USERNAME', value: (r) => r.username },
        { header: 'AGE', value: (r) => age(r.createdAt, now) },
      ]),
    );
  },
});

const rm = defineCommand({
  name: 'rm',
  aliases: ['delete'],
  description: 'Delete registry credentials',
  args: [{ name: 'id', description: 'credentials id', required: true }],
  examples: ['berth registry rm 0a1b2c3d4e5f6g7h'],
  async handler({ args, ctx }) {
    const client = await ctx.client();
    await client.delete(`/registry-auths/${encodeURIComponent(args.id)}`);
    ctx.out.result({ id: args.id, deleted: true }, () => `registry credentials ${args.id} deleted\n`);
  },
});

export const registryCommands = defineGroup({
  name: 'registry',
  description: 'Credentials for private image registries',
  commands: [add, list, rm],
});
