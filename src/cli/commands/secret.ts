/** `berth secret ...`: the secret store. Values go to the server and are never shown again. */
import { readFile } from 'node:fs/promises';
import { age, table, UserError } from '../output.js';
import { defineCommand, defineGroup } from './define.js';
import { readSecret } from './input.js';

interface SecretMeta {
  name: string;
  createdAt: string;
  updatedAt: string;
}

/** `db/password` → `/secrets/db/password`, each segment escaped (the slashes are the name's own). */
const secretPath = (name: string): string => `/secrets/${name.split('/').map(encodeURIComponent).join('/')}`;

/** The value from exactly one source: the flag, the file (its bytes as they are), or stdin / a prompt. */
async function valueFrom(opts: { value: string | undefined; fromFile: string | undefined }): Promise<string> {
  if (opts.value !== undefined && opts.fromFile !== undefined) throw new UserError('give the value with --value or --from-file, not both');
  if (opts.value !== undefined) return opts.value;
  if (opts.fromFile !== undefined) {
    try {
      return await readFile(opts.fromFile, 'utf8');
    } catch (err) {
      throw new UserError(`cannot read ${opts.fromFile}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
  }
  // Piped: all of stdin less one trailing newline (`echo x |`); at a terminal: typed without echo.
  const value = await readSecret('Value: ');
  // Nothing piped in is a forgotten pipe far more often than a wanted empty value (`--value ''` sets one).
  if (value === '') throw new UserError('the value is empty: pipe it in, type it, or give --value or --from-file');
  return value;
}

const set = defineCommand({
  name: 'set',
  description: 'Create a secret or replace its value; pods use it through `secrets`, `secretEnv` and secret volumes',
  args: [{ name: 'name', description: 'the secret name, e.g. db/password', required: true }],
  options: {
    value: { kind: 'string', flags: '--value <value>', description: 'the value (visible to other users in `ps`: prefer stdin or --from-file)' },
    fromFile: { kind: 'string', flags: '--from-file <path>', description: "the file's contents, exactly" },
  },
  examples: ['printf %s "$DB_PASSWORD" | berth secret set db/password', 'berth secret set tls/key --from-file server.key', 'berth secret set db/password   # prompts, without echo'],
  async handler({ args, opts, ctx }) {
    const value = await valueFrom(opts);
    const client = await ctx.client();
    const secret = await client.request<SecretMeta>('PUT', secretPath(args.name), { body: { value } });
    // The server stamps both times alike on creation; a replacement keeps the first createdAt.
    ctx.out.result(secret, () => `secret ${secret.name} ${secret.createdAt === secret.updatedAt ? 'created' : 'updated'}\n`);
  },
});

const list = defineCommand({
  name: 'list',
  aliases: ['ls'],
  description: 'List your secrets (names and times; values are never shown)',
  examples: ['berth secret list'],
  async handler({ ctx }) {
    const client = await ctx.client();
    const res = await client.get<{ secrets: SecretMeta[] }>('/secrets');
    const now = Date.now();
    ctx.out.result(res, () =>
      table(res.secrets, [
        { header: 'NAME', value: (s) => s.name },
        { header: 'CREATED', value: (s) => age(s.createdAt, now) },
        { header: 'UPDATED', value: (s) => age(s.updatedAt, now) },
      ]),
    );
  },
});

const rm = defineCommand({
  name: 'rm',
  aliases: ['delete'],
  description: 'Delete a secret (running pods keep the value they started with)',
  args: [{ name: 'name', description: 'the secret name', required: true }],
  examples: ['berth secret rm db/password'],
  async handler({ args, ctx }) {
    const client = await ctx.client();
    await client.delete(secretPath(args.name));
    ctx.out.result({ name: args.name, deleted: true }, () => `secret ${args.name} deleted\n`);
  },
});

export const secretCommands = defineGroup({
  name: 'secret',
  description: 'Secrets for pods: stored encrypted, handed only to the pods that name them',
  commands: [set, list, rm],
});
