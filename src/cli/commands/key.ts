/** `berth key ...`: API keys. The secret is shown once, when the key is made. */
import { age, table } from '../output.js';
import { defineCommand, defineGroup } from './define.js';

interface ApiKeyView {
  id: string;
  name: string;
  owner: string;
  prefix: string;
  admin: boolean;
  createdAt: string;
  lastUsedAt: string | null;
}

const create = defineCommand({
  name: 'create',
  description: 'Create an API key; prints the secret, which is never shown again',
  options: {
    name: { kind: 'string', required: true, flags: '--name <name>', description: 'what the key is for' },
    owner: { kind: 'string', flags: '--owner <owner>', description: 'the account it acts for (admins only; default: yours)' },
    admin: { kind: 'boolean', flags: '--admin', description: 'an admin key: sees and manages every owner (admins only)' },
  },
  examples: ['berth key create --name ci', 'berth key create --name alice --owner alice', 'export BERTH_API_KEY=$(berth key create --name laptop)'],
  async handler({ opts, ctx }) {
    const client = await ctx.client();
    const k = await client.post<ApiKeyView & { key: string }>('/keys', { name: opts.name, ...(opts.owner !== undefined ? { owner: opts.owner } : {}), ...(opts.admin ? { admin: true } : {}) });
    if (!ctx.out.json) ctx.out.note(`API key ${k.id} (${k.name}) for ${k.owner}${k.admin ? ', admin' : ''}. The secret below is shown only now:`);
    ctx.out.result(k, () => `${k.key}\n`);
  },
});

const list = defineCommand({
  name: 'list',
  aliases: ['ls'],
  description: 'List API keys (their prefixes; secrets are not kept)',
  examples: ['berth key list'],
  async handler({ ctx }) {
    const client = await ctx.client();
    const res = await client.get<{ keys: ApiKeyView[] }>('/keys');
    const now = Date.now();
    ctx.out.result(res, () =>
      table(res.keys, [
        { header: 'ID', value: (k) => k.id },
        { header: 'NAME', value: (k) => k.name },
        { header: 'OWNER', value: (k) => k.owner },
        { header: 'ADMIN', value: (k) => (k.admin ? 'yes' : 'no') },
        { header: 'PREFIX', value: (k) => k.prefix },
        { header: 'CREATED', value: (k) => age(k.createdAt, now) },
        { header: 'LAST USED', value: (k) => (k.lastUsedAt ? `${age(k.lastUsedAt, now)} ago` : 'never') },
      ]),
    );
  },
});

const rm = defineCommand({
  name: 'rm',
  aliases: ['delete', 'revoke'],
  description: 'Revoke an API key',
  args: [{ name: 'id', description: 'key id', required: true }],
  examples: ['berth key rm 3k5m7n9p1q'],
  async handler({ args, ctx }) {
    const client = await ctx.client();
    await client.delete(`/keys/${encodeURIComponent(args.id)}`);
    ctx.out.result({ id: args.id, deleted: true }, () => `API key ${args.id} revoked\n`);
  },
});

export const keyCommands = defineGroup({
  name: 'key',
  aliases: ['keys'],
  description: 'API keys',
  commands: [create, list, rm],
});
